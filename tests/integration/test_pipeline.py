"""The whole pipeline on the simulator: APIv6 inventory, OpenTSDB metrics, DuckDB warehouse."""

import datetime as dt

import dagster as dg
import duckdb
import numpy as np
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.ingest import ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import running_simulator

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
EXTRA_METRIC = "vscope.vm.mem.tps"


def _query(ingested, sql, params=()):
    database = ingested.data_dir / "vscope.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _day_start_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _stored_series(ingested, metric, entity, nic=None):
    rows = _query(
        ingested,
        """
        SELECT epoch_ms(ts), value FROM metric_points
        WHERE metric = ? AND entity = ? AND nic IS NOT DISTINCT FROM ? AND day = ?
        ORDER BY ts
        """,
        (metric, entity, nic, ingested.day),
    )
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows])


def _generated_series(ingested, metric, **wanted):
    series = ingested.simulator.series
    matches = [
        tags
        for tags in series.series_tags(metric)
        if all(tags.get(key) == value for key, value in wanted.items())
    ]
    assert len(matches) == 1, matches
    start = _day_start_ms(ingested.day)
    return series.points(metric, matches[0], start, start + DAY_MS - 1)


def test_run_succeeds(ingested):
    assert [outcome.success for outcome in ingested.outcomes] == [True]
    assert ingested.outcomes[0].error is None


