"""The report page built from figures given directly: escaping of names taken from the data."""

import datetime as dt
import re
import xml.etree.ElementTree as ET

from report_support import figure_html, table_rows

from vscope_pipeline.report.forecast import estimate_days_to_full
from vscope_pipeline.report.html import PLOT_IDS, render_report
from vscope_pipeline.report.queries import (
    Coverage,
    DatastoreFill,
    HostThroughput,
    InventoryChange,
    RankedVm,
    ReportData,
)

DAY = dt.date(2026, 3, 12)
# Names as a fleet may send them: HTML, a matplotlib math formula, a leading underscore.
HOSTILE = ["<script>alert(1)</script>", "$\\undefinedcommand$", "_hidden", 'a "quoted" & name']
HOURS = [dt.datetime(2026, 3, 12, hour, tzinfo=dt.UTC) for hour in range(24)]


def hostile_data() -> ReportData:
    used = [1_000.0 + hour for hour in range(24)]
    seconds = [time.timestamp() for time in HOURS]
    data = ReportData(
        DAY, DAY, ["pcc-1"], Coverage([DAY], missing_days=[], partial_days={}, metrics_expected=20)
    )
    ranked = [RankedVm(name, f"vm-{i}", name, 10.0 - i) for i, name in enumerate(HOSTILE)]
    data.rankings = {plot_id: ranked for plot_id in PLOT_IDS[:3]}
    data.hosts = [HostThroughput(name, HOURS, [1.0] * 24, [2.0] * 24) for name in HOSTILE]
    data.hosts_total = len(HOSTILE)
    data.datastores = [
        DatastoreFill(name, HOURS, used, 2_000.0, estimate_days_to_full(seconds, used, 2_000.0))
        for name in HOSTILE
    ]
    data.changes = [
        InventoryChange(DAY, "VM", "changed", name, f"name x → {name}") for name in HOSTILE
    ]
    return data


def test_hostile_names_escaped():
    rendered = render_report(hostile_data(), dt.datetime(2026, 3, 13, tzinfo=dt.UTC))

    assert "<script>" not in rendered.page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.page
    rows = table_rows(rendered.page, "top-cpu-ready-table")
    assert [row[0] for row in rows] == HOSTILE


def test_hostile_names_drawn_as_text():
    rendered = render_report(hostile_data(), dt.datetime(2026, 3, 13, tzinfo=dt.UTC))

    assert sorted(rendered.svgs) == sorted(PLOT_IDS)
    for plot_id, svg in rendered.svgs.items():
        texts = "".join(ET.fromstring(svg).itertext())
        if plot_id == "inventory-changes":
            # This plot counts changes per kind and draws no names.
            assert "VM" in texts
            continue
        assert "<script>alert(1)</script>" in texts, plot_id
        if plot_id in ("host-nic-throughput", "datastore-fill"):
            # The formula is kept as written and the "_" name stays in the legend.
            assert "$\\undefinedcommand$" in texts, plot_id
            assert "_hidden" in texts, plot_id


def test_every_figure_has_caption():
    page = render_report(hostile_data(), dt.datetime(2026, 3, 13, tzinfo=dt.UTC)).page

    for plot_id in PLOT_IDS:
        figure = figure_html(page, plot_id)
        assert re.search(r"<figcaption>[^<]+</figcaption>", figure), plot_id
