"""Write one lake partition as a single Parquet file, replacing the previous one atomically."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vscope_pipeline.lake.layout import PARTITION_FILE

log = logging.getLogger(__name__)

# Rows per Parquet row group. Close to DuckDB's own row-group size (122,880 rows), so DuckDB
# scans the groups of one file in parallel, and small enough that the min/max statistics of
# the sorted `entity` column let a query on a few entities skip most groups.
ROW_GROUP_ROWS = 131_072


@dataclass(frozen=True)
class PartitionWrite:
    """The file that `write_partition` published."""

    path: str
    rows: int
    bytes_written: int


def write_partition(
    table: pa.Table,
    folder: str | os.PathLike[str],
    *,
    filesystem: pafs.FileSystem | None = None,
) -> PartitionWrite:
    """Write `table` as `<folder>/data.parquet`, replacing any previous file in one step.

    The table is first written to a temporary name in the same folder. That name does not end
    in `.parquet`, so `**/*.parquet` readers never see a half-written file. The temporary file
    then replaces `data.parquet`:
    - on the local file system with `os.replace`, an atomic rename: a reader opens either the
      old file or the new one, never a mix;
    - on any other `pyarrow.fs` file system with `FileSystem.move`. On S3 that is a
      server-side copy, and an S3 object is replaced whole in one step, like a single PUT, so
      readers see the old or the new object there too.
    On failure the temporary file is removed and the previous partition stays as it was. A
    zero-row table still writes a file, so re-running an emptied day replaces stale rows.

    `folder` is a local path by default, or a path of `filesystem` (for S3, `bucket/prefix`).
    """
    if filesystem is None:
        filesystem = pafs.LocalFileSystem()
        folder_path = os.path.abspath(os.fspath(folder))
    else:
        folder_path = os.fspath(folder).rstrip("/")
    target = f"{folder_path}/{PARTITION_FILE}"
    temporary = f"{folder_path}/.{PARTITION_FILE}.{uuid.uuid4().hex}.tmp"

    filesystem.create_dir(folder_path, recursive=True)
    try:
        with filesystem.open_output_stream(temporary) as sink:
            pq.write_table(
                table,
                sink,
                compression="zstd",
                use_dictionary=_string_columns(table.schema),
                row_group_size=ROW_GROUP_ROWS,
                write_statistics=True,
            )
        size = filesystem.get_file_info(temporary).size
        if isinstance(filesystem, pafs.LocalFileSystem):
            os.replace(temporary, target)
        else:
            filesystem.move(temporary, target)
    except BaseException:
        _remove_temporary(filesystem, temporary)
        raise

    log.debug("wrote %s: %d rows, %d bytes", target, table.num_rows, size)
    return PartitionWrite(path=target, rows=table.num_rows, bytes_written=int(size or 0))


def _string_columns(schema: pa.Schema) -> list[str]:
    return [
        field.name
        for field in schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]


def _remove_temporary(filesystem: pafs.FileSystem, path: str) -> None:
    try:
        if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            filesystem.delete_file(path)
    except OSError as exc:
        log.warning("could not remove the temporary file %s: %s", path, exc)
