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

Speed: a day of one metric is hundreds of thousands of points, so no step loops over points in
Python. The series of one response usually share the same `dps` keys (one point per minute),
so each distinct key set is parsed once, and keys of one width are parsed as a grid of digits.
"""

from __future__ import annotations

import threading
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

# Keys of up to 18 decimal digits always fit in an int64 (its maximum has 19 digits).
_MAX_GRID_DIGITS = 18

_PREVIEW_CHARS = 80

# Decoding holds the GIL for most of its work, so threads that decode at once only take
# turns, and each keeps its parsed response alive meanwhile (about 100 bytes per point).
# Taking turns through this lock keeps one parsed response in memory instead, and in
# `make bench` on 2 cores it was faster than four interleaved decodes.
# NOTE: on a free-threaded Python build this lock serialises work that could run in parallel.
_DECODE_LOCK = threading.Lock()


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
    """One series as received. `ts` may be shared with other series and is never modified."""

    entity: str
    nic: str | None
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Rows:
    """The kept points in output order, with the rank of each row's (entity, nic)."""

    series: int
    ranks: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    dropped_nan: int
    dropped_out_of_window: int
    duplicates: int


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
    a JSON array of series objects of the requested metric and datacenter. Calls from several
    threads run one at a time.
    """
    with _DECODE_LOCK:
        return _decode(content, spec, service_name, datacenter_label, window)


def _decode(
    content: bytes,
    spec: MetricSpec,
    service_name: str,
    datacenter_label: str,
    window: DayWindow,
) -> DecodedDay:
    context = f"metric {spec.name}, datacenter {datacenter_label}, day {window.day.isoformat()}"
    elements = _parse_array(content, context)

    series: list[_Series] = []
    timestamps = _TimestampParser(context)
    empty_series = skipped_elements = 0
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
        ts = timestamps.parse(dps, index)
        series.append(_Series(entity, nic, ts, _values(dps, index, context)))

    identities = sorted(
        {(item.entity, item.nic) for item in series},
        key=lambda identity: (identity[0], identity[1] or ""),
    )
    rows = _order_rows(series, identities, window)
    table = _build_table(rows, identities, spec, service_name, datacenter_label)
    stats = DecodeStats(
        series=rows.series,
        points=table.num_rows,
        dropped_nan=rows.dropped_nan,
        dropped_out_of_window=rows.dropped_out_of_window,
        duplicates=rows.duplicates,
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


class _TimestampParser:
    """Parses the `dps` keys of each series, once per distinct sequence of keys.

    The series of one response usually have the same keys (one point per minute), so the
    parsed array is shared. Comparing with the previous series' keys is tried first, because
    it is cheaper than hashing them.
    """

    def __init__(self, context: str) -> None:
        self._context = context
        self._previous_keys: list[str] = []
        self._previous_ts: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._by_keys: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}

    def parse(self, dps: dict[str, Any], index: int) -> npt.NDArray[np.int64]:
        """Return the keys of a non-empty `dps` as epoch milliseconds; never modify the array."""
        keys = list(dps)
        if keys == self._previous_keys:
            return self._previous_ts
        key_tuple = tuple(keys)
        ts = self._by_keys.get(key_tuple)
        if ts is None:
            ts = _timestamps(key_tuple, index, self._context)
            self._by_keys[key_tuple] = ts
        self._previous_keys, self._previous_ts = keys, ts
        return ts


def _timestamps(keys: tuple[str, ...], index: int, context: str) -> npt.NDArray[np.int64]:
    """Return the `dps` keys as epoch milliseconds, converting second keys."""
    ts = _parse_digit_grid(keys)
    if ts is None:
        try:
            ts = np.asarray(keys, dtype=np.int64)
        except (ValueError, OverflowError) as exc:
            bad = next((key for key in keys if not _is_integer_text(key)), None)
            raise OpenTSDBDecodeError(
                f"invalid OpenTSDB response for {context}: element {index} has dps key "
                f"{bad!r}, expected an integer epoch timestamp"
            ) from exc
    return np.where((ts >= 0) & (ts < _SECONDS_LIMIT), ts * 1000, ts)


def _parse_digit_grid(keys: tuple[str, ...]) -> npt.NDArray[np.int64] | None:
    """Parse keys that are all ASCII digits of one width; return None for any other keys.

    The keys are joined with a comma after each one, and the bytes are read as one row of
    `width` digits and a comma per key. If every comma sits at the end of a row and every
    other byte is a digit, each key is exactly one row, so the parse cannot misread a key.
    """
    width = len(keys[0])
    if not 0 < width <= _MAX_GRID_DIGITS:
        return None
    try:
        text = (",".join(keys) + ",").encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(text) != len(keys) * (width + 1):
        return None
    grid = np.frombuffer(text, dtype=np.uint8).reshape(len(keys), width + 1)
    # Bytes below "0" wrap around to large values, so one comparison rejects them too.
    digits = grid[:, :width] - np.uint8(ord("0"))
    if (grid[:, width] != ord(",")).any() or (digits > 9).any():
        return None
    ts = digits[:, 0].astype(np.int64)
    for column in range(1, width):
        ts *= 10
        ts += digits[:, column]
    return ts


def _is_integer_text(key: str) -> bool:
    try:
        np.asarray([key], dtype=np.int64)
    except (ValueError, OverflowError):
        return False
    return True


def _values(dps: dict[str, Any], index: int, context: str) -> npt.NDArray[np.float64]:
    """Return the `dps` values as float64, with NaN for the missing ones ("NaN" and null)."""
    try:
        # NumPy turns None into NaN and parses the string "NaN", so one vectorised pass
        # covers integers, floats and both missing-value spellings.
        values = np.fromiter(dps.values(), dtype=np.float64, count=len(dps))
    except (ValueError, TypeError, OverflowError) as exc:
        bad = next((value for value in dps.values() if not _converts_to_float(value)), None)
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has value "
            f'{_preview(bad)}, expected a number, "NaN" or null'
        ) from exc

    if not np.isfinite(values).all():
        raw = list(dps.values())
        for position in np.flatnonzero(~np.isfinite(values)):
            original = raw[position]
            if original is not None and original != "NaN":
                raise OpenTSDBDecodeError(
                    f"invalid OpenTSDB response for {context}: element {index} has value "
                    f'{_preview(original)}, expected a finite number, "NaN" or null'
                )
    return values


def _converts_to_float(value: object) -> bool:
    if isinstance(value, list | dict):
        return False
    try:
        np.asarray([value], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _order_rows(
    series: list[_Series], identities: list[tuple[str, str | None]], window: DayWindow
) -> _Rows:
    """Drop missing and out-of-window points, then sort by identity rank and ts.

    Duplicates of one (rank, ts) are reduced to the last one in response order.
    """
    if not series:
        empty_int = np.empty(0, dtype=np.int64)
        return _Rows(0, empty_int, empty_int, np.empty(0, dtype=np.float64), 0, 0, 0)

    rank_of = {identity: rank for rank, identity in enumerate(identities)}
    series_ranks = np.array([rank_of[(item.entity, item.nic)] for item in series], np.int64)
    lengths = np.array([len(item.ts) for item in series], dtype=np.int64)
    ts = np.concatenate([item.ts for item in series])
    values = np.concatenate([item.values for item in series])

    missing = ~np.isfinite(values)
    in_window = (ts >= window.start_ms) & (ts < window.stop_ms)
    keep = in_window & ~missing
    dropped_nan = int(np.count_nonzero(missing))
    dropped_out_of_window = int(np.count_nonzero(~in_window & ~missing))
    if not keep.all():
        positions = np.repeat(np.arange(len(series)), lengths)[keep]
        lengths = np.bincount(positions, minlength=len(series)).astype(np.int64)
        ts, values = ts[keep], values[keep]

    if len(ts) == 0:
        ranks = np.empty(0, dtype=np.int64)
        return _Rows(0, ranks, ts, values, dropped_nan, dropped_out_of_window, 0)
    if len(identities) == len(series) and _each_series_increasing(ts, lengths):
        ranks, ts, values = _concatenate_in_rank_order(series_ranks, lengths, ts, values)
        series_count = int(np.count_nonzero(lengths))
        duplicates = 0
    else:
        ranks, ts, values, duplicates = _sort_and_deduplicate(series_ranks, lengths, ts, values)
        series_count = int(np.count_nonzero(ranks[1:] != ranks[:-1])) + 1
    return _Rows(series_count, ranks, ts, values, dropped_nan, dropped_out_of_window, duplicates)


def _each_series_increasing(ts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> bool:
    """Return whether the timestamps of each series (consecutive runs) strictly increase."""
    increasing = ts[1:] > ts[:-1]
    # The step from the last point of one series to the first point of the next is not
    # inside a series.
    starts = np.cumsum(lengths) - lengths
    boundaries = starts[(starts > 0) & (starts < len(ts))] - 1
    increasing[boundaries] = True
    return bool(increasing.all())


def _concatenate_in_rank_order(
    series_ranks: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Reorder whole series by their (unique) rank, without sorting the points."""
    order = np.argsort(series_ranks)
    ranks = np.repeat(series_ranks[order], lengths[order])
    if (order == np.arange(len(order))).all():
        return ranks, ts, values
    old_starts = np.cumsum(lengths) - lengths
    new_lengths = lengths[order]
    new_starts = np.cumsum(new_lengths) - new_lengths
    # Row i of the output is point (i - new_start + old_start) of the input.
    source = np.arange(len(ts)) + np.repeat(old_starts[order] - new_starts, new_lengths)
    return ranks, ts[source], values[source]


