"""Run the pipeline's `collect_day` for the whole benchmark day in a child process.

The parent calls `run_day_in_child`, so that the peak memory it reads is the pipeline's
alone, without the simulator's. The child is this module:

    VSCOPE_OPENTSDB_URL=http://127.0.0.1:PORT VSCOPE_OPENTSDB_TOKEN=... \\
        python -m bench.day_run DATA_DIR --vm-count 500

It prints one JSON object: `seconds` (wall time of `collect_day`), `rows`, `requests` (as
counted by the client, retries included), `metrics` and `missing_entities`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.child import run_module
from bench.day import ANCHOR_DAY, BENCH_DAY, DEFAULT_VM_COUNT, datacenter_targets
from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.collect import collect_day
from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.fleet import build_fleet
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer
from vscope_pipeline.simulator.runner import RunningSimulator

# Seconds that the child process gets for the whole day before it is killed.
TIMEOUT_S = 900


class DayRunError(RuntimeError):
    """The child process failed, timed out or printed no result."""


@dataclass(frozen=True)
class DayRun:
    """Figures of the whole day, run in a child process."""

    seconds: float
    rows: int
    # Responses that the simulated OpenTSDB sent during the run, one per request.
    server_requests: int
    peak_rss_mib: float
    missing_entities: int


def run_day_in_child(
    simulator: RunningSimulator, lake: Path, vm_count: int, day: dt.date
) -> DayRun:
    """Run this module in a child process against `simulator` and collect its figures.

    The peak memory is the largest resident set of any child this process has waited for,
    so call this before starting other children.
    """
    server = simulator.opentsdb_server.server
    assert isinstance(server, OpenTsdbServer)
    requests_before = server.counters.snapshot().requests
    environment = {
        **os.environ,
        "VSCOPE_OPENTSDB_URL": simulator.opentsdb_url,
        "VSCOPE_OPENTSDB_TOKEN": simulator.credentials.metrics_token,
    }
    arguments = [
        str(lake),
        "--vm-count",
        str(vm_count),
        "--anchor-day",
        simulator.fleet.anchor_day.isoformat(),
        "--day",
        day.isoformat(),
    ]
    try:
        completed = run_module("bench.day_run", arguments, environment, TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise DayRunError(f"the day run did not finish within {TIMEOUT_S} s") from exc
    if completed.returncode != 0:
        raise DayRunError(
            f"the day run exited with status {completed.returncode}: {completed.stderr.strip()}"
        )
    try:
        result = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise DayRunError(f"the day run printed {completed.stdout[:200]!r}, not JSON") from exc

    # ru_maxrss is in KiB on Linux.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return DayRun(
        seconds=result["seconds"],
        rows=result["rows"],
        server_requests=server.counters.snapshot().requests - requests_before,
        peak_rss_mib=peak_kib / 1024,
        missing_entities=result["missing_entities"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.day_run", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="folder of the Parquet lake to write")
    parser.add_argument("--vm-count", type=int, default=DEFAULT_VM_COUNT, help="VMs in the fleet")
    parser.add_argument(
        "--anchor-day",
        type=dt.date.fromisoformat,
        default=ANCHOR_DAY,
        help="the simulator's today, YYYY-MM-DD",
    )
    parser.add_argument(
        "--day", type=dt.date.fromisoformat, default=BENCH_DAY, help="the UTC day to fetch"
    )
    args = parser.parse_args(argv)

    url = os.environ.get("VSCOPE_OPENTSDB_URL")
    token = os.environ.get("VSCOPE_OPENTSDB_TOKEN")
    if not url or not token:
        parser.error("set VSCOPE_OPENTSDB_URL and VSCOPE_OPENTSDB_TOKEN to the simulator's")

    fleet = build_fleet(args.anchor_day, vm_count=args.vm_count)
    targets = datacenter_targets(fleet)
    with OpenTSDBClient(url, Secret(token)) as client:
        started = time.perf_counter()
        reports = collect_day(BUILTIN_METRICS, args.day, targets, lambda _: client, args.data_dir)
        seconds = time.perf_counter() - started

    result = {
        "seconds": seconds,
        "rows": sum(report.rows for report in reports),
        "requests": sum(report.requests for report in reports),
        "metrics": len(reports),
        "missing_entities": sum(len(report.missing_entities) for report in reports),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
