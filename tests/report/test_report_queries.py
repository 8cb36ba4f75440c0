"""Report queries on small hand-made rollup tables: hosts and datastores of two services."""

import datetime as dt

import duckdb
import pytest

from vscope_pipeline.report.queries import read_datastore_fill, read_host_throughput

DAY = dt.date(2026, 3, 12)
HOUR = dt.datetime(2026, 3, 12, 5, tzinfo=dt.UTC)


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(
            """
            CREATE TABLE metric_hourly (
                metric VARCHAR, service_name VARCHAR, datacenter VARCHAR, entity VARCHAR,
                nic VARCHAR, bucket TIMESTAMPTZ, avg DOUBLE, day DATE
            )
            """
        )
        yield connection


def insert(con, rows):
    con.executemany(
        "INSERT INTO metric_hourly VALUES (?, ?, 'dc', ?, ?, ?, ?, ?)",
        [
            (metric, service, entity, nic, HOUR, value, DAY)
            for metric, service, entity, nic, value in rows
        ],
    )


def test_host_nics_summed_one_service(con):
    insert(
        con,
        [
            ("vscope.host.net.rx", "pcc-1", "10.0.0.1", "vmnic0", 100.0),
            ("vscope.host.net.rx", "pcc-1", "10.0.0.1", "vmnic1", 50.0),
            ("vscope.host.net.tx", "pcc-1", "10.0.0.1", "vmnic0", 20.0),
        ],
    )

    hosts = read_host_throughput(con, DAY, DAY, "hour")

    assert [(h.host, h.rx, h.tx) for h in hosts] == [("10.0.0.1", [150.0], [20.0])]


def test_same_host_name_two_services(con):
    insert(
        con,
        [
            ("vscope.host.net.rx", "pcc-1", "10.0.0.1", "vmnic0", 100.0),
            ("vscope.host.net.rx", "pcc-2", "10.0.0.1", "vmnic0", 300.0),
        ],
    )

    hosts = read_host_throughput(con, DAY, DAY, "hour")

    assert [(h.host, h.rx) for h in hosts] == [
        ("pcc-2/10.0.0.1", [300.0]),
        ("pcc-1/10.0.0.1", [100.0]),
    ]


def test_same_datastore_name_two_services(con):
    metric = "vscope.filer.datastore.diskspace.used"
    insert(con, [(metric, "pcc-1", "ds-1", None, 10.0), (metric, "pcc-2", "ds-1", None, 20.0)])

    fills = read_datastore_fill(con, DAY, DAY, "hour")

    assert sorted((f.name, f.used_kb) for f in fills) == [
        ("pcc-1/ds-1", [10.0]),
        ("pcc-2/ds-1", [20.0]),
    ]
    assert {f.forecast.status for f in fills} == {"too few points"}
