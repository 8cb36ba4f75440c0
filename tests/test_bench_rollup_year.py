"""The rollup benchmark's generator, and the example queries' two forms on a multi-day lake."""

import datetime as dt
import re

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest

from bench.rollup_lake import LakeSpec, write_inventory, write_lake
from bench.rollup_series import generated_rollups, metric_series, raw_points
from bench.rollup_timing import time_examples
from bench.rollup_year import MAX_RAW_DAYS, query_rows, rollup_figures, run_rollup_bench
from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec
from vscope_pipeline.simulator.fleet import build_fleet
from vscope_pipeline.warehouse.build import build_warehouse
from vscope_pipeline.warehouse.examples import (
    EXAMPLES,
    FLEET_HOURLY_CPU,
    HOST_NIC_SATURATION,
    METRIC_COMPLETENESS,
    TOP_CPU_READY,
    VM_NETWORK_VOLUME,
)

VM_COUNT = 20
LAST_DAY = dt.date(2025, 6, 1)
SPEC = LakeSpec(VM_COUNT, LAST_DAY, rollup_days=5, raw_days=3)
SEED = 11


def _spec(name: str) -> MetricSpec:
    return next(spec for spec in BUILTIN_METRICS if spec.name == name)


@pytest.fixture(scope="module")
def fleet():
    return build_fleet(SPEC.anchor_day, vm_count=VM_COUNT)


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rollup-lake")
    write_lake(data_dir, SPEC, workers=1)
    write_inventory(data_dir, build_fleet(SPEC.anchor_day, vm_count=VM_COUNT), LAST_DAY)
    summary = build_warehouse(data_dir, BUILTIN_METRICS)
    with duckdb.connect(str(summary.path), read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        yield connection


def _rows(con, sql):
    cursor = con.execute(sql)
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_metric_series_counts(fleet):
    powered_on_vms = sum(vm.powered_on for vm in fleet.vms)
    filer_entries = sum(1 for entity in fleet.series_entities() if entity.kind == "filer")

    ready = metric_series(fleet, _spec("vscope.vm.cpu.ready"), SEED)
    nic = metric_series(fleet, _spec("vscope.host.net.rx"), SEED)
    used = metric_series(fleet, _spec("vscope.filer.datastore.diskspace.used"), SEED)

    assert ready.count == powered_on_vms
    assert nic.count == len(fleet.hosts) * 4
    assert used.count == filer_entries
    assert ready.keys.column("nic").null_count == ready.count
    assert nic.keys.column("nic").null_count == 0
    assert set(used.capacity_kb) == {float(filer.capacity_kb) for filer in fleet.filers}


def test_metric_series_sorted(fleet):
    series = metric_series(fleet, _spec("vscope.host.net.tx"), SEED)
    keys = [(row["datacenter"], row["entity"], row["nic"]) for row in series.keys.to_pylist()]

    assert keys == sorted(keys)


def test_generated_rollups_consistent(fleet):
    series = metric_series(fleet, _spec("vscope.vm.cpu.usage.perc"), SEED)

    hourly, daily = generated_rollups(series, LAST_DAY, SPEC.first_day, SEED)
    again, _ = generated_rollups(series, LAST_DAY, SPEC.first_day, SEED)

    assert hourly.equals(again)
    assert hourly.num_rows == series.count * 24
    assert daily.num_rows == series.count
    assert pc.all(pc.equal(hourly.column("samples"), 60)).as_py()
    assert pc.all(pc.equal(daily.column("samples"), 1440)).as_py()
    for table in (hourly, daily):
        low, avg = table.column("min").to_numpy(), table.column("avg").to_numpy()
        p95, high = table.column("p95").to_numpy(), table.column("max").to_numpy()
        assert np.all(low <= avg)
        assert np.all(avg <= p95)
        assert np.all(p95 <= high)
        assert np.all(high <= 100.0)
    midnight = dt.datetime.combine(LAST_DAY, dt.time(), dt.UTC)
    assert daily.column("bucket")[0].as_py() == midnight


def test_raw_points_one_per_minute(fleet):
    series = metric_series(fleet, _spec("vscope.vm.mem.usage.perc"), SEED)

    points = raw_points(series, LAST_DAY, SPEC.first_day, SEED)

    assert points.num_rows == series.count * 1440
    values = points.column("value").to_numpy()
    assert values.min() >= 0.0
    assert values.max() <= 100.0
    first = points.slice(0, 1440).column("ts").to_pylist()
    midnight = dt.datetime.combine(LAST_DAY, dt.time(), dt.UTC)
    assert first[0] == midnight
    assert first[-1] == midnight + dt.timedelta(minutes=1439)


def test_lake_rollups_match_raw_window(con):
    raw_points_count = con.execute(
        "SELECT count(*) FROM metric_points WHERE metric = 'vscope.vm.cpu.ready'"
    ).fetchone()[0]
    window_samples = con.execute(
        "SELECT sum(samples) FROM metric_daily WHERE metric = 'vscope.vm.cpu.ready' AND day >= ?",
        [SPEC.first_raw_day],
    ).fetchone()[0]
    days = con.execute("SELECT count(DISTINCT day) FROM metric_daily").fetchone()[0]
    raw_days = con.execute("SELECT count(DISTINCT day) FROM metric_points").fetchone()[0]

    assert window_samples == raw_points_count
    assert days == SPEC.rollup_days
    assert raw_days == SPEC.raw_days


@pytest.mark.parametrize(
    "example",
    [VM_NETWORK_VOLUME, FLEET_HOURLY_CPU, METRIC_COMPLETENESS],
    ids=lambda example: example.title,
)
def test_exact_examples_equal_over_window(con, example):
    rollup = _rows(con, example.sql_over(SPEC.raw_days))
    raw = _rows(con, example.raw_sql_over(SPEC.raw_days))

    assert rollup
    assert rollup == raw


def _highest_daily_p95(con, metric, group):
    """Return the documented approximation from raw points: the highest exact daily p95."""
    rows = con.execute(
        f"SELECT {group}, max(p95) FROM (SELECT {group}, day, quantile_cont(value, 0.95) AS p95 "
        "FROM metric_points WHERE metric = ? GROUP BY ALL) GROUP BY ALL",
        [metric],
    ).fetchall()
    return {tuple(row[:-1]): round(row[-1], 1) for row in rows}


def test_cpu_ready_p95_highest_daily(con):
    rollup = _rows(con, TOP_CPU_READY.sql_over(SPEC.raw_days))
    raw = _rows(con, TOP_CPU_READY.raw_sql_over(SPEC.raw_days))
    expected = _highest_daily_p95(con, "vscope.vm.cpu.ready", "entity")
    entity_of = dict(con.execute("SELECT name, mo_ref FROM vms").fetchall())

    assert len(rollup) == 10
    for rollup_row, raw_row in zip(rollup, raw, strict=True):
        for column in ("vm", "host", "vcpus", "avg_ready_ms", "max_ready_ms"):
            assert rollup_row[column] == raw_row[column]
        assert rollup_row["p95_ready_ms"] == expected[(entity_of[rollup_row["vm"]],)]
    # Over three days the highest daily p95 differs from the p95 of all the points.
    assert [row["p95_ready_ms"] for row in rollup] != [row["p95_ready_ms"] for row in raw]


def test_nic_saturation_p95_highest_daily(con):
    rollup = _rows(con, HOST_NIC_SATURATION.sql_over(SPEC.raw_days))
    raw = _rows(con, HOST_NIC_SATURATION.raw_sql_over(SPEC.raw_days))
    expected = {
        direction: _highest_daily_p95(con, f"vscope.host.net.{direction}", "entity, nic")
        for direction in ("rx", "tx")
    }

    assert len(rollup) == 10
    for rollup_row, raw_row in zip(rollup, raw, strict=True):
        for column in ("host", "nic", "direction", "avg_kb_per_s", "max_kb_per_s"):
            assert rollup_row[column] == raw_row[column]
        key = (rollup_row["host"], rollup_row["nic"])
        assert rollup_row["p95_kb_per_s"] == expected[rollup_row["direction"]][key]


def test_time_examples_every_form(con):
    database = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()[0]

    times = time_examples(database, EXAMPLES, SPEC.rollup_days, SPEC.raw_days, rounds=1)

    assert [entry.title for entry in times] == [example.title for example in EXAMPLES]
    for entry in times:
        assert entry.year_rollup > 0
        assert entry.window_rollup > 0
        assert entry.window_raw > 0
        assert entry.window_rows > 0
    assert [entry.reads_metrics for entry in times] == [True] * 9 + [False]


def test_run_rollup_bench_small():
    bench = run_rollup_bench(VM_COUNT, rollup_days=3, raw_days=1, rounds=1, workers=1)

    assert bench.lake.days == 3
    assert bench.lake.raw_days == 1
    assert bench.lake.daily_rows == 3 * bench.lake.hourly_rows // 72
    figures = rollup_figures(bench)
    assert [figure.name for figure in figures][:3] == [
        "rollup lake (written by the benchmark)",
        "rows written",
        "lake size and write time",
    ]
    columns, rows = query_rows(bench)
    assert columns[:5] == [
        "example",
        "rollups 3 d (s)",
        "rollups 1 d (s)",
        "raw 1 d (s)",
        "raw/rollups 1 d",
    ]
    assert len(rows) == len(EXAMPLES)
    assert rows[-1][4] == "inventory only"


def test_raw_window_too_long():
    message = (
        "raw window of 15 days is too long: expected at most 14, which bounds the disk and "
        "the time of the benchmark"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        run_rollup_bench(VM_COUNT, rollup_days=30, raw_days=MAX_RAW_DAYS + 1, rounds=1, workers=1)


def test_raw_window_longer_than_year():
    message = "raw window of 3 days is invalid: expected 1 to rollup_days (2)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LakeSpec(VM_COUNT, LAST_DAY, rollup_days=2, raw_days=3)
