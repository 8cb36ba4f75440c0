"""The warehouse asset checks: unique metric keys and a complete warehouse."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.defs.resources import VScopeSettingsResource
from vscope_pipeline.defs.warehouse_assets import (
    check_completeness,
    count_duplicate_rows,
    metric_points_unique,
    vscope_duckdb,
    warehouse_complete,
)
from vscope_pipeline.lake.layout import (
    INVENTORY_KINDS,
    inventory_partition_dir,
    metric_partition_dir,
)
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import build_warehouse

SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
CPU = "vscope.vm.cpu.usage.perc"
NET_TX = "vscope.host.net.tx"
DAY = dt.date(2026, 11, 19)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Point the settings at an empty data folder. The API keys are placeholders, never sent."""
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OVH_APPLICATION_KEY", "placeholder-ak")
    monkeypatch.setenv("OVH_APPLICATION_SECRET", "placeholder-as")
    monkeypatch.setenv("OVH_CONSUMER_KEY", "placeholder-ck")
    return tmp_path


def _vm_rows(day: dt.date, count: int) -> list[dict]:
    return [
        {
            "entity_kind": "vm",
            "service_name": SERVICE,
            "datacenter": DC1,
            "entity": "vm-101",
            "nic": None,
            "ts": dt.datetime.combine(day, dt.time(0, minute), tzinfo=dt.UTC),
            "value": float(minute),
        }
        for minute in range(count)
    ]


def _nic_rows(day: dt.date) -> list[dict]:
    return [
        {
            "entity_kind": "host",
            "service_name": SERVICE,
            "datacenter": DC1,
            "entity": "host-1.example",
            "nic": nic,
            "ts": dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC),
            "value": 10.0,
        }
        for nic in ("vmnic0", "vmnic1")
    ]


def _write_metric(data_dir: Path, metric: str, day: dt.date, rows: list[dict]) -> Path:
    table = pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)
    return Path(write_partition(table, metric_partition_dir(data_dir, metric, day)).path)


def _duplicate_file(path: Path) -> None:
    """Copy a partition file beside itself: two files of one folder with the same keys."""
    shutil.copyfile(path, path.with_name("copy.parquet"))


def _write_inventory(data_dir: Path, kinds: tuple[str, ...], day: dt.date) -> None:
    for kind in kinds:
        table = pa.table({"service_name": [SERVICE], "name": [f"one of {kind}"]})
        write_partition(table, inventory_partition_dir(data_dir, kind, day))


def _materialize_with_checks() -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [vscope_duckdb, metric_points_unique, warehouse_complete],
        resources={"vscope_settings": VScopeSettingsResource()},
    )
    assert result.success
    return {check.check_name: check for check in result.get_asset_check_evaluations()}


def _metadata(evaluation: dg.AssetCheckEvaluation | dg.AssetCheckResult) -> dict:
    return {key: value.value for key, value in evaluation.metadata.items()}


def test_checks_pass_on_clean_lake(data_dir):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    _write_inventory(data_dir, INVENTORY_KINDS, yesterday)
    day_before = yesterday - dt.timedelta(days=1)
    _write_metric(data_dir, CPU, day_before, _vm_rows(day_before, 3))
    _write_metric(data_dir, CPU, yesterday, _vm_rows(yesterday, 3))
    _write_metric(data_dir, NET_TX, yesterday, _nic_rows(yesterday))

    checks = _materialize_with_checks()

    unique = checks["metric_points_unique"]
    assert unique.passed is True
    assert unique.severity == dg.AssetCheckSeverity.ERROR
    assert _metadata(unique) == {"duplicate_rows": 0}
    complete = checks["warehouse_complete"]
    assert complete.passed is True
    assert complete.severity == dg.AssetCheckSeverity.WARN
    assert complete.description is None
    assert _metadata(complete) == {
        "rows_datacenters": 1,
        "rows_hosts": 1,
        "rows_vms": 1,
        "rows_filers": 1,
        "empty_tables": [],
        "last_metric_day": yesterday.isoformat(),
        "last_complete_day": yesterday.isoformat(),
    }