def _sort_and_deduplicate(
    series_ranks: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """Sort by (rank, ts) and keep the last of equal keys; also return the duplicates dropped."""
    ranks = np.repeat(series_ranks, lengths)
    # A stable sort keeps equal (rank, ts) in response order.
    order = np.lexsort((ts, ranks))
    ranks, ts, values = ranks[order], ts[order], values[order]
    same_as_next = (ranks[:-1] == ranks[1:]) & (ts[:-1] == ts[1:])
    keep = np.append(~same_as_next, True)
    return ranks[keep], ts[keep], values[keep], int(np.count_nonzero(same_as_next))


def _build_table(
    rows: _Rows,
    identities: list[tuple[str, str | None]],
    spec: MetricSpec,
    service_name: str,
    datacenter_label: str,
) -> pa.Table:
    count = len(rows.ts)
    if count == 0:
        return METRIC_FILE_SCHEMA.empty_table()

    rank_indices = pa.array(rows.ranks)
    entities = pa.array([entity for entity, _ in identities], pa.string()).take(rank_indices)
    if spec.per_nic:
        nics = pa.array([nic for _, nic in identities], pa.string()).take(rank_indices)
    else:
        nics = pa.nulls(count, pa.string())

    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(spec.entity_kind, pa.string()), count),
            pa.repeat(pa.scalar(service_name, pa.string()), count),
            pa.repeat(pa.scalar(datacenter_label, pa.string()), count),
            entities,
            nics,
            pa.array(rows.ts, type=pa.timestamp("ms", tz="UTC")),
            pa.array(rows.values, type=pa.float64()),
        ],
        schema=METRIC_FILE_SCHEMA,
    )


def _preview(value: object) -> str:
    text = repr(value[:_PREVIEW_CHARS]) if isinstance(value, bytes) else repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."
