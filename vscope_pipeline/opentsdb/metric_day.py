"""Fetching one metric of one datacenter for one UTC day, whatever the server's shortcomings.

The day is first asked for with one grouped query. Three things can turn it into several:
- the server ignores group-by (seen in the response): the datacenter's expected entities are
  then fetched with per-entity sub-queries, and the client remembers it for later metrics;
- a query is too large (see `split`): it is cut by time, then by entities, and the parts are
  fetched one after the other;
- a per-entity batch names an entity the server never stored: it is asked again without it.
Every part must succeed, so the result is the whole day or an exception, never a partial day.

NOTE: per-entity sub-queries only cover the expected entities (the inventory). Series of an
entity missing from the inventory, such as a VM deleted during the day, are therefore not
fetched from a server that ignores group-by, nor in a window that had to be cut by entities.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.downsample import Downsample, restamp_to_epoch_grid
from vscope_pipeline.opentsdb.errors import (
    OpenTSDBDecodeError,
    OpenTSDBError,
    OpenTSDBGroupingError,
    OpenTSDBLimitError,
)
from vscope_pipeline.opentsdb.grouping import find_merged_series
from vscope_pipeline.opentsdb.planning import (
    DayWindow,
    build_window_body,
    day_window,
    describe_query,
    validate_tag_value,
)
from vscope_pipeline.opentsdb.results import (
    DecodeStats,
    FetchCounters,
    MetricDayResult,
    MetricDayStats,
    QueryResponse,
)
from vscope_pipeline.opentsdb.split import (
    RAW_SPLIT_ALIGN_MS,
    QueryUnit,
    batch_entities,
    is_too_large,
    split_unit,
)

log = logging.getLogger(__name__)

# Sends one query body and returns its response, counting requests into the counters.
QuerySender = Callable[[Mapping[str, Any], FetchCounters], QueryResponse]

_UNKNOWN_TAG_VALUE = re.compile(r"No such name for 'tagv': '(?P<value>.*)'")
_SORT_KEYS = [("entity", "ascending"), ("nic", "ascending"), ("ts", "ascending")]


class ServerTraits:
    """Facts one client learned about its server, read and set from any thread."""

    def __init__(self) -> None:
        # A plain bool assignment is atomic in CPython, and learning it twice is harmless.
        self.ignores_group_by = False


@dataclass(frozen=True)
class _Part:
    table: pa.Table
    stats: DecodeStats
    no_such_name: bool
    # False when rows were dropped after decoding, so that stats.series may be too high.
    series_exact: bool = True


class _ServerIgnoresGroupBy(Exception):
    """A grouped query came back with series merged across entities or NICs."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class MetricDayRequest:
    """A metric of a datacenter for a UTC day, with the entities expected there."""

    spec: MetricSpec
    service_name: str
    datacenter_label: str
    day: date
    expected_entities: tuple[str, ...]


