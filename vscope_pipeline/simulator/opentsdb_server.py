"""The simulated OpenTSDB `/api/query` endpoint, as OVHcloud's metrics proxy serves it.

Query semantics are OpenTSDB 2.4's (see the tsdb_* modules). The HTTP surface is that of
OVHcloud's proxy (ovh/erlenmeyer) in front of it:

- every endpoint needs HTTP Basic auth whose password is a metrics token; the user part is
  ignored. Otherwise the response is 401 with the plain-text body "Not authorized";
- `POST /api/query` runs queries, `GET /api/query` is 501 "Please use the POST version of
  queries", `DELETE` is refused as OpenTSDB refuses it by default (the simulator is
  read-only) and other verbs get 405 with `Allow: POST, DELETE`;
- `GET /api/aggregators` lists the aggregator names and `GET /api/version` the version.

Responses are gzip-compressed when the client accepts gzip. The `arrays` query-string flag
switches `dps` to `[ts, value]` pairs. `Faults` injects forced responses, delays, a
data-point limit, departures from OpenTSDB's grouping and bucket alignment, and connection
resets in the middle of a body. Its request hook can choose such a fault for each request.
`counters` records the responses sent and `request_log` when each query arrived and finished.
`accept()` and `revoke()` change the accepted tokens while the server runs, to test token
expiry and rotation.

A token may be scoped to its own series source, as the token of one dedicatedCloud service
reads only that service's series. NOTE: OVHcloud documents a read token per dedicatedCloud
user but not what else it can read. The scoped source also has its own names, so another
service's datacenter tag value gets "No such name", as from a separate OpenTSDB tenant.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Mapping
from urllib.parse import parse_qs, urlsplit

import orjson

from vscope_pipeline.simulator.http import LoopbackHTTPServer, QuietHandler
from vscope_pipeline.simulator.series import SeriesSource
from vscope_pipeline.simulator.tsdb_aggregate import AGGREGATORS
from vscope_pipeline.simulator.tsdb_encode import encode_response
from vscope_pipeline.simulator.tsdb_engine import (
    DataPointLimitExceeded,
    EngineOptions,
    NameIndex,
    run_query,
)
from vscope_pipeline.simulator.tsdb_errors import TsdbHttpError
from vscope_pipeline.simulator.tsdb_faults import (
    Faults,
    ForcedResponse,
    InjectedFault,
    RequestCounters,
    RequestLog,
)
from vscope_pipeline.simulator.tsdb_query import parse_query_body, plan_query

log = logging.getLogger(__name__)

# The OpenTSDB release whose query behaviour the simulator follows.
SIMULATED_VERSION = "2.4.1"

_TEXT = "text/plain; charset=utf-8"
# Go's http.Error, which OVHcloud's proxy uses for its own errors, adds this header.
_TEXT_HEADERS = {"X-Content-Type-Options": "nosniff"}
# Level 6 is zlib's default, a fair trade of speed for size on multi-megabyte responses.
_GZIP_LEVEL = 6


def _delete_disabled() -> TsdbHttpError:
    """Return OpenTSDB's error for a delete while `tsd.http.query.allow_delete` is false."""
    return TsdbHttpError(
        400, "Bad request", "Deleting data is not enabled (tsd.http.query.allow_delete=false)"
    )


