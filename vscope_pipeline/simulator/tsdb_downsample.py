"""OpenTSDB 2.x downsampling: the `<n><unit>-<agg>[-<fill>]` spec, scan window, buckets, fills.

As in OpenTSDB 2.4:

- buckets are aligned to epoch multiples of the interval, not to the query start. Each bucket
  contains `[k, k + interval)` and is stamped with its start k;
- `all` (any interval containing `all`, e.g. `0all-sum`) reduces the points with
  `start <= ts < end` to one point stamped with the query start;
- the fill policies `nan`, `null` and `zero` emit every bucket of the scan window for each
  series that has data, empty ones as NaN (serialised as "NaN" or null) or 0.0;
- storage is read over a padded scan window (whole hours, widened to whole intervals), so
  neighbouring points outside the query range feed interpolation, rates and edge buckets.

Calendar buckets (the `c` suffix) are accepted only where, in UTC, they coincide with epoch
buckets (intervals that divide a second, minute, hour or day, e.g. `1dc`, `1hc`, `15mc`);
others are rejected, since OVHcloud's proxy documents no `timezone` or `useCalendar`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from vscope_pipeline.simulator.tsdb_aggregate import (
    AGGREGATORS,
    Aggregator,
    SeriesPoints,
    TimeArray,
    ValueArray,
    reduce_runs,
)
from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError, TsdbHttpError
from vscope_pipeline.simulator.tsdb_time import parse_duration

# OpenTSDB stores one row per series and hour, so scans start and end on whole hours.
_ROW_SPAN_S = 3600

# Per calendar unit: the unit in ms, and the count of units that a calendar interval must
# divide for its buckets to fall on epoch multiples in UTC. OpenTSDB's
# DateTime.previousInterval then anchors them on a whole second, minute, hour or day.
_CALENDAR_UNITS = {
    "ms": (1, 1000),
    "s": (1000, 60),
    "m": (60_000, 60),
    "h": (3_600_000, 24),
    "d": (86_400_000, 1),
}


class FillPolicy(enum.Enum):
    """The value a downsampler emits for an empty bucket."""

    NONE = "none"  # nothing: other series interpolate across the gap
    NAN = "nan"  # NaN, serialised as the JSON string "NaN"
    NULL = "null"  # NaN, serialised as JSON null
    ZERO = "zero"  # 0.0, which takes part in the aggregation
    SCALAR = "scalar"  # parsed by OpenTSDB 2.4 but not implemented: an empty bucket fails


@dataclass(frozen=True)
class DownsampleSpec:
    """A parsed downsample spec. `interval_ms` is 0 for `all`."""

    text: str
    interval_ms: int
    aggregator: Aggregator
    fill: FillPolicy

    @property
    def run_all(self) -> bool:
        return self.interval_ms == 0


@dataclass(frozen=True)
class ScanWindow:
    """The storage range OpenTSDB reads for a query, `[start_ms, end_ms)`."""

    start_ms: int
    end_ms: int


def parse_downsample(text: str) -> DownsampleSpec:
    """Parse `<n><unit>[c]-<agg>[-<fill>]`, raising InvalidQueryError with OpenTSDB's message."""
    parts = text.split("-")
    # Java's String.split drops trailing empty strings, so `1m-avg-` has two parts.
    while parts and parts[-1] == "":
        parts.pop()
    if len(parts) < 2:
        raise InvalidQueryError(
            f"Invalid downsampling specifier '{text}': must provide at least interval and function"
        )
    if len(parts) > 3:
        raise InvalidQueryError(
            f"Invalid downsampling specifier '{text}': must consist of interval, function, "
            "and optional fill policy"
        )

    interval_text = parts[0]
    if "all" in interval_text:
        interval_ms = 0
    elif not interval_text:
        # OpenTSDB reads the last character of the empty interval and fails with Java's
        # StringIndexOutOfBoundsException, whose message it returns as is.
        raise InvalidQueryError("String index out of range: -1")
    elif interval_text.endswith("c"):
        interval_ms = parse_duration(interval_text[:-1])
        _check_calendar_interval(interval_text, interval_ms)
    else:
        interval_ms = parse_duration(interval_text)

    aggregator = AGGREGATORS.get(parts[1])
    if aggregator is None:
        raise InvalidQueryError(f"No such downsampling function: {parts[1]}")
    if aggregator.function == "none":
        raise InvalidQueryError("cannot use the NONE aggregator for downsampling")

    fill = FillPolicy.NONE
    if len(parts) == 3:
        names = {policy.value: policy for policy in FillPolicy}
        if parts[2].lower() not in names:
            raise InvalidQueryError(f"Unrecognized fill policy: {parts[2]}")
        fill = names[parts[2].lower()]
    return DownsampleSpec(text, interval_ms, aggregator, fill)


