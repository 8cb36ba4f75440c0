"""History tables built from every daily inventory snapshot."""

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.layout import inventory_partition_dir
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.ovh.schemas import INVENTORY_SCHEMAS
from vscope_pipeline.warehouse.build import WarehouseBuildError, build_warehouse
from vscope_pipeline.warehouse.history import create_history_tables, snapshot_files

SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
D1 = dt.date(2026, 11, 16)
D2 = dt.date(2026, 11, 17)
D3 = dt.date(2026, 11, 18)
D4 = dt.date(2026, 11, 19)
D5 = dt.date(2026, 11, 20)
# No kind has a snapshot on D4: that day must neither split a version nor delete an entity.
SNAPSHOT_DAYS = (D1, D2, D3, D5)

VM_COLUMNS = (
    "vm_id, name, host_name, power_state, memory_max, cpu_num, datacenter_label, "
    "valid_from, valid_to, deleted_on"
)


def _placeholder(field: pa.Field) -> object:
    # The Parquet writer rejects NULL in a non-nullable column, so untracked required columns
    # get a fixed value of their type.
    if pa.types.is_struct(field.type):
        return {"unit": "GB", "value": 0}
    if pa.types.is_timestamp(field.type):
        return dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    if pa.types.is_boolean(field.type):
        return False
    if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
        return 0
    return ""


def _row(kind: str, **values: object) -> dict:
    """Return a row with every column of the kind's schema, NULL where optional and not given."""
    schema = INVENTORY_SCHEMAS[kind]
    row = {field.name: None if field.nullable else _placeholder(field) for field in schema}
    row["service_name"] = SERVICE
    row.update(values)
    return row


def _write(data_dir: Path, kind: str, day: dt.date, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=INVENTORY_SCHEMAS[kind])
    write_partition(table, inventory_partition_dir(data_dir, kind, day))


def _vm(vm_id: int, name: str, day: dt.date, **changes: object) -> dict:
    values: dict[str, object] = {
        "datacenter_id": 1,
        "vm_id": vm_id,
        "mo_ref": f"vm-{vm_id}",
        "name": name,
        "power_state": "poweredOn",
        "host_name": "host-1.example",
        "cluster_name": "cluster-a",
        "cpu_num": 2,
        "memory_max": 4096,
        # A live statistic that differs on every snapshot and must not start a version.
        "cpu_used": day.day * 10,
        "datacenter_label": DC1,
    }
    values.update(changes)
    return _row("vms", **values)


def _vms_on(day: dt.date) -> list[dict]:
    rows = [
        _vm(101, "web-01", day, host_name="host-1.example" if day < D2 else "host-2.example"),
        _vm(102, "db-01", day, memory_max=4096 if day < D3 else 8192),
        # Powered off on D4, first seen off in the D5 snapshot.
        _vm(103, "batch-01", day, power_state="poweredOn" if day < D4 else "poweredOff"),
        _vm(105, "steady-01", day),
    ]
    if day <= D2:
        rows.append(_vm(104, "tmp-01", day))
    if day != D2:
        rows.append(_vm(106, "flaky-01", day))
    return rows


def _host(host_id: int, name: str, in_maintenance: bool) -> dict:
    return _row(
        "hosts",
        datacenter_id=1,
        host_id=host_id,
        name=name,
        state="delivered",
        connection_state="connected",
        in_maintenance=in_maintenance,
        cluster_name="cluster-a",
        profile="2018v1",
        cpu_num=24,
        ram={"unit": "GB", "value": 384},
        uptime=1000,
        datacenter_label=DC1,
    )


def _filer(filer_id: int, datacenter_id: int | None, size_gb: int) -> dict:
    return _row(
        "filers",
        datacenter_id=datacenter_id,
        filer_id=filer_id,
        name=f"pcc-00{filer_id}",
        profile="3t",
        size={"unit": "GB", "value": size_gb},
        state="delivered",
        connection_state="connected",
        is_global=datacenter_id is None,
        datacenter_label=None if datacenter_id is None else DC1,
    )


def _write_fleet(data_dir: Path) -> None:
    for day in SNAPSHOT_DAYS:
        _write(data_dir, "vms", day, _vms_on(day))
        _write(
            data_dir,
            "hosts",
            day,
            [_host(11, "host-1.example", day >= D3), _host(12, "host-2.example", False)],
        )
        _write(
            data_dir,
            "filers",
            day,
            [_filer(21, 1, 2048 if day < D2 else 4096), _filer(21, None, 1024)],
        )


