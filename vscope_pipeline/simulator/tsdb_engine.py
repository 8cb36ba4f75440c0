"""Runs a validated `/api/query` against a SeriesSource, the way an OpenTSDB 2.4 TSD does.

Each sub-query runs in these steps:
1. resolve the metric and filter names, where an unknown name is a 400 error;
2. select the series and scan them over the padded scan window;
3. group them, then downsample each series and take its rate;
4. aggregate each group and keep the points with `start <= ts <= end`.
Every sub-query is resolved before any is scanned, so a bad name anywhere fails the request.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vscope_pipeline.simulator.series import SeriesSource, Tags
from vscope_pipeline.simulator.tsdb_aggregate import (
    SeriesPoints,
    TimeArray,
    ValueArray,
    aggregate_group,
    check_finite,
)
from vscope_pipeline.simulator.tsdb_downsample import (
    FillPolicy,
    ScanWindow,
    downsample_series,
    scan_window,
)
from vscope_pipeline.simulator.tsdb_errors import (
    TsdbHttpError,
    data_point_limit_exceeded,
    no_such_name,
)
from vscope_pipeline.simulator.tsdb_filters import group_by_keys, group_series, select_series
from vscope_pipeline.simulator.tsdb_query import PlannedQuery, PlannedSubQuery
from vscope_pipeline.simulator.tsdb_rate import rate_series


class DataPointLimitExceeded(TsdbHttpError):
    """OpenTSDB's 413 for a sub-query that scans more than `limit` points (`count` so far)."""

    def __init__(self, limit: int, count: int) -> None:
        error = data_point_limit_exceeded(limit)
        super().__init__(error.status, error.message, error.details)
        self.limit = limit
        self.count = count


@dataclass(frozen=True)
class EngineOptions:
    """Departures from OpenTSDB 2.4 that fault injection requests."""

    # Aggregate all the series of a sub-query into one, whatever its group-by filters.
    ignore_group_by: bool = False
    # Stamp downsample buckets on the grid of the query end, at their last millisecond.
    end_aligned_buckets: bool = False


@dataclass(frozen=True)
class GroupResult:
    """One object of the `/api/query` response: an aggregated group of series.

    `tags` contains the keys with one value across the group's series (even if some series lack
    the key), `aggregate_tags` the keys with several values.
    """

    metric: str
    tags: Mapping[str, str]
    aggregate_tags: tuple[str, ...]
    sub_query: PlannedSubQuery
    timestamps_ms: TimeArray
    values: ValueArray

    @property
    def null_fill(self) -> bool:
        """Whether NaN values are written as JSON null (fill policy `null`) or as "NaN"."""
        spec = self.sub_query.downsample
        return spec is not None and spec.fill is FillPolicy.NULL


