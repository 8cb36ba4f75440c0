"""Assemble the report page: one self-contained HTML file with inline CSS and SVG plots.

The page loads nothing: no script, stylesheet, font or image comes from a URL. Every value
read from the data (VM, host and datastore names included) is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from vscope_pipeline.report import plots
from vscope_pipeline.report.queries import (
    KB_PER_GB,
    RANKINGS,
    TOP_COUNT,
    Coverage,
    Ranking,
    ReportData,
)

NIC_PLOT_ID = "host-nic-throughput"
DATASTORE_PLOT_ID = "datastore-fill"
CHANGES_PLOT_ID = "inventory-changes"
PLOT_IDS = (
    *(ranking.plot_id for ranking in RANKINGS),
    NIC_PLOT_ID,
    DATASTORE_PLOT_ID,
    CHANGES_PLOT_ID,
)
PLOT_TITLES = {
    **{ranking.plot_id: ranking.title for ranking in RANKINGS},
    NIC_PLOT_ID: "Host NIC throughput",
    DATASTORE_PLOT_ID: "Datastore fill",
    CHANGES_PLOT_ID: "Inventory changes",
}

DAYS_TO_FULL_ASSUMPTION = (
    "Days to full assumes that each datastore keeps growing at the rate of a straight line "
    "fitted by least squares to its average used space per {grain} over the period. It counts "
    "from the used space of the last {grain} to the size in the latest inventory "
    '(1 GB = 1,048,576 kB). A datastore whose line is flat or falling is "not filling".'
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222;
       padding: 0 1rem; }
header { border-bottom: 2px solid #1565c0; margin-bottom: 1.5rem; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.facts dt { font-weight: 600; }
.warning { background: #fff3e0; border-left: 4px solid #ef6c00; padding: 0.5rem 1rem; }
figure.plot { margin: 1rem 0; }
figure.plot svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
p.no-data { font-weight: 600; color: #ef6c00; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: left; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 1rem; }
"""


