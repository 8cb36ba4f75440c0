"""Ingest progress: the counting and timing rules, and the output of a real ingest."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.cli.conftest import COMMAND_TIMEOUT, IngestedLake, command_environment
from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.progress import IngestProgress, format_duration
from vscope_pipeline.simulator.runner import RunningSimulator

DAY = dt.date(2026, 3, 1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(65.4) == "1:05"
    assert format_duration(3725) == "1:02:05"


def test_lines_every_interval() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = IngestProgress(2, 2, stream, terminal=False, interval=10, clock=clock)
    clock.now += 4
    progress.record(DAY, "a", rows=100, requests=2)
    clock.now += 4
    progress.record(DAY, "b", rows=50, requests=1)
    clock.now += 4
    progress.record(DAY + dt.timedelta(days=1), "a", rows=10, requests=1)
    clock.now += 12
    progress.record(DAY + dt.timedelta(days=1), "b", rows=10, requests=1)
    progress.finish()
    assert stream.getvalue().splitlines() == [
        "progress: days 0/2, metric-days 1/4 (25%), points 100, requests 2, elapsed 0:04",
        "progress: days 2/2, metric-days 4/4 (100%), points 170, requests 5, elapsed 0:24",
    ]


def test_finish_prints_unshown_counts() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = IngestProgress(1, 3, stream, terminal=False, interval=60, clock=clock)
    progress.record(DAY, "a", rows=1, requests=1)
    progress.record(DAY, "b", rows=1, requests=1)
    progress.finish()
    assert stream.getvalue().splitlines() == [
        "progress: days 0/1, metric-days 1/3 (33%), points 1, requests 1, elapsed 0:00",
        "progress: days 0/1, metric-days 2/3 (66%), points 2, requests 2, elapsed 0:00, ETA 0:00",
    ]


def test_terminal_rewrites_one_line() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = IngestProgress(1, 2, stream, terminal=True, clock=clock)
    progress.record(DAY, "a", rows=5, requests=1)
    clock.now += 1
    progress.record(DAY, "b", rows=5, requests=1)
    progress.finish()
    assert stream.getvalue() == (
        "\rprogress: days 0/1, metric-days 1/2 (50%), points 5, requests 1, elapsed 0:00\x1b[K"
        "\rprogress: days 1/1, metric-days 2/2 (100%), points 10, requests 2, elapsed 0:01\x1b[K\n"
    )


def _stored_points(data_dir: Path) -> int:
    files = sorted((data_dir / "metrics").glob("metric=*/day=*/data.parquet"))
    return sum(pq.ParquetFile(file).metadata.num_rows for file in files)


def _without_times(line: str) -> str:
    return re.sub(r", elapsed \d+:\d\d(, ETA \d+:\d\d)?$", "", line)


def test_ingest_prints_progress_lines(ingested_lake: IngestedLake) -> None:
    result = ingested_lake.result
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("progress:")]
    assert "\r" not in result.stdout
    assert len(lines) == 60
    assert all(re.search(r", elapsed \d+:\d\d", line) for line in lines)
    # The estimate needs the rate since the first metric-day, so it starts at the second.
    assert ", ETA " not in lines[0]
    assert all(", ETA " in line for line in lines[1:-1])
    counts = [re.search(r"metric-days (\d+)/60", line) for line in lines]
    assert [int(found[1]) for found in counts if found] == list(range(1, 61))
    # One request per metric, datacenter and day: 2 datacenters.
    assert _without_times(lines[-1]) == (
        f"progress: days 3/3, metric-days 60/60 (100%), points "
        f"{_stored_points(ingested_lake.data_dir)}, requests 120"
    )
    assert _without_times(lines[29]).startswith("progress: days 0/3, metric-days 30/60 (50%)")
    assert result.stdout.splitlines()[60].startswith("run ")


def test_ingest_on_terminal_rewrites_line(
    small_simulator: RunningSimulator, tmp_path: Path
) -> None:
    day = last_complete_day()
    environment = command_environment(
        tmp_path / "data", tmp_path / "home", **small_simulator.environment()
    )
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vscope_pipeline.cli",
            "ingest",
            "--from",
            str(day),
            "--to",
            str(day),
        ],
        env=environment,
        cwd=tmp_path,
        stdout=terminal,
        stderr=subprocess.PIPE,
        text=False,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            # Linux reports EIO once the child has closed the terminal.
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    _, errors = child.communicate(timeout=COMMAND_TIMEOUT)
    assert child.returncode == 0, errors.decode()
    text = output.decode()
    final = re.search(
        r"\r(progress: days 1/1, metric-days 20/20 \(100%\)[^\r\n]*)\x1b\[K\r?\n", text
    )
    assert final is not None, text
    assert _without_times(final[1]) == (
        f"progress: days 1/1, metric-days 20/20 (100%), points "
        f"{_stored_points(tmp_path / 'data')}, requests 40"
    )
    # Every progress update but the last is followed by another one on the same line.
    assert not re.search(r"progress:[^\r\n]*\n(?!run )", text.replace("\r\n", "\n"))
    # The per-metric-day log lines are left to the Dagster run log, and INFO records hidden.
    assert b"request(s)" not in errors
    assert b" INFO vscope_pipeline" not in errors


def test_terminal_hides_info_and_clears_for_warning() -> None:
    clock = FakeClock()
    screen = io.StringIO()
    progress = IngestProgress(1, 2, screen, terminal=True, clock=clock)
    root = logging.getLogger()
    handler = logging.StreamHandler(screen)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    try:
        with progress.quiet_logs():
            progress.record(DAY, "a", rows=5, requests=1)
            logging.getLogger("vscope_pipeline.test").info("hidden")
            logging.getLogger("vscope_pipeline.test").warning("shown")
            clock.now += 1
            progress.record(DAY, "b", rows=5, requests=1)
        assert root.level == logging.INFO
        assert handler.filters == []
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    progress.finish()
    assert screen.getvalue() == (
        "\rprogress: days 0/1, metric-days 1/2 (50%), points 5, requests 1, elapsed 0:00\x1b[K"
        "\r\x1b[KWARNING shown\n"
        "\rprogress: days 1/1, metric-days 2/2 (100%), points 10, requests 2, elapsed 0:01\x1b[K\n"
    )


def test_quiet_logs_off_terminal_changes_nothing() -> None:
    progress = IngestProgress(1, 1, io.StringIO(), terminal=False)
    root = logging.getLogger()
    level = root.level
    with progress.quiet_logs():
        assert root.level == level


def test_eta_leaves_out_run_start() -> None:
    clock = FakeClock()
    progress = IngestProgress(2, 2, io.StringIO(), terminal=False, interval=60, clock=clock)
    # The inventory takes 30 s before the first metric-day, then each takes 2 s.
    clock.now += 30
    progress.record(DAY, "a", rows=1, requests=1)
    clock.now += 2
    progress.record(DAY, "b", rows=1, requests=1)
    assert progress.describe() == (
        "progress: days 1/2, metric-days 2/4 (50%), points 2, requests 2, elapsed 0:32, ETA 0:04"
    )
