"""Open the pages of the Dagster UI in Debian's headless Chromium, the way a user reaches them.

The Playwright package drives the Chromium that Debian installs, so no Playwright browser build
is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from dagster_ui import CHROMIUM
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, Route

# Large enough for the whole asset graph at a zoom where each node shows its full name.
VIEWPORT = {"width": 1600, "height": 1000}

# The UI keeps these choices in the browser's local storage. The first hides the newsletter
# dialog that the UI opens on a first visit from 127.0.0.1. The second lays the asset graph
# out top to bottom, so that its three groups fit the viewport side by side.
UI_PREFERENCES_SCRIPT = """
window.localStorage.setItem('communityNux', JSON.stringify('1'));
window.localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'));
"""

# Milliseconds a page gets to show an element before the test fails.
PAGE_TIMEOUT_MS = 30_000


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def new_ui_context(browser: Browser, base_url: str, blocked: list[str]) -> BrowserContext:
    """Open a browser context for the UI at `base_url` that reaches no other host.

    A request to another address is aborted and its URL appended to `blocked`.
    """
    allowed = urlsplit(base_url).netloc

    def route(route: Route) -> None:
        if urlsplit(route.request.url).netloc == allowed:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.add_init_script(UI_PREFERENCES_SCRIPT)
    context.route("**/*", route)
    return context


def asset_node(page: Page, name: str) -> Locator:
    """Return the locator of an asset node of the graph, by the asset's name."""
    # The graph draws each node as HTML inside an SVG foreignObject.
    return page.locator("foreignObject").get_by_text(name, exact=True)


def open_asset_graph(page: Page, base_url: str, shown_asset: str) -> None:
    """Open the global asset lineage with every group expanded and wait for `shown_asset`."""
    page.goto(f"{base_url}/asset-groups")
    # The groups are drawn collapsed, and the graph's keyboard shortcut Alt+E expands them all.
    page.get_by_text("metrics", exact=True).first.wait_for()
    page.get_by_role("button", name="Hide navigation").click()
    page.keyboard.press("Alt+e")
    asset_node(page, shown_asset).wait_for()


def open_materialization(page: Page, base_url: str, asset_path: Sequence[str]) -> None:
    """Open the events tab of an asset, which shows its latest materialization and metadata."""
    page.goto(f"{base_url}/assets/{'/'.join(asset_path)}?view=events")
    page.get_by_text("Metadata", exact=True).wait_for()


def metadata_value(page: Page, key: str) -> Locator:
    """Return the locator of the value cell of the metadata row whose key is `key`."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
    return row.get_by_role("cell").nth(1)
