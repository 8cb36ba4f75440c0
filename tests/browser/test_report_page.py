"""The HTML report, opened from its file in Chromium with the network cut off, draws every plot."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_pages import new_offline_context, report_figures
from dagster_ui import IngestedLake, requires_chromium, write_report
from playwright.sync_api import Browser, Page

from vscope_pipeline.report.html import PLOT_IDS

pytestmark = [pytest.mark.integration, requires_chromium]


@pytest.fixture(scope="module")
def report(lake: IngestedLake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the report of the lake's days with the `vscope-pipeline report` command."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    output = write_report(lake, out)
    assert "2 of 2 days have metrics" in output
    return out


@pytest.fixture
def requested() -> list[str]:
    return []


@pytest.fixture
def blocked() -> list[str]:
    return []


@pytest.fixture
def page(browser: Browser, requested: list[str], blocked: list[str]) -> Iterator[Page]:
    context = new_offline_context(browser, blocked)
    context.on("request", lambda request: requested.append(request.url))
    try:
        yield context.new_page()
    finally:
        context.close()


def test_report_draws_every_plot(page, report, requested, blocked):
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    figures = report_figures(page)

    assert [figure["id"] for figure in figures] == list(PLOT_IDS)
    for figure in figures:
        assert figure["width"] > 0, figure
        assert figure["height"] > 0, figure
        assert figure["drawnPaths"] > 0, figure
    assert page.locator("figure.plot.no-data").count() == 0
    assert blocked == []
    assert requested == [report.as_uri()]
