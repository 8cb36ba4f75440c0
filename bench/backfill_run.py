"""Run one backfill through Dagster in a child process of the backfill benchmark.

    OVH_ENDPOINT=... VSCOPE_WORKERS=2 VSCOPE_DATA_DIR=... \\
        python -m bench.backfill_run --first 2026-11-01 --last 2026-11-30

It prints one JSON object: `seconds` (wall time of `ingest_range`) and `rows` (the metric rows
stored in the lake, read from the Parquet footers). It exits 1 when a run failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import dagster as dg
import pyarrow.parquet as pq

from vscope_pipeline.ingest import ingest_range
from vscope_pipeline.lake.layout import metrics_root
from vscope_pipeline.settings import load_data_dir

DAYS_PER_RUN = 7


def stored_rows() -> int:
    """Return the rows of every metric partition of the lake in VSCOPE_DATA_DIR."""
    return sum(
        pq.read_metadata(path).num_rows for path in metrics_root(load_data_dir()).rglob("*.parquet")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill_run", description=__doc__)
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True, help="first day")
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True, help="last day")
    args = parser.parse_args(argv)

    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        outcomes = ingest_range(
            args.first, args.last, instance=instance, days_per_run=DAYS_PER_RUN, log_level="WARNING"
        )
        seconds = time.perf_counter() - started
    failed = [outcome for outcome in outcomes if not outcome.success]
    if failed:
        print(f"backfill failed: {failed[0].error}", file=sys.stderr)
        return 1
    json.dump({"seconds": seconds, "rows": stored_rows()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
