from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.opentsdb.results import DecodeStats

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
VM_SPEC = SPECS["vscope.vm.cpu.usage.perc"]
NIC_SPEC = SPECS["vscope.host.net.rx"]
SERVICE = "pcc-37-187-228-180"
LABEL = "pcc-37-187-228-180_datacenter869"
DAY = date(2024, 5, 1)
WINDOW = day_window(DAY)
T0 = WINDOW.start_ms  # 2024-05-01T00:00:00Z in epoch ms
STOP = WINDOW.stop_ms  # 2024-05-02T00:00:00Z, the first millisecond of the next day
MINUTE = 60_000


def _series(
    entity: str,
    dps: dict[str, Any],
    *,
    metric: str = VM_SPEC.name,
    entity_label: str = "vm",
    nic: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    tags = {"datacenter": LABEL, entity_label: entity, **(extra_tags or {})}
    if nic is not None:
        tags["nicname"] = nic
    return {"metric": metric, "tags": tags, "aggregateTags": [], "dps": dps}


def _decode(elements: Any, spec: MetricSpec = VM_SPEC) -> tuple[dict[str, list[Any]], DecodeStats]:
    content = elements if isinstance(elements, bytes) else orjson.dumps(elements)
    decoded = decode_query_response(
        content, spec=spec, service_name=SERVICE, datacenter_label=LABEL, window=WINDOW
    )
    assert decoded.table.schema == METRIC_FILE_SCHEMA
    columns = decoded.table.to_pydict()
    columns["ts"] = decoded.table.column("ts").cast(pa.int64()).to_pylist()
    return columns, decoded.stats


def _stats(**counts: int) -> DecodeStats:
    return DecodeStats(**counts)


def _vm_columns(entities: list[str], ts: list[int], values: list[float]) -> dict[str, list[Any]]:
    rows = len(ts)
    return {
        "entity_kind": ["vm"] * rows,
        "service_name": [SERVICE] * rows,
        "datacenter": [LABEL] * rows,
        "entity": entities,
        "nic": [None] * rows,
        "ts": ts,
        "value": values,
    }


DECODE_CASES = [
    pytest.param(
        [],
        _vm_columns([], [], []),
        _stats(),
        id="empty-array",
    ),
    pytest.param(
        # Java's Double.toString writes exponents such as 1.0E-4; integers stay integers.
        b'[{"metric":"vscope.vm.cpu.usage.perc","tags":{"datacenter":"'
        + LABEL.encode()
        + b'","vm":"vm-1"},"aggregateTags":[],"dps":{"'
        + str(T0).encode()
        + b'":42,"'
        + str(T0 + MINUTE).encode()
        + b'":2.5,"'
        + str(T0 + 2 * MINUTE).encode()
        + b'":1.0E-4,"'
        + str(T0 + 3 * MINUTE).encode()
        + b'":9.349986906415408E1}}]',
        _vm_columns(
            ["vm-1"] * 4,
            [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE],
            [42.0, 2.5, 0.0001, 93.49986906415408],
        ),
        _stats(series=1, points=4),
        id="ints-floats-and-exponents",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): 1.5, str(T0 + MINUTE): "NaN", str(T0 + 2 * MINUTE): None})],
        _vm_columns(["vm-1"], [T0], [1.5]),
        _stats(series=1, points=1, dropped_nan=2),
        id="nan-string-and-null-dropped",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): "NaN", str(T0 + MINUTE): None})],
        _vm_columns([], [], []),
        _stats(dropped_nan=2),
        id="series-of-only-missing-values",
    ),
    pytest.param(
        [_series("vm-1", {}), _series("vm-2", {str(T0): 3})],
        _vm_columns(["vm-2"], [T0], [3.0]),
        _stats(series=1, points=1, empty_series=1),
        id="empty-dps-skipped",
    ),
    pytest.param(
        [_series("vm-1", {str(T0 // 1000): 1, str(T0 // 1000 + 60): 2})],
        _vm_columns(["vm-1", "vm-1"], [T0, T0 + MINUTE], [1.0, 2.0]),
        _stats(series=1, points=2),
        id="second-keys-converted",
    ),
    pytest.param(
        [
            _series(
                "vm-1",
                {str(T0): 7},
                extra_tags={"env": "prod", "servicename": SERVICE, "servicetype": "pcc"},
            )
        ],
        _vm_columns(["vm-1"], [T0], [7.0]),
        _stats(series=1, points=1),
        id="extra-tags-ignored",
    ),
    pytest.param(
        [
            _series("vm-1", {str(T0): 7}),
            {"statsSummary": {"datapoints": 1, "queryIdx_00": {"emittedDPs": 1}}},
            {"metric": "", "tags": {}, "aggregateTags": [], "dps": {}},
        ],
        _vm_columns(["vm-1"], [T0], [7.0]),
        _stats(series=1, points=1, skipped_elements=2),
        id="stats-summary-and-nameless-elements-skipped",
    ),
    pytest.param(
        [
            _series(
                "vm-1",
                {
                    str(T0 - 1): 1,
                    str(T0): 2,
                    str(STOP - 1): 3,
                    str(STOP): 4,
                    str(STOP + MINUTE): "NaN",
                },
            )
        ],
        _vm_columns(["vm-1", "vm-1"], [T0, STOP - 1], [2.0, 3.0]),
        _stats(series=1, points=2, dropped_out_of_window=2, dropped_nan=1),
        id="points-outside-the-day-dropped",
    ),
    pytest.param(
        [
            _series("vm-b", {str(T0 + MINUTE): 2, str(T0): 1}),
            _series("vm-a", {str(T0 + 2 * MINUTE): 6, str(T0): 4, str(T0 + MINUTE): 5}),
        ],
        _vm_columns(
            ["vm-a", "vm-a", "vm-a", "vm-b", "vm-b"],
            [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0, T0 + MINUTE],
            [4.0, 5.0, 6.0, 1.0, 2.0],
        ),
        _stats(series=2, points=5),
        id="sorted-by-entity-then-ts",
    ),
    pytest.param(
        [
            _series("vm-1", {str(T0): 1, str(T0 + MINUTE): 2}),
            _series("vm-1", {str(T0 + MINUTE): 20, str(T0 + 2 * MINUTE): 30}),
        ],
        _vm_columns(["vm-1"] * 3, [T0, T0 + MINUTE, T0 + 2 * MINUTE], [1.0, 20.0, 30.0]),
        _stats(series=1, points=3, duplicates=1),
        id="duplicate-series-keeps-last",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): 1, str(T0 // 1000): 2})],
        _vm_columns(["vm-1"], [T0], [2.0]),
        _stats(series=1, points=1, duplicates=1),
        id="same-instant-in-seconds-and-ms-keeps-last",
    ),
    pytest.param(
        [_series("vm-é", {str(T0): 1}), _series("vm-z", {str(T0): 2})],
        _vm_columns(["vm-z", "vm-é"], [T0, T0], [2.0, 1.0]),
        _stats(series=2, points=2),
        id="unicode-entities-in-code-point-order",
    ),
]


@pytest.mark.parametrize(("elements", "expected_columns", "expected_stats"), DECODE_CASES)
def test_decode_cases(
    elements: Any, expected_columns: dict[str, list[Any]], expected_stats: DecodeStats
) -> None:
    columns, stats = _decode(elements)

    assert columns == expected_columns
    assert stats == expected_stats


def test_decode_per_nic_metric() -> None:
    elements = [
        _series("esx-2", {str(T0): 5}, metric=NIC_SPEC.name, entity_label="host", nic="vmnic0"),
        _series("esx-1", {str(T0): 3}, metric=NIC_SPEC.name, entity_label="host", nic="vmnic1"),
        _series("esx-1", {str(T0): 2}, metric=NIC_SPEC.name, entity_label="host", nic="vmnic0"),
    ]

    columns, stats = _decode(elements, NIC_SPEC)

    assert columns == {
        "entity_kind": ["host", "host", "host"],
        "service_name": [SERVICE] * 3,
        "datacenter": [LABEL] * 3,
        "entity": ["esx-1", "esx-1", "esx-2"],
        "nic": ["vmnic0", "vmnic1", "vmnic0"],
        "ts": [T0, T0, T0],
        "value": [2.0, 3.0, 5.0],
    }
    assert stats == _stats(series=3, points=3)


def test_decode_ignores_nicname_of_plain_metric() -> None:
    columns, _ = _decode([_series("vm-1", {str(T0): 1}, nic="eth0")])

    assert columns["nic"] == [None]


CONTEXT = f"metric vscope.vm.cpu.usage.perc, datacenter {LABEL}, day 2024-05-01"
EXPECTED_VALUE = (
    'expected a number, a string holding a number, "NaN", "Infinity", "-Infinity" or null'
)

MALFORMED_CASES = [
    pytest.param(
        b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        f"invalid OpenTSDB response for {CONTEXT}: the body is not JSON, it starts with "
        "b'<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>'. A "
        "proxy may have answered instead of OpenTSDB: check the endpoint URL",
        id="html-page",
    ),
    pytest.param(
        {"error": {"code": 400, "message": "No such name for 'metrics': 'x'"}},
        f"invalid OpenTSDB response for {CONTEXT}: expected a JSON array of series, got "
        "{'error': {'code': 400, 'message': \"No such name for 'metrics': 'x'\"}}",
        id="error-object",
    ),
    pytest.param(
        [5],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 is 5, expected a series object",
        id="element-not-object",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): 1}, metric="vscope.vm.mem.usage.perc")],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 is a series of metric "
        "'vscope.vm.mem.usage.perc', expected 'vscope.vm.cpu.usage.perc'",
        id="other-metric",
    ),
    pytest.param(
        [{**_series("vm-1", {}), "dps": [[T0, 1]]}],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has dps [[1714521600000, 1]], "
        "expected an object of timestamp keys and values",
        id="dps-as-arrays",
    ),
    pytest.param(
        [
            {
                "metric": VM_SPEC.name,
                "tags": {"datacenter": LABEL},
                "aggregateTags": ["vm"],
                "dps": {str(T0): 1},
            }
        ],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has no 'vm' tag (tags "
        f"{{'datacenter': '{LABEL}'}}), so its series cannot be identified",
        id="entity-tag-merged",
    ),
    pytest.param(
        [{"metric": VM_SPEC.name, "tags": None, "dps": {str(T0): 1}}],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has tags None, expected an object",
        id="tags-missing",
    ),
    pytest.param(
        [
            {
                "metric": VM_SPEC.name,
                "tags": {"datacenter": "pcc-1_datacenter1", "vm": "vm-1"},
                "dps": {str(T0): 1},
            }
        ],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has "
        f"datacenter='pcc-1_datacenter1', expected '{LABEL}'; the server ignored the "
        "datacenter filter",
        id="other-datacenter",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): 1, "later": 2})],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has dps key 'later', expected "
        "an integer epoch timestamp",
        id="non-numeric-key",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): 1, str(T0 + MINUTE): "high"})],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has value 'high', {EXPECTED_VALUE}",
        id="text-value",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): {"value": 1}})],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has value {{'value': 1}}, "
        f"{EXPECTED_VALUE}",
        id="object-value",
    ),
    pytest.param(
        [_series("vm-1", {str(T0): [1], str(T0 + MINUTE): [2]})],
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has value [1], {EXPECTED_VALUE}",
        id="array-values",
    ),
]


@pytest.mark.parametrize(("elements", "message"), MALFORMED_CASES)
def test_decode_rejects_malformed(elements: Any, message: str) -> None:
    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode(elements)

    assert str(raised.value) == message
