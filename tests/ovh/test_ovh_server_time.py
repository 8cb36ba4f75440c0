"""APIv6's current time as python-ovh measures it, against the simulated APIv6."""

import datetime as dt
import re
import types

import ovh.client
import pytest
from ovh_sim import SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.retrying import RetryingClient
from vscope_pipeline.ovh.server_time import api_server_time
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.simulator.ovh_faults import server_error

# The local clock python-ovh reads while it measures its offset: far from the server's.
LOCAL_EPOCH_S = 1_000_000.25
LOCAL_NOW = dt.datetime.fromtimestamp(LOCAL_EPOCH_S, dt.UTC)
AUTH_TIME_ROUTE = "GET /auth/time"


@pytest.fixture
def api(fleet):
    """A server of its own per test, so that request counts and faults start from zero."""
    with running_api(fleet) as thread:
        yield thread


@pytest.fixture
def local_clock(monkeypatch):
    """Make python-ovh read LOCAL_EPOCH_S as the local time."""
    monkeypatch.setattr(ovh.client, "time", types.SimpleNamespace(time=lambda: LOCAL_EPOCH_S))


def test_server_time_from_auth_time(api, local_clock):
    assert api_server_time(client_for(api), local_now=lambda: LOCAL_NOW) == SERVER_NOW


def test_server_time_follows_local_clock(api, local_clock):
    later = LOCAL_NOW + dt.timedelta(seconds=90, microseconds=400_000)
    moment = api_server_time(client_for(api), local_now=lambda: later)
    assert moment == SERVER_NOW + dt.timedelta(seconds=90)
    assert moment.tzinfo == dt.UTC


def test_server_time_reads_auth_time_once(api, local_clock):
    client = client_for(api)
    api_server_time(client, local_now=lambda: LOCAL_NOW)
    client.get("/dedicatedCloud")
    api_server_time(client, local_now=lambda: LOCAL_NOW)
    assert api_server(api).counters.count(AUTH_TIME_ROUTE) == 1


def test_server_time_retries_auth_time(api, local_clock):
    api_server(api).faults.force(server_error(503, path="/auth/time"))
    sleeps = []
    client = RetryingClient(
        client_for(api),
        rate_limiter=None,
        policy=RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0),
        sleep=sleeps.append,
        uniform=lambda: 0.0,
    )
    assert api_server_time(client, local_now=lambda: LOCAL_NOW) == SERVER_NOW
    assert api_server(api).counters.count(AUTH_TIME_ROUTE, 503) == 1
    assert api_server(api).counters.count(AUTH_TIME_ROUTE, 200) == 1
    assert sleeps == [0.5]


def test_server_time_rejects_naive_local_time(api):
    naive = dt.datetime(2025, 3, 10, 6, 0)
    message = (
        "local_now returned the naive datetime 2025-03-10T06:00:00: expected an aware datetime, "
        "such as datetime.now(UTC)"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        api_server_time(client_for(api), local_now=lambda: naive)
    assert str(raised.value) == message
