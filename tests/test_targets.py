"""Metric targets from the latest inventory snapshot."""

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from vscope_pipeline.collect import DatacenterTarget
from vscope_pipeline.lake.layout import inventory_partition_dir
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.ovh.schemas import INVENTORY_SCHEMAS
from vscope_pipeline.targets import MissingInventoryError, load_targets

SERVICE = "pcc-203-0-113-10"
OTHER_SERVICE = "pcc-198-51-100-7"
DC1 = f"{SERVICE}_datacenter1"
DC2 = f"{SERVICE}_datacenter2"
OTHER_DC = f"{OTHER_SERVICE}_datacenter5"
OLD_DAY = dt.date(2026, 11, 18)
DAY = dt.date(2026, 11, 19)


def _write(data_dir: Path, kind: str, day: dt.date, rows: list[dict]) -> None:
    write_partition(pa.Table.from_pylist(rows), inventory_partition_dir(data_dir, kind, day))


def _datacenters(*labels: tuple[str, str]) -> list[dict]:
    return [{"service_name": service, "datacenter_label": label} for service, label in labels]


def _vm(label: str, mo_ref: str, power_state: str = "poweredOn") -> dict:
    return {
        "service_name": SERVICE,
        "mo_ref": mo_ref,
        "name": f"name of {mo_ref}",
        "power_state": power_state,
        "datacenter_label": label,
    }


def _named(label: str | None, name: str) -> dict:
    return {"service_name": SERVICE, "name": name, "datacenter_label": label}


def _write_fleet(data_dir: Path) -> None:
    _write(data_dir, "datacenters", DAY, _datacenters((SERVICE, DC2), (SERVICE, DC1)))
    _write(
        data_dir,
        "vms",
        DAY,
        [
            _vm(DC1, "vm-101"),
            _vm(DC1, "vm-102", power_state="poweredOff"),
            _vm(DC1, "vm-103", power_state="suspended"),
            _vm(DC2, "vm-201"),
            _vm(DC2, "vm-202"),
        ],
    )
    _write(data_dir, "hosts", DAY, [_named(DC1, "host-1.example"), _named(DC2, "host-2.example")])
    _write(
        data_dir,
        "filers",
        DAY,
        [_named(DC1, "ds-dc1-ssd"), _named(None, "ds-global"), _named(DC1, "ds-dc1-hdd")],
    )


def test_no_inventory_raises(tmp_path):
    with pytest.raises(MissingInventoryError) as raised:
        load_targets(tmp_path)

    assert str(raised.value) == (
        f"no inventory snapshot under {tmp_path}: materialize the inventory assets first "
        "(`vscope-pipeline ingest` runs them before the metrics)"
    )


def test_entities_expected_per_datacenter(tmp_path):
    _write_fleet(tmp_path)

    assert load_targets(tmp_path) == [
        DatacenterTarget(
            service_name=SERVICE,
            datacenter_label=DC1,
            expected_entities={
                "vm": frozenset({"vm-101"}),
                "host": frozenset({"host-1.example"}),
                "filer": frozenset({"ds-dc1-ssd", "ds-dc1-hdd"}),
            },
            shared_entities={"filer": frozenset({"ds-global"})},
        ),
        DatacenterTarget(
            service_name=SERVICE,
            datacenter_label=DC2,
            expected_entities={
                "vm": frozenset({"vm-201", "vm-202"}),
                "host": frozenset({"host-2.example"}),
            },
            shared_entities={"filer": frozenset({"ds-global"})},
        ),
    ]


def test_global_filer_in_no_datacenter(tmp_path):
    _write_fleet(tmp_path)

    targets = load_targets(tmp_path)

    expected_filers = [target.expected_entities.get("filer", frozenset()) for target in targets]
    assert all("ds-global" not in filers for filers in expected_filers)


def test_latest_snapshot_used(tmp_path):
    _write(tmp_path, "datacenters", OLD_DAY, _datacenters((SERVICE, DC1), (SERVICE, DC2)))
    _write(tmp_path, "vms", OLD_DAY, [_vm(DC1, "vm-old")])
    _write(tmp_path, "datacenters", DAY, _datacenters((SERVICE, DC1)))
    _write(tmp_path, "vms", DAY, [_vm(DC1, "vm-new")])

    assert load_targets(tmp_path) == [
        DatacenterTarget(SERVICE, DC1, {"vm": frozenset({"vm-new"})}),
    ]


def test_datacenters_only_expect_nothing(tmp_path):
    _write(tmp_path, "datacenters", DAY, _datacenters((SERVICE, DC1)))

    assert load_targets(tmp_path) == [DatacenterTarget(SERVICE, DC1, {})]


def test_targets_sorted_by_service_and_label(tmp_path):
    _write(
        tmp_path,
        "datacenters",
        DAY,
        _datacenters((SERVICE, DC2), (OTHER_SERVICE, OTHER_DC), (SERVICE, DC1)),
    )

    targets = load_targets(tmp_path)

    assert [(t.service_name, t.datacenter_label) for t in targets] == [
        (OTHER_SERVICE, OTHER_DC),
        (SERVICE, DC1),
        (SERVICE, DC2),
    ]


def test_entity_of_unlisted_datacenter_ignored(tmp_path):
    _write(tmp_path, "datacenters", DAY, _datacenters((SERVICE, DC1)))
    _write(tmp_path, "hosts", DAY, [_named(DC1, "host-1.example"), _named(DC2, "host-2.example")])

    assert load_targets(tmp_path) == [
        DatacenterTarget(SERVICE, DC1, {"host": frozenset({"host-1.example"})}),
    ]


def test_empty_snapshots_expect_nothing(tmp_path):
    # Empty tables with the inventory's own schemas, as a service without VMs, hosts or
    # datastores would store them.
    _write(tmp_path, "datacenters", DAY, _datacenters((SERVICE, DC1)))
    for kind in ("vms", "hosts", "filers"):
        empty = INVENTORY_SCHEMAS[kind].empty_table()
        write_partition(empty, inventory_partition_dir(tmp_path, kind, DAY))

    assert load_targets(tmp_path) == [DatacenterTarget(SERVICE, DC1, {})]


def test_snapshot_without_datacenters_rejected(tmp_path):
    empty = INVENTORY_SCHEMAS["datacenters"].empty_table()
    write_partition(empty, inventory_partition_dir(tmp_path, "datacenters", DAY))

    with pytest.raises(MissingInventoryError) as caught:
        load_targets(tmp_path)
    assert str(caught.value) == (
        f"the latest inventory snapshot ({DAY.isoformat()}) lists no datacenter, so no metric "
        "can be fetched: check VSCOPE_SERVICE_NAMES and the API keys' rights, then "
        "materialize the inventory again"
    )
