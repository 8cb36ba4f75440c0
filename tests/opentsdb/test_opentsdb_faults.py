"""The OpenTSDB client against the simulated server's faults, over HTTP on 127.0.0.1.

Each test compares the fetched day with the day fetched from the same server without faults,
so that retries, splits and fallbacks are shown to change how the day is fetched, never what
is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import requests
from fault_fleet import (
    DAY,
    DC1,
    DC1_HOSTS,
    DC1_VMS,
    HOST_TX,
    SERVICE,
    TOKEN,
    VM_CPU,
    VM_MEM,
    FleetSource,
)

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.opentsdb.client import MetricDayResult, OpenTSDBClient
from vscope_pipeline.opentsdb.errors import (
    OpenTSDBAuthError,
    OpenTSDBGroupingError,
    OpenTSDBLimitError,
    OpenTSDBQueryError,
    OpenTSDBServerError,
)
from vscope_pipeline.opentsdb.planning import build_query_body
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer, make_opentsdb_server
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse

POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=2.0, max_attempts_on_500=2)
DESCRIPTION = (
    f"metric vscope.vm.cpu.usage.perc, datacenter {DC1}, "
    "from 2024-05-01T00:00:00.000Z to 2024-05-01T23:59:59.999Z"
)
# Points that DC1's VM metric scans for the whole day, padding hours included: 6 VMs with 288
# points in the day and 12 in each padding hour. A half day scans 6 * (144 + 24) = 1008.
DAY_SCAN_POINTS = 6 * (288 + 24)
HALF_DAY_SCAN_POINTS = 6 * (144 + 24)


@pytest.fixture(scope="module")
def simulator() -> Iterator[OpenTsdbServer]:
    server = make_opentsdb_server(FleetSource(), [TOKEN])
    with ServerThread(server, "opentsdb-faults"):
        yield server


@pytest.fixture
def server(simulator: OpenTsdbServer) -> Iterator[OpenTsdbServer]:
    yield simulator
    faults = simulator.faults
    faults.delay_s = 0.0
    faults.max_data_points = 0
    faults.limit_error_as_proxy = False
    faults.slow_above_points = 0
    faults.slow_delay_s = 0.0
    faults.ignore_group_by = False
    faults.end_aligned_buckets = False
    while faults.next_forced() is not None:
        pass
    for token in simulator.tokens - {TOKEN}:
        simulator.revoke(token)
    simulator.accept(TOKEN)


class Recorder:
    """A client on the simulator whose sleeps are recorded instead of slept."""

    def __init__(self, server: OpenTsdbServer, **options: Any) -> None:
        self.sleeps: list[float] = []
        options.setdefault("timeout", (2.0, 5.0))
        options.setdefault("rate_limit", None)
        options.setdefault("retry_policy", POLICY)
        self.client = OpenTSDBClient(
            server.url,
            options.pop("token", Secret(TOKEN)),
            sleep=self.sleeps.append,
            uniform=lambda: 0.0,
            **options,
        )

    def fetch(
        self, spec: MetricSpec = VM_CPU, expected: tuple[str, ...] = DC1_VMS
    ) -> MetricDayResult:
        return self.client.fetch_metric_day(spec, SERVICE, DC1, DAY, expected)


def _baseline(server: OpenTsdbServer, spec: MetricSpec = VM_CPU, **options: Any) -> pa.Table:
    """Return the day as fetched from the server without any fault."""
    return Recorder(server, **options).fetch(spec).table


def _counted(server: OpenTsdbServer) -> dict[int, int]:
    return dict(server.counters.snapshot().by_status)


def _statuses_since(server: OpenTsdbServer, before: dict[int, int]) -> dict[int, int]:
    """Return the responses per status sent since `before` was counted."""
    changes = {status: count - before.get(status, 0) for status, count in _counted(server).items()}
    return {status: count for status, count in changes.items() if count}


def test_baseline_day_is_complete(server: OpenTsdbServer) -> None:
    table = _baseline(server)

    assert table.num_rows == 6 * 288
    assert sorted(set(table.column("entity").to_pylist())) == list(DC1_VMS)


def test_429_honours_retry_after(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.faults.force(ForcedResponse(429, b"Too many requests\n", {"Retry-After": "3"}))
    recorder = Recorder(server)

    result = recorder.fetch()

    assert result.table.equals(expected)
    assert recorder.sleeps == [3.0]
    assert result.stats.requests == 2
    assert result.stats.retries == 1


def test_5xx_burst_then_success(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.faults.force(
        ForcedResponse(502, b"<html><title>502 Bad Gateway</title></html>", {}, "text/html"),
        ForcedResponse(503, b"busy\n"),
    )
    recorder = Recorder(server)

    result = recorder.fetch()

    assert result.table.equals(expected)
    assert recorder.sleeps == [0.5, 1.0]
    assert result.stats.requests == 3
    assert result.stats.retries == 2
    assert result.stats.splits == 0


def test_5xx_burst_longer_than_attempts(server: OpenTsdbServer) -> None:
    server.faults.force(*[ForcedResponse(503, b"busy\n")] * 4)
    recorder = Recorder(server)

    with pytest.raises(OpenTSDBServerError) as raised:
        recorder.fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query for {DESCRIPTION} returned HTTP 503: busy; gave up "
        "after 3 attempts. Retry the run later"
    )
    assert recorder.sleeps == [0.5, 1.0]
    assert server.faults.pending() == 1


def test_500_burst_is_retried_fewer_times(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.faults.force(ForcedResponse(500, b"backend hiccup\n"))
    recorder = Recorder(server)

    assert recorder.fetch().table.equals(expected)
    server.faults.force(*[ForcedResponse(500, b"backend hiccup\n")] * 2)
    with pytest.raises(OpenTSDBServerError) as raised:
        recorder.fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query for {DESCRIPTION} returned HTTP 500: backend hiccup; "
        "gave up after 2 attempts. Retry the run later"
    )
    assert recorder.sleeps == [0.5, 0.5]


@pytest.mark.parametrize("as_proxy", [False, True], ids=["413", "proxy-500"])
def test_limit_splits_day_into_halves(server: OpenTsdbServer, as_proxy: bool) -> None:
    expected = _baseline(server)
    server.faults.max_data_points = HALF_DAY_SCAN_POINTS
    server.faults.limit_error_as_proxy = as_proxy
    before = _counted(server)

    result = Recorder(server).fetch()

    assert result.table.equals(expected)
    assert result.stats.splits == 1
    assert result.stats.requests == 3
    assert result.stats.retries == 0
    assert result.stats.decoded.series == 6
    assert result.stats.decoded.points == 6 * 288
    failed = 500 if as_proxy else 413
    assert _statuses_since(server, before) == {failed: 1, 200: 2}


def test_limit_splits_per_nic_metric(server: OpenTsdbServer) -> None:
    expected = _baseline(server, HOST_TX)
    # Four NIC series: a quarter day scans 4 * (72 + 24) = 384 points, a half day 672.
    server.faults.max_data_points = 400

    result = Recorder(server).fetch(HOST_TX, DC1_HOSTS)

    assert result.table.equals(expected)
    assert result.stats.splits == 3
    assert result.stats.requests == 7
    assert result.stats.decoded.series == 4


def test_read_timeout_splits_day(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    # The whole day returns 6 * 288 points and is slow, each half returns 864 and is not.
    server.faults.slow_above_points = 6 * 144
    server.faults.slow_delay_s = 0.4
    recorder = Recorder(server, timeout=(2.0, 0.2), retry_policy=RetryPolicy(max_attempts=2))

    result = recorder.fetch()

    assert result.table.equals(expected)
    assert result.stats.requests == 4
    assert result.stats.retries == 1
    assert result.stats.splits == 1
    assert recorder.sleeps == [1.0]


def test_limit_at_smallest_unit(server: OpenTsdbServer) -> None:
    server.faults.max_data_points = 1
    recorder = Recorder(server)

    with pytest.raises(OpenTSDBLimitError) as raised:
        recorder.fetch()

    # Six halvings take the day to 22.5 minutes. The first of them is then cut to 3 VMs,
    # then to 1 VM, which still fails.
    assert str(raised.value) == (
        f"OpenTSDB query for metric {VM_CPU.name}, datacenter {DC1}, vm vm-1, from "
        "2024-05-01T00:00:00.000Z to 2024-05-01T00:22:29.999Z is still too large after 8 "
        "splits, at the smallest unit (a window of 22.5 min and one entity): HTTP 413: Sorry, "
        "you have attempted to fetch more than our limit of 1 data points. Please try "
        "filtering using more tags or decrease your time range.. Set a downsample interval "
        "to read fewer points, or raise the read timeout"
    )
    assert raised.value.status == 413
    assert isinstance(raised.value.__cause__, OpenTSDBQueryError)
    assert recorder.sleeps == []


def test_limit_without_entities_to_split(server: OpenTsdbServer) -> None:
    server.faults.max_data_points = 1

    with pytest.raises(OpenTSDBLimitError) as raised:
        Recorder(server).fetch(expected=())

    assert str(raised.value).startswith(
        f"OpenTSDB query for metric {VM_CPU.name}, datacenter {DC1}, from "
        "2024-05-01T00:00:00.000Z to 2024-05-01T00:22:29.999Z is still too large after 6 "
        "splits, at the smallest unit (a window of 22.5 min, and fewer than two expected vms "
        "to split it by): HTTP 413: Sorry,"
    )


def test_revoked_token_is_refreshed(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.accept("fresh-token")
    server.revoke(TOKEN)
    calls: list[str] = []

    def refresh() -> Secret:
        calls.append("refresh")
        return Secret("fresh-token")

    recorder = Recorder(server, refresh_token=refresh)
    first = recorder.fetch()
    second = recorder.fetch(VM_MEM)

    assert first.table.equals(expected)
    assert calls == ["refresh"]
    assert first.stats.requests == 2
    assert first.stats.retries == 1
    assert second.stats.requests == 1
    assert second.stats.retries == 0


def test_refreshed_token_also_refused(server: OpenTsdbServer) -> None:
    server.revoke(TOKEN)
    calls: list[str] = []

    def refresh() -> Secret:
        calls.append("refresh")
        return Secret("still-wrong-token")

    recorder = Recorder(server, refresh_token=refresh)
    with pytest.raises(OpenTSDBAuthError) as raised:
        recorder.fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query for {DESCRIPTION} returned HTTP 401: Not authorized; "
        "the token was refreshed once and the new token is refused too. Check that the "
        "dedicatedCloud user still has the right to read vScope metrics, or the value of "
        "VSCOPE_OPENTSDB_TOKEN"
    )
    assert raised.value.status == 401
    assert calls == ["refresh"]
    assert "still-wrong-token" not in str(raised.value)


def test_refresh_failure_is_auth_error(server: OpenTsdbServer) -> None:
    server.revoke(TOKEN)

    def refresh() -> Secret:
        raise RuntimeError("APIv6 is down")

    with pytest.raises(OpenTSDBAuthError) as raised:
        Recorder(server, refresh_token=refresh).fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query for {DESCRIPTION} returned HTTP 401: Not authorized; "
        "refreshing the token failed: RuntimeError: APIv6 is down"
    )
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_threads_share_one_refresh(server: OpenTsdbServer) -> None:
    server.accept("fresh-token")
    server.revoke(TOKEN)
    calls: list[str] = []
    lock = threading.Lock()

    def refresh() -> Secret:
        with lock:
            calls.append("refresh")
        return Secret("fresh-token")

    recorder = Recorder(server, refresh_token=refresh)
    results: list[MetricDayResult] = []
    specs = [VM_CPU, VM_MEM] * 3
    threads = [
        threading.Thread(target=lambda spec=spec: results.append(recorder.fetch(spec)))
        for spec in specs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 6
    assert calls == ["refresh"]
    assert all(result.stats.decoded.points == 6 * 288 for result in results)


def test_non_grouping_server_falls_back(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.faults.ignore_group_by = True
    recorder = Recorder(server)

    first = recorder.fetch()
    second = recorder.fetch()

    assert first.table.equals(expected)
    assert second.table.equals(expected)
    assert recorder.client.server_ignores_group_by is True
    # The grouped query, then one batch of six per-entity sub-queries.
    assert first.stats.requests == 2
    assert first.stats.fallback_requests == 1
    # The client remembers: straight to the per-entity batch.
    assert second.stats.requests == 1
    assert second.stats.fallback_requests == 1


def test_non_grouping_per_nic_fallback(server: OpenTsdbServer) -> None:
    expected = _baseline(server, HOST_TX)
    server.faults.ignore_group_by = True

    result = Recorder(server).fetch(HOST_TX, DC1_HOSTS)

    assert result.table.equals(expected)
    assert result.stats.decoded.series == 4
    assert result.stats.fallback_requests == 1


def test_non_grouping_without_entities(server: OpenTsdbServer) -> None:
    server.faults.ignore_group_by = True

    with pytest.raises(OpenTSDBGroupingError) as raised:
        Recorder(server).fetch(expected=())

    assert str(raised.value) == (
        f"OpenTSDB at {server.url}/api/query ignores group-by, so metric {VM_CPU.name} of "
        f"datacenter {DC1} on 2024-05-01 must be fetched entity by entity, but no vm of that "
        "datacenter is known. Pass the expected entities from the inventory"
    )


def test_fallback_skips_unknown_entity(server: OpenTsdbServer) -> None:
    expected = _baseline(server)
    server.faults.ignore_group_by = True

    result = Recorder(server).fetch(expected=(*DC1_VMS, "vm-404"))

    assert result.table.equals(expected)
    # The grouped query, the batch that names vm-404 (400), and the batch without it.
    assert result.stats.requests == 3
    assert result.stats.fallback_requests == 2
    assert result.stats.no_such_name is False


def test_end_aligned_downsample_is_restamped(server: OpenTsdbServer) -> None:
    expected = _baseline(server, downsample="15m-avg")
    server.faults.end_aligned_buckets = True

    result = Recorder(server, downsample="15m-avg").fetch()

    assert result.table.equals(expected)
    assert result.table.num_rows == 6 * 96
    assert result.stats.decoded.dropped_out_of_window == 0
    assert result.stats.decoded.dropped_points == 0
    starts = result.table.column("ts").cast(pa.int64()).to_pylist()
    assert all(ts % 900_000 == 0 for ts in starts)


def test_downsample_split_keeps_bucket_grid(server: OpenTsdbServer) -> None:
    expected = _baseline(server, downsample="1h-max")
    server.faults.end_aligned_buckets = True
    server.faults.max_data_points = HALF_DAY_SCAN_POINTS

    result = Recorder(server, downsample="1h-max").fetch()

    assert result.table.equals(expected)
    assert result.table.num_rows == 6 * 24
    assert result.stats.splits == 1


def test_concurrency_is_bounded(server: OpenTsdbServer) -> None:
    server.faults.delay_s = 0.1
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    class CountingSession(requests.Session):
        def post(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            try:
                return super().post(*args, **kwargs)
            finally:
                with lock:
                    in_flight -= 1

    with CountingSession() as session:
        recorder = Recorder(server, session=session, max_concurrency=2)
        threads = [threading.Thread(target=recorder.fetch) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

    assert peak == 2
    assert server.counters.snapshot().requests >= 6


def test_rate_limit_spaces_requests(server: OpenTsdbServer) -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = OpenTSDBClient(
        server.url, Secret(TOKEN), rate_limit=4.0, sleep=sleep, clock=lambda: now[0]
    )
    for _ in range(3):
        client.fetch_metric_day(VM_CPU, SERVICE, DC1, DAY)

    assert waits == [0.25, 0.25]


def test_expected_entities_string_rejected(server: OpenTsdbServer) -> None:
    with pytest.raises(TypeError, match="is a string") as raised:
        Recorder(server).client.fetch_metric_day(VM_CPU, SERVICE, DC1, DAY, "vm-1")

    assert str(raised.value) == (
        "expected_entities 'vm-1' is a string: pass a collection of entity names, such as a tuple"
    )


def test_query_counts_refused_token(server: OpenTsdbServer) -> None:
    server.accept("fresh-token")
    server.revoke(TOKEN)
    recorder = Recorder(server, refresh_token=lambda: Secret("fresh-token"))
    body = build_query_body(VM_CPU, DC1, DAY)

    response = recorder.client.query(body)

    assert response.requests == 2
    assert response.no_such_name is False