class MetricDayFetch:
    """One fetch of a metric-day through `send`; call `run()` once."""

    def __init__(
        self,
        request: MetricDayRequest,
        send: QuerySender,
        *,
        url: str,
        downsample: Downsample | None,
        traits: ServerTraits,
        scrub: Callable[[str], str],
    ) -> None:
        self._request = request
        self._spec = request.spec
        self._send = send
        self._url = url
        # Removes the metrics token from text quoted from a response.
        self._scrub = scrub
        self._downsample = downsample
        self._traits = traits
        self._align_ms = downsample.interval_ms if downsample else RAW_SPLIT_ALIGN_MS
        self.counters = FetchCounters()

    def run(self) -> MetricDayResult:
        """Fetch the whole day; raise an OpenTSDBError subclass if any part fails."""
        request = self._request
        validate_tag_value(request.datacenter_label, "datacenter label")
        window = day_window(request.day)
        if self._traits.ignores_group_by:
            parts = self._fetch_per_entity(window)
        else:
            try:
                parts = self._fetch_split(QueryUnit(window))
            except _ServerIgnoresGroupBy as ignored:
                self._traits.ignores_group_by = True
                log.warning(
                    "OpenTSDB at %s ignores group-by: the grouped query for %s of %s on %s "
                    "returned merged series (%s); fetching entity by entity from now on",
                    self._url,
                    self._spec.name,
                    request.datacenter_label,
                    request.day.isoformat(),
                    ignored.detail,
                )
                parts = self._fetch_per_entity(window)
        return self._merge(parts)

    def _fetch_per_entity(self, window: DayWindow) -> list[_Part]:
        entities = self._request.expected_entities
        if not entities:
            raise OpenTSDBGroupingError(
                f"OpenTSDB at {self._url} ignores group-by, so metric {self._spec.name} of "
                f"datacenter {self._request.datacenter_label} on "
                f"{self._request.day.isoformat()} must be fetched entity by entity, but no "
                f"{self._spec.entity_label} of that datacenter is known. Pass the expected "
                "entities from the inventory",
                url=self._url,
            )
        before = self.counters.requests
        parts: list[_Part] = []
        try:
            for batch in batch_entities(entities):
                parts.extend(self._fetch_split(QueryUnit(window, batch)))
        finally:
            self.counters.fallback_requests += self.counters.requests - before
        return parts

    def _fetch_split(self, unit: QueryUnit) -> list[_Part]:
        """Fetch a unit, splitting it as long as the server finds it too large."""
        try:
            return [self._fetch_unit(unit)]
        except OpenTSDBError as error:
            if not is_too_large(error):
                raise
            smaller = split_unit(unit, self._request.expected_entities, self._align_ms)
            if smaller is None:
                raise self._limit_error(unit, error) from error
            self.counters.splits += 1
            log.info(
                "%s is too large (%s): splitting it into %d queries",
                self._describe(unit),
                _short_reason(error),
                len(smaller),
            )
        parts: list[_Part] = []
        for part in smaller:
            parts.extend(self._fetch_split(part))
        return parts

    def _fetch_unit(self, unit: QueryUnit) -> _Part:
        while True:
            response = self._send(self._body(unit), self.counters)
            if not response.no_such_name:
                return self._decode(unit, response)
            unknown = _unknown_tag_value(response.message)
            if unit.entities is None or unknown not in unit.entities:
                # The metric or the datacenter has no series at all.
                return self._empty_part(no_such_name=True)
            log.info(
                "%s: the server knows no %s %r, asking again without it",
                self._describe(unit),
                self._spec.entity_label,
                unknown,
            )
            remaining = tuple(entity for entity in unit.entities if entity != unknown)
            if not remaining:
                return self._empty_part(no_such_name=False)
            unit = QueryUnit(unit.window, remaining)

    def _body(self, unit: QueryUnit) -> dict[str, Any]:
        return build_window_body(
            self._spec,
            self._request.datacenter_label,
            unit.window,
            unit.entities,
            self._downsample.text if self._downsample else None,
        )

    def _describe(self, unit: QueryUnit) -> str:
        return describe_query(self._body(unit))

    def _decode(self, unit: QueryUnit, response: QueryResponse) -> _Part:
        window = unit.window
        interval = self._downsample.interval_ms if self._downsample else 0
        # Decode a bucket wider on each side: a bucket stamped outside the window by the
        # server's alignment is moved back inside it by the restamping below.
        decode_window = DayWindow(window.day, window.start_ms - interval, window.stop_ms + interval)
        try:
            decoded = decode_query_response(
                response.content,
                spec=self._spec,
                service_name=self._request.service_name,
                datacenter_label=self._request.datacenter_label,
                window=decode_window,
            )
        except OpenTSDBDecodeError as exc:
            merged = find_merged_series(response.content, self._spec)
            if merged is None:
                raise OpenTSDBDecodeError(
                    self._scrub(f"POST {self._url}: {exc}"), url=self._url, status=200
                ) from exc
            if unit.entities is None:
                raise _ServerIgnoresGroupBy(merged) from exc
            raise OpenTSDBGroupingError(
                self._scrub(
                    f"POST {self._url} for {self._describe(unit)}: per-entity sub-queries came "
                    f"back merged: {merged}. The server merges series that must be stored "
                    "apart, so check that the endpoint is vScope's OpenTSDB endpoint"
                ),
                url=self._url,
                status=200,
            ) from exc

        if self._downsample is None:
            return _Part(decoded.table, decoded.stats, no_such_name=False)
        context = (
            f"metric {self._spec.name}, datacenter {self._request.datacenter_label}, "
            f"day {window.day.isoformat()}"
        )
        table = restamp_to_epoch_grid(decoded.table, interval, context)
        table, outside = _keep_window(table, window)
        stats = replace(
            decoded.stats,
            points=table.num_rows,
            dropped_out_of_window=decoded.stats.dropped_out_of_window + outside,
        )
        return _Part(table, stats, no_such_name=False, series_exact=outside == 0)

    def _empty_part(self, *, no_such_name: bool) -> _Part:
        return _Part(METRIC_FILE_SCHEMA.empty_table(), DecodeStats(), no_such_name=no_such_name)

    def _limit_error(self, unit: QueryUnit, error: OpenTSDBError) -> OpenTSDBLimitError:
        minutes = (unit.window.stop_ms - unit.window.start_ms) / 60_000
        if unit.entities is None:
            smallest = (
                f"a window of {minutes:g} min, and fewer than two expected "
                f"{self._spec.entity_label}s to split it by"
            )
        else:
            smallest = f"a window of {minutes:g} min and one entity"
        return OpenTSDBLimitError(
            f"OpenTSDB query for {self._describe(unit)} is still too large after "
            f"{self.counters.splits} splits, at the smallest unit ({smallest}): "
            f"{_short_reason(error)}. Set a downsample interval to read fewer points, or raise "
            "the read timeout",
            url=self._url,
            status=error.status,
            server_message=error.server_message,
        )

    def _merge(self, parts: list[_Part]) -> MetricDayResult:
        counters = self.counters
        if len(parts) == 1 and parts[0].series_exact:
            table, series = parts[0].table, parts[0].stats.series
        else:
            tables = [part.table for part in parts if part.table.num_rows]
            if not tables:
                table = METRIC_FILE_SCHEMA.empty_table()
            elif len(tables) == 1:
                table = tables[0]
            else:
                table = pa.concat_tables(tables).sort_by(_SORT_KEYS)
            series = _count_series(table)
        decoded = sum((part.stats for part in parts), DecodeStats())
        stats = MetricDayStats(
            requests=counters.requests,
            decoded=replace(decoded, series=series, points=table.num_rows),
            bytes_received=counters.bytes_received,
            no_such_name=bool(parts) and all(part.no_such_name for part in parts),
            retries=counters.retries,
            splits=counters.splits,
            fallback_requests=counters.fallback_requests,
        )
        return MetricDayResult(table=table, stats=stats)


def _unknown_tag_value(message: str | None) -> str | None:
    match = _UNKNOWN_TAG_VALUE.fullmatch(message or "")
    return match["value"] if match else None


def _keep_window(table: pa.Table, window: DayWindow) -> tuple[pa.Table, int]:
    """Return the rows with `start_ms <= ts < stop_ms`, and the count of the others."""
    ts = table.column("ts").to_numpy().astype(np.int64)
    inside = (ts >= window.start_ms) & (ts < window.stop_ms)
    outside = len(ts) - int(np.count_nonzero(inside))
    return (table if outside == 0 else table.filter(pa.array(inside))), outside


def _count_series(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    return table.select(["entity", "nic"]).group_by(["entity", "nic"]).aggregate([]).num_rows


def _short_reason(error: OpenTSDBError) -> str:
    message = error.server_message or str(error)
    return f"HTTP {error.status}: {message}" if error.status is not None else message
