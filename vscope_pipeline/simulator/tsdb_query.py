"""The `/api/query` POST body: JSON parsing, validation and de-duplication, as in OpenTSDB 2.4.

Parsing mirrors Jackson's binding of `TSQuery`. Unknown keys are ignored, and scalars are
coerced (a JSON number is accepted for `start`, the string "true" for `rate`). `tags` and
`filters` are applied in document order, so the later one wins. Identical sub-queries are
merged before each gets its `index`. Validation then runs OpenTSDB's checks, with its
messages.

Keys that OVHcloud's proxy does not support (`showTSUIDs`, `showSummary`, `showStats`,
`noAnnotations`, `globalAnnotations`, `timezone`, `useCalendar`, `percentiles`) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vscope_pipeline.simulator.tsdb_aggregate import AGGREGATORS, Aggregator
from vscope_pipeline.simulator.tsdb_downsample import DownsampleSpec, parse_downsample
from vscope_pipeline.simulator.tsdb_errors import (
    PARSE_ERROR_MESSAGE,
    InvalidQueryError,
    TsdbHttpError,
)
from vscope_pipeline.simulator.tsdb_filters import TagFilter, build_filter, tags_to_filters
from vscope_pipeline.simulator.tsdb_rate import RateOptions
from vscope_pipeline.simulator.tsdb_time import MAX_LONG, parse_datetime, parse_java_long


@dataclass(frozen=True)
class SubQuery:
    """One entry of `queries`, as sent (before validation)."""

    aggregator: str | None
    metric: str | None
    downsample: str | None = None
    rate: bool = False
    rate_options: RateOptions | None = None
    filters: tuple[TagFilter, ...] = ()
    explicit_tags: bool = False
    tsuids: tuple[str, ...] | None = None

    def identity(self) -> tuple[object, ...]:
        """Return what OpenTSDB compares to merge duplicate sub-queries.

        A filter's group-by flag is not part of it, as in OpenTSDB.
        """
        return (
            self.aggregator,
            self.metric,
            self.tsuids,
            self.downsample,
            self.rate,
            self.rate_options,
            tuple(tag_filter.identity for tag_filter in self.filters),
            self.explicit_tags,
        )


@dataclass(frozen=True)
class QueryRequest:
    """A parsed POST body, before validation. `queries` is None when the key is missing."""

    start: str | None
    end: str | None
    queries: tuple[SubQuery, ...] | None
    ms_resolution: bool = False
    show_query: bool = False
    delete: bool = False


@dataclass(frozen=True)
class PlannedSubQuery:
    """A validated sub-query, with its index in the response."""

    index: int
    sub: SubQuery
    metric: str
    aggregator: Aggregator
    downsample: DownsampleSpec | None
    rate_options: RateOptions


@dataclass(frozen=True)
class PlannedQuery:
    """A validated query. Times are epoch milliseconds, both ends inclusive."""

    start_ms: int
    end_ms: int
    queries: tuple[PlannedSubQuery, ...]
    ms_resolution: bool
    show_query: bool


class _JsonFloat(float):
    """A JSON float that keeps its source text, which Jackson passes on when it wants a string."""

    text: str

    def __new__(cls, text: str) -> _JsonFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


class _ShapeError(ValueError):
    """A JSON value of the wrong type for its field, as Jackson's mapping errors report."""


def parse_query_body(body: bytes) -> QueryRequest:
    """Parse a POST body into a QueryRequest, or raise the TsdbHttpError OpenTSDB sends."""
    if not body:
        raise TsdbHttpError(
            400,
            "Missing message content",
            "Supply valid JSON formatted data in the body of your request",
        )
    try:
        document = json.loads(
            body.decode("utf-8"), parse_float=_JsonFloat, parse_constant=_reject_constant
        )
        request = _request_from_json(document)
    except (ValueError, OverflowError) as error:
        # InvalidQueryError from a filter and _ShapeError are ValueErrors too.
        raise TsdbHttpError(400, PARSE_ERROR_MESSAGE, str(error)) from error
    if request.queries is None:
        # OpenTSDB de-duplicates the missing list without a null check, so a body without
        # `queries` fails with a NullPointerException and a 500 response.
        raise TsdbHttpError(500, "An internal null pointer exception was thrown")
    return request


