from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.lake import writer
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import ROW_GROUP_ROWS, PartitionWrite, write_partition

T0 = 1714521600000  # 2024-05-01T00:00:00Z in epoch ms
STRING_COLUMNS = {"entity_kind", "service_name", "datacenter", "entity", "nic"}


def _metric_table(entities: list[str], values: list[float]) -> pa.Table:
    rows = len(values)
    return pa.Table.from_pydict(
        {
            "entity_kind": ["vm"] * rows,
            "service_name": ["pcc-1"] * rows,
            "datacenter": ["pcc-1_datacenter1"] * rows,
            "entity": entities,
            "nic": [None] * rows,
            "ts": pa.array([T0 + 20_000 * i for i in range(rows)], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "value": values,
        },
        schema=METRIC_FILE_SCHEMA,
    )


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_write_creates_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "metrics" / "metric=vscope.vm.cpu.ready" / "day=2024-05-01"
    table = _metric_table(["vm-1", "vm-2"], [1.0, 2.0])

    written = write_partition(table, folder)

    target = folder / "data.parquet"
    assert written == PartitionWrite(path=str(target), rows=2, bytes_written=target.stat().st_size)
    assert _files(folder) == ["data.parquet"]
    assert pq.read_table(target).equals(table)


def test_rewrite_replaces_rows(tmp_path: Path) -> None:
    folder = tmp_path / "day=2024-05-01"
    write_partition(_metric_table(["vm-1", "vm-2", "vm-3"], [1.0, 2.0, 3.0]), folder)
    new_table = _metric_table(["vm-9"], [9.0])

    written = write_partition(new_table, folder)

    assert written.rows == 1
    assert _files(folder) == ["data.parquet"]
    assert pq.read_table(folder / "data.parquet").equals(new_table)


def test_empty_table_replaces_stale_rows(tmp_path: Path) -> None:
    folder = tmp_path / "day=2024-05-01"
    write_partition(_metric_table(["vm-1"], [1.0]), folder)

    written = write_partition(METRIC_FILE_SCHEMA.empty_table(), folder)

    stored = pq.read_table(folder / "data.parquet")
    assert written.rows == 0
    assert written.bytes_written > 0
    assert stored.num_rows == 0
    assert stored.schema == METRIC_FILE_SCHEMA
    assert _files(folder) == ["data.parquet"]


def test_relative_folder_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    written = write_partition(_metric_table(["vm-1"], [1.0]), "lake/day=2024-05-01")

    assert written.path == str(tmp_path / "lake" / "day=2024-05-01" / "data.parquet")


def test_parquet_encoding_and_statistics(tmp_path: Path) -> None:
    rows = ROW_GROUP_ROWS * 2 + 5
    entities = [f"vm-{i // 1000:04d}" for i in range(rows)]
    table = _metric_table(entities, [float(i) for i in range(rows)])

    write_partition(table, tmp_path)

    metadata = pq.ParquetFile(tmp_path / "data.parquet").metadata
    assert metadata.num_rows == rows
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        ROW_GROUP_ROWS,
        ROW_GROUP_ROWS,
        5,
    ]
    first_group = metadata.row_group(0)
    columns = {
        first_group.column(i).path_in_schema: first_group.column(i)
        for i in range(first_group.num_columns)
    }
    for name, column in columns.items():
        assert column.compression == "ZSTD", name
        assert column.is_stats_set, name
        dictionary_encoded = "RLE_DICTIONARY" in column.encodings
        assert dictionary_encoded == (name in STRING_COLUMNS), name
    assert columns["entity"].statistics.min == "vm-0000"
    assert columns["entity"].statistics.max == "vm-0131"


class _FailingSink(io.RawIOBase):
    """A local file that raises OSError once more than `limit` bytes were written."""

    def __init__(self, path: str, limit: int) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._limit = limit
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._written += len(data)
        if self._written > self._limit:
            raise OSError(f"disk full after {self._limit} bytes")
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class _FailingFileSystem(pafs.FileSystemHandler):
    """A local file system whose output streams fail part-way, recording the paths opened."""

    def __init__(self, limit: int) -> None:
        self.local = pafs.LocalFileSystem()
        self.limit = limit
        self.opened: list[str] = []

    def get_type_name(self) -> str:
        return "failing-local"

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        self.opened.append(path)
        return pa.PythonFile(_FailingSink(path, self.limit), mode="w")

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("not used by the writer")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.local.copy_file(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.local.open_input_file(path)

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        raise NotImplementedError("not used by the writer")

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return other is self


def test_object_store_writes_target_directly(tmp_path: Path) -> None:
    # An object store publishes an object whole when its upload completes, so the writer
    # puts data.parquet itself; tests/s3 checks that a killed upload keeps the old object.
    handler = _FailingFileSystem(limit=10**9)
    filesystem = pafs.PyFileSystem(handler)
    write_partition(_metric_table(["vm-1"], [1.0]), str(tmp_path), filesystem=filesystem)
    new_table = _metric_table(["vm-2", "vm-3"], [2.0, 3.0])

    written = write_partition(new_table, str(tmp_path) + "/", filesystem=filesystem)

    assert handler.opened == [f"{tmp_path}/data.parquet"] * 2
    assert written.path == f"{tmp_path}/data.parquet"
    assert written.rows == 2
    assert written.bytes_written == (tmp_path / "data.parquet").stat().st_size
    assert _files(tmp_path) == ["data.parquet"]
    assert pq.read_table(tmp_path / "data.parquet").equals(new_table)


def test_failure_at_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_table = _metric_table(["vm-1"], [1.0])
    write_partition(old_table, tmp_path)

    def failing_replace(source: str, target: str) -> None:
        raise PermissionError(f"cannot replace {target}")

    monkeypatch.setattr(writer.os, "replace", failing_replace)

    with pytest.raises(PermissionError, match=r"^cannot replace .*data\.parquet$"):
        write_partition(_metric_table(["vm-2"], [2.0]), tmp_path)

    assert _files(tmp_path) == ["data.parquet"]
    assert pq.read_table(tmp_path / "data.parquet").equals(old_table)


def test_duckdb_hive_read_of_partitions(tmp_path: Path) -> None:
    root = tmp_path / "metrics"
    write_partition(_metric_table(["vm-1"], [1.0]), root / "metric=m.a" / "day=2024-05-01")
    write_partition(_metric_table(["vm-2"], [2.0]), root / "metric=m.a" / "day=2024-05-02")
    write_partition(_metric_table(["vm-3"], [3.0]), root / "metric=m.b" / "day=2024-05-01")
    # A leftover temporary file from a crashed writer must not be read.
    (root / "metric=m.b" / "day=2024-05-01" / ".data.parquet.0123.tmp").write_bytes(b"junk")

    query = (
        "SELECT metric, CAST(day AS VARCHAR), entity, value FROM read_parquet("
        f"'{root}/**/*.parquet', hive_partitioning = true) ORDER BY metric, day"
    )
    with duckdb.connect() as connection:
        rows = connection.execute(query).fetchall()

    assert rows == [
        ("m.a", "2024-05-01", "vm-1", 1.0),
        ("m.a", "2024-05-02", "vm-2", 2.0),
        ("m.b", "2024-05-01", "vm-3", 3.0),
    ]
