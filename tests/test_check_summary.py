"""The one-line summary of a run's asset checks printed by `vscope-pipeline ingest`."""

from vscope_pipeline.check_summary import CheckSummary


def test_all_passed():
    assert CheckSummary(18, {}, {}).describe() == "checks: 18 passed"


def test_warnings_and_errors_listed():
    summary = CheckSummary(
        14,
        {"series_without_gaps": ["host_metric_points", "vm_metric_points"]},
        {"keys_unique": ["vm_metric_points"]},
    )
    assert summary.describe() == (
        "checks: 14 passed; 2 warnings: series_without_gaps (host_metric_points, "
        "vm_metric_points); 1 error: keys_unique (vm_metric_points)"
    )
