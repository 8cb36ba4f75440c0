"""Ingest days one Dagster run each, with the simulator's clock at noon of the day.

The fleet's scripted inventory changes happen at 06:00 UTC, so each noon snapshot records that
day's changes, as a daily schedule would.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from vscope_pipeline.ingest import RunOutcome, ingest_range
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator


@dataclass
class NoonRuns:
    simulator: RunningSimulator
    instance: dg.DagsterInstance
    outcomes: list[RunOutcome]


@contextmanager
def ingest_at_noon(
    data_dir: Path, days: Sequence[dt.date], *, anchor: dt.date, vm_count: int, step_seconds: int
) -> Iterator[NoonRuns]:
    """Ingest `days` into `data_dir` from a fleet whose inventory changes; yield the runs."""
    clock = SimulatorClock()
    with (
        running_simulator(
            anchor_day=anchor,
            vm_count=vm_count,
            step_seconds=step_seconds,
            clock=clock,
            inventory_changes=True,
        ) as simulator,
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))
        monkeypatch.delenv("VSCOPE_SHARE_WITH_GROUP", raising=False)
        outcomes: list[RunOutcome] = []
        for day in days:
            clock.set(dt.datetime.combine(day, dt.time(12), dt.UTC))
            outcomes += ingest_range(day, day, instance=instance, days_per_run=1)
        yield NoonRuns(simulator, instance, outcomes)
