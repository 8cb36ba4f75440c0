"""Store the rollups of one metric-day in the month file of its metric.

Rollups are small: a day of daily rollups is one row per series. One file per metric-day would
make dashboards list and open 7,300 files per grain for a year, and on 2 cores that fixed cost,
not the rows read, set the time of a year-long query. Rollups are therefore kept in one file per
grain, metric and UTC month, sorted by day, and a metric-day replaces its own rows in that file:
- the month file is read, the day's previous rows are removed, the new rows are added, and the
  result replaces the file through `write_partition`, one atomic rename;
- an exclusive lock on a file in the month folder serialises writers of the same month, also
  across processes (two backfill runs may share a month), so no writer drops another's day.
Re-running a day therefore rewrites one month file per grain and touches no other day's values.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vscope_pipeline.lake.layout import partition_file, rollup_month_dir
from vscope_pipeline.lake.schema import ROLLUP_FILE_SCHEMA
from vscope_pipeline.lake.staging import PRIVATE_MODES, FileModes, make_dirs
from vscope_pipeline.lake.writer import PartitionWrite, write_partition

# Held while a month file is rewritten. Its name does not end in `.parquet`, so readers skip it.
LOCK_FILE = ".rollup.lock"

SORT_KEYS = [
    (name, "ascending")
    for name in ("day", "entity_kind", "service_name", "datacenter", "entity", "nic", "bucket")
]


class RollupFileError(RuntimeError):
    """A month file of rollups that cannot be read, so the day cannot be merged into it."""


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
    try:
        table = pq.read_table(path)
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


def write_rollup_day(
    data_dir: str | os.PathLike[str],
    grain: str,
    metric: str,
    day: dt.date,
    rollups: pa.Table,
    *,
    modes: FileModes = PRIVATE_MODES,
) -> PartitionWrite:
    """Replace the rows of `day` in the month file of `grain` and `metric` with `rollups`.

    `rollups` is a ROLLUP_FILE_SCHEMA table whose rows all belong to `day`; an empty table
    removes the day's rows. Returns what was written: the whole month file.
    """
    if rollups.num_rows and not pc.all(pc.equal(rollups.column("day"), day)).as_py():
        raise ValueError(f"rollups given for {day} contain rows of another day")
    folder = rollup_month_dir(data_dir, grain, metric, day)
    with _month_lock(folder, modes):
        stored = _stored_month(partition_file(folder))
        kept = stored.filter(pc.not_equal(stored.column("day"), day))
        month = pa.concat_tables([kept, rollups.cast(ROLLUP_FILE_SCHEMA)])
        month = month.take(pc.sort_indices(month, sort_keys=SORT_KEYS))
        return write_partition(month, folder, modes=modes)