def plan_query(request: QueryRequest, now_ms: int) -> PlannedQuery:
    """Validate a parsed query as OpenTSDB's `TSQuery.validateAndSetQuery` does.

    Raise TsdbHttpError 400 with OpenTSDB's message, and with a description of the query in
    `details`, as OpenTSDB does.
    """
    try:
        return _plan(request, now_ms)
    except InvalidQueryError as error:
        raise TsdbHttpError(400, str(error), describe_request(request)) from error


def _plan(request: QueryRequest, now_ms: int) -> PlannedQuery:
    if not request.start:
        raise InvalidQueryError("Missing start time")
    start_ms = parse_datetime(request.start, now_ms)
    end_ms = parse_datetime(request.end, now_ms) if request.end else now_ms
    if end_ms < start_ms:
        raise InvalidQueryError(
            f"End time [{end_ms}] must be greater than or equal to the start time [{start_ms}]"
        )
    if not request.queries:
        raise InvalidQueryError("Missing queries")

    planned = []
    for index, sub in enumerate(request.queries):
        if not sub.aggregator:
            raise InvalidQueryError("Missing the aggregation function")
        aggregator = AGGREGATORS.get(sub.aggregator)
        if aggregator is None:
            raise InvalidQueryError(f"No such aggregation function: {sub.aggregator}")
        if not sub.tsuids and not sub.metric:
            raise InvalidQueryError("Missing the metric or tsuids, provide at least one")
        downsample = parse_downsample(sub.downsample) if sub.downsample else None
        if sub.tsuids:
            # NOTE: the simulator has no UID table, so it cannot run TSUID queries.
            # OVHcloud's proxy does not document `tsuids` either.
            raise InvalidQueryError(
                "The simulator does not support 'tsuids' sub-queries: query by 'metric' "
                "with 'filters' instead"
            )
        planned.append(
            PlannedSubQuery(
                index=index,
                sub=sub,
                metric=sub.metric or "",
                aggregator=aggregator,
                downsample=downsample,
                rate_options=sub.rate_options or RateOptions(),
            )
        )
    return PlannedQuery(
        start_ms=start_ms,
        end_ms=end_ms,
        queries=tuple(planned),
        ms_resolution=request.ms_resolution,
        show_query=request.show_query,
    )


def describe_request(request: QueryRequest) -> str:
    """Describe a query in the style of OpenTSDB's `TSQuery.toString`, for error details."""
    subs = ", ".join(
        f"TSSubQuery(metric={sub.metric or ''}, filters=["
        + ", ".join(tag_filter.describe() for tag_filter in sub.filters)
        + f"], tsuids=[{', '.join(sub.tsuids or ())}], agg={sub.aggregator}, "
        f"downsample={sub.downsample}, rate={_java(sub.rate)}, "
        f"rate_options={_describe_rate_options(sub.rate_options)}, "
        f"explicit_tags={_java(sub.explicit_tags)}, index={index})"
        for index, sub in enumerate(request.queries or ())
    )
    return (
        f"TSQuery(start_time={request.start}, end_time={request.end}, subQueries[{subs}] "
        f"padding=false, no_annotations=false, with_global_annotations=false, "
        f"show_tsuids=false, ms_resolution={_java(request.ms_resolution)}, options=[])"
    )


def _describe_rate_options(options: RateOptions | None) -> str:
    if options is None:
        return "null"
    return f"{{{_java(options.counter)},{options.counter_max},{options.reset_value}}}"


