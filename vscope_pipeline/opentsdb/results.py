"""Records that the OpenTSDB client returns: query responses, metric-day results and counts."""

from __future__ import annotations

from dataclasses import dataclass, fields

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
class DecodeStats:
    """Counts from decoding query responses; `points` is the number of rows kept.

    Each point received is either kept or counted in exactly one `dropped_*` field or in
    `duplicates`, checked in the order of the fields below. Adding two values sums every field.
    """

    series: int = 0
    points: int = 0
    # "NaN" (fill policy `nan`) or null (fill policy `null`): the server had no value.
    dropped_nan: int = 0
    # "Infinity" or "-Infinity", quoted or bare, or a number too large for a float64.
    dropped_infinite: int = 0
    # Outside the UTC day: OpenTSDB's `end` is inclusive and a proxy may widen the window.
    dropped_out_of_window: int = 0
    # Outside the metric's `min_value`..`max_value`, such as a percentage above 100.
    dropped_out_of_range: int = 0
    # Earlier points of one (entity, nic, ts); the last one kept in response order wins.
    duplicates: int = 0
    # Points of the series dropped because their tags lack the entity (or NIC) label.
    dropped_unidentified: int = 0
    unidentified_series: int = 0
    # Series with an empty `dps` (OpenTSDB's scan padding), which hold no point.
    empty_series: int = 0
    # Array elements without a metric name, such as the `statsSummary` element.
    skipped_elements: int = 0
    # Values sent as a JSON string holding a number ("12.5"), parsed like numbers and then
    # checked like any other value. OpenTSDB writes numbers unquoted, so a count here points
    # at a proxy that rewrote the response.
    numeric_strings: int = 0

    @property
    def dropped_points(self) -> int:
        """Return the points received but not stored, whatever the reason."""
        return (
            self.dropped_nan
            + self.dropped_infinite
            + self.dropped_out_of_window
            + self.dropped_out_of_range
            + self.duplicates
            + self.dropped_unidentified
        )

    def __add__(self, other: DecodeStats) -> DecodeStats:
        return DecodeStats(
            **{
                item.name: getattr(self, item.name) + getattr(other, item.name)
                for item in fields(self)
            }
        )

    def describe_drops(self) -> str:
        """Describe the dropped points by reason and the odd values kept, or return "none"."""
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.dropped_nan, "NaN or null values dropped"),
                (self.dropped_infinite, "infinite values dropped"),
                (self.dropped_out_of_range, "values out of range dropped"),
                (self.dropped_out_of_window, "points outside the day dropped"),
                (self.duplicates, "duplicate points dropped"),
                (self.dropped_unidentified, "points of series without entity tag dropped"),
                (self.numeric_strings, "values sent as strings kept"),
            )
            if count
        ]
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class MetricDayStats:
    """Counts from fetching one metric of one datacenter for one day."""

    requests: int
    # Counts from decoding every response of the day. `series` and `points` count the
    # merged day, where a series split across several queries counts once.
    decoded: DecodeStats
    # Length of the response bodies after gzip decoding.
    bytes_received: int
    no_such_name: bool
    # Requests that repeated a failed one (transient failure or refused token).
    retries: int = 0
    # Times a query was cut in two (by time or by entities) because it was too large.
    splits: int = 0
    # Requests of per-entity sub-queries made because the server ignored group-by.
    fallback_requests: int = 0


@dataclass(frozen=True)
class MetricDayResult:
    """One metric of one datacenter for one UTC day, as rows of METRIC_FILE_SCHEMA."""

    table: pa.Table
    stats: MetricDayStats
