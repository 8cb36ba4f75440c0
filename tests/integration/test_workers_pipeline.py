"""VSCOPE_WORKERS=2 against the simulator: the same lake as one process, within the same limits.

Both runs ingest the same two days into their own data folders. The simulated OpenTSDB logs
when each query arrived and finished, and the limits are checked from that log, as for two
backfills at once.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from test_parallel_backfills import max_arrivals_per_second, max_in_flight

from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.lake.layout import metrics_root, rollups_root
from vscope_pipeline.simulator.runner import running_simulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RATE = 20
MAX_CONCURRENCY = 2
BURST = 1
# Long enough that two slots serve more queries per second than RATE, so the rate paces them.
QUERY_DELAY_S = 0.08
# Two datacenters, 20 metrics and two days, one grouped query each.
EXPECTED_REQUESTS = 2 * 20 * 2


def _lake(data_dir: Path) -> dict[str, object]:
    """Return every metric and rollup file of the lake, by path, as a list of rows."""
    files = sorted(
        [*metrics_root(data_dir).rglob("*.parquet"), *rollups_root(data_dir).rglob("*.parquet")]
    )
    return {str(path.relative_to(data_dir)): pq.read_table(path).to_pylist() for path in files}


def _ingest(first: dt.date, last: dt.date) -> list[RunOutcome]:
    with dg.DagsterInstance.ephemeral() as instance:
        return ingest_range(first, last, instance=instance, days_per_run=7)


def test_two_workers_match_one(tmp_path, monkeypatch):
    last = last_complete_day()
    first = last - dt.timedelta(days=1)
    with running_simulator(vm_count=6, step_seconds=600) as simulator:
        server = simulator.opentsdb_server.server
        server.faults.delay_s = QUERY_DELAY_S
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_OPENTSDB_RATE_LIMIT", str(RATE))
        monkeypatch.setenv("VSCOPE_OPENTSDB_MAX_CONCURRENCY", str(MAX_CONCURRENCY))
        lakes = {}
        for workers in (1, 2):
            monkeypatch.setenv("VSCOPE_WORKERS", str(workers))
            monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path / f"workers-{workers}"))
            server.request_log.clear()

            outcomes = _ingest(first, last)

            log = server.request_log.entries()
            assert [(outcome.success, outcome.error) for outcome in outcomes] == [(True, None)]
            assert len(log) == EXPECTED_REQUESTS
            assert {entry.status for entry in log} == {200}
            # The server stamps a query finished after it has sent the response, so on a busy
            # machine the next query can arrive first and one more shows in flight. A limit
            # private to each worker would show up to twice MAX_CONCURRENCY.
            assert max_in_flight(log) <= MAX_CONCURRENCY + 1
            assert max_arrivals_per_second(log) <= RATE + BURST
            lakes[workers] = _lake(tmp_path / f"workers-{workers}")

    # 20 metric-days and their hourly and daily rollup month files, for each of the two days.
    assert len(lakes[1]) >= 40
    assert sorted(lakes[2]) == sorted(lakes[1])
    for path, rows in lakes[1].items():
        assert lakes[2][path] == rows, path
