"""The documented example queries, run on a warehouse the pipeline built from the simulator."""

import csv
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from vscope_pipeline.cli import main
from vscope_pipeline.warehouse.examples import (
    DATASTORE_DAYS_TO_FULL,
    EXAMPLES,
    FLEET_HOURLY_CPU,
    HOST_ALLOCATION,
    HOST_NIC_SATURATION,
    HOST_PRESSURE,
    METRIC_COMPLETENESS,
    TOP_CPU_READY,
    VM_DISK_LATENCY,
    VM_NETWORK_VOLUME,
    VM_RIGHT_SIZING,
)

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[2] / "docs" / "example-queries.md"
# Half of the last decimal kept by round(x, 1), plus float noise.
ROUNDED_1 = 0.05 + 1e-9

COLUMNS = {
    TOP_CPU_READY: ["vm", "host", "vcpus", "avg_ready_ms", "p95_ready_ms", "max_ready_ms"],
    HOST_NIC_SATURATION: [
        "host",
        "nic",
        "direction",
        "avg_kb_per_s",
        "p95_kb_per_s",
        "max_kb_per_s",
        "max_pct_of_link",
    ],
    DATASTORE_DAYS_TO_FULL: [
        "datastore",
        "size_gb",
        "used_gb",
        "used_pct",
        "growth_gb_per_day",
        "days_to_full",
    ],
    VM_RIGHT_SIZING: [
        "vm",
        "vcpus",
        "memory_mb",
        "p95_cpu_pct",
        "p95_mem_pct",
        "suggested_vcpus",
        "suggested_memory_mb",
    ],
    HOST_PRESSURE: [
        "host",
        "cluster",
        "vms",
        "vcpus",
        "cores",
        "vcpus_per_core",
        "avg_cpu_pct",
        "p95_cpu_pct",
        "avg_mem_pct",
        "p95_mem_pct",
    ],
    VM_DISK_LATENCY: [
        "vm",
        "host",
        "p95_read_ms",
        "p95_write_ms",
        "avg_read_iops",
        "avg_write_iops",
    ],
    VM_NETWORK_VOLUME: ["vm", "host", "rx_gb", "tx_gb", "total_gb"],
    FLEET_HOURLY_CPU: ["hour", "vms", "avg_cpu_pct", "max_cpu_pct"],
    METRIC_COMPLETENESS: [
        "metric",
        "series",
        "points",
        "min_points_per_series",
        "max_points_per_series",
        "first_hour",
        "last_hour",
    ],
    HOST_ALLOCATION: [
        "host",
        "cluster",
        "vms",
        "powered_on",
        "vcpus",
        "cores",
        "vm_memory_gb",
        "ram_gb",
        "memory_alloc_pct",
    ],
}


@pytest.fixture(scope="module")
def con(ingested):
    assert all(outcome.success for outcome in ingested.outcomes)
    database = ingested.data_dir / "vscope.duckdb"
    with duckdb.connect(str(database), read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        yield connection


def _run(con, example):
    return _run_sql(con, example.sql)


def _run_sql(con, sql):
    cursor = con.execute(sql)
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()], columns


def _scalar(con, sql, *params):
    return con.execute(sql, list(params)).fetchone()[0]


def _raw_values(con, metric, **labels):
    where = "".join(f" AND {name} = ?" for name in labels)
    rows = con.execute(
        f"SELECT value FROM metric_points WHERE metric = ?{where}", [metric, *labels.values()]
    ).fetchall()
    return np.array([row[0] for row in rows])


def test_ten_examples_documented():
    text = DOC.read_text(encoding="utf-8")

    assert len(EXAMPLES) == 10
    assert len({example.title for example in EXAMPLES}) == 10
    for example in EXAMPLES:
        assert f"## {example.title}" in text
        assert f"```sql\n{example.sql.strip()};\n```" in text
        assert f"```sql\n{example.raw_sql.strip()};\n```" in text


# One day is stored, so every window of one day or more covers the same points. The highest
# daily p95 is then the exact p95 of that day, so both forms must return the same rows.
SAME_ON_ONE_DAY = [example for example in EXAMPLES if example is not DATASTORE_DAYS_TO_FULL]


