"""A small simulator, and the command run in a subprocess against it with a clean environment."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator

# Seconds one command gets to finish: an ingest of three days of a 3-VM fleet took 15 to 40 s
# on 2 cores shared with other jobs.
COMMAND_TIMEOUT = 120


def command_environment(data_dir: Path, dagster_home: Path, **extra: str) -> dict[str, str]:
    """Return the environment without OVH or vScope variables, plus the folders and `extra`."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OVH_", "VSCOPE_", "DAGSTER_"))
    }
    environment.update(VSCOPE_DATA_DIR=str(data_dir), DAGSTER_HOME=str(dagster_home), **extra)
    return environment


def run_command(
    args: list[str], environment: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vscope_pipeline.cli", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="package")
def small_simulator() -> Iterator[RunningSimulator]:
    """A simulator of 3 VMs whose "today" is today, shared by the tests of this folder."""
    with running_simulator(vm_count=3) as simulator:
        yield simulator


@dataclass(frozen=True)
class IngestedLake:
    """The output of `vscope-pipeline ingest` on three days, and the folders it wrote."""

    result: subprocess.CompletedProcess[str]
    data_dir: Path
    dagster_home: Path
    first: dt.date
    last: dt.date


@pytest.fixture(scope="package")
def ingested_lake(
    small_simulator: RunningSimulator, tmp_path_factory: pytest.TempPathFactory
) -> IngestedLake:
    """Ingest the last three complete days, one progress line per metric-day, not on a terminal."""
    folder = tmp_path_factory.mktemp("ingested")
    last = last_complete_day()
    first = last - dt.timedelta(days=2)
    environment = command_environment(
        folder / "data", folder / "home", **small_simulator.environment()
    )
    result = run_command(
        ["ingest", "--from", str(first), "--to", str(last), "--progress-interval", "0"],
        environment,
        folder,
    )
    return IngestedLake(result, folder / "data", folder / "home", first, last)
