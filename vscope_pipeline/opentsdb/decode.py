"""Decode an `/api/query` response into an Arrow table of METRIC_FILE_SCHEMA.

The response is a JSON array with one object per output series:
`{"metric", "tags", "aggregateTags", "query", "dps": {"<epoch ms or s>": value}}`. Series are
identified by their `tags`, never by their position in the array. The decoder is lenient only
in the ways OpenTSDB itself, or a proxy in front of it, requires. Every point or element it
drops is counted in DecodeStats under the name given here:
- `dropped_nan`: values `"NaN"` (fill policy `nan`) and `null` (fill policy `null`);
- `dropped_infinite`: `"Infinity"` and `"-Infinity"`, quoted as Jackson writes them by default
  or bare as it writes them without quoting, and numbers too large for a float64;
- `dropped_out_of_window`: points outside the UTC day, because OpenTSDB's `end` is inclusive
  and a proxy may widen the window. Keys of at most 10 digits are seconds, longer ones ms;
- `dropped_out_of_range`: values outside the metric's `min_value`..`max_value` (a percentage
  below 0 or above 100, a negative rate, size or latency). They are dropped rather than
  stored, because the lake has no column to flag a row and a query over an average would
  silently include them. The server keeps the original, which a re-run fetches again;
- `duplicates`: points of one (entity, nic, ts) but the last one kept in response order;
- `dropped_unidentified`, `unidentified_series`: series whose tags lack the entity label (or
  `nicname` for a per-NIC metric) and whose `aggregateTags` do not list it either. Such a
  series cannot be stored under an entity, so it is dropped and its tags are logged. A series
  that lists the missing label in `aggregateTags` was merged by a server that ignores
  group-by, and raises OpenTSDBDecodeError so that the caller fetches entity by entity;
- `empty_series`: entries with empty `dps` (OpenTSDB's scan padding);
- `skipped_elements`: elements without `metric` (the `statsSummary` element).
Values sent as a string holding a JSON number (`"12.5"`) are parsed and kept, and counted in
`numeric_strings`. Tag keys other than the datacenter, entity and NIC labels are ignored.
Tag values are stored as they are (quotes, semicolons, `../` and any Unicode included):
they are Parquet values, never parts of a path or of SQL text. Anything else that is not the
expected shape (a boolean or other text as a value, a non-string tag value, another metric or
datacenter) raises OpenTSDBDecodeError.

Speed: a day of one metric is hundreds of thousands of points, so no step loops over points in
Python. The series of one response usually share the same `dps` keys (one point per minute),
so each distinct key set is parsed once, and keys of one width are parsed as a grid of digits.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable
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
from vscope_pipeline.opentsdb.results import DecodeStats

log = logging.getLogger(__name__)

# OpenTSDB reads a timestamp of at most 10 digits as seconds and a longer one as milliseconds.
# Keys below 10**10 are therefore seconds: `dps` is keyed by seconds when a server ignores
# `msResolution`.
_SECONDS_LIMIT = 10_000_000_000

# Keys of up to 18 decimal digits always fit in an int64 (its maximum has 19 digits).
_MAX_GRID_DIGITS = 18

_PREVIEW_CHARS = 80

# The spellings of missing and infinite values that a value string may take. Jackson 2
# writes NaN and the infinities as these strings while QUOTE_NON_NUMERIC_NUMBERS is on, its
# default.
_MISSING_TEXT = "NaN"
_INFINITE_TEXT = frozenset({"Infinity", "-Infinity"})
# A JSON number, the only text accepted as a numeric string. Python's float() also accepts
# "1_000", " 5 " and "inf", which no server writes for a number.
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_TYPES = frozenset({int, float})

# Decoding holds the GIL for most of its work, so threads that decode at once only take
# turns, and each keeps its parsed response alive meanwhile (about 100 bytes per point).
# Taking turns through this lock keeps one parsed response in memory instead, and in
# `make bench` on 2 cores it was faster than four interleaved decodes.
# NOTE: on a free-threaded Python build this lock serialises work that could run in parallel.
_DECODE_LOCK = threading.Lock()


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
    # Counts of the points dropped while ordering and of duplicates. Other fields are zero.
    stats: DecodeStats


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
    empty_series = skipped_elements = numeric_strings = 0
    unidentified: list[dict[str, Any]] = []
    dropped_unidentified = 0
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

        identity = _series_identity(element, index, spec, datacenter_label, context)
        if identity is None:
            unidentified.append(element["tags"])
            dropped_unidentified += len(dps)
            continue
        ts = timestamps.parse(dps, index)
        values, strings = _values(dps, index, context)
        numeric_strings += strings
        series.append(_Series(identity[0], identity[1], ts, values))

    if unidentified:
        _log_unidentified(unidentified, dropped_unidentified, spec, context)
    identities = sorted(
        {(item.entity, item.nic) for item in series},
        key=lambda identity: (identity[0], identity[1] or ""),
    )
    rows = _order_rows(series, identities, window, spec)
    table = _build_table(rows, identities, spec, service_name, datacenter_label)
    stats = rows.stats + DecodeStats(
        series=rows.series,
        points=table.num_rows,
        dropped_unidentified=dropped_unidentified,
        unidentified_series=len(unidentified),
        empty_series=empty_series,
        skipped_elements=skipped_elements,
        numeric_strings=numeric_strings,
    )
    return DecodedDay(table=table, stats=stats)


def _parse_array(content: bytes, context: str) -> list[Any]:
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        document = _parse_with_non_finite_numbers(content)
        if document is None:
            raise OpenTSDBDecodeError(
                f"invalid OpenTSDB response for {context}: the body is not JSON, it starts "
                f"with {_preview(content)}. A proxy may have answered instead of OpenTSDB: "
                "check the endpoint URL"
            ) from exc
    if not isinstance(document, list):
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: expected a JSON array of series, "
            f"got {_preview(document)}"
        )
    return document


def _parse_with_non_finite_numbers(content: bytes) -> Any | None:
    """Parse a body that orjson rejects for a bare NaN, Infinity or overflowing number.

    Jackson writes NaN and the infinities unquoted when QUOTE_NON_NUMERIC_NUMBERS is off, and
    orjson rejects both those literals and numbers beyond float64. The standard library
    parses them as float NaN and infinity. Return None when the body is invalid JSON for
    another reason, or when it parses without any such value, so that the standard library
    never accepts what orjson rejected for a different reason (a lone surrogate escape).
    """
    non_finite = False

    def parse_constant(text: str) -> float:
        nonlocal non_finite
        non_finite = True
        return float(text)

    def parse_float(text: str) -> float:
        nonlocal non_finite
        value = float(text)
        non_finite = non_finite or math.isinf(value)
        return value

    try:
        document = json.loads(content, parse_constant=parse_constant, parse_float=parse_float)
        # orjson refuses to write a string with a lone surrogate, which the standard library
        # reads from a `\ud800` escape and Arrow cannot store.
        orjson.dumps(document)
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        return None
    return document if non_finite else None


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
) -> tuple[str, str | None] | None:
    """Return the (entity, nic) of a series from its tags, checking the datacenter tag.

    Return None for a series that lacks an identifying tag that `aggregateTags` does not list
    either. Every group-by key has one value per group, so OpenTSDB always lists it in `tags`,
    and a key found in `aggregateTags` instead means that the server merged series: that
    raises OpenTSDBDecodeError.
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
    keys = (spec.entity_label, NIC_LABEL) if spec.per_nic else (spec.entity_label,)
    values = [_tag_value(element, tags, key, index, context) for key in keys]
    if any(value is None for value in values):
        return None
    entity = values[0]
    assert entity is not None
    return entity, values[1] if spec.per_nic else None


