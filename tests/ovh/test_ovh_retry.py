"""Retries and the rate limit of APIv6 calls, with the real python-ovh client and faults
injected by the simulated APIv6. Waits go to a recording `sleep`, so no test waits for them."""

import dataclasses
import logging
import socket

import ovh
import pytest
from ovh_sim import CREDENTIALS, SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.ovh.inventory import snapshot_inventory
from vscope_pipeline.ovh.retrying import (
    DEFAULT_BURST,
    DEFAULT_REQUESTS_PER_SECOND,
    CallCounts,
    OvhRetriesExhaustedError,
    RetryingClient,
    retrying_client,
)
from vscope_pipeline.ovh.token import TokenNotGrantedError, fetch_metrics_token
from vscope_pipeline.rate_limit import RateLimiter
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.simulator.credentials import AccessRule
from vscope_pipeline.simulator.ovh_faults import (
    ForcedApiResponse,
    gateway_error_page,
    server_error,
    slow_response,
    too_many_requests,
)

SERVICE = "pcc-203-0-113-10"
DATACENTERS = f"/dedicatedCloud/{SERVICE}/datacenter"
TOKEN_PATH = f"/dedicatedCloud/{SERVICE}/user/2101/metricsToken"
QUERY_ID = "EU.ext-sim.000000000000000000000001"
# With uniform() at 0 there is no jitter: the waits are 0.5 s, 1 s, 2 s, ...
POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0)


