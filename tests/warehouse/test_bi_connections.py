"""BI connections through SQLAlchemy and duckdb-engine, with the settings of docs/bi-tools.md.

Superset and other SQLAlchemy-based tools open the warehouse this way. The tests check that the
documented settings give a read-only connection, that queries on the views return rows, and when a
connection reads new data: a new day partition at once, a rebuilt file only on a new connection.
"""

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.layout import inventory_partition_dir, metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.warehouse.build import build_warehouse

SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
CPU = "vscope.vm.cpu.usage.perc"
DAY1 = dt.date(2026, 11, 18)
DAY2 = dt.date(2026, 11, 19)

# The settings that docs/bi-tools.md gives for Superset and plain SQLAlchemy.
READ_ONLY_ARGS = {"read_only": True}

# DuckDB's first message line for a write on a read-only file. The database name is the file stem.
READ_ONLY_ERROR = (
    'Invalid Input Error: Cannot execute statement of type "CREATE" on database "vscope" '
    "which is attached in read-only mode!"
)

# Rebuilds the warehouse in a separate process, as the Dagster run does while a BI tool is open.
REBUILD_SCRIPT = """
import sys
from pathlib import Path
from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.warehouse.build import build_warehouse
build_warehouse(Path(sys.argv[1]), BUILTIN_METRICS)
"""


def _warehouse_url(data_dir: Path) -> str:
    # Four slashes: the scheme's three, then the absolute path's own leading slash.
    return f"duckdb:///{data_dir / 'vscope.duckdb'}"


def _write_datacenter(data_dir: Path, day: dt.date, name: str) -> None:
    row = {
        "service_name": SERVICE,
        "datacenter_id": 1,
        "name": name,
        "datacenter_label": DC1,
    }
    write_partition(
        pa.Table.from_pylist([row]), inventory_partition_dir(data_dir, "datacenters", day)
    )


def _write_cpu_point(data_dir: Path, day: dt.date, entity: str, value: float) -> None:
    row = {
        "entity_kind": "vm",
        "service_name": SERVICE,
        "datacenter": DC1,
        "entity": entity,
        "nic": None,
        "ts": dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC),
        "value": value,
    }
    table = pa.Table.from_pylist([row], schema=METRIC_FILE_SCHEMA)
    write_partition(table, metric_partition_dir(data_dir, CPU, day))


def _rebuild_in_other_process(data_dir: Path) -> None:
    subprocess.run([sys.executable, "-c", REBUILD_SCRIPT, str(data_dir)], check=True, timeout=60)


def _datacenter_names(connection: sqlalchemy.Connection) -> list[str]:
    return list(connection.execute(sqlalchemy.text("SELECT name FROM datacenters")).scalars())


def _cpu_points(connection: sqlalchemy.Connection) -> list[tuple]:
    result = connection.execute(
        sqlalchemy.text(
            "SELECT day, entity, value FROM metric_points WHERE metric = :metric ORDER BY day"
        ),
        {"metric": CPU},
    )
    return [tuple(row) for row in result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _write_datacenter(tmp_path, DAY1, "before")
    _write_cpu_point(tmp_path, DAY1, "vm-101", 12.5)
    build_warehouse(tmp_path, BUILTIN_METRICS)
    return tmp_path


@pytest.fixture
def engine(data_dir: Path) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(_warehouse_url(data_dir), connect_args=READ_ONLY_ARGS)
    yield engine
    engine.dispose()


def test_connect_args_read_only(engine):
    with engine.connect() as connection:
        setting = connection.execute(sqlalchemy.text("SELECT current_setting('access_mode')"))
        assert setting.scalar() == "read_only"

        with pytest.raises(sqlalchemy.exc.ProgrammingError) as raised:
            connection.execute(sqlalchemy.text("CREATE TABLE scratch (x INTEGER)"))

    assert str(raised.value.orig).splitlines()[0] == READ_ONLY_ERROR


def test_url_query_read_only(data_dir):
    engine = sqlalchemy.create_engine(_warehouse_url(data_dir) + "?access_mode=read_only")
    try:
        with engine.connect() as connection:
            assert _datacenter_names(connection) == ["before"]
            with pytest.raises(sqlalchemy.exc.ProgrammingError) as raised:
                connection.execute(sqlalchemy.text("CREATE TABLE scratch (x INTEGER)"))
    finally:
        engine.dispose()

    assert str(raised.value.orig).splitlines()[0] == READ_ONLY_ERROR


def test_views_queried_through_engine(engine):
    with engine.connect() as connection:
        assert _cpu_points(connection) == [(DAY1, "vm-101", 12.5)]
        described = connection.execute(sqlalchemy.text("DESCRIBE metric_points")).all()
        assert [row[0] for row in described] == [
            "metric",
            "entity_kind",
            "service_name",
            "datacenter",
            "entity",
            "nic",
            "ts",
            "value",
            "day",
        ]
        views = sqlalchemy.inspect(connection).get_view_names()
        assert {"metric_points", "metric_hourly", "metric_daily"} <= set(views)


def test_new_partition_visible_on_open_connection(engine, data_dir):
    with engine.connect() as connection:
        assert _cpu_points(connection) == [(DAY1, "vm-101", 12.5)]

        _write_cpu_point(data_dir, DAY2, "vm-102", 40.0)

        assert _cpu_points(connection) == [(DAY1, "vm-101", 12.5), (DAY2, "vm-102", 40.0)]


def test_rebuild_needs_new_connection(engine, data_dir):
    url = _warehouse_url(data_dir)
    with engine.connect() as connection:
        assert _datacenter_names(connection) == ["before"]

        _write_datacenter(data_dir, DAY2, "after")
        _rebuild_in_other_process(data_dir)

        assert _datacenter_names(connection) == ["before"]

        # While this process keeps the old file open, DuckDB returns that database instance to
        # every new connection on the same path, even through a second engine.
        second = sqlalchemy.create_engine(url, connect_args=READ_ONLY_ARGS)
        try:
            with second.connect() as other:
                assert _datacenter_names(other) == ["before"]
        finally:
            second.dispose()

    # Closing a connection returns it to the engine's pool, which keeps the old file open.
    with engine.connect() as connection:
        assert _datacenter_names(connection) == ["before"]

    engine.dispose()
    with engine.connect() as connection:
        assert _datacenter_names(connection) == ["after"]


def test_null_pool_sees_each_rebuild(data_dir):
    engine = sqlalchemy.create_engine(
        _warehouse_url(data_dir), connect_args=READ_ONLY_ARGS, poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            assert _datacenter_names(connection) == ["before"]

        _write_datacenter(data_dir, DAY2, "after")
        _rebuild_in_other_process(data_dir)

        with engine.connect() as connection:
            assert _datacenter_names(connection) == ["after"]
    finally:
        engine.dispose()
