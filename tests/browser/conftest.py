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
    """Ingest yesterday (UTC) from the simulator, through a Dagster instance on disk."""
    lake = ingest_days(tmp_path_factory.mktemp("browser"), days=1)
    assert [outcome.success for outcome in lake.outcomes] == [True]
    return lake


@pytest.fixture(scope="session")
def webserver(lake: IngestedLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run dagster-webserver on the lake's instance and return its base URL."""
    log_file = tmp_path_factory.mktemp("webserver") / "dagster-webserver.log"
    with running_webserver(lake, log_file) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()
