"""Draw the report's plots with matplotlib and return them as inline SVG text.

Text stays `<text>` (svg.fonttype "none"), so the page needs no font file and its words can
be searched and read by screen readers. The XML prologue, DOCTYPE and Dublin Core metadata that
matplotlib writes are dropped: the SVG is inlined in HTML, and the metadata links to
purl.org, which a self-contained page must not reference.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vscope_pipeline.report.queries import (
    DatastoreFill,
    HostThroughput,
    InventoryChange,
    RankedVm,
)

CHANGE_TYPES = ("created", "changed", "deleted")
CHANGE_COLORS = {"created": "#2e7d32", "changed": "#f9a825", "deleted": "#c62828"}
# KB/s to MB/s, with 1 MB = 1000 KB as the catalogue's rates count bytes.
KB_PER_MB = 1000

_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_STYLE: Any = {
    "svg.fonttype": "none",
    # Entity names are data: a `$` in a VM name must not start a math formula, which would
    # draw something else or fail the whole report on an invalid formula.
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    # A Figure made without pyplot has no global state, so plots can be drawn from threads.
    figure = Figure(figsize=figsize)
    return figure, figure.subplots()


def _svg(figure: Figure, plot_id: str) -> str:
    """Return `figure` as SVG text without prologue or metadata.

    The hash salt makes the element ids of each plot distinct, so several SVGs share one page
    without a clip path of one plot being used by another.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": plot_id}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _METADATA.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1), count=1)


def empty_svg(plot_id: str, message: str) -> str:
    """Draw a plot frame with `message`, the reason in words why it has no data."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = _new_figure(figsize=(8, 1.6))
        axes.set_axis_off()
        axes.text(0.5, 0.5, message, ha="center", va="center", wrap=True, color="#555555")
    return _svg(figure, plot_id)


def ranking_svg(plot_id: str, rows: Sequence[RankedVm], unit: str, measure: str) -> str:
    """Draw a horizontal bar chart of a top-10 ranking, the highest value on top."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = _new_figure(figsize=(8, 0.35 * len(rows) + 1.2))
        labels = [row.vm for row in reversed(rows)]
        values = [row.value for row in reversed(rows)]
        bars = axes.barh(labels, values, color="#1565c0")
        axes.bar_label(bars, labels=[f"{value:,.1f} {unit}" for value in values], padding=3)
        axes.set_xlabel(f"{measure} ({unit})")
        axes.margins(x=0.15)
    return _svg(figure, plot_id)


def nic_svg(
    plot_id: str, hosts: Sequence[HostThroughput], grain: str, period: tuple[dt.date, dt.date]
) -> str:
    """Draw each host's receive and transmit rates over time, in two panels, one time axis."""
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(9, 5.5))
        rx_axes, tx_axes = figure.subplots(2, 1, sharex=True)
        for host in hosts:
            times = mdates.date2num(host.times)
            label = _legend_label(host.host)
            rx_axes.plot(times, [v / KB_PER_MB for v in host.rx], label=label)
            tx_axes.plot(times, [v / KB_PER_MB for v in host.tx], label=label)
        rx_axes.set_ylabel("receive (MB/s)")
        tx_axes.set_ylabel("transmit (MB/s)")
        rx_axes.set_title(f"average per {grain}, all NICs of a host summed", loc="left")
        rx_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        _date_axis(tx_axes, period)
    return _svg(figure, plot_id)


def datastore_svg(
    plot_id: str, fills: Sequence[DatastoreFill], grain: str, period: tuple[dt.date, dt.date]
) -> str:
    """Draw each datastore's used space over time: percent of its size, or GB if unknown."""
    sized = all(fill.capacity_kb for fill in fills)
    with matplotlib.rc_context(_STYLE):
        figure, axes = _new_figure(figsize=(9, 3.8))
        for fill in fills:
            values = fill.used_pct if sized else [kb / 1_048_576 for kb in fill.used_kb]
            axes.plot(mdates.date2num(fill.times), values or [], label=_legend_label(fill.name))
        axes.set_ylabel("used (% of size)" if sized else "used (GB)")
        if sized:
            axes.set_ylim(0, 100)
        axes.set_title(f"average used space per {grain}", loc="left")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        _date_axis(axes, period)
    return _svg(figure, plot_id)


def changes_svg(plot_id: str, changes: Sequence[InventoryChange]) -> str:
    """Draw the count of created, changed and deleted objects per kind as grouped bars."""
    counts = Counter((change.kind, change.change) for change in changes)
    kinds = sorted({change.kind for change in changes})
    width = 0.8 / len(CHANGE_TYPES)
    with matplotlib.rc_context(_STYLE):
        figure, axes = _new_figure(figsize=(6, 2.8))
        for index, change_type in enumerate(CHANGE_TYPES):
            positions = [k + (index - 1) * width for k in range(len(kinds))]
            heights = [counts[(kind, change_type)] for kind in kinds]
            bars = axes.bar(
                positions, heights, width, label=change_type, color=CHANGE_COLORS[change_type]
            )
            axes.bar_label(bars, labels=[str(h) if h else "" for h in heights], padding=2)
        axes.set_xticks(range(len(kinds)), kinds)
        axes.set_ylabel("objects")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(frameon=False)
    return _svg(figure, plot_id)


def _legend_label(name: str) -> str:
    # matplotlib leaves out of the legend every label that starts with "_".
    return f" {name}" if name.startswith("_") else name


def _date_axis(axes: Axes, period: tuple[dt.date, dt.date]) -> None:
    """Span the whole period on the time axis, so that days without data show as gaps."""
    start = dt.datetime.combine(period[0], dt.time(), dt.UTC)
    end = dt.datetime.combine(period[1] + dt.timedelta(days=1), dt.time(), dt.UTC)
    axes.set_xlim(float(mdates.date2num(start)), float(mdates.date2num(end)))
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlabel("UTC")
