"""Cross-series aggregation and bucket reduction, on hand-computed vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vscope_pipeline.simulator.tsdb_aggregate import (
    AGGREGATORS,
    DOUBLE_MAX,
    SeriesPoints,
    aggregate_group,
    check_finite,
)
from vscope_pipeline.simulator.tsdb_aggregate import reduce_runs as reduce_runs_
from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError

NAN = math.nan


def series(points: list[tuple[int, float]]) -> SeriesPoints:
    return (
        np.array([ts for ts, _ in points], np.int64),
        np.array([value for _, value in points], np.float64),
    )


def aggregate(name: str, *members: SeriesPoints, rate: bool = False) -> dict[int, float]:
    timestamps, values = aggregate_group(members, AGGREGATORS[name], rate)
    return dict(zip(timestamps.tolist(), values.tolist(), strict=True))


def same(actual: dict[int, float], expected: dict[int, float]) -> bool:
    """Compare point maps, treating NaN as equal to NaN."""
    return actual.keys() == expected.keys() and all(
        (math.isnan(actual[key]) and math.isnan(value)) or actual[key] == value
        for key, value in expected.items()
    )


# A worked example from OpenTSDB's issue tracker: with LERP, series A at 15 is 41 and
# series B at 30 is 150; count counts the interpolated series too.
SERIES_A = series([(0, 42.0), (30, 40.0)])
SERIES_B = series([(15, 100.0), (45, 200.0)])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sum", {0: 42.0, 15: 141.0, 30: 190.0, 45: 200.0}),
        ("count", {0: 1.0, 15: 2.0, 30: 2.0, 45: 1.0}),
        ("avg", {0: 42.0, 15: 70.5, 30: 95.0, 45: 200.0}),
        ("min", {0: 42.0, 15: 41.0, 30: 40.0, 45: 200.0}),
        ("max", {0: 42.0, 15: 100.0, 30: 150.0, 45: 200.0}),
        # Population standard deviation of {41, 100} and {40, 150}.
        ("dev", {0: 0.0, 15: 29.5, 30: 55.0, 45: 0.0}),
        ("zimsum", {0: 42.0, 15: 100.0, 30: 40.0, 45: 200.0}),
        ("squareSum", {0: 1764.0, 15: 10000.0, 30: 1600.0, 45: 40000.0}),
        # mimmin substitutes the largest double for a missing point, and min ignores it.
        ("mimmin", {0: 42.0, 15: 100.0, 30: 40.0, 45: 200.0}),
        ("mimmax", {0: 42.0, 15: 100.0, 30: 40.0, 45: 200.0}),
        ("pfsum", {0: 42.0, 15: 142.0, 30: 140.0, 45: 200.0}),
        # first and last take series order; a missing point counts as 0 (ZIM).
        ("first", {0: 42.0, 15: 0.0, 30: 40.0, 45: 200.0}),
        ("last", {0: 42.0, 15: 100.0, 30: 0.0, 45: 200.0}),
        ("mult", {0: 42.0, 15: 4100.0, 30: 6000.0, 45: 200.0}),
        ("diff", {0: 0.0, 15: 59.0, 30: 110.0, 45: 0.0}),
        # The upper median sorted[n // 2].
        ("median", {0: 42.0, 15: 100.0, 30: 150.0, 45: 200.0}),
        # Commons Math legacy estimation: position p(n+1)/100, linear between neighbours.
        ("p50", {0: 42.0, 15: 70.5, 30: 95.0, 45: 200.0}),
        ("p90", {0: 42.0, 15: 100.0, 30: 150.0, 45: 200.0}),
        ("ep50r7", {0: 42.0, 15: 70.5, 30: 95.0, 45: 200.0}),
    ],
)
def test_aggregators_interpolate_across_series(name: str, expected: dict[int, float]) -> None:
    assert aggregate(name, SERIES_A, SERIES_B) == expected


def test_sum_follows_documented_example() -> None:
    # OpenTSDB's aggregator documentation prints 25 at t=30, a typo: LERP gives 15 + 15.
    b = series([(0, 10.0), (20, 20.0), (40, 10.0), (60, 20.0)])
    a = series([(10, 5.0), (30, 15.0), (50, 5.0)])
    assert aggregate("sum", b, a) == {
        0: 10.0,
        10: 20.0,
        20: 30.0,
        30: 30.0,
        40: 20.0,
        50: 20.0,
        60: 20.0,
    }


def test_series_contributes_nothing_outside_its_span() -> None:
    early = series([(0, 1.0), (10, 1.0)])
    late = series([(20, 5.0), (30, 5.0)])
    assert aggregate("zimsum", early, late) == {0: 1.0, 10: 1.0, 20: 5.0, 30: 5.0}
    assert aggregate("count", early, late) == {0: 1.0, 10: 1.0, 20: 1.0, 30: 1.0}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sum", {0: 10.0, 10: NAN}),
        ("count", {0: 1.0, 10: 0.0}),
        ("avg", {0: 10.0, 10: NAN}),
        ("min", {0: 10.0, 10: NAN}),
        ("max", {0: 10.0, 10: NAN}),
        ("dev", {0: 0.0, 10: NAN}),
        ("first", {0: 10.0, 10: NAN}),
        ("mult", {0: NAN, 10: NAN}),
        # diff takes the last value as it comes, NaN included.
        ("diff", {0: NAN, 10: NAN}),
        ("median", {0: 10.0, 10: NAN}),
    ],
)
def test_nan_values_are_skipped(name: str, expected: dict[int, float]) -> None:
    # As with fill policy nan: both series have every bucket, some of them NaN.
    with_value = series([(0, 10.0), (10, NAN)])
    all_nan = series([(0, NAN), (10, NAN)])
    assert same(aggregate(name, with_value, all_nan), expected)


def test_rate_series_use_previous_rate() -> None:
    # The first point of each rate series is its rate against time zero: never output,
    # but contributed before the series' first real rate.
    a = series([(1000, 0.001), (2000, 2.0), (4000, 4.0)])
    b = series([(1000, 0.005), (3000, 10.0)])
    assert aggregate("sum", a, b, rate=True) == {2000: 2.005, 3000: 12.0, 4000: 4.0}


def test_rate_series_with_one_point_is_ignored() -> None:
    single = series([(1000, 0.5)])
    assert aggregate("sum", single, rate=True) == {}


def test_empty_group() -> None:
    assert aggregate("sum") == {}


def test_check_finite_rejects_infinity() -> None:
    check_finite(np.array([1.0, DOUBLE_MAX]))
    with pytest.raises(TsdbHttpError) as caught:
        check_finite(np.array([1.0, -math.inf]))
    assert caught.value.status == 400
    assert caught.value.message == "Got Infinity: -Infinity in this aggregation of the group"


RUN_VALUES = np.array([5.0, 1.0, 3.0, 10.0, 2.0, 8.0, 4.0])
RUN_STARTS = np.array([0, 3, 4], np.intp)  # runs [5, 1, 3], [10], [2, 8, 4]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sum", [9.0, 10.0, 14.0]),
        ("zimsum", [9.0, 10.0, 14.0]),
        ("squareSum", [35.0, 100.0, 84.0]),
        ("count", [3.0, 1.0, 3.0]),
        ("avg", [3.0, 10.0, 14.0 / 3]),
        ("min", [1.0, 10.0, 2.0]),
        ("mimmin", [1.0, 10.0, 2.0]),
        ("max", [5.0, 10.0, 8.0]),
        ("mult", [15.0, 10.0, 64.0]),
        ("first", [5.0, 10.0, 2.0]),
        ("last", [3.0, 10.0, 4.0]),
        ("diff", [-2.0, 0.0, 2.0]),
        ("median", [3.0, 10.0, 4.0]),
        # Run [1, 3, 5]: position 0.9 * 4 = 3.6 is past the last value, so 5.
        ("p90", [5.0, 10.0, 8.0]),
        # Run [1, 3, 5]: position 0.75 * 4 = 3.0 is the last value.
        ("p75", [5.0, 10.0, 8.0]),
        # Position 0.5 * 4 = 2.0: the second value.
        ("p50", [3.0, 10.0, 4.0]),
    ],
)
def test_reduce_runs(name: str, expected: list[float]) -> None:
    assert reduce_runs_(RUN_VALUES, RUN_STARTS, AGGREGATORS[name]).tolist() == expected


def test_reduce_runs_dev_is_population() -> None:
    result = reduce_runs_(RUN_VALUES, RUN_STARTS, AGGREGATORS["dev"])
    assert result.tolist() == pytest.approx([math.sqrt(8 / 3), 0.0, math.sqrt(56 / 9)])


def test_reduce_runs_rejects_none() -> None:
    with pytest.raises(ValueError, match="aggregator 'none' cannot reduce a downsample bucket"):
        reduce_runs_(RUN_VALUES, RUN_STARTS, AGGREGATORS["none"])


def test_aggregator_names_are_case_sensitive() -> None:
    assert "squareSum" in AGGREGATORS
    assert "mult" in AGGREGATORS
    assert "SUM" not in AGGREGATORS
    assert "multiply" not in AGGREGATORS
