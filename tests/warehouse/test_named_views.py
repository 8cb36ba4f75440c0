"""Views that name each metric point with its inventory entity as of the point's day."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from test_history import DC1, SERVICE, _filer, _host, _vm, _write

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.defs.resources import VScopeSettingsResource
from vscope_pipeline.defs.warehouse_assets import find_unmatched_series, metric_points_matched
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import build_warehouse, catalog_table
from vscope_pipeline.warehouse.named_views import create_named_views

DC2 = f"{SERVICE}_datacenter2"
VM_CPU = "vscope.vm.cpu.usage.perc"
HOST_TX = "vscope.host.net.tx"
FILER_USED = "vscope.filer.datastore.diskspace.used"
D1 = dt.date(2026, 11, 16)
D2 = dt.date(2026, 11, 17)
D3 = dt.date(2026, 11, 18)
D4 = dt.date(2026, 11, 19)
D5 = dt.date(2026, 11, 20)
# The first snapshot is taken on D2, after the D1 metrics; D4 has no snapshot.
SNAPSHOT_DAYS = (D2, D3, D5)

VM_COLUMNS = (
    "metric, unit, day, value, entity, vm_id, vm_name, host_name, cluster_name, cpu_num, memory_max"
)


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def _point(kind: str, datacenter: str, entity: str, day: dt.date, nic: str | None = None) -> dict:
    # The value is the day of the month, so each row shows which point it comes from.
    return {
        "entity_kind": kind,
        "service_name": SERVICE,
        "datacenter": datacenter,
        "entity": entity,
        "nic": nic,
        "ts": _noon(day),
        "value": float(day.day),
    }


def _write_metric(data_dir: Path, metric: str, day: dt.date, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)
    write_partition(table, metric_partition_dir(data_dir, metric, day))


def _write_snapshots(data_dir: Path) -> None:
    for day in SNAPSHOT_DAYS:
        vms = [
            _vm(101, "web-01", day, host_name="host-1.example" if day < D3 else "host-2.example"),
            _vm(102, "db-01", day, memory_max=4096 if day < D5 else 8192),
        ]
        if day < D5:
            vms.append(_vm(104, "tmp-01", day))
        _write(data_dir, "vms", day, vms)
        _write(data_dir, "hosts", day, [_host(11, "host-1.example", day >= D5)])
        _write(data_dir, "filers", day, [_filer(21, 1, 2048), _filer(22, None, 1024)])


def _write_points(data_dir: Path) -> None:
    for day in (D1, D2, D3, D4, D5):
        vm_rows = [_point("vm", DC1, f"vm-{vm_id}", day) for vm_id in (101, 102, 104)]
        if day == D5:
            vm_rows.append(_point("vm", DC1, "vm-999", day))
        _write_metric(data_dir, VM_CPU, day, vm_rows)
    for day in (D3, D5):
        _write_metric(
            data_dir, HOST_TX, day, [_point("host", DC1, "host-1.example", day, "vmnic0")]
        )
        _write_metric(
            data_dir,
            FILER_USED,
            day,
            [_point("filer", DC1, "pcc-0021", day), _point("filer", DC2, "pcc-0022", day)],
        )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("lake")
    _write_snapshots(data_dir)
    _write_points(data_dir)
    return build_warehouse(data_dir, BUILTIN_METRICS).path


def _query(database: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql, parameters or []).fetchall()


def _vm_metrics(database: Path, entity: str) -> list[tuple]:
    sql = f"SELECT {VM_COLUMNS} FROM vm_metrics WHERE entity = ? ORDER BY ts"
    return _query(database, sql, [entity])


def test_vm_resized_mid_period(database):
    # D1 is before the first snapshot, so it takes the earliest version.
    assert _vm_metrics(database, "vm-102") == [
        (VM_CPU, "%", day, float(day.day), "vm-102", 102, "db-01", "host-1.example",
         "cluster-a", 2, memory_max)
        for day, memory_max in ((D1, 4096), (D2, 4096), (D3, 4096), (D4, 4096), (D5, 8192))
    ]  # fmt: skip


def test_vm_moved_host(database):
    assert _vm_metrics(database, "vm-101") == [
        (VM_CPU, "%", day, float(day.day), "vm-101", 101, "web-01", host, "cluster-a", 2, 4096)
        for day, host in (
            (D1, "host-1.example"),
            (D2, "host-1.example"),
            (D3, "host-2.example"),
            (D4, "host-2.example"),
            (D5, "host-2.example"),
        )
    ]


def test_deleted_vm_keeps_last_version(database):
    # tmp-01 is missing from the D5 snapshot; its D5 point still carries its last version.
    assert _vm_metrics(database, "vm-104") == [
        (VM_CPU, "%", day, float(day.day), "vm-104", 104, "tmp-01", "host-1.example",
         "cluster-a", 2, 4096)
        for day in (D1, D2, D3, D4, D5)
    ]  # fmt: skip


def test_unknown_vm_has_null_names(database):
    assert _query(
        database, f"SELECT service_name, datacenter, {VM_COLUMNS} FROM vm_metrics "
        "WHERE entity = 'vm-999'"
    ) == [
        (SERVICE, DC1, VM_CPU, "%", D5, 20.0, "vm-999", None, None, None, None, None, None)
    ]  # fmt: skip


def test_host_metrics_follow_maintenance(database):
    rows = _query(
        database,
        "SELECT metric, unit, day, entity, nic, host_id, host_name, cluster_name, state, "
        "in_maintenance, cpu_num, ram FROM host_metrics ORDER BY ts",
    )
    ram = {"unit": "GB", "value": 384}
    assert rows == [
        (HOST_TX, "KB/s", D3, "host-1.example", "vmnic0", 11, "host-1.example", "cluster-a",
         "delivered", False, 24, ram),
        (HOST_TX, "KB/s", D5, "host-1.example", "vmnic0", 11, "host-1.example", "cluster-a",
         "delivered", True, 24, ram),
    ]  # fmt: skip


def test_filer_metrics_local_and_global(database):
    # The global datastore has no datacenter label and matches on its name from DC2 points.
    rows = _query(
        database,
        "SELECT metric, unit, day, datacenter, entity, filer_id, filer_datacenter_id, "
        "filer_name, size FROM filer_metrics ORDER BY ts, entity",
    )
    local = {"unit": "GB", "value": 2048}
    global_size = {"unit": "GB", "value": 1024}
    assert rows == [
        (FILER_USED, "kB", day, datacenter, entity, filer_id, datacenter_id, entity, size)
        for day in (D3, D5)
        for datacenter, entity, filer_id, datacenter_id, size in (
            (DC1, "pcc-0021", 21, 1, local),
            (DC2, "pcc-0022", 22, None, global_size),
        )
    ]


def test_one_row_per_point(database):
    counts = _query(
        database,
        "SELECT (SELECT count(*) FROM metric_points WHERE entity_kind = 'vm'), "
        "(SELECT count(*) FROM vm_metrics), "
        "(SELECT count(*) FROM metric_points WHERE entity_kind = 'host'), "
        "(SELECT count(*) FROM host_metrics), "
        "(SELECT count(*) FROM metric_points WHERE entity_kind = 'filer'), "
        "(SELECT count(*) FROM filer_metrics)",
    )
    assert counts == [(16, 16, 2, 2, 4, 4)]


def _bare_warehouse(history_rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """Return an in-memory database with one VM point on D3 and the given `vm_history` rows."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE metric_points AS SELECT ? AS metric, 'vm' AS entity_kind, "
        "? AS service_name, ? AS datacenter, 'vm-7' AS entity, NULL::VARCHAR AS nic, "
        "?::TIMESTAMPTZ AS ts, 1.0::DOUBLE AS value, ?::DATE AS day",
        [VM_CPU, SERVICE, DC1, _noon(D3), D3],
    )
    con.register("catalog_rows", catalog_table(BUILTIN_METRICS))
    con.execute("CREATE TABLE metric_catalog AS SELECT * FROM catalog_rows")
    con.execute(
        "CREATE TABLE vm_history (service_name VARCHAR, vm_id BIGINT, name VARCHAR, "
        "mo_ref VARCHAR, datacenter_label VARCHAR, host_name VARCHAR, cluster_name VARCHAR, "
        "folder_name VARCHAR, power_state VARCHAR, cpu_num BIGINT, memory_max BIGINT, "
        "valid_from DATE, valid_to DATE)"
    )
    for vm_id, memory_max, valid_from, valid_to in history_rows:
        con.execute(
            "INSERT INTO vm_history VALUES (?, ?, 'vm-seven', 'vm-7', ?, 'host-1.example', "
            "'cluster-a', NULL, 'poweredOn', 2, ?, ?, ?)",
            [SERVICE, vm_id, DC1, memory_max, valid_from, valid_to],
        )
    assert create_named_views(con, ["vm_history"]) == ["vm_metrics"]
    return con


