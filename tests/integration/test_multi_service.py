"""Two dedicatedCloud services in one run: each is stored, and one failing spares the other."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS
from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.lake.layout import metrics_root
from vscope_pipeline.simulator.ovh_api import INVALID_URL_MESSAGE
from vscope_pipeline.simulator.ovh_faults import ForcedApiResponse
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator

pytestmark = pytest.mark.integration

SERVICE_A = "pcc-203-0-113-10"
SERVICE_B = "pcc-203-0-113-11"
DAY_MS = 86_400_000
CPU = "vscope.vm.cpu.usage.perc"
USER_ID = 2101
QUERY_ID = "EU.ext-sim.multi-service-test"

WALK_ERROR = (
    f"{SERVICE_B} (inventory): GET /dedicatedCloud/{SERVICE_B}/datacenter/1301/vm failed "
    f"with NotGrantedCall: This call has not been granted (OVH query id {QUERY_ID}); the "
    "consumer key has no access rule for this call: add the rule "
    "GET /dedicatedCloud/*/datacenter/*/vm to the consumer key (request a new consumer key "
    "whose access rules include it, validate it, and set OVH_CONSUMER_KEY)"
)

TOKEN_MISSING = (
    f"{SERVICE_B} (metrics token): no vScope metrics token for user {USER_ID} of {SERVICE_B}: "
    f"POST /dedicatedCloud/{SERVICE_B}/user/{USER_ID}/metricsToken and "
    f"POST /dedicatedCloud/{SERVICE_B}/user/{USER_ID}/getVscopeMetricsToken both returned 404 "
    "(metricsToken: Got an invalid (or empty) URL; getVscopeMetricsToken: Got an invalid "
    "(or empty) URL), so both routes are missing on this account; set VSCOPE_OPENTSDB_URL and "
    "VSCOPE_OPENTSDB_TOKEN to use an OpenTSDB endpoint and token directly"
)


def _failed_run_error(*failures: str) -> str:
    return (
        "warehouse__vscope_duckdb: vscope_pipeline.collect.ServicesFailedError: "
        f"{len(failures)} of 2 dedicatedCloud service(s) failed, and the data of the other "
        "services are stored. Fix the cause, then run the same days again to fill the failed "
        f"services: {'; '.join(failures)}"
    )


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    # 10-minute points and 12 VMs per service keep each run to a few seconds.
    with running_simulator(services=2, vm_count=12, step_seconds=600) as running:
        yield running


@dataclass(frozen=True)
class DayRunner:
    """Ingests yesterday into one data folder, on one Dagster instance."""

    instance: dg.DagsterInstance
    day: dt.date

    def __call__(self) -> list[RunOutcome]:
        return ingest_range(self.day, self.day, instance=self.instance, days_per_run=1)


@pytest.fixture
def run_day(simulator, tmp_path, monkeypatch) -> Iterator[DayRunner]:
    for name, value in simulator.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
    with dg.DagsterInstance.ephemeral() as instance:
        yield DayRunner(instance, last_complete_day())
    simulator.ovh_server.server.faults.clear()


def _metric_rows(data_dir: Path, metric: str, service: str) -> pa.Table:
    dataset = ds.dataset(metrics_root(data_dir), format="parquet", partitioning="hive")
    table = dataset.to_table(
        filter=(ds.field("metric") == metric) & (ds.field("service_name") == service),
        columns=["datacenter", "entity", "nic", "ts", "value"],
    )
    return table.sort_by(
        [("datacenter", "ascending"), ("entity", "ascending"), ("ts", "ascending")]
    )


def _generated_points(simulator: RunningSimulator, metric: str, service: str) -> int:
    series = simulator.series_by_service[service]
    start = int(dt.datetime.combine(last_complete_day(), dt.time(), dt.UTC).timestamp()) * 1000
    return sum(
        len(series.points(metric, tags, start, start + DAY_MS - 1)[0])
        for tags in series.series_tags(metric)
    )


def _query(data_dir: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data_dir / "vscope.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _missing_token_routes(count: int) -> list[ForcedApiResponse]:
    route = rf"/dedicatedCloud/{SERVICE_B}/user/\d+/(metricsToken|getVscopeMetricsToken)"
    return [ForcedApiResponse(404, INVALID_URL_MESSAGE, method="POST", path=route)] * count


def test_both_services_stored(simulator, run_day, tmp_path):
    outcomes = run_day()

    assert [(outcome.success, outcome.error) for outcome in outcomes] == [(True, None)]
    inventory = _query(
        tmp_path,
        "SELECT service_name, (SELECT count(*) FROM vms v WHERE v.service_name = d.service_name), "
        "count(*) FROM datacenters d GROUP BY 1 ORDER BY 1",
    )
    # 12 VMs less the one deleted yesterday noon and the one listed but returning 404.
    assert inventory == [(SERVICE_A, 10, 2), (SERVICE_B, 10, 2)]
    datacenters = _query(tmp_path, "SELECT datacenter_id FROM datacenters ORDER BY 1")
    assert datacenters == [(1201,), (1202,), (1301,), (1302,)]
    for service in (SERVICE_A, SERVICE_B):
        rows = _metric_rows(tmp_path, CPU, service)
        assert rows.num_rows == _generated_points(simulator, CPU, service)
        assert set(rows.column("datacenter").to_pylist()) == {
            f"{service}_datacenter{dc.datacenter_id}"
            for fleet in simulator.fleets
            if fleet.service_name == service
            for dc in fleet.datacenters
        }
    stored = _query(tmp_path, "SELECT count(DISTINCT metric) FROM metric_points")
    assert stored == [(len(BUILTIN_METRICS),)]


def _vm_listing_not_granted(service: str = SERVICE_B) -> ForcedApiResponse:
    return ForcedApiResponse(
        403,
        "This call has not been granted",
        "NOT_GRANTED_CALL",
        headers={"X-Ovh-Queryid": QUERY_ID},
        method="GET",
        path=rf"/dedicatedCloud/{service}/datacenter/\d+/vm",
    )


def _inventory_metadata(instance: dg.DagsterInstance, kind: str) -> dict:
    event = instance.get_latest_materialization_event(INVENTORY_KEYS[kind])
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_vm_listing_not_granted(simulator, run_day, tmp_path):
    simulator.ovh_server.server.faults.force(_vm_listing_not_granted())

    outcomes = run_day()

    assert [(outcome.success, outcome.error) for outcome in outcomes] == [
        (False, _failed_run_error(WALK_ERROR))
    ]
    assert _metric_rows(tmp_path, CPU, SERVICE_A).num_rows == _generated_points(
        simulator, CPU, SERVICE_A
    )
    assert _metric_rows(tmp_path, CPU, SERVICE_B).num_rows == 0
    metadata = _inventory_metadata(run_day.instance, "vms")
    assert metadata["failed_services"] == {SERVICE_B: WALK_ERROR.split(": ", 1)[1]}
    assert metadata["dagster/row_count"] == 10
    assert metadata["kept_rows_of_failed_services"] == 0


def test_every_walk_failed_writes_nothing(simulator, run_day, tmp_path):
    simulator.ovh_server.server.faults.force(
        _vm_listing_not_granted(SERVICE_A), _vm_listing_not_granted(SERVICE_B)
    )

    outcomes = run_day()

    walk_error_a = WALK_ERROR.replace(SERVICE_B, SERVICE_A).replace("1301", "1201")
    assert [(outcome.success, outcome.error) for outcome in outcomes] == [
        (
            False,
            "inventory_snapshot: vscope_pipeline.collect.ServicesFailedError: all 2 "
            "dedicatedCloud service(s) failed, so no new data are stored. Fix the cause, then "
            f"run the same days again: {walk_error_a}; {WALK_ERROR}",
        )
    ]
    assert not (tmp_path / "inventory").exists()
    assert not metrics_root(tmp_path).exists()


def test_failed_walk_keeps_same_day_rows(simulator, run_day, tmp_path):
    assert [outcome.success for outcome in run_day()] == [True]
    first_b = _metric_rows(tmp_path, CPU, SERVICE_B)
    simulator.ovh_server.server.faults.force(_vm_listing_not_granted())

    outcomes = run_day()

    assert [(outcome.success, outcome.error) for outcome in outcomes] == [
        (False, _failed_run_error(WALK_ERROR))
    ]
    # B's rows of the first snapshot of the day are kept, so its metrics are still fetched.
    vms = _inventory_metadata(run_day.instance, "vms")
    assert vms["dagster/row_count"] == 20
    assert vms["kept_rows_of_failed_services"] == 10
    assert _inventory_metadata(run_day.instance, "datacenters")["dagster/row_count"] == 4
    assert _metric_rows(tmp_path, CPU, SERVICE_B).equals(first_b)


def test_token_missing_then_recovered(simulator, run_day, tmp_path):
    assert [outcome.success for outcome in run_day()] == [True]
    first_a = _metric_rows(tmp_path, CPU, SERVICE_A)
    first_b = _metric_rows(tmp_path, CPU, SERVICE_B)
    faults = simulator.ovh_server.server.faults
    taken_before = faults.taken()
    faults.force(*_missing_token_routes(6))

    failed = run_day()

    # The run requests B's token once (two routes), and every metric asset reuses the error.
    assert faults.taken() - taken_before == 2
    assert [(outcome.success, outcome.error) for outcome in failed] == [
        (False, _failed_run_error(TOKEN_MISSING))
    ]
    assert _metric_rows(tmp_path, CPU, SERVICE_A).equals(first_a)
    # B's rows of the first run stay in the day's partition: nothing replaced them.
    assert _metric_rows(tmp_path, CPU, SERVICE_B).equals(first_b)

    faults.clear()
    recovered = run_day()

    assert [(outcome.success, outcome.error) for outcome in recovered] == [(True, None)]
    assert _metric_rows(tmp_path, CPU, SERVICE_A).equals(first_a)
    assert _metric_rows(tmp_path, CPU, SERVICE_B).equals(first_b)
