"""Write the report of a period of days to an HTML file, replacing the previous one by a rename."""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vscope_pipeline.lake.location import S3Connection
from vscope_pipeline.lake.staging import (
    PRIVATE_MODES,
    FileModes,
    claim_temporary_file,
    make_dirs,
    remove_abandoned,
)
from vscope_pipeline.report.html import render_report
from vscope_pipeline.report.queries import ReportData, read_report_data
from vscope_pipeline.warehouse.duckdb_s3 import MISSING_WAREHOUSE_HINT

log = logging.getLogger(__name__)

REPORTS_DIR = "reports"


class ReportInputError(ValueError):
    """An invalid period or a missing DuckDB file, named in the message with the fix."""


@dataclass(frozen=True)
class WrittenReport:
    """The written file, the figures it shows and the SVG of each plot with data."""

    path: Path
    data: ReportData
    bytes_written: int
    svgs: dict[str, str]


def default_report_path(data_dir: Path, first: dt.date, last: dt.date) -> Path:
    """Return `<data dir>/reports/vscope-report-<first>-<last>.html`."""
    return data_dir / REPORTS_DIR / f"vscope-report-{first}-{last}.html"


def check_report_input(
    database: Path, first: dt.date, last: dt.date, *, bucket_lake: bool = False
) -> None:
    """Raise ReportInputError when `first` is after `last` or `database` does not exist."""
    if first > last:
        raise ReportInputError(
            f"--from {first} is after --to {last}: give the first day of the period, then the last"
        )
    if not database.is_file():
        hint = f" {MISSING_WAREHOUSE_HINT}" if bucket_lake else ""
        raise ReportInputError(
            f"{database} does not exist yet: run `vscope-pipeline ingest --from {first} "
            f"--to {last}` (or `make demo`) first.{hint}"
        )


def write_report(
    database: Path,
    first: dt.date,
    last: dt.date,
    out: Path,
    *,
    modes: FileModes = PRIVATE_MODES,
    generated_at: dt.datetime | None = None,
    s3: S3Connection | None = None,
) -> WrittenReport:
    """Read the days `first..last` from `database` and write the report page to `out`.

    The page is written under a temporary name beside `out` with mode `modes.file`, then
    renamed over it, so a failed run leaves the previous report as it was. Missing folders of
    `out` are created with `modes.folder`. `s3` is the connection to the lake's bucket, None for
    a lake in a folder. Raises ReportInputError for a bad period or a
    missing database, duckdb.Error when a query fails, OSError when the file cannot be written.
    """
    check_report_input(database, first, last, bucket_lake=s3 is not None)
    data = read_report_data(database, first, last, s3)
    rendered = render_report(data, generated_at or dt.datetime.now(dt.UTC))
    encoded = rendered.page.encode("utf-8")
    folder = out.parent
    make_dirs(folder, mode=modes.folder)
    prefix = f".{out.name}."
    remove_abandoned(folder, prefix)
    with claim_temporary_file(folder, prefix, mode=modes.file) as temporary:
        try:
            with open(temporary, "wb") as stream:
                stream.write(encoded)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, modes.file)
            os.replace(temporary, out)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    log.info("wrote the report of %s..%s to %s (%d bytes)", first, last, out, len(encoded))
    return WrittenReport(out, data, len(encoded), rendered.svgs)
