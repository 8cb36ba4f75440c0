from __future__ import annotations

import base64
import gzip
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.client import MetricDayStats, OpenTSDBClient, query_url
from vscope_pipeline.opentsdb.errors import (
    OpenTSDBAuthError,
    OpenTSDBConnectionError,
    OpenTSDBDecodeError,
    OpenTSDBError,
    OpenTSDBQueryError,
    OpenTSDBReadTimeout,
    OpenTSDBServerError,
)
from vscope_pipeline.opentsdb.planning import build_query_body, day_window
from vscope_pipeline.opentsdb.results import DecodeStats
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.http import LoopbackHTTPServer, QuietHandler, ServerThread


@dataclass(frozen=True)
class Canned:
    """One response of the scripted server."""

    status: int
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"
    # Seconds to wait before responding, to trigger the client's read timeout.
    delay: float = 0.0
    gzip: bool = False


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Serve the canned responses in order, then 500 once they run out."""

    def __init__(self) -> None:
        self.responses: list[Canned] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._thread = ServerThread(
            LoopbackHTTPServer("127.0.0.1", 0, self._handler_class()), "scripted-opentsdb"
        )

    @property
    def url(self) -> str:
        return self._thread.url

    def bodies(self) -> list[Any]:
        with self._lock:
            return [orjson.loads(recorded.body) for recorded in self.requests]

    def script(self, *responses: Canned) -> None:
        with self._lock:
            self.responses = list(responses)
            self.requests = []

    def _next(self, recorded: Recorded) -> Canned:
        with self._lock:
            self.requests.append(recorded)
            if self.responses:
                return self.responses.pop(0)
        return Canned(500, b"no canned response left", content_type="text/plain")

    def _handler_class(self) -> type[QuietHandler]:
        server = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                recorded = Recorded(
                    method=self.command,
                    path=self.path,
                    headers=dict(self.headers.items()),
                    body=self.read_body(),
                )
                canned = server._next(recorded)
                time.sleep(canned.delay)
                body = canned.body
                headers = dict(canned.headers)
                if canned.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                try:
                    self.send_body(canned.status, body, canned.content_type, headers)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up waiting (read timeout) and closed the connection.
                    self.close_connection = True

            do_GET = _serve
            do_POST = _serve

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


TOKEN = "s3cr3t-Token_value"
SPEC = next(spec for spec in BUILTIN_METRICS if spec.name == "vscope.vm.cpu.ready")
SERVICE = "pcc-37-187-228-180"
LABEL = "pcc-37-187-228-180_datacenter869"
DAY = date(2024, 5, 1)
T0 = day_window(DAY).start_ms
DESCRIPTION = (
    f"metric vscope.vm.cpu.ready, datacenter {LABEL}, "
    "from 2024-05-01T00:00:00.000Z to 2024-05-01T23:59:59.999Z"
)
POLICY = RetryPolicy(
    max_attempts=3, base_delay=0.5, max_delay=2.0, jitter=0.5, max_attempts_on_500=2
)
ONE_SERIES = orjson.dumps(
    [
        {
            "metric": SPEC.name,
            "tags": {"datacenter": LABEL, "vm": "vm-101", "env": "prod"},
            "aggregateTags": [],
            "dps": {str(T0): 12, str(T0 + 20_000): 13.5},
        }
    ]
)


class _Client:
    """An OpenTSDBClient on the scripted server that records its retry delays."""

    def __init__(self, url: str, **options: Any) -> None:
        self.sleeps: list[float] = []
        options.setdefault("timeout", (2.0, 5.0))
        # Without a rate limit, `sleeps` contains the retry delays only.
        options.setdefault("rate_limit", None)
        self.client = OpenTSDBClient(
            url,
            Secret(TOKEN),
            retry_policy=POLICY,
            sleep=self.sleeps.append,
            uniform=lambda: 0.0,
            **options,
        )

    def fetch(self) -> Any:
        return self.client.fetch_metric_day(SPEC, SERVICE, LABEL, DAY)


@pytest.fixture
def server(scripted_server: ScriptedServer) -> ScriptedServer:
    scripted_server.script()
    return scripted_server


def test_fetch_posts_planned_body(server: ScriptedServer) -> None:
    server.script(Canned(200, ONE_SERIES))

    _Client(server.url).fetch()

    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/api/query"
    assert orjson.loads(request.body) == build_query_body(SPEC, LABEL, DAY)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Accept-Encoding"] == "gzip"


def test_fetch_sends_read_token_basic_auth(server: ScriptedServer) -> None:
    server.script(Canned(200, ONE_SERIES))

    _Client(server.url).fetch()

    expected = "Basic " + base64.b64encode(f"read:{TOKEN}".encode()).decode()
    assert server.requests[0].headers["Authorization"] == expected


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_fetch_decodes_response(server: ScriptedServer, compressed: bool) -> None:
    server.script(Canned(200, ONE_SERIES, gzip=compressed))

    result = _Client(server.url).fetch()

    assert result.table.to_pydict() == {
        "entity_kind": ["vm", "vm"],
        "service_name": [SERVICE, SERVICE],
        "datacenter": [LABEL, LABEL],
        "entity": ["vm-101", "vm-101"],
        "nic": [None, None],
        "ts": pa.array([T0, T0 + 20_000], pa.timestamp("ms", tz="UTC")).to_pylist(),
        "value": [12.0, 13.5],
    }
    assert result.stats == MetricDayStats(
        requests=1,
        decoded=DecodeStats(series=1, points=2),
        bytes_received=len(ONE_SERIES),
        no_such_name=False,
    )


@pytest.mark.parametrize(
    "message",
    [
        "No such name for 'metrics': 'vscope.vm.cpu.ready'",
        f"No such name for 'tagv': '{LABEL}'",
    ],
)
def test_no_such_name_is_empty_result(server: ScriptedServer, message: str) -> None:
    server.script(Canned(400, orjson.dumps({"error": {"code": 400, "message": message}})))

    result = _Client(server.url).fetch()

    assert result.table.num_rows == 0
    assert result.table.schema == METRIC_FILE_SCHEMA
    assert result.stats.no_such_name is True
    assert result.stats.requests == 1
    assert result.stats.decoded.points == 0


def _error_json(status: int, message: str) -> bytes:
    return orjson.dumps({"error": {"code": status, "message": message, "details": "TSQuery(...)"}})


HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

STATUS_CASES = [
    pytest.param(
        [Canned(401, b"Not authorized", content_type="text/plain")],
        OpenTSDBAuthError,
        "POST {url} for {description} returned HTTP 401: Not authorized. Check the vScope "
        "metrics token: it must be the current token of the dedicatedCloud user, or the value "
        "of VSCOPE_OPENTSDB_TOKEN",
        [],
        id="401-plain-text",
    ),
    pytest.param(
        [Canned(403, _error_json(403, "Forbidden"))],
        OpenTSDBAuthError,
        "POST {url} for {description} returned HTTP 403: Forbidden. Check the vScope "
        "metrics token: it must be the current token of the dedicatedCloud user, or the value "
        "of VSCOPE_OPENTSDB_TOKEN",
        [],
        id="403-json",
    ),
    pytest.param(
        [Canned(400, _error_json(400, "No such aggregation function: avgg"))],
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 400: No such aggregation function: avgg",
        [],
        id="400-json",
    ),
    pytest.param(
        [Canned(400, _error_json(400, "No such name for 'tagk': 'vm'"))],
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 400: No such name for 'tagk': 'vm'",
        [],
        id="400-unknown-tag-key",
    ),
    pytest.param(
        [Canned(500, _error_json(500, "An internal null pointer exception was thrown"))] * 2,
        OpenTSDBServerError,
        "POST {url} for {description} returned HTTP 500: An internal null pointer exception "
        "was thrown; gave up after 2 attempts. Retry the run later",
        [0.5],
        id="500-retried-fewer-times",
    ),
    pytest.param(
        [Canned(408, _error_json(408, "Request timed out"))] * 3,
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 408: Request timed out; gave up after 3 "
        "attempts. The server ran out of time or its storage failed: retry the run later",
        [0.5, 1.0],
        id="408-retried",
    ),
    pytest.param(
        [Canned(424, _error_json(424, "Storage failure"))] * 3,
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 424: Storage failure; gave up after 3 "
        "attempts. The server ran out of time or its storage failed: retry the run later",
        [0.5, 1.0],
        id="424-retried",
    ),
    pytest.param(
        [Canned(501, b"Please use the POST version of queries", content_type="text/plain")],
        OpenTSDBServerError,
        "POST {url} for {description} returned HTTP 501: Please use the POST version of "
        "queries. Retry the run later",
        [],
        id="501-plain-text",
    ),
    pytest.param(
        [Canned(502, HTML_502, content_type="text/html")] * 3,
        OpenTSDBServerError,
        "POST {url} for {description} returned HTTP 502: 502 Bad Gateway; gave up after 3 "
        "attempts. Retry the run later",
        [0.5, 1.0],
        id="502-html-retried",
    ),
    pytest.param(
        [Canned(503, b"", content_type="text/plain")] * 3,
        OpenTSDBServerError,
        "POST {url} for {description} returned HTTP 503: (empty body); gave up after 3 "
        "attempts. Retry the run later",
        [0.5, 1.0],
        id="503-empty-retried",
    ),
    pytest.param(
        [Canned(429, b"slow down", {"Retry-After": "1"}, content_type="text/plain")] * 3,
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 429: slow down; gave up after 3 attempts. "
        "Run fewer queries at once, or retry later",
        [1.0, 1.0],
        id="429-honours-retry-after",
    ),
    pytest.param(
        [Canned(429, b"slow down", {"Retry-After": "3600"}, content_type="text/plain")],
        OpenTSDBQueryError,
        "POST {url} for {description} returned HTTP 429: slow down; gave up after 1 attempt "
        "because the server asked to wait 3600 s (Retry-After), more than the 120 s allowed. "
        "Run fewer queries at once, or retry later",
        [],
        id="429-long-retry-after",
    ),
    pytest.param(
        [Canned(302, b"", {"Location": "https://elsewhere.invalid/api/query"})],
        OpenTSDBError,
        "POST {url} for {description} returned HTTP 302: redirected to "
        "https://elsewhere.invalid/api/query; set the endpoint URL to the final address",
        [],
        id="302-not-followed",
    ),
]


@pytest.mark.parametrize(("responses", "error_type", "message", "sleeps"), STATUS_CASES)
def test_status_mapping(
    server: ScriptedServer,
    responses: list[Canned],
    error_type: type[OpenTSDBError],
    message: str,
    sleeps: list[float],
) -> None:
    server.script(*responses)
    client = _Client(server.url)

    with pytest.raises(OpenTSDBError) as raised:
        client.fetch()

    url = f"{server.url}/api/query"
    assert type(raised.value) is error_type
    assert str(raised.value) == message.format(url=url, description=DESCRIPTION)
    assert raised.value.url == url
    assert raised.value.status == responses[0].status
    assert len(server.requests) == len(responses)
    assert client.sleeps == sleeps


def test_transient_failures_then_success(server: ScriptedServer) -> None:
    server.script(
        Canned(503, b"busy", content_type="text/plain"),
        Canned(504, b"gateway timeout", content_type="text/plain"),
        Canned(200, ONE_SERIES),
    )
    client = _Client(server.url)

    result = client.fetch()

    assert result.stats.requests == 3
    assert result.stats.decoded.points == 2
    assert client.sleeps == [0.5, 1.0]


def test_read_timeout_is_retried(server: ScriptedServer) -> None:
    server.script(Canned(200, ONE_SERIES, delay=0.5), Canned(200, ONE_SERIES))
    client = _Client(server.url, timeout=(2.0, 0.1))

    result = client.fetch()

    assert result.stats.requests == 2
    assert client.sleeps == [0.5]


def test_read_timeout_after_retries(server: ScriptedServer) -> None:
    server.script(*[Canned(200, ONE_SERIES, delay=0.5)] * 3)
    client = _Client(server.url, timeout=(2.0, 0.1))

    with pytest.raises(OpenTSDBReadTimeout) as raised:
        client.client.query(build_query_body(SPEC, LABEL, DAY))

    port = server.url.rsplit(":", 1)[1]
    assert str(raised.value) == (
        f"OpenTSDB timed out: POST {server.url}/api/query for {DESCRIPTION} got no response "
        f"within 2.0 s to connect and 0.1 s to read: HTTPConnectionPool(host='127.0.0.1', "
        f"port={port}): Read timed out. (read timeout=0.1); gave up after 3 attempts. Retry "
        "later, or raise the read timeout"
    )
    assert raised.value.status is None
    assert client.sleeps == [0.5, 1.0]


def _series_body(*points: tuple[int, float]) -> bytes:
    return orjson.dumps(
        [
            {
                "metric": SPEC.name,
                "tags": {"datacenter": LABEL, "vm": "vm-101"},
                "aggregateTags": [],
                "dps": {str(ts): value for ts, value in points},
            }
        ]
    )


def test_read_timeout_splits_day(server: ScriptedServer) -> None:
    noon = T0 + 43_200_000
    server.script(
        *[Canned(200, ONE_SERIES, delay=0.5)] * 3,
        Canned(200, _series_body((T0, 1.0))),
        Canned(200, _series_body((noon, 2.0))),
    )
    client = _Client(server.url, timeout=(2.0, 0.1))

    result = client.fetch()

    windows = [(body["start"], body["end"]) for body in server.bodies()]
    assert windows == [(T0, T0 + 86_399_999)] * 3 + [(T0, noon - 1), (noon, T0 + 86_399_999)]
    assert result.table.column("value").to_pylist() == [1.0, 2.0]
    assert result.stats.requests == 5
    assert result.stats.retries == 2
    assert result.stats.splits == 1
    assert client.sleeps == [0.5, 1.0]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_after_retries() -> None:
    port = _closed_port()
    client = _Client(f"http://127.0.0.1:{port}")

    with pytest.raises(OpenTSDBConnectionError) as raised:
        client.fetch()

    assert str(raised.value) == (
        f"could not reach OpenTSDB: POST http://127.0.0.1:{port}/api/query for {DESCRIPTION} "
        f"failed: HTTPConnection(host='127.0.0.1', port={port}): Failed to establish a new "
        "connection: [Errno 111] Connection refused; gave up after 3 attempts. Check the "
        "endpoint URL and the network"
    )
    assert client.sleeps == [0.5, 1.0]


def test_proxy_page_with_200_is_decode_error(server: ScriptedServer) -> None:
    server.script(Canned(200, HTML_502, content_type="text/html"))

    with pytest.raises(OpenTSDBDecodeError) as raised:
        _Client(server.url).fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query: invalid OpenTSDB response for metric "
        f"vscope.vm.cpu.ready, datacenter {LABEL}, day 2024-05-01: the body is not JSON, it "
        "starts with b'<html>\\r\\n<head><title>502 Bad Gateway</title></head>\\r\\n<body>"
        "\\r\\n<center>.... A proxy may have answered instead of OpenTSDB: "
        "check the endpoint URL"
    )


def test_corrupt_gzip_is_decode_error(server: ScriptedServer) -> None:
    server.script(Canned(200, b"not gzip at all", {"Content-Encoding": "gzip"}))

    with pytest.raises(OpenTSDBDecodeError) as raised:
        _Client(server.url).fetch()

    assert str(raised.value) == (
        f"POST {server.url}/api/query for {DESCRIPTION}: the response is marked as "
        "gzip-encoded but its body is not valid gzip. A proxy may have altered it: check the "
        "endpoint URL"
    )
    assert len(server.requests) == 1


def test_token_absent_from_errors_and_logs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Not authorized: token {TOKEN} expired".encode()
    server.script(
        Canned(503, echo, content_type="text/plain"),
        Canned(401, echo, content_type="text/plain"),
    )
    scripted = _Client(f"http://read:{TOKEN}@{server.url.removeprefix('http://')}")
    client = scripted.client

    with pytest.raises(OpenTSDBAuthError) as raised:
        scripted.fetch()

    texts = [str(raised.value), repr(raised.value), repr(client), client.url]
    texts += [str(raised.value.server_message), *caplog.messages]
    assert any("retrying in 0.5 s" in message for message in caplog.messages)
    for text in texts:
        assert TOKEN not in text
    assert raised.value.server_message == "Not authorized: token *** expired"
    assert client.url == f"{server.url}/api/query"


def test_client_rejects_plain_string_token() -> None:
    with pytest.raises(TypeError) as raised:
        OpenTSDBClient("https://opentsdb.example", TOKEN)  # type: ignore[arg-type]

    assert str(raised.value) == (
        "the OpenTSDB token must be a vscope_pipeline.secrets.Secret, not str: wrap it with "
        "Secret(...) so that it stays out of logs"
    )
    assert TOKEN not in str(raised.value)


def test_client_rejects_empty_token() -> None:
    with pytest.raises(ValueError, match=r"^the OpenTSDB token is empty") as raised:
        OpenTSDBClient("https://opentsdb.example", Secret(""))

    assert str(raised.value) == "the OpenTSDB token is empty: set the vScope metrics token"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (
            "https://opentsdb.gra1-ovh.metrics.ovh.net",
            "https://opentsdb.gra1-ovh.metrics.ovh.net/api/query",
        ),
        (
            "https://opentsdb.gra1-ovh.metrics.ovh.net/",
            "https://opentsdb.gra1-ovh.metrics.ovh.net/api/query",
        ),
        (
            "https://opentsdb.gra1-ovh.metrics.ovh.net/api/query",
            "https://opentsdb.gra1-ovh.metrics.ovh.net/api/query",
        ),
        ("http://127.0.0.1:4242/tsdb/", "http://127.0.0.1:4242/tsdb/api/query"),
        ("http://read:secret@127.0.0.1:4242", "http://127.0.0.1:4242/api/query"),
        ("  http://[::1]:4242?x=1  ", "http://[::1]:4242/api/query"),
    ],
)
def test_query_url_cases(base_url: str, expected: str) -> None:
    assert query_url(base_url) == expected


@pytest.mark.parametrize(
    ("base_url", "shown"),
    [
        ("opentsdb.gra1-ovh.metrics.ovh.net", "'opentsdb.gra1-ovh.metrics.ovh.net'"),
        ("ftp://read:secret@host/", "'ftp://host/'"),
        ("https://", "'https://'"),
    ],
)
def test_query_url_rejects_invalid(base_url: str, shown: str) -> None:
    with pytest.raises(ValueError, match=r"^OpenTSDB endpoint ") as raised:
        query_url(base_url)

    assert str(raised.value) == (
        f"OpenTSDB endpoint {shown} is invalid: expected an http(s) URL such as "
        "https://opentsdb.gra1-ovh.metrics.ovh.net"
    )
    assert "secret" not in str(raised.value)