@pytest.mark.parametrize("example", SAME_ON_ONE_DAY, ids=lambda example: example.title)
def test_rollup_form_equals_raw_form(con, example):
    rollup_rows, rollup_columns = _run_sql(con, example.sql)
    raw_rows, raw_columns = _run_sql(con, example.raw_sql)

    assert rollup_columns == raw_columns
    assert rollup_rows
    assert rollup_rows == raw_rows


def test_rollup_views_cover_raw_points(con):
    raw_points = _scalar(con, "SELECT count(*) FROM metric_points")
    hourly_samples = _scalar(con, "SELECT sum(samples) FROM metric_hourly")
    daily_samples = _scalar(con, "SELECT sum(samples) FROM metric_daily")

    assert raw_points > 0
    assert hourly_samples == raw_points
    assert daily_samples == raw_points


def test_datastore_rollup_form_close_to_raw(con):
    rollup_rows, _ = _run(con, DATASTORE_DAYS_TO_FULL)
    raw_rows, _ = _run_sql(con, DATASTORE_DAYS_TO_FULL.raw_sql)

    # Two datastores close in days to full may swap places, so rows are matched by name.
    by_name = {row["datastore"]: row for row in raw_rows}
    assert sorted(by_name) == sorted(row["datastore"] for row in rollup_rows)
    for rollup in rollup_rows:
        raw = by_name[rollup["datastore"]]
        assert rollup["size_gb"] == raw["size_gb"]
        # The last hour's average against the last point. The simulator moves each point by up
        # to 0.2 % of the datastore's size, and both figures are rounded to 0.1 GB.
        assert rollup["used_gb"] == pytest.approx(raw["used_gb"], abs=0.002 * raw["size_gb"] + 0.1)
        assert rollup["growth_gb_per_day"] == pytest.approx(
            raw["growth_gb_per_day"], rel=0.05, abs=0.002
        )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.title)
def test_example_columns(con, example):
    rows, columns = _run(con, example)

    assert columns == COLUMNS[example]
    assert rows


def test_top_cpu_ready(con):
    rows, _ = _run(con, TOP_CPU_READY)

    assert len(rows) == 10
    averages = [row["avg_ready_ms"] for row in rows]
    assert averages == sorted(averages, reverse=True)
    for row in rows:
        assert 0 <= row["avg_ready_ms"] <= row["max_ready_ms"]
        assert row["p95_ready_ms"] <= row["max_ready_ms"]
        assert 1 <= row["vcpus"] <= 64
    # The busiest VM recomputed from its raw points.
    mo_ref, datacenter = con.execute(
        "SELECT mo_ref, datacenter_label FROM vms WHERE name = ?", [rows[0]["vm"]]
    ).fetchone()
    values = _raw_values(con, "vscope.vm.cpu.ready", entity=mo_ref, datacenter=datacenter)
    assert len(values) > 0
    assert rows[0]["avg_ready_ms"] == pytest.approx(values.mean(), abs=ROUNDED_1)
    assert rows[0]["max_ready_ms"] == pytest.approx(values.max(), abs=ROUNDED_1)
    # No other VM with an inventory entry has a higher average.
    best = _scalar(
        con,
        "SELECT max(average) FROM (SELECT avg(value) AS average FROM metric_points "
        "WHERE metric = 'vscope.vm.cpu.ready' AND entity IN (SELECT mo_ref FROM vms) "
        "GROUP BY datacenter, entity)",
    )
    assert rows[0]["avg_ready_ms"] == pytest.approx(best, abs=ROUNDED_1)


def test_host_nic_saturation(con):
    rows, _ = _run(con, HOST_NIC_SATURATION)

    assert len(rows) == 10
    percentages = [row["max_pct_of_link"] for row in rows]
    assert percentages == sorted(percentages, reverse=True)
    for row in rows:
        assert row["direction"] in {"rx", "tx"}
        assert row["nic"].startswith("vmnic")
        assert 0 <= row["avg_kb_per_s"] <= row["p95_kb_per_s"] <= row["max_kb_per_s"]
        expected_pct = 100 * row["max_kb_per_s"] / 1_250_000
        assert row["max_pct_of_link"] == pytest.approx(expected_pct, abs=0.001)
    top = rows[0]
    values = _raw_values(
        con, f"vscope.host.net.{top['direction']}", entity=top["host"], nic=top["nic"]
    )
    assert top["max_kb_per_s"] == pytest.approx(values.max(), abs=ROUNDED_1)
    assert top["avg_kb_per_s"] == pytest.approx(values.mean(), abs=ROUNDED_1)


