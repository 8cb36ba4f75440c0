"""The days the report tests ingest, and readers of the parts of a page that they check."""

import datetime as dt
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg

from vscope_pipeline.ingest import RunOutcome

ANCHOR = dt.date(2026, 3, 13)
FIRST_DAY, LAST_DAY = dt.date(2026, 3, 11), dt.date(2026, 3, 12)
# One point every 10 minutes keeps the two days fast to fetch.
STEP_SECONDS = 600


@dataclass
class IngestedDays:
    data_dir: Path
    instance: dg.DagsterInstance
    outcomes: list[RunOutcome]

    @property
    def database(self) -> Path:
        return self.data_dir / "vscope.duckdb"


PATH_WITH_DATA = re.compile(r'<path[^>]*\sd="M[^"]+"')


class TableReader(HTMLParser):
    """Collect the text of every cell of the table with a given id, row by row."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.in_cell = False
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table_id) in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.in_cell:
            self.rows[-1][-1] += data


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """Return the body rows of the table `table_id`, without its header row."""
    reader = TableReader(table_id)
    reader.feed(page)
    return reader.rows[1:]


def figure_html(page: str, plot_id: str) -> str:
    """Return the `<figure>` element of a plot, or an empty string when it is absent."""
    match = re.search(rf'<figure class="plot[^"]*" id="{plot_id}">.*?</figure>', page, re.DOTALL)
    return match.group(0) if match else ""
