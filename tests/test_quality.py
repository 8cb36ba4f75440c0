"""Quality figures of stored metric partitions, measured on lakes written in temporary folders."""

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.lake.layout import inventory_partition_dir, metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.quality import (
    PartitionQuality,
    expected_entities,
    measure_days,
    snapshot_day_for,
)

SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
DC2 = f"{SERVICE}_datacenter2"
DAY = dt.date(2026, 11, 18)
CPU = MetricSpec("vscope.vm.cpu.usage.perc", "vm", "%", "VM CPU usage", max_value=100.0)
USED = MetricSpec("vscope.filer.datastore.diskspace.used", "filer", "kB", "Datastore space used")


def _ts(minute: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(), dt.UTC) + dt.timedelta(minutes=minute)


def _point(datacenter: str, entity: str, minute: int, value: float) -> dict:
    return {
        "entity_kind": "vm",
        "service_name": SERVICE,
        "datacenter": datacenter,
        "entity": entity,
        "nic": None,
        "ts": _ts(minute),
        "value": value,
    }


def _write_points(data_dir: Path, spec: MetricSpec, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)
    write_partition(table, metric_partition_dir(data_dir, spec.name, DAY))


def _vm(datacenter: str | None, mo_ref: str, power_state: str = "poweredOn") -> dict:
    return {"datacenter_label": datacenter, "mo_ref": mo_ref, "power_state": power_state}


def _write_vms(data_dir: Path, day: dt.date, rows: list[dict]) -> None:
    write_partition(pa.Table.from_pylist(rows), inventory_partition_dir(data_dir, "vms", day))


def test_snapshot_day_on_or_before(tmp_path):
    for day in ("2026-11-10", "2026-11-17", "2026-11-19"):
        _write_vms(tmp_path, dt.date.fromisoformat(day), [_vm(DC1, "vm-1")])
    assert snapshot_day_for(tmp_path, "vms", DAY) == "2026-11-17"
    assert snapshot_day_for(tmp_path, "vms", dt.date(2026, 11, 19)) == "2026-11-19"


def test_snapshot_day_after_when_none_before(tmp_path):
    _write_vms(tmp_path, dt.date(2026, 11, 20), [_vm(DC1, "vm-1")])
    assert snapshot_day_for(tmp_path, "vms", DAY) == "2026-11-20"


def test_snapshot_day_absent(tmp_path):
    assert snapshot_day_for(tmp_path, "vms", DAY) is None
    assert expected_entities(tmp_path, "vm", DAY).reporting == frozenset()


def test_expected_entities_skip_powered_off(tmp_path):
    _write_vms(
        tmp_path,
        DAY,
        [_vm(DC1, "vm-1"), _vm(DC1, "vm-2", "poweredOff"), _vm(DC2, "vm-3")],
    )
    expected = expected_entities(tmp_path, "vm", DAY)
    assert expected.snapshot_day == "2026-11-18"
    assert expected.reporting == {f"{DC1}/vm-1", f"{DC2}/vm-3"}
    assert expected.listed == {f"{DC1}/vm-1", f"{DC1}/vm-2", f"{DC2}/vm-3"}


def test_clean_partition(tmp_path):
    _write_vms(tmp_path, DAY, [_vm(DC1, "vm-1"), _vm(DC1, "vm-2")])
    rows = [_point(DC1, entity, minute, 50.0) for entity in ("vm-1", "vm-2") for minute in range(5)]
    _write_points(tmp_path, CPU, rows)
    assert measure_days(tmp_path, [CPU], [DAY]) == [
        PartitionQuality(
            metric=CPU.name,
            day=DAY,
            rows=10,
            series=2,
            duplicate_keys=0,
            out_of_range=0,
            gaps=0,
            usual_step_s=60.0,
            snapshot_day="2026-11-18",
            entities_expected=2,
            missing_entities=(),
            unlisted_entities=(),
        )
    ]


def test_defects_counted(tmp_path):
    _write_vms(tmp_path, DAY, [_vm(DC1, "vm-1"), _vm(DC1, "vm-2")])
    rows = [_point(DC1, "vm-1", minute, 50.0) for minute in (0, 1, 2, 3, 9, 10)]
    rows += [
        _point(DC1, "vm-1", 10, 51.0),  # duplicate key
        _point(DC1, "vm-9", 0, 101.0),  # out of range, entity not in the inventory
        _point(DC1, "vm-9", 1, -0.5),  # out of range
    ]
    _write_points(tmp_path, CPU, rows)
    (quality,) = measure_days(tmp_path, [CPU], [DAY])
    assert quality.rows == 9
    assert quality.series == 2
    assert quality.duplicate_keys == 1
    assert quality.out_of_range == 2
    # vm-1 steps 1, 1, 1, 6, 1, 0 minutes: the median step is 1 minute, one step is a gap.
    assert quality.usual_step_s == 60.0
    assert quality.gaps == 1
    assert quality.entities_expected == 2
    assert quality.entities_received == 1
    assert quality.missing_entities == (f"{DC1}/vm-2",)
    assert quality.unlisted_entities == (f"{DC1}/vm-9",)


def test_missing_partition_measures_empty(tmp_path):
    _write_vms(tmp_path, DAY, [_vm(DC1, "vm-1")])
    (quality,) = measure_days(tmp_path, [CPU], [DAY])
    assert quality.rows == 0
    assert quality.usual_step_s is None
    assert quality.entities_received == 0
    assert quality.missing_entities == (f"{DC1}/vm-1",)


@pytest.mark.parametrize(("value", "outside"), [(0.0, 0), (1e12, 0), (-1.0, 1)])
def test_range_open_above(tmp_path, value, outside):
    rows = [_point(DC1, "ds-1", 0, value) | {"entity_kind": "filer"}]
    _write_points(tmp_path, USED, rows)
    (quality,) = measure_days(tmp_path, [USED], [DAY])
    assert quality.out_of_range == outside


def test_global_datastore_listed_in_every_datacenter(tmp_path):
    filers = [
        {"datacenter_label": DC1, "name": "ds-local"},
        {"datacenter_label": None, "name": "ds-global"},
    ]
    write_partition(pa.Table.from_pylist(filers), inventory_partition_dir(tmp_path, "filers", DAY))
    rows = [
        _point(datacenter, name, 0, 10.0) | {"entity_kind": "filer"}
        for datacenter, name in ((DC1, "ds-local"), (DC1, "ds-global"), (DC2, "ds-global"))
    ]
    _write_points(tmp_path, USED, rows)
    (quality,) = measure_days(tmp_path, [USED], [DAY])
    assert quality.entities_expected == 1
    assert quality.missing_entities == ()
    assert quality.unlisted_entities == ()
