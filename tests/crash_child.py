"""A child process that stops at a known point of a write, for the crash tests to SIGKILL.

Usage: python crash_child.py partition <folder> <rows>
       python crash_child.py warehouse <data_dir>
       python crash_child.py ingest <day> <pause_at_write>

The hooks are installed by monkeypatching inside this process only; the pipeline code has no
test hook. At the pause the child prints `PAUSED` on stdout and waits on stdin, which the test
never writes to: it kills the child with SIGKILL instead.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vscope_pipeline.lake import writer


def pause() -> None:
    print("PAUSED", flush=True)
    sys.stdin.readline()
    raise SystemExit("the test was expected to kill this process at the pause")


def write_half_then_pause(table: pa.Table, sink: pa.NativeFile) -> None:
    """Write the first half of `table` as a complete row group, then pause mid-file."""
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as parquet_writer:
        parquet_writer.write_table(table.slice(0, max(1, table.num_rows // 2)))
        sink.flush()
        pause()


def metric_table(rows: int) -> pa.Table:
    from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA

    start = dt.datetime(2026, 11, 18, tzinfo=dt.UTC)
    return pa.table(
        {
            "entity_kind": ["vm"] * rows,
            "service_name": ["pcc-1"] * rows,
            "datacenter": ["pcc-1_datacenter1"] * rows,
            "entity": [f"vm-{i % 97}" for i in range(rows)],
            "nic": [None] * rows,
            "ts": [start + dt.timedelta(seconds=i) for i in range(rows)],
            "value": [float(i) for i in range(rows)],
        },
        schema=METRIC_FILE_SCHEMA,
    )


def crash_partition(folder: str, rows: int) -> None:
    writer._write_parquet = write_half_then_pause  # type: ignore[assignment]
    writer.write_partition(metric_table(rows), folder)


def crash_warehouse(data_dir: str) -> None:
    from vscope_pipeline.catalog import BUILTIN_METRICS
    from vscope_pipeline.warehouse import build

    real_count_rows = build._count_rows

    def count_rows_then_pause(*args: Any) -> dict[str, int]:
        # Every object of the new database exists in the staging folder at this point.
        counts = real_count_rows(*args)
        pause()
        return counts

    build._count_rows = count_rows_then_pause  # type: ignore[assignment]
    build.build_warehouse(Path(data_dir), BUILTIN_METRICS)


def crash_ingest(day: str, pause_at_write: int) -> None:
    import dagster as dg

    from vscope_pipeline.ingest import ingest_range

    real_write = writer._write_parquet
    calls = 0

    def write_or_pause(table: pa.Table, sink: pa.NativeFile) -> None:
        nonlocal calls
        calls += 1
        if calls == pause_at_write:
            write_half_then_pause(table, sink)
        real_write(table, sink)

    writer._write_parquet = write_or_pause  # type: ignore[assignment]
    first = dt.date.fromisoformat(day)
    with dg.DagsterInstance.ephemeral() as instance:
        outcomes = ingest_range(first, first, instance=instance, days_per_run=1)
    raise SystemExit(f"the ingestion ended before write {pause_at_write}: {outcomes}")


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "partition":
        crash_partition(args[0], int(args[1]))
    elif mode == "warehouse":
        crash_warehouse(args[0])
    elif mode == "ingest":
        crash_ingest(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected partition, warehouse or ingest")


if __name__ == "__main__":
    main(sys.argv[1:])
