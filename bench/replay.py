"""Time the decode and write steps on response bodies replayed from disk.

Each step processes the whole benchmark day (every metric, every datacenter) once. The steps
run in interleaved rounds and each keeps its fastest round, so that a burst of load from
other processes slows one round of every step rather than every round of one step.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from bench.baseline import baseline_decode_and_write
from bench.day import MetricDay
from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.collect import DEFAULT_MAX_WORKERS
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.planning import DayWindow

log = logging.getLogger(__name__)

DECODE = "decode only"
ONE_THREAD = "decode+write, one thread"
PIPELINE_THREADS = "decode+write, pipeline threads"


class ReplayError(RuntimeError):
    """A replay step produced other rows than the pipeline's decoder."""


@dataclass(frozen=True)
class ReplayTimes:
    """Fastest wall time in seconds of each step by name, and the rows every step produced."""

    points: int
    parsers: dict[str, float]
    steps: dict[str, float]
    baseline: float

    @property
    def floor_parser(self) -> str:
        """The fastest JSON parser: the floor that the decode is compared with."""
        return min(self.parsers, key=self.parsers.__getitem__)

    @property
    def floor(self) -> float:
        return self.parsers[self.floor_parser]


def json_parsers() -> dict[str, Callable[[bytes], object]]:
    """Return the installed JSON parsers to measure the floor with, by name."""
    parsers: dict[str, Callable[[bytes], object]] = {"orjson.loads": orjson.loads}
    try:
        import msgspec
    except ImportError:
        log.info("msgspec is not installed: the floor is orjson alone")
    else:
        parsers["msgspec.json.decode"] = msgspec.json.decode
    return parsers


def time_replay(
    days: Sequence[MetricDay], service_name: str, window: DayWindow, work: Path, repeat: int
) -> ReplayTimes:
    """Time every step `repeat` times in interleaved rounds, and the baseline once."""
    # The first decode also imports pyarrow.compute; keep it out of the timings.
    points = decode_only(days, service_name, window)
    parsers = json_parsers()
    steps: dict[str, Callable[[], int]] = {
        name: functools.partial(parse_only, days, parser) for name, parser in parsers.items()
    }
    steps[DECODE] = functools.partial(decode_only, days, service_name, window)
    steps[ONE_THREAD] = functools.partial(
        decode_and_write, days, service_name, window, work / "lake-one-thread"
    )
    steps[PIPELINE_THREADS] = functools.partial(
        decode_and_write_threaded, days, service_name, window, work / "lake-threads"
    )

    best = dict.fromkeys(steps, float("inf"))
    for round_number in range(1, repeat + 1):
        log.info("replay round %d of %d", round_number, repeat)
        for name, step in steps.items():
            seconds, rows = _timed(step)
            if name not in parsers:
                _check_rows(name, rows, points)
            best[name] = min(best[name], seconds)

    log.info("timing the json + pandas baseline, once")
    baseline, rows = _timed(
        functools.partial(
            baseline_decode_and_write, days, service_name, window, work / "lake-baseline"
        )
    )
    _check_rows("baseline", rows, points)
    return ReplayTimes(
        points=points,
        parsers={name: best[name] for name in parsers},
        steps={name: seconds for name, seconds in best.items() if name not in parsers},
        baseline=baseline,
    )


def parse_only(days: Sequence[MetricDay], loads: Callable[[bytes], object]) -> int:
    """Parse every body with `loads` and drop the result; return the bodies parsed."""
    for day in days:
        for _, body in day.bodies:
            loads(body)
    return sum(len(day.bodies) for day in days)


def decode_only(days: Sequence[MetricDay], service_name: str, window: DayWindow) -> int:
    return sum(
        _decode(day.spec, label, body, service_name, window).num_rows
        for day in days
        for label, body in day.bodies
    )


def decode_and_write(
    days: Sequence[MetricDay], service_name: str, window: DayWindow, lake: Path
) -> int:
    """Decode and write each metric-day in one thread, one metric after the other."""
    rows = 0
    for day in days:
        tables = [
            _decode(day.spec, label, body, service_name, window) for label, body in day.bodies
        ]
        rows += _write(day.spec, tables, window, lake)
    return rows


def decode_and_write_threaded(
    days: Sequence[MetricDay], service_name: str, window: DayWindow, lake: Path
) -> int:
    """Decode and write with the thread layout of `collect.collect_day`.

    Every decode is queued at once on a pool of `DEFAULT_MAX_WORKERS` threads, and the
    calling thread writes each metric's partition as soon as its datacenters are decoded,
    then drops its tables.
    """
    rows = 0
    with ThreadPoolExecutor(max_workers=DEFAULT_MAX_WORKERS) as pool:
        pending: list[tuple[MetricDay, list[Future[pa.Table]]]] = [
            (
                day,
                [
                    pool.submit(_decode, day.spec, label, body, service_name, window)
                    for label, body in day.bodies
                ],
            )
            for day in days
        ]
        while pending:
            day, futures = pending.pop(0)
            rows += _write(day.spec, [future.result() for future in futures], window, lake)
    return rows


def _decode(
    spec: MetricSpec, label: str, body: bytes, service_name: str, window: DayWindow
) -> pa.Table:
    decoded = decode_query_response(
        body, spec=spec, service_name=service_name, datacenter_label=label, window=window
    )
    return decoded.table


def _write(spec: MetricSpec, tables: list[pa.Table], window: DayWindow, lake: Path) -> int:
    table = pa.concat_tables(tables)
    write_partition(table, metric_partition_dir(lake, spec.name, window.day))
    return table.num_rows


def _timed(step: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = step()
    return time.perf_counter() - started, rows


def _check_rows(step: str, rows: int, expected: int) -> None:
    if rows != expected:
        raise ReplayError(f"step {step!r} produced {rows} rows, expected {expected}")
