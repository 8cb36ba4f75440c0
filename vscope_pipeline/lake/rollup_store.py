"""Store the rollups of one metric-day in the month file of its metric.

Rollups are small: a day of daily rollups is one row per series. One file per metric-day would
make dashboards list and open 7,300 files per grain for a year, and on 2 cores that fixed cost,
not the rows read, set the time of a year-long query. Rollups are therefore kept in one file per
grain, metric and UTC month, sorted by day, and a metric-day replaces its own rows in that file:
- the month file is read, the day's previous rows are removed, the new rows are added, and the
  result replaces the file through `write_partition`, one atomic rename;
- in a local lake, an exclusive lock on a file in the month folder serialises writers of the
  same month, also across processes (two backfill runs may share a month), so no writer drops
  another's day;
- in a bucket there is no lock, so the month object is replaced with a conditional PUT instead
  (optimistic concurrency, see `_write_month_object`).
Re-running a day therefore rewrites one month file per grain and touches no other day's values.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vscope_pipeline.lake.layout import PARTITION_FILE, file_key, rollup_month_key
from vscope_pipeline.lake.location import LakeLike, LakeLocation, S3Connection, as_lake
from vscope_pipeline.lake.schema import ROLLUP_FILE_SCHEMA
from vscope_pipeline.lake.staging import PRIVATE_MODES, FileModes, make_dirs
from vscope_pipeline.lake.writer import PartitionWrite, parquet_bytes, write_partition

log = logging.getLogger(__name__)

# Held while a month file is rewritten. Its name does not end in `.parquet`, so readers skip it.
LOCK_FILE = ".rollup.lock"

SORT_KEYS = [
    (name, "ascending")
    for name in ("day", "entity_kind", "service_name", "datacenter", "entity", "nic", "bucket")
]


# Conditional PUTs of one month object before giving up. Each failed attempt means that another
# writer stored its own day in between.
CONDITIONAL_WRITE_ATTEMPTS = 10
# Seconds to wait after a lost conditional PUT: a random time up to this base doubled per lost
# attempt, capped. Without the wait, a writer that keeps writing days of the month can win every
# race against one that re-reads at once (seen with two processes against moto).
CONFLICT_BACKOFF_BASE = 0.05
CONFLICT_BACKOFF_MAX = 2.0

# Error codes of a conditional PUT that lost against another writer: 412 when the ETag no
# longer matches (or the object now exists), 409 when another conditional write of the same
# key was in flight.
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
# Error codes of a store that does not implement conditional PUTs.
UNSUPPORTED_CODES = frozenset({"NotImplemented", "501"})


class RollupFileError(RuntimeError):
    """A month file of rollups that cannot be read, so the day cannot be merged into it."""


class RollupConflictError(RuntimeError):
    """A month object that other writers kept changing, so the day could not be merged."""


@contextmanager
def _month_lock(folder: Path, modes: FileModes) -> Iterator[None]:
    make_dirs(folder, mode=modes.folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, modes.file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # Closing the descriptor releases the lock; the kernel also releases it on SIGKILL.
        os.close(fd)


def _stored_month(path: Path) -> pa.Table:
    if not path.is_file():
        return ROLLUP_FILE_SCHEMA.empty_table()
    return _checked_month(path, lambda: pq.read_table(path))


def _checked_month(path: object, read: Callable[[], pa.Table]) -> pa.Table:
    try:
        table = read()
    except (OSError, pa.ArrowInvalid) as error:
        raise RollupFileError(
            f"failed to read the rollup file {path}: {error}. Delete it and re-materialize the "
            "days of that month for this metric; their rollups are rewritten with them."
        ) from error
    if not table.schema.equals(ROLLUP_FILE_SCHEMA, check_metadata=False):
        raise RollupFileError(
            f"the rollup file {path} does not have the expected columns. Delete it and "
            "re-materialize the days of that month for this metric."
        )
    return table


def _merged_month(stored: pa.Table, day: dt.date, rollups: pa.Table) -> pa.Table:
    kept = stored.filter(pc.not_equal(stored.column("day"), day))
    month = pa.concat_tables([kept, rollups.cast(ROLLUP_FILE_SCHEMA)])
    return month.take(pc.sort_indices(month, sort_keys=SORT_KEYS))


def write_rollup_day(
    lake: LakeLike,
    grain: str,
    metric: str,
    day: dt.date,
    rollups: pa.Table,
    *,
    modes: FileModes = PRIVATE_MODES,
) -> PartitionWrite:
    """Replace the rows of `day` in the month file of `grain` and `metric` with `rollups`.

    `lake` is a `LakeLocation` or a local lake folder. `rollups` is a ROLLUP_FILE_SCHEMA table
    whose rows all belong to `day`; an empty table removes the day's rows. Returns what was
    written: the whole month file.
    """
    if rollups.num_rows and not pc.all(pc.equal(rollups.column("day"), day)).as_py():
        raise ValueError(f"rollups given for {day} contain rows of another day")
    location = as_lake(lake)
    folder_key = rollup_month_key(grain, metric, day)
    if not location.is_local:
        return _write_month_object(location, folder_key, day, rollups)
    folder = Path(location.path(folder_key))
    with _month_lock(folder, modes):
        month = _merged_month(_stored_month(folder / PARTITION_FILE), day, rollups)
        return write_partition(month, folder, modes=modes)


def _write_month_object(
    location: LakeLocation, folder_key: str, day: dt.date, rollups: pa.Table
) -> PartitionWrite:
    """Merge `day` into the month object with a read, then a conditional PUT, retried.

    The PUT carries `If-Match: <ETag read>`, or `If-None-Match: *` when the object did not
    exist, so the store accepts it only if no other writer replaced the object since it was
    read. A writer that loses gets 412 (or 409 while the other write is in flight), waits a
    random time that grows with each loss, and reads the object again. The object now contains
    the other writer's day, and the writer merges its own day into that.
    Each accepted PUT therefore contains every day of all the PUTs accepted before it, so two
    runs that write days of the same month never drop each other's day. The same day written
    by two runs keeps the rows of the last accepted PUT, as with the local lock.

    This needs a store that honours `If-Match` and `If-None-Match` on PUT, as AWS S3 and moto
    do. A store that ignores them would accept both PUTs, and the later one would drop the
    earlier one's day. On such a store, run one writer per month at a time.
    """
    assert location.s3 is not None
    from botocore.exceptions import ClientError

    client = _client(location.s3)
    path = location.path(file_key(folder_key))
    bucket, key = path.split("/", 1)
    url = location.url(path)
    for attempt in range(1, CONDITIONAL_WRITE_ATTEMPTS + 1):
        stored, etag = _read_month_object(client, bucket, key, url)
        month = _merged_month(stored, day, rollups)
        body = parquet_bytes(month)
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, **condition)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in UNSUPPORTED_CODES:
                raise RollupConflictError(
                    f"failed to write the rollup object {url}: the store rejected a conditional "
                    f"PUT ({code}). Rollup month objects need a store that supports If-Match and "
                    "If-None-Match on PUT, so that concurrent runs keep each other's days."
                ) from error
            if code not in CONFLICT_CODES:
                raise
            log.info(
                "rollup object %s changed since it was read (attempt %d of %d), reading it again",
                url,
                attempt,
                CONDITIONAL_WRITE_ATTEMPTS,
            )
            delay = min(CONFLICT_BACKOFF_MAX, CONFLICT_BACKOFF_BASE * 2 ** (attempt - 1))
            time.sleep(random.uniform(0, delay))
            continue
        log.debug("wrote %s: %d rows, %d bytes", url, month.num_rows, len(body))
        return PartitionWrite(
            path=url, rows=month.num_rows, bytes_written=len(body), attempts=attempt
        )
    raise RollupConflictError(
        f"failed to write the rollup object {url}: other writers changed it before each of "
        f"{CONDITIONAL_WRITE_ATTEMPTS} conditional writes. Run the day {day} again once the "
        "other runs that write this month have finished."
    )


@functools.lru_cache(maxsize=8)
def _client(connection: S3Connection) -> Any:
    # Building a boto3 client loads its service model, which costs more than a small PUT.
    # boto3 clients are thread-safe, so the metric threads of a run share one.
    return connection.client()


def _read_month_object(client: Any, bucket: str, key: str, url: str) -> tuple[pa.Table, str | None]:
    """Return the stored month object and its ETag, or an empty table and None if missing."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        return ROLLUP_FILE_SCHEMA.empty_table(), None
    body = response["Body"].read()
    table = _checked_month(url, lambda: pq.read_table(pa.BufferReader(body)))
    return table, response["ETag"]
