"""The Dagster instance on a real PostgreSQL server: settings, ingestion and a daemon backfill."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_representation.grpc_server_registry import GrpcServerRegistry
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES as IN_PROGRESS_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
)
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.controller import DAEMON_GRPC_SERVER_HEARTBEAT_TTL
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._grpc.constants import GrpcServerCommand
from pg_server import PostgresServer

from vscope_pipeline.catalog import ENTITY_KINDS, build_catalog
from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS
from vscope_pipeline.defs.metric_assets import metric_asset_key
from vscope_pipeline.defs.warehouse_assets import WAREHOUSE_KEY
from vscope_pipeline.ingest import (
    INSTANCE_FILES,
    ensure_dagster_home,
    ingest_range,
    last_complete_day,
)
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.simulator.runner import running_simulator

pytestmark = [
    pytest.mark.integration,
    # Raised inside Dagster 1.13's asset backfill code, not by this project's calls.
    pytest.mark.filterwarnings(
        "ignore:Function `AssetSelection.sources` is deprecated:DeprecationWarning"
    ),
]

REPO = Path(__file__).resolve().parents[2]
DAYS = 3
# One point every 10 minutes keeps six days of a small fleet to seconds of queries.
STEP_SECONDS = 600
VM_COUNT = 4
# Seconds the in-process daemons get to finish the backfill. Its two runs take 15 to 25 s
# each on 2 busy cores, most of it starting a run worker process.
BACKFILL_DEADLINE_SECONDS = 120
# Steps of a backfill run execute in the run worker itself rather than one process per step,
# which saves about 8 s a step here. The daemon path is the same for either executor.
IN_PROCESS_EXECUTOR: dict[str, object] = {"execution": {"config": {"in_process": {}}}}
METRIC_KEYS = [metric_asset_key(kind) for kind in ENTITY_KINDS]


@pytest.fixture
def database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> PostgresServer:
    """Return the server with a new empty database, so each test starts with no records."""
    name = f"dagster_{request.node.name.lower()}"[:63]
    admin = postgres_server.connect(database="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return dataclasses.replace(postgres_server, database=name)


@pytest.fixture
def postgres_env(
    database: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PostgresServer:
    for name, value in database.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VSCOPE_DAGSTER_STORAGE", "postgres")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path / "data"))
    return database


@pytest.fixture
def instance(postgres_env: PostgresServer, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """Load the instance the way `vscope-pipeline` does: copy the file, then read DAGSTER_HOME."""
    ensure_dagster_home(tmp_path / "unused_default")
    with dg.DagsterInstance.get() as loaded:
        yield loaded


def _count(server: PostgresServer, query: str) -> int:
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            (count,) = cursor.fetchone()
    finally:
        connection.close()
    return int(count)


def _materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[str]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key), limit=1000
    ).records
    return sorted(str(record.partition_key) for record in records)


def _assert_lake_has_days(data_dir: Path, days: list[dt.date]) -> None:
    for spec in build_catalog():
        for day in days:
            assert (metric_partition_dir(data_dir, spec.name, day) / "data.parquet").is_file(), (
                spec.name,
                day,
            )


def _days(first: dt.date, count: int) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range(count)]


def test_home_gets_postgres_instance_file(instance, tmp_path):
    home = tmp_path / "dagster_home"

    assert (home / "dagster.yaml").read_text() == INSTANCE_FILES["postgres"].read_text()
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        assert type(storage).__module__.startswith("dagster_postgres."), type(storage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config is not None
    assert concurrency.run_queue_config.max_concurrent_runs == 2
    assert concurrency.pool_config.default_pool_limit == 2
    # No SQLite file: every record goes to PostgreSQL.
    assert sorted(path.name for path in home.iterdir()) == ["dagster.yaml"]


def _run_daemons_until_done(
    context: WorkspaceProcessContext, backfill_id: str, deadline_seconds: float
) -> PartitionBackfill:
    """Run iterations of the backfill and run queue daemons in this process until the end.

    The runs themselves start in subprocesses of the code server, as under `dagster-daemon`.
    """
    logger = logging.getLogger("backfill_daemon")
    queue_daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    deadline = time.monotonic() + deadline_seconds
    while True:
        list(execute_backfill_iteration(context, logger))
        list(queue_daemon.run_iteration(context))
        backfill = context.instance.get_backfill(backfill_id)
        assert backfill is not None
        if backfill.status != BulkActionStatus.REQUESTED:
            return backfill
        assert time.monotonic() < deadline, (
            f"backfill {backfill_id} still {backfill.status} after {deadline_seconds} s: runs "
            f"{[(run.run_id, run.status) for run in context.instance.get_runs()]}"
        )
        time.sleep(0.5)


def _backfill_through_daemons(
    instance: dg.DagsterInstance, days: list[dt.date], selection: list[dg.AssetKey]
) -> PartitionBackfill:
    """Request an asset backfill as the web UI does, then let the daemons run it."""
    target = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])
    # Built as dagster-daemon builds it, except that leaving it waits until the code server
    # has exited. The server's last check of finished runs reads PostgreSQL, which must still
    # be running then.
    registry = GrpcServerRegistry(
        instance_ref=instance.get_ref(),
        server_command=GrpcServerCommand.API_GRPC,
        heartbeat_ttl=DAEMON_GRPC_SERVER_HEARTBEAT_TTL,
        startup_timeout=instance.code_server_process_startup_timeout,
        wait_for_processes_on_shutdown=True,
    )
    with (
        registry,
        WorkspaceProcessContext(instance, target, grpc_server_registry=registry) as context,
    ):
        backfill_id = make_new_backfill_id()
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=context.create_request_context().asset_graph,
                partition_names=[day.isoformat() for day in days],
                asset_selection=selection,
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=IN_PROCESS_EXECUTOR,
            )
        )
        try:
            return _run_daemons_until_done(context, backfill_id, BACKFILL_DEADLINE_SECONDS)
        finally:
            # A run left going would keep its code server process alive after the test.
            for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS_STATUSES)):
                instance.run_launcher.terminate(run.run_id)


def test_ingest_then_daemon_backfill(instance, postgres_env, tmp_path, monkeypatch):
    last = last_complete_day()
    ingested = _days(last - dt.timedelta(days=DAYS - 1), DAYS)
    backfilled = _days(last - dt.timedelta(days=2 * DAYS - 1), DAYS)
    with running_simulator(vm_count=VM_COUNT, step_seconds=STEP_SECONDS) as simulator:
        # The code server and its run workers inherit these, as under dagster-daemon.
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)

        outcomes = ingest_range(ingested[0], ingested[-1], instance=instance, days_per_run=DAYS)

        assert [(o.first_day, o.last_day, o.success, o.error) for o in outcomes] == [
            (ingested[0], ingested[-1], True, None)
        ]
        (run,) = instance.get_runs()
        assert run.run_id == outcomes[0].run_id
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[ASSET_PARTITION_RANGE_START_TAG] == ingested[0].isoformat()
        assert run.tags[ASSET_PARTITION_RANGE_END_TAG] == ingested[-1].isoformat()
        for key in METRIC_KEYS:
            assert _materialized_partitions(instance, key) == [d.isoformat() for d in ingested]
        for key in [*INVENTORY_KEYS.values(), WAREHOUSE_KEY]:
            assert _materialized_partitions(instance, key) == ["None"], key

        backfill = _backfill_through_daemons(instance, backfilled, [*METRIC_KEYS, WAREHOUSE_KEY])

    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    # The metric assets' backfill policy puts up to seven days in one run. The warehouse is
    # not partitioned, so a second run rebuilds it once the first has succeeded.
    metric_run, warehouse_run = sorted(runs, key=lambda run: WAREHOUSE_KEY in run.asset_selection)
    assert metric_run.tags[ASSET_PARTITION_RANGE_START_TAG] == backfilled[0].isoformat()
    assert metric_run.tags[ASSET_PARTITION_RANGE_END_TAG] == backfilled[-1].isoformat()
    assert set(metric_run.asset_selection or ()) == set(METRIC_KEYS)
    assert warehouse_run.asset_selection == {WAREHOUSE_KEY}

    all_days = [day.isoformat() for day in backfilled + ingested]
    for key in METRIC_KEYS:
        assert _materialized_partitions(instance, key) == all_days, key
    assert _materialized_partitions(instance, WAREHOUSE_KEY) == ["None", "None"]

    # The same records, read straight from PostgreSQL's tables.
    assert _count(postgres_env, "SELECT count(*) FROM runs WHERE status = 'SUCCESS'") == 3
    materializations = len(METRIC_KEYS) * 2 * DAYS + len(INVENTORY_KEYS) + 2
    query = "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    assert _count(postgres_env, query) == materializations
    assert (
        _count(postgres_env, "SELECT count(*) FROM bulk_actions WHERE status = 'COMPLETED_SUCCESS'")
        == 1
    )

    data_dir = tmp_path / "data"
    _assert_lake_has_days(data_dir, backfilled + ingested)
    with duckdb.connect(str(data_dir / "vscope.duckdb"), read_only=True) as con:
        days = con.execute("SELECT count(DISTINCT day) FROM metric_points").fetchall()
    assert days == [(2 * DAYS,)]
