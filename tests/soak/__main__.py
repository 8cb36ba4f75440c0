"""Run the soak from the command line, at any size, and print a Markdown report.

    python -m tests.soak                      # the soak test's backfill: 30 days, 3 VMs
    python -m tests.soak --days 90 --vm-count 30 --step-seconds 300 --repeats 3

Run it from the repository root with the project's Python. Each backfill writes to a
temporary folder that is removed at the end, unless `--keep` names a folder to keep them in.
The exit status is 0 when every run succeeded and every chaos lake equals the fault-free one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.machine import describe_machine
from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.simulator.chaos import ChaosRates, describe_counts

from .soak_run import (
    BackfillResult,
    SoakConfig,
    differing_files,
    identical_bytes,
    lake_files,
    run_backfills,
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    defaults = SoakConfig(anchor_day=dt.date.today())
    rates = ChaosRates()
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--days", type=int, default=defaults.days, help="days to backfill")
    parser.add_argument("--vm-count", type=int, default=defaults.vm_count, help="VMs in the fleet")
    parser.add_argument(
        "--step-seconds",
        type=int,
        default=defaults.step_seconds,
        help="seconds between two points of a simulated series",
    )
    parser.add_argument(
        "--days-per-run", type=int, default=defaults.days_per_run, help="days per Dagster run"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the faults")
    parser.add_argument(
        "--repeats", type=int, default=2, help="backfills with faults, all with the same seed"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=1.0,
        help="factor applied to every default fault probability (1 = the soak test's rates)",
    )
    parser.add_argument(
        "--api-route-rate",
        type=float,
        default=defaults.api_route_rate,
        help="probability that an APIv6 route gets a burst of faults in one run",
    )
    parser.add_argument(
        "--serial", action="store_true", help="run the backfills one after the other"
    )
    parser.add_argument("--keep", type=Path, help="folder in which to keep the data folders")

    arguments = parser.parse_args(argv)
    if arguments.repeats < 1:
        parser.error(f"--repeats {arguments.repeats} is invalid: expected 1 or more")

    scaled = {
        "too_many_requests": rates.too_many_requests,
        "server_error": rates.server_error,
        "proxy_page": rates.proxy_page,
        "reset": rates.reset,
        "delay": rates.delay,
    }
    try:
        arguments.rates = ChaosRates(
            **{name: rate * arguments.fault_rate for name, rate in scaled.items()}
        )
    except ValueError as error:
        parser.error(f"--fault-rate {arguments.fault_rate}: {error}")
    return arguments


def main(argv: Sequence[str]) -> int:
    arguments = parse_args(argv)
    config = SoakConfig(
        anchor_day=last_complete_day() + dt.timedelta(days=1),
        days=arguments.days,
        vm_count=arguments.vm_count,
        step_seconds=arguments.step_seconds,
        days_per_run=arguments.days_per_run,
        seed=arguments.seed,
        rates=arguments.rates,
        api_route_rate=arguments.api_route_rate,
    )
    with tempfile.TemporaryDirectory(prefix="vscope-soak-") as scratch:
        root = arguments.keep or Path(scratch)
        names = ["clean", *(f"chaos{number}" for number in range(1, arguments.repeats + 1))]
        jobs = []
        for name in names:
            folder = root / name
            folder.mkdir(parents=True, exist_ok=False)
            jobs.append((folder, name != "clean"))
        started = time.perf_counter()
        clean, *chaos = run_backfills(config, jobs, parallel=not arguments.serial)
        wall_s = time.perf_counter() - started
        identical = print_report(config, names, clean, chaos, wall_s, parallel=not arguments.serial)
    return 0 if identical else 1


def print_report(
    config: SoakConfig,
    names: Sequence[str],
    clean: BackfillResult,
    chaos: Sequence[BackfillResult],
    wall_s: float,
    *,
    parallel: bool,
) -> bool:
    """Print the soak's settings, counts and comparison. Return True when the soak passed."""
    print(f"## Soak of {config.first_day}..{config.last_day}\n")
    print(
        f"{config.days} days, {config.vm_count} VMs, one point every {config.step_seconds} s, "
        f"{config.days_per_run} days per run, seed {config.seed}, {config.rates}, "
        f"APIv6 route rate {config.api_route_rate}; "
        f"{'in parallel processes' if parallel else 'one after the other'}, "
        f"{wall_s:.1f} s in all.\n"
    )
    print(
        "| backfill | runs ok | wall s | OpenTSDB requests | by status | injected | "
        "metric retries | APIv6 requests | APIv6 injected | inventory retries | differing files "
        "| same bytes |"
    )
    print("|---|---|---:|---:|---|---|---:|---:|---|---:|---:|---:|")
    reference_files = lake_files(clean.data_dir)
    passed = clean.succeeded
    for name, result in zip(names, (clean, *chaos), strict=True):
        ok = sum(outcome.success for outcome in result.outcomes)
        same_bytes = (
            "-" if result is clean else str(identical_bytes(clean.data_dir, result.data_dir))
        )
        if result is clean:
            differing = "-"
        elif lake_files(result.data_dir) != reference_files:
            differing = "file sets differ"
            passed = False
        else:
            count = len(list(differing_files(clean.data_dir, result.data_dir)))
            differing = str(count)
            passed = passed and count == 0 and result.succeeded
        statuses = ", ".join(
            f"{status}: {n}" for status, n in sorted(result.tsdb_by_status.items())
        )
        tsdb_injected = describe_counts(result.tsdb_injected) or "-"
        api_injected = describe_counts(result.api_injected) or "-"
        print(
            f"| {name} | {ok}/{len(result.outcomes)} | {result.wall_s:.1f} "
            f"| {result.tsdb_requests} | {statuses} | {tsdb_injected} "
            f"| {result.metric_retries} | {result.api_requests} "
            f"| {api_injected} | {result.inventory_retries} | {differing} | {same_bytes} |"
        )
    for name, result in zip(names, (clean, *chaos), strict=True):
        for outcome in result.outcomes:
            if not outcome.success:
                print(
                    f"\n{name}: run {outcome.first_day}..{outcome.last_day} failed: {outcome.error}"
                )
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{len(reference_files)} lake files per backfill. Result: {verdict}.\n")
    print("| machine | |\n|---|---|")
    for key, value in describe_machine().items():
        print(f"| {key} | {value} |")
    return passed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
