"""The Dagster web UI, opened in Chromium, shows the assets and metadata of a real ingestion."""

from collections.abc import Iterator

import pytest
from browser_pages import (
    asset_node,
    metadata_value,
    new_ui_context,
    open_asset_graph,
    open_materialization,
)
from dagster_ui import IngestedLake, latest_metadata, requires_chromium
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.integration, requires_chromium]

ASSET_NAMES = (
    "datacenters",
    "filers",
    "hosts",
    "vms",
    "filer_metric_points",
    "host_metric_points",
    "vm_metric_points",
    "vscope_duckdb",
    "vscope_report",
)
METRIC_ASSET = ["metrics", "vm_metric_points"]


@pytest.fixture
def blocked() -> list[str]:
    return []


@pytest.fixture
def page(browser: Browser, webserver: str, blocked: list[str]) -> Iterator[Page]:
    context = new_ui_context(browser, webserver, blocked)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_asset_graph_shows_every_asset(page, webserver, blocked):
    open_asset_graph(page, webserver, shown_asset="vm_metric_points")

    for name in ASSET_NAMES:
        node = asset_node(page, name)
        expect(node).to_be_visible()
        assert node.count() == 1, name
        box = node.bounding_box()
        assert box is not None, name
        assert box["width"] > 0, name
    for group in ("inventory", "metrics", "warehouse", "report"):
        expect(page.locator("foreignObject").get_by_text(group, exact=True)).to_be_visible()
    assert blocked == []


def test_materialization_shows_metadata(page, webserver, lake: IngestedLake, blocked):
    recorded = latest_metadata(lake, METRIC_ASSET)
    run_id = lake.outcomes[-1].run_id

    open_materialization(page, webserver, METRIC_ASSET)

    # "Partition <day> materialized in run <run id>", each a link.
    expect(page.get_by_role("link", name=lake.last_day.isoformat(), exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=run_id[:8], exact=True)).to_be_visible()
    # The values recorded in the instance, as the UI prints them.
    assert recorded["requests"] > 0
    expect(metadata_value(page, "requests")).to_have_text(str(recorded["requests"]))
    expect(metadata_value(page, "points")).to_have_text(str(recorded["points"]))
    expect(metadata_value(page, "first_day")).to_have_text(lake.last_day.isoformat())
    expect(metadata_value(page, "downsample")).to_have_text("raw points")
    assert blocked == []
