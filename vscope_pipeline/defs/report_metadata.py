"""Dagster metadata of the report asset: the same figures as the page, for the Dagster UI.

The Dagster UI (dagster-webserver 1.13) renders Markdown metadata with `data:` allowed as an
image source, so each plot is attached as an SVG data URI in the `plots` entry.
"""

from __future__ import annotations

import base64
from collections import Counter

import dagster as dg

from vscope_pipeline.report.build import WrittenReport
from vscope_pipeline.report.html import PLOT_IDS, PLOT_TITLES
from vscope_pipeline.report.queries import KB_PER_GB, RANKINGS, ReportData

# Plots larger than this are left out of the metadata, because the Dagster instance stores it
# in its event log with every materialization. The HTML file still has them.
MAX_EMBEDDED_SVG_BYTES = 200_000

CHANGE_TYPES = ("created", "changed", "deleted")


def _ranking_table(data: ReportData, plot_id: str, unit: str) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"vm": row.vm, "host": row.host or "", "value": round(row.value, 2)})
            for row in data.rankings.get(plot_id, [])
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("vm", "string"),
                dg.TableColumn("host", "string"),
                dg.TableColumn("value", "float", description=f"sample-weighted average, {unit}"),
            ]
        ),
    )


def _days_to_full_table(data: ReportData) -> dg.TableMetadataValue:
    records = []
    for fill in data.datastores:
        pct = fill.used_pct
        growth = fill.forecast.growth_per_day
        records.append(
            dg.TableRecord(
                {
                    "datastore": fill.name,
                    "used_pct": None if pct is None else round(pct[-1], 1),
                    "growth_gb_per_day": None if growth is None else round(growth / KB_PER_GB, 3),
                    "days_to_full": fill.forecast.status,
                }
            )
        )
    return dg.MetadataValue.table(
        records=records,
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("datastore", "string"),
                dg.TableColumn("used_pct", "float"),
                dg.TableColumn("growth_gb_per_day", "float"),
                dg.TableColumn("days_to_full", "string"),
            ]
        ),
    )


def _plots_markdown(written: WrittenReport) -> str:
    """Return one Markdown image per plot with data, as an SVG data URI, and the others in words."""
    lines = []
    for plot_id in PLOT_IDS:
        title = PLOT_TITLES[plot_id]
        svg = written.svgs.get(plot_id)
        if svg is None:
            lines.append(f"**{title}**: no data in the period.")
            continue
        encoded = svg.encode("utf-8")
        if len(encoded) > MAX_EMBEDDED_SVG_BYTES:
            lines.append(f"**{title}**: too large to attach here, see the HTML file.")
            continue
        uri = "data:image/svg+xml;base64," + base64.b64encode(encoded).decode("ascii")
        lines.append(f"**{title}**\n\n![{title}]({uri})")
    return "\n\n".join(lines)


def report_metadata(written: WrittenReport) -> dict[str, dg.RawMetadataValue]:
    """Return the metadata of one report materialization."""
    data = written.data
    coverage = data.coverage
    changes = Counter(change.change for change in data.changes)
    metadata: dict[str, dg.RawMetadataValue] = {
        "path": dg.MetadataValue.path(str(written.path)),
        "file_bytes": written.bytes_written,
        "first_day": data.first.isoformat(),
        "last_day": data.last.isoformat(),
        "services": dg.MetadataValue.json(data.services),
        "days_with_metrics": len(coverage.days) - len(coverage.missing_days),
        "days_not_loaded": dg.MetadataValue.json(
            [day.isoformat() for day in coverage.missing_days]
        ),
    }
    for ranking in RANKINGS:
        key = ranking.plot_id.replace("-", "_")
        metadata[key] = _ranking_table(data, ranking.plot_id, ranking.unit)
    metadata["days_to_full"] = _days_to_full_table(data)
    for change_type in CHANGE_TYPES:
        metadata[f"inventory_{change_type}"] = changes[change_type]
    metadata["plots"] = dg.MetadataValue.md(_plots_markdown(written))
    return metadata
