"""Dagster resources: one per external system, each reading its settings at run time.

The resources have no config fields: settings come from the environment when a run starts
(`load_settings`), so secrets never enter Dagster run config, and a broken configuration fails
the run before its first request with one message that lists every problem.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import dagster as dg
from pydantic import PrivateAttr

from vscope_pipeline.opentsdb.client import OpenTSDBClient, query_url
from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.ovh.inventory import InventorySnapshot, snapshot_inventory
from vscope_pipeline.ovh.retrying import DEFAULT_BURST, DEFAULT_REQUESTS_PER_SECOND, RetryingClient
from vscope_pipeline.ovh.server_time import api_server_time
from vscope_pipeline.ovh.token import (
    MetricsToken,
    TokenError,
    fetch_metrics_token,
    find_user_id,
)
from vscope_pipeline.rate_limit import (
    SharedRateLimiter,
    default_limits_dir,
    endpoint_key,
    limits_folder,
    shared_limits,
)
from vscope_pipeline.secrets import Secret
from vscope_pipeline.settings import Settings, load_settings

log = logging.getLogger(__name__)

# A TCP connection that takes longer than this to open is not coming.
CONNECT_TIMEOUT_SECONDS = 5.0


class VScopeSettingsResource(dg.ConfigurableResource):
    """The validated settings of this run, read from the environment once per run."""

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = load_settings()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


class OvhApiResource(dg.ConfigurableResource):
    """OVH APIv6 through the official `ovh` client: inventory snapshots and the vScope token.

    Every call takes a token of a rate limit shared by all processes that call the same APIv6
    endpoint (see `vscope_pipeline.rate_limit`), so parallel runs together stay within it.
    """

    config: VScopeSettingsResource
    _client: RetryingClient | None = PrivateAttr(default=None)

    def _ovh_client(self) -> RetryingClient:
        if self._client is None:
            credentials = self.config.settings.ovh
            client = build_ovh_client(
                credentials.endpoint,
                application_key=credentials.application_key,
                application_secret=_reveal(credentials.application_secret),
                consumer_key=_reveal(credentials.consumer_key),
                client_id=credentials.client_id,
                client_secret=_reveal(credentials.client_secret),
            )
            folder = limits_folder(
                default_limits_dir(), endpoint_key("ovh-api", credentials.endpoint)
            )
            limiter = SharedRateLimiter(folder / "rate", DEFAULT_REQUESTS_PER_SECOND, DEFAULT_BURST)
            self._client = RetryingClient(client, rate_limiter=limiter)
        return self._client

    def api_client(self) -> RetryingClient:
        """Return the signed, rate-limited APIv6 client, created on the first call."""
        return self._ovh_client()

    def server_time(self) -> dt.datetime:
        """Return APIv6's current time (UTC, whole seconds), which dates an inventory snapshot."""
        return api_server_time(self._ovh_client())

    def snapshot_inventory(self, snapshot_at: dt.datetime) -> InventorySnapshot:
        """Walk the inventory. A service whose walk fails is named in `failed_services`."""
        return snapshot_inventory(
            self._ovh_client(),
            self.config.settings.service_names,
            snapshot_at=snapshot_at,
            isolate_services=True,
        )

    def metrics_token(self, service_name: str) -> MetricsToken:
        settings = self.config.settings
        client = self._ovh_client()
        user_id = settings.user_id
        if user_id is None:
            assert settings.user_login is not None
            user_id = find_user_id(client, service_name, settings.user_login)
        return fetch_metrics_token(client, service_name, user_id)


class OpenTSDBResource(dg.ConfigurableResource):
    """The vScope OpenTSDB endpoint, one client (and HTTP session) per service.

    VSCOPE_OPENTSDB_MAX_CONCURRENCY and VSCOPE_OPENTSDB_RATE_LIMIT bound the requests of every
    process on this machine that queries the same endpoint together, not of each run: the
    clients take slots and tokens shared through files (see `vscope_pipeline.rate_limit`).
    """

    ovh_api: OvhApiResource
    _clients: dict[str, OpenTSDBClient] = PrivateAttr(default_factory=dict)
    _token_errors: dict[str, TokenError] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def client_for(self, service_name: str) -> OpenTSDBClient:
        """Return the client of a service, asking APIv6 for its token the first time.

        With VSCOPE_OPENTSDB_URL and VSCOPE_OPENTSDB_TOKEN set, every service uses them and
        APIv6 is not asked for a token. A TokenError (missing route, call not granted, unknown
        user) is raised again for the same service until the run ends, without asking APIv6
        again, because each metric asset of the run would get the same error.
        """
        with self._lock:
            if service_name in self._token_errors:
                raise self._token_errors[service_name]
            if service_name not in self._clients:
                settings = self.ovh_api.config.settings
                refresh_token: Callable[[], Secret] | None = None
                if settings.opentsdb_url and settings.opentsdb_token:
                    url, token = settings.opentsdb_url, settings.opentsdb_token
                else:
                    try:
                        metrics_token = self.ovh_api.metrics_token(service_name)
                    except TokenError as error:
                        self._token_errors[service_name] = error
                        raise
                    url, token = metrics_token.opentsdb_endpoint, metrics_token.token

                    def refresh_token() -> Secret:
                        return self.ovh_api.metrics_token(service_name).token

                tuning = settings.opentsdb_tuning
                log.info("OpenTSDB endpoint for %s: %s", service_name, url)
                # Keyed by host and port, so the services of one endpoint share its limits.
                limits = shared_limits(
                    default_limits_dir(),
                    endpoint_key("opentsdb", urlsplit(query_url(url)).netloc),
                    max_concurrency=tuning.max_concurrency,
                    rate=tuning.rate_limit,
                )
                self._clients[service_name] = OpenTSDBClient(
                    url,
                    token,
                    timeout=(CONNECT_TIMEOUT_SECONDS, tuning.read_timeout),
                    max_concurrency=tuning.max_concurrency,
                    rate_limit=tuning.rate_limit,
                    downsample=tuning.downsample,
                    refresh_token=refresh_token,
                    shared_limits=limits,
                )
            return self._clients[service_name]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_clients()

    def close_clients(self) -> None:
        """Close every client's HTTP session and forget the clients and token errors."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._token_errors.clear()


def _reveal(secret: object) -> str | None:
    return None if secret is None else secret.reveal()  # type: ignore[attr-defined]


def build_resources() -> dict[str, dg.ConfigurableResource]:
    settings = VScopeSettingsResource()
    ovh_api = OvhApiResource(config=settings)
    return {
        "vscope_settings": settings,
        "ovh_api": ovh_api,
        "opentsdb": OpenTSDBResource(ovh_api=ovh_api),
    }
