"""The `vscope-pipeline` command."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

import duckdb

from vscope_pipeline.cli_help import command_help, exit_codes
from vscope_pipeline.progress import (
    DEFAULT_INTERVAL_SECONDS,
    add_progress_argument,
    start_progress,
)
from vscope_pipeline.report.command import add_report_parser, run_report
from vscope_pipeline.settings import SettingsError, load_data_dir, load_lake, load_settings
from vscope_pipeline.status import STATUS_FORMATS, build_status, render_json, render_table
from vscope_pipeline.textable import format_csv, format_json, format_markdown, format_table
from vscope_pipeline.warehouse.duckdb_s3 import (
    MISSING_WAREHOUSE_HINT,
    HttpfsUnavailableError,
    prepare_session,
)

log = logging.getLogger("vscope_pipeline")

DEFAULT_DAGSTER_HOME = Path(".dagster_home")
DUCKDB_FILE = "vscope.duckdb"

SQL_FORMATS = ("table", "csv", "json", "markdown")
# Rows a table or Markdown result shows when --max-rows is not given, because people read them
# on a terminal. CSV and JSON are exports, so they get every row by default.
DEFAULT_MAX_ROWS = 50


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid day: use an existing date written YYYY-MM-DD"
        ) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: use 0 to 65535")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vscope-pipeline",
        description="Copy OVHcloud vScope inventory and metrics into Parquet and DuckDB.",
        epilog="`vscope-pipeline COMMAND --help` describes each command.\n\n"
        + exit_codes("a run or a check failed (see each command)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser(
        "ingest",
        **command_help(
            "ingest an inclusive range of UTC days through Dagster",
            "Ingest the inventory, every metric and the DuckDB file for each UTC day from "
            "--from to --to, through the Dagster instance in $DAGSTER_HOME, --days-per-run days "
            "per run. Shows progress while it works, then each run's outcome and checks.",
            [
                "vscope-pipeline ingest --from 2026-11-01 --to 2026-11-30",
                "vscope-pipeline ingest --simulator --from 2026-12-01 --to 2026-12-02",
            ],
            "a Dagster run failed; the days of earlier runs are stored",
        ),
    )
    ingest.add_argument(
        "--from",
        dest="first",
        type=_day,
        required=True,
        help="first UTC day, YYYY-MM-DD (required)",
    )
    ingest.add_argument(
        "--to", dest="last", type=_day, required=True, help="last UTC day, YYYY-MM-DD (required)"
    )
    ingest.add_argument(
        "--simulator",
        action="store_true",
        help="run against the embedded simulator on 127.0.0.1 instead of OVHcloud (default: off)",
    )
    ingest.add_argument(
        "--days-per-run",
        type=_positive,
        default=7,
        help="days fetched by one Dagster run (default %(default)s)",
    )
    add_progress_argument(ingest)

    sql = commands.add_parser(
        "sql",
        **command_help(
            "run a read-only SQL query on the DuckDB file",
            "Run a SQL query on $VSCOPE_DATA_DIR/vscope.duckdb, opened read-only, and print "
            "the result. Reads VSCOPE_DATA_DIR, and VSCOPE_LAKE_URL with the VSCOPE_S3_* "
            "settings when the lake is in a bucket.",
            [
                'vscope-pipeline sql "SELECT count(*) FROM vms"',
                'vscope-pipeline sql --format csv "SELECT * FROM metric_catalog" > catalog.csv',
            ],
            "the output stream closed early (a pipe to `head`, say)",
        ),
    )
    sql.add_argument(
        "query", help="the SQL statement; of several, the last one's result is printed"
    )
    sql.add_argument(
        "--max-rows",
        type=_positive,
        default=None,
        help=f"rows printed at most (default {DEFAULT_MAX_ROWS} for table and markdown, "
        "every row for csv and json)",
    )
    sql.add_argument(
        "--format",
        choices=SQL_FORMATS,
        default="table",
        help="output format: an aligned text table (default), RFC 4180 CSV with a header row, "
        "a JSON array of objects, or a GitHub Markdown table",
    )

    simulate = commands.add_parser(
        "simulate",
        **command_help(
            "run the simulator alone until Ctrl-C or SIGTERM",
            "Serve the simulated OVH APIv6 and OpenTSDB on 127.0.0.1 and print their URLs, "
            "credentials and the variables that point the pipeline at them.",
            ["vscope-pipeline simulate --ovh-port 0 --opentsdb-port 0 --vm-count 200"],
            "not used: a stop by Ctrl-C or SIGTERM exits 0",
        ),
    )
    simulate.add_argument(
        "--ovh-port",
        type=_port,
        default=8000,
        help="APIv6 port on 127.0.0.1, 0 for any free port (default %(default)s)",
    )
    simulate.add_argument(
        "--opentsdb-port",
        type=_port,
        default=4242,
        help="OpenTSDB port on 127.0.0.1, 0 for any free port (default %(default)s)",
    )
    simulate.add_argument(
        "--vm-count", type=_positive, default=60, help="VMs in the fleet (default %(default)s)"
    )

    status = commands.add_parser(
        "status",
        **command_help(
            "show the days loaded per service and metric, gaps, the last run and freshness",
            "Read the lake, the DuckDB file and the Dagster instance in $DAGSTER_HOME, and show "
            "the days loaded per service and metric as ranges, the missing days, the inventory "
            "snapshots, the last Dagster run, whether yesterday is loaded (against "
            "VSCOPE_FRESHNESS_HOUR) and the sizes. Writes nothing.",
            ["vscope-pipeline status", "vscope-pipeline status --format json | jq .freshness"],
            "the output stream closed early (a pipe to `head`, say); a late day is reported "
            "in the output, not by the exit code",
        ),
    )
    status.add_argument(
        "--format",
        choices=STATUS_FORMATS,
        default="table",
        help="output format: aligned text (default) or one JSON object for scripts",
    )

    doctor = commands.add_parser(
        "doctor",
        **command_help(
            "check the settings, clock, access rules, metrics token, OpenTSDB and the lake",
            "Check the configuration, the clock against OVH's GET /auth/time, the consumer "
            "key's access rules (GET /auth/currentCredential), the metrics token route of "
            "each service, one small OpenTSDB query and the data folder. With VSCOPE_LAKE_URL, "
            "also list the bucket, test its conditional PUTs and read it through DuckDB, with "
            "one small probe object under <prefix>/_doctor/ that is deleted again when the key "
            "may delete. Prints OK, WARN or FAIL per check, and the fix of each failure.",
            ["vscope-pipeline doctor", "vscope-pipeline doctor --simulator"],
            "a check failed",
        ),
    )
    doctor.add_argument(
        "--simulator",
        action="store_true",
        help="check against the embedded simulator on 127.0.0.1 instead of OVHcloud (default: off)",
    )

    dev = commands.add_parser(
        "dev",
        **command_help(
            "open the Dagster web UI (dagster dev) against the simulator",
            "Start the simulator and `dagster dev` on 127.0.0.1 with this repository's "
            "workspace, until Ctrl-C. Run it from the repository's top folder.",
            ["vscope-pipeline dev --port 3001"],
            "dagster dev exited with an error",
        ),
    )
    dev.add_argument(
        "--port", type=_port, default=3000, help="web UI port on 127.0.0.1 (default %(default)s)"
    )

    demo = commands.add_parser(
        "demo",
        **command_help(
            "ingest the last 2 complete days from the simulator and print a summary",
            "Start the simulator, ingest the last --days complete UTC days into "
            "$VSCOPE_DATA_DIR, then print the rows per table and example queries.",
            ["vscope-pipeline demo --days 3"],
            "a Dagster run failed",
        ),
    )
    demo.add_argument(
        "--days", type=_positive, default=2, help="complete days to ingest (default %(default)s)"
    )
    add_progress_argument(demo)
    add_report_parser(commands)
    # A usage error in a command's options prints that command's usage, not the list of commands.
    for command_parser in commands.choices.values():
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def _run_ingest(
    first: dt.date,
    last: dt.date,
    *,
    simulator: bool,
    days_per_run: int,
    progress_interval: float = DEFAULT_INTERVAL_SECONDS,
) -> tuple[int, Path]:
    """Ingest [first, last]; return the exit status and the DuckDB path.

    The day range is checked before anything starts, and the settings before the Dagster
    instance is created, so that a mistake costs no simulator, instance folder or request.
    """
    import dagster as dg

    from vscope_pipeline.check_summary import summarize_checks
    from vscope_pipeline.ingest import (
        IngestRangeError,
        ensure_dagster_home,
        ingest_range,
        last_complete_day,
        validate_range,
    )
    from vscope_pipeline.settings import load_start_date

    # Without the simulator, which sets the OVH variables later, every setting is checked here,
    # so that one message lists every problem, VSCOPE_START_DATE's included.
    settings = None if simulator else load_settings()
    start_date = load_start_date() if settings is None else settings.start_date
    try:
        validate_range(first, last, start_date=start_date, latest=last_complete_day())
    except IngestRangeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2, load_data_dir() / DUCKDB_FILE

    with ExitStack() as stack:
        if simulator:
            _start_simulator(stack)
        settings = settings or load_settings()
        ensure_dagster_home(DEFAULT_DAGSTER_HOME)
        instance = stack.enter_context(dg.DagsterInstance.get())
        progress = start_progress(first, last, settings, progress_interval)
        try:
            with progress.quiet_logs():
                outcomes = ingest_range(
                    first,
                    last,
                    instance=instance,
                    days_per_run=days_per_run,
                    # On a terminal the progress line replaces the per-metric-day log lines.
                    log_level="WARNING" if progress.terminal else "INFO",
                    on_event=progress.on_event,
                )
        except IngestRangeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2, settings.duckdb_path
        finally:
            progress.finish()

        for outcome in outcomes:
            status = "succeeded" if outcome.success else "FAILED"
            print(f"run {outcome.run_id} {outcome.first_day}..{outcome.last_day}: {status}")
            print(f"  {summarize_checks(instance, outcome.run_id).describe()}")
            if outcome.error:
                print(f"  {outcome.error}", file=sys.stderr)
    failed = any(not outcome.success for outcome in outcomes)
    return (1 if failed else 0), settings.duckdb_path


def _start_simulator(stack: ExitStack) -> None:
    """Start the simulator and point the settings at it until `stack` closes."""
    from vscope_pipeline.ingest import environment
    from vscope_pipeline.simulator.runner import running_simulator

    simulator = stack.enter_context(running_simulator())
    overrides = simulator.environment()
    # The simulator signs with application keys, so a service account of the environment is
    # set aside until the stack closes: python-ovh refuses both at once.
    set_aside = [name for name in ("OVH_CLIENT_ID", "OVH_CLIENT_SECRET") if name in os.environ]
    replaced = sorted({name for name in overrides if os.environ.get(name)} | set(set_aside))
    if replaced:
        print(f"note: --simulator replaces {', '.join(replaced)} from the environment")
    for name in set_aside:
        stack.callback(os.environ.__setitem__, name, os.environ.pop(name))
    stack.enter_context(environment(overrides))
    print(f"simulator: OVH APIv6 {simulator.ovh_endpoint}, OpenTSDB {simulator.opentsdb_url}")


def _cmd_ingest(args: argparse.Namespace) -> int:
    code, _ = _run_ingest(
        args.first,
        args.last,
        simulator=args.simulator,
        days_per_run=args.days_per_run,
        progress_interval=args.progress_interval,
    )
    return code


def _cmd_demo(args: argparse.Namespace) -> int:
    from vscope_pipeline.demo import render_summary
    from vscope_pipeline.ingest import last_complete_day

    last = last_complete_day()
    first = last - dt.timedelta(days=args.days - 1)
    code, database = _run_ingest(
        first,
        last,
        simulator=True,
        days_per_run=args.days,
        progress_interval=args.progress_interval,
    )
    if code == 0:
        print()
        print(render_summary(database))
    return code


def _cmd_sql(args: argparse.Namespace) -> int:
    if not args.query.strip():
        print("error: the query is empty: give a SQL statement such as 'SELECT 1'", file=sys.stderr)
        return 2
    data_dir, bucket = load_lake()
    database = data_dir / DUCKDB_FILE
    if not database.exists():
        hint = f" {MISSING_WAREHOUSE_HINT}" if bucket else ""
        print(
            f"error: {database} does not exist yet: run `vscope-pipeline ingest` "
            f"(or `make demo`) first.{hint}",
            file=sys.stderr,
        )
        return 2
    max_rows = args.max_rows
    if max_rows is None and args.format in ("table", "markdown"):
        max_rows = DEFAULT_MAX_ROWS
    with duckdb.connect(str(database), read_only=True) as con:
        try:
            # A lake in a bucket needs httpfs and this session's own S3 secret.
            prepare_session(con, bucket.connection if bucket else None)
        except HttpfsUnavailableError as error:
            # The inventory tables are in the file itself and stay readable.
            print(
                f"warning: {error} Until then, queries that read the metric views fail.",
                file=sys.stderr,
            )
        # Partition days are UTC days, so times print, and cast to dates, in UTC too.
        con.execute("SET TimeZone = 'UTC'")
        try:
            cursor = con.execute(args.query)
        except duckdb.Error as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if cursor is None or cursor.description is None:
            _print_note("(the statement returned no result set)", args.format)
            return 0
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
    truncated = max_rows is not None and len(rows) > max_rows
    _print_result(args.format, columns, rows[:max_rows] if truncated else rows)
    if not rows:
        _print_note("(0 rows)", args.format)
    if truncated:
        _print_note(
            f"(only the first {max_rows} rows are shown; raise --max-rows for more)", args.format
        )
    return 0


def _print_result(output_format: str, columns: list[str], rows: list[tuple[object, ...]]) -> None:
    if output_format == "csv":
        # The CSV text carries its own CRLF line ends.
        _write_all(format_csv(columns, rows))
    elif output_format == "json":
        print(format_json(columns, rows))
    elif output_format == "markdown":
        print(format_markdown(columns, rows))
    else:
        print(format_table(columns, rows))


def _write_all(text: str) -> None:
    """Write `text` to stdout whole, or raise BrokenPipeError if the reader went away.

    A pipe whose reader closes during one large write() makes the call return the bytes
    written so far, and Python's buffered stdout then drops the rest without an error. Writing
    to the file descriptor in a loop turns that into EPIPE on the next call.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        # A stream with no descriptor, such as a test's captured output.
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    remaining = memoryview(text.encode(sys.stdout.encoding or "utf-8"))
    while remaining:
        remaining = remaining[os.write(descriptor, remaining) :]