class FakeClock:
    """A monotonic clock that only moves when `sleep` is called, and records each sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def api(fleet):
    """A simulated APIv6 of its own for each test, so that no queued fault outlives it."""
    with running_api(fleet) as thread:
        yield thread


@pytest.fixture
def faults(api):
    return api_server(api).faults


@pytest.fixture
def counters(api):
    return api_server(api).counters


@pytest.fixture
def clock():
    return FakeClock()


def retrying(client, clock, *, policy=POLICY, rate_limiter=None):
    return RetryingClient(
        client, rate_limiter=rate_limiter, policy=policy, sleep=clock.sleep, uniform=lambda: 0.0
    )


def walk(client):
    return snapshot_inventory(client, None, snapshot_at=SERVER_NOW)


def test_429_waits_retry_after(api, faults, counters, clock):
    faults.force(too_many_requests(retry_after=3, path="/dedicatedCloud"))
    counts = CallCounts()
    assert retrying(client_for(api), clock).get("/dedicatedCloud", counts=counts) == [SERVICE]
    assert clock.sleeps == [3.0]
    assert counts == CallCounts(requests=2, retries=1)
    assert counters.count("GET /dedicatedCloud", 429) == 1
    assert counters.count("GET /dedicatedCloud", 200) == 1


def test_retry_logged_without_secrets(api, faults, clock, caplog):
    faults.force(too_many_requests(retry_after=3, query_id=QUERY_ID, path="/dedicatedCloud"))
    with caplog.at_level(logging.DEBUG):
        retrying(client_for(api), clock).get("/dedicatedCloud")
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert retries == [
        "GET /dedicatedCloud failed (HTTP 429 Too Many Requests: Too many requests, retry later "
        f"(OVH query id {QUERY_ID})): attempt 1 of 3, retrying in 3.0 s"
    ]
    for secret in (CREDENTIALS.application_secret, CREDENTIALS.consumer_key):
        assert secret not in caplog.text


def test_long_retry_after_ends_at_once(api, faults, clock):
    faults.force(too_many_requests(retry_after=600, query_id=QUERY_ID, path="/dedicatedCloud"))
    with pytest.raises(OvhRetriesExhaustedError) as caught:
        retrying(client_for(api), clock).get("/dedicatedCloud")
    assert str(caught.value) == (
        f"GET {api.url}/1.0/dedicatedCloud failed: HTTP 429 Too Many Requests: Too many "
        f"requests, retry later (OVH query id {QUERY_ID}); gave up after 1 attempt because the "
        "server asked to wait 600 s (Retry-After), more than the 120 s allowed. APIv6 limits "
        "the request rate of this consumer key: lower the client rate limit, or run again later"
    )
    assert clock.sleeps == []


def test_5xx_burst_gives_same_inventory(api, faults, clock):
    reference = walk(retrying(client_for(api), clock))
    assert reference.stats.retries == 0

    faults.force(
        server_error(503, path=DATACENTERS),
        server_error(503, path=DATACENTERS),
        server_error(500, path=rf"{DATACENTERS}/\d+/host"),
        gateway_error_page(502, path=rf"{DATACENTERS}/\d+/vm/[\d,]+"),
        server_error(504, path=f"/dedicatedCloud/{SERVICE}/filer"),
    )
    clock.sleeps.clear()
    snapshot = walk(retrying(client_for(api), clock))

    assert faults.pending() == 0
    for kind, table in snapshot.tables.items():
        assert table.equals(reference.tables[kind]), kind
    assert snapshot.stats.skipped_not_found == reference.stats.skipped_not_found
    assert snapshot.stats.retries == 5
    assert snapshot.stats.requests == reference.stats.requests + 5
    # The datacenter list failed twice in a row, every other call once.
    assert clock.sleeps == [0.5, 1.0, 0.5, 0.5, 0.5]


def test_burst_longer_than_attempts_fails(api, faults, counters, clock):
    faults.force(*[server_error(503, query_id=QUERY_ID, path=DATACENTERS)] * 4)
    with pytest.raises(OvhRetriesExhaustedError) as caught:
        walk(retrying(client_for(api), clock))
    error = caught.value
    assert str(error) == (
        f"GET {api.url}/1.0{DATACENTERS} failed: HTTP 503 Service Unavailable: The service is "
        f"temporarily unavailable, retry later (OVH query id {QUERY_ID}); gave up after 3 "
        "attempts. APIv6 or a gateway in front of it is failing: run again later"
    )
    assert (error.method, error.path, error.url) == (
        "GET",
        DATACENTERS,
        f"{api.url}/1.0{DATACENTERS}",
    )
    assert error.attempts == 3
    assert error.status == 503
    assert isinstance(error.__cause__, ovh.APIError)
    assert clock.sleeps == [0.5, 1.0]
    assert faults.pending() == 1
    assert counters.count("GET /dedicatedCloud/{serviceName}/datacenter", 503) == 3


def test_gateway_page_retried(api, faults, clock):
    faults.force(gateway_error_page(502, path="/dedicatedCloud"))
    counts = CallCounts()
    assert retrying(client_for(api), clock).get("/dedicatedCloud", counts=counts) == [SERVICE]
    assert counts.retries == 1
    assert clock.sleeps == [0.5]


def test_read_timeout_retried(api, faults, counters, clock):
    client = build_ovh_client(
        f"{api.url}/1.0",
        application_key=CREDENTIALS.application_key,
        application_secret=CREDENTIALS.application_secret,
        consumer_key=CREDENTIALS.consumer_key,
        timeout=(2.0, 0.3),
    )
    faults.force(slow_response(1.0, path="/dedicatedCloud"))
    counts = CallCounts()
    assert retrying(client, clock).get("/dedicatedCloud", counts=counts) == [SERVICE]
    assert counts == CallCounts(requests=2, retries=1)
    assert clock.sleeps == [0.5]
    assert faults.taken() == 1


def test_refused_connection_exhausts_attempts(clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = build_ovh_client(
        f"http://127.0.0.1:{port}/1.0",
        application_key=CREDENTIALS.application_key,
        application_secret=CREDENTIALS.application_secret,
        consumer_key=CREDENTIALS.consumer_key,
    )
    with pytest.raises(OvhRetriesExhaustedError) as caught:
        retrying(client, clock).get("/dedicatedCloud")
    assert str(caught.value) == (
        f"GET http://127.0.0.1:{port}/1.0/dedicatedCloud failed: connection failed: "
        f"HTTPConnection(host='127.0.0.1', port={port}): Failed to establish a new connection: "
        "[Errno 111] Connection refused; gave up after 3 attempts. Check the network and "
        "OVH_ENDPOINT, or run again later"
    )
    assert caught.value.status is None
    assert clock.sleeps == [0.5, 1.0]


def test_404_not_retried(api, counters, clock):
    counts = CallCounts()
    with pytest.raises(ovh.ResourceNotFoundError):
        retrying(client_for(api), clock).get(f"{DATACENTERS}/1201/vm/999999", counts=counts)
    assert counts == CallCounts(requests=1, retries=0)
    assert clock.sleeps == []
    assert (
        counters.count("GET /dedicatedCloud/{serviceName}/datacenter/{datacenterId}/vm/{vmId}") == 1
    )


def test_vanished_vm_skipped_without_retry(api, fleet, clock):
    snapshot = snapshot_inventory(
        retrying(client_for(api), clock), None, snapshot_at=SERVER_NOW, batch="never"
    )
    (skipped,) = snapshot.stats.skipped_not_found["vms"]
    assert skipped.object_id == fleet.missing_vm.vm_id
    assert snapshot.stats.retries == 0
    assert clock.sleeps == []


def test_not_granted_token_not_retried(fleet, clock):
    read_only = dataclasses.replace(CREDENTIALS, access_rules=(AccessRule("GET", "/*"),))
    with running_api(fleet, read_only) as api, pytest.raises(TokenNotGrantedError):
        fetch_metrics_token(retrying(client_for(api, read_only), clock), SERVICE, 2101)
    # One 403 per token route, neither repeated.
    assert api_server(api).counters.count(status=403) == 2
    assert clock.sleeps == []


def test_forced_403_not_retried(api, faults, clock):
    faults.force(ForcedApiResponse(403, "This call has not been granted", "NOT_GRANTED_CALL"))
    counts = CallCounts()
    with pytest.raises(ovh.NotGrantedCall):
        retrying(client_for(api), clock).get("/dedicatedCloud", counts=counts)
    assert counts.requests == 1
    assert clock.sleeps == []


def test_token_post_retried(api, faults, counters, clock):
    faults.force(server_error(503, method="POST"))
    token = fetch_metrics_token(retrying(client_for(api), clock), SERVICE, 2101)
    assert token.token.reveal() == CREDENTIALS.metrics_token
    route = "POST /dedicatedCloud/{serviceName}/user/{userId}/metricsToken"
    assert counters.count(route, 503) == 1
    assert counters.count(route, 200) == 1
    assert clock.sleeps == [0.5]


def test_non_idempotent_post_retries_only_429(api, faults, clock):
    client = retrying(client_for(api), clock)
    faults.force(too_many_requests(retry_after=1, method="POST"))
    assert client.post(TOKEN_PATH, idempotent=False)["opentsdbEndpoint"] == "http://127.0.0.1:4242"
    assert clock.sleeps == [1.0]

    faults.force(server_error(503, method="POST"))
    counts = CallCounts()
    with pytest.raises(ovh.APIError) as caught:
        client.post(TOKEN_PATH, idempotent=False, counts=counts)
    assert caught.value.response.status_code == 503
    assert counts.requests == 1
    assert clock.sleeps == [1.0]


def test_rate_limit_spaces_calls(api, clock):
    limiter = RateLimiter(8, 1, clock=clock, sleep=clock.sleep)
    client = retrying(client_for(api), clock, rate_limiter=limiter)
    for _ in range(3):
        assert client.get("/dedicatedCloud") == [SERVICE]
    assert clock.sleeps == [0.125, 0.125]


def test_rate_limit_applies_to_walk(api, clock):
    # 8 per second spaces the calls after the first 5 by 0.125 s, a value exact in binary.
    limiter = RateLimiter(8, 5, clock=clock, sleep=clock.sleep)
    snapshot = walk(retrying(client_for(api), clock, rate_limiter=limiter))
    assert snapshot.stats.requests == 19
    assert clock.sleeps == [0.125] * (19 - 5)


def test_rate_limit_paces_retries(api, faults, clock):
    faults.force(server_error(503, path="/dedicatedCloud"))
    limiter = RateLimiter(1, 1, clock=clock, sleep=clock.sleep)
    assert retrying(client_for(api), clock, rate_limiter=limiter).get("/dedicatedCloud") == [
        SERVICE
    ]
    # The backoff of 0.5 s, then the rest of the 1 s that the limit puts between two requests.
    assert clock.sleeps == [0.5, 0.5]


def test_bare_client_shares_default_limit(api):
    client = client_for(api)
    first, second = retrying_client(client), retrying_client(client)
    assert first.client is client
    assert first.rate_limiter is second.rate_limiter
    assert first.rate_limiter is not None
    assert (first.rate_limiter.rate, first.rate_limiter.burst) == (
        DEFAULT_REQUESTS_PER_SECOND,
        DEFAULT_BURST,
    )
    assert retrying_client(client_for(api)).rate_limiter is not first.rate_limiter
    assert retrying_client(first) is first


def test_inventory_stats_count_retries_in_log(api, faults, clock, caplog):
    faults.force(server_error(503, path="/dedicatedCloud"))
    with caplog.at_level(logging.INFO, logger="vscope_pipeline.ovh.inventory"):
        snapshot = walk(retrying(client_for(api), clock))
    assert snapshot.stats.retries == 1
    assert snapshot.stats.requests == 20
    (summary, _skipped) = [
        r.getMessage() for r in caplog.records if r.name == "vscope_pipeline.ovh.inventory"
    ]
    assert summary == (
        "inventory of 1 service(s) (pcc-203-0-113-10): 2 datacenters, 5 filers, 6 hosts, 58 vms "
        "in 20 requests, 1 of them retries (batch GET)"
    )
