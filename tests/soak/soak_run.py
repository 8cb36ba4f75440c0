"""Run a backfill against the simulator, with or without seeded chaos, and compare the lakes.

The soak test and `python -m tests.soak` share these functions. A backfill runs the real
ingestion job through Dagster, one `ingest_range` call per run, so that the APIv6 faults of
each run are queued just before it starts.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from vscope_pipeline.ingest import RunOutcome, environment, ingest_range, split_range
from vscope_pipeline.lake.layout import INVENTORY_DIR, METRICS_DIR, ROLLUPS_DIR
from vscope_pipeline.simulator.chaos import ApiChaos, ChaosRates, FaultKind, TsdbChaos
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.opentsdb_server import OpenTsdbServer
from vscope_pipeline.simulator.ovh_api import OvhApiServer
from vscope_pipeline.simulator.runner import running_simulator

LAKE_DIRS = (METRICS_DIR, ROLLUPS_DIR, INVENTORY_DIR)
# The time APIv6 returned when the snapshot was taken: it differs between two runs.
SNAPSHOT_TIME_COLUMN = "snapshot_at"


@dataclass(frozen=True)
class SoakConfig:
    """The backfill of a soak: days, fleet size, point interval, run size, seed and rates.

    `anchor_day` is the simulator's "today", and the backfill ends the day before it.
    """

    anchor_day: dt.date
    days: int = 30
    vm_count: int = 3
    step_seconds: int = 3600
    days_per_run: int = 7
    seed: int = 20261204
    rates: ChaosRates = field(default_factory=ChaosRates)
    api_route_rate: float = 0.05

    @property
    def last_day(self) -> dt.date:
        return self.anchor_day - dt.timedelta(days=1)

    @property
    def first_day(self) -> dt.date:
        return self.last_day - dt.timedelta(days=self.days - 1)


@dataclass(frozen=True)
class RunStats:
    """Requests and retries of one Dagster run, from its materialisation metadata."""

    metric_requests: int
    metric_retries: int
    inventory_requests: int
    inventory_retries: int


@dataclass(frozen=True)
class BackfillResult:
    """What one backfill did: its runs, the servers' counters and the injected faults."""

    data_dir: Path
    outcomes: list[RunOutcome]
    runs: list[RunStats]
    tsdb_requests: int
    tsdb_by_status: Mapping[int, int]
    api_requests: int
    api_by_status: Mapping[int, int]
    tsdb_injected: Mapping[FaultKind, int]
    api_injected: Mapping[FaultKind, int]
    # Forced APIv6 responses that no request took: a plan for a route the runs never used.
    api_left_queued: int
    wall_s: float

    @property
    def succeeded(self) -> bool:
        return bool(self.outcomes) and all(outcome.success for outcome in self.outcomes)

    @property
    def metric_requests(self) -> int:
        return sum(run.metric_requests for run in self.runs)

    @property
    def metric_retries(self) -> int:
        return sum(run.metric_retries for run in self.runs)

    @property
    def inventory_requests(self) -> int:
        return sum(run.inventory_requests for run in self.runs)

    @property
    def inventory_retries(self) -> int:
        return sum(run.inventory_retries for run in self.runs)


def run_backfills(
    config: SoakConfig, jobs: Sequence[tuple[Path, bool]], *, parallel: bool = True
) -> list[BackfillResult]:
    """Run one backfill per `(data_dir, chaos)` job and return their results in job order.

    With `parallel`, each backfill runs in its own process, all at once: a backfill spends
    most of its time in Python code, which one process runs on one core at a time.
    """
    if not parallel:
        return [run_backfill(config, data_dir, chaos=chaos) for data_dir, chaos in jobs]
    # A spawned process starts clean, instead of forking the threads of the caller.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context) as pool:
        futures = [
            pool.submit(run_backfill, config, data_dir, chaos=chaos) for data_dir, chaos in jobs
        ]
        return [future.result() for future in futures]


