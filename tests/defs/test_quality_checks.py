"""Severities and metadata of the metric assets' data-quality checks."""

import datetime as dt
from dataclasses import replace

import dagster as dg
import pytest

from vscope_pipeline.defs.quality_checks import CHECKS, quality_check_results, quality_check_specs
from vscope_pipeline.quality import PartitionQuality

KEY = dg.AssetKey(["metrics", "vm_metric_points"])
DAY = dt.date(2026, 11, 18)
DC1 = "pcc-203-0-113-10_datacenter1"

CLEAN = PartitionQuality(
    metric="vscope.vm.cpu.usage.perc",
    day=DAY,
    rows=2880,
    series=2,
    duplicate_keys=0,
    out_of_range=0,
    gaps=0,
    usual_step_s=60.0,
    snapshot_day="2026-11-18",
    entities_expected=2,
    missing_entities=(),
    unlisted_entities=(),
)


def _outcomes(part: PartitionQuality) -> dict[str, tuple[bool, dg.AssetCheckSeverity]]:
    return {
        result.check_name: (result.passed, result.severity)
        for result in quality_check_results(KEY, [part])
    }


def _failed(part: PartitionQuality) -> dict[str, dg.AssetCheckSeverity]:
    return {name: severity for name, (passed, severity) in _outcomes(part).items() if not passed}


def test_specs_blocking_and_named():
    specs = quality_check_specs(KEY)
    assert [spec.name for spec in specs] == [
        "partitions_complete",
        "keys_unique",
        "values_in_range",
        "series_without_gaps",
        "series_in_inventory",
    ]
    assert all(spec.blocking for spec in specs)
    assert all(spec.asset_key == KEY for spec in specs)


def test_clean_partition_passes_every_check():
    assert _failed(CLEAN) == {}
    assert len(quality_check_results(KEY, [CLEAN])) == len(CHECKS)


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"missing_entities": (f"{DC1}/vm-2",)}, {"partitions_complete": "WARN"}),
        (
            {"rows": 0, "series": 0, "missing_entities": (f"{DC1}/vm-1", f"{DC1}/vm-2")},
            {"partitions_complete": "ERROR"},
        ),
        ({"duplicate_keys": 3}, {"keys_unique": "ERROR"}),
        ({"out_of_range": 1}, {"values_in_range": "ERROR"}),
        ({"gaps": 4}, {"series_without_gaps": "WARN"}),
        ({"unlisted_entities": (f"{DC1}/vm-9",)}, {"series_in_inventory": "WARN"}),
    ],
)
def test_defect_severity(changes, failed):
    outcome = _failed(replace(CLEAN, **changes))
    assert {name: severity.value for name, severity in outcome.items()} == failed


def test_no_expected_entities_is_not_a_defect():
    empty = replace(CLEAN, rows=0, series=0, entities_expected=0, snapshot_day=None)
    assert _failed(empty) == {}


def test_metadata_names_days_and_entities():
    parts = [
        replace(CLEAN, missing_entities=(f"{DC1}/vm-2",)),
        replace(CLEAN, metric="vscope.vm.mem.usage.perc", day=DAY + dt.timedelta(days=1)),
    ]
    results = {result.check_name: result for result in quality_check_results(KEY, parts)}
    complete = results["partitions_complete"].metadata
    assert complete["days"].value == ["2026-11-18", "2026-11-19"]
    assert complete["missing_entities"].value == 1
    assert complete["missing_entity_names"].value == [f"2026-11-18 {DC1}/vm-2"]
    assert complete["per_metric"].value == (
        "| day | metric | count |\n|---|---|---:|\n| 2026-11-18 | vscope.vm.cpu.usage.perc | 1 |"
    )
