"""The query engine over an in-memory SeriesSource: responses decoded from the encoded JSON."""

from __future__ import annotations

import orjson
import pytest
from tsdb_support import T0_MS, T0_S, MemorySeriesSource, seconds

from vscope_pipeline.simulator.tsdb_encode import encode_response
from vscope_pipeline.simulator.tsdb_engine import NameIndex, run_query
from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError
from vscope_pipeline.simulator.tsdb_query import parse_query_body, plan_query

CPU = "vscope.host.cpu.usage.perc"
NET = "vscope.host.net.rx"


def run_and_decode(
    source: MemorySeriesSource, document: dict[str, object], max_data_points: int = 0
) -> list[dict[str, object]]:
    query = plan_query(parse_query_body(orjson.dumps(document)), T0_MS + 86_400_000)
    results = run_query(query, source, NameIndex(source), max_data_points)
    text, _ = encode_response(
        results, ms_resolution=query.ms_resolution, show_query=False, arrays=False
    )
    decoded: list[dict[str, object]] = orjson.loads(text)
    return decoded


def dps(*pairs: tuple[int, object]) -> dict[str, object]:
    """Return a dps object with keys T0 + offset seconds."""
    return {str(T0_S + offset): value for offset, value in pairs}


def docs_source() -> MemorySeriesSource:
    # The downsampling example of OpenTSDB's documentation: two series every 10 s.
    offsets = seconds(0, 10, 20, 30, 40, 50, 60)
    return (
        MemorySeriesSource()
        .add(CPU, {"host": "a"}, offsets, [5.0, 5.0, 10.0, 15.0, 20.0, 5.0, 1.0])
        .add(CPU, {"host": "b"}, offsets, [10.0, 5.0, 20.0, 15.0, 10.0, 0.0, 5.0])
    )


def test_documented_30s_sum() -> None:
    document = {
        "start": T0_S,
        "end": T0_S + 60,
        "queries": [{"metric": CPU, "aggregator": "sum", "downsample": "30s-sum"}],
    }
    (result,) = run_and_decode(docs_source(), document)
    assert result["dps"] == dps((0, 55.0), (30, 65.0), (60, 6.0))
    assert result["tags"] == {}
    assert result["aggregateTags"] == ["host"]


