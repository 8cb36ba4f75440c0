"""The OpenTSDB client against the simulated OpenTSDB server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
import requests

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.client import MetricDayResult, OpenTSDBClient
from vscope_pipeline.opentsdb.errors import OpenTSDBAuthError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer, make_opentsdb_server
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
VM_CPU = SPECS["vscope.vm.cpu.usage.perc"]
HOST_TX = SPECS["vscope.host.net.tx"]
TOKEN = "simulated-read-token"
SERVICE = "pcc-1-2-3-4"
DC1 = "pcc-1-2-3-4_datacenter1"
DC2 = "pcc-1-2-3-4_datacenter2"
DAY = date(2024, 5, 1)
T0 = day_window(DAY).start_ms
STOP = day_window(DAY).stop_ms
FIVE_MINUTES = 300_000


class MemorySource:
    """A SeriesSource over a fixed list of (metric, tags, [(ts_ms, value), ...])."""

    def __init__(self, series: Sequence[tuple[str, dict[str, str], list[tuple[int, float]]]]):
        self._series: dict[str, list[tuple[dict[str, str], Any, Any]]] = {}
        for metric, tags, points in series:
            ts = np.array([point[0] for point in points], dtype=np.int64)
            values = np.array([point[1] for point in points], dtype=np.float64)
            self._series.setdefault(metric, []).append((tags, ts, values))

    def metric_names(self) -> frozenset[str]:
        return frozenset(self._series)

    def series_tags(self, metric: str) -> Sequence[Mapping[str, str]]:
        return [tags for tags, _, _ in self._series.get(metric, [])]

    def points(
        self, metric: str, tags: Mapping[str, str], start_ms: int, end_ms: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        for stored_tags, ts, values in self._series.get(metric, []):
            if dict(stored_tags) == dict(tags):
                keep = (ts >= start_ms) & (ts <= end_ms)
                return ts[keep], values[keep]
        return np.array([], dtype=np.int64), np.array([], dtype=np.float64)


SOURCE = MemorySource(
    [
        (
            VM_CPU.name,
            {"datacenter": DC1, "vm": "vm-2", "env": "prod", "servicename": SERVICE},
            [(T0, 20.0), (T0 + FIVE_MINUTES, 21.5), (STOP - 1, 22.0)],
        ),
        (
            VM_CPU.name,
            # Points of the day before and of the next midnight must not be stored for this day.
            {"datacenter": DC1, "vm": "vm-1", "env": "prod", "servicename": SERVICE},
            [(T0 - FIVE_MINUTES, 9.0), (T0, 10.0), (T0 + FIVE_MINUTES, 11.0), (STOP, 12.0)],
        ),
        (
            VM_CPU.name,
            {"datacenter": DC2, "vm": "vm-3", "env": "prod", "servicename": SERVICE},
            [(T0, 30.0)],
        ),
        (
            HOST_TX.name,
            {"datacenter": DC1, "host": "esx-1", "nicname": "vmnic1"},
            [(T0, 200.0)],
        ),
        (
            HOST_TX.name,
            {"datacenter": DC1, "host": "esx-1", "nicname": "vmnic0"},
            [(T0, 100.0), (T0 + FIVE_MINUTES, 150.0)],
        ),
    ]
)


@pytest.fixture(scope="module")
def simulator() -> Iterator[OpenTsdbServer]:
    server = make_opentsdb_server(SOURCE, [TOKEN])
    with ServerThread(server, "opentsdb-simulator"):
        yield server


@pytest.fixture
def server(simulator: OpenTsdbServer) -> Iterator[OpenTsdbServer]:
    yield simulator
    simulator.faults.delay_s = 0.0
    simulator.faults.max_data_points = 0
    while simulator.faults.next_forced() is not None:
        pass


def _client(server: OpenTsdbServer, sleeps: list[float], **options: Any) -> OpenTSDBClient:
    options.setdefault("timeout", (2.0, 5.0))
    options.setdefault("token", Secret(TOKEN))
    # Without a rate limit, `sleeps` contains the retry delays only.
    options.setdefault("rate_limit", None)
    return OpenTSDBClient(
        server.url,
        retry_policy=RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=2.0, jitter=0.5),
        sleep=sleeps.append,
        uniform=lambda: 0.0,
        **options,
    )


def _fetch(server: OpenTsdbServer, spec: Any = VM_CPU, label: str = DC1) -> MetricDayResult:
    with _client(server, []) as client:
        return client.fetch_metric_day(spec, SERVICE, label, DAY)


def _timestamps(ms: list[int]) -> list[Any]:
    return pa.array(ms, pa.timestamp("ms", tz="UTC")).to_pylist()


def test_vm_metric_of_one_datacenter(server: OpenTsdbServer) -> None:
    result = _fetch(server)

    assert result.table.schema == METRIC_FILE_SCHEMA
    assert result.table.to_pydict() == {
        "entity_kind": ["vm"] * 5,
        "service_name": [SERVICE] * 5,
        "datacenter": [DC1] * 5,
        "entity": ["vm-1", "vm-1", "vm-2", "vm-2", "vm-2"],
        "nic": [None] * 5,
        "ts": _timestamps([T0, T0 + FIVE_MINUTES, T0, T0 + FIVE_MINUTES, STOP - 1]),
        "value": [10.0, 11.0, 20.0, 21.5, 22.0],
    }
    assert result.stats.decoded.series == 2
    assert result.stats.requests == 1
    assert result.stats.decoded.dropped_out_of_window == 0
    assert result.stats.no_such_name is False


def test_per_nic_metric(server: OpenTsdbServer) -> None:
    result = _fetch(server, HOST_TX)

    assert result.table.to_pydict() == {
        "entity_kind": ["host"] * 3,
        "service_name": [SERVICE] * 3,
        "datacenter": [DC1] * 3,
        "entity": ["esx-1"] * 3,
        "nic": ["vmnic0", "vmnic0", "vmnic1"],
        "ts": _timestamps([T0, T0 + FIVE_MINUTES, T0]),
        "value": [100.0, 150.0, 200.0],
    }
    assert result.stats.decoded.series == 2


def test_response_is_gzip_encoded(server: OpenTsdbServer) -> None:
    encodings: list[str | None] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, **_: encodings.append(response.headers.get("Content-Encoding"))
    )

    with session, _client(server, [], session=session) as client:
        result = client.fetch_metric_day(VM_CPU, SERVICE, DC1, DAY)

    assert encodings == ["gzip"]
    assert result.table.num_rows == 5
    assert result.stats.bytes_received > 0


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        pytest.param(SPECS["vscope.vm.disk.io.read"], DC1, id="metric-never-written"),
        pytest.param(VM_CPU, "pcc-1-2-3-4_datacenter9", id="datacenter-never-written"),
    ],
)
def test_unknown_names_give_empty_result(server: OpenTsdbServer, spec: Any, label: str) -> None:
    result = _fetch(server, spec, label)

    assert result.table.num_rows == 0
    assert result.table.schema == METRIC_FILE_SCHEMA
    assert result.stats.no_such_name is True


def test_datacenter_without_series_of_metric(server: OpenTsdbServer) -> None:
    result = _fetch(server, HOST_TX, DC2)

    assert result.table.num_rows == 0
    assert result.stats.no_such_name is False
    assert result.stats.decoded.series == 0


def test_wrong_token_is_auth_error(server: OpenTsdbServer) -> None:
    wrong = "not-the-token"

    with (
        _client(server, [], token=Secret(wrong)) as client,
        pytest.raises(OpenTSDBAuthError, match=r"returned HTTP 401: Not authorized\.") as raised,
    ):
        client.fetch_metric_day(VM_CPU, SERVICE, DC1, DAY)

    assert raised.value.status == 401
    assert wrong not in str(raised.value)


def test_forced_429_and_502_are_retried(server: OpenTsdbServer) -> None:
    server.faults.force(
        ForcedResponse(429, b"Too many requests\n", {"Retry-After": "2"}),
        ForcedResponse(502, b"<html><title>502 Bad Gateway</title></html>", {}, "text/html"),
    )
    sleeps: list[float] = []

    with _client(server, sleeps) as client:
        result = client.fetch_metric_day(VM_CPU, SERVICE, DC1, DAY)

    assert result.stats.requests == 3
    assert result.table.num_rows == 5
    assert sleeps == [2.0, 1.0]