def test_datastore_days_to_full(con):
    rows, _ = _run(con, DATASTORE_DAYS_TO_FULL)

    assert len(rows) == _scalar(con, "SELECT count(*) FROM filers")
    for row in rows:
        assert 0 < row["used_pct"] < 100
        assert row["used_gb"] == pytest.approx(
            row["used_pct"] * row["size_gb"] / 100, rel=0.002, abs=0.1
        )
        assert row["days_to_full"] is None or row["days_to_full"] > 0
        assert (row["days_to_full"] is None) == (row["growth_gb_per_day"] <= 0)
    full = [row["days_to_full"] for row in rows if row["days_to_full"] is not None]
    assert full == sorted(full)
    # The documented approximation, recomputed from each datastore's raw points: the average
    # of the last hour, and the least-squares slope of the hourly averages.
    for row in rows:
        points = con.execute(
            "SELECT epoch(ts), value FROM metric_points "
            "WHERE metric = 'vscope.filer.datastore.diskspace.used' AND entity = ?",
            [row["datastore"]],
        ).fetchall()
        seconds = np.array([point[0] for point in points])
        kilobytes = np.array([point[1] for point in points])
        hours = np.floor_divide(seconds, 3600) * 3600
        last_hour_kb = kilobytes[hours == hours.max()].mean()
        starts = np.unique(hours)
        averages = np.array([kilobytes[hours == start].mean() for start in starts])
        slope_kb_per_day = np.polyfit(starts, averages, 1)[0] * 86_400
        assert row["used_gb"] == pytest.approx(last_hour_kb / 1_048_576, abs=ROUNDED_1)
        assert row["growth_gb_per_day"] == pytest.approx(slope_kb_per_day / 1_048_576, abs=6e-4)


def test_vm_right_sizing(con):
    rows, _ = _run(con, VM_RIGHT_SIZING)

    powered_on = _scalar(con, "SELECT count(*) FROM vms WHERE power_state = 'poweredOn'")
    assert 0 < len(rows) <= powered_on
    for row in rows:
        assert row["suggested_vcpus"] < row["vcpus"] or (
            row["suggested_memory_mb"] < row["memory_mb"]
        )
        assert 1 <= row["suggested_vcpus"] <= row["vcpus"]
        assert row["suggested_memory_mb"] <= row["memory_mb"]
        assert row["suggested_memory_mb"] % 1024 == 0 or (
            row["suggested_memory_mb"] == row["memory_mb"]
        )
        assert 0 <= row["p95_cpu_pct"] <= 100
        assert 0 <= row["p95_mem_pct"] <= 100
    savings = [(row["vcpus"] - row["suggested_vcpus"]) for row in rows]
    assert savings == sorted(savings, reverse=True)


def test_host_pressure(con):
    rows, _ = _run(con, HOST_PRESSURE)

    assert len(rows) == _scalar(con, "SELECT count(*) FROM hosts")
    p95_cpu = [row["p95_cpu_pct"] for row in rows]
    assert p95_cpu == sorted(p95_cpu, reverse=True)
    for row in rows:
        assert 0 <= row["avg_cpu_pct"] <= row["p95_cpu_pct"] <= 100
        assert 0 <= row["avg_mem_pct"] <= row["p95_mem_pct"] <= 100
        assert row["vcpus_per_core"] == pytest.approx(row["vcpus"] / row["cores"], abs=0.005)


def test_vm_disk_latency(con):
    rows, _ = _run(con, VM_DISK_LATENCY)

    assert len(rows) == 10
    worst = [max(row["p95_read_ms"], row["p95_write_ms"]) for row in rows]
    assert worst == sorted(worst, reverse=True)
    for row in rows:
        assert row["p95_read_ms"] >= 0
        assert row["p95_write_ms"] >= 0
        assert row["avg_read_iops"] >= 0
        assert row["avg_write_iops"] >= 0


def test_vm_network_volume(con):
    rows, _ = _run(con, VM_NETWORK_VOLUME)

    assert len(rows) == 10
    totals = [row["total_gb"] for row in rows]
    assert totals == sorted(totals, reverse=True)
    for row in rows:
        assert row["total_gb"] == pytest.approx(row["rx_gb"] + row["tx_gb"])
        assert row["rx_gb"] >= 0
        assert row["tx_gb"] >= 0
    mo_ref, datacenter = con.execute(
        "SELECT mo_ref, datacenter_label FROM vms WHERE name = ?", [rows[0]["vm"]]
    ).fetchone()
    received = _raw_values(con, "vscope.vm.net.rx", entity=mo_ref, datacenter=datacenter)
    assert rows[0]["rx_gb"] == pytest.approx(received.mean() * 86_400 / 1e6, abs=0.005 + 1e-9)


