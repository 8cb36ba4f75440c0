"""Two backfills in two processes at once stay within one OpenTSDB request limit together.

Each process has its own data folder, because a DuckDB warehouse takes one writer process at a
time. The request limits do not depend on the data folder: both processes take slots and
tokens from the same files, keyed by the simulator's host and port. The simulated OpenTSDB
logs when each query arrived and finished, and the limits are checked from that log.
"""

import datetime as dt
import multiprocessing
from bisect import bisect_left
from pathlib import Path

import duckdb
import pytest
from backfill_worker import run_backfill

from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.simulator.tsdb_faults import LoggedRequest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RATE = 20
MAX_CONCURRENCY = 2
# The OpenTSDB client's token bucket has a capacity of one token, so after a pause one
# request goes at once.
BURST = 1
METRIC_COUNT = 20
RESULT_TIMEOUT_S = 90
# Seconds the simulator takes to respond to each query. Two slots then serve up to 25 queries a
# second, more than RATE, so the rate limit paces the requests and consecutive ones overlap.
QUERY_DELAY_S = 0.08


def max_in_flight(log: tuple[LoggedRequest, ...]) -> int:
    """Return the max number of requests between arrival and finish at one moment."""
    # At equal times a finish sorts before an arrival: the slot was freed before it was taken.
    events = sorted([(entry.arrived, 1) for entry in log] + [(entry.finished, -1) for entry in log])
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    return peak


def max_arrivals_per_second(log: tuple[LoggedRequest, ...]) -> int:
    """Return the max number of arrivals in a window [t, t + 1 s) that starts at an arrival."""
    arrivals = sorted(entry.arrived for entry in log)
    return max(bisect_left(arrivals, start + 1.0) - index for index, start in enumerate(arrivals))


def stored_days(data_dir: Path) -> list[tuple[dt.date, int]]:
    with duckdb.connect(str(data_dir / "vscope.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT day, count(DISTINCT metric) FROM metric_points GROUP BY day ORDER BY day"
        ).fetchall()
    return [(day, metrics) for day, metrics in rows]


def test_two_backfills_share_limits(tmp_path):
    last = last_complete_day()
    ranges = [
        (last - dt.timedelta(days=3), last - dt.timedelta(days=2)),
        (last - dt.timedelta(days=1), last),
    ]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(ranges))
    results = context.Queue()
    with running_simulator(vm_count=6, step_seconds=600) as simulator:
        server = simulator.opentsdb_server.server
        server.faults.delay_s = QUERY_DELAY_S
        processes = []
        for first, last_day in ranges:
            data_dir = tmp_path / f"data-{first}"
            environment = {
                **simulator.environment(),
                "VSCOPE_DATA_DIR": str(data_dir),
                "VSCOPE_OPENTSDB_RATE_LIMIT": str(RATE),
                "VSCOPE_OPENTSDB_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
            }
            process = context.Process(
                target=run_backfill, args=(environment, first, last_day, barrier, results)
            )
            process.start()
            processes.append(process)
        finished = sorted(
            (results.get(timeout=RESULT_TIMEOUT_S) for _ in processes), key=lambda item: item[0]
        )
        for process in processes:
            process.join(timeout=RESULT_TIMEOUT_S)
        log = server.request_log.entries()

    assert [process.exitcode for process in processes] == [0, 0]
    for label, outcomes, _, _ in finished:
        assert [outcome.success for outcome in outcomes] == [True], (label, outcomes)
    (_, _, first_start, first_end), (_, _, second_start, second_end) = finished
    # The two backfills sent their requests during the same time.
    assert first_start < second_end
    assert second_start < first_end

    assert {entry.status for entry in log} == {200}
    assert max_in_flight(log) == MAX_CONCURRENCY
    # NOTE: arrivals are stamped by the server, a little after the client took its token, so
    # a request delayed longer than the others could in principle add one to a window.
    assert max_arrivals_per_second(log) <= RATE + BURST

    for first, last_day in ranges:
        assert stored_days(tmp_path / f"data-{first}") == [
            (first, METRIC_COUNT),
            (last_day, METRIC_COUNT),
        ]
