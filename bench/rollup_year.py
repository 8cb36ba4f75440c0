"""The rollup benchmark: a year of rollups for the simulator's fleet, and the example queries
timed on them against the same queries on raw points.

A year of raw points for 500 VMs at one point per minute is about 3.4 billion rows, too many
to generate here. So the year's rollups are generated directly, except on the last `raw_days`
days, whose raw points are generated and rolled up by the pipeline's `rollup_table`. The
warehouse is built by the pipeline's `build_warehouse` in a temporary folder, which is
removed at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import Figure
from bench.rollup_lake import LakeSpec, LakeWritten, write_inventory, write_lake
from bench.rollup_timing import QueryTimes, time_examples
from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.simulator.fleet import build_fleet
from vscope_pipeline.textable import format_markdown, format_table
from vscope_pipeline.warehouse.build import build_warehouse
from vscope_pipeline.warehouse.examples import EXAMPLES

log = logging.getLogger(__name__)

LAST_DAY = dt.date(2025, 6, 1)
DEFAULT_ROLLUP_DAYS = 365
DEFAULT_RAW_DAYS = 7
MAX_RAW_DAYS = 14
DEFAULT_ROUNDS = 3

# Bytes written per day for 500 VMs, measured on this benchmark's own lake: a raw day (points
# and its rollups) and a generated day (rollups only). They scale with the VM count.
RAW_DAY_BYTES_PER_500_VMS = 90e6
ROLLUP_DAY_BYTES_PER_500_VMS = 6e6
MAX_LAKE_BYTES = 5e9

# Targets, all informational.
MAX_MEDIAN_SECONDS = 1.0
MIN_SPEEDUP = 20.0


@dataclass(frozen=True)
class RollupBench:
    """Result of the rollup benchmark: the lake written, the step times and the query timings."""

    spec: LakeSpec
    lake: LakeWritten
    build_seconds: float
    queries: list[QueryTimes]
    # The 1, 5 and 15 minute load averages when the query timings ended.
    load_average: tuple[float, float, float]


def estimated_lake_bytes(spec: LakeSpec) -> float:
    """Return the estimated size of the lake of `spec`, in bytes."""
    scale = spec.vm_count / 500
    generated_days = spec.rollup_days - spec.raw_days
    return scale * (
        spec.raw_days * RAW_DAY_BYTES_PER_500_VMS + generated_days * ROLLUP_DAY_BYTES_PER_500_VMS
    )


def run_rollup_bench(
    vm_count: int, rollup_days: int, raw_days: int, rounds: int, workers: int
) -> RollupBench:
    """Write the lake, build the warehouse and time the examples, in a temporary folder.

    Raises ValueError when the raw window exceeds MAX_RAW_DAYS or the lake would exceed
    MAX_LAKE_BYTES, before anything is written.
    """
    if raw_days > MAX_RAW_DAYS:
        raise ValueError(
            f"raw window of {raw_days} days is too long: expected at most {MAX_RAW_DAYS}, "
            "which bounds the disk and the time of the benchmark"
        )
    spec = LakeSpec(vm_count, LAST_DAY, rollup_days, raw_days)
    estimate = estimated_lake_bytes(spec)
    if estimate > MAX_LAKE_BYTES:
        raise ValueError(
            f"the lake of {rollup_days} days for {vm_count} VMs would take about "
            f"{estimate / 1e9:.1f} GB, above the {MAX_LAKE_BYTES / 1e9:.0f} GB limit: "
            "lower --rollup-days, --raw-days or --vm-count"
        )
    with tempfile.TemporaryDirectory(prefix="vscope-rollup-bench-") as temporary:
        data_dir = Path(temporary)
        log.info(
            "writing %d days of rollups for %d VMs, the last %d with raw points (about %.1f GB)",
            rollup_days,
            vm_count,
            raw_days,
            estimate / 1e9,
        )
        lake = write_lake(data_dir, spec, workers)
        write_inventory(data_dir, build_fleet(spec.anchor_day, vm_count=vm_count), LAST_DAY)

        log.info("building the warehouse")
        started = time.perf_counter()
        summary = build_warehouse(data_dir, BUILTIN_METRICS)
        build_seconds = time.perf_counter() - started

        log.info("timing %d example queries, %d rounds", len(EXAMPLES), rounds)
        queries = time_examples(summary.path, EXAMPLES, rollup_days, raw_days, rounds)
        load_average = os.getloadavg()
    return RollupBench(spec, lake, build_seconds, queries, load_average)


def rollup_figures(bench: RollupBench) -> list[Figure]:
    """Return the summary figures: what was written, and the medians against the targets."""
    spec, lake = bench.spec, bench.lake
    metric_queries = [times for times in bench.queries if times.reads_metrics]
    median_year = statistics.median(times.year_rollup for times in bench.queries)
    slowest_year = max(times.year_rollup for times in bench.queries)
    median_speedup = statistics.median(times.speedup for times in metric_queries)
    lowest_speedup = min(times.speedup for times in metric_queries)
    generated_days = spec.rollup_days - spec.raw_days
    return [
        Figure(
            "rollup lake (written by the benchmark)",
            f"{spec.rollup_days} days to {spec.last_day}, {spec.vm_count} VMs: "
            f"{generated_days} days of generated rollups, {spec.raw_days} days of generated "
            "raw points rolled up by rollup_table",
        ),
        Figure(
            "rows written",
            f"{lake.raw_rows:,} raw, {lake.hourly_rows:,} hourly, {lake.daily_rows:,} daily",
        ),
        Figure(
            "lake size and write time",
            f"{lake.bytes_written / 1e9:.2f} GB in {lake.seconds:.0f} s, "
            f"warehouse build {bench.build_seconds:.1f} s",
            f"< {MAX_LAKE_BYTES / 1e9:.0f} GB",
            lake.bytes_written < MAX_LAKE_BYTES,
        ),
        Figure(
            f"median over the examples, rollups over {spec.rollup_days} days",
            f"{median_year:.3f} s (slowest {slowest_year:.3f} s)",
            f"< {MAX_MEDIAN_SECONDS:g} s",
            median_year < MAX_MEDIAN_SECONDS,
        ),
        Figure(
            f"median raw/rollups ratio over {spec.raw_days} days ({len(metric_queries)} "
            "examples that read metrics)",
            f"{median_speedup:.1f}x (lowest {lowest_speedup:.1f}x)",
            f">= {MIN_SPEEDUP:g}x",
            median_speedup >= MIN_SPEEDUP,
        ),
        Figure(
            "load average after the query timings (1, 5, 15 min)",
            ", ".join(f"{load:.2f}" for load in bench.load_average),
        ),
    ]


def query_rows(bench: RollupBench) -> tuple[list[str], list[list[object]]]:
    """Return the per-example table: columns and one row per example.

    The last two columns are estimates, not measurements: the raw time over the year is the
    raw window's time scaled linearly by rollup_days / raw_days, as if scan time grew with the
    rows read.
    """
    year, window = bench.spec.rollup_days, bench.spec.raw_days
    columns = [
        "example",
        f"rollups {year} d (s)",
        f"rollups {window} d (s)",
        f"raw {window} d (s)",
        f"raw/rollups {window} d",
        "met",
        f"raw {year} d, estimated (s)",
        f"raw/rollups {year} d, estimated",
    ]
    rows: list[list[object]] = []
    for times in bench.queries:
        met = times.year_rollup < MAX_MEDIAN_SECONDS
        if times.reads_metrics:
            ratio = f"{times.speedup:.1f}x"
            met = met and times.speedup >= MIN_SPEEDUP
            raw_year = times.window_raw * year / window
            estimates = [f"{raw_year:.1f}", f"{raw_year / times.year_rollup:.0f}x"]
        else:
            ratio = "inventory only"
            estimates = ["-", "-"]
        rows.append(
            [
                times.title,
                f"{times.year_rollup:.3f}",
                f"{times.window_rollup:.3f}",
                f"{times.window_raw:.3f}",
                ratio,
                "yes" if met else "NO",
                *estimates,
            ]
        )
    return columns, rows


def render_queries_text(bench: RollupBench) -> str:
    columns, rows = query_rows(bench)
    return format_table(columns, rows)


def render_queries_markdown(bench: RollupBench) -> str:
    columns, rows = query_rows(bench)
    return format_markdown(columns, rows)
