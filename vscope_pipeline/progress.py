"""Progress of `vscope-pipeline ingest`, read from the events of its Dagster runs.

Each metric asset logs one line per metric-day partition it writes (see `metric_assets`):
`2026-12-02 vscope.vm.cpu.usage.perc: 58/58 entities, 58 series, 83520 rows, 2 request(s), ...`.
`IngestProgress.on_event` receives the run's events as Dagster stores them and counts those
lines, so progress needs no change to the data path. On a terminal it rewrites one line in
place; otherwise it prints plain lines, at most one every `interval` seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from vscope_pipeline.catalog import build_catalog
from vscope_pipeline.settings import Settings

if TYPE_CHECKING:
    # Imported for the annotation only: importing Dagster slows `vscope-pipeline sql` down.
    from dagster import EventLogEntry

# The start of the metric-day log line of the metric assets, up to the request count.
METRIC_DAY_LINE = re.compile(
    r"(?P<day>\d{4}-\d{2}-\d{2}) (?P<metric>\S+): \d+/\d+ entities, \d+ series, "
    r"(?P<rows>\d+) rows, (?P<requests>\d+) request\(s\)"
)

# Seconds between two plain progress lines when output is not a terminal.
DEFAULT_INTERVAL_SECONDS = 10.0
# Seconds between two rewrites of the terminal line, so a fast run does not flood the terminal.
TERMINAL_REFRESH_SECONDS = 0.2
# Erases from the cursor to the end of the line (ANSI "EL"), after a shorter rewrite.
_CLEAR_TO_END = "\x1b[K"


def format_duration(seconds: float) -> str:
    """Return `seconds` as `M:SS`, or `H:MM:SS` from one hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class IngestProgress:
    """Counts of the metric-day partitions written so far, out of `days` times `metrics`.

    `terminal` True rewrites one line on `stream` with a carriage return. False prints a
    line when a metric-day completes and `interval` seconds have passed since the last one,
    and always after the last metric-day (0 prints one line per metric-day).
    """

    def __init__(
        self,
        days: int,
        metrics: int,
        stream: TextIO,
        *,
        terminal: bool,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.days = days
        self.metrics = metrics
        self.stream = stream
        self.terminal = terminal
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.metric_days = 0
        self.rows = 0
        self.requests = 0
        self._metrics_by_day: dict[dt.date, set[str]] = defaultdict(set)
        self._last_output: float | None = None
        self._first_done: float | None = None
        self._shown_metric_days = -1
        self._line_open = False

    @property
    def total(self) -> int:
        return self.days * self.metrics

    @property
    def days_done(self) -> int:
        return sum(len(metrics) >= self.metrics for metrics in self._metrics_by_day.values())

    def on_event(self, event: EventLogEntry) -> None:
        """Count `event` when it is the log line of a written metric-day partition."""
        if event.is_dagster_event:
            return
        found = METRIC_DAY_LINE.search(event.user_message)
        if found is None:
            return
        self.record(
            dt.date.fromisoformat(found["day"]),
            found["metric"],
            rows=int(found["rows"]),
            requests=int(found["requests"]),
        )

    def record(self, day: dt.date, metric: str, *, rows: int, requests: int) -> None:
        """Count one written metric-day partition and show the progress when it is due."""
        self.metric_days += 1
        if self._first_done is None:
            self._first_done = self.clock()
        self.rows += rows
        self.requests += requests
        self._metrics_by_day[day].add(metric)
        now = self.clock()
        due = self._last_output is None or now - self._last_output >= (
            TERMINAL_REFRESH_SECONDS if self.terminal else self.interval
        )
        if due or self.metric_days >= self.total:
            self._show(now)

    def describe(self, now: float | None = None) -> str:
        """Return the progress line: days, metric-days, points, requests, elapsed time and ETA."""
        now = self.clock() if now is None else now
        elapsed = now - self.started
        percent = 100 * self.metric_days // self.total if self.total else 100
        line = (
            f"progress: days {self.days_done}/{self.days}, "
            f"metric-days {self.metric_days}/{self.total} ({percent}%), "
            f"points {self.rows}, requests {self.requests}, "
            f"elapsed {format_duration(elapsed)}"
        )
        remaining = self.total - self.metric_days
        if self._first_done is not None and self.metric_days > 1 and remaining > 0:
            # The rate since the first metric-day leaves out the run's start (settings,
            # inventory), which would make the first estimates far too long. It assumes the
            # remaining metric-days take as long as the average one since then.
            rate = (now - self._first_done) / (self.metric_days - 1)
            line += f", ETA {format_duration(rate * remaining)}"
        return line

    def finish(self) -> None:
        """End the terminal line, or print the last counts if no line showed them yet."""
        if self.terminal:
            if self._line_open:
                self.stream.write("\n")
                self.stream.flush()
                self._line_open = False
        elif self._shown_metric_days != self.metric_days:
            self._show(self.clock())

    @contextmanager
    def quiet_logs(self) -> Iterator[None]:
        """On a terminal, keep log records of level INFO and below off the screen.

        The progress line shows what those records would. A warning or an error still
        prints: the line is cleared first, so the record starts at the left margin, and the
        next update draws the line again below it. Off a terminal this does nothing.
        """
        if not self.terminal:
            yield
            return
        root = logging.getLogger()
        previous_level = root.level
        clearing = _ClearLineFilter(self)
        root.setLevel(logging.WARNING)
        for handler in root.handlers:
            handler.addFilter(clearing)
        try:
            yield
        finally:
            for handler in root.handlers:
                handler.removeFilter(clearing)
            root.setLevel(previous_level)

    def clear_line(self) -> None:
        """Erase the progress line, so that other output starts at the left margin."""
        if self._line_open:
            self.stream.write(f"\r{_CLEAR_TO_END}")
            self.stream.flush()
            self._line_open = False

    def _show(self, now: float) -> None:
        self._last_output = now
        self._shown_metric_days = self.metric_days
        if self.terminal:
            self.stream.write(f"\r{self.describe(now)}{_CLEAR_TO_END}")
            self._line_open = True
        else:
            self.stream.write(self.describe(now) + "\n")
        self.stream.flush()


class _ClearLineFilter(logging.Filter):
    """A filter that passes every record, after erasing the progress line it belongs to."""

    def __init__(self, progress: IngestProgress) -> None:
        super().__init__()
        self.progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        self.progress.clear_line()
        return True


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds: use 0 or more, such as 10 or 0.5"
        )
    return value


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--progress-interval`, the seconds between plain progress lines, to `parser`."""
    parser.add_argument(
        "--progress-interval",
        type=_seconds,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="when output is not a terminal, seconds between two progress lines; 0 prints "
        "one line per metric-day (default %(default)s). On a terminal one line is rewritten "
        "in place instead",
    )


def start_progress(
    first: dt.date, last: dt.date, settings: Settings, interval: float
) -> IngestProgress:
    """Return the progress of an ingestion of [first, last] with every catalogue metric."""
    return IngestProgress(
        (last - first).days + 1,
        len(build_catalog(settings.extra_metrics)),
        sys.stdout,
        terminal=sys.stdout.isatty(),
        interval=interval,
    )
