"""File modes of the lake and the warehouse, and the cleanup of a killed writer's leftovers."""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.staging import (
    claim_temporary_dir,
    claim_temporary_file,
    make_private_dirs,
    remove_abandoned,
)
from vscope_pipeline.lake.storage_full import StorageFullError, storage_full_reason
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import build_warehouse

DAY = dt.date(2026, 11, 18)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Set the umask to 0, the loosest, so only the pipeline's own modes protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _points() -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "entity_kind": "vm",
                "service_name": "pcc-1",
                "datacenter": "pcc-1_datacenter1",
                "entity": "vm-1",
                "nic": None,
                "ts": dt.datetime(2026, 11, 18, tzinfo=dt.UTC),
                "value": 1.0,
            }
        ],
        schema=METRIC_FILE_SCHEMA,
    )


@pytest.mark.usefixtures("open_umask")
def test_partition_file_and_folders_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    write_partition(_points(), metric_partition_dir(data_dir, "m.a", DAY))

    partition = metric_partition_dir(data_dir, "m.a", DAY)
    assert _mode(partition / "data.parquet") == 0o600
    for folder in [data_dir, data_dir / "metrics", partition.parent, partition]:
        assert _mode(folder) == 0o700, folder


@pytest.mark.usefixtures("open_umask")
def test_rewrite_keeps_private_mode(tmp_path: Path) -> None:
    folder = tmp_path / "day=2026-11-18"
    write_partition(_points(), folder)
    os.chmod(folder / "data.parquet", 0o644)

    write_partition(_points(), folder)

    assert _mode(folder / "data.parquet") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_existing_folder_mode_kept(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)

    make_private_dirs(shared / "a" / "b")

    assert _mode(shared) == 0o755
    assert _mode(shared / "a") == 0o700
    assert _mode(shared / "a" / "b") == 0o700


@pytest.mark.usefixtures("open_umask")
def test_warehouse_file_private(tmp_path: Path) -> None:
    write_partition(_points(), metric_partition_dir(tmp_path / "data", "m.a", DAY))

    summary = build_warehouse(tmp_path / "data", BUILTIN_METRICS)

    assert _mode(summary.path) == 0o600
    assert _mode(tmp_path / "data") == 0o700


def test_strict_umask_still_applies(tmp_path: Path) -> None:
    previous = os.umask(0o177)
    try:
        write_partition(_points(), tmp_path / "day=2026-11-18")
    finally:
        os.umask(previous)

    assert _mode(tmp_path / "day=2026-11-18" / "data.parquet") == 0o600


def test_live_claims_not_removed(tmp_path: Path) -> None:
    with (
        claim_temporary_file(tmp_path, ".x.") as file_claim,
        claim_temporary_dir(tmp_path, ".x.") as dir_claim,
    ):
        removed = remove_abandoned(tmp_path, ".x.")
        assert file_claim.exists()
        assert dir_claim.is_dir()

    assert removed == []
    assert file_claim.exists()  # the owner renames or removes its file
    assert not dir_claim.exists()  # a claimed folder is removed when its block exits


def test_unlocked_leftovers_removed(tmp_path: Path) -> None:
    (tmp_path / ".x.1.tmp").write_bytes(b"partial")
    (tmp_path / ".x.2.tmp").mkdir()
    (tmp_path / ".x.2.tmp" / "vscope.duckdb").write_bytes(b"partial")
    (tmp_path / "data.parquet").write_bytes(b"kept")
    (tmp_path / ".x.link").symlink_to(tmp_path / "data.parquet")

    removed = remove_abandoned(tmp_path, ".x.")

    assert removed == [tmp_path / ".x.1.tmp", tmp_path / ".x.2.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".x.link", "data.parquet"]


def test_missing_folder_has_no_leftovers(tmp_path: Path) -> None:
    assert remove_abandoned(tmp_path / "absent", ".x.") == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "write failed"), "No space left on device"),
        (OSError(errno.EDQUOT, "write failed"), "Disk quota exceeded"),
        (OSError(errno.EFBIG, "write failed"), "File too large"),
        (
            RuntimeError('Could not write file "x": No space left on device'),
            os.strerror(errno.ENOSPC),
        ),
        (OSError(errno.EACCES, "write failed"), None),
        (RuntimeError("Conversion Error"), None),
    ],
)
def test_storage_full_reason(error: BaseException, expected: str | None) -> None:
    assert storage_full_reason(error) == expected


def test_storage_full_reason_follows_causes() -> None:
    outer = ValueError("failed to read the metric partitions")
    outer.__cause__ = OSError(errno.ENOSPC, "write failed")

    assert storage_full_reason(outer) == "No space left on device"


def test_file_too_large_is_storage_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "day=2026-11-18"
    write_partition(_points(), folder)
    previous = (folder / "data.parquet").read_bytes()

    def too_large(table: pa.Table, sink: pa.NativeFile) -> None:
        raise OSError(errno.EFBIG, "Error writing bytes to file")

    monkeypatch.setattr("vscope_pipeline.lake.writer._write_parquet", too_large)

    with pytest.raises(StorageFullError) as raised:
        write_partition(_points(), folder)

    assert str(raised.value) == (
        f"failed to write {folder}/data.parquet: File too large. The previous version was "
        f"kept. Free space on the file system that contains {folder} (or raise the disk quota "
        "or file size limit), then run again."
    )
    assert os.listdir(folder) == ["data.parquet"]
    assert (folder / "data.parquet").read_bytes() == previous