def test_overlapping_versions_one_row():
    # Two versions both claim D3: the point takes the one that started later.
    con = _bare_warehouse([(7, 4096, D1, None), (7, 8192, D2, None)])
    rows = con.execute("SELECT vm_id, memory_max, day FROM vm_metrics").fetchall()
    assert rows == [(7, 8192, D3)]


def test_reused_moref_one_row():
    # Two VMs with the same moRef on the same day: the lower vm_id breaks the tie.
    con = _bare_warehouse([(8, 1024, D2, None), (7, 2048, D2, None)])
    rows = con.execute("SELECT vm_id, memory_max, day FROM vm_metrics").fetchall()
    assert rows == [(7, 2048, D3)]


def test_views_absent_without_history(tmp_path):
    _write_metric(tmp_path, VM_CPU, D1, [_point("vm", DC1, "vm-101", D1)])
    _write(tmp_path, "hosts", D1, [_host(11, "host-1.example", False)])
    database = build_warehouse(tmp_path, BUILTIN_METRICS).path

    views = _query(
        database,
        "SELECT view_name FROM duckdb_views() "
        "WHERE view_name IN ('vm_metrics', 'host_metrics', 'filer_metrics')",
    )
    assert views == [("host_metrics",)]
    # Without a VM snapshot, every VM series is unmatched.
    assert find_unmatched_series(database) == [f"{VM_CPU} {DC1}/vm-101"]


