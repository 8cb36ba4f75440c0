"""Time the example queries on rollups and on raw points, in interleaved rounds.

Each round runs every example in three forms: the rollup form over the whole year, the rollup
form over the raw window, and the raw-point form over the raw window. Interleaving spreads the
load of other processes over every form alike; the median of the rounds is kept.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from vscope_pipeline.warehouse.examples import ExampleQuery

log = logging.getLogger(__name__)


class QueryTimingError(RuntimeError):
    """An example query that failed on the benchmark warehouse."""


@dataclass(frozen=True)
class QueryTimes:
    """Median wall times in seconds of one example, with its result row counts.

    `reads_metrics` is False for an example that reads the inventory only, whose three forms
    are the same query.
    """

    title: str
    reads_metrics: bool
    year_rollup: float
    window_rollup: float
    window_raw: float
    year_rows: int
    window_rows: int

    @property
    def speedup(self) -> float:
        """Raw-point time over rollup time on the same window."""
        return self.window_raw / self.window_rollup


def time_examples(
    database: Path,
    examples: Sequence[ExampleQuery],
    year_days: int,
    window_days: int,
    rounds: int,
) -> list[QueryTimes]:
    """Run each example `rounds` times in each form on `database` and return the medians.

    Raises QueryTimingError, naming the example and form, when a query fails.
    """
    forms = {
        example.title: (
            example.sql_over(year_days),
            example.sql_over(window_days),
            example.raw_sql_over(window_days),
        )
        for example in examples
    }
    seconds: dict[str, list[list[float]]] = {title: [[], [], []] for title in forms}
    rows: dict[str, list[int]] = {}
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for round_number in range(1, rounds + 1):
            started = time.perf_counter()
            for title, queries in forms.items():
                counts = []
                for index, sql in enumerate(queries):
                    elapsed, count = _run_once(con, title, index, sql)
                    seconds[title][index].append(elapsed)
                    counts.append(count)
                rows[title] = counts
            log.info(
                "query round %d of %d took %.1f s",
                round_number,
                rounds,
                time.perf_counter() - started,
            )
    return [
        QueryTimes(
            title=example.title,
            reads_metrics=example.days is not None,
            year_rollup=statistics.median(seconds[example.title][0]),
            window_rollup=statistics.median(seconds[example.title][1]),
            window_raw=statistics.median(seconds[example.title][2]),
            year_rows=rows[example.title][0],
            window_rows=rows[example.title][1],
        )
        for example in examples
    ]


_FORM_NAMES = ("rollups over the year", "rollups over the raw window", "raw over the raw window")


def _run_once(con: duckdb.DuckDBPyConnection, title: str, form: int, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        result = con.execute(sql).fetchall()
    except duckdb.Error as error:
        message = str(error).strip().splitlines()[0]
        raise QueryTimingError(
            f"example {title!r} failed ({_FORM_NAMES[form]}): {message}"
        ) from error
    return time.perf_counter() - started, len(result)
