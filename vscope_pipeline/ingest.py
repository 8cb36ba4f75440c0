"""Run the ingestion job over a range of UTC days, through the local Dagster instance."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.utils import make_new_run_id

from vscope_pipeline.settings import (
    PostgresConnection,
    SettingsError,
    load_dagster_storage,
    load_start_date,
)

log = logging.getLogger(__name__)

_REPO_DIR = Path(__file__).resolve().parent.parent
# The instance file that each VSCOPE_DAGSTER_STORAGE value copies into DAGSTER_HOME.
INSTANCE_FILES = {
    "sqlite": _REPO_DIR / "dagster.yaml",
    "postgres": _REPO_DIR / "dagster.postgres.yaml",
}

# Seconds to wait for the PostgreSQL server to accept a connection before reporting it down.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5


class IngestRangeError(ValueError):
    """A requested day range that cannot be ingested."""


class DagsterStorageUnreachableError(SettingsError):
    """The PostgreSQL server of the Dagster instance rejected a connection or did not accept one."""

    def __init__(self, message: str) -> None:
        # Shown as is, without the "invalid configuration" heading, because a server that is
        # down is a state, not an invalid variable.
        self.problems = [message]
        ValueError.__init__(self, message)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    first_day: dt.date
    last_day: dt.date
    success: bool
    error: str | None = None


def _first_failure(result: dg.ExecuteInProcessResult) -> str | None:
    """Return the first error of a failed run: a step's, or a resource's set-up."""
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if event.is_failure and error is not None:
            # Dagster wraps errors raised while resources start; the cause is the user's error.
            while error.cause is not None:
                error = error.cause
            where = event.step_key or "run"
            return f"{where}: {error.message.strip()}"
    return None if result.success else "the run failed; see the Dagster run log"


def last_complete_day(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def validate_range(first: dt.date, last: dt.date, *, start_date: dt.date, latest: dt.date) -> None:
    if first > last:
        raise IngestRangeError(f"--from {first} is after --to {last}: give the earlier day first")
    if last > latest:
        raise IngestRangeError(
            f"--to {last} is not a complete UTC day yet: the last complete day is {latest}"
        )
    if first < start_date:
        raise IngestRangeError(
            f"--from {first} is before the first partition {start_date}: set "
            f"VSCOPE_START_DATE={first} (or earlier) to ingest it"
        )


def split_range(first: dt.date, last: dt.date, days_per_run: int) -> list[tuple[dt.date, dt.date]]:
    """Cut [first, last] into consecutive chunks of at most `days_per_run` days."""
    chunks = []
    chunk_start = first
    while chunk_start <= last:
        chunk_end = min(last, chunk_start + dt.timedelta(days=days_per_run - 1))
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + dt.timedelta(days=1)
    return chunks


def ensure_dagster_home(default: Path) -> Path:
    """Point DAGSTER_HOME at a folder with an instance file, creating it when unset.

    VSCOPE_DAGSTER_STORAGE chooses the file copied there: dagster.yaml (SQLite, the default) or
    dagster.postgres.yaml. For PostgreSQL the server must accept a connection first. Raises
    SettingsError for a missing or invalid variable or an unreachable server. The runs of
    `vscope-pipeline ingest` then show in `dagster dev` and the web UI.
    """
    storage = load_dagster_storage()
    if storage.postgres is not None:
        check_postgres_reachable(storage.postgres)
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    install_instance_file(home / "dagster.yaml", storage.kind)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance_storage_kind(instance_file: Path) -> str | None:
    """Return "sqlite" or "postgres" for the storage an instance file sets, None for others.

    A file without a storage section uses Dagster's default, SQLite under DAGSTER_HOME.
    """
    try:
        config = yaml.safe_load(instance_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    storage = config.get("storage")
    if storage is None:
        # The older per-storage keys name classes this function does not inspect.
        legacy = {"run_storage", "event_log_storage", "schedule_storage"} & set(config)
        return None if legacy else "sqlite"
    if isinstance(storage, dict) and len(storage) == 1:
        (kind,) = storage
        return kind if kind in INSTANCE_FILES else None
    return None


def install_instance_file(instance_file: Path, kind: str) -> None:
    """Copy the repository's instance file for storage `kind` to `instance_file` when needed.

    A file that already sets `kind` is kept as it is, edits included. A file that sets the
    other storage is replaced, and its text kept beside it as dagster.yaml.previous. A file
    whose storage cannot be read is kept, with a warning that the setting was not applied.
    """
    source = INSTANCE_FILES[kind]
    if not instance_file.exists():
        if source.exists():
            shutil.copyfile(source, instance_file)
        elif kind != "sqlite":
            # Without an instance file Dagster falls back to SQLite, which would hide the choice.
            raise SettingsError(
                [
                    f"VSCOPE_DAGSTER_STORAGE={kind} needs the instance file {source}, which is "
                    f"missing: run from a checkout of the repository, or copy that file from it "
                    f"to {instance_file}"
                ]
            )
        return

    current = instance_storage_kind(instance_file)
    if current == kind:
        return
    if current is None:
        log.warning(
            "%s sets a storage other than sqlite or postgres, or cannot be read: kept as is, "
            "so VSCOPE_DAGSTER_STORAGE=%s does not apply to it",
            instance_file,
            kind,
        )
        return
    if not source.exists():
        raise SettingsError(
            [
                f"VSCOPE_DAGSTER_STORAGE={kind} needs the instance file {source}, which is "
                f"missing, and {instance_file} sets {current}: run from a checkout of the "
                "repository"
            ]
        )
    previous = instance_file.with_name(instance_file.name + ".previous")
    shutil.copyfile(instance_file, previous)
    shutil.copyfile(source, instance_file)
    log.warning(
        "VSCOPE_DAGSTER_STORAGE=%s: replaced the %s instance file %s (old text in %s). The "
        "run history of the %s storage stays where it was but no longer shows",
        kind,
        current,
        instance_file,
        previous.name,
        current,
    )


def check_postgres_reachable(connection: PostgresConnection) -> None:
    """Open and close one connection to the instance database, or raise a clear error.

    Dagster would otherwise fail later, inside a run or the daemon, with a long traceback.
    """
    # Imported here because only the PostgreSQL storage needs the driver.
    import psycopg2

    try:
        psycopg2.connect(
            host=connection.host,
            port=connection.port,
            user=connection.user,
            password=connection.password.reveal(),
            dbname=connection.database,
            connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS,
        ).close()
    except psycopg2.Error as error:
        detail = " ".join(str(error).split())
        password = connection.password.reveal()
        if password:
            # Masked in case a driver message ever contains the password.
            detail = detail.replace(password, "***")
        raise DagsterStorageUnreachableError(
            f"VSCOPE_DAGSTER_STORAGE=postgres, but the PostgreSQL database "
            f"{connection.describe()} cannot be reached. Start the server, or fix "
            "DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD or "
            f"DAGSTER_PG_DB. The driver reported: {detail}"
        ) from None


@contextmanager
def environment(overrides: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ingest_range(
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance,
    days_per_run: int,
    log_level: str = "INFO",
    on_event: Callable[[dg.EventLogEntry], None] | None = None,
) -> list[RunOutcome]:
    """Run the ingestion job on [first, last], `days_per_run` days per Dagster run.

    Stops at the first failed run: the days before it are stored, the failed chunk keeps its
    previous partitions, and the days after it are left for a re-run. `on_event` receives
    every event of every run as the instance stores it, in the thread that logged it.
    """
    # Imported here so that VSCOPE_START_DATE, which shapes the partitions, is read after the
    # caller has set the environment.
    from vscope_pipeline.definitions import defs
    from vscope_pipeline.defs.jobs import INGEST_JOB_NAME

    validate_range(first, last, start_date=load_start_date(), latest=last_complete_day())
    job = defs.resolve_job_def(INGEST_JOB_NAME)
    outcomes = []
    for chunk_first, chunk_last in split_range(first, last, days_per_run):
        log.info("ingesting %s..%s", chunk_first, chunk_last)
        run_id = make_new_run_id()
        if on_event is not None:
            instance.add_event_listener(run_id, on_event)
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: chunk_first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: chunk_last.isoformat(),
            },
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
        outcomes.append(
            RunOutcome(
                result.run_id, chunk_first, chunk_last, result.success, _first_failure(result)
            )
        )
        if not result.success:
            break
    return outcomes