def run_backfill(config: SoakConfig, data_dir: Path, *, chaos: bool) -> BackfillResult:
    """Backfill `config`'s days into `data_dir` on a fresh simulator and Dagster instance.

    With `chaos`, OpenTSDB gets a `TsdbChaos` and APIv6 the faults of an `ApiChaos`, both
    seeded with `config.seed`. The simulator's clock reads noon of the anchor day when the
    backfill starts, so that every backfill dates its inventory snapshot the same day.
    """
    started = time.perf_counter()
    clock = SimulatorClock(dt.datetime.combine(config.anchor_day, dt.time(12), tzinfo=dt.UTC))
    tsdb_chaos = TsdbChaos(config.seed, config.rates) if chaos else None
    api_chaos = (
        ApiChaos(config.seed, config.rates, route_rate=config.api_route_rate) if chaos else None
    )
    outcomes: list[RunOutcome] = []
    with (
        running_simulator(
            anchor_day=config.anchor_day,
            vm_count=config.vm_count,
            step_seconds=config.step_seconds,
            clock=clock,
        ) as simulator,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        tsdb_server = simulator.opentsdb_server.server
        api_server = simulator.ovh_server.server
        assert isinstance(tsdb_server, OpenTsdbServer)
        assert isinstance(api_server, OvhApiServer)
        tsdb_server.faults.request_hook = tsdb_chaos
        overrides = {**simulator.environment(), "VSCOPE_DATA_DIR": str(data_dir)}
        chunks = split_range(config.first_day, config.last_day, config.days_per_run)
        with environment(overrides):
            for run_number, (first, last) in enumerate(chunks):
                if api_chaos is not None:
                    api_chaos.queue_run(api_server.faults, run_number)
                outcome = ingest_range(
                    first,
                    last,
                    instance=instance,
                    days_per_run=config.days_per_run,
                    log_level="WARNING",
                )
                outcomes += outcome
                if not all(item.success for item in outcome):
                    break
        runs = [run_stats(instance, outcome.run_id) for outcome in outcomes]
        tsdb_counters = tsdb_server.counters.snapshot()
        api_counts = api_server.counters.snapshot()
        api_by_status: dict[int, int] = {}
        for (_, status), count in api_counts.items():
            api_by_status[status] = api_by_status.get(status, 0) + count
        return BackfillResult(
            data_dir=data_dir,
            outcomes=outcomes,
            runs=runs,
            tsdb_requests=tsdb_counters.requests,
            tsdb_by_status=dict(tsdb_counters.by_status),
            api_requests=sum(api_counts.values()),
            api_by_status=api_by_status,
            tsdb_injected=tsdb_chaos.counts.snapshot() if tsdb_chaos else {},
            api_injected=api_chaos.counts.snapshot() if api_chaos else {},
            api_left_queued=api_server.faults.pending(),
            wall_s=time.perf_counter() - started,
        )


def run_stats(instance: dg.DagsterInstance, run_id: str) -> RunStats:
    """Add up the `requests` and `retries` metadata of a run's materialisations.

    A run of several days records one materialisation per day and asset, each with the counts
    of the whole run, and every inventory asset repeats the counts of the one inventory walk.
    So each metric asset counts once, and the inventory once.
    """
    counts: dict[str, tuple[int, int]] = {}
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for entry in entries:
        materialization = entry.asset_materialization
        assert materialization is not None
        metadata = materialization.metadata
        if "requests" not in metadata:
            continue
        path = materialization.asset_key.path
        source = "/".join(path) if path[0] == "metrics" else "inventory"
        requests = int(metadata["requests"].value)  # type: ignore[arg-type]
        retries = int(metadata["retries"].value)  # type: ignore[arg-type]
        counts[source] = (requests, retries)
    inventory_requests, inventory_retries = counts.pop("inventory", (0, 0))
    return RunStats(
        metric_requests=sum(requests for requests, _ in counts.values()),
        metric_retries=sum(retries for _, retries in counts.values()),
        inventory_requests=inventory_requests,
        inventory_retries=inventory_retries,
    )


def lake_files(data_dir: Path) -> list[str]:
    """Return every file under the lake folders, as sorted paths relative to `data_dir`."""
    return sorted(
        str(path.relative_to(data_dir))
        for folder in LAKE_DIRS
        for path in (data_dir / folder).rglob("*")
        if path.is_file()
    )


def comparable_table(path: Path) -> pa.Table:
    """Read a lake file in a fixed row order, without the inventory snapshot time."""
    table = pq.read_table(path)
    if SNAPSHOT_TIME_COLUMN in table.column_names:
        table = table.drop_columns([SNAPSHOT_TIME_COLUMN])
    # Nested columns (lists, structs) cannot be sort keys, and the flat ones identify a row.
    keys = [
        (column.name, "ascending") for column in table.schema if not pa.types.is_nested(column.type)
    ]
    return table.sort_by(keys)


def differing_files(reference: Path, other: Path) -> Iterator[str]:
    """Yield the Parquet files of `reference` whose contents differ in `other`.

    Files with the same bytes are equal. Others are read and compared as sorted tables, since
    two runs may write the same rows in another order. Other files, such as lock files, are
    not compared. Both lakes must have the same file set: compare `lake_files` first.
    """
    for name in lake_files(reference):
        if not name.endswith(".parquet"):
            continue
        if (reference / name).read_bytes() == (other / name).read_bytes():
            continue
        if not comparable_table(reference / name).equals(comparable_table(other / name)):
            yield name


def identical_bytes(reference: Path, other: Path) -> int:
    """Return how many lake files of `reference` have the same bytes in `other`."""
    return sum(
        (reference / name).read_bytes() == (other / name).read_bytes()
        for name in lake_files(reference)
        if (other / name).is_file()
    )
