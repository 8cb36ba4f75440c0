"""The decoder's policy for each kind of odd input: the rows it keeps and the drops it counts."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec, parse_extra_metric
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.opentsdb.results import DecodeStats

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
CPU = SPECS["vscope.vm.cpu.usage.perc"]
READY = SPECS["vscope.vm.cpu.ready"]
HOST_RX = SPECS["vscope.host.net.rx"]
SERVICE = "pcc-37-187-228-180"
LABEL = "pcc-37-187-228-180_datacenter869"
WINDOW = day_window(date(2024, 5, 1))
T0 = WINDOW.start_ms  # 2024-05-01T00:00:00Z in epoch ms
STOP = WINDOW.stop_ms
MINUTE = 60_000
CONTEXT = f"metric {CPU.name}, datacenter {LABEL}, day 2024-05-01"
EXPECTED_VALUE = (
    'expected a number, a string holding a number, "NaN", "Infinity", "-Infinity" or null'
)


def _series(
    entity: str | None,
    dps: dict[str, Any],
    *,
    spec: MetricSpec = CPU,
    nic: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    tags = {"datacenter": LABEL, **(extra_tags or {})}
    if entity is not None:
        tags[spec.entity_label] = entity
    if nic is not None:
        tags["nicname"] = nic
    return {"metric": spec.name, "tags": tags, "aggregateTags": [], "dps": dps}


def _minutes(*values: Any) -> dict[str, Any]:
    return {str(T0 + index * MINUTE): value for index, value in enumerate(values)}


def _decode(body: Any, spec: MetricSpec = CPU) -> tuple[list[tuple[Any, ...]], DecodeStats]:
    """Decode `body` (elements, or raw bytes) and return (entity, nic, ts, value) rows."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    decoded = decode_query_response(
        content, spec=spec, service_name=SERVICE, datacenter_label=LABEL, window=WINDOW
    )
    assert decoded.table.schema == METRIC_FILE_SCHEMA
    table = decoded.table
    rows = list(
        zip(
            table.column("entity").to_pylist(),
            table.column("nic").to_pylist(),
            table.column("ts").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )
    return rows, decoded.stats


def _raw_series(entity: str, dps_json: str) -> bytes:
    """Return a body of one CPU series whose `dps` object is given as JSON text."""
    return (
        f'[{{"metric":"{CPU.name}","tags":{{"datacenter":"{LABEL}","vm":"{entity}"}},'
        f'"aggregateTags":[],"dps":{dps_json}}}]'
    ).encode()


def test_numeric_strings_kept_and_counted() -> None:
    rows, stats = _decode([_series("vm-1", _minutes("12.5", 13, "1.5E1", "-0"))])

    assert rows == [
        ("vm-1", None, T0, 12.5),
        ("vm-1", None, T0 + MINUTE, 13.0),
        ("vm-1", None, T0 + 2 * MINUTE, 15.0),
        ("vm-1", None, T0 + 3 * MINUTE, 0.0),
    ]
    assert stats == DecodeStats(series=1, points=4, numeric_strings=3)


@pytest.mark.parametrize("text", ["1_000", " 5", "5 ", "inf", "0x10", "12,5", "nan", "+1"])
def test_other_strings_rejected(text: str) -> None:
    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode([_series("vm-1", _minutes(1, text))])

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has value {text!r}, {EXPECTED_VALUE}"
    )


@pytest.mark.parametrize("value", [True, False])
def test_booleans_rejected(value: bool) -> None:
    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode([_series("vm-1", _minutes(1, value))])

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has value {value!r}, {EXPECTED_VALUE}"
    )