def test_inventory_tables(ingested):
    counts = {
        table: _query(ingested, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("datacenters", "filers", "hosts", "vms")
    }
    # 60 VMs less the one deleted yesterday noon and the one listed but returning 404.
    assert counts == {"datacenters": 2, "filers": 5, "hosts": 6, "vms": 58}
    global_filers = _query(
        ingested, "SELECT count(*) FROM filers WHERE datacenter_id IS NULL AND is_global"
    )
    assert global_filers == [(1,)]


def test_every_metric_stored(ingested):
    stored = _query(ingested, "SELECT DISTINCT metric FROM metric_points ORDER BY 1")
    expected = sorted([*(spec.name for spec in BUILTIN_METRICS), EXTRA_METRIC])
    assert [name for (name,) in stored] == expected
    assert _query(
        ingested, "SELECT count(*), count(*) FILTER (documented) FROM metric_catalog"
    ) == [(21, 20)]
    assert _query(
        ingested,
        "SELECT entity_kind, unit FROM metric_catalog WHERE metric = ?",
        (EXTRA_METRIC,),
    ) == [("vm", "MB")]


def test_vm_values_match_generator(ingested):
    vm = ingested.simulator.fleet.vms[0]
    metric = "vscope.vm.cpu.usage.perc"
    expected_ts, expected_values = _generated_series(ingested, metric, vm=vm.mo_ref)
    stored_ts, stored_values = _stored_series(ingested, metric, vm.mo_ref)
    assert len(stored_ts) == len(expected_ts)
    assert len(stored_ts) > 1000
    np.testing.assert_array_equal(stored_ts, expected_ts)
    np.testing.assert_array_equal(stored_values, expected_values)


def test_host_nic_values_match_generator(ingested):
    host = ingested.simulator.fleet.hosts[1]
    metric = "vscope.host.net.tx"
    expected_ts, expected_values = _generated_series(
        ingested, metric, host=host.name, nicname="vmnic2"
    )
    stored_ts, stored_values = _stored_series(ingested, metric, host.name, "vmnic2")
    np.testing.assert_array_equal(stored_ts, expected_ts)
    np.testing.assert_array_equal(stored_values, expected_values)


def test_filer_values_match_generator(ingested):
    filer = next(f for f in ingested.simulator.fleet.filers if f.datacenter_id is not None)
    label = ingested.simulator.fleet.datacenter(filer.datacenter_id).label
    metric = "vscope.filer.datastore.diskspace.used"
    expected_ts, expected_values = _generated_series(
        ingested, metric, datastore=filer.name, datacenter=label
    )
    stored_ts, stored_values = _stored_series(ingested, metric, filer.name)
    np.testing.assert_array_equal(stored_ts, expected_ts)
    np.testing.assert_array_equal(stored_values, expected_values)


def test_deleted_vm_stops_at_noon(ingested):
    vm = ingested.simulator.fleet.deleted_vm
    last = _query(
        ingested,
        "SELECT max(ts) FROM metric_points WHERE entity = ? AND metric = ?",
        (vm.mo_ref, "vscope.vm.cpu.usage.perc"),
    )[0][0]
    noon = dt.datetime.combine(ingested.day, dt.time(12), tzinfo=dt.UTC)
    assert last == noon - dt.timedelta(minutes=1)


def test_points_stay_inside_the_day(ingested):
    bounds = _query(ingested, "SELECT min(ts), max(ts), count(DISTINCT day) FROM metric_points")
    first, last, days = bounds[0]
    midnight = dt.datetime.combine(ingested.day, dt.time(), tzinfo=dt.UTC)
    assert first >= midnight
    assert last < midnight + dt.timedelta(days=1)
    assert days == 1


def test_rerun_same_day_keeps_counts(ingested):
    sql = "SELECT metric, count(*) FROM metric_points GROUP BY metric ORDER BY metric"
    before = _query(ingested, sql)
    outcomes = ingested.ingest_again()
    assert [outcome.success for outcome in outcomes] == [True]
    assert _query(ingested, sql) == before
    duplicates = _query(
        ingested,
        """
        SELECT count(*) - count(DISTINCT (metric, service_name, datacenter, entity, nic, ts))
        FROM metric_points
        """,
    )
    assert duplicates == [(0,)]
    files = sorted(p.name for p in (ingested.data_dir / "metrics").rglob("*") if p.is_file())
    assert files == ["data.parquet"] * 21


def test_secrets_not_stored(ingested):
    credentials = ingested.simulator.credentials
    secrets = [
        credentials.metrics_token,
        credentials.application_secret,
        credentials.consumer_key,
    ]
    for path in ingested.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, path
    for outcome in ingested.outcomes:
        for record in ingested.instance.all_logs(outcome.run_id):
            text = str(record)
            for secret in secrets:
                assert secret not in text


def test_bad_settings_fail_before_any_request(tmp_path, monkeypatch):
    with running_simulator() as simulator, dg.DagsterInstance.ephemeral() as instance:
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OVH_CONSUMER_KEY")
        monkeypatch.setenv("VSCOPE_USER_ID", "not-a-number")
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
        day = last_complete_day()
        outcomes = ingest_range(day, day, instance=instance, days_per_run=1)

        assert [outcome.success for outcome in outcomes] == [False]
        error = outcomes[0].error
        assert error is not None
        assert "invalid configuration (2 problems)" in error
        assert "OVH_CONSUMER_KEY is missing" in error
        assert "VSCOPE_USER_ID 'not-a-number' is not a positive integer" in error
        assert simulator.ovh_server.server.counters.count() == 0
        assert simulator.opentsdb_server.server.counters.snapshot().requests == 0
    assert list(tmp_path.iterdir()) == []


def test_metric_metadata_reports_completeness(ingested):
    run_id = ingested.outcomes[0].run_id
    materializations = {
        record.asset_materialization.asset_key.to_user_string(): record.asset_materialization
        for record in ingested.instance.all_logs(run_id)
        if record.asset_materialization is not None
    }
    vm = materializations["metrics/vm_metric_points"].metadata
    # 13 documented VM metrics and the extra one, over both datacenters.
    assert vm["metrics"].value == 14
    assert vm["requests"].value == 28
    assert vm["retries"].value == 0
    assert vm["missing_series"].value == 0
    fleet = ingested.simulator.fleet
    not_inventoried = sorted(
        f"{fleet.datacenter(v.datacenter_id).label}/{v.mo_ref}"
        for v in (fleet.deleted_vm, fleet.missing_vm)
    )
    assert vm["unexpected_series"].value == 2
    assert vm["unexpected_series_names"].value == not_inventoried
    assert vm["downsample"].value == "raw points"
    assert vm["days"].value == 1
    table = vm["per_metric"].value
    assert "| entities expected | entities received |" in table
    host = materializations["metrics/host_metric_points"].metadata
    # Two host metrics have one series per host, four have one per NIC: 6 * (2 + 4 * 4).
    assert host["series"].value == 108


def test_inventory_tables_have_no_partition_columns(ingested):
    # `day` in an inventory table would make an unqualified `day` ambiguous in joins.
    columns = _query(
        ingested,
        """
        SELECT table_name, column_name FROM duckdb_columns()
        WHERE table_name IN ('datacenters', 'filers', 'hosts', 'vms')
          AND column_name IN ('day', 'kind')
        """,
    )
    assert columns == []
    joined = _query(
        ingested,
        """
        SELECT count(*) FROM metric_points p JOIN hosts h ON h.name = p.entity
        WHERE day = ? AND metric = 'vscope.host.cpu.usage.perc'
        """,
        (ingested.day,),
    )
    assert joined[0][0] > 0