class NameIndex:
    """The names an OpenTSDB UID table would hold: every metric, tag key and tag value.

    Built from the source on first use and then kept, so the source's series set is assumed
    not to change while a server runs.
    """

    def __init__(self, source: SeriesSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._names: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None

    def _load(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        with self._lock:
            if self._names is None:
                metrics = self._source.metric_names()
                keys: set[str] = set()
                values: set[str] = set()
                for metric in metrics:
                    for tags in self._source.series_tags(metric):
                        keys.update(tags)
                        values.update(tags.values())
                self._names = (frozenset(metrics), frozenset(keys), frozenset(values))
            return self._names

    def check_sub_query(self, planned: PlannedSubQuery) -> None:
        """Raise OpenTSDB's "No such name" error for the first unknown name of a sub-query.

        Order as in OpenTSDB: the metric, then per filter the values of a case-sensitive
        `literal_or`, then its tag key.
        """
        metrics, keys, values = self._load()
        if planned.metric not in metrics:
            raise no_such_name("metrics", planned.metric)
        for tag_filter in planned.sub.filters:
            for literal in tag_filter.literals_to_resolve():
                if literal not in values:
                    raise no_such_name("tagv", literal)
            if tag_filter.tagk not in keys:
                raise no_such_name("tagk", tag_filter.tagk)


def run_query(
    query: PlannedQuery,
    source: SeriesSource,
    names: NameIndex,
    max_data_points: int = 0,
    options: EngineOptions | None = None,
) -> list[GroupResult]:
    """Run a validated query and return one GroupResult per response object, in order.

    `max_data_points` > 0 limits the points one sub-query may scan, like OpenTSDB's
    `tsd.query.limits.data_points.default`. Beyond it the request fails with 413
    (DataPointLimitExceeded).
    """
    options = options or EngineOptions()
    for planned in query.queries:
        names.check_sub_query(planned)
    results: list[GroupResult] = []
    for planned in query.queries:
        results.extend(_run_sub_query(query, planned, source, max_data_points, options))
    return results


def _run_sub_query(
    query: PlannedQuery,
    planned: PlannedSubQuery,
    source: SeriesSource,
    max_data_points: int,
    options: EngineOptions,
) -> list[GroupResult]:
    all_tags = source.series_tags(planned.metric)
    positions = select_series(all_tags, planned.sub.filters, planned.sub.explicit_tags)
    window = scan_window(query.start_ms, query.end_ms, planned.downsample)

    scanned: dict[int, SeriesPoints] = {}
    point_count = 0
    for position in positions:
        ts, values = source.points(
            planned.metric, all_tags[position], window.start_ms, window.end_ms - 1
        )
        point_count += len(ts)
        # NOTE: OpenTSDB checks its limit between storage batches, so it lets a query run a
        # little over it. The simulator fails as soon as the count exceeds the limit.
        if 0 < max_data_points < point_count:
            raise DataPointLimitExceeded(max_data_points, point_count)
        # A series without points in the scan window is not part of any group.
        if len(ts):
            scanned[position] = (ts, values)

    if planned.aggregator.function == "none":
        groups = [[position] for position in scanned]
    else:
        keys = () if options.ignore_group_by else group_by_keys(planned.sub.filters)
        groups = group_series(list(scanned), all_tags, keys)

    results = []
    for group in groups:
        member_tags = [all_tags[position] for position in group]
        series = [
            _transform(scanned[position], planned, query, window, options) for position in group
        ]
        timestamps, values = aggregate_group(series, planned.aggregator, planned.sub.rate)
        inside = (timestamps >= query.start_ms) & (timestamps <= query.end_ms)
        check_finite(values[inside])
        tags, aggregate_tags = _split_tags(member_tags)
        results.append(
            GroupResult(
                metric=planned.metric,
                tags=tags,
                aggregate_tags=aggregate_tags,
                sub_query=planned,
                timestamps_ms=timestamps[inside],
                values=values[inside],
            )
        )
    return results


def _transform(
    points: SeriesPoints,
    planned: PlannedSubQuery,
    query: PlannedQuery,
    window: ScanWindow,
    options: EngineOptions,
) -> SeriesPoints:
    ts, values = points
    if planned.downsample is not None:
        ts, values = downsample_series(
            ts,
            values,
            planned.downsample,
            window,
            query.start_ms,
            query.end_ms,
            end_aligned=options.end_aligned_buckets,
        )
    if planned.sub.rate:
        ts, values = rate_series(ts, values, planned.rate_options)
    return ts, values


def _split_tags(member_tags: Sequence[Tags]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Split the group's tag keys into those with one value and those with several."""
    seen: dict[str, str | None] = {}
    for tags in member_tags:
        for key, value in tags.items():
            if key not in seen:
                seen[key] = value
            elif seen[key] is not None and seen[key] != value:
                seen[key] = None  # several values: an aggregate tag
    tags = {key: value for key, value in seen.items() if value is not None}
    aggregate_tags = tuple(key for key, value in seen.items() if value is None)
    return tags, aggregate_tags
