from __future__ import annotations

from datetime import date

import pytest

from vscope_pipeline.opentsdb.errors import (
    OpenTSDBConnectionError,
    OpenTSDBError,
    OpenTSDBQueryError,
    OpenTSDBReadTimeout,
    OpenTSDBServerError,
    OpenTSDBTimeout,
)
from vscope_pipeline.opentsdb.planning import DayWindow, day_window, sub_window
from vscope_pipeline.opentsdb.split import (
    ENTITY_BATCH_SIZE,
    QueryUnit,
    batch_entities,
    is_too_large,
    split_unit,
    split_window,
)

DAY = day_window(date(2024, 5, 1))
T0 = DAY.start_ms
HOUR = 3_600_000
MINUTE = 60_000


def _window(start_offset_ms: int, stop_offset_ms: int) -> DayWindow:
    return sub_window(DAY, T0 + start_offset_ms, T0 + stop_offset_ms)


def test_split_window_halves_day() -> None:
    assert split_window(DAY, 1_000) == (_window(0, 12 * HOUR), _window(12 * HOUR, 24 * HOUR))


def test_split_window_aligns_to_buckets() -> None:
    # 3 h in 1 h buckets: the cut falls on the first whole bucket after 1 h 30 min.
    assert split_window(_window(0, 3 * HOUR), HOUR) == (
        _window(0, HOUR),
        _window(HOUR, 3 * HOUR),
    )


@pytest.mark.parametrize(
    ("length_ms", "align_ms", "expected"),
    [
        pytest.param(45 * MINUTE, 1_000, 22 * MINUTE + 30_000, id="45-min-raw"),
        pytest.param(30 * MINUTE, 1_000, 15 * MINUTE, id="30-min-is-smallest-split"),
        pytest.param(29 * MINUTE, 1_000, None, id="below-two-minimums"),
        pytest.param(22 * MINUTE + 30_000, 1_000, None, id="22.5-min-stays"),
        pytest.param(HOUR + 30 * MINUTE, HOUR, None, id="bucket-larger-than-half"),
        pytest.param(24 * HOUR, 24 * HOUR, None, id="one-day-bucket"),
    ],
)
def test_split_window_cases(length_ms: int, align_ms: int, expected: int | None) -> None:
    halves = split_window(_window(0, length_ms), align_ms)

    if expected is None:
        assert halves is None
    else:
        assert halves == (_window(0, expected), _window(expected, length_ms))


def test_sub_window_rejects_outside_day() -> None:
    with pytest.raises(ValueError, match="is invalid") as raised:
        sub_window(DAY, T0 - 1, T0 + HOUR)

    assert str(raised.value) == (
        f"window [{T0 - 1}, {T0 + HOUR}) is invalid: expected a non-empty part of the day "
        f"2024-05-01, [{T0}, {T0 + 24 * HOUR})"
    )


def test_split_unit_cuts_time_first() -> None:
    unit = QueryUnit(DAY, ("vm-1", "vm-2"))

    assert split_unit(unit, ("vm-1", "vm-2"), 1_000) == [
        QueryUnit(_window(0, 12 * HOUR), ("vm-1", "vm-2")),
        QueryUnit(_window(12 * HOUR, 24 * HOUR), ("vm-1", "vm-2")),
    ]


def test_split_unit_grouped_into_halves() -> None:
    smallest = _window(0, 20 * MINUTE)

    assert split_unit(QueryUnit(smallest), ("a", "b", "c"), 1_000) == [
        QueryUnit(smallest, ("a",)),
        QueryUnit(smallest, ("b", "c")),
    ]


def test_split_unit_grouped_into_batches() -> None:
    smallest = _window(0, 20 * MINUTE)
    entities = tuple(f"vm-{number:03d}" for number in range(120))

    units = split_unit(QueryUnit(smallest), entities, 1_000)

    assert units is not None
    assert [len(unit.entities or ()) for unit in units] == [50, 50, 20]
    assert [unit.entities for unit in units] == [entities[:50], entities[50:100], entities[100:]]
    assert ENTITY_BATCH_SIZE == 50


@pytest.mark.parametrize(
    ("unit_entities", "expected_entities"),
    [
        pytest.param(("vm-1",), ("vm-1", "vm-2"), id="single-entity"),
        pytest.param(None, ("vm-1",), id="grouped-one-expected"),
        pytest.param(None, (), id="grouped-none-expected"),
    ],
)
def test_split_unit_smallest_is_none(
    unit_entities: tuple[str, ...] | None, expected_entities: tuple[str, ...]
) -> None:
    smallest = _window(0, 20 * MINUTE)

    assert split_unit(QueryUnit(smallest, unit_entities), expected_entities, 1_000) is None


def test_batch_entities_sizes() -> None:
    assert batch_entities(["a", "b", "c", "d", "e"], 2) == [("a", "b"), ("c", "d"), ("e",)]
    assert batch_entities([], 2) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(OpenTSDBQueryError("x", status=413), True, id="413"),
        pytest.param(
            OpenTSDBServerError(
                "x",
                status=500,
                server_message="... (FETCH exceeded limit of 20000000 datapoints, current "
                "count is 20000001)",
            ),
            True,
            id="500-fetch-limit",
        ),
        pytest.param(
            OpenTSDBServerError("x", status=500, server_message="NullPointerException"),
            False,
            id="500-other",
        ),
        pytest.param(OpenTSDBReadTimeout("x"), True, id="read-timeout"),
        pytest.param(OpenTSDBTimeout("x"), False, id="connect-timeout"),
        pytest.param(OpenTSDBConnectionError("x"), False, id="connection"),
        pytest.param(OpenTSDBQueryError("x", status=408), False, id="408"),
        pytest.param(OpenTSDBQueryError("x", status=400), False, id="400"),
    ],
)
def test_is_too_large_cases(error: OpenTSDBError, expected: bool) -> None:
    assert is_too_large(error) is expected
