"""Write one lake partition as a single Parquet file, replacing the previous one atomically."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vscope_pipeline.lake.layout import PARTITION_FILE
from vscope_pipeline.lake.staging import (
    PRIVATE_MODES,
    FileModes,
    claim_temporary_file,
    make_dirs,
    remove_abandoned,
)
from vscope_pipeline.lake.storage_full import storage_full_error, storage_full_reason

log = logging.getLogger(__name__)

# Rows per Parquet row group. Close to DuckDB's own row-group size (122,880 rows), so DuckDB
# scans the groups of one file in parallel, and small enough that the min/max statistics of
# the sorted `entity` column let a query on a few entities skip most groups.
ROW_GROUP_ROWS = 131_072

# Start of the temporary file names in a partition folder. The leading dot and the `.tmp` end
# keep `**/*.parquet` globs and the `data.parquet` look-ups from ever reading them.
TEMPORARY_PREFIX = f".{PARTITION_FILE}."


@dataclass(frozen=True)
class PartitionWrite:
    """The file that `write_partition` published."""

    path: str
    rows: int
    bytes_written: int
    # Conditional writes tried for a rollup object on S3: more than 1 when another writer
    # changed the object between its read and its write.
    attempts: int = 1


def write_partition(
    table: pa.Table,
    folder: str | os.PathLike[str],
    *,
    filesystem: pafs.FileSystem | None = None,
    modes: FileModes = PRIVATE_MODES,
) -> PartitionWrite:
    """Write `table` as `<folder>/data.parquet`, replacing any previous file in one step.

    On the local file system the table is first written to a temporary name in the same
    folder. That name does not end in `.parquet`, so `**/*.parquet` readers never see a
    half-written file. The temporary file then replaces `data.parquet` with `os.replace`, an
    atomic rename: a reader opens either the old file or the new one, never a mix. New folders
    get `modes.folder` and the file `modes.file` (0o700 and 0o600 by default, see
    `staging.file_modes`), the data is flushed to disk (fsync) before the rename, and temporary
    files that a killed writer left in the folder are removed first (see
    `staging.remove_abandoned`).

    On object storage (any other `pyarrow.fs` file system, `folder` being `bucket/prefix/...`)
    `data.parquet` is written directly, because an object store has no rename and needs none:
    the object appears, or is replaced, only when its single PUT or its multipart upload
    completes, and then whole. A writer killed mid-upload leaves an incomplete multipart upload,
    which no reader lists or opens, and the previous object stays readable. A temporary object
    and a server-side copy would only add a second, non-atomic step. `modes` does not apply.

    On failure the previous partition stays as it was. A zero-row table still writes a file, so
    re-running an emptied day replaces stale rows. When the local disk, the quota or the file
    size limit is full, the error is a `StorageFullError` that names the file and what to free.
    """
    if filesystem is None or isinstance(filesystem, pafs.LocalFileSystem):
        return _write_local(table, Path(os.path.abspath(os.fspath(folder))), modes)

    target = f"{os.fspath(folder).rstrip('/')}/{PARTITION_FILE}"
    with filesystem.open_output_stream(target) as sink:
        _write_parquet(table, sink)
        size = sink.tell()
    return _written(target, table, size)


def _write_local(table: pa.Table, folder: Path, modes: FileModes) -> PartitionWrite:
    target = folder / PARTITION_FILE
    try:
        make_dirs(folder, mode=modes.folder)
        remove_abandoned(folder, TEMPORARY_PREFIX)
        with claim_temporary_file(folder, TEMPORARY_PREFIX, mode=modes.file) as temporary:
            try:
                # Truncates the claimed file, which keeps its inode, its lock and its mode.
                with pa.OSFile(str(temporary), "wb") as sink:
                    _write_parquet(table, sink)
                _fsync(temporary)
                size = temporary.stat().st_size
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
    except OSError as error:
        _raise_if_storage_full(error, target, folder)
        raise
    return _written(str(target), table, size)


def _write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=_string_columns(table.schema),
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
    )


def _fsync(path: Path) -> None:
    # Without it, a power cut soon after the rename can leave an empty data.parquet on
    # file systems that allocate blocks lazily (ext4, XFS).
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise_if_storage_full(
    error: OSError, target: str | os.PathLike[str], folder: str | os.PathLike[str]
) -> None:
    reason = storage_full_reason(error)
    if reason is not None:
        raise storage_full_error(target, reason, folder) from error


def _written(target: str, table: pa.Table, size: int | None) -> PartitionWrite:
    log.debug("wrote %s: %d rows, %d bytes", target, table.num_rows, size or 0)
    return PartitionWrite(path=target, rows=table.num_rows, bytes_written=int(size or 0))


def parquet_bytes(table: pa.Table) -> bytes:
    """Return `table` encoded as the lake's Parquet files are, for a write through boto3."""
    sink = pa.BufferOutputStream()
    _write_parquet(table, sink)
    return sink.getvalue().to_pybytes()


def _string_columns(schema: pa.Schema) -> list[str]:
    return [
        field.name
        for field in schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]
