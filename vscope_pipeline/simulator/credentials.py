"""The API keys, access rules and metrics token that the simulated OVH services accept."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

# Application keys are 16 alphanumeric characters, application secrets and consumer keys 32,
# as in the python-ovh 1.2.0 signature test vector.
_KEY_ALPHABET = string.ascii_letters + string.digits

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE")


@dataclass(frozen=True)
class AccessRule:
    """One rule of a consumer key, as python-ovh requests it: `{"method": "GET", "path": "/*"}`.

    `path` is relative to the API root (no `/1.0`) and may contain `*`, which matches any run of
    characters, slashes included.
    """

    method: str
    path: str

    def __post_init__(self) -> None:
        if self.method not in HTTP_METHODS:
            raise ValueError(
                f"access rule method {self.method!r} is not valid: expected one of "
                f"{', '.join(HTTP_METHODS)}"
            )
        if not self.path.startswith("/"):
            raise ValueError(
                f"access rule path {self.path!r} is not valid: expected a path that starts "
                "with '/', for example '/dedicatedCloud/*'"
            )

    def grants(self, method: str, path: str) -> bool:
        """Return True when this rule allows `method` on the API path `path` (no query)."""
        if method != self.method:
            return False
        pattern = ".*".join(re.escape(part) for part in self.path.split("*"))
        return re.fullmatch(pattern, path) is not None


# Every method on every path, as granted by python-ovh's
# `add_recursive_rules(API_READ_WRITE, "/")` (which adds the rule path `/*`).
GRANT_ALL: tuple[AccessRule, ...] = tuple(AccessRule(method, "/*") for method in HTTP_METHODS)


@dataclass(frozen=True)
class SimulatorCredentials:
    """The application key, consumer key and metrics token a simulator accepts.

    The defaults are fixed demo values, so that `make demo` and the documentation can show
    them. `generate()` returns random ones. Secrets are left out of `repr()`.
    """

    application_key: str = "vScopeSimDemoAK1"
    application_secret: str = field(default="vScopeSimulatorDemoAppSecret0001", repr=False)
    consumer_key: str = field(default="vScopeSimulatorDemoConsumerKey01", repr=False)
    metrics_token: str = field(default="vscope-simulator-demo-metrics-token", repr=False)
    access_rules: tuple[AccessRule, ...] = GRANT_ALL

    def grants(self, method: str, path: str) -> bool:
        """Return True when the consumer key's access rules allow `method` on `path`."""
        return any(rule.grants(method, path) for rule in self.access_rules)

    def service_metrics_tokens(self, service_names: Sequence[str]) -> dict[str, str]:
        """Return the metrics token of each service, by service name.

        The first service gets `metrics_token`, so a one-service simulator keeps its token.
        Each other service gets an HMAC-SHA256 of its name keyed with `metrics_token`, which
        differs per service, stays fixed for the demo values and is random for generated ones.
        """
        tokens: dict[str, str] = {}
        for index, service_name in enumerate(service_names):
            if index == 0:
                tokens[service_name] = self.metrics_token
            else:
                key = self.metrics_token.encode()
                digest = hmac.new(key, service_name.encode(), hashlib.sha256).hexdigest()
                tokens[service_name] = f"vscope-sim-{digest}"
        return tokens

    @classmethod
    def generate(cls, access_rules: tuple[AccessRule, ...] = GRANT_ALL) -> SimulatorCredentials:
        """Return credentials with random keys and token, for a simulator reachable by others."""
        return cls(
            application_key=_random_key(16),
            application_secret=_random_key(32),
            consumer_key=_random_key(32),
            metrics_token=secrets.token_urlsafe(32),
            access_rules=access_rules,
        )


def _random_key(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))
