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

import dagster as dg
from pydantic import PrivateAttr

from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.ovh.inventory import InventorySnapshot, snapshot_inventory
from vscope_pipeline.ovh.retrying import RetryingClient
from vscope_pipeline.ovh.server_time import api_server_time
from vscope_pipeline.ovh.token import MetricsToken, TokenError
from vscope_pipeline.secrets import Secret
from vscope_pipeline.service_clients import (
    ServiceEndpoint,
    build_opentsdb_client,
    build_retrying_ovh_client,
    request_metrics_token,
)
from vscope_pipeline.settings import Settings, load_settings

log = logging.getLogger(__name__)


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
            self._client = build_retrying_ovh_client(self.config.settings.ovh)
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
        return request_metrics_token(self._ovh_client(), self.config.settings, service_name)


class OpenTSDBResource(dg.ConfigurableResource):
    """The vScope OpenTSDB endpoint, one client (and HTTP session) per service.

    VSCOPE_OPENTSDB_MAX_CONCURRENCY and VSCOPE_OPENTSDB_RATE_LIMIT bound the requests of every
    process on this machine that queries the same endpoint together, not of each run: the
    clients take slots and tokens shared through files (see `vscope_pipeline.rate_limit`).
    """

    ovh_api: OvhApiResource
    _clients: dict[str, OpenTSDBClient] = PrivateAttr(default_factory=dict)
    _endpoints: dict[str, ServiceEndpoint] = PrivateAttr(default_factory=dict)
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

                log.info("OpenTSDB endpoint for %s: %s", service_name, url)
                self._endpoints[service_name] = ServiceEndpoint(url, token)
                self._clients[service_name] = build_opentsdb_client(
                    settings, url, token, refresh_token
                )
            return self._clients[service_name]

    def endpoint_for(self, service_name: str) -> ServiceEndpoint:
        """Return the endpoint and token of a service whose client `client_for` returned."""
        with self._lock:
            return self._endpoints[service_name]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_clients()

    def close_clients(self) -> None:
        """Close every client's HTTP session and forget the clients and token errors."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._endpoints.clear()
        self._token_errors.clear()


def build_resources() -> dict[str, dg.ConfigurableResource]:
    settings = VScopeSettingsResource()
    ovh_api = OvhApiResource(config=settings)
    return {
        "vscope_settings": settings,
        "ovh_api": ovh_api,
        "opentsdb": OpenTSDBResource(ovh_api=ovh_api),
    }
