"""SQL metacharacters in the data folder path and in inventory names stay plain text.

The warehouse SQL puts lake paths into string literals, because DuckDB takes no bound
parameter in CREATE VIEW, and reads names only as column values. These tests write a lake
whose folder path and whose service, datacenter, VM, host and datastore names contain `'`,
`"`, `;`, `--` and non-ASCII characters, then check that the warehouse build, the views, the
quality figures and the unmatched-series check return those strings unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, datacenter_label
from vscope_pipeline.defs.warehouse_assets import find_unmatched_series
from vscope_pipeline.lake.layout import (
    ROLLUP_GRAINS,
    inventory_partition_dir,
    metric_partition_dir,
)
from vscope_pipeline.lake.rollup_store import write_rollup_day
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.ovh.schemas import INVENTORY_SCHEMAS
from vscope_pipeline.quality import measure_days
from vscope_pipeline.rollups import rollup_table
from vscope_pipeline.settings import load_data_dir
from vscope_pipeline.warehouse.build import build_warehouse

DAY = dt.date(2026, 11, 18)
SNAPSHOT_AT = dt.datetime(2026, 11, 18, 6, 0, tzinfo=dt.UTC)
# Every quoting hazard at once: both quote kinds, a statement end, a comment and non-ASCII.
HAZARD = """'q' "dq"; DROP TABLE vms; -- é名前🙂"""
DATA_FOLDER = f"lake {HAZARD}"
SERVICE = f"pcc-{HAZARD}"
DATACENTER_ID = 1201
DATACENTER = datacenter_label(SERVICE, DATACENTER_ID)
VM_REF = f"vm-{HAZARD}"
VM_NAME = f"web {HAZARD}"
HOST = f"esx {HAZARD}"
FILER = f"ds {HAZARD}"
# A VM series that no inventory entity matches, for the unmatched-series check.
STRAY_VM = f"vm-stray {HAZARD}"

VM_METRIC = "vscope.vm.cpu.usage.perc"
HOST_METRIC = "vscope.host.cpu.usage.perc"
FILER_METRIC = "vscope.filer.datastore.diskspace.used"
TABLES = {
    "datacenters",
    "filer_history",
    "filers",
    "host_history",
    "hosts",
    "metric_catalog",
    "vm_history",
    "vms",
}
VIEWS = {"filer_metrics", "host_metrics", "metric_daily", "metric_hourly", "metric_points"}
VIEWS |= {"vm_metrics"}


def _placeholder(kind: pa.DataType) -> Any:
    """Return a valid value of `kind` for a required column that the test does not look at."""
    if pa.types.is_struct(kind):
        return {child.name: _placeholder(child.type) for child in kind}
    if pa.types.is_list(kind):
        return []
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return 0
    if pa.types.is_timestamp(kind):
        return SNAPSHOT_AT
    return "n/a"


def _inventory(kind: str, rows: list[Mapping[str, Any]]) -> pa.Table:
    schema = INVENTORY_SCHEMAS[kind]
    common = {"service_name": SERVICE, "snapshot_at": SNAPSHOT_AT}
    full_rows = []
    for row in rows:
        given = {**common, **row}
        full_rows.append(
            {
                field.name: given.get(
                    field.name, None if field.nullable else _placeholder(field.type)
                )
                for field in schema
            }
        )
    return pa.Table.from_pylist(full_rows, schema=schema)


def _points(kind: str, entities: list[str]) -> pa.Table:
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    rows = [
        {
            "entity_kind": kind,
            "service_name": SERVICE,
            "datacenter": DATACENTER,
            "entity": entity,
            "nic": None,
            "ts": start + dt.timedelta(minutes=minute),
            "value": float(index * 10 + minute),
        }
        for index, entity in enumerate(entities)
        for minute in range(3)
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A lake under a folder named with HAZARD, holding one snapshot and one day of points."""
    folder = load_data_dir({"VSCOPE_DATA_DIR": str(tmp_path / DATA_FOLDER)})
    inventory = {
        "datacenters": [{"datacenter_id": DATACENTER_ID, "name": "datacenter1"}],
        "vms": [
            {
                "datacenter_id": DATACENTER_ID,
                "vm_id": 1001,
                "mo_ref": VM_REF,
                "name": VM_NAME,
                "power_state": "poweredOn",
                "host_name": HOST,
            }
        ],
        "hosts": [{"datacenter_id": DATACENTER_ID, "host_id": 2001, "name": HOST}],
        "filers": [
            {"datacenter_id": DATACENTER_ID, "filer_id": 3001, "name": FILER, "is_global": False}
        ],
    }
    for kind, rows in inventory.items():
        rows = [{**row, "datacenter_label": DATACENTER} for row in rows]
        write_partition(_inventory(kind, rows), inventory_partition_dir(folder, kind, DAY))
    metrics = {
        VM_METRIC: _points("vm", [VM_REF, STRAY_VM]),
        HOST_METRIC: _points("host", [HOST]),
        FILER_METRIC: _points("filer", [FILER]),
    }
    for metric, table in metrics.items():
        write_partition(table, metric_partition_dir(folder, metric, DAY))
        for grain in ROLLUP_GRAINS:
            rollup = rollup_table(table, grain)
            write_rollup_day(folder, grain, metric, DAY, rollup)
    return folder


