"""OpenTSDB 2.x `rate`: per-second change of each series, after downsampling.

As in OpenTSDB 2.4's `RateSpan`, the rate is taken per series before series are aggregated,
and the first point gets a rate against a point of value 0 at time 0. That first rate is
never an output timestamp, but the aggregation uses it for the series until its first real
rate (see tsdb_aggregate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vscope_pipeline.simulator.tsdb_aggregate import SeriesPoints, TimeArray, ValueArray
from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError
from vscope_pipeline.simulator.tsdb_time import MAX_LONG


@dataclass(frozen=True)
class RateOptions:
    """The `rateOptions` of a sub-query, with OpenTSDB's defaults.

    For a counter, a negative change is a reset or roll-over: it is dropped with
    `drop_resets`, otherwise computed as `counter_max - previous + current`, and that rate is
    replaced by 0 when it exceeds a positive `reset_value`.
    """

    counter: bool = False
    counter_max: int = MAX_LONG
    reset_value: int = 0
    drop_resets: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "counter": self.counter,
            "counterMax": self.counter_max,
            "resetValue": self.reset_value,
            "dropResets": self.drop_resets,
        }


def rate_series(ts: TimeArray, values: ValueArray, options: RateOptions) -> SeriesPoints:
    """Return the per-second rate at each point of a series (ascending timestamps in ms)."""
    if len(ts) == 0:
        return ts, values
    if ts[0] <= 0:
        raise TsdbHttpError(
            400,
            f"Next timestamp ({ts[0]}) is supposed to be  strictly greater than the previous "
            "one (0), but it's not.",
        )
    previous_ts = np.concatenate(([0], ts[:-1]))
    previous_values = np.concatenate(([0.0], values[:-1]))
    seconds = (ts - previous_ts) / 1000.0
    delta = values - previous_values
    rates = delta / seconds
    if not options.counter:
        return ts, rates

    resets = delta < 0
    if options.drop_resets:
        # The dropped point still serves as the previous point of the next rate.
        kept = ~resets
        return ts[kept], rates[kept]
    wrapped = (float(options.counter_max) - previous_values + values) / seconds
    rates = np.where(resets, wrapped, rates)
    if options.reset_value > 0:
        rates = np.where(resets & (wrapped > options.reset_value), 0.0, rates)
    return ts, rates
