"""A month of backfill on the simulator: few Dagster runs, every day stored once."""

import datetime as dt

import dagster as dg
import duckdb
import pytest

from vscope_pipeline.defs.metric_assets import DAYS_PER_RUN
from vscope_pipeline.ingest import ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import running_simulator

pytestmark = pytest.mark.integration

DAYS = 30
# One point every 10 minutes keeps a month of a small fleet to a few seconds of queries.
STEP_SECONDS = 600


def test_thirty_days_in_five_runs(tmp_path, monkeypatch):
    last = last_complete_day()
    first = last - dt.timedelta(days=DAYS - 1)
    with (
        running_simulator(vm_count=6, step_seconds=STEP_SECONDS) as simulator,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
        outcomes = ingest_range(first, last, instance=instance, days_per_run=DAYS_PER_RUN)

        assert [outcome.success for outcome in outcomes] == [True] * 5
        assert (outcomes[0].first_day, outcomes[0].last_day) == (
            first,
            first + dt.timedelta(days=6),
        )
        assert outcomes[-1].last_day == last
        assert len(instance.get_runs()) == 5

    with duckdb.connect(str(tmp_path / "vscope.duckdb"), read_only=True) as con:
        days, metrics = con.execute(
            "SELECT count(DISTINCT day), count(DISTINCT metric) FROM metric_points"
        ).fetchone()
        per_day = con.execute(
            """
            SELECT count(*) FROM metric_points
            WHERE metric = 'vscope.host.cpu.usage.perc' AND entity = ?
            GROUP BY day ORDER BY day
            """,
            [simulator.fleet.hosts[0].name],
        ).fetchall()
    assert (days, metrics) == (DAYS, 20)
    # A host reports every 10 minutes: 144 points a day, less the simulator's short gaps.
    assert len(per_day) == DAYS
    assert all(130 <= count <= 144 for (count,) in per_day)
