"""SIGKILL in the middle of a partition write, a warehouse build and an ingestion run.

Each case runs the real code in a child process (tests/crash_child.py) that stops at a known
point, and kills it with SIGKILL. The checks: the previous data read back unchanged, readers
ignore the leftover, and the next normal run removes it and completes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.ingest import ingest_range, last_complete_day
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.rollup_store import LOCK_FILE
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.staging import remove_abandoned
from vscope_pipeline.lake.writer import TEMPORARY_PREFIX, write_partition
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.warehouse.build import STAGING_PREFIX, build_warehouse

CHILD = Path(__file__).with_name("crash_child.py")
CPU = "vscope.vm.cpu.usage.perc"
DAY = dt.date(2026, 11, 18)
NEXT_DAY = dt.date(2026, 11, 19)


def _start_paused(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the child and return once it has printed PAUSED."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "PAUSED":
        child.kill()
        _, stderr = child.communicate()
        raise AssertionError(f"the child did not reach its pause: {line!r}\n{stderr}")
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def _points(values: list[float]) -> pa.Table:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    return pa.Table.from_pylist(
        [
            {
                "entity_kind": "vm",
                "service_name": "pcc-1",
                "datacenter": "pcc-1_datacenter1",
                "entity": f"vm-{i}",
                "nic": None,
                "ts": start + dt.timedelta(minutes=i),
                "value": value,
            }
            for i, value in enumerate(values)
        ],
        schema=METRIC_FILE_SCHEMA,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path, prefix: str) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.startswith(prefix))


def test_kill_mid_partition_write(tmp_path: Path) -> None:
    folder = metric_partition_dir(tmp_path, CPU, DAY)
    previous = _points([1.0, 2.0, 3.0])
    write_partition(previous, folder)
    previous_hash = _sha256(folder / "data.parquet")

    child = _start_paused(["partition", str(folder), "50000"])
    [temporary] = _leftovers(folder, TEMPORARY_PREFIX)
    partial_size = (folder / temporary).stat().st_size
    # While the writer lives, its temporary file is locked and no cleanup removes it.
    assert remove_abandoned(folder, TEMPORARY_PREFIX) == []
    _kill(child)

    assert partial_size > 0
    assert sorted(os.listdir(folder)) == sorted(["data.parquet", temporary])
    assert _sha256(folder / "data.parquet") == previous_hash
    assert pq.read_table(folder / "data.parquet").equals(previous)
    # The glob that the metric_points view uses skips the partial file.
    pattern = f"{tmp_path}/metrics/metric=*/day=*/*.parquet"
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT entity, value FROM read_parquet('{pattern}') ORDER BY entity"
        ).fetchall()
    assert rows == [("vm-0", 1.0), ("vm-1", 2.0), ("vm-2", 3.0)]

    rewritten = _points([7.0, 8.0])
    write_partition(rewritten, folder)

    assert os.listdir(folder) == ["data.parquet"]
    assert pq.read_table(folder / "data.parquet").equals(rewritten)


def _warehouse_rows(database: Path) -> dict[str, list[tuple[object, ...]]]:
    with duckdb.connect(str(database), read_only=True) as con:
        names = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY table_name"
            ).fetchall()
        ]
        return {
            name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in names
        }


def test_kill_mid_warehouse_publish(tmp_path: Path) -> None:
    write_partition(_points([1.0, 2.0]), metric_partition_dir(tmp_path, CPU, DAY))
    build_warehouse(tmp_path, BUILTIN_METRICS)
    database = tmp_path / "vscope.duckdb"
    previous_hash = _sha256(database)
    previous_rows = _warehouse_rows(database)

    child = _start_paused(["warehouse", str(tmp_path)])
    [staging] = _leftovers(tmp_path, STAGING_PREFIX)
    staged_files = sorted(os.listdir(tmp_path / staging))
    assert remove_abandoned(tmp_path, STAGING_PREFIX) == []
    _kill(child)

    assert "vscope.duckdb" in staged_files
    assert _leftovers(tmp_path, STAGING_PREFIX) == [staging]
    assert _sha256(database) == previous_hash
    assert _warehouse_rows(database) == previous_rows
    assert [row[-2] for row in previous_rows["metric_points"]] == [1.0, 2.0]
    assert len(previous_rows["metric_catalog"]) == len(BUILTIN_METRICS)

    write_partition(_points([5.0]), metric_partition_dir(tmp_path, CPU, NEXT_DAY))
    summary = build_warehouse(tmp_path, BUILTIN_METRICS)

    assert _leftovers(tmp_path, STAGING_PREFIX) == []
    assert summary.row_counts["metric_points"] == 3
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metric_points").fetchone() == (3,)


@pytest.fixture(scope="module")
def simulator_environment() -> Iterator[dict[str, str]]:
    with running_simulator(vm_count=6, step_seconds=300) as simulator:
        yield simulator.environment()


def _ingest(
    data_dir: Path, environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch, dg.DagsterInstance.ephemeral() as instance:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.setenv("VSCOPE_DATA_DIR", str(data_dir))
        day = last_complete_day()
        [outcome] = ingest_range(day, day, instance=instance, days_per_run=1)
    assert outcome.success, outcome.error


def _lake_files(data_dir: Path) -> dict[str, pa.Table]:
    """Read every lake file except the time at which each inventory snapshot was taken.

    Lock files of rollup months are empty and stay after a run, so they are not read.
    """
    tables = {}
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and path.name not in ("vscope.duckdb", LOCK_FILE):
            table = pq.read_table(path)
            if "snapshot_at" in table.column_names:
                table = table.drop_columns(["snapshot_at"])
            tables[str(path.relative_to(data_dir))] = table
    return tables


def _warehouse_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        names = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        counts = {}
        for (name,) in names:
            row = con.execute(f"SELECT count(*) FROM {name}").fetchone()
            counts[name] = row[0] if row else -1
        return counts


@pytest.mark.integration
def test_kill_mid_ingest_then_rerun(
    tmp_path: Path, simulator_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    killed_dir = tmp_path / "killed"
    clean_dir = tmp_path / "clean"
    environment = {**os.environ, **simulator_environment, "VSCOPE_DATA_DIR": str(killed_dir)}

    child = _start_paused(["ingest", last_complete_day().isoformat(), "6"], env=environment)
    partial = sorted(path.name for path in killed_dir.rglob("*") if path.is_file())
    _kill(child)

    assert partial.count("data.parquet") == 5
    assert len([name for name in partial if name.startswith(TEMPORARY_PREFIX)]) == 1
    assert not (killed_dir / "vscope.duckdb").exists()

    _ingest(killed_dir, simulator_environment, monkeypatch)
    _ingest(clean_dir, simulator_environment, monkeypatch)

    killed_files = _lake_files(killed_dir)
    clean_files = _lake_files(clean_dir)
    assert sorted(killed_files) == sorted(clean_files)
    for name, table in clean_files.items():
        assert killed_files[name].equals(table), name
    killed_counts = _warehouse_counts(killed_dir / "vscope.duckdb")
    assert killed_counts == _warehouse_counts(clean_dir / "vscope.duckdb")
    assert killed_counts["metric_points"] > 0
