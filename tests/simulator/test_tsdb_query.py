"""Parsing and validation of `/api/query` POST bodies, with OpenTSDB's error responses."""

from __future__ import annotations

import orjson
import pytest

from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError
from vscope_pipeline.simulator.tsdb_query import (
    PlannedQuery,
    QueryRequest,
    parse_query_body,
    plan_query,
)
from vscope_pipeline.simulator.tsdb_rate import RateOptions

NOW_MS = 1_709_294_400_000
METRIC = "vscope.host.cpu.usage.perc"


def body(document: object) -> bytes:
    return orjson.dumps(document)


def parse(document: object) -> QueryRequest:
    return parse_query_body(body(document))


def plan(document: object) -> PlannedQuery:
    return plan_query(parse(document), NOW_MS)


def sub(**fields: object) -> dict[str, object]:
    return {"metric": METRIC, "aggregator": "sum", **fields}


def test_parse_minimal_query() -> None:
    query = plan({"start": 1709290800, "queries": [sub()]})
    assert query.start_ms == 1_709_290_800_000
    assert query.end_ms == NOW_MS
    assert query.ms_resolution is False
    assert [planned.metric for planned in query.queries] == [METRIC]
    assert query.queries[0].aggregator.name == "sum"
    assert query.queries[0].downsample is None
    assert query.queries[0].rate_options == RateOptions()


@pytest.mark.parametrize(
    ("start_text", "start_ms"),
    [
        ("1709290800", 1_709_290_800_000),
        # Jackson hands the number's source text to the time parser, so three decimals are
        # milliseconds and two decimals make an 11-digit millisecond value (in 1975).
        ("1709290800.250", 1_709_290_800_250),
        ("1709290800.25", 170_929_080_025),
    ],
)
def test_start_as_json_number_keeps_its_text(start_text: str, start_ms: int) -> None:
    raw = b'{"start": %s, "queries": [{"metric": "m", "aggregator": "sum"}]}' % start_text.encode()
    assert plan_query(parse_query_body(raw), NOW_MS).start_ms == start_ms


def test_scalars_are_coerced_like_jackson() -> None:
    request = parse(
        {
            "start": "1h-ago",
            "msResolution": "true",
            "showQuery": 1,
            "queries": [sub(rate="true", explicitTags=0, rateOptions={"counterMax": "100"})],
        }
    )
    assert request.ms_resolution is True
    assert request.show_query is True
    assert request.queries is not None
    assert request.queries[0].rate is True
    assert request.queries[0].explicit_tags is False
    assert request.queries[0].rate_options == RateOptions(counter_max=100)


def test_unknown_keys_are_ignored() -> None:
    request = parse(
        {"start": "1h-ago", "showTSUIDs": True, "bogus": [1], "queries": [sub(extra={})]}
    )
    assert request.queries is not None
    assert len(request.queries) == 1


def test_later_tags_replace_filters() -> None:
    filters = [{"type": "literal_or", "tagk": "host", "filter": "h1", "groupBy": False}]
    # Python dicts keep insertion order, as the JSON document does.
    request = parse({"start": "1h-ago", "queries": [sub(filters=filters, tags={})]})
    assert request.queries is not None
    assert request.queries[0].filters == ()


def test_later_filters_replace_tags() -> None:
    filters = [{"type": "regexp", "tagk": "host", "filter": "^h", "group_by": True}]
    request = parse({"start": "1h-ago", "queries": [sub(tags={"dc": "*"}, filters=filters)]})
    assert request.queries is not None
    (tag_filter,) = request.queries[0].filters
    assert (tag_filter.type, tag_filter.tagk, tag_filter.filter) == ("regexp", "host", "^h")
    assert tag_filter.group_by is True


def test_identical_sub_queries_are_merged() -> None:
    first = sub(tags={"host": "a|b"})
    # Same filter in another order and another group-by flag: equal for OpenTSDB.
    same = sub(filters=[{"type": "literal_or", "tagk": "host", "filter": "b|a"}])
    other = sub(aggregator="max")
    query = plan({"start": "1h-ago", "queries": [first, same, other, first]})
    assert [(planned.index, planned.aggregator.name) for planned in query.queries] == [
        (0, "sum"),
        (1, "max"),
    ]


