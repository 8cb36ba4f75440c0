"""Take the screenshots of the README: the asset graph, a materialization and the report.

    python -m tests.browser.screenshots             # writes docs/images/*.png
    python -m tests.browser.screenshots --out /tmp  # somewhere else

Run it from the repository root with the project's Python (`make screenshots`). It ingests the
last two complete UTC days from the simulator into a temporary folder, serves them with
dagster-webserver on 127.0.0.1 and photographs the pages in Debian's headless Chromium, with
every request to another host blocked. Review each PNG before committing it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The helpers import each other by module name, as pytest imports them from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_pages import (
    launch_chromium,
    new_offline_context,
    new_ui_context,
    open_asset_graph,
    open_materialization,
)
from dagster_ui import (
    CHROMIUM,
    REPOSITORY,
    ingest_days,
    running_webserver,
    write_report,
)
from playwright.sync_api import sync_playwright

ASSET_GRAPH_PNG = "dagster-asset-graph.png"
MATERIALIZATION_PNG = "dagster-materialization.png"
REPORT_PNG = "report.png"

# PNGs larger than this make the README slow to load, so the script warns about them.
MAX_PNG_BYTES = 300_000
# The report page is long: the screenshot keeps its top, with the first plots.
REPORT_CLIP = {"x": 0, "y": 0, "width": 1000, "height": 1400}
# Milliseconds for the graph to finish the zoom animation that follows the expansion.
SETTLE_MS = 1500


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.browser.screenshots", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPOSITORY / "docs" / "images",
        help="folder to write the PNG files to (default: docs/images)",
    )
    return parser.parse_args(argv)


def take_screenshots(out: Path, work: Path) -> list[Path]:
    """Ingest, serve and photograph the pages into `out`, and return the PNG paths."""
    lake = ingest_days(work, days=2, vm_count=60, step_seconds=60)
    failed = [outcome for outcome in lake.outcomes if not outcome.success]
    if failed:
        raise RuntimeError(f"the ingestion failed: {failed[0].error}")
    report = work / "report.html"
    write_report(lake, report)
    blocked: list[str] = []
    with (
        running_webserver(lake, work / "dagster-webserver.log") as url,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        ui = new_ui_context(browser, url, blocked)
        page = ui.new_page()
        open_asset_graph(page, url, shown_asset="vm_metric_points")
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=out / ASSET_GRAPH_PNG)
        open_materialization(page, url, ["metrics", "vm_metric_points"])
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=out / MATERIALIZATION_PNG)
        ui.close()

        offline = new_offline_context(browser, blocked)
        page = offline.new_page()
        page.set_viewport_size({"width": REPORT_CLIP["width"], "height": REPORT_CLIP["height"]})
        page.goto(report.as_uri())
        page.screenshot(path=out / REPORT_PNG, clip=REPORT_CLIP)  # type: ignore[arg-type]
        offline.close()
        browser.close()
    if blocked:
        raise RuntimeError(f"the pages requested other hosts: {blocked}")
    return [out / name for name in (ASSET_GRAPH_PNG, MATERIALIZATION_PNG, REPORT_PNG)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not CHROMIUM.exists():
        print(
            f"error: {CHROMIUM} is missing: install it with apt-get install chromium",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vscope-screenshots-") as work:
        written = take_screenshots(args.out.resolve(), Path(work))
    for path in written:
        size = path.stat().st_size
        note = f"  larger than {MAX_PNG_BYTES} bytes: shrink it" if size > MAX_PNG_BYTES else ""
        print(f"{path} {size} bytes{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