def test_fleet_hourly_cpu(con, ingested):
    rows, _ = _run(con, FLEET_HOURLY_CPU)

    midnight = dt.datetime.combine(ingested.day, dt.time(), tzinfo=dt.UTC)
    assert [row["hour"] for row in rows] == [midnight + dt.timedelta(hours=h) for h in range(24)]
    reporting = _scalar(
        con,
        "SELECT count(DISTINCT (datacenter, entity)) FROM metric_points "
        "WHERE metric = 'vscope.vm.cpu.usage.perc'",
    )
    for row in rows:
        assert 0 < row["vms"] <= reporting
        assert 0 <= row["avg_cpu_pct"] <= row["max_cpu_pct"] <= 100
    usage = _raw_values(con, "vscope.vm.cpu.usage.perc")
    assert max(row["max_cpu_pct"] for row in rows) == pytest.approx(usage.max(), abs=ROUNDED_1)


def test_metric_completeness(con, ingested):
    rows, _ = _run(con, METRIC_COMPLETENESS)

    metrics = [row["metric"] for row in rows]
    assert metrics == sorted(_scalar(con, "SELECT list(DISTINCT metric) FROM metric_points"))
    assert "vscope.vm.mem.tps" in metrics
    assert sum(row["points"] for row in rows) == _scalar(con, "SELECT count(*) FROM metric_points")
    midnight = dt.datetime.combine(ingested.day, dt.time(), tzinfo=dt.UTC)
    for row in rows:
        assert 1 <= row["min_points_per_series"] <= row["max_points_per_series"]
        assert midnight <= row["first_hour"] <= row["last_hour"] < midnight + dt.timedelta(days=1)
        assert row["first_hour"].minute == 0
        assert row["last_hour"].minute == 0
    by_metric = {row["metric"]: row for row in rows}
    host_nic_series = _scalar(
        con,
        "SELECT count(DISTINCT (datacenter, entity, nic)) FROM metric_points "
        "WHERE metric = 'vscope.host.net.tx'",
    )
    assert by_metric["vscope.host.net.tx"]["series"] == host_nic_series
    assert by_metric["vscope.host.cpu.usage.perc"]["series"] == _scalar(
        con, "SELECT count(*) FROM hosts"
    )


def test_host_allocation(con):
    rows, _ = _run(con, HOST_ALLOCATION)

    assert len(rows) == _scalar(con, "SELECT count(*) FROM hosts")
    placed = _scalar(con, "SELECT count(*) FROM vms WHERE host_name IN (SELECT name FROM hosts)")
    assert sum(row["vms"] for row in rows) == placed
    allocation = [row["memory_alloc_pct"] for row in rows]
    assert allocation == sorted(allocation, reverse=True)
    for row in rows:
        assert 0 <= row["powered_on"] <= row["vms"]
        assert 0 <= row["memory_alloc_pct"] <= 400
        assert row["vcpus"] == _scalar(
            con, "SELECT coalesce(sum(cpu_num), 0) FROM vms WHERE host_name = ?", row["host"]
        )


@pytest.mark.parametrize("output_format", ["csv", "json", "markdown"])
def test_cli_formats_match_query(con, capsys, output_format):
    expected, columns = _run(con, HOST_ALLOCATION)

    assert main(["sql", HOST_ALLOCATION.sql, "--format", output_format]) == 0

    out = capsys.readouterr().out
    if output_format == "csv":
        records = list(csv.DictReader(io.StringIO(out, newline="")))
        assert [record["host"] for record in records] == [row["host"] for row in expected]
        assert [float(record["memory_alloc_pct"]) for record in records] == [
            row["memory_alloc_pct"] for row in expected
        ]
    elif output_format == "json":
        assert json.loads(out) == expected
    else:
        lines = out.splitlines()
        assert lines[0] == "| " + " | ".join(columns) + " |"
        assert len(lines) == 2 + len(expected)
        assert lines[2].startswith(f"| {expected[0]['host']} | ")