def _tag_value(
    element: dict[str, Any], tags: dict[str, Any], key: str, index: int, context: str
) -> str | None:
    """Return a tag's value, or None when it is missing or empty and the series not merged."""
    value = tags.get(key)
    if isinstance(value, str) and value:
        return value
    if value is not None and value != "":
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has {key}="
            f"{_preview(value)}, expected a string tag value"
        )
    aggregate_tags = element.get("aggregateTags")
    if isinstance(aggregate_tags, list) and key in aggregate_tags:
        raise OpenTSDBDecodeError(
            f"invalid OpenTSDB response for {context}: element {index} has no {key!r} tag "
            f"(tags {_preview(tags)}), so its series cannot be identified"
        )
    return None


def _log_unidentified(
    tags: list[dict[str, Any]], points: int, spec: MetricSpec, context: str
) -> None:
    # vScope tags are metric labels (datacenter, entity, NIC, environment), not credentials,
    # and the preview cuts a long value short.
    label = f"{spec.entity_label!r} or {NIC_LABEL!r}" if spec.per_nic else repr(spec.entity_label)
    log.warning(
        "OpenTSDB response for %s: dropped %d series (%d points) without a %s tag; "
        "the first has tags %s",
        context,
        len(tags),
        points,
        label,
        _preview(tags[0]),
    )


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


