"""The `vscope-pipeline` command: sql, argument and settings errors, simulate, demo summary."""

import contextlib
import datetime as dt
import errno
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import requests

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.cli import _start_simulator, main
from vscope_pipeline.demo import EXAMPLE_QUERIES, render_summary
from vscope_pipeline.lake.layout import inventory_partition_dir, metric_partition_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.warehouse import duckdb_s3
from vscope_pipeline.warehouse.build import build_warehouse

KEYS_HELP = (
    "create keys at https://eu.api.ovh.com/createToken/ (or the ca/us equivalent) or set them in "
    "ovh.conf; a service account uses OVH_CLIENT_ID and OVH_CLIENT_SECRET instead, and "
    "`vscope-pipeline ingest --simulator` needs none"
)
SERVICE = "pcc-203-0-113-10"
DC1 = f"{SERVICE}_datacenter1"
DAY = dt.date(2026, 11, 19)
# Seconds the simulate subprocess gets to print its URLs, and then to exit after SIGTERM.
STARTUP_TIMEOUT = 30.0
# Seconds `dagster dev` gets to serve its UI; it starts a code server first.
DEV_STARTUP_TIMEOUT = 150.0
STOP_TIMEOUT = 5.0


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Run the command in an empty folder, with no OVH or vScope variable set."""
    for name in list(os.environ):
        if name.startswith(("OVH_", "VSCOPE_")):
            monkeypatch.delenv(name)
    folder = tmp_path / "data"
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(folder))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.fixture
def warehouse(data_dir) -> Path:
    """Build a DuckDB file with the metric catalogue and no inventory or metric."""
    return build_warehouse(data_dir, BUILTIN_METRICS).path


def _duckdb_error(database: Path, sql: str) -> str:
    with (
        duckdb.connect(str(database), read_only=True) as con,
        pytest.raises(duckdb.Error) as raised,
    ):
        con.execute(sql)
    return str(raised.value)


def test_sql_missing_database(data_dir, capsys):
    assert main(["sql", "SELECT 1"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {data_dir / 'vscope.duckdb'} does not exist yet: run `vscope-pipeline ingest` "
        "(or `make demo`) first.\n"
    )


def _point_lake_at_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the settings of a lake in a bucket at an endpoint where nothing listens."""
    for name, value in {
        "VSCOPE_LAKE_URL": "s3://acme-vscope/lake",
        "VSCOPE_S3_ENDPOINT": "http://127.0.0.1:9",
        "VSCOPE_S3_REGION": "gra",
        "VSCOPE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "VSCOPE_S3_SECRET_ACCESS_KEY": "example-secret-key",
    }.items():
        monkeypatch.setenv(name, value)


def test_sql_missing_database_bucket_hint(data_dir, monkeypatch, capsys):
    _point_lake_at_bucket(monkeypatch)

    assert main(["sql", "SELECT 1"]) == 2

    assert capsys.readouterr().err == (
        f"error: {data_dir / 'vscope.duckdb'} does not exist yet: run `vscope-pipeline ingest` "
        "(or `make demo`) first. With the lake in a bucket, ingest builds it only where DuckDB "
        "can load its httpfs extension: `vscope-pipeline doctor` checks that.\n"
    )


@pytest.mark.parametrize("output_format", ["csv", "table"])
def test_sql_reader_closing_early_exits_1(warehouse, output_format):
    # Megabytes in one write, so a reader that closes after 10 bytes cuts that write short.
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vscope_pipeline.cli",
            "sql",
            "--format",
            output_format,
            "--max-rows",
            "300000",
            "SELECT range AS n FROM range(300000)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    child.stdout.read(10)
    child.stdout.close()

    _, stderr = child.communicate(timeout=60)

    assert child.returncode == 1
    assert stderr == b""


def test_sql_without_httpfs_reads_tables(warehouse, monkeypatch, capsys):
    _point_lake_at_bucket(monkeypatch)
    # A closed loopback port, so that the download of httpfs fails without leaving this machine.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setattr(
        duckdb_s3, "INSTALL_HTTPFS", f"INSTALL httpfs FROM 'http://127.0.0.1:{port}'"
    )

    assert main(["sql", "--format", "csv", "SELECT count(*) AS metrics FROM metric_catalog"]) == 0

    captured = capsys.readouterr()
    assert captured.out == f"metrics\r\n{len(BUILTIN_METRICS)}\r\n"
    assert captured.err.startswith("warning: failed to load DuckDB's httpfs extension")
    assert captured.err.endswith(" Until then, queries that read the metric views fail.\n")
    assert "example-secret-key" not in captured.err


def test_sql_needs_no_api_keys(warehouse, capsys):
    assert main(["sql", "SELECT count(*) AS metrics FROM metric_catalog"]) == 0

    captured = capsys.readouterr()
    assert captured.out == "metrics\n-------\n     20\n"
    assert captured.err == ""