def test_unique_fails_on_duplicate_file(data_dir):
    _write_metric(data_dir, NET_TX, DAY, _nic_rows(DAY))
    _duplicate_file(_write_metric(data_dir, CPU, DAY, _vm_rows(DAY, 3)))

    checks = _materialize_with_checks()

    unique = checks["metric_points_unique"]
    assert unique.passed is False
    assert unique.severity == dg.AssetCheckSeverity.ERROR
    assert _metadata(unique) == {"duplicate_rows": 3}


def test_unique_direct_call_counts_nic_rows(data_dir):
    _duplicate_file(_write_metric(data_dir, NET_TX, DAY, _nic_rows(DAY)))
    build_warehouse(data_dir, BUILTIN_METRICS)

    result = metric_points_unique(vscope_settings=VScopeSettingsResource())

    assert result.passed is False
    assert _metadata(result) == {"duplicate_rows": 2}


def test_duplicates_counted_in_recent_days_only(data_dir):
    # The window is the last 3 days stored, so the newest day minus 2 is in and minus 3 is out.
    _write_metric(data_dir, CPU, DAY, _vm_rows(DAY, 1))
    in_window = DAY - dt.timedelta(days=2)
    out_of_window = DAY - dt.timedelta(days=3)
    _duplicate_file(_write_metric(data_dir, CPU, in_window, _vm_rows(in_window, 2)))
    _duplicate_file(_write_metric(data_dir, CPU, out_of_window, _vm_rows(out_of_window, 5)))
    build_warehouse(data_dir, BUILTIN_METRICS)

    database = data_dir / "vscope.duckdb"
    assert count_duplicate_rows(database) == 2
    assert count_duplicate_rows(database, days=4) == 7


def test_same_timestamp_other_series_not_duplicate(data_dir):
    rows = _vm_rows(DAY, 1)
    rows.append({**rows[0], "entity": "vm-102"})
    rows.append({**rows[0], "datacenter": f"{SERVICE}_datacenter2"})
    _write_metric(data_dir, CPU, DAY, rows)
    _write_metric(data_dir, "vscope.vm.mem.usage.perc", DAY, _vm_rows(DAY, 1))
    build_warehouse(data_dir, BUILTIN_METRICS)

    assert count_duplicate_rows(data_dir / "vscope.duckdb") == 0


def test_complete_warns_on_empty_tables_and_old_day(data_dir):
    _write_inventory(data_dir, ("datacenters",), DAY)
    _write_metric(data_dir, CPU, DAY - dt.timedelta(days=2), _vm_rows(DAY, 1))
    build_warehouse(data_dir, BUILTIN_METRICS)

    result = check_completeness(data_dir / "vscope.duckdb", DAY)

    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == (
        "no rows in hosts, vms, filers; metric points end on 2026-11-17, expected 2026-11-19"
    )
    assert _metadata(result) == {
        "rows_datacenters": 1,
        "rows_hosts": 0,
        "rows_vms": 0,
        "rows_filers": 0,
        "empty_tables": ["hosts", "vms", "filers"],
        "last_metric_day": "2026-11-17",
        "last_complete_day": "2026-11-19",
    }


def test_complete_warns_on_empty_warehouse(data_dir):
    build_warehouse(data_dir, BUILTIN_METRICS)

    result = check_completeness(data_dir / "vscope.duckdb", DAY)

    assert result.passed is False
    assert result.description == (
        "no rows in datacenters, hosts, vms, filers; "
        "no metric points, expected days up to 2026-11-19"
    )
    assert _metadata(result)["last_metric_day"] == "None"
    assert _metadata(result)["empty_tables"] == ["datacenters", "hosts", "vms", "filers"]


def test_complete_warns_on_inventory_only(data_dir):
    _write_inventory(data_dir, INVENTORY_KINDS, DAY)
    build_warehouse(data_dir, BUILTIN_METRICS)

    result = check_completeness(data_dir / "vscope.duckdb", DAY)

    assert result.passed is False
    assert result.description == "no metric points, expected days up to 2026-11-19"


def test_complete_passes_on_last_day(data_dir):
    _write_inventory(data_dir, INVENTORY_KINDS, DAY)
    _write_metric(data_dir, CPU, DAY, _vm_rows(DAY, 1))
    build_warehouse(data_dir, BUILTIN_METRICS)

    result = check_completeness(data_dir / "vscope.duckdb", DAY)

    assert result.passed is True
    assert result.description is None
    assert _metadata(result)["last_metric_day"] == "2026-11-19"
