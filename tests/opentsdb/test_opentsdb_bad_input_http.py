"""Odd responses through the simulated OpenTSDB over HTTP on 127.0.0.1, down to the lake.

Each test collects one day with `collect_day` and the real client, then reads the stored
Parquet partition, the warehouse built over it and the reported counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_fleet import DAY, DC1, DC1_VMS, SERVICE, T0, TOKEN, VM_CPU, FleetSource

from vscope_pipeline.catalog import build_catalog, parse_extra_metric
from vscope_pipeline.collect import DatacenterTarget, collect_day, drop_metadata
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.opentsdb.errors import OpenTSDBConnectionError
from vscope_pipeline.opentsdb.results import DecodeStats
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer, make_opentsdb_server
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse
from vscope_pipeline.warehouse.build import build_warehouse

POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=2.0, max_attempts_on_500=2)
MINUTE = 60_000
TARGETS = [DatacenterTarget(SERVICE, DC1, {"vm": frozenset(DC1_VMS)})]
ODD_ENTITIES = [
    'vm-"quoted"',
    "vm-'single'",
    "vm-1; DROP TABLE metric_points; --",
    "../../etc/passwd",
    "vm-é-名前-🙂",
    "x" * 10_240,
]


@pytest.fixture(scope="module")
def simulator() -> Iterator[OpenTsdbServer]:
    server = make_opentsdb_server(FleetSource(), [TOKEN])
    with ServerThread(server, "opentsdb-bad-input"):
        yield server


@pytest.fixture
def server(simulator: OpenTsdbServer) -> Iterator[OpenTsdbServer]:
    yield simulator
    simulator.faults.clear()


@pytest.fixture
def client(server: OpenTsdbServer) -> Iterator[OpenTSDBClient]:
    sleeps: list[float] = []
    with OpenTSDBClient(
        server.url,
        Secret(TOKEN),
        timeout=(2.0, 5.0),
        rate_limit=None,
        retry_policy=POLICY,
        sleep=sleeps.append,
        uniform=lambda: 0.0,
    ) as opened:
        yield opened


def _series(entity: str, dps: dict[str, Any]) -> dict[str, Any]:
    tags = {"datacenter": DC1, "vm": entity, "env": "prod"}
    return {"metric": VM_CPU.name, "tags": tags, "aggregateTags": [], "dps": dps}


def _json(elements: list[dict[str, Any]]) -> ForcedResponse:
    return ForcedResponse(200, orjson.dumps(elements), content_type="application/json")


def _collect_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "vscope_pipeline.collect"
    ]


def _stored(data_dir: Path, metric: str = VM_CPU.name) -> list[tuple[Any, ...]]:
    table = pq.read_table(metric_partition_dir(data_dir, metric, DAY) / "data.parquet")
    return list(
        zip(
            table.column("entity").to_pylist(),
            table.column("ts").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )


def test_odd_values_dropped_and_reported(
    server: OpenTsdbServer,
    client: OpenTSDBClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dps = {
        str(T0): "12.5",
        str(T0 + MINUTE): "NaN",
        str(T0 + 2 * MINUTE): "Infinity",
        str(T0 + 3 * MINUTE): 150,
        str(T0 + 4 * MINUTE): -1,
        str(T0 - MINUTE): 20,
        str(T0 + 5 * MINUTE): 30,
    }
    server.faults.force(_json([_series("vm-1", dps), {**_series("", {str(T0): 1})}]))

    with caplog.at_level(logging.INFO, logger="vscope_pipeline.collect"):
        (report,) = collect_day([VM_CPU], DAY, TARGETS, lambda _: client, tmp_path)

    assert _stored(tmp_path) == [("vm-1", T0, 12.5), ("vm-1", T0 + 5 * MINUTE, 30.0)]
    assert report.decoded == DecodeStats(
        series=1,
        points=2,
        dropped_nan=1,
        dropped_infinite=1,
        dropped_out_of_window=1,
        dropped_out_of_range=2,
        dropped_unidentified=1,
        unidentified_series=1,
        numeric_strings=1,
    )
    assert report.dropped_points == 6
    assert drop_metadata([report, report]) == {
        "dropped_nan": 2,
        "dropped_infinite": 2,
        "dropped_out_of_range": 4,
        "dropped_out_of_window": 2,
        "duplicates": 0,
        "dropped_unidentified": 2,
        "unidentified_series": 2,
        "numeric_strings": 2,
    }
    assert _collect_lines(caplog) == [
        (
            logging.WARNING,
            f"2024-05-01 {VM_CPU.name}: 2 rows from 1 series; dropped or odd values: 1 NaN or "
            "null values dropped, 1 infinite values dropped, 2 values out of range dropped, 1 "
            "points outside the day dropped, 1 points of series without entity tag dropped, 1 "
            "values sent as strings kept",
        )
    ]


def test_odd_entity_names_reach_warehouse(
    server: OpenTsdbServer, client: OpenTSDBClient, tmp_path: Path
) -> None:
    body = [_series(entity, {str(T0): float(i)}) for i, entity in enumerate(ODD_ENTITIES)]
    server.faults.force(_json(body))

    (report,) = collect_day([VM_CPU], DAY, TARGETS, lambda _: client, tmp_path)
    summary = build_warehouse(tmp_path, build_catalog())

    expected = sorted((entity, T0, float(i)) for i, entity in enumerate(ODD_ENTITIES))
    assert _stored(tmp_path) == expected
    assert report.rows == 6
    assert sorted(report.unexpected_entities) == sorted(f"{DC1}/{e}" for e in ODD_ENTITIES)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        stored = con.execute(
            "SELECT entity, value FROM metric_points WHERE metric = ? ORDER BY entity",
            [VM_CPU.name],
        ).fetchall()
        for index, entity in enumerate(ODD_ENTITIES):
            found = con.execute(
                "SELECT value FROM metric_points WHERE entity = ?", [entity]
            ).fetchall()
            assert found == [(float(index),)]
    assert stored == [(entity, value) for entity, _, value in expected]


def test_unknown_extra_metric_stores_empty_day(
    client: OpenTSDBClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = parse_extra_metric("vscope.vm.not.stored:MB")

    with caplog.at_level(logging.INFO, logger="vscope_pipeline.collect"):
        (report,) = collect_day([spec], DAY, TARGETS, lambda _: client, tmp_path)

    assert _stored(tmp_path, spec.name) == []
    assert report.no_such_name == 1
    assert report.rows == 0
    assert _collect_lines(caplog) == [
        (
            logging.WARNING,
            "2024-05-01 vscope.vm.not.stored: 0 rows from 0 series; dropped or odd values: "
            "none; 1 datacenter(s) where the server knows no such metric or datacenter",
        )
    ]


def test_reset_mid_body_is_retried(
    server: OpenTsdbServer, client: OpenTSDBClient, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    collect_day([VM_CPU], DAY, TARGETS, lambda _: client, whole)
    server.faults.cut_next(2)

    (report,) = collect_day([VM_CPU], DAY, TARGETS, lambda _: client, tmp_path / "cut")

    assert server.faults.pending_cuts() == 0
    assert report.retries == 2
    assert report.requests == 3
    assert report.rows == 6 * 288
    assert _stored(tmp_path / "cut") == _stored(whole)


def test_reset_on_every_attempt_fails(
    server: OpenTsdbServer, client: OpenTSDBClient, tmp_path: Path
) -> None:
    server.faults.cut_next(3)

    with pytest.raises(OpenTSDBConnectionError) as raised:
        collect_day([VM_CPU], DAY, TARGETS, lambda _: client, tmp_path)

    message = str(raised.value)
    assert message.startswith(
        f"could not reach OpenTSDB: POST {server.url}/api/query for metric {VM_CPU.name}, "
        f"datacenter {DC1}, from 2024-05-01T00:00:00.000Z to 2024-05-01T23:59:59.999Z "
        "failed: "
    )
    assert message.endswith("gave up after 3 attempts. Check the endpoint URL and the network")
    assert not metric_partition_dir(tmp_path, VM_CPU.name, DAY).exists()
