"""OpenTSDB 2.x aggregators: within a downsample bucket, and across the series of a group.

Cross-series aggregation copies OpenTSDB's `AggregationIterator`:

- the output timestamps are the union of the member series' timestamps;
- a series is active from its first point through its last. Outside that span it contributes
  nothing, not even a zero;
- an active series without a point at t contributes a value from its aggregator's
  interpolation: LERP (linear between its neighbours), ZIM (zero), MAX or MIN (the largest or
  smallest double, which min and max then ignore) or PREV (its previous value);
- so `count` counts the active series, interpolated ones included;
- rate series are never interpolated. Each one contributes its latest rate, and before its
  first real rate the rate of its first point against time zero, from the first output
  timestamp through its last rate.

Every value is a double, as vScope stores floats: OpenTSDB's integer arithmetic for
all-integer data is not reproduced. NaN values (from the `nan` and `null` fill policies) are
skipped by every function except `mult`, `first`, `last` and the last value of `diff`.
The work is vectorised per series over the group's timestamps.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError

TimeArray = npt.NDArray[np.int64]
ValueArray = npt.NDArray[np.float64]
SeriesPoints = tuple[TimeArray, ValueArray]

DOUBLE_MAX = float(np.finfo(np.float64).max)


class Interpolation(enum.Enum):
    """The value an active series contributes at a timestamp where it has no point."""

    LERP = "lerp"
    ZIM = "zim"
    MAX = "max"
    MIN = "min"
    PREV = "prev"


@dataclass(frozen=True)
class Aggregator:
    """An aggregation function registered under `name` in OpenTSDB 2.4.

    `function` names the reduction: sum, square_sum, min, max, avg, count, dev, mult, diff,
    first, last, median, percentile or none. `percentile` is in (0, 100].
    """

    name: str
    function: str
    interpolation: Interpolation
    percentile: float = 0.0


def _percentile_aggregators() -> list[Aggregator]:
    # The ep*r3 and ep*r7 variants only change the estimation for integer data in OpenTSDB,
    # so on doubles they equal the plain pNN aggregators.
    levels = {"50": 50.0, "75": 75.0, "90": 90.0, "95": 95.0, "99": 99.0, "999": 99.9}
    aggregators = []
    for suffix, level in levels.items():
        for name in (f"p{suffix}", f"ep{suffix}r3", f"ep{suffix}r7"):
            aggregators.append(Aggregator(name, "percentile", Interpolation.LERP, level))
    return aggregators


_LERP, _ZIM = Interpolation.LERP, Interpolation.ZIM

# Names are case-sensitive: `squareSum` and `mult` exactly, as OpenTSDB registers them.
AGGREGATORS: dict[str, Aggregator] = {
    agg.name: agg
    for agg in (
        Aggregator("sum", "sum", _LERP),
        Aggregator("min", "min", _LERP),
        Aggregator("max", "max", _LERP),
        Aggregator("avg", "avg", _LERP),
        Aggregator("none", "none", _ZIM),
        Aggregator("median", "median", _LERP),
        Aggregator("mult", "mult", _LERP),
        Aggregator("dev", "dev", _LERP),
        Aggregator("diff", "diff", _LERP),
        Aggregator("count", "count", _ZIM),
        Aggregator("zimsum", "sum", _ZIM),
        Aggregator("mimmin", "min", Interpolation.MAX),
        Aggregator("mimmax", "max", Interpolation.MIN),
        Aggregator("first", "first", _ZIM),
        Aggregator("last", "last", _ZIM),
        Aggregator("pfsum", "sum", Interpolation.PREV),
        Aggregator("squareSum", "square_sum", _ZIM),
        *_percentile_aggregators(),
    )
}


def reduce_runs(
    values: ValueArray, starts: npt.NDArray[np.intp], aggregator: Aggregator
) -> ValueArray:
    """Reduce consecutive runs of `values`, one per downsample bucket, to one value each.

    `starts` contains the ascending index where each non-empty run begins, the first being 0.
    Values inside a run are in time order, which `first`, `last` and `diff` rely on. The
    values come from storage, so they are never NaN.
    """
    ends = np.append(starts[1:], len(values))
    lengths = (ends - starts).astype(np.float64)
    function = aggregator.function
    if function == "sum":
        return np.add.reduceat(values, starts)
    if function == "square_sum":
        return np.add.reduceat(values * values, starts)
    if function == "count":
        return lengths
    if function == "avg":
        return np.add.reduceat(values, starts) / lengths
    if function == "min":
        return np.minimum.reduceat(values, starts)
    if function == "max":
        return np.maximum.reduceat(values, starts)
    if function == "mult":
        return np.multiply.reduceat(values, starts)
    if function == "first":
        return values[starts]
    if function == "last":
        return values[ends - 1]
    if function == "diff":
        return values[ends - 1] - values[starts]
    if function == "dev":
        # Population standard deviation: OpenTSDB's `dev` divides by n, because its Welford
        # loop ends with n one past the count. NOTE: computed in two passes here, so the last
        # bits can differ from OpenTSDB's running computation.
        means = np.add.reduceat(values, starts) / lengths
        deviations = values - np.repeat(means, ends - starts)
        return np.sqrt(np.add.reduceat(deviations * deviations, starts) / lengths)
    if function in ("median", "percentile"):
        run_ids = np.repeat(np.arange(len(starts)), ends - starts)
        ordered = values[np.lexsort((values, run_ids))]
        return _rank_statistic(ordered, starts, ends - starts, aggregator)
    raise ValueError(f"aggregator {aggregator.name!r} cannot reduce a downsample bucket")


def _rank_statistic(
    ordered: ValueArray,
    offsets: npt.NDArray[np.intp],
    counts: npt.NDArray[np.intp],
    aggregator: Aggregator,
) -> ValueArray:
    """Pick the median or percentile of sorted runs `ordered[offset : offset + count]`.

    `median` is the upper median `sorted[n // 2]`. Percentiles use Apache Commons Math's
    default (legacy) estimation, which OpenTSDB calls: position p(n + 1)/100, clamped to the
    first and last value, linear between neighbours. An empty run gives NaN.
    """
    result = np.full(len(counts), np.nan)
    present = counts > 0
    if aggregator.function == "median":
        result[present] = ordered[offsets[present] + counts[present] // 2]
        return result
    n = counts[present].astype(np.float64)
    base = offsets[present]
    # Commons Math computes the quantile first, then the position: the order changes rounding.
    position = (aggregator.percentile / 100) * (n + 1)
    floor = np.floor(position)
    lower_index = np.clip(floor.astype(np.intp) - 1, 0, counts[present] - 1)
    upper_index = np.clip(floor.astype(np.intp), 0, counts[present] - 1)
    lower = ordered[base + lower_index]
    upper = ordered[base + upper_index]
    estimate = lower + (position - floor) * (upper - lower)
    estimate = np.where(position < 1, ordered[base], estimate)
    estimate = np.where(position >= n, ordered[base + counts[present] - 1], estimate)
    result[present] = estimate
    return result


def aggregate_group(
    series: Sequence[SeriesPoints], aggregator: Aggregator, rate: bool
) -> SeriesPoints:
    """Aggregate the series of one output group into one series, as OpenTSDB does.

    With `rate`, each series' first point is its rate against time zero: it is contributed
    before the series' first real rate but is never an output timestamp itself.
    """
    if rate:
        own_points = [ts[1:] for ts, _ in series if len(ts) > 1]
    else:
        own_points = [ts for ts, _ in series if len(ts) > 0]
    if not own_points:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    first = own_points[0]
    if all(np.array_equal(first, other) for other in own_points[1:]):
        # The usual case (one series, or series sampled at the same times) needs no sort.
        timestamps = first
    else:
        timestamps = np.unique(np.concatenate(own_points))
    accumulator = _make_accumulator(aggregator, len(timestamps))

    for ts, values in series:
        if rate:
            if len(ts) < 2:
                continue
            _add_rate_series(accumulator, timestamps, ts, values)
        elif len(ts) > 0:
            _add_series(accumulator, timestamps, ts, values, aggregator.interpolation)
    return timestamps, accumulator.result()


def check_finite(values: ValueArray) -> None:
    """Raise the error OpenTSDB returns when an aggregate overflows to infinity."""
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        text = "Infinity" if values[infinite[0]] > 0 else "-Infinity"
        raise TsdbHttpError(400, f"Got Infinity: {text} in this aggregation of the group")


def _add_series(
    accumulator: _Accumulator,
    timestamps: TimeArray,
    ts: TimeArray,
    values: ValueArray,
    interpolation: Interpolation,
) -> None:
    low = int(np.searchsorted(timestamps, ts[0], "left"))
    high = int(np.searchsorted(timestamps, ts[-1], "right"))
    wanted = timestamps[low:high]
    if len(wanted) == len(ts):
        # Every output timestamp in the series' span is one of its own points.
        accumulator.add(low, high, values)
        return

    positions = np.searchsorted(ts, wanted, "left")
    contributed = values[positions]
    missing = np.flatnonzero(ts[positions] != wanted)
    after = positions[missing]
    before = after - 1
    if interpolation is Interpolation.LERP:
        x0 = ts[before]
        y0 = values[before]
        # Same operation order as OpenTSDB: y0 + (x - x0) * (y1 - y0) / (x1 - x0).
        contributed[missing] = y0 + (wanted[missing] - x0) * (values[after] - y0) / (ts[after] - x0)
    elif interpolation is Interpolation.ZIM:
        contributed[missing] = 0.0
    elif interpolation is Interpolation.MAX:
        contributed[missing] = DOUBLE_MAX
    elif interpolation is Interpolation.MIN:
        contributed[missing] = -DOUBLE_MAX
    else:
        contributed[missing] = values[before]
    accumulator.add(low, high, contributed)


def _add_rate_series(
    accumulator: _Accumulator, timestamps: TimeArray, ts: TimeArray, values: ValueArray
) -> None:
    high = int(np.searchsorted(timestamps, ts[-1], "right"))
    latest = np.searchsorted(ts, timestamps[:high], "right") - 1
    accumulator.add(0, high, values[np.maximum(latest, 0)])


class _Accumulator:
    """Running state of one aggregation over the output timestamps, fed series by series."""

    def __init__(self, size: int) -> None:
        self.size = size

    def add(self, low: int, high: int, values: ValueArray) -> None:
        raise NotImplementedError

    def result(self) -> ValueArray:
        raise NotImplementedError


class _SumAccumulator(_Accumulator):
    def __init__(self, size: int, function: str) -> None:
        super().__init__(size)
        self.function = function
        self.total = np.zeros(size)
        self.count = np.zeros(size, np.int64)

    def add(self, low: int, high: int, values: ValueArray) -> None:
        valid = ~np.isnan(values)
        terms = values * values if self.function == "square_sum" else values
        self.total[low:high] += np.where(valid, terms, 0.0)
        self.count[low:high] += valid

    def result(self) -> ValueArray:
        if self.function == "count":
            return self.count.astype(np.float64)
        empty = self.count == 0
        if self.function == "avg":
            return np.where(empty, np.nan, self.total / np.maximum(self.count, 1))
        return np.where(empty, np.nan, self.total)


class _ExtremeAccumulator(_Accumulator):
    def __init__(self, size: int, function: str) -> None:
        super().__init__(size)
        self.is_min = function == "min"
        self.extreme = np.full(size, np.inf if self.is_min else -np.inf)

    def add(self, low: int, high: int, values: ValueArray) -> None:
        window = self.extreme[low:high]
        # fmin and fmax ignore NaN, as OpenTSDB's min and max skip it.
        combine = np.fmin if self.is_min else np.fmax
        self.extreme[low:high] = combine(window, values)

    def result(self) -> ValueArray:
        # The starting infinity left untouched means that every contribution was NaN.
        untouched = np.inf if self.is_min else -np.inf
        return np.where(self.extreme == untouched, np.nan, self.extreme)


class _DevAccumulator(_Accumulator):
    """Welford's running variance over the non-NaN values, in series order like OpenTSDB."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.count = np.zeros(size, np.int64)
        self.mean = np.zeros(size)
        self.squares = np.zeros(size)

    def add(self, low: int, high: int, values: ValueArray) -> None:
        valid = ~np.isnan(values)
        count = self.count[low:high] + valid
        mean = self.mean[low:high]
        delta = np.where(valid, values - mean, 0.0)
        new_mean = mean + delta / np.maximum(count, 1)
        self.squares[low:high] += np.where(valid, delta * (values - new_mean), 0.0)
        self.mean[low:high] = new_mean
        self.count[low:high] = count

    def result(self) -> ValueArray:
        variance = self.squares / np.maximum(self.count, 1)
        return np.where(self.count == 0, np.nan, np.sqrt(variance))