def error_of(raw: bytes) -> TsdbHttpError:
    with pytest.raises(TsdbHttpError) as caught:
        plan_query(parse_query_body(raw), NOW_MS)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "status", "message", "details"),
    [
        (
            b"",
            400,
            "Missing message content",
            "Supply valid JSON formatted data in the body of your request",
        ),
        (
            b'{"start": ',
            400,
            "Unable to parse the given JSON",
            "Expecting value: line 1 column 11 (char 10)",
        ),
        (
            b'{"start": NaN, "queries": []}',
            400,
            "Unable to parse the given JSON",
            "Non-standard token 'NaN': NaN and Infinity are not valid JSON numbers",
        ),
        (
            b"[1, 2]",
            400,
            "Unable to parse the given JSON",
            "expected a JSON object with 'start' and 'queries', got an array",
        ),
        (
            body({"start": "1h-ago", "queries": {"metric": METRIC}}),
            400,
            "Unable to parse the given JSON",
            "'queries' must be an array, got an object",
        ),
        (
            body(
                {
                    "start": "1h-ago",
                    "queries": [sub(filters=[{"type": "not_key", "tagk": "h", "filter": "x"}])],
                }
            ),
            400,
            "Unable to parse the given JSON",
            "Could not find a tag value filter of the type: not_key",
        ),
        (
            body({"start": "1h-ago", "queries": [sub(rate="yes")]}),
            400,
            "Unable to parse the given JSON",
            "'rate' must be a boolean, got 'yes'",
        ),
        (
            body({"start": "1h-ago"}),
            500,
            "An internal null pointer exception was thrown",
            "",
        ),
    ],
)
def test_parse_errors(raw: bytes, status: int, message: str, details: str) -> None:
    error = error_of(raw)
    assert error.status == status
    assert error.message == message
    assert error.details == details


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"queries": [sub()]}, "Missing start time"),
        ({"start": "", "queries": [sub()]}, "Missing start time"),
        (
            {"start": 1709290800, "end": 1709290799, "queries": [sub()]},
            "End time [1709290799000] must be greater than or equal to the start time "
            "[1709290800000]",
        ),
        ({"start": "2024/03/01T10", "queries": [sub()]}, "Invalid absolute date: 2024/03/01T10"),
        ({"start": "1h-ago", "queries": []}, "Missing queries"),
        ({"start": "1h-ago", "queries": [{"metric": METRIC}]}, "Missing the aggregation function"),
        (
            {"start": "1h-ago", "queries": [sub(aggregator="Sum")]},
            "No such aggregation function: Sum",
        ),
        (
            {"start": "1h-ago", "queries": [sub(aggregator="multiply")]},
            "No such aggregation function: multiply",
        ),
        (
            {"start": "1h-ago", "queries": [{"aggregator": "sum"}]},
            "Missing the metric or tsuids, provide at least one",
        ),
        (
            {"start": "1h-ago", "queries": [sub(downsample="1m-avg-bogus")]},
            "Unrecognized fill policy: bogus",
        ),
        (
            {"start": "1h-ago", "queries": [sub(tsuids=["000001000001000001"])]},
            "The simulator does not support 'tsuids' sub-queries: query by 'metric' with "
            "'filters' instead",
        ),
    ],
)
def test_validation_errors(document: dict[str, object], message: str) -> None:
    error = error_of(body(document))
    assert error.status == 400
    assert error.message == message
    assert error.details.startswith("TSQuery(start_time=")


def test_validation_error_details_describe_the_query() -> None:
    document = {"start": "1h-ago", "queries": [sub(aggregator="bogus", tags={"host": "h1"})]}
    assert error_of(body(document)).details == (
        "TSQuery(start_time=1h-ago, end_time=None, subQueries[TSSubQuery("
        "metric=vscope.host.cpu.usage.perc, filters=[filter_name=literal_or, tagk=host, "
        "group_by=true, filter=h1, case=false], tsuids=[], agg=bogus, downsample=None, "
        "rate=false, rate_options=null, explicit_tags=false, index=0)] padding=false, "
        "no_annotations=false, with_global_annotations=false, show_tsuids=false, "
        "ms_resolution=false, options=[])"
    )


def test_error_body_json() -> None:
    error = error_of(body({"start": "1h-ago", "queries": []}))
    assert orjson.loads(error.body())["error"]["code"] == 400
    assert orjson.loads(error.body())["error"]["message"] == "Missing queries"
    assert orjson.loads(TsdbHttpError(413, "Too big").body()) == {
        "error": {"code": 413, "message": "Too big"}
    }
