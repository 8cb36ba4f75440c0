"""Set up what the browser tests share: one ingested lake, its web server and Chromium."""

from collections.abc import Iterator

import pytest
from browser_pages import PAGE_TIMEOUT_MS, launch_chromium
from dagster_ui import IngestedLake, ingest_days, running_webserver
from playwright.sync_api import Browser, expect, sync_playwright

# The UI fills a page over several GraphQL requests, which take seconds on two busy cores.
expect.set_options(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> IngestedLake:
    """Ingest the last two complete UTC days from the simulator into a Dagster instance on disk.

    A small fleet with a point every 5 minutes keeps the runs to seconds.
    """
    root = tmp_path_factory.mktemp("browser")
    lake = ingest_days(root, days=2, vm_count=12, step_seconds=300)
    assert [outcome.success for outcome in lake.outcomes] == [True, True]
    return lake


# The web server and the browser are closed after each module, not at the end of the session.
# Playwright's sync API keeps its asyncio loop running in the main thread while it is open, and
# later tests start Dagster daemons, which call asyncio.run() in that thread.
@pytest.fixture(scope="module")
def webserver(lake: IngestedLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run dagster-webserver on the lake's instance and return its base URL."""
    log_file = tmp_path_factory.mktemp("webserver") / "dagster-webserver.log"
    with running_webserver(lake, log_file) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()
