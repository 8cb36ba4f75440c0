"""Set up what the browser tests and the screenshot script open: an ingested lake, its Dagster
instance, a running `dagster-webserver` and Debian's headless Chromium.

Everything listens on 127.0.0.1 and lives in folders the caller owns.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import requests

from vscope_pipeline.ingest import (
    INSTANCE_FILES,
    RunOutcome,
    environment,
    ingest_range,
    last_complete_day,
)
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.runner import running_simulator

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

# Marks the tests that open pages in Chromium. Without Chromium they are skipped with this reason.
requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)",
)

# The simulator's time of day when each day is ingested. OpenTSDB queries name explicit start
# and end times, so the simulator serves the whole day even before it ends.
SNAPSHOT_TIME = dt.time(23, 0)

# The web server loads the code location in a subprocess before it serves requests. On two
# busy cores that took 10 to 20 s, measured while writing these tests.
WEBSERVER_STARTUP_TIMEOUT_SECONDS = 90.0
# Seconds `vscope-pipeline report` gets to write the report of a few days.
REPORT_TIMEOUT_SECONDS = 120
# Seconds the web server gets to stop after SIGTERM before its process group is killed.
WEBSERVER_STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class IngestedLake:
    """A lake and Dagster instance filled by real runs of the ingestion job."""

    dagster_home: Path
    data_dir: Path
    first_day: dt.date
    last_day: dt.date
    outcomes: list[RunOutcome]


def ingest_days(root: Path, days: int, *, vm_count: int, step_seconds: int) -> IngestedLake:
    """Ingest the last `days` complete UTC days from the simulator into folders under `root`.

    Each day is its own Dagster run, with the simulator's clock at 23:00 UTC that day, so each
    run takes the inventory snapshot of its own day. The simulator's inventory changes of those
    days then fall inside the period of the report of these days. The runs are recorded in a
    SQLite Dagster instance in `root/dagster_home`, which a web server started there shows.
    """
    dagster_home = root / "dagster_home"
    data_dir = root / "data"
    dagster_home.mkdir(parents=True)
    data_dir.mkdir()
    shutil.copyfile(INSTANCE_FILES["sqlite"], dagster_home / "dagster.yaml")
    last_day = last_complete_day()
    first_day = last_day - dt.timedelta(days=days - 1)
    clock = SimulatorClock()
    outcomes: list[RunOutcome] = []
    with running_simulator(
        vm_count=vm_count, step_seconds=step_seconds, clock=clock, inventory_changes=True
    ) as simulator:
        overrides = {
            **simulator.environment(),
            "DAGSTER_HOME": str(dagster_home),
            "VSCOPE_DATA_DIR": str(data_dir),
        }
        with environment(overrides), dg.DagsterInstance.get() as instance:
            for offset in range(days):
                day = first_day + dt.timedelta(days=offset)
                clock.set(dt.datetime.combine(day, SNAPSHOT_TIME, dt.UTC))
                outcomes += ingest_range(
                    day, day, instance=instance, days_per_run=1, log_level="WARNING"
                )
    return IngestedLake(dagster_home, data_dir, first_day, last_day, outcomes)


def latest_metadata(lake: IngestedLake, asset_path: list[str]) -> dict[str, object]:
    """Return the metadata values of the asset's latest materialization in the lake's instance."""
    with (
        environment({"DAGSTER_HOME": str(lake.dagster_home)}),
        dg.DagsterInstance.get() as instance,
    ):
        event = instance.get_latest_materialization_event(dg.AssetKey(asset_path))
    assert event is not None, f"{asset_path} has no materialization in {lake.dagster_home}"
    materialization = event.asset_materialization
    assert materialization is not None
    return {key: entry.value for key, entry in materialization.metadata.items()}


def write_report(lake: IngestedLake, out: Path) -> str:
    """Write the report of the lake's days to `out` with `vscope-pipeline report`; return stdout.

    Raises RuntimeError with the command's stderr when it fails.
    """
    command = [
        str(Path(sys.executable).with_name("vscope-pipeline")),
        "report",
        "--from",
        lake.first_day.isoformat(),
        "--to",
        lake.last_day.isoformat(),
        "--out",
        str(out),
    ]
    result = subprocess.run(
        command,
        env={"PATH": os.environ.get("PATH", ""), "VSCOPE_DATA_DIR": str(lake.data_dir)},
        capture_output=True,
        text=True,
        check=False,
        timeout=REPORT_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}: {result.stderr}")
    return result.stdout


def free_port() -> int:
    # The port is free when this returns, but another process could take it before the server
    # binds.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_workspace(folder: Path) -> Path:
    """Write a workspace file that loads `vscope_pipeline.definitions` from this checkout."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: vscope_pipeline.definitions\n"
        f"      working_directory: {REPOSITORY}\n",
        encoding="utf-8",
    )
    return workspace


@contextmanager
def running_webserver(lake: IngestedLake, log_file: Path) -> Iterator[str]:
    """Run `dagster-webserver` on the lake's instance until the block exits; yield its URL.

    The server and the code server it starts get a process group of their own, which is
    stopped whatever happens in the block.
    """
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    workspace = write_workspace(lake.dagster_home)
    command = [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(lake.dagster_home),
        "VSCOPE_DATA_DIR": str(lake.data_dir),
    }
    url = f"http://127.0.0.1:{port}"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=lake.dagster_home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_answering(url, process, log_file)
            yield url
        finally:
            _stop_group(process)


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + WEBSERVER_STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dagster-webserver exited with status {process.returncode} before serving "
                f"requests: {log_file.read_text(errors='replace')[-2000:]}"
            )
        with suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return
        time.sleep(0.5)
    raise RuntimeError(
        f"dagster-webserver did not answer on {url} within "
        f"{WEBSERVER_STARTUP_TIMEOUT_SECONDS:.0f} s: {log_file.read_text(errors='replace')[-2000:]}"
    )


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the web server's process group with SIGTERM, then SIGKILL after a grace period."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=WEBSERVER_STOP_GRACE_SECONDS)
    # The code server may outlive the web server, so the group is killed in every case.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
