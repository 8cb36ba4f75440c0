"""Data-quality checks through Dagster runs on the simulator: a defect fails the run.

OpenTSDB returns an empty array for every query, as an outage behind a proxy might. A day
already stored keeps its points and the run succeeds. A day never stored gets empty partitions,
so the blocking `partitions_complete` check fails with ERROR, the run fails, and the warehouse
keeps its previous file.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.check_summary import summarize_checks
from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.lake.layout import metric_partition_dir, partition_file
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse

pytestmark = pytest.mark.integration

CPU = "vscope.vm.cpu.usage.perc"
# More than the queries of one run: 20 metrics x 2 datacenters per day.
EMPTY_ANSWERS = 200


def _check_outcomes(
    instance: dg.DagsterInstance, outcome: RunOutcome, asset: str
) -> dict[str, tuple[bool, str]]:
    """Return each check of `asset` evaluated in the run: (passed, severity)."""
    return {
        name: (evaluation.passed, evaluation.severity.value)
        for name, evaluation in _evaluations(instance, outcome, asset).items()
    }


def _evaluations(instance: dg.DagsterInstance, outcome: RunOutcome, asset: str) -> dict:
    outcomes = {}
    for record in instance.all_logs(
        outcome.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.asset_key.path[-1] == asset:
            outcomes[evaluation.check_name] = evaluation
    return outcomes


def _cpu_rows(data_dir: Path, day: dt.date) -> int:
    return pq.read_metadata(partition_file(metric_partition_dir(data_dir, CPU, day))).num_rows


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("data")
    stored_day = last_complete_day()
    new_day = stored_day - dt.timedelta(days=1)
    with (
        running_simulator(vm_count=12) as simulator,
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))
        (healthy,) = ingest_range(stored_day, stored_day, instance=instance, days_per_run=1)
        rows_before = _cpu_rows(data_dir, stored_day)

        faults = simulator.opentsdb_server.server.faults
        empty = ForcedResponse(200, b"[]", content_type="application/json")
        faults.force(*[empty] * EMPTY_ANSWERS)
        (kept,) = ingest_range(stored_day, stored_day, instance=instance, days_per_run=1)
        faults.clear()
        warehouse_before = (data_dir / "vscope.duckdb").read_bytes()
        faults.force(*[empty] * EMPTY_ANSWERS)
        (failed,) = ingest_range(new_day, new_day, instance=instance, days_per_run=1)
        faults.clear()
        yield {
            "instance": instance,
            "healthy": healthy,
            "kept": kept,
            "failed": failed,
            "new_day": new_day,
            "rows_before": rows_before,
            "rows_after": _cpu_rows(data_dir, stored_day),
            "new_day_rows": _cpu_rows(data_dir, new_day),
            "warehouse_same": (data_dir / "vscope.duckdb").read_bytes() == warehouse_before,
        }


def test_healthy_run_passes_defect_checks(outage):
    checks = _check_outcomes(outage["instance"], outage["healthy"], "vm_metric_points")
    assert outage["healthy"].success
    assert checks["partitions_complete"] == (True, "ERROR")
    assert checks["keys_unique"] == (True, "ERROR")
    assert checks["values_in_range"] == (True, "ERROR")
    # Gaps depend on the day drawn. A VM deleted yesterday is missing from today's inventory.
    assert checks["series_without_gaps"][1] == "WARN"
    assert checks["series_in_inventory"] == (False, "WARN")


def test_empty_response_keeps_stored_day(outage):
    assert outage["kept"].success
    assert outage["rows_after"] == outage["rows_before"]
    checks = _check_outcomes(outage["instance"], outage["kept"], "vm_metric_points")
    assert checks["partitions_complete"] == (True, "ERROR")


def test_empty_new_day_fails_the_run(outage):
    failed = outage["failed"]
    assert not failed.success
    assert outage["new_day_rows"] == 0
    for asset in ("vm_metric_points", "host_metric_points", "filer_metric_points"):
        checks = _check_outcomes(outage["instance"], failed, asset)
        assert checks["partitions_complete"] == (False, "ERROR")
    assert "partitions_complete" in failed.error
    evaluation = _evaluations(outage["instance"], failed, "vm_metric_points")["partitions_complete"]
    problem = evaluation.metadata["problem"].value
    assert problem.startswith(
        f"no series stored for vscope.vm.cpu.usage.perc on {outage['new_day']}"
    )
    assert problem.endswith(
        "check that OpenTSDB answers for that day, then re-materialize the partition"
    )


def test_failed_run_keeps_previous_warehouse(outage):
    assert outage["warehouse_same"]


def test_summary_of_failed_run_names_errors(outage):
    summary = summarize_checks(outage["instance"], outage["failed"].run_id)
    assert summary.errors == {
        "partitions_complete": ["filer_metric_points", "host_metric_points", "vm_metric_points"]
    }
    assert "series_in_inventory" not in summary.errors
    assert summary.describe().endswith(
        "3 errors: partitions_complete (filer_metric_points, host_metric_points, vm_metric_points)"
    )


def test_summary_of_healthy_run_counts_checks(outage):
    summary = summarize_checks(outage["instance"], outage["healthy"].run_id)
    failed = sum(len(assets) for assets in summary.warnings.values())
    # 5 checks on each of 3 metric assets and 3 on the warehouse.
    assert summary.passed + failed == 18
    assert summary.errors == {}
    assert summary.warnings["series_in_inventory"] == ["vm_metric_points"]