def test_data_dir_path_is_accepted(tmp_path: Path) -> None:
    assert (
        load_data_dir({"VSCOPE_DATA_DIR": str(tmp_path / DATA_FOLDER)})
        == (tmp_path / DATA_FOLDER).resolve()
    )


def test_warehouse_objects_all_created(data_dir: Path) -> None:
    summary = build_warehouse(data_dir, BUILTIN_METRICS)

    with duckdb.connect(str(summary.path), read_only=True) as con:
        tables = {
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert tables == TABLES
    assert views >= VIEWS
    assert summary.row_counts == {
        "metric_points": 12,
        "metric_catalog": len(BUILTIN_METRICS),
        "datacenters": 1,
        "hosts": 1,
        "vms": 1,
        "filers": 1,
        "vm_history": 1,
        "host_history": 1,
        "filer_history": 1,
    }


def test_metric_points_keep_names(data_dir: Path) -> None:
    summary = build_warehouse(data_dir, BUILTIN_METRICS)

    with duckdb.connect(str(summary.path), read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT metric, service_name, datacenter, entity FROM metric_points "
            "ORDER BY metric, entity"
        ).fetchall()
        hourly = con.execute(
            "SELECT entity, samples FROM metric_hourly WHERE metric = ? ORDER BY entity",
            [VM_METRIC],
        ).fetchall()
        daily = con.execute(
            "SELECT datacenter, entity, max FROM metric_daily WHERE entity = ?", [HOST]
        ).fetchall()
    assert rows == sorted(
        [
            (FILER_METRIC, SERVICE, DATACENTER, FILER),
            (HOST_METRIC, SERVICE, DATACENTER, HOST),
            (VM_METRIC, SERVICE, DATACENTER, STRAY_VM),
            (VM_METRIC, SERVICE, DATACENTER, VM_REF),
        ]
    )
    assert hourly == sorted([(VM_REF, 3), (STRAY_VM, 3)])
    assert daily == [(DATACENTER, HOST, 2.0)]


def test_named_views_match_names(data_dir: Path) -> None:
    summary = build_warehouse(data_dir, BUILTIN_METRICS)

    with duckdb.connect(str(summary.path), read_only=True) as con:
        vms = con.execute(
            "SELECT DISTINCT service_name, datacenter, entity, vm_id, vm_name, host_name "
            "FROM vm_metrics ORDER BY entity"
        ).fetchall()
        hosts = con.execute(
            "SELECT DISTINCT entity, host_id, host_name FROM host_metrics"
        ).fetchall()
        filers = con.execute(
            "SELECT DISTINCT entity, filer_id, filer_name FROM filer_metrics"
        ).fetchall()
        datacenters = con.execute(
            "SELECT service_name, datacenter_label FROM datacenters"
        ).fetchall()
        history = con.execute("SELECT mo_ref, name FROM vm_history").fetchall()
    assert vms == [
        (SERVICE, DATACENTER, VM_REF, 1001, VM_NAME, HOST),
        (SERVICE, DATACENTER, STRAY_VM, None, None, None),
    ]
    assert hosts == [(HOST, 2001, HOST)]
    assert filers == [(FILER, 3001, FILER)]
    assert datacenters == [(SERVICE, DATACENTER)]
    assert history == [(VM_REF, VM_NAME)]


def test_unmatched_series_names_quoted(data_dir: Path) -> None:
    summary = build_warehouse(data_dir, BUILTIN_METRICS)

    assert find_unmatched_series(summary.path) == [f"{VM_METRIC} {DATACENTER}/{STRAY_VM}"]


def test_quality_figures_read_odd_path(data_dir: Path) -> None:
    catalog = [spec for spec in BUILTIN_METRICS if spec.name in (VM_METRIC, FILER_METRIC)]

    vm, filer = sorted(measure_days(data_dir, catalog, [DAY]), key=lambda q: q.metric != VM_METRIC)

    assert (vm.metric, vm.rows, vm.series, vm.snapshot_day) == (VM_METRIC, 6, 2, DAY.isoformat())
    assert vm.missing_entities == ()
    assert vm.unlisted_entities == (f"{DATACENTER}/{STRAY_VM}",)
    assert (filer.metric, filer.rows, filer.series) == (FILER_METRIC, 3, 1)
    assert filer.missing_entities == ()
    assert filer.unlisted_entities == ()
