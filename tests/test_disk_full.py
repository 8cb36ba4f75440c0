"""A disk that fills up while writing: a clear error, and the previous data kept.

The writes run in a child process inside a user and mount namespace (`unshare -Urm`) that
mounts a 1 MiB tmpfs, so the kernel returns a real ENOSPC. The tmpfs exists only in that
namespace, so the child reports what it observed as JSON for the test to check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Runs inside the namespace with the tmpfs mounted on argv[1].
CHILD_SCRIPT = r"""
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path

import pyarrow as pa

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.storage_full import StorageFullError
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import build_warehouse

data_dir = Path(sys.argv[1])
folder = metric_partition_dir(data_dir, "vscope.vm.cpu.usage.perc", dt.date(2026, 11, 18))


def points(rows):
    start = dt.datetime(2026, 11, 18, tzinfo=dt.UTC)
    return pa.table(
        {
            "entity_kind": ["vm"] * rows,
            "service_name": ["pcc-1"] * rows,
            "datacenter": ["pcc-1_datacenter1"] * rows,
            # Random text does not compress, so the file outgrows the tmpfs.
            "entity": [os.urandom(16).hex() for _ in range(rows)],
            "nic": [None] * rows,
            "ts": [start + dt.timedelta(seconds=i) for i in range(rows)],
            "value": [float(i) for i in range(rows)],
        },
        schema=METRIC_FILE_SCHEMA,
    )


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def attempt(write):
    try:
        write()
    except StorageFullError as error:
        return str(error)
    return None


report = {}
write_partition(points(10), folder)
before = digest(folder / "data.parquet")
report["partition_error"] = attempt(lambda: write_partition(points(60_000), folder))
report["partition_kept"] = digest(folder / "data.parquet") == before
report["partition_files"] = sorted(os.listdir(folder))

build_warehouse(data_dir, BUILTIN_METRICS)
database = data_dir / "vscope.duckdb"
before = digest(database)
# Take the remaining space, so that the next build cannot store its database.
with open(data_dir / "filler", "wb", buffering=0) as filler:
    try:
        while True:
            filler.write(b"\0" * 4096)
    except OSError:
        pass
report["warehouse_error"] = attempt(lambda: build_warehouse(data_dir, BUILTIN_METRICS))
report["warehouse_kept"] = digest(database) == before
report["data_dir_files"] = sorted(os.listdir(data_dir))
print(json.dumps(report))
"""


def _namespaces_available() -> str | None:
    """Return why a user namespace with a tmpfs cannot be made here, or None when it can."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        stderr = probe.stderr.strip()
        return f"unprivileged user namespaces with tmpfs mounts are disabled: {stderr}"
    return None


def test_full_disk_keeps_previous_data(tmp_path: Path) -> None:
    reason = _namespaces_available()
    if reason is not None:
        pytest.skip(f"needs a small tmpfs to fill, but {reason}")
    mount_point = tmp_path / "data"
    mount_point.mkdir()

    completed = subprocess.run(
        [
            "unshare",
            "-Urm",
            "sh",
            "-c",
            'mount -t tmpfs -o size=1m tmpfs "$1" && exec "$2" -c "$3" "$1"',
            "sh",
            str(mount_point),
            sys.executable,
            CHILD_SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    partition = f"{mount_point}/metrics/metric=vscope.vm.cpu.usage.perc/day=2026-11-18"
    assert report["partition_error"] == (
        f"failed to write {partition}/data.parquet: No space left on device. The previous "
        f"version was kept. Free space on the file system that contains {partition} (or raise "
        "the disk quota or file size limit), then run again."
    )
    assert report["partition_kept"] is True
    assert report["partition_files"] == ["data.parquet"]
    assert report["warehouse_error"] == (
        f"failed to write {mount_point}/vscope.duckdb: No space left on device. The previous "
        f"version was kept. Free space on the file system that contains {mount_point} (or "
        "raise the disk quota or file size limit), then run again."
    )
    assert report["warehouse_kept"] is True
    assert report["data_dir_files"] == ["filler", "metrics", "vscope.duckdb"]
