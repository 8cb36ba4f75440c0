"""Build the APIv6 and OpenTSDB clients of a run from its settings, in any process.

The Dagster resources and the metric worker processes both build their clients here, so a
worker sends its requests with the same timeouts, retries and shared limits as the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from vscope_pipeline.opentsdb.client import OpenTSDBClient, query_url
from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.ovh.retrying import DEFAULT_BURST, DEFAULT_REQUESTS_PER_SECOND, RetryingClient
from vscope_pipeline.ovh.token import MetricsToken, fetch_metrics_token, find_user_id
from vscope_pipeline.rate_limit import (
    SharedRateLimiter,
    default_limits_dir,
    endpoint_key,
    limits_folder,
    shared_limits,
)
from vscope_pipeline.secrets import Secret
from vscope_pipeline.settings import OvhCredentials, Settings

# A TCP connection that takes longer than this to open is not coming.
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ServiceEndpoint:
    """The OpenTSDB endpoint of one dedicatedCloud service and the metrics token that reads it."""

    url: str
    token: Secret


def _reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


def build_retrying_ovh_client(credentials: OvhCredentials) -> RetryingClient:
    """Return an APIv6 client whose calls share one rate limit with every process of the user."""
    client = build_ovh_client(
        credentials.endpoint,
        application_key=credentials.application_key,
        application_secret=_reveal(credentials.application_secret),
        consumer_key=_reveal(credentials.consumer_key),
        client_id=credentials.client_id,
        client_secret=_reveal(credentials.client_secret),
    )
    folder = limits_folder(default_limits_dir(), endpoint_key("ovh-api", credentials.endpoint))
    limiter = SharedRateLimiter(folder / "rate", DEFAULT_REQUESTS_PER_SECOND, DEFAULT_BURST)
    return RetryingClient(client, rate_limiter=limiter)


def request_metrics_token(
    client: RetryingClient, settings: Settings, service_name: str
) -> MetricsToken:
    """Ask APIv6 for the vScope metrics token of the configured user of `service_name`."""
    user_id = settings.user_id
    if user_id is None:
        assert settings.user_login is not None
        user_id = find_user_id(client, service_name, settings.user_login)
    return fetch_metrics_token(client, service_name, user_id)


def build_opentsdb_client(
    settings: Settings,
    url: str,
    token: Secret,
    refresh_token: Callable[[], Secret] | None,
) -> OpenTSDBClient:
    """Return a client of the OpenTSDB endpoint `url` that takes the machine-wide limits.

    The limits are keyed by host and port, so the services of one endpoint, and every process
    that queries it, share one request rate and one set of request slots.
    """
    tuning = settings.opentsdb_tuning
    limits = shared_limits(
        default_limits_dir(),
        endpoint_key("opentsdb", urlsplit(query_url(url)).netloc),
        max_concurrency=tuning.max_concurrency,
        rate=tuning.rate_limit,
    )
    return OpenTSDBClient(
        url,
        token,
        timeout=(CONNECT_TIMEOUT_SECONDS, tuning.read_timeout),
        max_concurrency=tuning.max_concurrency,
        rate_limit=tuning.rate_limit,
        downsample=tuning.downsample,
        refresh_token=refresh_token,
        shared_limits=limits,
    )
