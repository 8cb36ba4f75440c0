"""Days before a datastore is full, from a straight line fitted to its used space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class FillForecast:
    """The growth of one datastore over the period and the days left at that rate.

    `days_to_full` is None when the datastore is not filling (slope <= 0), when its size is
    unknown, or when there are fewer than two distinct times to fit. `status` is the outcome, in
    words for the report: "23 days", "not filling", "full", "size unknown", "too few points".
    """

    growth_per_day: float | None
    days_to_full: float | None
    status: str


def estimate_days_to_full(
    times: Sequence[float], used: Sequence[float], capacity: float | None
) -> FillForecast:
    """Fit `used = a + b * t` by least squares and return the days until `used` reaches `capacity`.

    `times` are epoch seconds and `used` the used space at each time, in the unit of `capacity`.
    The days left start from the last point's used space, not from the fitted line, so a
    datastore that was just cleaned up counts from what it contains now.
    """
    if len(times) != len(used):
        raise ValueError(f"{len(times)} times but {len(used)} used-space values: expected as many")
    seconds = np.asarray(times, dtype=np.float64)
    values = np.asarray(used, dtype=np.float64)
    if len(np.unique(seconds)) < 2:
        return FillForecast(None, None, "too few points")
    # The least-squares slope on centred values: a constant series gives exactly 0, where
    # numpy.polyfit can return a tiny positive slope and a days-to-full in the billions.
    centred_times = seconds - seconds.mean()
    centred_values = values - values.mean()
    slope_per_second = float((centred_times @ centred_values) / (centred_times @ centred_times))
    growth = slope_per_second * SECONDS_PER_DAY
    if capacity is None or capacity <= 0:
        return FillForecast(growth, None, "size unknown")
    last_used = float(values[int(np.argmax(seconds))])
    if last_used >= capacity:
        return FillForecast(growth, 0.0, "full")
    if growth <= 0:
        return FillForecast(growth, None, "not filling")
    days = (capacity - last_used) / growth
    return FillForecast(growth, days, f"{days:,.0f} days")
