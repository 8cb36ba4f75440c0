"""JSON encoding of `/api/query` responses in OpenTSDB 2.4's layout, built from numpy arrays.

Each response object is `{"metric", "tags", "aggregateTags", "query", "dps"}`. `query` is
`{"index": i}` as OVHcloud's proxy sends it, or the whole sub-query with `showQuery`.
`dps` maps timestamps (seconds, or ms with `msResolution`) written as strings to values, or
is a list of `[ts, value]` pairs with the `arrays` flag. Without `msResolution` several points
in one second give duplicate keys, as in OpenTSDB.

Values are written as Java's `Double.toString` writes them, as OpenTSDB's Jackson does:
`5.0`, `0.25`, `1.0E7`, `1.0E-4`. NaN is the JSON string "NaN", or null under the `null` fill
policy. The dps text is assembled with numpy from orjson's float text, because per-point
Python formatting took about a second for 720,000 points on the development machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

from vscope_pipeline.simulator.tsdb_aggregate import TimeArray, ValueArray
from vscope_pipeline.simulator.tsdb_engine import GroupResult
from vscope_pipeline.simulator.tsdb_query import PlannedSubQuery

# Java's Double.toString switches to E notation outside [1e-3, 1e7). Inside it, Java and
# orjson both write the shortest text that reads back to the same double.
_PLAIN_MIN = 1e-3
_PLAIN_MAX = 1e7


def encode_response(
    results: Sequence[GroupResult], *, ms_resolution: bool, show_query: bool, arrays: bool
) -> tuple[bytes, int]:
    """Return the JSON response body for `results` and the number of data points in it."""
    bodies = _dps_bodies(
        [result.timestamps_ms for result in results],
        [result.values for result in results],
        [result.null_fill for result in results],
        ms_resolution=ms_resolution,
        arrays=arrays,
    )
    opening, closing = (b"[", b"]") if arrays else (b"{", b"}")
    # One join at the end: the dps texts are slices of one buffer and are copied only once.
    pieces: list[bytes | memoryview] = [b"["]
    for position, (result, body) in enumerate(zip(results, bodies, strict=True)):
        query = _query_json(result.sub_query) if show_query else {"index": result.sub_query.index}
        head = orjson.dumps(
            {
                "metric": result.metric,
                "tags": dict(result.tags),
                "aggregateTags": list(result.aggregate_tags),
                "query": query,
            }
        )
        if position:
            pieces.append(b",")
        pieces.extend((head[:-1], b',"dps":', opening, body, closing, b"}"))
    pieces.append(b"]")
    point_count = sum(len(result.timestamps_ms) for result in results)
    return b"".join(pieces), point_count


def encode_dps(
    timestamps: Sequence[TimeArray],
    values: Sequence[ValueArray],
    null_fills: Sequence[bool],
    *,
    ms_resolution: bool,
    arrays: bool,
) -> list[bytes]:
    """Return the `dps` JSON of each response object, all formatted in one pass.

    `null_fills[i]` is True when object i writes NaN as null rather than "NaN".
    """
    bodies = _dps_bodies(timestamps, values, null_fills, ms_resolution=ms_resolution, arrays=arrays)
    opening, closing = (b"[", b"]") if arrays else (b"{", b"}")
    return [opening + bytes(body) + closing for body in bodies]


def _dps_bodies(
    timestamps: Sequence[TimeArray],
    values: Sequence[ValueArray],
    null_fills: Sequence[bool],
    *,
    ms_resolution: bool,
    arrays: bool,
) -> list[bytes | memoryview]:
    """Return the `dps` texts without their brackets, as slices of one shared buffer."""
    counts = np.array([len(ts) for ts in timestamps], np.intp)
    if counts.sum() == 0:
        return [b""] * len(counts)
    all_ts = np.concatenate(timestamps)
    keys = all_ts if ms_resolution else all_ts // 1000
    nulls = np.repeat(np.array(null_fills, bool), counts)
    value_texts = _value_texts(np.concatenate(values), nulls)
    prefix_open, prefix_close, suffix = (b"[", b",", b"]") if arrays else (b'"', b'":', b"")

    prefixes = _key_prefixes(keys, prefix_open, prefix_close)
    if prefixes is None:
        # Keys of different widths (before 2001 in seconds): format point by point.
        texts = value_texts.split(b",")
        pieces = [
            prefix_open + str(key).encode() + prefix_close + text + suffix
            for key, text in zip(keys.tolist(), texts, strict=True)
        ]
        ends = np.cumsum(counts)
        return [
            b",".join(pieces[end - count : end])
            for count, end in zip(counts.tolist(), ends.tolist(), strict=True)
        ]

    joined, element_starts = _interleave(prefixes, value_texts, suffix)
    view = memoryview(joined)
    # Object i covers elements [first, first + count); its text ends before the separator
    # that precedes the next object's first element.
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    bounds = np.append(element_starts, len(joined) + 1).tolist()
    return [
        view[bounds[first] : bounds[first + count] - 1] if count else b""
        for first, count in zip(firsts.tolist(), counts.tolist(), strict=True)
    ]


def java_double_text(value: float) -> str:
    """Return the text Java's `Double.toString` gives for `value` (JDK 19+ shortest digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or _PLAIN_MIN <= abs(value) < _PLAIN_MAX:
        return orjson.dumps(value).decode()
    scientific = np.format_float_scientific(value, unique=True, trim="0", exp_digits=1)
    mantissa, exponent = scientific.split("e")
    return f"{mantissa}E{int(exponent)}"


