"""Run the whole pipeline once on the simulator and share the result with the tests."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator


@dataclass
class IngestedDay:
    simulator: RunningSimulator
    day: dt.date
    data_dir: Path
    instance: dg.DagsterInstance
    outcomes: list[RunOutcome]
    monkeypatch: pytest.MonkeyPatch

    def ingest_again(self) -> list[RunOutcome]:
        return ingest_range(self.day, self.day, instance=self.instance, days_per_run=1)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestedDay]:
    """Ingest yesterday (UTC) from a simulator whose "today" is today."""
    data_dir = tmp_path_factory.mktemp("data")
    day = last_complete_day()
    with (
        running_simulator() as simulator,
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))
        # An undocumented metric the simulator serves, added through the catalogue setting.
        monkeypatch.setenv("VSCOPE_EXTRA_METRICS", "vscope.vm.mem.tps:MB")
        outcomes = ingest_range(day, day, instance=instance, days_per_run=1)
        yield IngestedDay(simulator, day, data_dir, instance, outcomes, monkeypatch)