def _print_note(note: str, output_format: str) -> None:
    """Print a note for the reader: beside a table, or on stderr so that exports stay parsable."""
    print(note, file=sys.stdout if output_format == "table" else sys.stderr)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from vscope_pipeline.simulator.runner import running_simulator

    with ExitStack() as stack:
        try:
            simulator = stack.enter_context(
                running_simulator(
                    ovh_port=args.ovh_port,
                    opentsdb_port=args.opentsdb_port,
                    vm_count=args.vm_count,
                )
            )
        except OSError as error:
            print(
                f"error: failed to start the simulator on 127.0.0.1: {error}: choose free ports "
                "with --ovh-port and --opentsdb-port (0 picks any free port)",
                file=sys.stderr,
            )
            return 2
        except ValueError as error:
            # The fleet rejects a VM count outside the range it can lay out.
            print(f"error: failed to start the simulator: {error}", file=sys.stderr)
            return 2

        stop = threading.Event()
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stack.callback(signal.signal, signal.SIGTERM, previous_handler)
        print(f"OVH APIv6:  {simulator.ovh_endpoint}")
        print(f"OpenTSDB:   {simulator.opentsdb_url}/api/query")
        print(f"metrics token (simulator only): {simulator.credentials.metrics_token}")
        print("Point the pipeline at it with:")
        for name, value in simulator.environment().items():
            print(f"  export {name}={value}")
        print("Press Ctrl-C to stop.", flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _cmd_dev(args: argparse.Namespace) -> int:
    from vscope_pipeline.ingest import ensure_dagster_home, environment
    from vscope_pipeline.simulator.runner import running_simulator

    workspace = Path("workspace.yaml").resolve()
    if not workspace.exists():
        print(
            f"error: {workspace} not found: run `vscope-pipeline dev` (or `make dev`) from the "
            "repository's top folder",
            file=sys.stderr,
        )
        return 2
    home = ensure_dagster_home(DEFAULT_DAGSTER_HOME)
    overrides = {"VSCOPE_DATA_DIR": str(load_data_dir()), "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    with running_simulator() as simulator, environment({**simulator.environment(), **overrides}):
        print(f"simulator: OVH APIv6 {simulator.ovh_endpoint}, OpenTSDB {simulator.opentsdb_url}")
        print(
            f"Dagster UI starting on http://127.0.0.1:{args.port}; it answers within about a "
            "minute. Ctrl-C stops it.",
            flush=True,
        )
        # dagster dev runs in DAGSTER_HOME so that it finds its instance file there, not the
        # repository's copy in the current folder. It gets a process group of its own so that a
        # stop reaches its web server, daemon and code servers too.
        child = subprocess.Popen(command, cwd=home, start_new_session=True)
        return _wait_for_dagster_dev(child)


# Seconds dagster dev gets to stop after Ctrl-C before SIGTERM, then before SIGKILL. It
# stops its daemon at once but, in Dagster 1.13, can leave its web server and code server
# running for half a minute or more.
DEV_STOP_TERM_AFTER_SECONDS = 5.0
DEV_STOP_GRACE_SECONDS = 12.0


def _wait_for_dagster_dev(child: subprocess.Popen[bytes]) -> int:
    """Wait for dagster dev; on Ctrl-C or SIGTERM, stop its whole process group."""
    stop_requested: list[float] = []

    def request_stop(signum: int, frame: object) -> None:
        if not stop_requested:
            stop_requested.append(time.monotonic())
        with suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while child.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
            waited = time.monotonic() - stop_requested[0] if stop_requested else 0.0
            if len(stop_requested) == 1 and waited > DEV_STOP_TERM_AFTER_SECONDS:
                # dagster dev's web server can linger after Ctrl-C; SIGTERM ends it.
                stop_requested.append(waited)
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
            if waited > DEV_STOP_GRACE_SECONDS:
                log.warning(
                    "dagster dev did not stop within %.0f s: killing it", DEV_STOP_GRACE_SECONDS
                )
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Any failure of dagster dev maps to 1, the exit code of a failed run.
    return 0 if stop_requested or child.returncode == 0 else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from vscope_pipeline.settings import lake_location, load_freshness_hour, load_start_date

    data_dir, bucket = load_lake()
    status = build_status(
        data_dir,
        Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve(),
        start_date=load_start_date(),
        freshness_hour=load_freshness_hour(),
        now=dt.datetime.now(dt.UTC),
        lake=lake_location(data_dir, bucket),
    )
    print(render_json(status) if args.format == "json" else render_table(status))
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from vscope_pipeline.doctor import run_doctor

    with ExitStack() as stack:
        if args.simulator:
            _start_simulator(stack)
        return run_doctor(sys.stdout)


_COMMANDS = {
    "ingest": _cmd_ingest,
    "status": _cmd_status,
    "doctor": _cmd_doctor,
    "sql": _cmd_sql,
    "simulate": _cmd_simulate,
    "demo": _cmd_demo,
    "dev": _cmd_dev,
    "report": run_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Dagster's instance migrations log every step at INFO, which means nothing to a user.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The beta and preview APIs in use (backfill policies, pools) are pinned by uv.lock.
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code = _COMMANDS[args.command](args)
        # Flushed here, so that output cut short by a reader that closed the pipe early gives
        # exit code 1 below, whether or not the last write still fit in the pipe.
        sys.stdout.flush()
        return code
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output went away (`vscope-pipeline sql ... | head`): stop quietly.
        # Python would otherwise report the failed flush of stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