class OpenTsdbServer(LoopbackHTTPServer):
    """The OpenTSDB HTTP server with its data source, tokens, clock, faults and counters."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        source: SeriesSource,
        tokens: Collection[str],
        clock: Callable[[], float],
        faults: Faults,
        scopes: Mapping[str, SeriesSource] | None = None,
    ) -> None:
        super().__init__(host, port, _OpenTsdbHandler)
        self.source = source
        self._tokens_lock = threading.Lock()
        self._tokens = set(tokens)
        self.clock = clock
        self.faults = faults
        self.counters = RequestCounters()
        self.request_log = RequestLog()
        self.names = NameIndex(source)
        self._scopes = {
            token: (scoped, NameIndex(scoped)) for token, scoped in (scopes or {}).items()
        }

    def source_for(self, token: str) -> tuple[SeriesSource, NameIndex]:
        """Return the series `token` reads and their names: its scope's, else the server's."""
        return self._scopes.get(token, (self.source, self.names))

    @property
    def tokens(self) -> frozenset[str]:
        """Return the metrics tokens accepted at this moment."""
        with self._tokens_lock:
            return frozenset(self._tokens)

    def accept(self, token: str) -> None:
        """Accept `token` from the next request on, as after a token is issued."""
        if not token:
            raise ValueError("accept got an empty token: pass the metrics token to accept")
        with self._tokens_lock:
            self._tokens.add(token)

    def revoke(self, token: str) -> None:
        """Refuse `token` with 401 from the next request on, as after it expired."""
        with self._tokens_lock:
            self._tokens.discard(token)

    def accepts(self, token: str) -> bool:
        with self._tokens_lock:
            return token in self._tokens


def make_opentsdb_server(
    source: SeriesSource,
    tokens: Collection[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
    faults: Faults | None = None,
    scopes: Mapping[str, SeriesSource] | None = None,
) -> OpenTsdbServer:
    """Create (but do not start) an OpenTSDB server on a loopback address.

    `tokens` are the accepted metrics tokens (Basic auth passwords). `scopes` maps some of
    them to the only series they read. The other tokens read `source`. `clock` returns epoch
    seconds and resolves `now`, `1h-ago` and a missing `end`. Port 0 picks a free port.
    """
    if not tokens:
        raise ValueError(
            "make_opentsdb_server got no tokens: pass at least one metrics token, "
            "or every request would be refused with 401"
        )
    unaccepted = sorted(set(scopes or {}) - set(tokens))
    if unaccepted:
        raise ValueError(
            f"make_opentsdb_server got {len(unaccepted)} scoped token(s) that are not among "
            "`tokens`: pass every token of `scopes` in `tokens` too"
        )
    return OpenTsdbServer(
        host,
        port,
        source=source,
        tokens=tokens,
        clock=clock,
        faults=faults or Faults(),
        scopes=scopes,
    )


def _proxy_fetch_limit_message(error: DataPointLimitExceeded) -> str:
    """Return the text OVH's proxy passes on when Warp 10's FETCH reads too many points.

    NOTE: only the part "FETCH exceeded limit of N datapoints, current count is M" is known
    from the proxy's source; the words around it are modelled on Warp 10's exception text.
    """
    return (
        "io.warp10.script.WarpScriptException: Exception at '=>FETCH<=' in section [TOP] "
        f"(FETCH exceeded limit of {error.limit} datapoints, current count is {error.count})"
    )


class _OpenTsdbHandler(QuietHandler):
    server: OpenTsdbServer
    # Whether the request hook chose to cut the response being served (`InjectedFault.cut`).
    _cut_response = False
    # The status of the last response sent on this connection, for the request log.
    _sent_status: int | None = None

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        arrived = self.server.request_log.now()
        # Read the body first, so that the connection stays usable whatever the response.
        body = self.read_body()
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path == "/api/query":
            self._sent_status = None
            try:
                self._handle_query(body, parse_qs(url.query, keep_blank_values=True))
            finally:
                self.server.request_log.finish(arrived, self._sent_status)
        elif not self._authorized():
            self._send_text(401, "Not authorized")
        elif path == "/api/aggregators":
            self._send(200, orjson.dumps(sorted(AGGREGATORS)))
        elif path == "/api/version":
            self._send(200, orjson.dumps({"version": SIMULATED_VERSION}))
        else:
            self._send_error(TsdbHttpError(404, "Endpoint not found"))

    def _handle_query(self, body: bytes, params: dict[str, list[str]]) -> None:
        faults = self.server.faults
        hook = faults.request_hook
        injected = hook(body) if hook is not None else None
        self._cut_response = injected is not None and injected.cut
        if injected is not None and self._send_injected(injected):
            return
        if faults.delay_s > 0:
            time.sleep(faults.delay_s)
        forced = faults.next_forced()
        if forced is not None:
            self._send_forced(forced)
            return

        if not self._authorized():
            self._send_text(401, "Not authorized")
        elif self.command == "GET":
            self._send_text(501, "Please use the POST version of queries")
        elif self.command == "DELETE":
            self._send_error(_delete_disabled())
        elif self.command != "POST":
            self._send_text(
                405, f"Method '{self.command}' is not allowed", {"Allow": "POST, DELETE"}
            )
        else:
            self._run_query(body, arrays="arrays" in params, token=self._password() or "")

    def _run_query(self, body: bytes, *, arrays: bool, token: str) -> None:
        faults = self.server.faults
        options = EngineOptions(
            ignore_group_by=faults.ignore_group_by,
            end_aligned_buckets=faults.end_aligned_buckets,
        )
        try:
            request = parse_query_body(body)
            if request.delete:
                raise _delete_disabled()
            now_ms = int(self.server.clock() * 1000)
            query = plan_query(request, now_ms)
            source, names = self.server.source_for(token)
            results = run_query(query, source, names, faults.max_data_points, options)
            payload, points = encode_response(
                results,
                ms_resolution=query.ms_resolution,
                show_query=query.show_query,
                arrays=arrays,
            )
        except DataPointLimitExceeded as error:
            log.info("query read more than %d data points", error.limit)
            if faults.limit_error_as_proxy:
                self._send_text(500, _proxy_fetch_limit_message(error))
            else:
                self._send_error(error)
            return
        except TsdbHttpError as error:
            log.info("query rejected with %d: %s", error.status, error.message)
            self._send_error(error)
            return
        except Exception:
            # The request boundary: any other failure is a simulator bug. It gets the response
            # OpenTSDB gives an unexpected exception, rather than a dropped connection.
            log.exception("query failed with an unexpected error")
            self._send_error(TsdbHttpError(500, "An unknown exception occurred"))
            return
        log.debug("query returned %d objects with %d points", len(results), points)
        if 0 < faults.slow_above_points < points:
            time.sleep(faults.slow_delay_s)
        self._send(200, payload, points=points)

    def _authorized(self) -> bool:
        password = self._password()
        return password is not None and self.server.accepts(password)

    def _password(self) -> str | None:
        """Return the Basic auth password of the request, None when there is none."""
        # Like OVHcloud's proxy: take the part after the first space whatever the scheme,
        # and the password after the first colon.
        _, _, encoded = self.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon else None

    def _accepts_gzip(self) -> bool:
        for coding in self.headers.get("Accept-Encoding", "").split(","):
            name, _, parameters = coding.strip().partition(";")
            if name.strip().lower() == "gzip":
                quality = parameters.strip().removeprefix("q=").strip()
                return quality not in ("0", "0.0", "0.00", "0.000")
        return False

    def _send_injected(self, injected: InjectedFault) -> bool:
        """Apply a fault chosen by the request hook. Return True when it sent a response."""
        if injected.delay_s > 0:
            time.sleep(injected.delay_s)
        if injected.response is None:
            return False
        log.info("injected response %d to %s", injected.response.status, self.client_address)
        self._send_forced(injected.response)
        return True

    def _send_forced(self, forced: ForcedResponse) -> None:
        self._send(forced.status, forced.body, forced.content_type, dict(forced.headers))

    def _send_cut(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str]
    ) -> None:
        """Send the headers and half of `body`, then reset the connection."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        # A zero linger time makes close() send a TCP RST instead of a FIN, so the client
        # sees "connection reset by peer" as after a proxy or network failure.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        # Go's http.Error ends the message with a newline.
        self._send(status, (text + "\n").encode(), _TEXT, {**_TEXT_HEADERS, **(headers or {})})

    def _send_error(self, error: TsdbHttpError) -> None:
        self._send(error.status, error.body())

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=UTF-8",
        headers: dict[str, str] | None = None,
        points: int = 0,
    ) -> None:
        headers = dict(headers or {})
        if body and self._accepts_gzip():
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.server.counters.record(status, points)
        self._sent_status = status
        try:
            query = self.path.startswith("/api/query")
            if query and (self._cut_response or self.server.faults.take_cut()):
                log.info("cutting the %d response to %s", status, self.client_address)
                self._send_cut(status, body, content_type, headers)
            else:
                self.send_body(status, body, content_type, headers)
        except (BrokenPipeError, ConnectionResetError):
            # Clients that time out (retry tests, impatient callers) close the socket first.
            log.info("client %s left before its %d response", self.client_address, status)
            self.close_connection = True
