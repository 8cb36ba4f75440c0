"""The decoder's shortcuts: shared key parsing, the digit-grid parse and ordering whole series.

Each case checks that a shortcut gives the rows and counts that the general path gives.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.opentsdb.results import DecodeStats

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
VM_SPEC = SPECS["vscope.vm.cpu.ready"]
NIC_SPEC = SPECS["vscope.host.net.tx"]
SERVICE = "pcc-37-187-228-180"
LABEL = "pcc-37-187-228-180_datacenter869"
WINDOW = day_window(date(2024, 5, 1))
T0 = WINDOW.start_ms  # 2024-05-01T00:00:00Z in epoch ms
MINUTE = 60_000
CONTEXT = f"metric {VM_SPEC.name}, datacenter {LABEL}, day 2024-05-01"


def _series(entity: str, dps: dict[str, Any], nic: str | None = None) -> dict[str, Any]:
    tags = {"datacenter": LABEL, "host" if nic else "vm": entity}
    if nic is not None:
        tags["nicname"] = nic
    metric = NIC_SPEC.name if nic else VM_SPEC.name
    return {"metric": metric, "tags": tags, "aggregateTags": [], "dps": dps}


def _minutes(*values: Any, start: int = T0) -> dict[str, Any]:
    return {str(start + i * MINUTE): value for i, value in enumerate(values)}


def _decode(
    elements: list[dict[str, Any]], spec: MetricSpec = VM_SPEC
) -> tuple[list[tuple[Any, ...]], DecodeStats]:
    decoded = decode_query_response(
        orjson.dumps(elements),
        spec=spec,
        service_name=SERVICE,
        datacenter_label=LABEL,
        window=WINDOW,
    )
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


def _stats(**counts: int) -> DecodeStats:
    fields = dict.fromkeys(DecodeStats.__dataclass_fields__, 0)
    fields.update(counts)
    return DecodeStats(**fields)


def test_series_out_of_order_reordered() -> None:
    rows, stats = _decode(
        [
            _series("vm-3", _minutes(30, 31)),
            _series("vm-1", _minutes(10, 11)),
            _series("vm-2", _minutes(20, 21)),
        ]
    )

    assert rows == [
        ("vm-1", None, T0, 10.0),
        ("vm-1", None, T0 + MINUTE, 11.0),
        ("vm-2", None, T0, 20.0),
        ("vm-2", None, T0 + MINUTE, 21.0),
        ("vm-3", None, T0, 30.0),
        ("vm-3", None, T0 + MINUTE, 31.0),
    ]
    assert stats == _stats(series=3, points=6)


def test_nic_series_ordered_by_host_nic() -> None:
    rows, stats = _decode(
        [
            _series("esx-2", _minutes(5), nic="vmnic0"),
            _series("esx-1", _minutes(4), nic="vmnic1"),
            _series("esx-1", _minutes(3), nic="vmnic0"),
        ],
        NIC_SPEC,
    )

    assert rows == [
        ("esx-1", "vmnic0", T0, 3.0),
        ("esx-1", "vmnic1", T0, 4.0),
        ("esx-2", "vmnic0", T0, 5.0),
    ]
    assert stats == _stats(series=3, points=3)


def test_shared_keys_keep_series_values() -> None:
    # vm-1 and vm-2 have the same keys, so they share one parsed timestamp array. Dropping
    # the missing value of vm-1 must not drop the point of vm-2 at that time.
    rows, stats = _decode(
        [
            _series("vm-1", _minutes(1, "NaN", 3)),
            _series("vm-2", _minutes(4, 5, 6)),
            _series("vm-3", _minutes(7, 8)),
            _series("vm-4", _minutes(None, 10, 11)),
        ]
    )

    assert rows == [
        ("vm-1", None, T0, 1.0),
        ("vm-1", None, T0 + 2 * MINUTE, 3.0),
        ("vm-2", None, T0, 4.0),
        ("vm-2", None, T0 + MINUTE, 5.0),
        ("vm-2", None, T0 + 2 * MINUTE, 6.0),
        ("vm-3", None, T0, 7.0),
        ("vm-3", None, T0 + MINUTE, 8.0),
        ("vm-4", None, T0 + MINUTE, 10.0),
        ("vm-4", None, T0 + 2 * MINUTE, 11.0),
    ]
    assert stats == _stats(series=4, points=9, dropped_nan=2)


def test_all_missing_series_not_counted() -> None:
    rows, stats = _decode([_series("vm-1", _minutes(1, 2)), _series("vm-2", _minutes("NaN", None))])

    assert rows == [("vm-1", None, T0, 1.0), ("vm-1", None, T0 + MINUTE, 2.0)]
    assert stats == _stats(series=1, points=2, dropped_nan=2)


def test_repeated_series_in_time_order() -> None:
    rows, stats = _decode(
        [
            _series("vm-1", _minutes(1, 2)),
            _series("vm-1", _minutes(3, start=T0 + 2 * MINUTE)),
        ]
    )

    assert rows == [
        ("vm-1", None, T0, 1.0),
        ("vm-1", None, T0 + MINUTE, 2.0),
        ("vm-1", None, T0 + 2 * MINUTE, 3.0),
    ]
    assert stats == _stats(series=1, points=3)


def test_keys_with_leading_zeros_parse() -> None:
    rows, _ = _decode([_series("vm-1", {f"00{T0}": 1, f"00{T0 + MINUTE}": 2})])

    assert rows == [("vm-1", None, T0, 1.0), ("vm-1", None, T0 + MINUTE, 2.0)]


def test_keys_of_mixed_widths_parse() -> None:
    rows, stats = _decode([_series("vm-1", {str(T0 // 1000): 1, str(T0 + MINUTE): 2})])

    assert rows == [("vm-1", None, T0, 1.0), ("vm-1", None, T0 + MINUTE, 2.0)]
    assert stats == _stats(series=1, points=2)


def test_non_ascii_digit_keys_parse() -> None:
    arabic_indic = str(T0).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))

    rows, _ = _decode([_series("vm-1", {arabic_indic: 1})])

    assert rows == [("vm-1", None, T0, 1.0)]


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(f"{str(T0)[:5]},{str(T0)[6:]}", id="comma-inside-a-key-of-the-same-width"),
        pytest.param(f"{str(T0)[:5]}x{str(T0)[6:]}", id="letter-inside-a-key-of-the-same-width"),
    ],
)
def test_same_width_non_digit_key_rejected(bad_key: str) -> None:
    elements = [_series("vm-1", {str(T0): 1, bad_key: 2})]

    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode(elements)

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 0 has dps key {bad_key!r}, "
        "expected an integer epoch timestamp"
    )


def test_negative_key_out_of_window() -> None:
    negative = f"-{str(T0)[1:]}"

    rows, stats = _decode([_series("vm-1", {str(T0): 1, negative: 2})])

    assert rows == [("vm-1", None, T0, 1.0)]
    assert stats == _stats(series=1, points=1, dropped_out_of_window=1)


def test_bad_key_reported_for_its_element() -> None:
    # Element 1 shares its first key with element 0, and its bad key must still be reported.
    elements = [
        _series("vm-1", _minutes(1, 2)),
        _series("vm-2", {str(T0): 1, "later": 2}),
    ]

    with pytest.raises(OpenTSDBDecodeError) as raised:
        _decode(elements)

    assert str(raised.value) == (
        f"invalid OpenTSDB response for {CONTEXT}: element 1 has dps key 'later', expected "
        "an integer epoch timestamp"
    )


def test_key_sets_repeated_out_of_turn() -> None:
    day_start = _minutes(1, 2)
    later = _minutes(3, 4, start=T0 + 10 * MINUTE)

    rows, stats = _decode(
        [
            _series("vm-1", day_start),
            _series("vm-2", later),
            _series("vm-3", day_start),
            _series("vm-4", later),
        ]
    )

    assert [(entity, ts) for entity, _, ts, _ in rows] == [
        ("vm-1", T0),
        ("vm-1", T0 + MINUTE),
        ("vm-2", T0 + 10 * MINUTE),
        ("vm-2", T0 + 11 * MINUTE),
        ("vm-3", T0),
        ("vm-3", T0 + MINUTE),
        ("vm-4", T0 + 10 * MINUTE),
        ("vm-4", T0 + 11 * MINUTE),
    ]
    assert stats == _stats(series=4, points=8)


def test_decodes_from_threads_match() -> None:
    elements = [
        _series(f"vm-{i:03d}", _minutes(*range(i, i + 30), start=T0 + i * MINUTE))
        for i in range(50, 0, -1)
    ]
    expected = _decode(elements)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: _decode(elements), range(8)))

    assert results == [expected] * 8
