"""Construction of the python-ovh client for a named OVH endpoint or for a base URL.

python-ovh 1.2.0 only accepts endpoint names: `ovh.Client.__init__` looks the name up in the
module-level dict `ovh.client.ENDPOINTS` and raises `InvalidRegion` for anything else. Adding a
key to that dict would change it for every other user in the process. A URL endpoint is served
by `BaseUrlClient` instead, which python-ovh constructs with a known name and which then sends
every request to the URL. Signing, the `/auth/time` clock offset and the mapping of HTTP errors
to exceptions stay python-ovh's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import ovh
import ovh.client
import ovh.config

log = logging.getLogger(__name__)

# Seconds to wait for the TCP connection, then for each response. python-ovh's own default is
# 180 s for both. A 10 s connect timeout makes an unreachable endpoint fail fast.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 180.0)

# The named endpoint that python-ovh is constructed with when a URL is on a host that is not an
# OVHcloud API host (a simulator, a proxy). python-ovh reads only client_id and client_secret
# from its config-file section, because `build_ovh_client` passes the keys found for the URL.
_STAND_IN_ENDPOINT = "ovh-eu"


class EndpointError(ValueError):
    """An OVH endpoint that is neither a python-ovh endpoint name nor a usable base URL."""


@dataclass(frozen=True)
class Endpoint:
    """The base URL of API requests, and the python-ovh endpoint name that configures the client.

    `name` selects python-ovh's config-file section and OAuth2 token URL. It is None for a URL
    on a host that python-ovh does not know.
    """

    base_url: str
    name: str | None
    is_url: bool


def _endpoint_names() -> str:
    return ", ".join(sorted(ovh.client.ENDPOINTS))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def resolve_endpoint(endpoint: str) -> Endpoint:
    """Parse a python-ovh endpoint name (`ovh-eu`) or a base URL (`http://127.0.0.1:8000/1.0`).

    A base URL must be http or https, name a host, end in the API version path (such as `/1.0`
    or `/v1`) and carry no credentials, query or fragment. One trailing slash is dropped.
    Raises EndpointError naming the value and the accepted forms.
    """
    value = endpoint.strip()
    if value in ovh.client.ENDPOINTS:
        return Endpoint(base_url=ovh.client.ENDPOINTS[value], name=value, is_url=False)
    if "://" not in value:
        raise EndpointError(
            f"OVH endpoint {endpoint!r} is neither a python-ovh endpoint name nor a URL: "
            f"use one of {_endpoint_names()}, or a base URL such as https://eu.api.ovh.com/1.0"
        )

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise EndpointError(
            f"OVH endpoint URL {endpoint!r} has scheme {parts.scheme!r}: "
            "use http:// or https://, for example https://eu.api.ovh.com/1.0, or an endpoint "
            "name such as ovh-eu"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise EndpointError(
            f"OVH endpoint URL {endpoint!r} has no valid host and port: "
            "write it as http(s)://host[:port]/<version>, for example http://127.0.0.1:8000/1.0"
        )
    if parts.username is not None or parts.password is not None:
        raise EndpointError(
            f"OVH endpoint URL for host {parts.hostname!r} contains credentials: "
            "remove them from the URL and set OVH_APPLICATION_KEY and the other keys instead"
        )
    if parts.query or parts.fragment:
        raise EndpointError(
            f"OVH endpoint URL {endpoint!r} has a query or fragment: "
            "give only the base URL, such as https://eu.api.ovh.com/1.0"
        )
    path = parts.path.removesuffix("/")
    if not path:
        raise EndpointError(
            f"OVH endpoint URL {endpoint!r} has no API version path: "
            f"add it, for example {value.rstrip('/')}/1.0"
        )

    base_url = f"{parts.scheme}://{parts.netloc}{path}"
    name = next(
        (
            known
            for known, known_url in ovh.client.ENDPOINTS.items()
            if _origin(known_url) == _origin(base_url)
        ),
        None,
    )
    return Endpoint(base_url=base_url, name=name, is_url=True)


class BaseUrlClient(ovh.Client):
    """An `ovh.Client` that sends its requests to `base_url` instead of a named endpoint.

    python-ovh 1.2.0 builds each request URL as `self._endpoint + path` (`Client._get_target`)
    and signs that exact URL, so overriding `_endpoint` here, once and only here, moves both the
    request and its signature to the new base URL.
    """

    def __init__(self, base_url: str, *, endpoint_name: str, **kwargs: object) -> None:
        super().__init__(endpoint=endpoint_name, **kwargs)
        self._endpoint = base_url

    @property
    def base_url(self) -> str:
        return str(self._endpoint)

    def __repr__(self) -> str:
        return f"BaseUrlClient({self._endpoint!r})"


def build_ovh_client(
    endpoint: str,
    *,
    application_key: str | None = None,
    application_secret: str | None = None,
    consumer_key: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> ovh.Client:
    """Build a python-ovh client for an endpoint name or a base URL.

    Values left as None are looked up by python-ovh: the `OVH_*` environment variables, then the
    ovh.conf section named after the endpoint. A URL on a host that is not an OVHcloud API host
    uses the section named after the URL itself (`[http://127.0.0.1:8000/1.0]`) and requires the
    application key, secret and consumer key. It rejects OAuth2, because python-ovh would fetch
    the OAuth2 token from OVHcloud. `timeout` is (connect, read) in seconds.
    """
    target = resolve_endpoint(endpoint)
    keys = {
        "application_key": application_key,
        "application_secret": application_secret,
        "consumer_key": consumer_key,
        "client_id": client_id,
        "client_secret": client_secret,
    }

    if target.name is not None and target.base_url == ovh.client.ENDPOINTS[target.name]:
        return ovh.Client(endpoint=target.name, timeout=timeout, **keys)
    if target.name is not None:
        log.debug("OVH endpoint %s is on the %s API host", target.base_url, target.name)
        return BaseUrlClient(target.base_url, endpoint_name=target.name, timeout=timeout, **keys)

    keys = _lookup_missing(target.base_url, keys)
    _check_foreign_host_keys(target.base_url, keys)
    # NOTE: python-ovh still looks client_id and client_secret up in the stand-in's ovh.conf
    # section. If that section contains OAuth2 values, it raises InvalidConfiguration.
    return BaseUrlClient(
        target.base_url,
        endpoint_name=_STAND_IN_ENDPOINT,
        timeout=timeout,
        application_key=keys["application_key"],
        application_secret=keys["application_secret"],
        consumer_key=keys["consumer_key"],
    )


def _lookup_missing(base_url: str, keys: dict[str, str | None]) -> dict[str, str | None]:
    """Fill the None values the way python-ovh does, with the URL as the config-file section."""
    configuration = ovh.config.ConfigurationManager()
    return {
        name: value if value is not None else configuration.get(base_url, name)
        for name, value in keys.items()
    }


def _check_foreign_host_keys(base_url: str, keys: dict[str, str | None]) -> None:
    if keys["client_id"] or keys["client_secret"]:
        raise EndpointError(
            f"OAuth2 (OVH_CLIENT_ID, OVH_CLIENT_SECRET) cannot be used with OVH endpoint "
            f"{base_url!r}: python-ovh takes OAuth2 tokens from OVHcloud only, so use an "
            "application key, secret and consumer key for this URL, or an endpoint name"
        )
    missing = [
        f"OVH_{name.upper()}"
        for name in ("application_key", "application_secret", "consumer_key")
        if not keys[name]
    ]
    if missing:
        raise EndpointError(
            f"missing {', '.join(missing)} for OVH endpoint {base_url!r}: set them in the "
            f"environment, or in the [{base_url}] section of ovh.conf"
        )
