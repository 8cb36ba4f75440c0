"""HTTP client of the vScope OpenTSDB endpoint: `POST /api/query` with the metrics token.

OVH's OpenTSDB proxy takes the token as the HTTP Basic password (the user is `read`) and
rejects GET with 501, so every query is a POST. One client owns one `requests.Session`, whose
keep-alive connections serve every query of a run. Failed attempts are retried as
`retry.RetryPolicy` says; the exceptions are those of `errors`.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pyarrow as pa
import requests

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.opentsdb.decode import decode_query_response
from vscope_pipeline.opentsdb.errors import (
    OpenTSDBAuthError,
    OpenTSDBConnectionError,
    OpenTSDBDecodeError,
    OpenTSDBError,
    OpenTSDBQueryError,
    OpenTSDBServerError,
    OpenTSDBTimeout,
    server_message,
)
from vscope_pipeline.opentsdb.planning import build_query_body, day_window, describe_query
from vscope_pipeline.retry import (
    RETRY_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientFailure,
    call_with_retries,
    parse_retry_after,
)
from vscope_pipeline.secrets import Secret

log = logging.getLogger(__name__)

QUERY_PATH = "/api/query"
BASIC_AUTH_USER = "read"

# OpenTSDB returns 400 with these messages when a metric name or a literal tag value was never
# written. For a backfill that only means "no series yet", not a broken query.
_NO_SUCH_NAME_PREFIXES = ("No such name for 'metrics'", "No such name for 'tagv'")

_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip",
    "Content-Type": "application/json",
}


@dataclass(frozen=True)
class QueryResponse:
    """The body of a successful query and how many HTTP requests it took."""

    content: bytes
    requests: int
    # True when the server knew no such metric or datacenter; `content` is then `[]`.
    no_such_name: bool = False


@dataclass(frozen=True)
class MetricDayStats:
    """Counts from fetching one metric of one datacenter for one day."""

    requests: int
    series: int
    points: int
    dropped_nan: int
    dropped_out_of_window: int
    duplicates: int
    empty_series: int
    skipped_elements: int
    # Length of the response body after gzip decoding.
    bytes_received: int
    no_such_name: bool

    @property
    def dropped_points(self) -> int:
        """Return the points received but not stored: missing values, out of window, duplicates."""
        return self.dropped_nan + self.dropped_out_of_window + self.duplicates


@dataclass(frozen=True)
class MetricDayResult:
    """One metric of one datacenter for one UTC day, as rows of METRIC_FILE_SCHEMA."""

    table: pa.Table
    stats: MetricDayStats


class _AttemptFailed(TransientFailure):
    """One failed attempt, with what is needed to build the final error if it is the last."""

    def __init__(
        self,
        reason: str,
        *,
        error_type: type[OpenTSDBError],
        status: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.error_type = error_type
        self.status = status
        self.message = message


class _TokenAuth(requests.auth.AuthBase):
    """HTTP Basic auth with user `read` and the metrics token, revealed only into the header."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        credentials = f"{BASIC_AUTH_USER}:{self._token.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        return request

    def __repr__(self) -> str:
        return "_TokenAuth(Secret('***'))"


class OpenTSDBClient:
    """Queries one OpenTSDB endpoint with one metrics token.

    `timeout` is (connect, read) in seconds. A `session` passed in is used but not closed by
    `close()`; by default the client creates and owns one. `sleep` and `uniform` exist so that
    tests can observe the retry delays without waiting.

    NOTE: callers run queries from several threads on one client. requests does not document
    `Session` as thread-safe. Its urllib3 connection pool is, and the only state a response
    changes is the cookie jar, which the vScope endpoint is not known to use.
    """

    def __init__(
        self,
        base_url: str,
        token: Secret,
        *,
        timeout: tuple[float, float] = (5.0, 120.0),
        session: requests.Session | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(token, Secret):
            raise TypeError(
                f"the OpenTSDB token must be a vscope_pipeline.secrets.Secret, not "
                f"{type(token).__name__}: wrap it with Secret(...) so that it stays out of logs"
            )
        if not token:
            raise ValueError("the OpenTSDB token is empty: set the vScope metrics token")
        self.url = query_url(base_url)
        self._token = token
        self._auth = _TokenAuth(token)
        self._timeout = timeout
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._sleep = sleep
        self._uniform = uniform

    def __repr__(self) -> str:
        return f"OpenTSDBClient({self.url!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> OpenTSDBClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def fetch_metric_day(
        self, spec: MetricSpec, service_name: str, datacenter_label: str, day: date
    ) -> MetricDayResult:
        """Fetch every series of one metric in one datacenter for one UTC day.

        Raises an OpenTSDBError subclass when the request fails after its retries or the
        response cannot be decoded. A metric or datacenter unknown to the server gives an
        empty table with `stats.no_such_name` set.
        """
        body = build_query_body(spec, datacenter_label, day)
        response = self.query(body)
        try:
            decoded = decode_query_response(
                response.content,
                spec=spec,
                service_name=service_name,
                datacenter_label=datacenter_label,
                window=day_window(day),
            )
        except OpenTSDBDecodeError as exc:
            raise OpenTSDBDecodeError(
                self._scrub(f"POST {self.url}: {exc}"), url=self.url, status=200
            ) from exc

        decode_stats = decoded.stats
        stats = MetricDayStats(
            requests=response.requests,
            series=decode_stats.series,
            points=decode_stats.points,
            dropped_nan=decode_stats.dropped_nan,
            dropped_out_of_window=decode_stats.dropped_out_of_window,
            duplicates=decode_stats.duplicates,
            empty_series=decode_stats.empty_series,
            skipped_elements=decode_stats.skipped_elements,
            bytes_received=len(response.content),
            no_such_name=response.no_such_name,
        )
        log.debug(
            "fetched %s of %s for %s: %d series, %d points, %d requests",
            spec.name,
            datacenter_label,
            day.isoformat(),
            stats.series,
            stats.points,
            stats.requests,
        )
        return MetricDayResult(table=decoded.table, stats=stats)

    def query(self, body: Mapping[str, Any]) -> QueryResponse:
        """POST a query body and return the response body, retrying transient failures.

        Raises OpenTSDBAuthError (401, 403), OpenTSDBQueryError (other 4xx, 429 after the
        retries), OpenTSDBServerError (5xx), OpenTSDBTimeout or OpenTSDBConnectionError.
        """
        description = describe_query(body)
        payload = orjson.dumps(body)
        try:
            outcome = call_with_retries(
                lambda: self._post_once(payload, description),
                self._retry_policy,
                description=f"OpenTSDB query for {description}",
                sleep=self._sleep,
                uniform=self._uniform,
            )
        except RetriesExhausted as exhausted:
            last = exhausted.last_failure
            assert isinstance(last, _AttemptFailed)
            raise self._error(
                last.error_type, description, last.status, last.message, exhausted.reason
            ) from (last.__cause__ or last)
        return replace(outcome.value, requests=outcome.attempts)

    def _post_once(self, payload: bytes, description: str) -> QueryResponse:
        started = time.perf_counter()
        try:
            response = self._session.post(
                self.url,
                data=payload,
                headers=_HEADERS,
                auth=self._auth,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            # ConnectTimeout is also a ConnectionError, so this branch must come first.
            message = self._scrub(_transport_message(exc))
            raise _AttemptFailed(
                f"timed out: {message}", error_type=OpenTSDBTimeout, message=message
            ) from exc
        except requests.exceptions.ContentDecodingError as exc:
            raise OpenTSDBDecodeError(
                f"POST {self.url} for {description}: the response is marked as gzip-encoded "
                "but its body is not valid gzip. A proxy may have altered it: check the "
                "endpoint URL",
                url=self.url,
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            message = self._scrub(_transport_message(exc))
            raise _AttemptFailed(
                f"connection failed: {message}", error_type=OpenTSDBConnectionError, message=message
            ) from exc

        status = response.status_code
        log.debug(
            "POST %s for %s: %d, %d bytes in %.3f s",
            self.url,
            description,
            status,
            len(response.content),
            time.perf_counter() - started,
        )
        if 200 <= status < 300:
            return QueryResponse(content=response.content, requests=1)

        message = self._scrub(server_message(response.content))
        if status in RETRY_STATUSES:
            raise _AttemptFailed(
                f"HTTP {status}: {message}",
                error_type=OpenTSDBQueryError if status == 429 else OpenTSDBServerError,
                status=status,
                message=message,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 400 and message.startswith(_NO_SUCH_NAME_PREFIXES):
            log.info("no series for %s: %s", description, message)
            return QueryResponse(content=b"[]", requests=1, no_such_name=True)
        if 300 <= status < 400:
            location = self._scrub(response.headers.get("Location", "(no Location header)"))
            message = f"redirected to {location}; set the endpoint URL to the final address"
        raise self._error(_error_type(status), description, status, message, None)

    def _error(
        self,
        error_type: type[OpenTSDBError],
        description: str,
        status: int | None,
        message: str | None,
        retries: str | None,
    ) -> OpenTSDBError:
        if error_type is OpenTSDBTimeout:
            connect, read = self._timeout
            text = (
                f"OpenTSDB timed out: POST {self.url} for {description} got no response within "
                f"{connect} s to connect and {read} s to read: {message}"
            )
            advice = "Retry later, or raise the read timeout"
        elif error_type is OpenTSDBConnectionError:
            text = f"could not reach OpenTSDB: POST {self.url} for {description} failed: {message}"
            advice = "Check the endpoint URL and the network"
        else:
            text = f"POST {self.url} for {description} returned HTTP {status}: {message}"
            advice = _advice(error_type, status)
        if retries:
            text = f"{text}; {retries}"
        if advice:
            text = f"{text}. {advice}"
        return error_type(self._scrub(text), url=self.url, status=status, server_message=message)

    def _scrub(self, text: str) -> str:
        """Replace the token anywhere in `text`, such as a server echoing the request."""
        return text.replace(self._token.reveal(), "***")


def _transport_message(exc: requests.RequestException) -> str:
    """Return the underlying cause of a transport error without urllib3's "Max retries" wrapper.

    requests makes one attempt per call (its adapter retries nothing), so that wrapper
    only hides the cause, such as `Connection refused`.
    """
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return str(reason) if reason is not None else str(exc)


def _advice(error_type: type[OpenTSDBError], status: int | None) -> str:
    if error_type is OpenTSDBAuthError:
        return (
            "Check the vScope metrics token: it must be the current token of the dedicatedCloud "
            "user, or the value of VSCOPE_OPENTSDB_TOKEN"
        )
    if status == 429:
        return "Run fewer queries at once, or retry later"
    if status == 413:
        return "The query exceeded a limit of the server (data points, bytes or query time)"
    if error_type is OpenTSDBServerError:
        return "Retry the run later"
    return ""


def _error_type(status: int) -> type[OpenTSDBError]:
    if status in (401, 403):
        return OpenTSDBAuthError
    if 400 <= status < 500:
        return OpenTSDBQueryError
    if status >= 500:
        return OpenTSDBServerError
    return OpenTSDBError


def query_url(base_url: str) -> str:
    """Return the `/api/query` URL of an endpoint, without any user or password in it.

    Accepts the endpoint as APIv6 returns it (`https://opentsdb.gra1-ovh.metrics.ovh.net`),
    with or without a trailing slash or `/api/query`.
    """
    parts = urlsplit(base_url.strip())
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        redacted = urlunsplit((parts.scheme, host, parts.path, "", ""))
        raise ValueError(
            f"OpenTSDB endpoint {redacted!r} is invalid: expected an http(s) URL such as "
            "https://opentsdb.gra1-ovh.metrics.ovh.net"
        )
    path = parts.path.rstrip("/")
    if path.endswith(QUERY_PATH):
        path = path[: -len(QUERY_PATH)]
    return urlunsplit((parts.scheme, host, path + QUERY_PATH, "", ""))