class _ProductAccumulator(_Accumulator):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.product = np.ones(size)

    def add(self, low: int, high: int, values: ValueArray) -> None:
        self.product[low:high] *= values

    def result(self) -> ValueArray:
        return self.product


class _OrderAccumulator(_Accumulator):
    """`first`, `last`, `diff` and `none`: values picked by series order, NaN included."""

    def __init__(self, size: int, function: str) -> None:
        super().__init__(size)
        self.function = function
        self.first = np.full(size, np.nan)
        self.has_first = np.zeros(size, bool)
        self.last = np.full(size, np.nan)
        self.has_later = np.zeros(size, bool)

    def add(self, low: int, high: int, values: ValueArray) -> None:
        has_first = self.has_first[low:high]
        if self.function == "diff":
            # diff starts at the first non-NaN value; later values count even when NaN.
            self.has_later[low:high] |= has_first
            self.last[low:high] = np.where(has_first, values, self.last[low:high])
            takes_first = ~has_first & ~np.isnan(values)
        else:
            self.last[low:high] = values
            takes_first = ~has_first
        self.first[low:high] = np.where(takes_first, values, self.first[low:high])
        self.has_first[low:high] |= takes_first

    def result(self) -> ValueArray:
        if self.function == "first":
            return self.first
        if self.function == "diff":
            difference = np.where(self.has_later, self.last - self.first, 0.0)
            return np.where(self.has_first, difference, np.nan)
        return self.last


