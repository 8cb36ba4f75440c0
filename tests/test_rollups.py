"""Hourly and daily rollups of a metric-day table."""

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest

from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA, ROLLUP_FILE_SCHEMA
from vscope_pipeline.rollups import rollup_table

MIDNIGHT = dt.datetime(2026, 11, 19, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
SERVICE = "pcc-203-0-113-10"
DC = f"{SERVICE}_datacenter1"


def _points(entity: str, nic: str | None, points: list[tuple[dt.timedelta, float]]) -> list[dict]:
    kind = "vm" if nic is None else "host"
    return [
        {
            "entity_kind": kind,
            "service_name": SERVICE,
            "datacenter": DC,
            "entity": entity,
            "nic": nic,
            "ts": MIDNIGHT + offset,
            "value": value,
        }
        for offset, value in points
    ]


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)


def _minutes(minutes: int) -> dt.timedelta:
    return dt.timedelta(minutes=minutes)


# vm-101: four points in hour 0 (values 1, 2, 3, 10) and two in hour 1 (4, 8), given unsorted.
VM_POINTS = _points(
    "vm-101",
    None,
    [
        (_minutes(40), 10.0),
        (_minutes(0), 1.0),
        (HOUR + _minutes(30), 8.0),
        (_minutes(20), 3.0),
        (_minutes(10), 2.0),
        (HOUR, 4.0),
    ],
)
# Two NICs of one host in the same hour: each keeps its own row.
NIC_POINTS = _points("host-1.example", "vmnic0", [(_minutes(5), 100.0)]) + _points(
    "host-1.example", "vmnic1", [(_minutes(5), 7.0), (_minutes(25), 9.0)]
)


def _row(entity, nic, bucket, samples, avg, low, high, p95):
    return {
        "entity_kind": "vm" if nic is None else "host",
        "service_name": SERVICE,
        "datacenter": DC,
        "entity": entity,
        "nic": nic,
        "bucket": bucket,
        "samples": samples,
        "avg": avg,
        "min": low,
        "max": high,
        "p95": p95,
        # Every bucket of these cases starts on its own UTC day.
        "day": bucket.date(),
    }


CASES = [
    pytest.param(
        VM_POINTS,
        "hour",
        [
            # p95 of [1, 2, 3, 10]: rank 0.95 * 3 = 2.85, so 3 + 0.85 * (10 - 3) = 8.95.
            _row("vm-101", None, MIDNIGHT, 4, 4.0, 1.0, 10.0, 8.95),
            # p95 of [4, 8]: rank 0.95, so 4 + 0.95 * 4 = 7.8.
            _row("vm-101", None, MIDNIGHT + HOUR, 2, 6.0, 4.0, 8.0, 7.8),
        ],
        id="two-hours",
    ),
    pytest.param(
        VM_POINTS,
        "day",
        # p95 of [1, 2, 3, 4, 8, 10]: rank 4.75, so 8 + 0.75 * 2 = 9.5.
        [_row("vm-101", None, MIDNIGHT, 6, 28.0 / 6, 1.0, 10.0, 9.5)],
        id="one-day",
    ),
    pytest.param(
        NIC_POINTS,
        "hour",
        [
            _row("host-1.example", "vmnic0", MIDNIGHT, 1, 100.0, 100.0, 100.0, 100.0),
            _row("host-1.example", "vmnic1", MIDNIGHT, 2, 8.0, 7.0, 9.0, 8.9),
        ],
        id="nics-apart",
    ),
    pytest.param([], "hour", [], id="empty"),
]


@pytest.mark.parametrize(("points", "grain", "expected"), CASES)
def test_rollup_values(points, grain, expected):
    result = rollup_table(_table(points), grain)

    assert result.schema.equals(ROLLUP_FILE_SCHEMA)
    rows = result.to_pylist()
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        floats = ("avg", "min", "max", "p95")
        assert {k: v for k, v in row.items() if k not in floats} == {
            k: v for k, v in want.items() if k not in floats
        }
        assert [row[name] for name in floats] == pytest.approx([want[name] for name in floats])


def test_null_nic_apart_from_named_nic():
    rows = _points("host-1.example", None, [(_minutes(1), 1.0)])
    rows += _points("host-1.example", "vmnic0", [(_minutes(2), 3.0)])

    result = rollup_table(_table(rows), "day")

    assert result.column("nic").to_pylist() == ["vmnic0", None]
    assert result.column("samples").to_pylist() == [1, 1]


def test_p95_equals_numpy_percentile():
    generator = np.random.default_rng(7)
    sizes = [1, 2, 3, 17, 100, 359]
    rows = []
    for index, size in enumerate(sizes):
        values = generator.normal(50.0, 20.0, size)
        offsets = generator.integers(0, 3_600_000, size)
        rows += _points(
            f"vm-{index}",
            None,
            [
                (dt.timedelta(milliseconds=int(ms)), float(v))
                for ms, v in zip(offsets, values, strict=True)
            ],
        )

    result = rollup_table(_table(rows), "hour")

    entities = result.column("entity").to_pylist()
    by_entity = dict(zip(entities, result.column("p95").to_pylist(), strict=True))
    for index, size in enumerate(sizes):
        values = [row["value"] for row in rows if row["entity"] == f"vm-{index}"]
        assert len(values) == size
        assert by_entity[f"vm-{index}"] == np.percentile(values, 95)


def test_unknown_grain_rejected():
    expected = "rollup grain 'week' is not supported: expected one of hour, day"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        rollup_table(_table(VM_POINTS), "week")
