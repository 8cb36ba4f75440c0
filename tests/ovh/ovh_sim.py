"""Simulated APIv6 servers and python-ovh clients shared by the tests of `vscope_pipeline.ovh`."""

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ovh

from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import Fleet
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.ovh_api import TOKEN_ROUTES, OvhApiServer, make_ovh_api_server

ANCHOR_DAY = dt.date(2025, 3, 10)
# The simulator's clock: 06:00 UTC on the anchor day, after the scripted VM deletion.
SERVER_NOW = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC)
OPENTSDB_URL = "http://127.0.0.1:4242"
CREDENTIALS = SimulatorCredentials()


@contextmanager
def running_api(
    fleet: Fleet,
    credentials: SimulatorCredentials = CREDENTIALS,
    token_routes: tuple[str, ...] = TOKEN_ROUTES,
    clock: Callable[[], float] = SERVER_NOW.timestamp,
) -> Iterator[ServerThread]:
    server = make_ovh_api_server(
        fleet,
        credentials,
        OPENTSDB_URL,
        token_routes=token_routes,
        clock=clock,
    )
    with ServerThread(server, name="simulated OVH APIv6 (tests)") as thread:
        yield thread


def client_for(api: ServerThread, credentials: SimulatorCredentials = CREDENTIALS) -> ovh.Client:
    return build_ovh_client(
        f"{api.url}/1.0",
        application_key=credentials.application_key,
        application_secret=credentials.application_secret,
        consumer_key=credentials.consumer_key,
    )


def api_server(api: ServerThread) -> OvhApiServer:
    assert isinstance(api.server, OvhApiServer)
    return api.server
