from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from vscope_pipeline.lake.layout import (
    INVENTORY_KINDS,
    inventory_partition_dir,
    inventory_root,
    latest_inventory_file,
    metric_partition_dir,
    metrics_root,
    partition_file,
)


def test_metric_partition_dir() -> None:
    folder = metric_partition_dir(Path("/data"), "vscope.vm.cpu.ready", date(2024, 5, 1))

    assert folder == Path("/data/metrics/metric=vscope.vm.cpu.ready/day=2024-05-01")


def test_metric_partition_dir_ignores_time() -> None:
    folder = metric_partition_dir("/data", "vscope.vm.cpu.ready", datetime(2024, 5, 1, 23, 59))

    assert folder == Path("/data/metrics/metric=vscope.vm.cpu.ready/day=2024-05-01")


def test_inventory_partition_dir() -> None:
    folder = inventory_partition_dir("data", "vms", date(2024, 1, 9))

    assert folder == Path("data/inventory/kind=vms/day=2024-01-09")


def test_roots_and_partition_file() -> None:
    assert metrics_root("/data") == Path("/data/metrics")
    assert inventory_root("/data") == Path("/data/inventory")
    assert partition_file("/data/metrics/metric=m/day=2024-05-01") == Path(
        "/data/metrics/metric=m/day=2024-05-01/data.parquet"
    )


@pytest.mark.parametrize("name", ["", "a/b", "metric=x", "vscope.*", ".hidden", "a b", "../up"])
def test_metric_dir_rejects_invalid_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"^metric name ") as raised:
        metric_partition_dir("/data", name, date(2024, 5, 1))

    assert str(raised.value) == (
        f"metric name {name!r} cannot name a lake folder: expected letters, digits, '.', '_' "
        "or '-', for example 'vscope.vm.cpu.ready'"
    )


@pytest.mark.parametrize("kind", ["", "VMs", "vms/x", "kind=vms", "1vms"])
def test_inventory_dir_rejects_invalid_kind(kind: str) -> None:
    with pytest.raises(ValueError, match=r"^inventory kind ") as raised:
        inventory_partition_dir("/data", kind, date(2024, 5, 1))

    assert str(raised.value) == (
        f"inventory kind {kind!r} cannot name a lake folder: expected lower-case letters, "
        "digits or '_', for example one of datacenters, hosts, vms, filers"
    )


def test_inventory_kinds_match_warehouse_tables() -> None:
    assert INVENTORY_KINDS == ("datacenters", "hosts", "vms", "filers")


def _touch_partition(data_dir: Path, kind: str, day_folder: str, with_file: bool = True) -> Path:
    folder = data_dir / "inventory" / f"kind={kind}" / day_folder
    folder.mkdir(parents=True)
    if with_file:
        (folder / "data.parquet").write_bytes(b"PAR1")
    return folder / "data.parquet"


def test_latest_inventory_file_none_without_folder(tmp_path: Path) -> None:
    assert latest_inventory_file(tmp_path, "vms") is None


def test_latest_inventory_file_picks_newest_day(tmp_path: Path) -> None:
    _touch_partition(tmp_path, "vms", "day=2024-04-30")
    newest = _touch_partition(tmp_path, "vms", "day=2024-05-02")
    _touch_partition(tmp_path, "vms", "day=2024-05-01")
    _touch_partition(tmp_path, "hosts", "day=2024-06-01")

    assert latest_inventory_file(tmp_path, "vms") == ("2024-05-02", str(newest))


def test_latest_inventory_file_skips_odd_folders(tmp_path: Path) -> None:
    valid = _touch_partition(tmp_path, "vms", "day=2024-05-01")
    _touch_partition(tmp_path, "vms", "day=2024-05-03", with_file=False)
    _touch_partition(tmp_path, "vms", "day=2024-13-45")
    _touch_partition(tmp_path, "vms", "day=latest")
    _touch_partition(tmp_path, "vms", "snapshot=2024-06-01")

    assert latest_inventory_file(tmp_path, "vms") == ("2024-05-01", str(valid))


def test_latest_inventory_file_none_without_files(tmp_path: Path) -> None:
    _touch_partition(tmp_path, "vms", "day=2024-05-01", with_file=False)

    assert latest_inventory_file(tmp_path, "vms") is None