@pytest.fixture
def history(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    _write_fleet(tmp_path)
    con = duckdb.connect()
    assert create_history_tables(con, tmp_path) == ["vm_history", "host_history", "filer_history"]
    return con


def _vm_rows(con: duckdb.DuckDBPyConnection, vm_id: int) -> list[tuple]:
    sql = f"SELECT {VM_COLUMNS} FROM vm_history WHERE vm_id = ? ORDER BY valid_from"
    return con.execute(sql, [vm_id]).fetchall()


def test_vm_moved_host(history):
    assert _vm_rows(history, 101) == [
        (101, "web-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, D2, None),
        (101, "web-01", "host-2.example", "poweredOn", 4096, 2, DC1, D2, None, None),
    ]


def test_vm_resized(history):
    assert _vm_rows(history, 102) == [
        (102, "db-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, D3, None),
        (102, "db-01", "host-1.example", "poweredOn", 8192, 2, DC1, D3, None, None),
    ]


def test_vm_powered_off_after_gap(history):
    assert _vm_rows(history, 103) == [
        (103, "batch-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, D5, None),
        (103, "batch-01", "host-1.example", "poweredOff", 4096, 2, DC1, D5, None, None),
    ]


def test_vm_deleted_keeps_history(history):
    assert _vm_rows(history, 104) == [
        (104, "tmp-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, D3, D3),
    ]


def test_vm_unchanged_single_version(history):
    assert _vm_rows(history, 105) == [
        (105, "steady-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, None, None),
    ]


def test_vm_absent_then_back(history):
    assert _vm_rows(history, 106) == [
        (106, "flaky-01", "host-1.example", "poweredOn", 4096, 2, DC1, D1, D2, None),
        (106, "flaky-01", "host-1.example", "poweredOn", 4096, 2, DC1, D3, None, None),
    ]


def test_vm_history_row_order(history):
    rows = history.execute("SELECT vm_id, valid_from FROM vm_history").fetchall()
    assert rows == [
        (101, D1),
        (101, D2),
        (102, D1),
        (102, D3),
        (103, D1),
        (103, D5),
        (104, D1),
        (105, D1),
        (106, D1),
        (106, D3),
    ]


def test_host_enters_maintenance(history):
    rows = history.execute(
        "SELECT host_id, name, in_maintenance, state, ram, valid_from, valid_to, deleted_on "
        "FROM host_history ORDER BY host_id, valid_from"
    ).fetchall()
    ram = {"unit": "GB", "value": 384}
    assert rows == [
        (11, "host-1.example", False, "delivered", ram, D1, D3, None),
        (11, "host-1.example", True, "delivered", ram, D3, None, None),
        (12, "host-2.example", False, "delivered", ram, D1, None, None),
    ]


def test_filer_resized(history):
    rows = history.execute(
        "SELECT datacenter_id, filer_id, datacenter_label, size, valid_from, valid_to, "
        "deleted_on FROM filer_history ORDER BY datacenter_id NULLS LAST, valid_from"
    ).fetchall()
    assert rows == [
        (1, 21, DC1, {"unit": "GB", "value": 2048}, D1, D2, None),
        (1, 21, DC1, {"unit": "GB", "value": 4096}, D2, None, None),
        (None, 21, None, {"unit": "GB", "value": 1024}, D1, None, None),
    ]


def test_history_column_types(history):
    types = history.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE table_name = 'vm_history' AND column_name IN "
        "('vm_id', 'memory_max', 'valid_from', 'valid_to', 'deleted_on') ORDER BY column_index"
    ).fetchall()
    assert types == [
        ("vm_id", "BIGINT"),
        ("memory_max", "BIGINT"),
        ("valid_from", "DATE"),
        ("valid_to", "DATE"),
        ("deleted_on", "DATE"),
    ]


def test_snapshot_files_skip_invalid_days(tmp_path):
    _write(tmp_path, "hosts", D1, [_host(11, "host-1.example", False)])
    _write(tmp_path, "hosts", D2, [_host(11, "host-1.example", False)])
    (tmp_path / "inventory" / "kind=hosts" / "day=2026-13-01").mkdir()
    (tmp_path / "inventory" / "kind=hosts" / "day=2026-13-01" / "data.parquet").write_bytes(b"")
    (tmp_path / "inventory" / "kind=hosts" / "day=latest").mkdir()

    assert snapshot_files(tmp_path, "hosts") == [
        str(inventory_partition_dir(tmp_path, "hosts", day) / "data.parquet") for day in (D1, D2)
    ]
    assert snapshot_files(tmp_path, "vms") == []


def test_missing_column_becomes_null(tmp_path):
    # A snapshot written before `folder_name` existed still loads, with NULL in that column.
    old = pa.table({"service_name": [SERVICE], "vm_id": [7], "name": ["old-vm"]})
    write_partition(old, inventory_partition_dir(tmp_path, "vms", D1))
    _write(tmp_path, "vms", D2, [_row("vms", vm_id=7, name="old-vm", folder_name="prod")])
    con = duckdb.connect()

    assert create_history_tables(con, tmp_path) == ["vm_history"]
    rows = con.execute(
        "SELECT vm_id, name, folder_name, valid_from, valid_to FROM vm_history"
    ).fetchall()
    assert rows == [(7, "old-vm", None, D1, D2), (7, "old-vm", "prod", D2, None)]


def test_warehouse_exposes_history(tmp_path):
    _write_fleet(tmp_path)
    summary = build_warehouse(tmp_path, BUILTIN_METRICS)

    assert summary.row_counts["vm_history"] == 10
    assert summary.row_counts["host_history"] == 3
    assert summary.row_counts["filer_history"] == 3
    with duckdb.connect(str(summary.path), read_only=True) as con:
        rows = con.execute(
            "SELECT vm_id, valid_from, valid_to, deleted_on FROM vm_history WHERE vm_id = 104"
        ).fetchall()
    assert rows == [(104, D1, D3, D3)]


def test_unreadable_snapshot_fails_build(tmp_path):
    _write_fleet(tmp_path)
    corrupt = inventory_partition_dir(tmp_path, "hosts", D2) / "data.parquet"
    corrupt.write_bytes(b"not parquet")

    with pytest.raises(WarehouseBuildError) as caught:
        build_warehouse(tmp_path, BUILTIN_METRICS)
    message = str(caught.value)
    assert message.startswith(
        f"failed to read the inventory snapshots under {tmp_path / 'inventory'} for the "
        "history tables: "
    )
    assert str(corrupt) in message
    assert message.endswith("Re-materialize the snapshot day that it names.")
    assert not (tmp_path / "vscope.duckdb").exists()
