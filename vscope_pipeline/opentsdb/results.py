"""Records that the OpenTSDB client returns: query responses, metric-day results and counts."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class QueryResponse:
    """The body of a successful query and how many HTTP requests it took."""

    content: bytes
    requests: int
    # True when the server knew no such metric or tag value; `content` is then `[]`.
    no_such_name: bool = False
    # The server's "No such name" message, which names the unknown value.
    message: str | None = None


@dataclass
class FetchCounters:
    """Mutable counts of one fetch, shared by the requests it makes (one thread per fetch)."""

    requests: int = 0
    # Requests that repeated a failed one: transient failures and a refused token.
    retries: int = 0
    splits: int = 0
    fallback_requests: int = 0
    # Length of the successful response bodies after gzip decoding.
    bytes_received: int = 0


@dataclass(frozen=True)
class MetricDayStats:
    """Counts from fetching one metric of one datacenter for one day."""

    requests: int
    series: int
    points: int
    dropped_nan: int
    dropped_out_of_window: int
    duplicates: int
    empty_series: int
    skipped_elements: int
    # Length of the response bodies after gzip decoding.
    bytes_received: int
    no_such_name: bool
    # Requests that repeated a failed one (transient failure or refused token).
    retries: int = 0
    # Times a query was cut in two (by time or by entities) because it was too large.
    splits: int = 0
    # Requests of per-entity sub-queries made because the server ignored group-by.
    fallback_requests: int = 0

    @property
    def dropped_points(self) -> int:
        """Return the points received but not stored: missing values, out of window, duplicates."""
        return self.dropped_nan + self.dropped_out_of_window + self.duplicates


@dataclass(frozen=True)
class MetricDayResult:
    """One metric of one datacenter for one UTC day, as rows of METRIC_FILE_SCHEMA."""

    table: pa.Table
    stats: MetricDayStats