def _figure(
    drawn: dict[str, str], plot_id: str, svg: str, caption: str, no_data: str | None = None
) -> str:
    """Return a `figure.plot` with its SVG and caption; `no_data` explains an empty plot.

    The SVG of a plot with data is also stored in `drawn` under `plot_id`.
    """
    if not no_data:
        drawn[plot_id] = svg
    classes = "plot no-data" if no_data else "plot"
    note = f'<p class="no-data">{escape(no_data)}</p>' if no_data else ""
    return (
        f'<figure class="{classes}" id="{plot_id}">{note}{svg}'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return an HTML table; a header starting with '#' marks a right-aligned number column."""
    numeric = [header.startswith("#") for header in headers]
    head = "".join(
        f'<th class="number">{escape(h[1:])}</th>' if n else f"<th>{escape(h)}</th>"
        for h, n in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{escape(str(cell))}</td>' if n else f"<td>{escape(str(cell))}</td>"
            for cell, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _days_text(days: Sequence[dt.date]) -> str:
    return ", ".join(day.isoformat() for day in days)


def _coverage_html(coverage: Coverage, first: dt.date, last: dt.date) -> str:
    loaded = len(coverage.days) - len(coverage.missing_days)
    parts = [f"{loaded} of {len(coverage.days)} days have metrics."]
    if coverage.missing_days:
        parts.append(
            f"Not loaded: {_days_text(coverage.missing_days)}. Plots and tables leave these days "
            f"out; run `vscope-pipeline ingest --from {first} --to {last}` to load them."
        )
    if coverage.partial_days:
        partial = ", ".join(
            f"{day} ({count} of {coverage.metrics_expected} metrics)"
            for day, count in coverage.partial_days.items()
        )
        parts.append(f"Loaded in part: {partial}.")
    css = ' class="warning"' if coverage.missing_days or coverage.partial_days else ""
    return f'<p id="data-coverage"{css}>{escape(" ".join(parts))}</p>'


def _header(data: ReportData, generated_at: dt.datetime) -> str:
    services = ", ".join(data.services) or "none with data in the period"
    days = len(data.coverage.days)
    facts = [
        ("Services", services),
        ("Period", f"{data.first} to {data.last} ({days} UTC day{'s' if days > 1 else ''})"),
        ("Generated", generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return (
        f'<header><h1>vScope report</h1><dl class="facts">{items}</dl>'
        f"{_coverage_html(data.coverage, data.first, data.last)}</header>"
    )


def _ranking_section(drawn: dict[str, str], data: ReportData, ranking: Ranking) -> str:
    rows = data.rankings.get(ranking.plot_id, [])
    caption = (
        f"{ranking.title}: the {TOP_COUNT} VMs with the highest {ranking.measure}, "
        f"in {ranking.unit}."
    )
    if not rows:
        message = f"No data: no VM sent {', '.join(ranking.metrics)} in the period."
        figure = _figure(
            drawn, ranking.plot_id, plots.empty_svg(ranking.plot_id, message), caption, message
        )
        return f"<div>{figure}</div>"
    svg = plots.ranking_svg(ranking.plot_id, rows, ranking.unit, ranking.measure)
    table = _table(
        f"{ranking.plot_id}-table",
        ["VM", "host", f"#{ranking.unit}"],
        [(row.vm, row.host or "", f"{row.value:.2f}") for row in rows],
    )
    return f"<div>{_figure(drawn, ranking.plot_id, svg, caption)}{table}</div>"


def _nic_section(drawn: dict[str, str], data: ReportData) -> str:
    hosts_shown = len(data.hosts)
    caption = (
        f"Host NIC throughput per {data.time_grain}, in MB/s (1 MB = 1000 KB): the {hosts_shown} "
        f"busiest of {data.hosts_total} hosts by peak receive plus transmit rate."
    )
    if not data.hosts:
        message = (
            "No data: no host NIC sent vscope.host.net.rx or vscope.host.net.tx in the period."
        )
        svg = plots.empty_svg(NIC_PLOT_ID, message)
        return _figure(drawn, NIC_PLOT_ID, svg, caption, message)
    return _figure(
        drawn,
        NIC_PLOT_ID,
        plots.nic_svg(NIC_PLOT_ID, data.hosts, data.time_grain, (data.first, data.last)),
        caption,
    )


def _gb(kb: float | None) -> str:
    return "" if kb is None else f"{kb / KB_PER_GB:,.1f}"


def _datastore_section(drawn: dict[str, str], data: ReportData) -> str:
    assumption = DAYS_TO_FULL_ASSUMPTION.format(grain=data.time_grain)
    caption = (
        f"Datastore fill: average used space per {data.time_grain}, in percent of the size in "
        "the latest inventory (in GB when a datastore has no size there). The table gives the "
        "days-to-full estimate, and the assumption behind it follows."
    )
    if not data.datastores:
        message = "No data: no datastore sent vscope.filer.datastore.diskspace.used in the period."
        figure = _figure(
            drawn, DATASTORE_PLOT_ID, plots.empty_svg(DATASTORE_PLOT_ID, message), caption, message
        )
        return figure
    svg = plots.datastore_svg(
        DATASTORE_PLOT_ID, data.datastores, data.time_grain, (data.first, data.last)
    )
    rows = []
    for fill in data.datastores:
        pct = fill.used_pct
        growth = fill.forecast.growth_per_day
        rows.append(
            (
                fill.name,
                _gb(fill.capacity_kb),
                _gb(fill.used_kb[-1]),
                "" if pct is None else f"{pct[-1]:.1f}",
                "" if growth is None else f"{growth / KB_PER_GB:,.2f}",
                fill.forecast.status,
            )
        )
    table = _table(
        "days-to-full",
        ["datastore", "#size (GB)", "#used (GB)", "#used (%)", "#growth (GB/day)", "#days to full"],
        rows,
    )
    return (
        _figure(drawn, DATASTORE_PLOT_ID, svg, caption)
        + table
        + f'<p class="assumption">{escape(assumption)}</p>'
    )


def _changes_section(drawn: dict[str, str], data: ReportData) -> str:
    counts = Counter(change.change for change in data.changes)
    summary = ", ".join(f"{counts[kind]} {kind}" for kind in plots.CHANGE_TYPES)
    caption = (
        f"Inventory changes in the period ({summary}), from the daily inventory snapshots: "
        "objects created, deleted, or with a changed attribute (host, power state, size...). "
        "Changes are found by comparing consecutive snapshots, so a period with a single "
        "snapshot shows none."
    )
    missing = ""
    if data.missing_history:
        missing = (
            f'<p class="warning">No inventory snapshot yet for {", ".join(data.missing_history)}: '
            "their changes are not counted.</p>"
        )
    if not data.changes:
        message = "No data: no VM, host or datastore was created, deleted or changed in the period."
        return missing + _figure(
            drawn, CHANGES_PLOT_ID, plots.empty_svg(CHANGES_PLOT_ID, message), caption, message
        )
    table = _table(
        "inventory-changes-table",
        ["day", "kind", "change", "name", "details"],
        [(c.day, c.kind, c.change, c.name, c.details) for c in data.changes],
    )
    return (
        missing
        + _figure(drawn, CHANGES_PLOT_ID, plots.changes_svg(CHANGES_PLOT_ID, data.changes), caption)
        + table
    )


@dataclass(frozen=True)
class RenderedReport:
    """The report page and the SVG of each plot that has data, by plot id."""

    page: str
    svgs: dict[str, str]


def render_report(data: ReportData, generated_at: dt.datetime) -> RenderedReport:
    """Return the whole report page for `data`, with the SVGs of its plots."""
    drawn: dict[str, str] = {}
    rankings = "".join(_ranking_section(drawn, data, ranking) for ranking in RANKINGS)
    sections = [
        ("busiest-vms", "Busiest VMs", f'<div class="grid">{rankings}</div>'),
        ("host-network", "Host network throughput", _nic_section(drawn, data)),
        ("datastores", "Datastore fill", _datastore_section(drawn, data)),
        ("inventory", "Inventory changes", _changes_section(drawn, data)),
    ]
    main = "".join(
        f'<section id="{section_id}"><h2>{heading}</h2>{body}</section>'
        for section_id, heading, body in sections
    )
    title = f"vScope report {data.first} to {data.last}"
    page = (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{_header(data, generated_at)}<main>{main}</main></body></html>\n"
    )
    return RenderedReport(page, drawn)