def test_nan_and_null_dropped() -> None:
    rows, stats = _decode([_series("vm-1", _minutes("NaN", 4, None))])

    assert rows == [("vm-1", None, T0 + MINUTE, 4.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_nan=2)


def test_quoted_infinities_dropped() -> None:
    rows, stats = _decode([_series("vm-1", _minutes("Infinity", 5, "-Infinity"))])

    assert rows == [("vm-1", None, T0 + MINUTE, 5.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_infinite=2)


def test_bare_non_finite_literals_dropped() -> None:
    body = _raw_series(
        "vm-1",
        f'{{"{T0}":Infinity,"{T0 + MINUTE}":-Infinity,"{T0 + 2 * MINUTE}":NaN,'
        f'"{T0 + 3 * MINUTE}":7,"{T0 + 4 * MINUTE}":1e400}}',
    )

    rows, stats = _decode(body)

    assert rows == [("vm-1", None, T0 + 3 * MINUTE, 7.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_nan=1, dropped_infinite=3)


def test_lone_surrogate_still_rejected() -> None:
    # The fallback parser accepts what orjson rejects only for a non-finite number.
    body = _raw_series("vm-\\ud800", f'{{"{T0}":NaN}}')

    with pytest.raises(OpenTSDBDecodeError, match="the body is not JSON"):
        _decode(body)


def test_percentages_out_of_range_dropped() -> None:
    rows, stats = _decode([_series("vm-1", _minutes(-0.5, 0, 55.5, 100, 100.01, 250))])

    assert rows == [
        ("vm-1", None, T0 + MINUTE, 0.0),
        ("vm-1", None, T0 + 2 * MINUTE, 55.5),
        ("vm-1", None, T0 + 3 * MINUTE, 100.0),
    ]
    assert stats == DecodeStats(series=1, points=3, dropped_out_of_range=3)
    assert stats.describe_drops() == "3 values out of range dropped"


def test_negative_latency_dropped() -> None:
    rows, stats = _decode([_series("vm-1", _minutes(-1, 2.5e6), spec=READY)], READY)

    assert rows == [("vm-1", None, T0 + MINUTE, 2.5e6)]
    assert stats == DecodeStats(series=1, points=1, dropped_out_of_range=1)


def test_unbounded_extra_metric_keeps_negatives() -> None:
    spec = parse_extra_metric("vscope.vm.mem.balloon:MB")

    rows, stats = _decode([_series("vm-1", _minutes(-3, 1e300), spec=spec)], spec)

    assert rows == [("vm-1", None, T0, -3.0), ("vm-1", None, T0 + MINUTE, 1e300)]
    assert stats == DecodeStats(series=1, points=2)


def test_each_drop_counted_once() -> None:
    # Checked in order: missing, infinite, outside the day, out of range.
    dps = {
        str(T0 - MINUTE): "NaN",
        str(T0 - 2 * MINUTE): "Infinity",
        str(T0 - 3 * MINUTE): 500,
        str(T0): 500,
        str(T0 + MINUTE): 50,
    }

    rows, stats = _decode([_series("vm-1", dps)])

    assert rows == [("vm-1", None, T0 + MINUTE, 50.0)]
    assert stats == DecodeStats(
        series=1,
        points=1,
        dropped_nan=1,
        dropped_infinite=1,
        dropped_out_of_window=1,
        dropped_out_of_range=1,
    )
    assert stats.dropped_points == 4


def test_duplicate_timestamps_keep_last() -> None:
    body = [
        _series("vm-1", _minutes(1, 2)),
        _series("vm-1", _minutes(10)),
        _series("vm-1", {str(T0 // 1000 + 60): 20}),
    ]

    rows, stats = _decode(body)

    assert rows == [("vm-1", None, T0, 10.0), ("vm-1", None, T0 + MINUTE, 20.0)]
    assert stats == DecodeStats(series=1, points=2, duplicates=2)


def test_invalid_last_duplicate_keeps_earlier() -> None:
    body = [_series("vm-1", _minutes(40)), _series("vm-1", _minutes(400))]

    rows, stats = _decode(body)

    assert rows == [("vm-1", None, T0, 40.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_out_of_range=1)


def test_duplicate_json_keys_keep_last() -> None:
    # JSON parsers keep the last of repeated keys, so the first one never reaches the decoder.
    rows, stats = _decode(_raw_series("vm-1", f'{{"{T0}":1,"{T0}":2}}'))

    assert rows == [("vm-1", None, T0, 2.0)]
    assert stats == DecodeStats(series=1, points=1)


def test_seconds_and_ms_keys() -> None:
    dps = {str(T0 // 1000): 1, str(T0 + 1500): 2, str(T0 // 1000 + 2): 3}

    rows, stats = _decode([_series("vm-1", dps)])

    assert rows == [
        ("vm-1", None, T0, 1.0),
        ("vm-1", None, T0 + 1500, 2.0),
        ("vm-1", None, T0 + 2000, 3.0),
    ]
    assert stats == DecodeStats(series=1, points=3)


def test_points_outside_day_dropped() -> None:
    dps = {str(T0 - 1): 1, str(T0): 2, str(STOP - 1): 3, str(STOP): 4, "-60000": 5}

    rows, stats = _decode([_series("vm-1", dps)])

    assert rows == [("vm-1", None, T0, 2.0), ("vm-1", None, STOP - 1, 3.0)]
    assert stats == DecodeStats(series=1, points=2, dropped_out_of_window=3)


def test_unknown_extra_tags_ignored() -> None:
    extra = {"env": "prod", "rack": "r1; DROP TABLE x", "../tag": "../../etc"}

    decoded = decode_query_response(
        orjson.dumps([_series("vm-1", _minutes(5), extra_tags=extra)]),
        spec=CPU,
        service_name=SERVICE,
        datacenter_label=LABEL,
        window=WINDOW,
    )

    assert decoded.table.column_names == METRIC_FILE_SCHEMA.names
    assert decoded.table.to_pylist() == [
        {
            "entity_kind": "vm",
            "service_name": SERVICE,
            "datacenter": LABEL,
            "entity": "vm-1",
            "nic": None,
            "ts": decoded.table.column("ts")[0].as_py(),
            "value": 5.0,
        }
    ]
    assert decoded.stats == DecodeStats(series=1, points=1)


def test_empty_dps_skipped() -> None:
    rows, stats = _decode([_series("vm-1", {}), _series("vm-2", _minutes(3)), _series(None, {})])

    assert rows == [("vm-2", None, T0, 3.0)]
    assert stats == DecodeStats(series=1, points=1, empty_series=2)


def test_series_without_entity_dropped(caplog: pytest.LogCaptureFixture) -> None:
    body = [
        _series(None, _minutes(1, 2), extra_tags={"env": "prod"}),
        _series("", _minutes(3)),
        _series("vm-1", _minutes(4)),
    ]

    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.opentsdb.decode"):
        rows, stats = _decode(body)

    assert rows == [("vm-1", None, T0, 4.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_unidentified=3, unidentified_series=2)
    assert stats.describe_drops() == "3 points of series without entity tag dropped"
    assert caplog.messages == [
        f"OpenTSDB response for {CONTEXT}: dropped 2 series (3 points) without a 'vm' tag; "
        f"the first has tags {{'datacenter': '{LABEL}', 'env': 'prod'}}"
    ]


def test_series_without_nicname_dropped() -> None:
    body = [
        _series("esx-1", _minutes(7), spec=HOST_RX),
        _series("esx-1", _minutes(8), spec=HOST_RX, nic="vmnic0"),
    ]

    rows, stats = _decode(body, HOST_RX)

    assert rows == [("esx-1", "vmnic0", T0, 8.0)]
    assert stats == DecodeStats(series=1, points=1, dropped_unidentified=1, unidentified_series=1)


def test_merged_series_still_raises() -> None:
    # A label listed in aggregateTags means the server merged entities: the caller must
    # learn it, to fetch entity by entity.
    merged = {**_series(None, _minutes(1)), "aggregateTags": ["vm"]}

    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode([merged])

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has no 'vm' tag (tags "
        f"{{'datacenter': '{LABEL}'}}), so its series cannot be identified"
    )


def test_non_string_entity_rejected() -> None:
    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode([{**_series(None, _minutes(1)), "tags": {"datacenter": LABEL, "vm": 42}}])

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has vm=42, expected a string tag value"
    )


ODD_ENTITIES = [
    'vm-"quoted"',
    "vm-'single'",
    "vm-1; DROP TABLE metric_points; --",
    "../../etc/passwd",
    "vm-é-名前-🙂",
    "x" * 10_240,
]


def test_odd_entity_names_stored_as_is() -> None:
    body = [_series(entity, _minutes(index)) for index, entity in enumerate(ODD_ENTITIES)]

    rows, stats = _decode(body)

    assert rows == sorted(
        (entity, None, T0, float(index)) for index, entity in enumerate(ODD_ENTITIES)
    )
    assert stats == DecodeStats(series=6, points=6)
