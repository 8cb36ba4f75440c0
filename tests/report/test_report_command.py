"""`vscope-pipeline report` on two days ingested from the simulator."""

import datetime as dt
import os
import re
import stat
from pathlib import Path

import duckdb
import pytest
from report_support import (
    FIRST_DAY,
    LAST_DAY,
    PATH_WITH_DATA,
    IngestedDays,
    figure_html,
    table_rows,
)

from vscope_pipeline.cli import main
from vscope_pipeline.report.html import PLOT_IDS

pytestmark = pytest.mark.integration

# Half of the last decimal of a value printed with 2 decimals, plus float noise.
ROUNDED_2 = 0.005 + 1e-9

RAW_AVERAGES = """
WITH names AS (
    SELECT service_name, datacenter_label, mo_ref, arg_max(name, valid_from) AS name
    FROM vm_history GROUP BY ALL
)
SELECT coalesce(n.name, p.entity) AS vm, avg(p.value) AS value
FROM metric_points p
LEFT JOIN names n
  ON n.service_name = p.service_name AND n.datacenter_label = p.datacenter
 AND n.mo_ref = p.entity
WHERE list_contains(?, p.metric) AND p.day BETWEEN ? AND ?
GROUP BY ALL
ORDER BY value DESC, vm
LIMIT 10
"""

TOP_TABLES = {
    "top-cpu-ready-table": ["vscope.vm.cpu.ready"],
    "top-disk-latency-table": ["vscope.vm.disk.latency.read", "vscope.vm.disk.latency.write"],
    "top-memory-table": ["vscope.vm.mem.usage.perc"],
}


@pytest.fixture(scope="module")
def report(ingested: IngestedDays) -> Path:
    """Write the report of the two days to its default path."""
    code = main(["report", "--from", str(FIRST_DAY), "--to", str(LAST_DAY)])
    assert code == 0
    return ingested.data_dir / "reports" / f"vscope-report-{FIRST_DAY}-{LAST_DAY}.html"


def test_report_file_is_private(report: Path):
    assert report.is_file()
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    # No temporary file is left beside it; the report asset's test may have written another.
    assert [entry.name for entry in report.parent.iterdir() if entry.name.startswith(".")] == []