def _java(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reject_constant(name: str) -> float:
    raise ValueError(f"Non-standard token '{name}': NaN and Infinity are not valid JSON numbers")


def _request_from_json(document: object) -> QueryRequest:
    if not isinstance(document, dict):
        raise _ShapeError(
            f"expected a JSON object with 'start' and 'queries', got {_json_type(document)}"
        )
    queries: list[SubQuery] | None = None
    raw_queries = document.get("queries")
    if raw_queries is not None:
        if not isinstance(raw_queries, list):
            raise _ShapeError(f"'queries' must be an array, got {_json_type(raw_queries)}")
        queries = [_sub_query_from_json(entry) for entry in raw_queries]
    return QueryRequest(
        start=_as_text(document.get("start"), "start"),
        end=_as_text(document.get("end"), "end"),
        queries=None if queries is None else tuple(_unique(queries)),
        ms_resolution=_as_bool(document.get("msResolution"), "msResolution"),
        show_query=_as_bool(document.get("showQuery"), "showQuery"),
        delete=_as_bool(document.get("delete"), "delete"),
    )


def _unique(queries: Sequence[SubQuery]) -> list[SubQuery]:
    seen: set[tuple[object, ...]] = set()
    unique = []
    for sub in queries:
        key = sub.identity()
        if key not in seen:
            seen.add(key)
            unique.append(sub)
    return unique


def _sub_query_from_json(entry: object) -> SubQuery:
    if not isinstance(entry, dict):
        raise _ShapeError(f"each entry of 'queries' must be an object, got {_json_type(entry)}")
    filters: tuple[TagFilter, ...] = ()
    # OpenTSDB applies `tags` and `filters` in document order and each replaces the
    # filter list, so whichever comes later wins.
    for key, value in entry.items():
        if key == "tags":
            filters = tuple(tags_to_filters(_as_tag_map(value)))
        elif key == "filters":
            filters = tuple(_filters_from_json(value))
    tsuids = entry.get("tsuids")
    if tsuids is not None and not (
        isinstance(tsuids, list) and all(isinstance(item, str) for item in tsuids)
    ):
        raise _ShapeError(f"'tsuids' must be an array of strings, got {tsuids!r}")
    return SubQuery(
        aggregator=_as_text(entry.get("aggregator"), "aggregator"),
        metric=_as_text(entry.get("metric"), "metric"),
        downsample=_as_text(entry.get("downsample"), "downsample"),
        rate=_as_bool(entry.get("rate"), "rate"),
        rate_options=_rate_options_from_json(entry.get("rateOptions")),
        filters=filters,
        explicit_tags=_as_bool(entry.get("explicitTags"), "explicitTags"),
        tsuids=None if tsuids is None else tuple(tsuids),
    )


def _filters_from_json(value: object) -> list[TagFilter]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _ShapeError(f"'filters' must be an array, got {_json_type(value)}")
    filters = []
    for item in value:
        if not isinstance(item, dict):
            raise _ShapeError(f"each filter must be an object, got {_json_type(item)}")
        group_by = item.get("groupBy", item.get("group_by"))
        filters.append(
            build_filter(
                _as_text(item.get("type"), "type"),
                _as_text(item.get("tagk"), "tagk"),
                _as_text(item.get("filter"), "filter"),
                _as_bool(group_by, "groupBy"),
            )
        )
    return filters


def _as_tag_map(value: object) -> Mapping[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _ShapeError(f"'tags' must be an object, got {_json_type(value)}")
    return {key: _as_text(item, f"tags.{key}") for key, item in value.items()}


def _rate_options_from_json(value: object) -> RateOptions | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _ShapeError(f"'rateOptions' must be an object, got {_json_type(value)}")
    defaults = RateOptions()
    return RateOptions(
        counter=_as_bool(value.get("counter"), "counter"),
        counter_max=_as_long(value.get("counterMax"), "counterMax", defaults.counter_max),
        reset_value=_as_long(value.get("resetValue"), "resetValue", defaults.reset_value),
        drop_resets=_as_bool(value.get("dropResets"), "dropResets"),
    )


def _as_text(value: object, field: str) -> str | None:
    """Coerce a scalar to the text Jackson would give a String property."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _JsonFloat):
        return value.text
    if isinstance(value, int):
        return str(value)
    raise _ShapeError(f"'{field}' must be a string, got {_json_type(value)}")


def _as_bool(value: object, field: str) -> bool:
    """Coerce a scalar to a boolean as Jackson does for a primitive boolean property."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "false", ""):
        return value.lower() == "true"
    raise _ShapeError(f"'{field}' must be a boolean, got {value!r}")


def _as_long(value: object, field: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise _ShapeError(f"'{field}' must be an integer, got {value!r}")
    if isinstance(value, str):
        return parse_java_long(value)
    if not isinstance(value, int | float):
        raise _ShapeError(f"'{field}' must be an integer, got {_json_type(value)}")
    # Jackson truncates a float given for a long.
    number = int(value)
    if not -MAX_LONG - 1 <= number <= MAX_LONG:
        raise _ShapeError(f"'{field}' {value!r} does not fit a 64-bit integer")
    return number


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"
