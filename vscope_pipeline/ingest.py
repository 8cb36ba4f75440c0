"""Run the ingestion job over a range of UTC days, through the local Dagster instance."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from vscope_pipeline.settings import load_start_date

log = logging.getLogger(__name__)

_REPO_INSTANCE_FILE = Path(__file__).resolve().parent.parent / "dagster.yaml"


class IngestRangeError(ValueError):
    """A requested day range that cannot be ingested."""


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

    The runs of `vscope-pipeline ingest` then show in `dagster dev` and the web UI.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_file = home / "dagster.yaml"
    if not instance_file.exists() and _REPO_INSTANCE_FILE.exists():
        shutil.copyfile(_REPO_INSTANCE_FILE, instance_file)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


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
) -> list[RunOutcome]:
    """Run the ingestion job on [first, last], `days_per_run` days per Dagster run.

    Stops at the first failed run: the days before it are stored, the failed chunk keeps its
    previous partitions, and the days after it are left for a re-run.
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
        result = job.execute_in_process(
            instance=instance,
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