def test_report_loads_nothing_from_outside(report: Path):
    page = report.read_text(encoding="utf-8")

    assert "src=" not in page
    assert "@import" not in page
    assert re.findall(r'href="([^"]*)"', page) == [
        link for link in re.findall(r'href="([^"]*)"', page) if link.startswith("#")
    ]
    assert re.findall(r"url\((?!#)", page) == []
    # The only URLs are the XML namespace names of the inline SVGs, which load nothing.
    urls = set(re.findall(r"https?://[^\s\"'<>]*", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_every_plot_drawn(report: Path):
    page = report.read_text(encoding="utf-8")

    for plot_id in PLOT_IDS:
        figure = figure_html(page, plot_id)
        assert figure, f"no figure.plot#{plot_id}"
        assert "<svg" in figure, plot_id
        assert len(PATH_WITH_DATA.findall(figure)) > 3, plot_id
        assert "<figcaption>" in figure, plot_id
        assert "no-data" not in figure, plot_id


def test_top_vm_tables_match_raw_points(ingested: IngestedDays, report: Path):
    page = report.read_text(encoding="utf-8")

    with duckdb.connect(str(ingested.database), read_only=True) as con:
        for table_id, metrics in TOP_TABLES.items():
            expected = con.execute(RAW_AVERAGES, [metrics, FIRST_DAY, LAST_DAY]).fetchall()
            rows = table_rows(page, table_id)
            assert len(rows) == 10, table_id
            assert [row[0] for row in rows] == [vm for vm, _ in expected], table_id
            for row, (vm, value) in zip(rows, expected, strict=True):
                assert abs(float(row[2]) - value) <= ROUNDED_2, (table_id, vm)


def test_header_names_period_and_service(report: Path):
    page = report.read_text(encoding="utf-8")

    assert "<dd>pcc-203-0-113-10</dd>" in page
    assert f"<dd>{FIRST_DAY} to {LAST_DAY} (2 UTC days)</dd>" in page
    assert '<p id="data-coverage">2 of 2 days have metrics.</p>' in page


def test_days_to_full_for_every_datastore(report: Path):
    rows = table_rows(report.read_text(encoding="utf-8"), "days-to-full")

    assert sorted(row[0] for row in rows) == [
        "pcc-000441",
        "pcc-000444",
        "pcc-000447",
        "pcc-000450",
        "pcc-000453",
    ]
    for row in rows:
        assert re.fullmatch(r"[\d,]+ days|not filling", row[5]), row


def test_inventory_changes_listed(report: Path):
    rows = table_rows(report.read_text(encoding="utf-8"), "inventory-changes-table")

    # The first day only starts the history, so the changes are those of the second day.
    assert rows == [
        [str(LAST_DAY), "VM", "deleted", "ci-01", ""],
        [str(LAST_DAY), "host", "changed", "198.51.100.16", "in_maintenance False → True"],
    ]


def test_missing_day_named_in_header(ingested: IngestedDays, tmp_path: Path):
    out = tmp_path / "missing.html"
    before = FIRST_DAY - dt.timedelta(days=1)

    code = main(["report", "--from", str(before), "--to", str(LAST_DAY), "--out", str(out)])

    assert code == 0
    page = out.read_text(encoding="utf-8")
    assert (
        f'<p id="data-coverage" class="warning">2 of 3 days have metrics. Not loaded: {before}. '
        "Plots and tables leave these days out; run `vscope-pipeline ingest --from "
        f"{before} --to {LAST_DAY}` to load them.</p>"
    ) in page


def test_period_without_data_says_so(ingested: IngestedDays, tmp_path: Path):
    out = tmp_path / "empty.html"

    code = main(["report", "--from", "2026-01-01", "--to", "2026-01-02", "--out", str(out)])

    assert code == 0
    page = out.read_text(encoding="utf-8")
    assert "0 of 2 days have metrics. Not loaded: 2026-01-01, 2026-01-02." in page
    for plot_id in PLOT_IDS:
        figure = figure_html(page, plot_id)
        assert 'class="plot no-data"' in figure, plot_id
        assert '<p class="no-data">No data: ' in figure, plot_id
        assert "<svg" in figure, plot_id


def test_invalid_day_rejected(ingested: IngestedDays, capsys: pytest.CaptureFixture[str]):
    code = main(["report", "--from", "2026-02-30", "--to", str(LAST_DAY)])

    assert code == 2
    assert capsys.readouterr().err == (
        "error: --from '2026-02-30' is not a valid day: use an existing date written YYYY-MM-DD\n"
    )


def test_reversed_period_rejected(ingested: IngestedDays, capsys: pytest.CaptureFixture[str]):
    code = main(["report", "--from", str(LAST_DAY), "--to", str(FIRST_DAY)])

    assert code == 2
    assert capsys.readouterr().err == (
        f"error: --from {LAST_DAY} is after --to {FIRST_DAY}: give the first day of the "
        "period, then the last\n"
    )


def test_missing_database_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    data_dir = tmp_path / "no-data"
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))

    code = main(["report", "--from", str(FIRST_DAY), "--to", str(LAST_DAY)])

    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {data_dir / 'vscope.duckdb'} does not exist yet: run `vscope-pipeline ingest "
        f"--from {FIRST_DAY} --to {LAST_DAY}` (or `make demo`) first.\n"
    )
    assert not data_dir.exists()


def test_unwritable_output_keeps_folder_clean(
    ingested: IngestedDays, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # A folder where the file should go: the rename over it fails.
    out = tmp_path / "report.html"
    out.mkdir()

    code = main(["report", "--from", str(FIRST_DAY), "--to", str(LAST_DAY), "--out", str(out)])

    assert code == 1
    assert capsys.readouterr().err.startswith(f"error: failed to write the report to {out}: ")
    assert out.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["report.html"]