def _check_calendar_interval(interval_text: str, interval_ms: int) -> None:
    duration = interval_text[:-1]
    unit = "ms" if duration.lower().endswith("ms") else duration[-1:].lower()
    unit_ms, units_per_anchor = _CALENDAR_UNITS.get(unit, (0, 0))
    if unit_ms == 0 or units_per_anchor % (interval_ms // unit_ms) != 0:
        raise InvalidQueryError(
            f"Calendar downsampling interval '{interval_text}' is not supported by the "
            "simulator: use one that divides a second, minute, hour or day (e.g. 1dc, 1hc, "
            "15mc), or an epoch-aligned interval without the 'c'"
        )


def scan_window(start_ms: int, end_ms: int, spec: DownsampleSpec | None) -> ScanWindow:
    """Return the padded range OpenTSDB scans for a query, as `TsdbQuery` computes it.

    The start moves back to the interval boundary, then to the hour. The end moves one second
    forward, then to the next interval boundary (even when already on one), then on to a
    whole hour. Without downsampling it moves to the next whole hour. The arithmetic is in
    seconds, as in OpenTSDB, and `all` counts as no downsampling.
    """
    interval = spec.interval_ms if spec is not None else 0
    start_s = start_ms // 1000
    if interval > 0:
        start_s -= ((1000 * start_s) % interval) // 1000
    start_s = max(start_s - start_s % _ROW_SPAN_S, 0)

    end_s = end_ms // 1000 + 1
    if interval > 0:
        end_s += (interval - (1000 * end_s) % interval) // 1000
        if end_s % _ROW_SPAN_S:
            end_s += _ROW_SPAN_S - end_s % _ROW_SPAN_S
    else:
        end_s += _ROW_SPAN_S - end_s % _ROW_SPAN_S
    return ScanWindow(start_s * 1000, end_s * 1000)


def downsample_series(
    ts: TimeArray,
    values: ValueArray,
    spec: DownsampleSpec,
    window: ScanWindow,
    query_start_ms: int,
    query_end_ms: int,
    *,
    end_aligned: bool = False,
) -> SeriesPoints:
    """Downsample one series' scanned points (ascending, non-empty) into bucket points.

    With `end_aligned`, buckets are `(s - interval, s]` with `s` congruent to the query end
    modulo the interval, stamped with `s`, as OVH's proxy (Warp 10's BUCKETIZE) makes them.
    """
    if spec.run_all:
        inside = (ts >= query_start_ms) & (ts < query_end_ms)
        if not inside.any():
            return np.empty(0, np.int64), np.empty(0, np.float64)
        single = reduce_runs(values[inside], np.zeros(1, np.intp), spec.aggregator)
        return np.array([query_start_ms], np.int64), single

    interval = spec.interval_ms
    # Every stamp is congruent to `offset` modulo the interval.
    offset = query_end_ms % interval if end_aligned else 0
    # Epoch buckets are stamped with their first millisecond, end-aligned ones with their last.
    keys = ts + (query_end_ms - ts) % interval if end_aligned else ts - ts % interval
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    bucket_ts = keys[starts]
    bucket_values = reduce_runs(values, starts, spec.aggregator)
    if spec.fill is FillPolicy.NONE:
        return bucket_ts, bucket_values

    # Filling covers the aligned scan window. OpenTSDB's filling downsampler stops before the
    # aligned scan end, so a bucket from there on is dropped.
    grid_start = window.start_ms - (window.start_ms - offset) % interval
    grid_end = window.end_ms - (window.end_ms - offset) % interval
    grid = np.arange(grid_start, grid_end, interval, dtype=np.int64)
    inside = (bucket_ts >= grid_start) & (bucket_ts < grid_end)
    if spec.fill is FillPolicy.SCALAR:
        if np.count_nonzero(inside) < len(grid):
            raise TsdbHttpError(400, "unhandled fill policy", "unhandled fill policy")
        return bucket_ts[inside], bucket_values[inside]
    filled = np.full(len(grid), 0.0 if spec.fill is FillPolicy.ZERO else np.nan)
    filled[(bucket_ts[inside] - grid_start) // interval] = bucket_values[inside]
    return grid, filled
