"""The OpenTSDB server over HTTP on 127.0.0.1: auth, verbs, gzip, responses, faults, counters."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import orjson
import pytest
import requests
from tsdb_support import T0_MS, T0_S, MemorySeriesSource, seconds

from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import (
    SIMULATED_VERSION,
    OpenTsdbServer,
    make_opentsdb_server,
)
from vscope_pipeline.simulator.tsdb_faults import Faults, ForcedResponse

TOKEN = "XXXX_token_YYYY-ZZZZ"
AUTH = ("read", TOKEN)
MEM = "vscope.host.mem.usage.perc"
DATACENTER = "pcc-37-187-228-180_datacenter869"
# The fake clock: one hour after T0.
NOW_S = T0_S + 3600
NO_GZIP = {"Accept-Encoding": "identity"}


def build_source() -> MemorySeriesSource:
    source = MemorySeriesSource()
    minutes = [offset * 60 for offset in range(60)]
    for host, base in (("172.17.86.51", 40.0), ("172.17.86.52", 60.0)):
        tags = {"datacenter": DATACENTER, "host": host, "env": "prod"}
        source.add(MEM, tags, seconds(*minutes), [base + m % 7 for m in range(60)])
    return source


@pytest.fixture(scope="module")
def faults() -> Faults:
    return Faults()


@pytest.fixture(scope="module")
def server(faults: Faults) -> Iterator[ServerThread]:
    opentsdb = make_opentsdb_server(build_source(), [TOKEN], clock=lambda: NOW_S, faults=faults)
    with ServerThread(opentsdb, "opentsdb-test") as thread:
        yield thread


@pytest.fixture(autouse=True)
def clear_faults(faults: Faults) -> Iterator[None]:
    yield
    faults.delay_s = 0.0
    faults.max_data_points = 0
    faults.limit_error_as_proxy = False
    faults.slow_above_points = 0
    faults.slow_delay_s = 0.0
    faults.ignore_group_by = False
    faults.end_aligned_buckets = False
    while faults.next_forced() is not None:
        pass


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def post(session: requests.Session, server: ServerThread, document: object, **kwargs: object):
    kwargs.setdefault("auth", AUTH)
    return session.post(f"{server.url}/api/query", data=orjson.dumps(document), **kwargs)


GUIDE_QUERY = {
    "start": T0_S,
    "end": T0_S + 3599,
    "queries": [
        {
            "metric": MEM,
            "aggregator": "sum",
            "downsample": "20m-max-zero",
            "tags": {"datacenter": DATACENTER, "host": "172.17.86.51"},
        }
    ],
}


def test_post_query_end_to_end(server: ServerThread, session: requests.Session) -> None:
    response = post(session, server, GUIDE_QUERY)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    # Minutes 0-19, 20-39 and 40-59: the maximum of 40 + minute % 7 is 46 in each.
    assert response.json() == [
        {
            "metric": MEM,
            "tags": {"datacenter": DATACENTER, "host": "172.17.86.51", "env": "prod"},
            "aggregateTags": [],
            "query": {"index": 0},
            "dps": {str(T0_S): 46.0, str(T0_S + 1200): 46.0, str(T0_S + 2400): 46.0},
        }
    ]


def test_post_query_text_has_java_doubles(server: ServerThread, session: requests.Session) -> None:
    response = post(session, server, GUIDE_QUERY, headers=NO_GZIP)
    assert "Content-Encoding" not in response.headers
    assert response.content.endswith(
        b'"dps":{"1704067200":46.0,"1704068400":46.0,"1704069600":46.0}}]'
    )


def test_gzip_when_accepted(server: ServerThread, session: requests.Session) -> None:
    response = post(session, server, GUIDE_QUERY, headers={"Accept-Encoding": "gzip"}, stream=True)
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(raw)
    assert orjson.loads(gzip.decompress(raw))[0]["metric"] == MEM


def test_relative_start_uses_the_clock(server: ServerThread, session: requests.Session) -> None:
    document = {
        "start": "10m-ago",
        "queries": [{"metric": MEM, "aggregator": "count", "downsample": "5m-count"}],
    }
    (result,) = post(session, server, document).json()
    # now is T0 + 60 min, so the range starts at minute 50: two 5-minute buckets, and the
    # count aggregator counts the 2 hosts in each.
    assert result["dps"] == {str(T0_S + 3000): 2.0, str(T0_S + 3300): 2.0}


def test_arrays_flag_in_query_string(server: ServerThread, session: requests.Session) -> None:
    document = {
        "start": T0_S,
        "end": T0_S + 60,
        "queries": [{"metric": MEM, "aggregator": "min"}],
    }
    response = session.post(
        f"{server.url}/api/query?arrays", data=orjson.dumps(document), auth=AUTH
    )
    assert response.json()[0]["dps"] == [[T0_S, 40.0], [T0_S + 60, 41.0]]


def test_ms_resolution_and_show_query(server: ServerThread, session: requests.Session) -> None:
    sub_query = {"metric": MEM, "aggregator": "max", "tags": {"host": "*"}}
    document = {
        "start": T0_S,
        "end": T0_S,
        "msResolution": True,
        "showQuery": True,
        "queries": [sub_query, sub_query],
    }
    results = post(session, server, document).json()
    assert [result["dps"] for result in results] == [
        {str(T0_S * 1000): 40.0},
        {str(T0_S * 1000): 60.0},
    ]
    assert results[0]["query"] == {
        "aggregator": "max",
        "metric": MEM,
        "tsuids": None,
        "downsample": None,
        "rate": False,
        "filters": [{"tagk": "host", "filter": "*", "group_by": True, "type": "wildcard"}],
        "index": 0,
        "tags": {"host": "wildcard(*)"},
        "rateOptions": None,
        "explicitTags": False,
        "percentiles": None,
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + "cmVhZDp3cm9uZw=="},  # read:wrong
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Basic " + "bm9jb2xvbg=="},  # nocolon
    ],
)
def test_unauthorized_is_plain_text(
    server: ServerThread, session: requests.Session, headers: dict[str, str]
) -> None:
    response = session.post(
        f"{server.url}/api/query", data=orjson.dumps(GUIDE_QUERY), headers=headers
    )
    assert response.status_code == 401
    assert response.text == "Not authorized\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_any_user_name_is_accepted(server: ServerThread, session: requests.Session) -> None:
    assert post(session, server, GUIDE_QUERY, auth=("anyone", TOKEN)).status_code == 200


def test_get_query_is_not_implemented(server: ServerThread, session: requests.Session) -> None:
    response = session.get(f"{server.url}/api/query?start=1h-ago&m=sum:{MEM}", auth=AUTH)
    assert response.status_code == 501
    assert response.text == "Please use the POST version of queries\n"
    # The proxy checks the token first.
    assert session.get(f"{server.url}/api/query").status_code == 401


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS"])
def test_other_verbs_are_not_allowed(
    server: ServerThread, session: requests.Session, method: str
) -> None:
    response = session.request(method, f"{server.url}/api/query", auth=AUTH)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, DELETE"
    assert response.text == f"Method '{method}' is not allowed\n"


@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_delete_is_refused(server: ServerThread, session: requests.Session, method: str) -> None:
    document = {**GUIDE_QUERY, "delete": True}
    response = session.request(
        method, f"{server.url}/api/query", data=orjson.dumps(document), auth=AUTH
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": 400,
            "message": "Bad request",
            "details": "Deleting data is not enabled (tsd.http.query.allow_delete=false)",
        }
    }


@pytest.mark.parametrize(
    ("document", "status", "error"),
    [
        (
            {"start": T0_S, "queries": [{"metric": "vscope.vm.bogus", "aggregator": "sum"}]},
            400,
            {
                "code": 400,
                "message": "No such name for 'metrics': 'vscope.vm.bogus'",
                "details": "No such name for 'metrics': 'vscope.vm.bogus'",
            },
        ),
        (
            {
                "start": T0_S,
                "queries": [{"metric": MEM, "aggregator": "sum", "tags": {"host": "h9"}}],
            },
            400,
            {
                "code": 400,
                "message": "No such name for 'tagv': 'h9'",
                "details": "No such name for 'tagv': 'h9'",
            },
        ),
        (
            {"start": T0_S},
            500,
            {"code": 500, "message": "An internal null pointer exception was thrown"},
        ),
    ],
)
def test_error_bodies(
    server: ServerThread,
    session: requests.Session,
    document: dict[str, object],
    status: int,
    error: dict[str, object],
) -> None:
    response = post(session, server, document)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_validation_error_has_message_and_details(
    server: ServerThread, session: requests.Session
) -> None:
    document = {"start": T0_S, "queries": [{"metric": MEM, "aggregator": "Sum"}]}
    response = post(session, server, document)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "No such aggregation function: Sum"
    assert error["details"].startswith("TSQuery(start_time=1704067200, end_time=None")


def test_bad_json_then_same_connection_works(
    server: ServerThread, session: requests.Session
) -> None:
    response = session.post(f"{server.url}/api/query", data=b"{not json", auth=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Unable to parse the given JSON"
    assert post(session, server, GUIDE_QUERY).status_code == 200


def test_forced_responses_come_first_in_order(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.force(
        ForcedResponse(429, b"Too Many Requests", {"Retry-After": "2"}),
        ForcedResponse(502, b"<html>Bad Gateway</html>", content_type="text/html"),
    )
    first = post(session, server, GUIDE_QUERY)
    second = post(session, server, GUIDE_QUERY)
    third = post(session, server, GUIDE_QUERY)
    assert (first.status_code, first.headers["Retry-After"], first.text) == (
        429,
        "2",
        "Too Many Requests",
    )
    assert (second.status_code, second.headers["Content-Type"]) == (502, "text/html")
    assert third.status_code == 200
    assert faults.pending() == 0


def test_data_point_limit_gives_413(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.max_data_points = 100
    document = {
        "start": T0_S,
        "end": T0_S + 3599,
        "queries": [{"metric": MEM, "aggregator": "sum"}],
    }
    response = post(session, server, document)
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": 413,
            "message": "Sorry, you have attempted to fetch more than our limit of 100 data "
            "points. Please try filtering using more tags or decrease your time range.",
        }
    }


def test_proxy_limit_error_is_500_text(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.max_data_points = 100
    faults.limit_error_as_proxy = True
    document = {
        "start": T0_S,
        "end": T0_S + 3599,
        "queries": [{"metric": MEM, "aggregator": "sum"}],
    }
    response = post(session, server, document)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == (
        "io.warp10.script.WarpScriptException: Exception at '=>FETCH<=' in section [TOP] "
        "(FETCH exceeded limit of 100 datapoints, current count is 120)\n"
    )


def test_slow_above_points_delays_large_answers(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.slow_above_points = 3
    faults.slow_delay_s = 0.3
    started = time.monotonic()
    small = post(session, server, GUIDE_QUERY)
    small_elapsed = time.monotonic() - started
    document = {**GUIDE_QUERY, "queries": [{"metric": MEM, "aggregator": "sum"}]}
    started = time.monotonic()
    large = post(session, server, document)
    large_elapsed = time.monotonic() - started
    # The guide query returns 3 points, the undownsampled sum 60.
    assert len(small.json()[0]["dps"]) == 3
    assert len(large.json()[0]["dps"]) == 60
    assert small_elapsed < 0.3
    assert large_elapsed >= 0.3


GROUPED_QUERY = {
    "start": T0_S,
    "end": T0_S + 119,
    "queries": [
        {
            "metric": MEM,
            "aggregator": "avg",
            "filters": [{"type": "wildcard", "tagk": "host", "filter": "*", "groupBy": True}],
        }
    ],
}


def test_ignore_group_by_merges_series(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    grouped = post(session, server, GROUPED_QUERY).json()
    faults.ignore_group_by = True
    merged = post(session, server, GROUPED_QUERY).json()
    assert [result["tags"]["host"] for result in grouped] == ["172.17.86.51", "172.17.86.52"]
    # Host 1 has 40 + m % 7, host 2 60 + m % 7: their average is 50 + m % 7.
    assert merged == [
        {
            "metric": MEM,
            "tags": {"datacenter": DATACENTER, "env": "prod"},
            "aggregateTags": ["host"],
            "query": {"index": 0},
            "dps": {str(T0_S): 50.0, str(T0_S + 60): 51.0},
        }
    ]


def test_ignore_group_by_keeps_none_aggregator(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.ignore_group_by = True
    document = {**GROUPED_QUERY, "queries": [{**GROUPED_QUERY["queries"][0], "aggregator": "none"}]}
    results = post(session, server, document).json()
    assert [result["tags"]["host"] for result in results] == ["172.17.86.51", "172.17.86.52"]
    assert [result["aggregateTags"] for result in results] == [[], []]


def _downsampled(end_s: int) -> dict[str, object]:
    return {
        "start": T0_S,
        "end": end_s,
        "msResolution": True,
        "queries": [
            {
                "metric": MEM,
                "aggregator": "max",
                "downsample": "20m-max",
                "tags": {"host": "172.17.86.51"},
            }
        ],
    }


def test_end_aligned_buckets_stamp_bucket_ends(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    end_ms = T0_MS + 3_600_000 - 1
    epoch = post(session, server, {**_downsampled(0), "end": end_ms}).json()
    faults.end_aligned_buckets = True
    aligned = post(session, server, {**_downsampled(0), "end": end_ms}).json()
    # Buckets (end - 20 min, end]: the same minutes as [0, 20), [20, 40) and [40, 60).
    assert epoch[0]["dps"] == {
        str(T0_MS): 46.0,
        str(T0_MS + 1_200_000): 46.0,
        str(T0_MS + 2_400_000): 46.0,
    }
    assert aligned[0]["dps"] == {
        str(T0_MS + 1_200_000 - 1): 46.0,
        str(T0_MS + 2_400_000 - 1): 46.0,
        str(end_ms): 46.0,
    }


def test_end_aligned_buckets_follow_end(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.end_aligned_buckets = True
    # An end at minute 43:20 puts bucket ends at 03:20, 23:20 and 43:20, as OVH's proxy does.
    results = post(session, server, _downsampled(T0_S + 2600)).json()
    minutes = [int(key) - T0_MS for key in results[0]["dps"]]
    assert minutes == [200_000, 1_400_000, 2_600_000]
    # Minutes 0-3 peak at 43, minutes 4-23 and 24-43 at 46.
    assert list(results[0]["dps"].values()) == [43.0, 46.0, 46.0]


def test_revoke_and_accept_tokens(server: ServerThread, session: requests.Session) -> None:
    opentsdb = server.server
    assert isinstance(opentsdb, OpenTsdbServer)
    rotated = "rotated-token"
    opentsdb.accept(rotated)
    opentsdb.revoke(TOKEN)
    try:
        assert post(session, server, GUIDE_QUERY).status_code == 401
        assert post(session, server, GUIDE_QUERY, auth=("read", rotated)).status_code == 200
        assert opentsdb.tokens == frozenset({rotated})
    finally:
        opentsdb.accept(TOKEN)
        opentsdb.revoke(rotated)
    assert post(session, server, GUIDE_QUERY).status_code == 200


def test_accept_rejects_empty_token(server: ServerThread) -> None:
    opentsdb = server.server
    assert isinstance(opentsdb, OpenTsdbServer)
    with pytest.raises(ValueError, match="empty token") as raised:
        opentsdb.accept("")
    assert str(raised.value) == "accept got an empty token: pass the metrics token to accept"


def test_delay_slows_the_answer(
    server: ServerThread, session: requests.Session, faults: Faults
) -> None:
    faults.delay_s = 0.2
    started = time.monotonic()
    response = post(session, server, GUIDE_QUERY)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_aggregators_and_version(server: ServerThread, session: requests.Session) -> None:
    aggregators = session.get(f"{server.url}/api/aggregators", auth=AUTH).json()
    assert {"sum", "avg", "zimsum", "mimmin", "mimmax", "dev", "none", "squareSum"} <= set(
        aggregators
    )
    assert aggregators == sorted(aggregators)
    version = session.get(f"{server.url}/api/version", auth=AUTH)
    assert version.json() == {"version": SIMULATED_VERSION}
    assert session.get(f"{server.url}/api/aggregators").status_code == 401


def test_unknown_endpoint_is_404(server: ServerThread, session: requests.Session) -> None:
    response = session.get(f"{server.url}/api/suggest?type=metrics", auth=AUTH)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "message": "Endpoint not found"}}


def test_counters_record_statuses_and_points() -> None:
    opentsdb = make_opentsdb_server(build_source(), [TOKEN], clock=lambda: NOW_S)
    with ServerThread(opentsdb, "opentsdb-counters") as thread, requests.Session() as http:
        post(http, thread, GUIDE_QUERY)
        post(http, thread, GUIDE_QUERY, auth=("read", "wrong"))
        http.get(f"{thread.url}/api/query", auth=AUTH)
    snapshot = opentsdb.counters.snapshot()
    assert snapshot.requests == 3
    assert snapshot.by_status == {200: 1, 401: 1, 501: 1}
    assert snapshot.points_returned == 3


def test_server_needs_tokens_and_loopback() -> None:
    with pytest.raises(ValueError, match="got no tokens"):
        make_opentsdb_server(build_source(), [])
    with pytest.raises(ValueError, match="is not a loopback address"):
        make_opentsdb_server(build_source(), [TOKEN], host="0.0.0.0")