def _value_texts(values: ValueArray, nulls: npt.NDArray[np.bool_]) -> bytes:
    """Return the values' JSON texts joined by commas; NaN is null where `nulls` is set."""
    texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    magnitude = np.abs(values)
    plain = ((magnitude >= _PLAIN_MIN) & (magnitude < _PLAIN_MAX)) | (values == 0)
    unusual = np.flatnonzero(~plain)
    if len(unusual) == 0:
        return texts

    # Replace the few texts that differ from Java's (orjson writes NaN as null and large or
    # tiny values without E notation), copying the text between them in slices.
    separators = np.flatnonzero(np.frombuffer(texts, np.uint8) == ord(","))
    starts = np.concatenate(([0], separators + 1))
    ends = np.append(separators, len(texts))
    pieces = []
    cursor = 0
    for index in unusual.tolist():
        value = float(values[index])
        if math.isnan(value):
            replacement = b"null" if nulls[index] else b'"NaN"'
        else:
            replacement = java_double_text(value).encode()
        pieces.append(texts[cursor : starts[index]])
        pieces.append(replacement)
        cursor = int(ends[index])
    pieces.append(texts[cursor:])
    return b"".join(pieces)


def _key_prefixes(
    keys: TimeArray, prefix_open: bytes, prefix_close: bytes
) -> npt.NDArray[np.uint8] | None:
    """Return `prefix_open + digits + prefix_close` per key, as a (count, width) byte matrix.

    Return None when the keys are negative or do not all have the same number of digits.
    Grouped responses repeat the same timestamps in every object, so each distinct key is
    formatted once.
    """
    smallest, largest = int(keys.min()), int(keys.max())
    width = len(str(largest))
    if smallest < 0 or len(str(smallest)) != width:
        return None
    distinct, inverse = np.unique(keys, return_inverse=True)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    table = np.empty((len(distinct), len(prefix_open) + width + len(prefix_close)), np.uint8)
    table[:, : len(prefix_open)] = np.frombuffer(prefix_open, np.uint8)
    table[:, len(prefix_open) : len(prefix_open) + width] = (distinct[:, None] // powers) % 10 + 48
    table[:, len(prefix_open) + width :] = np.frombuffer(prefix_close, np.uint8)
    return table[inverse]


def _interleave(
    prefixes: npt.NDArray[np.uint8], value_texts: bytes, suffix: bytes
) -> tuple[bytes, npt.NDArray[np.intp]]:
    """Return `prefix_i + value_i + suffix` for every element, joined by commas.

    `prefixes` has one fixed-width row per element and `value_texts` contains the values'
    texts joined by commas (a value text never contains a comma). Also return the offset
    where each element starts. The output is a sequence of runs (prefix, value, suffix,
    separator) filled from three byte streams through masks, with no Python loop.
    """
    count, width = prefixes.shape
    text = np.frombuffer(value_texts, np.uint8)
    separators = np.flatnonzero(text == ord(","))
    value_starts = np.concatenate(([0], separators + 1))
    value_ends = np.append(separators, len(text))

    runs = np.empty((count, 4), np.intp)
    runs[:, 0] = width
    runs[:, 1] = value_ends - value_starts
    runs[:, 2] = len(suffix)
    runs[:, 3] = 1
    runs[-1, 3] = 0  # no separator after the last element
    source = np.repeat(np.tile(np.array([0, 1, 2, 1], np.uint8), count), runs.ravel())

    output = np.empty(len(source), np.uint8)
    is_prefix = source == 0
    output[is_prefix] = prefixes.ravel()
    if suffix:
        is_suffix = source == 2
        output[is_suffix] = np.tile(np.frombuffer(suffix, np.uint8), count)
        output[~(is_prefix | is_suffix)] = text
    else:
        output[~is_prefix] = text
    element_starts = np.concatenate(([0], np.cumsum(runs.sum(axis=1))[:-1]))
    return output.tobytes(), element_starts


def _query_json(planned: PlannedSubQuery) -> dict[str, object]:
    """Return the sub-query as OpenTSDB echoes it with `showQuery`."""
    sub = planned.sub
    return {
        "aggregator": sub.aggregator,
        "metric": sub.metric,
        "tsuids": None,
        "downsample": sub.downsample,
        "rate": sub.rate,
        "filters": [tag_filter.to_json() for tag_filter in sub.filters],
        "index": planned.index,
        # OpenTSDB derives this deprecated map from the group-by filters.
        "tags": {f.tagk: f"{f.type}({f.filter})" for f in sub.filters if f.group_by},
        "rateOptions": None if sub.rate_options is None else sub.rate_options.to_json(),
        "explicitTags": sub.explicit_tags,
        "percentiles": None,
    }
