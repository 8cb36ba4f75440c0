"""What the Dagster UI shows of the code location: groups, kinds, owners and descriptions."""

import dagster as dg
import pytest

from vscope_pipeline.definitions import defs
from vscope_pipeline.defs.ownership import ASSET_OWNERS

GROUPS = {
    "inventory/datacenters": "inventory",
    "inventory/filers": "inventory",
    "inventory/hosts": "inventory",
    "inventory/vms": "inventory",
    "metrics/vm_metric_points": "metrics",
    "metrics/host_metric_points": "metrics",
    "metrics/filer_metric_points": "metrics",
    "warehouse/vscope_duckdb": "warehouse",
    "report/vscope_report": "report",
}
KINDS = {
    "inventory": {"python", "parquet", "ovh"},
    "metrics": {"python", "parquet", "opentsdb"},
    "warehouse": {"duckdb"},
    "report": {"html", "python"},
}
# The words that state each group's grain in its assets' descriptions.
GRAINS = {
    "inventory": "per snapshot day",
    "metrics": "one row per metric, series and timestamp",
    "warehouse": "one row per metric, series and timestamp",
    "report": "one page per UTC day",
}


@pytest.fixture(scope="module")
def asset_graph():
    return defs.get_repository_def().asset_graph


def test_assets_grouped(asset_graph):
    keys = {key.to_user_string(): key for key in asset_graph.get_all_asset_keys()}

    assert set(keys) == set(GROUPS)
    for name, group in GROUPS.items():
        assert asset_graph.get(keys[name]).group_name == group, name


def test_assets_have_kinds_and_owners(asset_graph):
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        assert set(node.kinds) == KINDS[node.group_name], key
        assert list(node.owners) == ASSET_OWNERS, key


def test_descriptions_state_grain(asset_graph):
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        assert node.description, key
        assert GRAINS[node.group_name] in node.description, key


def test_partitioned_descriptions_explain_schedule(asset_graph):
    partitioned = [
        asset_graph.get(key)
        for key in asset_graph.get_all_asset_keys()
        if asset_graph.get(key).partitions_def is not None
    ]

    assert len(partitioned) == 4
    for node in partitioned:
        assert "01:30 UTC" in node.description, node.key
    for node in partitioned:
        if node.group_name == "metrics":
            assert "a backfill runs 7 days per run" in node.description, node.key
            assert node.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=7)
    report = asset_graph.get(dg.AssetKey(["report", "vscope_report"]))
    assert "A backfill writes one report per run." in report.description


def test_checks_stay_visible(asset_graph):
    check_keys = asset_graph.asset_check_keys

    names_by_asset: dict[str, set[str]] = {}
    for check in check_keys:
        names_by_asset.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    assert {"keys_unique", "values_in_range"} <= names_by_asset["metrics/vm_metric_points"]
    assert {"metric_points_unique", "warehouse_complete", "metric_points_matched"} <= (
        names_by_asset["warehouse/vscope_duckdb"]
    )


def test_report_outside_ingest_job():
    repository = defs.get_repository_def()
    ingest = repository.get_job("vscope_ingest")
    report = repository.get_job("vscope_report")

    assert dg.AssetKey(["report", "vscope_report"]) not in ingest.asset_layer.executable_asset_keys
    assert report.asset_layer.executable_asset_keys == {dg.AssetKey(["report", "vscope_report"])}
    assert "vscope_report_after_warehouse" in {sensor.name for sensor in repository.sensor_defs}
