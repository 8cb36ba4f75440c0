"""The DuckDB build: objects and types, latest inventory snapshot, atomic publication."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, build_catalog, parse_extra_metric
from vscope_pipeline.lake.layout import (
    INVENTORY_KINDS,
    inventory_partition_dir,
    metric_partition_dir,
)
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import WarehouseBuildError, build_warehouse

SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
DAY1 = dt.date(2026, 11, 18)
DAY2 = dt.date(2026, 11, 19)
CPU = "vscope.vm.cpu.usage.perc"
NET_TX = "vscope.host.net.tx"

METRIC_POINTS_TYPES = [
    ("metric", "VARCHAR"),
    ("entity_kind", "VARCHAR"),
    ("service_name", "VARCHAR"),
    ("datacenter", "VARCHAR"),
    ("entity", "VARCHAR"),
    ("nic", "VARCHAR"),
    ("ts", "TIMESTAMP WITH TIME ZONE"),
    ("value", "DOUBLE"),
    ("day", "DATE"),
]

# Keeps a read-only connection open and runs one query per line read from stdin, the way a BI
# tool keeps its connection open while the pipeline rebuilds the file.
READER_SCRIPT = """
import sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for line in sys.stdin:
    print(con.execute(line).fetchall(), flush=True)
"""


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


def _write_metric(data_dir: Path, metric: str, day: dt.date, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)
    write_partition(table, metric_partition_dir(data_dir, metric, day))


def _vm_point(entity: str, ts: dt.datetime, value: float) -> dict:
    return {
        "entity_kind": "vm",
        "service_name": SERVICE,
        "datacenter": DC1,
        "entity": entity,
        "nic": None,
        "ts": ts,
        "value": value,
    }


def _write_inventory(data_dir: Path, kind: str, day: dt.date, rows: list[dict]) -> None:
    write_partition(pa.Table.from_pylist(rows), inventory_partition_dir(data_dir, kind, day))


def _datacenter(datacenter_id: int, name: str) -> dict:
    return {
        "service_name": SERVICE,
        "datacenter_id": datacenter_id,
        "name": name,
        "datacenter_label": f"{SERVICE}_datacenter{datacenter_id}",
    }


def _query(database: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _write_sample_metrics(data_dir: Path) -> None:
    _write_metric(
        data_dir,
        CPU,
        DAY1,
        [_vm_point("vm-101", _at(DAY1, 0), 12.5), _vm_point("vm-102", _at(DAY1, 23, 59), 80.0)],
    )
    _write_metric(data_dir, CPU, DAY2, [_vm_point("vm-101", _at(DAY2, 6), 14.0)])
    _write_metric(
        data_dir,
        NET_TX,
        DAY2,
        [
            {
                "entity_kind": "host",
                "service_name": SERVICE,
                "datacenter": DC1,
                "entity": "host-1.example",
                "nic": "vmnic0",
                "ts": _at(DAY2, 12, 30),
                "value": 2048.0,
            }
        ],
    )


ROLLUP_VIEW_TYPES = [
    ("metric", "VARCHAR"),
    ("entity_kind", "VARCHAR"),
    ("service_name", "VARCHAR"),
    ("datacenter", "VARCHAR"),
    ("entity", "VARCHAR"),
    ("nic", "VARCHAR"),
    ("bucket", "TIMESTAMP WITH TIME ZONE"),
    ("samples", "BIGINT"),
    ("avg", "DOUBLE"),
    ("min", "DOUBLE"),
    ("max", "DOUBLE"),
    ("p95", "DOUBLE"),
    ("day", "DATE"),
]


def test_empty_data_dir_builds_typed_view(tmp_path):
    data_dir = tmp_path / "data"
    summary = build_warehouse(data_dir, BUILTIN_METRICS)

    database = data_dir / "vscope.duckdb"
    assert summary.path == database
    assert summary.row_counts == {"metric_points": 0, "metric_catalog": 20}
    assert summary.inventory_days == dict.fromkeys(INVENTORY_KINDS)
    assert sorted(path.name for path in data_dir.iterdir()) == ["vscope.duckdb"]
    with duckdb.connect(str(database), read_only=True) as con:
        assert [row[:2] for row in con.execute("DESCRIBE metric_points").fetchall()] == (
            METRIC_POINTS_TYPES
        )
        assert con.execute("SELECT count(*) FROM metric_points").fetchall() == [(0,)]
        tables = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        assert tables == [("metric_catalog",)]
        views = con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall()
        assert views == [("metric_daily",), ("metric_hourly",), ("metric_points",)]
        for view in ("metric_hourly", "metric_daily"):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
            described = [row[:2] for row in con.execute(f"DESCRIBE {view}").fetchall()]
            assert described == ROLLUP_VIEW_TYPES


def test_catalog_rows_and_label_keys(tmp_path):
    build_warehouse(tmp_path, BUILTIN_METRICS)
    database = tmp_path / "vscope.duckdb"

    assert _query(database, "SELECT count(*), count(DISTINCT metric) FROM metric_catalog") == [
        (20, 20)
    ]
    assert _query(database, "SELECT typeof(label_keys) FROM metric_catalog LIMIT 1") == [
        ("VARCHAR[]",)
    ]
    rows = _query(
        database,
        """
        SELECT metric, entity_kind, unit, label_keys, min_value, max_value, documented
        FROM metric_catalog WHERE metric IN (?, ?, ?) ORDER BY metric
        """,
        (NET_TX, CPU, "vscope.filer.datastore.diskspace.used"),
    )
    assert rows == [
        (
            "vscope.filer.datastore.diskspace.used",
            "filer",
            "kB",
            ["datacenter", "datastore"],
            0.0,
            None,
            True,
        ),
        (NET_TX, "host", "KB/s", ["datacenter", "host", "nicname"], 0.0, None, True),
        (CPU, "vm", "%", ["datacenter", "vm"], 0.0, 100.0, True),
    ]


def test_catalog_includes_extra_metric(tmp_path):
    catalog = build_catalog((parse_extra_metric("vscope.vm.mem.tps:MB"),))
    summary = build_warehouse(tmp_path, catalog)

    assert summary.row_counts["metric_catalog"] == 21
    rows = _query(
        tmp_path / "vscope.duckdb",
        "SELECT entity_kind, unit, label_keys, min_value, documented FROM metric_catalog "
        "WHERE metric = 'vscope.vm.mem.tps'",
    )
    assert rows == [("vm", "MB", ["datacenter", "vm"], None, False)]


def test_metric_points_read_partitions(tmp_path):
    _write_sample_metrics(tmp_path)
    summary = build_warehouse(tmp_path, BUILTIN_METRICS)

    assert summary.row_counts == {"metric_points": 4, "metric_catalog": 20}
    database = tmp_path / "vscope.duckdb"
    rows = _query(database, "SELECT * FROM metric_points ORDER BY metric, day, entity")
    assert rows == [
        (NET_TX, "host", SERVICE, DC1, "host-1.example", "vmnic0", _at(DAY2, 12, 30), 2048.0, DAY2),
        (CPU, "vm", SERVICE, DC1, "vm-101", None, _at(DAY1, 0), 12.5, DAY1),
        (CPU, "vm", SERVICE, DC1, "vm-102", None, _at(DAY1, 23, 59), 80.0, DAY1),
        (CPU, "vm", SERVICE, DC1, "vm-101", None, _at(DAY2, 6), 14.0, DAY2),
    ]
    with duckdb.connect(str(database), read_only=True) as con:
        assert [row[:2] for row in con.execute("DESCRIBE metric_points").fetchall()] == (
            METRIC_POINTS_TYPES
        )
        types = con.execute(
            "SELECT DISTINCT typeof(ts), typeof(value), typeof(day), typeof(metric) "
            "FROM metric_points"
        ).fetchall()
        assert types == [("TIMESTAMP WITH TIME ZONE", "DOUBLE", "DATE", "VARCHAR")]


def test_metric_points_filter_on_day(tmp_path):
    _write_sample_metrics(tmp_path)
    build_warehouse(tmp_path, BUILTIN_METRICS)

    rows = _query(
        tmp_path / "vscope.duckdb",
        "SELECT metric, count(*) FROM metric_points WHERE day = DATE '2026-11-19' "
        "GROUP BY metric ORDER BY metric",
    )
    assert rows == [(NET_TX, 1), (CPU, 1)]


def test_new_partition_visible_without_rebuild(tmp_path):
    _write_sample_metrics(tmp_path)
    build_warehouse(tmp_path, BUILTIN_METRICS)
    day3 = DAY2 + dt.timedelta(days=1)
    _write_metric(tmp_path, CPU, day3, [_vm_point("vm-103", _at(day3, 1), 1.0)])

    rows = _query(
        tmp_path / "vscope.duckdb",
        "SELECT entity, value FROM metric_points WHERE day = DATE '2026-11-20'",
    )
    assert rows == [("vm-103", 1.0)]


def test_view_ignores_temporary_files(tmp_path):
    _write_sample_metrics(tmp_path)
    folder = metric_partition_dir(tmp_path, CPU, DAY2)
    (folder / ".data.parquet.0123abcd.tmp").write_bytes(b"half-written")
    build_warehouse(tmp_path, BUILTIN_METRICS)

    assert _query(tmp_path / "vscope.duckdb", "SELECT count(*) FROM metric_points") == [(4,)]


def test_view_path_is_absolute(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    _write_sample_metrics(data_dir)
    build_warehouse(data_dir, BUILTIN_METRICS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert _query(data_dir / "vscope.duckdb", "SELECT count(*) FROM metric_points") == [(4,)]


def test_inventory_latest_day_wins(tmp_path):
    _write_inventory(
        tmp_path, "datacenters", DAY1, [_datacenter(1, "old-1"), _datacenter(2, "old-2")]
    )
    _write_inventory(tmp_path, "datacenters", DAY2, [_datacenter(1, "new-1")])
    _write_inventory(
        tmp_path,
        "vms",
        DAY1,
        [
            {
                "service_name": SERVICE,
                "datacenter_id": 1,
                "vm_id": 101,
                "mo_ref": "vm-101",
                "name": "web-01",
                "memory_max": 4096,
                "datacenter_label": DC1,
            }
        ],
    )
    summary = build_warehouse(tmp_path, BUILTIN_METRICS)

    assert summary.inventory_days == {
        "datacenters": "2026-11-19",
        "hosts": None,
        "vms": "2026-11-18",
        "filers": None,
    }
    assert summary.row_counts == {
        "metric_points": 0,
        "metric_catalog": 20,
        "datacenters": 1,
        "vms": 1,
        "vm_history": 1,
    }
    database = tmp_path / "vscope.duckdb"
    assert _query(database, "SELECT datacenter_id, name, datacenter_label FROM datacenters") == [
        (1, "new-1", DC1)
    ]
    assert _query(database, "SELECT vm_id, mo_ref, name, memory_max FROM vms") == [
        (101, "vm-101", "web-01", 4096)
    ]
    tables = _query(database, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
    assert tables == [("datacenters",), ("metric_catalog",), ("vm_history",), ("vms",)]


def test_inventory_nested_columns_kept(tmp_path):
    _write_inventory(
        tmp_path,
        "filers",
        DAY2,
        [
            {
                "service_name": SERVICE,
                "datacenter_id": None,
                "filer_id": 7,
                "name": "pcc-global-ds",
                "size": {"unit": "GB", "value": 3072},
                "is_global": True,
                "datacenter_label": None,
            }
        ],
    )
    build_warehouse(tmp_path, BUILTIN_METRICS)

    rows = _query(
        tmp_path / "vscope.duckdb",
        "SELECT typeof(size), size.unit, size.value, datacenter_id FROM filers",
    )
    assert rows == [('STRUCT(unit VARCHAR, "value" BIGINT)', "GB", 3072, None)]


def test_failed_build_keeps_previous_database(tmp_path):
    _write_inventory(tmp_path, "datacenters", DAY1, [_datacenter(1, "dc-a")])
    build_warehouse(tmp_path, BUILTIN_METRICS)
    database = tmp_path / "vscope.duckdb"
    before = database.read_bytes()
    corrupt = inventory_partition_dir(tmp_path, "datacenters", DAY2) / "data.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a parquet file")

    with pytest.raises(WarehouseBuildError) as raised:
        build_warehouse(tmp_path, BUILTIN_METRICS)

    assert str(raised.value) == (
        f"failed to read the datacenters snapshot {corrupt}: Invalid Input Error: No magic bytes "
        f"found at end of file '{corrupt}'. Re-materialize the inventory assets to rewrite it."
    )
    assert isinstance(raised.value.__cause__, duckdb.Error)
    assert database.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory", "vscope.duckdb"]
    assert _query(database, "SELECT name FROM datacenters") == [("dc-a",)]


def test_corrupt_metric_partition_fails_build(tmp_path):
    _write_sample_metrics(tmp_path)
    build_warehouse(tmp_path, BUILTIN_METRICS)
    database = tmp_path / "vscope.duckdb"
    before = database.read_bytes()
    # The last folder in name order, so that creating the view, which reads the first file
    # only, succeeds and the row count is what fails.
    corrupt = metric_partition_dir(tmp_path, CPU, DAY2 + dt.timedelta(days=1)) / "data.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a parquet file")

    with pytest.raises(WarehouseBuildError) as raised:
        build_warehouse(tmp_path, BUILTIN_METRICS)

    assert str(raised.value) == (
        f"failed to read the metric partitions under {tmp_path / 'metrics'}: Invalid Input Error: "
        f"No magic bytes found at end of file '{corrupt}'. "
        "Re-materialize the metric partition that it names."
    )
    assert database.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics", "vscope.duckdb"]


def test_open_reader_keeps_old_database(tmp_path):
    _write_inventory(tmp_path, "datacenters", DAY1, [_datacenter(1, "before")])
    build_warehouse(tmp_path, BUILTIN_METRICS)
    database = tmp_path / "vscope.duckdb"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None
    assert reader.stdout is not None
    query = "SELECT name FROM datacenters\n"
    try:
        reader.stdin.write(query)
        reader.stdin.flush()
        assert reader.stdout.readline() == "[('before',)]\n"

        _write_inventory(tmp_path, "datacenters", DAY2, [_datacenter(1, "after")])
        summary = build_warehouse(tmp_path, BUILTIN_METRICS)

        assert summary.inventory_days["datacenters"] == "2026-11-19"
        reader.stdin.write(query)
        reader.stdin.flush()
        assert reader.stdout.readline() == "[('before',)]\n"
        assert _query(database, query) == [("after",)]
    finally:
        reader.stdin.close()
        reader.wait(timeout=10)
    assert reader.returncode == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory", "vscope.duckdb"]