def test_sql_bad_statement(warehouse, capsys):
    query = "SELECT nope FROM metric_catalog"

    assert main(["sql", query]) == 2

    captured = capsys.readouterr()
    message = _duckdb_error(warehouse, query)
    assert message.startswith('Binder Error: Referenced column "nope" not found')
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""


def test_sql_rejects_writes(warehouse, capsys):
    query = "DROP TABLE metric_catalog"

    assert main(["sql", query]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        'error: Invalid Input Error: Cannot execute statement of type "DROP" on database '
        '"vscope" which is attached in read-only mode!\n'
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metric_catalog").fetchall() == [(20,)]


def test_sql_empty_query(warehouse, capsys):
    assert main(["sql", "  "]) == 2

    captured = capsys.readouterr()
    assert captured.err == "error: the query is empty: give a SQL statement such as 'SELECT 1'\n"


def test_sql_empty_result_says_so(warehouse, capsys):
    assert main(["sql", "SELECT metric FROM metric_catalog WHERE false"]) == 0

    assert capsys.readouterr().out == "metric\n------\n(0 rows)\n"


def test_sql_comment_only(warehouse, capsys):
    assert main(["sql", "-- nothing to run"]) == 0

    assert capsys.readouterr().out == "(the statement returned no result set)\n"


def test_sql_max_rows_truncates(warehouse, capsys):
    query = "SELECT metric, unit FROM metric_catalog ORDER BY metric"

    assert main(["sql", query, "--max-rows", "2"]) == 0

    assert capsys.readouterr().out == (
        "metric                                 unit\n"
        "-------------------------------------  ----\n"
        "vscope.filer.datastore.diskspace.used  kB\n"
        "vscope.host.cpu.usage.perc             %\n"
        "(only the first 2 rows are shown; raise --max-rows for more)\n"
    )


def test_sql_exactly_max_rows_no_note(warehouse, capsys):
    query = "SELECT metric FROM metric_catalog ORDER BY metric LIMIT 2"

    assert main(["sql", query, "--max-rows", "2"]) == 0

    assert capsys.readouterr().out == (
        "metric\n"
        "-------------------------------------\n"
        "vscope.filer.datastore.diskspace.used\n"
        "vscope.host.cpu.usage.perc\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sql", "SELECT 1", "--max-rows", "0"],
            "argument --max-rows: '0' is not a positive integer",
        ),
        (
            ["ingest", "--from", "2026-13-01", "--to", "2026-11-19"],
            "argument --from: '2026-13-01' is not a valid day: "
            "use an existing date written YYYY-MM-DD",
        ),
        (
            ["simulate", "--ovh-port", "65536"],
            "argument --ovh-port: '65536' is not a TCP port: use 0 to 65535",
        ),
    ],
)
def test_bad_argument_exits_2(data_dir, capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        main(argv)

    assert raised.value.code == 2
    assert capsys.readouterr().err.endswith(f" error: {message}\n")


@pytest.mark.parametrize("command", ["status", "sql", "doctor", "report"])
def test_unknown_option_shows_command_usage(data_dir, capsys, command):
    with pytest.raises(SystemExit) as raised:
        main([command, "--bogus"])

    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: vscope-pipeline {command} ")
    assert f"vscope-pipeline {command}: error: " in err


def _range_cases() -> list[tuple[str, str, str]]:
    today = dt.datetime.now(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    return [
        (
            "2026-11-20",
            "2026-11-19",
            "--from 2026-11-20 is after --to 2026-11-19: give the earlier day first",
        ),
        (
            yesterday.isoformat(),
            today.isoformat(),
            f"--to {today} is not a complete UTC day yet: the last complete day is {yesterday}",
        ),
        (
            "2024-12-31",
            "2025-01-02",
            "--from 2024-12-31 is before the first partition 2025-01-01: set "
            "VSCOPE_START_DATE=2024-12-31 (or earlier) to ingest it",
        ),
    ]


@pytest.mark.parametrize(("first", "last", "message"), _range_cases())
def test_ingest_bad_range_sends_nothing(
    data_dir, tmp_path, monkeypatch, capsys, first, last, message
):
    with running_simulator(vm_count=3) as simulator:
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)

        assert main(["ingest", "--from", first, "--to", last]) == 2

        assert simulator.ovh_server.server.counters.count() == 0
        assert simulator.opentsdb_server.server.counters.snapshot().requests == 0
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""
    assert not (tmp_path / "dagster_home").exists()
    assert not data_dir.exists()


def test_ingest_bad_range_starts_no_simulator(data_dir, capsys):
    assert main(["ingest", "--from", "2026-11-20", "--to", "2026-11-19", "--simulator"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: --from 2026-11-20 is after --to 2026-11-19: give the earlier day first\n"
    )


def test_ingest_without_keys_lists_them(data_dir, tmp_path, capsys):
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()

    assert main(["ingest", "--from", yesterday, "--to", yesterday]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        "error: invalid configuration (1 problem):\n"
        "  - OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY are missing: "
        f"{KEYS_HELP}\n"
    )
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not (tmp_path / "dagster_home").exists()


def test_simulate_too_few_vms(data_dir, capsys):
    assert main(["simulate", "--ovh-port", "0", "--opentsdb-port", "0", "--vm-count", "2"]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        "error: failed to start the simulator: vm_count 2 is out of range: expected 3 to 2440 "
        "(the fleet needs 3 VMs for its scripted events and has one /24 of host addresses)\n"
    )
    assert captured.out == ""


def test_simulate_port_in_use(data_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        code = main(["simulate", "--ovh-port", str(port), "--opentsdb-port", "0"])

    assert code == 2
    in_use = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: failed to start the simulator on 127.0.0.1: {in_use}: "
        "choose free ports with --ovh-port and --opentsdb-port (0 picks any free port)\n"
    )
    assert captured.out == ""


def _lines_until(stream, last_line: str, timeout: float) -> list[str]:
    """Read lines from `stream` until `last_line`, in a thread so that a silent child cannot
    block the test past `timeout` seconds."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    received: list[str] = []
    while not received or received[-1] != last_line:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        if line is None:
            break
        received.append(line)
    return received


def test_simulate_serves_until_sigterm(data_dir):
    command = [sys.executable, "-m", "vscope_pipeline.cli", "simulate", "--ovh-port", "0"]
    command += ["--opentsdb-port", "0", "--vm-count", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines_until(process.stdout, "Press Ctrl-C to stop.", STARTUP_TIMEOUT)

        assert len(lines) == 11, lines
        ovh = re.fullmatch(r"OVH APIv6:  (http://127\.0\.0\.1:\d+/1\.0)", lines[0])
        tsdb = re.fullmatch(r"OpenTSDB:   (http://127\.0\.0\.1:\d+)/api/query", lines[1])
        assert ovh is not None, lines[0]
        assert tsdb is not None, lines[1]
        credentials = SimulatorCredentials()
        assert lines[2:] == [
            f"metrics token (simulator only): {credentials.metrics_token}",
            "Point the pipeline at it with:",
            f"  export OVH_ENDPOINT={ovh.group(1)}",
            f"  export OVH_APPLICATION_KEY={credentials.application_key}",
            f"  export OVH_APPLICATION_SECRET={credentials.application_secret}",
            f"  export OVH_CONSUMER_KEY={credentials.consumer_key}",
            f"  export VSCOPE_SERVICE_NAMES={SERVICE}",
            "  export VSCOPE_OPENTSDB_RATE_LIMIT=1000",
            "Press Ctrl-C to stop.",
        ]

        server_time = requests.get(f"{ovh.group(1)}/auth/time", timeout=5)
        assert server_time.status_code == 200
        assert abs(int(server_time.text) - time.time()) < 60
        unauthenticated = requests.post(f"{tsdb.group(1)}/api/query", json={}, timeout=5)
        assert unauthenticated.status_code == 401

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
    assert "Traceback" not in stderr


def test_sql_prints_times_in_utc(warehouse):
    # Days are UTC days, so `ts::DATE` must match `day` whatever the machine's time zone.
    query = "SELECT TIMESTAMPTZ '2026-11-19 23:30:00+00' AS ts, ts::DATE AS day"
    command = [sys.executable, "-m", "vscope_pipeline.cli", "sql", query]

    finished = subprocess.run(
        command,
        env={**os.environ, "TZ": "Asia/Kolkata"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == (
        "ts                         day\n"
        "-------------------------  ----------\n"
        "2026-11-19 23:30:00+00:00  2026-11-19\n"
    )


def _write_inventory(data_dir: Path, kind: str, rows: list[dict]) -> None:
    write_partition(pa.Table.from_pylist(rows), inventory_partition_dir(data_dir, kind, DAY))


def _write_points(data_dir: Path, metric: str, series: list[tuple[str, str, str | None]]) -> None:
    """Write two points per (entity kind, entity, NIC), at 00:00 and 23:00, valued 1, 2, 3..."""
    rows = []
    for kind, entity, nic in series:
        for hour in (0, 23):
            rows.append(
                {
                    "entity_kind": kind,
                    "service_name": SERVICE,
                    "datacenter": DC1,
                    "entity": entity,
                    "nic": nic,
                    "ts": dt.datetime.combine(DAY, dt.time(hour), tzinfo=dt.UTC),
                    "value": float(len(rows) + 1),
                }
            )
    table = pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)
    write_partition(table, metric_partition_dir(data_dir, metric, DAY))


def _write_demo_lake(data_dir: Path) -> None:
    vm = {"service_name": SERVICE, "datacenter_label": DC1}
    _write_inventory(data_dir, "datacenters", [{**vm, "datacenter_id": 1, "name": "dc1"}])
    _write_inventory(data_dir, "hosts", [{**vm, "host_id": 11, "name": "host-1.example"}])
    _write_inventory(
        data_dir,
        "vms",
        [
            {**vm, "vm_id": 101, "mo_ref": "vm-101", "name": "web-01"},
            {**vm, "vm_id": 102, "mo_ref": "vm-102", "name": "db-01"},
        ],
    )
    _write_inventory(
        data_dir,
        "filers",
        [{**vm, "filer_id": 7, "name": "ds-ssd", "size": {"unit": "GB", "value": 3000}}],
    )
    _write_points(
        data_dir, "vscope.vm.cpu.usage.perc", [("vm", "vm-101", None), ("vm", "vm-102", None)]
    )
    _write_points(data_dir, "vscope.host.net.tx", [("host", "host-1.example", "vmnic0")])
    # The last point is 2 GiB, in kB as vScope reports datastore space.
    table = pa.Table.from_pylist(
        [
            {
                "entity_kind": "filer",
                "service_name": SERVICE,
                "datacenter": DC1,
                "entity": "ds-ssd",
                "nic": None,
                "ts": dt.datetime.combine(DAY, dt.time(hour), tzinfo=dt.UTC),
                "value": kilobytes,
            }
            for hour, kilobytes in ((0, 1048576.0), (23, 2097152.0))
        ],
        schema=METRIC_FILE_SCHEMA,
    )
    write_partition(
        table, metric_partition_dir(data_dir, "vscope.filer.datastore.diskspace.used", DAY)
    )


def test_demo_summary_text(data_dir):
    _write_demo_lake(data_dir)
    database = build_warehouse(data_dir, BUILTIN_METRICS).path

    summary = render_summary(database)

    results = [
        "vm      mo_ref  avg_cpu_pct  max_cpu_pct\n"
        "------  ------  -----------  -----------\n"
        "db-01   vm-102          3.5            4\n"
        "web-01  vm-101          1.5            2",
        "host            nic     hour                       avg_tx\n"
        "--------------  ------  -------------------------  ------\n"
        "host-1.example  vmnic0  2026-11-19 23:00:00+00:00       2\n"
        "host-1.example  vmnic0  2026-11-19 00:00:00+00:00       1",
        "datastore  size  size_unit  used_gb\n"
        "---------  ----  ---------  -------\n"
        "ds-ssd     3000  GB               2",
    ]
    sections = [
        f"-- {title}\n{sql.strip()};\n{result}\n"
        for (title, sql), result in zip(EXAMPLE_QUERIES, results, strict=True)
    ]
    assert summary == "\n".join(
        [
            f"DuckDB file: {database}",
            "",
            "Rows per table:",
            "table           rows\n"
            "--------------  ----\n"
            "metric_points      8\n"
            "metric_catalog    20\n"
            "datacenters        1\n"
            "filers             1\n"
            "hosts              1\n"
            "vms                2",
            "",
            "Metrics stored: 3, days 2026-11-19 .. 2026-11-19",
            "",
            *sections,
        ]
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes() -> list[tuple[int, str, int, int]]:
    """Return (pid, state, parent pid, process group) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return found


def _group_alive(group: int) -> bool:
    # A killed process stays a zombie until its new parent reaps it; it runs no code.
    return any(pgrp == group and state != "Z" for _, state, _, pgrp in _processes())


def test_dev_stops_whole_dagster_on_sigterm(data_dir, monkeypatch):
    port = _free_port()
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster_home"))
    repository = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "vscope_pipeline.cli", "dev", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=repository, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + DEV_STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            time.sleep(1)
        else:
            pytest.fail(f"the Dagster UI did not answer on port {port}")
        dagster_group = _dagster_dev_group(process.pid)

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=30) == 0
        assert not _group_alive(dagster_group)
    finally:
        if process.poll() is None:
            process.kill()


def _dagster_dev_group(parent: int) -> int:
    """Return the process group of the `dagster dev` child of `parent`."""
    groups = [pgrp for _, _, ppid, pgrp in _processes() if ppid == parent]
    assert groups, f"no child process of {parent}"
    return groups[0]


def test_simulator_notes_replaced_settings(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("OVH_ENDPOINT", "ftp://x")
    with contextlib.ExitStack() as stack:
        _start_simulator(stack)
        assert os.environ["OVH_ENDPOINT"].startswith("http://127.0.0.1:")
    assert os.environ["OVH_ENDPOINT"] == "ftp://x"
    assert capsys.readouterr().out.startswith(
        "note: --simulator replaces OVH_ENDPOINT from the environment\n"
    )
