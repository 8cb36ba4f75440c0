"""Open the pages of the Dagster UI in Debian's headless Chromium, the way a user reaches them.

The Playwright package drives the Chromium that Debian installs, so no Playwright browser build
is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from dagster_ui import CHROMIUM
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, Route

# Large enough for the whole asset graph at a zoom where each node shows its full name.
VIEWPORT = {"width": 1600, "height": 1000}

# The UI keeps these choices in the browser's local storage. The first hides the newsletter
# dialog that the UI opens on a first visit from 127.0.0.1. The second lays the asset graph
# out top to bottom, so that its groups fit the viewport.
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
    origin = urlsplit(base_url).netloc
    context = _new_context(browser, blocked, lambda url: urlsplit(url).netloc == origin)
    context.add_init_script(UI_PREFERENCES_SCRIPT)
    return context


def new_offline_context(browser: Browser, blocked: list[str]) -> BrowserContext:
    """Open a browser context that loads only `file:` and `data:` URLs.

    Any other request is aborted and its URL appended to `blocked`.
    """
    return _new_context(browser, blocked, lambda url: urlsplit(url).scheme in ("file", "data"))


def _new_context(
    browser: Browser, blocked: list[str], allowed: Callable[[str], bool]
) -> BrowserContext:
    def route(route: Route) -> None:
        if allowed(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
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


# For each `figure.plot` of a report page: its id, the size of its SVG on the page, and the
# number of its SVG paths outside <defs> that are drawn with a non-zero size.
FIGURES_SCRIPT = """
() => Array.from(document.querySelectorAll('figure.plot')).map((figure) => {
  const svg = figure.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const paths = svg ? Array.from(svg.querySelectorAll('path')) : [];
  const drawn = paths.filter((path) => {
    const size = path.getBoundingClientRect();
    return !path.closest('defs') && path.getAttribute('d') && (size.width > 0 || size.height > 0);
  });
  return {id: figure.id, width: box.width, height: box.height, drawnPaths: drawn.length};
})
"""


def report_figures(page: Page) -> list[dict[str, object]]:
    """Return the id, SVG size and drawn path count of each figure of the report page."""
    figures: list[dict[str, object]] = page.evaluate(FIGURES_SCRIPT)
    return figures
