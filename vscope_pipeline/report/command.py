"""The `vscope-pipeline report` command: its arguments and what it runs."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from vscope_pipeline.cli_help import command_help

DUCKDB_FILE = "vscope.duckdb"


def add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `report` sub-command to the command's sub-parsers."""
    report = commands.add_parser(
        "report",
        **command_help(
            "write an HTML report with plots of an inclusive range of UTC days",
            "Write one HTML page of plots of the metrics of the days from --from to --to, "
            "read from $VSCOPE_DATA_DIR/vscope.duckdb.",
            ["vscope-pipeline report --from 2026-11-01 --to 2026-11-30"],
            "writing the report failed",
        ),
    )
    report.add_argument(
        "--from", dest="first", required=True, help="first UTC day, YYYY-MM-DD (required)"
    )
    report.add_argument(
        "--to", dest="last", required=True, help="last UTC day, YYYY-MM-DD (required)"
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="HTML file to write, its missing folders created (default "
        "<data dir>/reports/vscope-report-FROM-TO.html)",
    )


def _parse_day(option: str, text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        print(
            f"error: {option} {text!r} is not a valid day: use an existing date written YYYY-MM-DD",
            file=sys.stderr,
        )
        return None


def run_report(args: argparse.Namespace) -> int:
    """Write the report; return 0 when written, 2 for bad input, 1 when writing it failed."""
    import duckdb

    from vscope_pipeline.report.build import (
        ReportInputError,
        default_report_path,
        write_report,
    )
    from vscope_pipeline.settings import load_file_modes, load_lake
    from vscope_pipeline.warehouse.duckdb_s3 import HttpfsUnavailableError

    first = _parse_day("--from", args.first)
    last = _parse_day("--to", args.last)
    if first is None or last is None:
        return 2
    data_dir, bucket = load_lake()
    modes = load_file_modes()
    out = args.out if args.out is not None else default_report_path(data_dir, first, last)
    try:
        written = write_report(
            data_dir / DUCKDB_FILE,
            first,
            last,
            out.resolve(),
            modes=modes,
            s3=bucket.connection if bucket else None,
        )
    except (ReportInputError, HttpfsUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (duckdb.Error, OSError) as error:
        print(f"error: failed to write the report to {out}: {error}", file=sys.stderr)
        return 1
    coverage = written.data.coverage
    loaded = len(coverage.days) - len(coverage.missing_days)
    print(f"report written to {written.path}")
    print(f"  {loaded} of {len(coverage.days)} days have metrics")
    return 0
