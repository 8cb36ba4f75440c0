"""A backfill run in a process of its own, started by the parallel backfill test.

The module is imported by name in the spawned process, so it imports nothing from the tests.
"""

import datetime as dt
import os
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier


def run_backfill(
    environment: dict[str, str],
    first: dt.date,
    last: dt.date,
    barrier: Barrier,
    results: Queue,
) -> None:
    """Backfill [first, last] in one Dagster run and put (label, outcomes, start, end) on `results`.

    The environment is set and Dagster imported before the barrier, so that both processes
    start sending requests at the same moment. `start` and `end` are `time.monotonic` seconds.
    """
    os.environ.update(environment)
    import dagster as dg

    from vscope_pipeline.ingest import ingest_range

    label = f"{first}..{last}"
    with dg.DagsterInstance.ephemeral() as instance:
        barrier.wait(timeout=60)
        started = time.monotonic()
        outcomes = ingest_range(first, last, instance=instance, days_per_run=7)
        results.put((label, outcomes, started, time.monotonic()))
