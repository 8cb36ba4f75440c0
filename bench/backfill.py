"""Benchmark a backfill of the simulated fleet with 1, 2 and 4 metric worker processes.

The parent runs the simulator (OVH APIv6 and OpenTSDB). For each worker count, a child process
runs the pipeline's `ingest_range` through Dagster, 7 days per run as the CLI does, with
VSCOPE_WORKERS set, into a data folder of its own, which is removed afterwards. The child is
`bench.backfill_run`. The parent counts the queries the simulated OpenTSDB served during each
configuration, and the child reports its wall time and the rows stored. Every configuration
gets its own timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.child import run_module
from bench.report import Figure
from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator

DEFAULT_BACKFILL_DAYS = 30
DEFAULT_WORKER_COUNTS = (1, 2, 4)
# Seconds that one configuration gets for the whole backfill before its child is killed.
DEFAULT_CONFIGURATION_TIMEOUT_S = 2400


class BackfillRunError(RuntimeError):
    """A backfill child process failed or printed no result."""


@dataclass(frozen=True)
class BackfillRun:
    """Figures of one configuration; `seconds` is None when it timed out."""

    workers: int
    seconds: float | None
    rows: int
    # Queries that the simulated OpenTSDB served during the configuration.
    requests: int


def run_backfill_bench(
    vm_count: int,
    days: int = DEFAULT_BACKFILL_DAYS,
    worker_counts: Sequence[int] = DEFAULT_WORKER_COUNTS,
    timeout_s: float = DEFAULT_CONFIGURATION_TIMEOUT_S,
) -> list[BackfillRun]:
    """Backfill the last `days` complete UTC days once per worker count; return the figures."""
    last = last_complete_day()
    first = last - dt.timedelta(days=days - 1)
    runs = []
    with running_simulator(vm_count=vm_count) as simulator:
        for workers in worker_counts:
            with tempfile.TemporaryDirectory(prefix=f"vscope-bench-workers-{workers}-") as work:
                runs.append(
                    _run_configuration(simulator, Path(work), workers, first, last, timeout_s)
                )
    return runs


def _run_configuration(
    simulator: RunningSimulator,
    work: Path,
    workers: int,
    first: dt.date,
    last: dt.date,
    timeout_s: float,
) -> BackfillRun:
    server = simulator.opentsdb_server.server
    assert isinstance(server, OpenTsdbServer)
    requests_before = server.counters.snapshot().requests
    environment = {
        **os.environ,
        **simulator.environment(),
        "VSCOPE_WORKERS": str(workers),
        "VSCOPE_DATA_DIR": str(work / "data"),
    }
    arguments = ["--first", first.isoformat(), "--last", last.isoformat()]
    try:
        completed = run_module("bench.backfill_run", arguments, environment, timeout_s)
    except subprocess.TimeoutExpired:
        requests = server.counters.snapshot().requests - requests_before
        return BackfillRun(workers, None, 0, requests)
    finally:
        shutil.rmtree(work / "data", ignore_errors=True)
    requests = server.counters.snapshot().requests - requests_before
    if completed.returncode != 0:
        raise BackfillRunError(
            f"the backfill with {workers} worker(s) exited with status {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    try:
        result = json.loads(completed.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as error:
        raise BackfillRunError(
            f"the backfill with {workers} worker(s) printed {completed.stdout[-200:]!r}, not JSON"
        ) from error
    return BackfillRun(workers, result["seconds"], result["rows"], requests)


def backfill_figures(
    runs: Sequence[BackfillRun], days: int, timeout_s: float = DEFAULT_CONFIGURATION_TIMEOUT_S
) -> list[Figure]:
    """Return one figure per configuration, with its speed-up over the 1-worker run."""
    baseline = next((run for run in runs if run.workers == 1 and run.seconds), None)
    figures = []
    for run in runs:
        name = f"{days}-day backfill, {run.workers} worker(s)"
        if run.seconds is None:
            figures.append(Figure(name, f"timed out after {timeout_s:.0f} s"))
            continue
        value = (
            f"{run.seconds:.0f} s, {run.rows / run.seconds / 1e6:.2f} M points/s, "
            f"{run.requests / run.seconds:.1f} requests/s"
        )
        if baseline is not None and baseline.seconds is not None:
            value += f", {baseline.seconds / run.seconds:.2f}x the 1-worker speed"
        figures.append(Figure(name, value))
    return figures