def _values(dps: dict[str, Any], index: int, context: str) -> tuple[npt.NDArray[np.float64], int]:
    """Return the `dps` values as float64 and the count of numeric strings among them.

    Missing values ("NaN" and null) become NaN and the infinities stay infinite, for
    `_order_rows` to count and drop.
    """
    raw = dps.values()
    # Checking the types keeps booleans (which NumPy reads as 1.0 and 0.0) and unchecked
    # strings out of the float conversion. Measured on a 12 MB body of 576,000 float points,
    # it takes 31 ms where orjson's parse takes 274 ms.
    kinds = set(map(type, raw))
    if kinds <= _NUMBER_TYPES:
        return _to_float(raw, len(dps)), 0

    for value in raw:
        if type(value) not in _NUMBER_TYPES and value is not None and type(value) is not str:
            raise _invalid_value(value, index, context)
    strings = [value for value in raw if type(value) is str]
    special = {_MISSING_TEXT, *_INFINITE_TEXT}
    for text in set(strings) - special:
        if not _NUMBER_TEXT.fullmatch(text):
            raise _invalid_value(text, index, context)
    numeric = sum(1 for text in strings if text not in special)
    # NumPy turns None into NaN and parses the checked strings as float() does.
    return _to_float(raw, len(dps)), numeric


def _to_float(values: Iterable[Any], count: int) -> npt.NDArray[np.float64]:
    try:
        return np.fromiter(values, dtype=np.float64, count=count)
    except OverflowError:
        # An integer beyond float64, which only the standard-library parse returns, becomes
        # an infinity like a float literal beyond float64 does.
        return np.array([_float_or_infinity(value) for value in values], dtype=np.float64)


def _float_or_infinity(value: Any) -> float:
    try:
        return float("nan") if value is None else float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _invalid_value(value: object, index: int, context: str) -> OpenTSDBDecodeError:
    return OpenTSDBDecodeError(
        f"invalid OpenTSDB response for {context}: element {index} has value "
        f'{_preview(value)}, expected a number, a string holding a number, "NaN", '
        '"Infinity", "-Infinity" or null'
    )


def _order_rows(
    series: list[_Series],
    identities: list[tuple[str, str | None]],
    window: DayWindow,
    spec: MetricSpec,
) -> _Rows:
    """Drop missing, infinite, out-of-window and out-of-range points, then sort.

    Rows are sorted by identity rank and ts. Each dropped point is counted under the first
    of those reasons that applies. Duplicates of one (rank, ts) are then reduced to the last
    one in response order.
    """
    if not series:
        empty_int = np.empty(0, dtype=np.int64)
        return _Rows(0, empty_int, empty_int, np.empty(0, dtype=np.float64), DecodeStats())

    rank_of = {identity: rank for rank, identity in enumerate(identities)}
    series_ranks = np.array([rank_of[(item.entity, item.nic)] for item in series], np.int64)
    lengths = np.array([len(item.ts) for item in series], dtype=np.int64)
    ts = np.concatenate([item.ts for item in series])
    values = np.concatenate([item.values for item in series])

    missing = np.isnan(values)
    infinite = np.isinf(values)
    outside = (ts < window.start_ms) | (ts >= window.stop_ms)
    dropped = missing | infinite
    out_of_window = outside & ~dropped
    dropped |= outside
    out_of_range = _out_of_range(values, spec) & ~dropped
    dropped |= out_of_range
    drops = DecodeStats(
        dropped_nan=int(np.count_nonzero(missing)),
        dropped_infinite=int(np.count_nonzero(infinite)),
        dropped_out_of_window=int(np.count_nonzero(out_of_window)),
        dropped_out_of_range=int(np.count_nonzero(out_of_range)),
    )
    if dropped.any():
        keep = ~dropped
        positions = np.repeat(np.arange(len(series)), lengths)[keep]
        lengths = np.bincount(positions, minlength=len(series)).astype(np.int64)
        ts, values = ts[keep], values[keep]

    if len(ts) == 0:
        return _Rows(0, np.empty(0, dtype=np.int64), ts, values, drops)
    if len(identities) == len(series) and _each_series_increasing(ts, lengths):
        ranks, ts, values = _concatenate_in_rank_order(series_ranks, lengths, ts, values)
        series_count = int(np.count_nonzero(lengths))
        duplicates = 0
    else:
        ranks, ts, values, duplicates = _sort_and_deduplicate(series_ranks, lengths, ts, values)
        series_count = int(np.count_nonzero(ranks[1:] != ranks[:-1])) + 1
    return _Rows(series_count, ranks, ts, values, drops + DecodeStats(duplicates=duplicates))


def _out_of_range(values: npt.NDArray[np.float64], spec: MetricSpec) -> npt.NDArray[np.bool_]:
    """Return which values lie outside the metric's inclusive `min_value`..`max_value`."""
    outside = np.zeros(len(values), dtype=np.bool_)
    if spec.min_value is not None:
        outside |= values < spec.min_value
    if spec.max_value is not None:
        outside |= values > spec.max_value
    return outside


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