def test_documented_10s_sum_nan() -> None:
    source = (
        MemorySeriesSource()
        .add(CPU, {"host": "a"}, seconds(30, 50), [15.0, 5.0])
        .add(CPU, {"host": "b"}, seconds(0, 20, 60), [10.0, 20.0, 20.0])
    )
    document = {
        "start": T0_S,
        "end": T0_S + 60,
        "queries": [{"metric": CPU, "aggregator": "sum", "downsample": "10s-sum-nan"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == dps(
        (0, 10.0), (10, "NaN"), (20, 20.0), (30, 15.0), (40, "NaN"), (50, 5.0), (60, 20.0)
    )


def test_null_fill_writes_json_null() -> None:
    source = MemorySeriesSource().add(CPU, {"host": "a"}, seconds(0, 20), [1.0, 2.0])
    document = {
        "start": T0_S,
        "end": T0_S + 20,
        "queries": [{"metric": CPU, "aggregator": "sum", "downsample": "10s-sum-null"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == dps((0, 1.0), (10, None), (20, 2.0))


def test_zero_fill_lowers_the_average() -> None:
    source = (
        MemorySeriesSource()
        .add(CPU, {"host": "a"}, seconds(0, 10), [4.0, 4.0])
        .add(CPU, {"host": "b"}, seconds(0), [2.0])
    )
    document = {
        "start": T0_S,
        "end": T0_S + 10,
        "queries": [{"metric": CPU, "aggregator": "avg", "downsample": "10s-avg-zero"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == dps((0, 3.0), (10, 2.0))


def fleet() -> MemorySeriesSource:
    source = MemorySeriesSource()
    stamps, numbers = seconds(0, 60), [1.0, 3.0]
    source.add(NET, {"datacenter": "dc1", "host": "h1", "nicname": "eth0"}, stamps, numbers)
    source.add(NET, {"datacenter": "dc1", "host": "h1", "nicname": "eth1"}, stamps, numbers)
    source.add(NET, {"datacenter": "dc1", "host": "h2", "nicname": "eth0"}, stamps, numbers)
    source.add(NET, {"datacenter": "dc2", "host": "h3", "nicname": "eth0"}, stamps, numbers)
    source.add(CPU, {"datacenter": "dc1", "host": "h1"}, stamps, numbers)
    return source


def query_for(*queries: dict[str, object], **extra: object) -> dict[str, object]:
    return {"start": T0_S, "end": T0_S + 60, "queries": list(queries), **extra}


def test_group_by_host_splits_tags_and_aggregate_tags() -> None:
    document = query_for({"metric": NET, "aggregator": "sum", "tags": {"host": "*"}})
    results = run_and_decode(fleet(), document)
    assert [result["tags"] for result in results] == [
        {"datacenter": "dc1", "host": "h1"},
        {"datacenter": "dc1", "host": "h2", "nicname": "eth0"},
        {"datacenter": "dc2", "host": "h3", "nicname": "eth0"},
    ]
    assert [result["aggregateTags"] for result in results] == [["nicname"], [], []]
    assert [result["dps"] for result in results] == [
        dps((0, 2.0), (60, 6.0)),
        dps((0, 1.0), (60, 3.0)),
        dps((0, 1.0), (60, 3.0)),
    ]
    assert [result["query"] for result in results] == [{"index": 0}] * 3


def test_literal_or_values_each_form_a_group() -> None:
    document = query_for({"metric": NET, "aggregator": "max", "tags": {"host": "h1|h3"}})
    results = run_and_decode(fleet(), document)
    assert [result["tags"]["host"] for result in results] == ["h1", "h3"]


def test_non_group_by_filter_folds_into_one_group() -> None:
    filters = [{"type": "literal_or", "tagk": "datacenter", "filter": "dc1", "groupBy": False}]
    (result,) = run_and_decode(
        fleet(), query_for({"metric": NET, "aggregator": "count", "filters": filters})
    )
    assert result["tags"] == {"datacenter": "dc1"}
    assert result["aggregateTags"] == ["host", "nicname"]
    assert result["dps"] == dps((0, 3.0), (60, 3.0))


def test_none_aggregator_returns_every_series() -> None:
    results = run_and_decode(fleet(), query_for({"metric": NET, "aggregator": "none"}))
    assert len(results) == 4
    assert results[0]["tags"] == {"datacenter": "dc1", "host": "h1", "nicname": "eth0"}
    assert all(result["aggregateTags"] == [] for result in results)


def test_sub_queries_keep_their_index() -> None:
    document = query_for(
        {"metric": CPU, "aggregator": "sum"},
        {"metric": NET, "aggregator": "sum", "tags": {"datacenter": "dc2"}},
    )
    results = run_and_decode(fleet(), document)
    assert [(result["metric"], result["query"]) for result in results] == [
        (CPU, {"index": 0}),
        (NET, {"index": 1}),
    ]


def test_no_match_gives_empty_answer() -> None:
    filters = [{"type": "iliteral_or", "tagk": "host", "filter": "nowhere", "groupBy": True}]
    document = query_for({"metric": NET, "aggregator": "sum", "filters": filters})
    assert run_and_decode(fleet(), document) == []


@pytest.mark.parametrize(
    ("sub_query", "message"),
    [
        (
            {"metric": "vscope.vm.bogus", "aggregator": "sum"},
            "No such name for 'metrics': 'vscope.vm.bogus'",
        ),
        (
            {"metric": NET, "aggregator": "sum", "tags": {"rack": "*"}},
            "No such name for 'tagk': 'rack'",
        ),
        (
            {"metric": NET, "aggregator": "sum", "tags": {"host": "h9"}},
            "No such name for 'tagv': 'h9'",
        ),
        # The metric is checked before the tag keys.
        (
            {"metric": "vscope.vm.bogus", "aggregator": "sum", "tags": {"rack": "*"}},
            "No such name for 'metrics': 'vscope.vm.bogus'",
        ),
    ],
)
def test_unknown_names_fail_with_400(sub_query: dict[str, object], message: str) -> None:
    with pytest.raises(TsdbHttpError) as caught:
        run_and_decode(fleet(), query_for({"metric": CPU, "aggregator": "sum"}, sub_query))
    assert caught.value.status == 400
    assert caught.value.message == message
    assert caught.value.details == message


def test_tag_value_of_another_key_resolves() -> None:
    # "dc2" exists as a datacenter value, so it resolves for `host`, and matches nothing.
    document = query_for({"metric": NET, "aggregator": "sum", "tags": {"host": "dc2"}})
    assert run_and_decode(fleet(), document) == []


def test_data_point_limit_fails_with_413() -> None:
    document = query_for({"metric": NET, "aggregator": "sum"})
    assert len(run_and_decode(fleet(), document, max_data_points=8)) == 1
    with pytest.raises(TsdbHttpError) as caught:
        run_and_decode(fleet(), document, max_data_points=7)
    assert caught.value.status == 413
    assert caught.value.message == (
        "Sorry, you have attempted to fetch more than our limit of 7 data points. "
        "Please try filtering using more tags or decrease your time range."
    )


def test_points_outside_range_feed_interpolation_only() -> None:
    # Series a has points before and after the range; the scan reads them (same hour).
    source = (
        MemorySeriesSource()
        .add(CPU, {"host": "a"}, seconds(100, 300), [10.0, 30.0])
        .add(CPU, {"host": "b"}, seconds(200), [5.0])
    )
    document = {
        "start": T0_S + 150,
        "end": T0_S + 250,
        "queries": [{"metric": CPU, "aggregator": "sum"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == dps((200, 25.0))


def test_series_only_in_scan_padding_has_empty_dps() -> None:
    source = MemorySeriesSource().add(CPU, {"host": "a"}, seconds(10), [1.0])
    document = {
        "start": T0_S + 600,
        "end": T0_S + 900,
        "queries": [{"metric": CPU, "aggregator": "sum"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == {}
    assert result["tags"] == {"host": "a"}


def test_range_is_inclusive_at_both_ends() -> None:
    source = MemorySeriesSource().add(
        CPU, {"host": "a"}, seconds(0, 10, 20, 30), [1.0, 2.0, 3.0, 4.0]
    )
    document = {
        "start": T0_S + 10,
        "end": T0_S + 20,
        "queries": [{"metric": CPU, "aggregator": "sum"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == dps((10, 2.0), (20, 3.0))


def test_rate_after_downsampling() -> None:
    source = MemorySeriesSource().add(
        CPU, {"host": "a"}, seconds(0, 30, 60, 90, 120), [0.0, 60.0, 120.0, 180.0, 300.0]
    )
    document = {
        "start": T0_S + 60,
        "end": T0_S + 120,
        "queries": [{"metric": CPU, "aggregator": "sum", "downsample": "1m-max", "rate": True}],
    }
    (result,) = run_and_decode(source, document)
    # Minute maxima 60, 180, 300: 2.0 per second each minute.
    assert result["dps"] == dps((60, 2.0), (120, 2.0))


def test_ms_resolution_keys() -> None:
    source = MemorySeriesSource().add(CPU, {"host": "a"}, [T0_MS + 250, T0_MS + 750], [1.0, 2.0])
    document = {
        "start": T0_S,
        "end": T0_S + 1,
        "msResolution": True,
        "queries": [{"metric": CPU, "aggregator": "sum"}],
    }
    (result,) = run_and_decode(source, document)
    assert result["dps"] == {str(T0_MS + 250): 1.0, str(T0_MS + 750): 2.0}
