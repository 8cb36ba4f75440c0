"""Benchmark the metrics path on one simulated day of a 500-VM fleet, then the rollups.

    python -m bench [--step all|metrics|rollups|workers] [--vm-count 500] [--repeat 3]
                    [--rollup-days 365] [--raw-days 7] [--rounds 3] [--workers N]
                    [--backfill-days 30] [--backfill-timeout 1500] [--markdown]

The metrics step, all on 127.0.0.1:
1. start the simulator (OVH APIv6 and OpenTSDB) for the fleet;
2. run the pipeline's `collect_day` for the whole day (20 metrics, both datacenters) in a
   child process, for its wall time, peak memory and request count;
3. fetch the 13 VM metrics of each datacenter once more and save the bodies to a temporary
   folder, then stop the simulator;
4. replay those bodies: JSON parsing alone (the floor), the pipeline's decode, its decode and
   write in one thread and with the pipeline's threads, and a json + pandas baseline.

The rollups step (bench/rollup_year.py) writes a year of rollups for the same fleet, with raw
points on the last days, and times the example queries on rollups and on raw points.

The workers step (bench/backfill.py), run only when asked for, backfills the last 30 days of
the fleet through Dagster with VSCOPE_WORKERS set to 1, 2 and 4, and compares their speeds.

It prints each figure with its target and whether it is met. The targets are informational:
the exit status is 0 whatever the times, and 1 only when a step fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from bench.backfill import (
    DEFAULT_BACKFILL_DAYS,
    DEFAULT_CONFIGURATION_TIMEOUT_S,
    BackfillRunError,
    backfill_figures,
    run_backfill_bench,
)
from bench.day import (
    ANCHOR_DAY,
    BENCH_DAY,
    DEFAULT_VM_COUNT,
    load_metric_days,
    per_entity_requests,
    save_response_bodies,
    total_bytes,
)
from bench.day_run import DayRun, DayRunError, run_day_in_child
from bench.machine import describe_machine
from bench.replay import (
    DECODE,
    ONE_THREAD,
    PIPELINE_THREADS,
    ReplayError,
    ReplayTimes,
    time_replay,
)
from bench.report import Figure, rate, render_markdown, render_text
from bench.rollup_lake import default_workers
from bench.rollup_timing import QueryTimingError
from bench.rollup_year import (
    DEFAULT_RAW_DAYS,
    DEFAULT_ROLLUP_DAYS,
    DEFAULT_ROUNDS,
    RollupBench,
    render_queries_markdown,
    render_queries_text,
    rollup_figures,
    run_rollup_bench,
)
from vscope_pipeline.catalog import BUILTIN_METRICS, metrics_of_kind
from vscope_pipeline.opentsdb.errors import OpenTSDBError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.simulator.fleet import Fleet
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.warehouse.build import WarehouseBuildError

log = logging.getLogger("bench")

# Targets, all informational.
MAX_FLOOR_RATIO = 2.0
MIN_BASELINE_SPEEDUP = 4.0
MAX_PEAK_RSS_MIB = 1536


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the metrics path on a simulated day, then the rollups.",
    )
    parser.add_argument(
        "--step",
        choices=("all", "metrics", "rollups", "workers"),
        default="all",
        help="which benchmark to run (default: all, which is metrics and rollups; workers "
        "takes about an hour on 2 cores and runs only on its own)",
    )
    parser.add_argument(
        "--vm-count", type=int, default=DEFAULT_VM_COUNT, help="VMs in the simulated fleet"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of the replay steps; the fastest is kept"
    )
    parser.add_argument(
        "--rollup-days",
        type=int,
        default=DEFAULT_ROLLUP_DAYS,
        help=f"days of rollups up to the last day (default {DEFAULT_ROLLUP_DAYS})",
    )
    parser.add_argument(
        "--raw-days",
        type=int,
        default=DEFAULT_RAW_DAYS,
        help=f"last days that also get raw points, 1 to 14 (default {DEFAULT_RAW_DAYS})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"runs of each example query; the median is kept (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes that write the rollup lake (default: the usable cores)",
    )
    parser.add_argument(
        "--backfill-days",
        type=int,
        default=DEFAULT_BACKFILL_DAYS,
        help=f"days of the workers step's backfill (default {DEFAULT_BACKFILL_DAYS})",
    )
    parser.add_argument(
        "--backfill-timeout",
        type=float,
        default=DEFAULT_CONFIGURATION_TIMEOUT_S,
        help="seconds that each worker count of the workers step gets before it is stopped "
        f"(default {DEFAULT_CONFIGURATION_TIMEOUT_S})",
    )
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # The simulator logs each server start; the benchmark's own progress lines are enough.
    logging.getLogger("vscope_pipeline").setLevel(logging.WARNING)
    # The simulator's inventory objects carry undocumented fields on purpose; the rollup
    # benchmark converts them and does not need a warning per dropped field.
    logging.getLogger("vscope_pipeline.ovh.schemas").setLevel(logging.ERROR)

    figures: list[Figure] = []
    rollups: RollupBench | None = None
    try:
        if args.step in ("all", "metrics"):
            figures += run(args.vm_count, args.repeat)
        if args.step in ("all", "rollups"):
            rollups = run_rollup_bench(
                args.vm_count, args.rollup_days, args.raw_days, args.rounds, args.workers
            )
            figures += rollup_figures(rollups)
        if args.step == "workers":
            runs = run_backfill_bench(
                args.vm_count, args.backfill_days, timeout_s=args.backfill_timeout
            )
            figures += backfill_figures(runs, args.backfill_days, args.backfill_timeout)
    except (
        BackfillRunError,
        DayRunError,
        ReplayError,
        OpenTSDBError,
        OSError,
        QueryTimingError,
        WarehouseBuildError,
        ValueError,
    ) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1

    machine = describe_machine()
    print(render_text(figures))
    if rollups is not None:
        print()
        print(render_queries_text(rollups))
    print()
    print("\n".join(f"{key}: {value}" for key, value in machine.items()))
    if args.markdown:
        print()
        print(render_markdown(figures, machine))
        if rollups is not None:
            print()
            print(render_queries_markdown(rollups))
    return 0


def run(vm_count: int, repeat: int) -> list[Figure]:
    """Run every step and return the figures, replay first."""
    vm_specs = metrics_of_kind(BUILTIN_METRICS, "vm")
    with tempfile.TemporaryDirectory(prefix="vscope-bench-") as temporary:
        work = Path(temporary)
        log.info("starting the simulator with %d VMs", vm_count)
        with running_simulator(anchor_day=ANCHOR_DAY, vm_count=vm_count) as simulator:
            fleet = simulator.fleet
            log.info("running the whole day %s in a child process", BENCH_DAY)
            day = run_day_in_child(simulator, work / "day-lake", vm_count, BENCH_DAY)
            log.info("saving the response bodies of %d VM metrics", len(vm_specs))
            saved = save_response_bodies(
                simulator.opentsdb_url,
                simulator.credentials.metrics_token,
                fleet,
                vm_specs,
                BENCH_DAY,
                work / "bodies",
            )
        days = load_metric_days(saved)
        body_bytes = total_bytes(days)
        log.info("replaying %.0f MB of response bodies", body_bytes / 1e6)
        replay = time_replay(days, fleet.service_name, day_window(BENCH_DAY), work, repeat)
    return replay_figures(replay, len(saved), body_bytes) + day_figures(day, fleet)


def replay_figures(replay: ReplayTimes, bodies: int, body_bytes: int) -> list[Figure]:
    points, floor = replay.points, replay.floor
    figures = [
        Figure(
            "replayed bodies (VM metrics x datacenters)",
            f"{bodies} bodies, {body_bytes / 1e6:.0f} MB, {points:,} points",
        )
    ]
    figures += [
        Figure(f"JSON parse floor: {name}", rate(points, seconds))
        for name, seconds in replay.parsers.items()
    ]
    decode = replay.steps[DECODE]
    figures.append(Figure(DECODE, f"{rate(points, decode)}, {decode / floor:.2f}x floor"))
    for name in (ONE_THREAD, PIPELINE_THREADS):
        seconds = replay.steps[name]
        figures.append(
            Figure(
                f"{name}: vs floor",
                f"{rate(points, seconds)}, {seconds / floor:.2f}x {replay.floor_parser}",
                f"<= {MAX_FLOOR_RATIO:g}x",
                seconds / floor <= MAX_FLOOR_RATIO,
            )
        )
        figures.append(
            Figure(
                f"{name}: vs json+pandas",
                f"{replay.baseline / seconds:.1f}x faster ({replay.baseline:.2f} s)",
                f">= {MIN_BASELINE_SPEEDUP:g}x",
                replay.baseline / seconds >= MIN_BASELINE_SPEEDUP,
            )
        )
    return figures


def day_figures(day: DayRun, fleet: Fleet) -> list[Figure]:
    grouped = day.server_requests / len(fleet.datacenters)
    per_entity = per_entity_requests(fleet, BUILTIN_METRICS)
    nic_metrics = sum(spec.per_nic for spec in BUILTIN_METRICS)
    max_grouped = len(BUILTIN_METRICS) + nic_metrics
    return [
        Figure(
            "requests per datacenter-day",
            f"{grouped:g} grouped, {per_entity:,.0f} per entity",
            f"<= {max_grouped} ({len(BUILTIN_METRICS)} metrics + {nic_metrics} per NIC)",
            grouped <= max_grouped,
        ),
        Figure(
            "peak RSS of the day (child process)",
            f"{day.peak_rss_mib:,.0f} MiB",
            f"< {MAX_PEAK_RSS_MIB} MiB",
            day.peak_rss_mib < MAX_PEAK_RSS_MIB,
        ),
        Figure(
            "day over loopback (20 metrics, simulator included)",
            f"{day.seconds:.1f} s, {day.rows:,} rows, {day.missing_entities} missing",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
