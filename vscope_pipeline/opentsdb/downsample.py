"""The client's downsample setting: validation of the spec and restamping of returned buckets.

OpenTSDB aligns downsample buckets to the epoch and stamps each with its start. OVH's proxy
translates the query to Warp 10's BUCKETIZE, which aligns buckets to the query end and stamps
each with its last tick. The client's windows always end one millisecond before a multiple of
the interval, so such a server stamps the bucket `[k * interval, (k + 1) * interval)` with
`(k + 1) * interval - 1`. Shifting every timestamp down to the epoch grid gives both servers'
buckets the same stamp: the bucket start in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError

_MS_PER_DAY = 86_400_000
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": _MS_PER_DAY}

# The downsample functions and fill policies that both OpenTSDB 2.4 and OVH's proxy accept.
DOWNSAMPLE_FUNCTIONS = frozenset(
    {
        "avg",
        "count",
        "dev",
        "first",
        "last",
        "max",
        "mimmax",
        "mimmin",
        "min",
        "p50",
        "p75",
        "p90",
        "p95",
        "p99",
        "p999",
        "sum",
        "zimsum",
    }
)
FILL_POLICIES = frozenset({"none", "nan", "null", "zero"})

_SPEC = re.compile(
    r"(?P<amount>[0-9]+)(?P<unit>ms|s|m|h|d)-(?P<function>[a-z0-9]+)(?:-(?P<fill>[a-z]+))?"
)


@dataclass(frozen=True)
class Downsample:
    """A validated downsample spec such as `5m-avg` or `1h-max-nan`; `interval_ms` in ms."""

    text: str
    interval_ms: int
    function: str
    fill: str


def parse_downsample(text: str) -> Downsample:
    """Validate a `<n><unit>-<function>[-<fill>]` spec; raise ValueError naming the value.

    The interval must divide a UTC day, so that every bucket lies inside one daily partition.
    Calendar intervals (`1dc`) and `all` are rejected, since they do not give fixed buckets.
    """
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ValueError(
            f"downsample {text!r} is invalid: expected '<n><unit>-<function>[-<fill>]' with a "
            "unit of ms, s, m, h or d, for example '5m-avg' or '1h-max-nan'"
        )
    interval_ms = int(match["amount"]) * _UNIT_MS[match["unit"]]
    if interval_ms == 0 or _MS_PER_DAY % interval_ms != 0:
        raise ValueError(
            f"downsample {text!r} is invalid: its interval must divide a day (86400 s), so "
            "that no bucket spans two days, for example 1m, 5m, 15m, 1h or 1d"
        )
    function = match["function"]
    if function not in DOWNSAMPLE_FUNCTIONS:
        raise ValueError(
            f"downsample {text!r} is invalid: function {function!r} is not one of "
            f"{', '.join(sorted(DOWNSAMPLE_FUNCTIONS))}"
        )
    fill = match["fill"] or "none"
    if fill not in FILL_POLICIES:
        raise ValueError(
            f"downsample {text!r} is invalid: fill policy {fill!r} is not one of "
            f"{', '.join(sorted(FILL_POLICIES))}"
        )
    return Downsample(text=text, interval_ms=interval_ms, function=function, fill=fill)


def restamp_to_epoch_grid(table: pa.Table, interval_ms: int, context: str) -> pa.Table:
    """Shift every `ts` of a decoded response down to the epoch grid of `interval_ms`.

    All bucket timestamps of one response lie on one grid, so they are congruent modulo the
    interval; the shared offset is removed from each. The shift is the same for every row,
    so the order of rows and their uniqueness per series stay as they were. Raises
    OpenTSDBDecodeError when the timestamps are not congruent, since they are then not
    buckets of that interval.
    """
    if table.num_rows == 0:
        return table
    ts_index = table.schema.get_field_index("ts")
    ts = table.column(ts_index).to_numpy().astype(np.int64)
    offsets = np.unique(ts % interval_ms)
    if len(offsets) > 1:
        shown = ", ".join(str(int(offset)) for offset in offsets[:5])
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: the bucket timestamps are not on one "
            f"grid of {interval_ms} ms (offsets {shown} ms), so they cannot be restamped to "
            "bucket starts. Check that the server applied the downsample setting"
        )
    offset = int(offsets[0])
    if offset == 0:
        return table
    shifted = pa.array(ts - offset, type=table.schema.field("ts").type)
    return table.set_column(ts_index, table.schema.field("ts"), shifted)
