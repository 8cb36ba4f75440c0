"""An OpenTSDB outage of one dedicatedCloud service fails that service only.

The simulator serves two services, and every OpenTSDB query for the second one gets a 500 on
each attempt. The run uses two worker processes, so the failure crosses a process boundary.
"""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.ingest import ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse, InjectedFault

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICE_A = "pcc-203-0-113-10"
SERVICE_B = "pcc-203-0-113-11"
OUTAGE = ForcedResponse(500, b"backend unavailable, retry later\n")


def _fail_service_b(body: bytes) -> InjectedFault | None:
    return InjectedFault(response=OUTAGE) if SERVICE_B.encode() in body else None


def _query(data_dir: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data_dir / "vscope.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_opentsdb_outage_fails_one_service(tmp_path, monkeypatch):
    day = last_complete_day()
    with running_simulator(services=2, vm_count=6, step_seconds=600) as simulator:
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("VSCOPE_WORKERS", "2")
        simulator.opentsdb_server.server.faults.request_hook = _fail_service_b

        with dg.DagsterInstance.ephemeral() as instance:
            (outcome,) = ingest_range(day, day, instance=instance, days_per_run=1)

    assert not outcome.success
    assert outcome.error is not None
    prefix = (
        "warehouse__vscope_duckdb: vscope_pipeline.collect.ServicesFailedError: 1 of 2 "
        "dedicatedCloud service(s) failed, and the data of the other services are stored. Fix "
        "the cause, then run the same days again to fill the failed services: "
        f"{SERVICE_B} (OpenTSDB): POST {simulator.opentsdb_url}/api/query for metric "
    )
    assert outcome.error.startswith(prefix), outcome.error
    assert "HTTP 500" in outcome.error
    assert "backend unavailable, retry later" in outcome.error
    assert SERVICE_A not in outcome.error

    # Every metric of A is stored, and none of B.
    stored = _query(
        tmp_path,
        "SELECT service_name, count(DISTINCT metric) FROM metric_points GROUP BY 1 ORDER BY 1",
    )
    assert stored == [(SERVICE_A, len(BUILTIN_METRICS))]
    # The warehouse was published although the run failed: its inventory tables are those of
    # this run's snapshot, where both services' inventories succeeded.
    vms = _query(tmp_path, "SELECT service_name, count(*) FROM vms GROUP BY 1 ORDER BY 1")
    assert [service for service, _ in vms] == [SERVICE_A, SERVICE_B]