def test_unmatched_series_of_last_day(database):
    assert find_unmatched_series(database) == [f"{VM_CPU} {DC1}/vm-999"]


def test_matched_check_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OVH_APPLICATION_KEY", "placeholder-ak")
    monkeypatch.setenv("OVH_APPLICATION_SECRET", "placeholder-as")
    monkeypatch.setenv("OVH_CONSUMER_KEY", "placeholder-ck")
    _write(tmp_path, "hosts", D5, [_host(11, "host-1.example", False)])
    _write_metric(
        tmp_path,
        HOST_TX,
        D5,
        [_point("host", DC1, "host-1.example", D5, "vmnic0")]
        + [_point("host", DC1, f"host-{index:02d}.example", D5, "vmnic1") for index in range(60)],
    )
    build_warehouse(tmp_path, BUILTIN_METRICS)

    result = metric_points_matched(vscope_settings=VScopeSettingsResource())

    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.WARN
    metadata = {key: value.value for key, value in result.metadata.items()}
    assert metadata == {
        "unmatched_series": 60,
        "unmatched_names": [
            f"{HOST_TX} {DC1}/host-{index:02d}.example/vmnic1" for index in range(50)
        ],
    }


def test_matched_check_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OVH_APPLICATION_KEY", "placeholder-ak")
    monkeypatch.setenv("OVH_APPLICATION_SECRET", "placeholder-as")
    monkeypatch.setenv("OVH_CONSUMER_KEY", "placeholder-ck")
    _write(tmp_path, "hosts", D5, [_host(11, "host-1.example", False)])
    _write_metric(tmp_path, HOST_TX, D5, [_point("host", DC1, "host-1.example", D5, "vmnic0")])
    build_warehouse(tmp_path, BUILTIN_METRICS)

    result = metric_points_matched(vscope_settings=VScopeSettingsResource())

    assert result.passed is True
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["unmatched_series"].value == 0
