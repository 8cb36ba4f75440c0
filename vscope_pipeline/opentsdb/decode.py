"""Decode an `/api/query` response into an Arrow table of METRIC_FILE_SCHEMA.

The response is a JSON array with one object per output series:
`{"metric", "tags", "aggregateTags", "query", "dps": {"<epoch ms or s>": value}}`. Series are
identified by their `tags`, never by their position in the array. The decoder is lenient only
in the ways OpenTSDB itself requires, and counts every point or element it drops:
- values `"NaN"` (fill policy `nan`) and `null` (fill policy `null`) are dropped;
- points outside the UTC day are dropped, because OpenTSDB's `end` is inclusive and a proxy
  may widen the window;
- entries with empty `dps` (from OpenTSDB's scan padding) and elements without `metric`
  (the `statsSummary` element) are skipped;
- duplicate (entity, nic, ts) points are reduced to the last one in response order.
Anything else that is not the expected shape raises OpenTSDBDecodeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from vscope_pipeline.catalog import DATACENTER_LABEL, NIC_LABEL, MetricSpec
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError
from vscope_pipeline.opentsdb.planning import DayWindow

# OpenTSDB reads a timestamp of at most 10 digits as seconds and a longer one as milliseconds.
# Keys below 10**10 are therefore seconds: `dps` is keyed by seconds when a server ignores
# `msResolution`.
_SECONDS_LIMIT = 10_000_000_000

_PREVIEW_CHARS = 80


@dataclass(frozen=True)
class DecodeStats:
    """Counts from decoding one response; `points` is the number of rows in the table."""

    series: int
    points: int
    dropped_nan: int
    dropped_out_of_window: int
    duplicates: int
    empty_series: int
    skipped_elements: int


@dataclass(frozen=True)
class DecodedDay:
    table: pa.Table
    stats: DecodeStats


@dataclass(frozen=True)
class _Series:
    entity: str
    nic: str | None
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def decode_query_response(
    content: bytes,
    *,
    spec: MetricSpec,
    service_name: str,
    datacenter_label: str,
    window: DayWindow,
) -> DecodedDay:
    """Decode the response to `build_query_body(spec, datacenter_label, window.day)`.

    Rows are sorted by entity, nic and ts. Raises OpenTSDBDecodeError on a body that is not
    a JSON array of series objects of the requested metric and datacenter.
    """
    context = f"metric {spec.name}, datacenter {datacenter_label}, day {window.day.isoformat()}"
    elements = _parse_array(content, context)

    series: list[_Series] = []
    dropped_nan = dropped_out_of_window = empty_series = skipped_elements = 0
    for index, element in enumerate(elements):
        if not isinstance(element, dict):
            raise OpenTSDBDecodeError(
                f"invalid OpenTSDB response for {context}: element {index} is "
                f"{_preview(element)}, expected a series object"
            )
        # Elements without a metric are the `statsSummary` element, or the empty series that
        # OpenTSDB 2.0 and 2.1 returned with an empty metric name.
        if not element.get("metric"):
            skipped_elements += 1
            continue
        _check_metric(element, index, spec, context)
        dps = element.get("dps")
        if not isinstance(dps, dict):
            raise OpenTSDBDecodeError(
                f"invalid OpenTSDB response for {context}: element {index} has dps "
                f"{_preview(dps)}, expected an object of timestamp keys and values"
            )
        if not dps:
            empty_series += 1
            continue

        entity, nic = _series_identity(element, index, spec, datacenter_label, context)
        ts = _timestamps(dps, index, context)
        values, missing = _values(dps, index, context)
        in_window = (ts >= window.start_ms) & (ts < window.stop_ms)
        keep = in_window & ~missing
        dropped_nan += int(np.count_nonzero(missing))
        dropped_out_of_window += int(np.count_nonzero(~in_window & ~missing))
        series.append(_Series(entity, nic, ts[keep], values[keep]))

    table, series_count, duplicates = _build_table(series, spec, service_name, datacenter_label)
    stats = DecodeStats(
        series=series_count,
        points=table.num_rows,
        dropped_nan=dropped_nan,
        dropped_out_of_window=dropped_out_of_window,
        duplicates=duplicates,
        empty_series=empty_series,
        skipped_elements=skipped_elements,
    )
    return DecodedDay(table=table, stats=stats)


def _parse_array(content: bytes, context: str) -> list[Any]:
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: the body is not JSON, it starts with "
            f"{_preview(content)}. A proxy may have answered instead of OpenTSDB: check the "
            "endpoint URL"
        ) from exc
    if not isinstance(document, list):
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: expected a JSON array of series, "
            f"got {_preview(document)}"
        )
    return document


def _check_metric(element: dict[str, Any], index: int, spec: MetricSpec, context: str) -> None:
    if element["metric"] != spec.name:
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} is a series of metric "
            f"{element['metric']!r}, expected {spec.name!r}"
        )


def _series_identity(
    element: dict[str, Any],
    index: int,
    spec: MetricSpec,
    datacenter_label: str,
    context: str,
) -> tuple[str, str | None]:
    """Return the (entity, nic) of a series from its tags, checking the datacenter tag.

    Every group-by key has one value per group, so OpenTSDB always lists it in `tags`. A
    missing key means that the server did not apply the filters.
    """
    tags = element.get("tags")
    if not isinstance(tags, dict):
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has tags "
            f"{_preview(tags)}, expected an object"
        )
    if tags.get(DATACENTER_LABEL) != datacenter_label:
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has "
            f"{DATACENTER_LABEL}={tags.get(DATACENTER_LABEL)!r}, expected {datacenter_label!r}; "
            "the server ignored the datacenter filter"
        )
    entity = _required_tag(tags, spec.entity_label, index, context)
    nic = _required_tag(tags, NIC_LABEL, index, context) if spec.per_nic else None
    return entity, nic


def _required_tag(tags: dict[str, Any], key: str, index: int, context: str) -> str:
    value = tags.get(key)
    if not isinstance(value, str) or not value:
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has no {key!r} tag "
            f"(tags {_preview(tags)}), so its series cannot be identified"
        )
    return value


def _timestamps(dps: dict[str, Any], index: int, context: str) -> npt.NDArray[np.int64]:
    """Return the `dps` keys as epoch milliseconds, converting second keys."""
    try:
        ts = np.asarray(list(dps), dtype=np.int64)
    except (ValueError, OverflowError) as exc:
        bad = next((key for key in dps if not _is_integer_text(key)), None)
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has dps key {bad!r}, "
            "expected an integer epoch timestamp"
        ) from exc
    return np.where((ts >= 0) & (ts < _SECONDS_LIMIT), ts * 1000, ts)


def _is_integer_text(key: str) -> bool:
    try:
        np.asarray([key], dtype=np.int64)
    except (ValueError, OverflowError):
        return False
    return True


def _values(
    dps: dict[str, Any], index: int, context: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Return the `dps` values as float64 and a mask of the missing ones ("NaN" and null)."""
    raw = list(dps.values())
    try:
        # NumPy turns None into NaN and parses the string "NaN", so one vectorised pass
        # covers integers, floats and both missing-value spellings.
        values = np.asarray(raw, dtype=np.float64)
        if values.shape != (len(raw),):
            raise ValueError("dps values are nested arrays")
    except (ValueError, TypeError, OverflowError) as exc:
        bad = next((value for value in raw if not _converts_to_float(value)), None)
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has value "
            f'{_preview(bad)}, expected a number, "NaN" or null'
        ) from exc

    missing = ~np.isfinite(values)
    for position in np.flatnonzero(missing):
        original = raw[position]
        if original is not None and original != "NaN":
            raise OpenTSDBDecodeError(
                f"invalid OpenTSDB response for {context}: element {index} has value "
                f'{_preview(original)}, expected a finite number, "NaN" or null'
            )
    return values, missing


