"""Month files of rollups: a metric-day replaces only its own rows, also with parallel writers."""

import datetime as dt
import multiprocessing
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.lake.layout import rollup_month_dir
from vscope_pipeline.lake.rollup_store import RollupFileError, write_rollup_day
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA, ROLLUP_FILE_SCHEMA
from vscope_pipeline.rollups import rollup_table

METRIC = "vscope.vm.cpu.usage.perc"
SERVICE = "pcc-203-0-113-10"
DC = f"{SERVICE}_datacenter1"
NOV = [dt.date(2026, 11, day) for day in range(1, 31)]


def _daily(day: dt.date, value: float, entities: tuple[str, ...] = ("vm-1", "vm-2")) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    rows = [
        {
            "entity_kind": "vm",
            "service_name": SERVICE,
            "datacenter": DC,
            "entity": entity,
            "nic": None,
            "ts": start + dt.timedelta(minutes=minute),
            "value": value,
        }
        for entity in entities
        for minute in range(3)
    ]
    return rollup_table(pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA), "day")


def _month(data_dir: Path, day: dt.date) -> list[tuple]:
    path = rollup_month_dir(data_dir, "day", METRIC, day) / "data.parquet"
    table = pq.read_table(path)
    return [(row["day"], row["entity"], row["avg"]) for row in table.to_pylist()]


def test_month_folder_name(tmp_path):
    folder = rollup_month_dir(tmp_path, "hour", METRIC, dt.date(2026, 2, 28))
    assert folder == tmp_path / "rollups" / "grain=hour" / f"metric={METRIC}" / "month=2026-02"


def test_days_merge_sorted(tmp_path):
    write_rollup_day(tmp_path, "day", METRIC, NOV[4], _daily(NOV[4], 5.0))
    write_rollup_day(tmp_path, "day", METRIC, NOV[0], _daily(NOV[0], 1.0))
    assert _month(tmp_path, NOV[0]) == [
        (NOV[0], "vm-1", 1.0),
        (NOV[0], "vm-2", 1.0),
        (NOV[4], "vm-1", 5.0),
        (NOV[4], "vm-2", 5.0),
    ]


def test_rerun_replaces_only_its_day(tmp_path):
    write_rollup_day(tmp_path, "day", METRIC, NOV[0], _daily(NOV[0], 1.0))
    write_rollup_day(tmp_path, "day", METRIC, NOV[1], _daily(NOV[1], 2.0))
    written = write_rollup_day(tmp_path, "day", METRIC, NOV[1], _daily(NOV[1], 9.0, ("vm-3",)))
    assert _month(tmp_path, NOV[0]) == [
        (NOV[0], "vm-1", 1.0),
        (NOV[0], "vm-2", 1.0),
        (NOV[1], "vm-3", 9.0),
    ]
    assert written.rows == 3


def test_empty_day_removes_its_rows(tmp_path):
    write_rollup_day(tmp_path, "day", METRIC, NOV[0], _daily(NOV[0], 1.0))
    write_rollup_day(tmp_path, "day", METRIC, NOV[1], _daily(NOV[1], 2.0))
    write_rollup_day(tmp_path, "day", METRIC, NOV[1], ROLLUP_FILE_SCHEMA.empty_table())
    assert _month(tmp_path, NOV[0]) == [(NOV[0], "vm-1", 1.0), (NOV[0], "vm-2", 1.0)]


def test_months_kept_apart(tmp_path):
    december = dt.date(2026, 12, 1)
    write_rollup_day(tmp_path, "day", METRIC, NOV[29], _daily(NOV[29], 1.0))
    write_rollup_day(tmp_path, "day", METRIC, december, _daily(december, 2.0))
    assert [row[0] for row in _month(tmp_path, NOV[0])] == [NOV[29], NOV[29]]
    assert [row[0] for row in _month(tmp_path, december)] == [december, december]


def test_rows_of_another_day_rejected(tmp_path):
    with pytest.raises(ValueError, match="another day") as raised:
        write_rollup_day(tmp_path, "day", METRIC, NOV[0], _daily(NOV[1], 1.0))
    assert str(raised.value) == "rollups given for 2026-11-01 contain rows of another day"
    assert not rollup_month_dir(tmp_path, "day", METRIC, NOV[0]).exists()


def test_unreadable_month_file_named(tmp_path):
    folder = rollup_month_dir(tmp_path, "day", METRIC, NOV[0])
    folder.mkdir(parents=True)
    (folder / "data.parquet").write_bytes(b"not parquet")
    with pytest.raises(RollupFileError) as raised:
        write_rollup_day(tmp_path, "day", METRIC, NOV[0], _daily(NOV[0], 1.0))
    message = str(raised.value)
    assert message.startswith(f"failed to read the rollup file {folder / 'data.parquet'}: ")
    assert message.endswith(
        "Delete it and re-materialize the days of that month for this metric; their rollups "
        "are rewritten with them."
    )
    assert (folder / "data.parquet").read_bytes() == b"not parquet"


def _write_days(data_dir: str, days: list[dt.date]) -> None:
    for day in days:
        write_rollup_day(data_dir, "day", METRIC, day, _daily(day, float(day.day)))


def test_parallel_processes_lose_no_day(tmp_path):
    # Two processes write interleaved days of the same month, as two backfill runs may.
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_days, args=(str(tmp_path), NOV[start::2])) for start in (0, 1)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    days = sorted({row[0] for row in _month(tmp_path, NOV[0])})
    assert days == NOV
