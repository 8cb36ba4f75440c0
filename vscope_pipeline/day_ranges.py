"""Sets of UTC days written as compact inclusive ranges: `2026-03-01..2026-03-09, 2026-03-11`."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable

DayRange = tuple[dt.date, dt.date]

_ONE_DAY = dt.timedelta(days=1)


def day_ranges(days: Iterable[dt.date]) -> list[DayRange]:
    """Return the runs of consecutive days in `days` as (first, last) pairs, oldest first."""
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + _ONE_DAY == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def missing_ranges(days: Iterable[dt.date], span: DayRange | None = None) -> list[DayRange]:
    """Return the days of `span` missing from `days`, as ranges.

    `span` defaults to the first and last of `days`, so only the holes between them count.
    """
    loaded = day_ranges(days)
    if span is None:
        if not loaded:
            return []
        span = (loaded[0][0], loaded[-1][1])
    # Sentinels one day outside the span turn its edges into ordinary holes.
    bounds = [(span[0], span[0] - _ONE_DAY), *loaded, (span[1] + _ONE_DAY, span[1])]
    return [
        (previous_last + _ONE_DAY, next_first - _ONE_DAY)
        for (_, previous_last), (next_first, _) in itertools.pairwise(bounds)
        if next_first - previous_last > _ONE_DAY
    ]


def format_range(day_range: DayRange) -> str:
    first, last = day_range
    return first.isoformat() if first == last else f"{first}..{last}"


def format_ranges(ranges: Iterable[DayRange]) -> str:
    """Return `ranges` as `2026-03-01..2026-03-09, 2026-03-11`, or `none` when empty."""
    return ", ".join(format_range(day_range) for day_range in ranges) or "none"


def count_days(ranges: Iterable[DayRange]) -> int:
    return sum((last - first).days + 1 for first, last in ranges)
