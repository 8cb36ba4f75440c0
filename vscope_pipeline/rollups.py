"""Per-series hourly and daily rollups of one metric-day table: samples, avg, min, max, p95.

Dashboards read these rollups instead of the raw points. A rollup partition is derived from one
metric-day partition only, so rewriting a day rewrites its two rollup partitions and nothing else.

All five statistics come from one sort of the table by series, bucket and value: each group is
then a contiguous slice, so min and max are its first and last values, and the p95 is read
exactly from the sorted slice, with no per-group Python loop. The p95 uses linear interpolation
between the two nearest ranks, the same as `numpy.percentile(values, 95)` (numpy's default
method) and DuckDB's `quantile_cont(value, 0.95)`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vscope_pipeline.lake.layout import RollupGrain as Grain
from vscope_pipeline.lake.schema import ROLLUP_FILE_SCHEMA

# Bucket width per grain, in milliseconds. UTC has no daylight saving, so every day is 24 hours.
BUCKET_MS: dict[str, int] = {"hour": 3_600_000, "day": 86_400_000}

PERCENTILE = 0.95

SERIES_COLUMNS: tuple[str, ...] = ("entity_kind", "service_name", "datacenter", "entity", "nic")


def rollup_table(table: pa.Table, grain: Grain) -> pa.Table:
    """Aggregate a table of METRIC_FILE_SCHEMA into one row per series and UTC hour or day.

    Returns a table of ROLLUP_FILE_SCHEMA sorted by series and bucket. Series differ by every
    column of SERIES_COLUMNS, so the NICs of one host stay apart, and a NULL `nic` is a key
    value like any other. Raises ValueError for an unknown grain.
    """
    if grain not in BUCKET_MS:
        raise ValueError(
            f"rollup grain {grain!r} is not supported: expected one of {', '.join(BUCKET_MS)}"
        )
    if table.num_rows == 0:
        return ROLLUP_FILE_SCHEMA.empty_table()

    width = BUCKET_MS[grain]
    ts_ms = table.column("ts").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    buckets = np.floor_divide(ts_ms.to_numpy(), width) * width
    work = table.select(list(SERIES_COLUMNS)).append_column("bucket", pa.array(buckets))
    work = work.append_column("value", table.column("value").cast(pa.float64()))

    sort_keys = [(name, "ascending") for name in (*SERIES_COLUMNS, "bucket", "value")]
    order = pc.sort_indices(work, sort_keys=sort_keys)
    work = work.take(order)

    starts = _group_starts(work)
    counts = np.diff(np.append(starts, work.num_rows))
    values = work.column("value").to_numpy()
    ends = starts + counts - 1

    firsts = work.take(pa.array(starts))
    arrays: list[pa.Array | pa.ChunkedArray] = [firsts.column(name) for name in SERIES_COLUMNS]
    arrays += [
        firsts.column("bucket").cast(pa.timestamp("ms", tz="UTC")),
        pa.array(counts, pa.int64()),
        pa.array(np.add.reduceat(values, starts) / counts, pa.float64()),
        pa.array(values[starts], pa.float64()),
        pa.array(values[ends], pa.float64()),
        pa.array(_sorted_percentile(values, starts, counts, PERCENTILE), pa.float64()),
        # Days since the epoch, which is what date32 stores.
        pa.array(
            np.floor_divide(firsts.column("bucket").to_numpy(), BUCKET_MS["day"]), pa.int32()
        ).cast(pa.date32()),
    ]
    return pa.Table.from_arrays(arrays, schema=ROLLUP_FILE_SCHEMA)


def _group_starts(work: pa.Table) -> npt.NDArray[np.int64]:
    """Return the first row of each run of equal series and bucket in a sorted table."""
    rows = work.num_rows
    changed = np.zeros(rows, dtype=bool)
    changed[0] = True
    for name in (*SERIES_COLUMNS, "bucket"):
        column = work.column(name)
        current, previous = column.slice(1), column.slice(0, rows - 1)
        # not_equal is NULL when either side is NULL, so NULL against a value is tested apart.
        differs = pc.fill_null(pc.not_equal(current, previous), False)
        null_differs = pc.not_equal(pc.is_null(current), pc.is_null(previous))
        changed[1:] |= pc.or_(differs, null_differs).to_numpy(zero_copy_only=False)
    return np.flatnonzero(changed).astype(np.int64)


def _sorted_percentile(
    values: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    quantile: float,
) -> npt.NDArray[np.float64]:
    """Return the linear-interpolation quantile of each ascending slice `values[start:start+count]`.

    The rank and the interpolation follow numpy's "linear" method step by step, so each result
    equals `numpy.percentile(slice, quantile * 100)` exactly.
    """
    rank = (counts - 1) * quantile
    lower = np.floor(rank).astype(np.int64)
    gamma = rank - lower
    upper = np.minimum(lower + 1, counts - 1)
    below = values[starts + lower]
    above = values[starts + upper]
    difference = above - below
    # numpy interpolates from the nearer bound, which keeps the result inside [below, above].
    return np.where(gamma >= 0.5, above - difference * (1 - gamma), below + difference * gamma)
