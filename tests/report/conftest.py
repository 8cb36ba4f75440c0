"""Two days ingested from the simulator, shared by the report tests."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest
from report_support import ANCHOR, FIRST_DAY, LAST_DAY, STEP_SECONDS, IngestedDays

from vscope_pipeline.ingest import RunOutcome, ingest_range
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.runner import running_simulator


# Package scope: both test modules read the same two days, ingested once.
@pytest.fixture(scope="package")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestedDays]:
    """Ingest two days, one run a day at noon, from a 12-VM fleet whose inventory changes."""
    data_dir = tmp_path_factory.mktemp("report-data")
    clock = SimulatorClock()
    outcomes: list[RunOutcome] = []
    with (
        running_simulator(
            anchor_day=ANCHOR,
            vm_count=12,
            step_seconds=STEP_SECONDS,
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
        for day in (FIRST_DAY, LAST_DAY):
            clock.set(dt.datetime.combine(day, dt.time(12), dt.UTC))
            outcomes += ingest_range(day, day, instance=instance, days_per_run=1)
        assert all(outcome.success for outcome in outcomes), outcomes
        yield IngestedDays(data_dir, instance, outcomes)