def _converts_to_float(value: object) -> bool:
    if isinstance(value, list | dict):
        return False
    try:
        np.asarray([value], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _build_table(
    series: list[_Series], spec: MetricSpec, service_name: str, datacenter_label: str
) -> tuple[pa.Table, int, int]:
    """Concatenate the series into one sorted table; return it, its series and duplicates."""
    lengths = np.array([len(item.ts) for item in series], dtype=np.int64)
    if not series or int(lengths.sum()) == 0:
        return METRIC_FILE_SCHEMA.empty_table(), 0, 0

    # Rank each (entity, nic) in the output order, so that one stable sort on (rank, ts)
    # orders the rows and keeps duplicates in response order.
    identities = sorted(
        {(item.entity, item.nic) for item in series},
        key=lambda identity: (identity[0], identity[1] or ""),
    )
    rank_of = {identity: rank for rank, identity in enumerate(identities)}
    series_ranks = np.array([rank_of[(item.entity, item.nic)] for item in series], np.int64)
    ranks = np.repeat(series_ranks, lengths)
    ts = np.concatenate([item.ts for item in series])
    values = np.concatenate([item.values for item in series])

    order = np.lexsort((ts, ranks))
    ranks, ts, values = ranks[order], ts[order], values[order]

    # Keep the last of each run of equal (rank, ts).
    same_as_next = (ranks[:-1] == ranks[1:]) & (ts[:-1] == ts[1:])
    keep = np.append(~same_as_next, True)
    duplicates = int(np.count_nonzero(same_as_next))
    ranks, ts, values = ranks[keep], ts[keep], values[keep]

    rows = len(ts)
    rank_indices = pa.array(ranks)
    entities = pa.array([entity for entity, _ in identities], pa.string()).take(rank_indices)
    if spec.per_nic:
        nics = pa.array([nic for _, nic in identities], pa.string()).take(rank_indices)
    else:
        nics = pa.nulls(rows, pa.string())

    table = pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(spec.entity_kind, pa.string()), rows),
            pa.repeat(pa.scalar(service_name, pa.string()), rows),
            pa.repeat(pa.scalar(datacenter_label, pa.string()), rows),
            entities,
            nics,
            pa.array(ts, type=pa.timestamp("ms", tz="UTC")),
            pa.array(values, type=pa.float64()),
        ],
        schema=METRIC_FILE_SCHEMA,
    )
    series_count = int(np.count_nonzero(np.diff(ranks))) + 1
    return table, series_count, duplicates


def _preview(value: object) -> str:
    text = repr(value[:_PREVIEW_CHARS]) if isinstance(value, bytes) else repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."
