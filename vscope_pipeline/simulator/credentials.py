"""The API keys, access rules and metrics token that the simulated OVH services accept."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vscope_pipeline.ovh.access_rules import rule_allows

# Application keys are 16 alphanumeric characters, application secrets and consumer keys 32,
# as in the python-ovh 1.2.0 signature test vector.
_KEY_ALPHABET = string.ascii_letters + string.digits

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE")

# Age of the simulated consumer key, as `GET /auth/currentCredential` reports its creation.
CREDENTIAL_AGE = dt.timedelta(days=30)


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
        return rule_allows(self.method, self.path, method, path)


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
    # Ids that `GET /auth/currentCredential` returns for this consumer key and its application.
    credential_id: int = 424242
    application_id: int = 4242

    def grants(self, method: str, path: str) -> bool:
        """Return True when the consumer key's access rules allow `method` on `path`."""
        return any(rule.grants(method, path) for rule in self.access_rules)

    def api_credential(self, now: float) -> dict[str, Any]:
        """Return the `auth.ApiCredential` object of the consumer key, as APIv6 describes it.

        The key was created 30 days before `now`, never expires, is used at `now`, and has
        no IP restriction. Dates are ISO 8601 with a UTC offset.
        """
        created = dt.datetime.fromtimestamp(now, dt.UTC) - CREDENTIAL_AGE
        return {
            "credentialId": self.credential_id,
            "applicationId": self.application_id,
            "status": "validated",
            "rules": [{"method": rule.method, "path": rule.path} for rule in self.access_rules],
            "creation": created.replace(microsecond=0).isoformat(),
            "expiration": None,
            "lastUse": dt.datetime.fromtimestamp(int(now), dt.UTC).isoformat(),
            "ovhSupport": False,
            "allowedIPs": None,
        }

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