class _RankAccumulator(_Accumulator):
    """`median` and percentiles: keeps every contribution, as a (series x time) matrix."""

    def __init__(self, size: int, aggregator: Aggregator) -> None:
        super().__init__(size)
        self.aggregator = aggregator
        self.rows: list[ValueArray] = []

    def add(self, low: int, high: int, values: ValueArray) -> None:
        row = np.full(self.size, np.nan)
        row[low:high] = values
        self.rows.append(row)

    def result(self) -> ValueArray:
        # np.sort puts NaN last, so each column's first `count` entries are its values.
        matrix = np.sort(np.vstack(self.rows), axis=0)
        counts = np.count_nonzero(~np.isnan(matrix), axis=0)
        flat = matrix.T.ravel()
        offsets = np.arange(self.size) * matrix.shape[0]
        return _rank_statistic(flat, offsets, counts, self.aggregator)


def _make_accumulator(aggregator: Aggregator, size: int) -> _Accumulator:
    function = aggregator.function
    if function in ("sum", "square_sum", "count", "avg"):
        return _SumAccumulator(size, function)
    if function in ("min", "max"):
        return _ExtremeAccumulator(size, function)
    if function == "dev":
        return _DevAccumulator(size)
    if function == "mult":
        return _ProductAccumulator(size)
    if function in ("first", "last", "diff", "none"):
        return _OrderAccumulator(size, function)
    return _RankAccumulator(size, aggregator)
