"""HTTP client of the vScope OpenTSDB endpoint: `POST /api/query` with the metrics token.

OVH's OpenTSDB proxy takes the token as the HTTP Basic password (the user is `read`) and
rejects GET with 501, so every query is a POST. One client owns one `requests.Session`, whose
keep-alive connections serve every query of a run. The client is polite to the service: a
semaphore bounds the requests in flight and a token bucket their rate, both shared by every
thread that uses the client. Failed attempts are retried under `retry.RetryPolicy`, a
rejected token is refreshed once, and `metric_day` splits queries that are too large. The
exceptions are those of `errors`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import date
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.opentsdb.auth import BASIC_AUTH_USER, TokenAuth, TokenState, check_token
from vscope_pipeline.opentsdb.downsample import Downsample, parse_downsample
from vscope_pipeline.opentsdb.errors import (
    OpenTSDBAuthError,
    OpenTSDBConnectionError,
    OpenTSDBDecodeError,
    OpenTSDBError,
    OpenTSDBQueryError,
    OpenTSDBReadTimeout,
    OpenTSDBServerError,
    OpenTSDBTimeout,
    is_fetch_limit_message,
    server_message,
)
from vscope_pipeline.opentsdb.metric_day import MetricDayFetch, MetricDayRequest, ServerTraits
from vscope_pipeline.opentsdb.planning import describe_query
from vscope_pipeline.opentsdb.results import (
    FetchCounters,
    MetricDayResult,
    MetricDayStats,
    QueryResponse,
)
from vscope_pipeline.rate_limit import RateLimiter, SharedLimits
from vscope_pipeline.retry import (
    RETRY_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientFailure,
    call_with_retries,
    parse_retry_after,
)
from vscope_pipeline.secrets import Secret

__all__ = [
    "BASIC_AUTH_USER",
    "QUERY_PATH",
    "MetricDayResult",
    "MetricDayStats",
    "OpenTSDBClient",
    "QueryResponse",
    "query_url",
]

log = logging.getLogger(__name__)

QUERY_PATH = "/api/query"
DEFAULT_MAX_CONCURRENCY = 4
# Requests per second. NOTE: OVHcloud documents no rate limit for the vScope endpoint, so this
# default is a guess at a polite pace, not a measured limit.
DEFAULT_RATE_LIMIT = 10.0

# OpenTSDB returns 400 with these messages when a metric name or a literal tag value was never
# written. For a backfill that only means "no series yet", not a broken query.
_NO_SUCH_NAME_PREFIXES = ("No such name for 'metrics'", "No such name for 'tagv'")

_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip",
    "Content-Type": "application/json",
}


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
        max_attempts: int | None = None,
    ) -> None:
        super().__init__(reason, retry_after=retry_after, max_attempts=max_attempts)
        self.error_type = error_type
        self.status = status
        self.message = message


class _TokenRejected(Exception):
    """The server refused the token of one attempt (HTTP 401 or 403)."""

    def __init__(self, status: int, message: str, generation: int) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.generation = generation


class OpenTSDBClient:
    """Queries one OpenTSDB endpoint with one metrics token, from any number of threads.

    - `timeout` is (connect, read) in seconds, for each HTTP request.
    - `max_concurrency` bounds the HTTP requests in flight at once across all threads.
    - `rate_limit` is the maximum average of requests per second across all threads, with
      no burst above one request; None sends without a rate limit.
    - `downsample` is a spec such as `5m-avg` sent with every query, whose buckets are then
      stamped with their start in UTC; None (the default) fetches raw points.
    - `refresh_token` returns a new metrics token. It is called at most once per request,
      when the server refuses the current token with 401 or 403.
    - A `session` passed in is used but not closed by `close()`; by default the client
      creates and owns one.
    - `sleep` (seconds), `uniform` (a number in [0, 1)) and `clock` (monotonic seconds) exist
      so that tests can observe retry delays and rate-limit waits without waiting.
    - `shared_limits`, when given, replaces the limits of `max_concurrency` and `rate_limit`
      with slots and a token bucket shared by every process that uses the same files, so
      that parallel runs together stay within one limit.

    NOTE: requests does not document `Session` as thread-safe. Its urllib3 connection pool
    is, and the only state a response changes is the cookie jar, which the vScope endpoint
    is not known to use.
    """

    def __init__(
        self,
        base_url: str,
        token: Secret,
        *,
        timeout: tuple[float, float] = (5.0, 120.0),
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        downsample: str | None = None,
        refresh_token: Callable[[], Secret] | None = None,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        self._tokens = TokenState(check_token(token, "the OpenTSDB token"), refresh_token)
        if max_concurrency < 1:
            raise ValueError(
                f"max_concurrency {max_concurrency!r} is invalid: expected 1 or more requests "
                "in flight"
            )
        self.url = query_url(base_url)
        self._timeout = timeout
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._sleep = sleep
        self._uniform = uniform
        self._shared_limits = shared_limits
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # The APIv6 client's token bucket has nothing specific to APIv6, so both clients use it.
        self._rate_limiter: RateLimiter | None = (
            RateLimiter(rate_limit, clock=clock, sleep=sleep) if rate_limit is not None else None
        )
        if shared_limits is not None:
            self._rate_limiter = shared_limits.rate_limiter
        self._downsample: Downsample | None = (
            parse_downsample(downsample) if downsample is not None else None
        )
        self._traits = ServerTraits()

    def __repr__(self) -> str:
        return f"OpenTSDBClient({self.url!r})"

    @property
    def server_ignores_group_by(self) -> bool:
        """Whether a response showed that the server ignores group-by (learned once)."""
        return self._traits.ignores_group_by

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
        self,
        spec: MetricSpec,
        service_name: str,
        datacenter_label: str,
        day: date,
        expected_entities: Collection[str] = (),
    ) -> MetricDayResult:
        """Fetch every series of one metric in one datacenter for one UTC day.

        `expected_entities` are the names of the datacenter's entities of the metric's kind
        from the inventory (VM moRefs, host names, datastore names). They are needed only when
        the server ignores group-by or a query must be cut by entity.

        Raises an OpenTSDBError subclass when a request fails after its retries and splits,
        or a response cannot be decoded. OpenTSDBLimitError means a query is too large even
        at the smallest unit. OpenTSDBGroupingError means the server ignores group-by and no
        expected entities are given. A metric or datacenter unknown to the server gives an
        empty table with `stats.no_such_name` set.
        """
        if isinstance(expected_entities, str):
            raise TypeError(
                f"expected_entities {expected_entities!r} is a string: pass a collection of "
                "entity names, such as a tuple"
            )
        request = MetricDayRequest(
            spec=spec,
            service_name=service_name,
            datacenter_label=datacenter_label,
            day=day,
            expected_entities=tuple(sorted(set(expected_entities))),
        )
        fetch = MetricDayFetch(
            request,
            self._send,
            url=self.url,
            downsample=self._downsample,
            traits=self._traits,
            scrub=self._scrub,
        )
        result = fetch.run()
        stats = result.stats
        log.debug(
            "fetched %s of %s for %s: %d series, %d points, %d requests, %d retries, "
            "%d splits, %d fallback requests; %s",
            spec.name,
            datacenter_label,
            day.isoformat(),
            stats.decoded.series,
            stats.decoded.points,
            stats.requests,
            stats.retries,
            stats.splits,
            stats.fallback_requests,
            stats.decoded.describe_drops(),
        )
        return result

    def query(self, body: Mapping[str, Any]) -> QueryResponse:
        """POST a query body and return the response body, retrying transient failures.

        Raises OpenTSDBAuthError (401, 403, also after a token refresh), OpenTSDBQueryError
        (other 4xx, 408, 424 and 429 after the retries), OpenTSDBServerError (5xx),
        OpenTSDBTimeout (OpenTSDBReadTimeout for a read timeout) or OpenTSDBConnectionError.
        """
        counters = FetchCounters()
        response = self._send(body, counters)
        return replace(response, requests=counters.requests)

    def _send(self, body: Mapping[str, Any], counters: FetchCounters) -> QueryResponse:
        description = describe_query(body)
        payload = orjson.dumps(body)
        refreshed = False
        while True:
            try:
                response = self._send_with_retries(payload, description, counters)
            except _TokenRejected as rejected:
                if not self._tokens.can_refresh:
                    raise self._error(
                        OpenTSDBAuthError, description, rejected.status, rejected.message, None
                    ) from None
                if refreshed:
                    raise self._refused_after_refresh(description, rejected) from None
                self._refresh_token(description, rejected)
                refreshed = True
                counters.retries += 1
                continue
            counters.bytes_received += len(response.content)
            return response

    def _send_with_retries(
        self, payload: bytes, description: str, counters: FetchCounters
    ) -> QueryResponse:
        attempts = 0

        def attempt() -> QueryResponse:
            nonlocal attempts
            attempts += 1
            counters.requests += 1
            return self._post_once(payload, description)

        try:
            outcome = call_with_retries(
                attempt,
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
        finally:
            counters.retries += max(0, attempts - 1)
        return outcome.value

    def _refresh_token(self, description: str, rejected: _TokenRejected) -> None:
        log.warning(
            "OpenTSDB rejected the metrics token for %s (HTTP %d): refreshing it",
            description,
            rejected.status,
        )
        try:
            self._tokens.refresh(rejected.generation)
        except Exception as exc:
            # The callback belongs to the caller (an APIv6 call, usually), so any failure
            # of it is reported as the reason the token could not be renewed.
            raise OpenTSDBAuthError(
                self._tokens.scrub(
                    f"POST {self.url} for {description} returned HTTP {rejected.status}: "
                    f"{rejected.message}; refreshing the token failed: "
                    f"{type(exc).__name__}: {exc}"
                ),
                url=self.url,
                status=rejected.status,
                server_message=rejected.message,
            ) from exc

    def _refused_after_refresh(
        self, description: str, rejected: _TokenRejected
    ) -> OpenTSDBAuthError:
        return OpenTSDBAuthError(
            self._tokens.scrub(
                f"POST {self.url} for {description} returned HTTP {rejected.status}: "
                f"{rejected.message}; the token was refreshed once and the new token is "
                "refused too. Check that the dedicatedCloud user still has the right to read "
                "vScope metrics, or the value of VSCOPE_OPENTSDB_TOKEN"
            ),
            url=self.url,
            status=rejected.status,
            server_message=rejected.message,
        )

    def _post_once(self, payload: bytes, description: str) -> QueryResponse:
        auth, generation = self._tokens.current()
        with self._slot():
            if self._rate_limiter is not None:
                self._rate_limiter.acquire()
            started = time.perf_counter()
            response = self._post(payload, description, auth)

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
        if status in (401, 403):
            raise _TokenRejected(status, message, generation)
        if status == 500 and is_fetch_limit_message(message):
            # Repeating the same query would exceed the same limit: fail at once, so that
            # the caller can split it.
            raise self._error(OpenTSDBServerError, description, status, message, None)
        if status in RETRY_STATUSES:
            raise _AttemptFailed(
                f"HTTP {status}: {message}",
                error_type=_error_type(status),
                status=status,
                message=message,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                max_attempts=self._retry_policy.max_attempts_on_500 if status == 500 else None,
            )
        if status == 400 and message.startswith(_NO_SUCH_NAME_PREFIXES):
            log.info("no series for %s: %s", description, message)
            return QueryResponse(content=b"[]", requests=1, no_such_name=True, message=message)
        if 300 <= status < 400:
            location = self._scrub(response.headers.get("Location", "(no Location header)"))
            message = f"redirected to {location}; set the endpoint URL to the final address"
        raise self._error(_error_type(status), description, status, message, None)

    def _slot(self) -> AbstractContextManager[object]:
        """Return a context manager that occupies one request slot while it runs."""
        if self._shared_limits is not None:
            return self._shared_limits.slots.hold()
        return self._slots

    def _post(self, payload: bytes, description: str, auth: TokenAuth) -> requests.Response:
        """Send one POST and read the whole body, turning transport errors into failures."""
        try:
            return self._session.post(
                self.url,
                data=payload,
                headers=_HEADERS,
                auth=auth,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.ReadTimeout as exc:
            message = self._scrub(_transport_message(exc))
            raise _AttemptFailed(
                f"timed out: {message}", error_type=OpenTSDBReadTimeout, message=message
            ) from exc
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

    def _error(
        self,
        error_type: type[OpenTSDBError],
        description: str,
        status: int | None,
        message: str | None,
        retries: str | None,
    ) -> OpenTSDBError:
        if issubclass(error_type, OpenTSDBTimeout):
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
            advice = _advice(error_type, status, message)
        if retries:
            text = f"{text}; {retries}"
        if advice:
            text = f"{text}. {advice}"
        return error_type(self._scrub(text), url=self.url, status=status, server_message=message)

    def _scrub(self, text: str) -> str:
        """Replace every token used so far anywhere in `text`, such as a server echoing it."""
        return self._tokens.scrub(text)


def _transport_message(exc: requests.RequestException) -> str:
    """Return the underlying cause of a transport error without urllib3's "Max retries" wrapper.

    requests makes one attempt per call (its adapter retries nothing), so that wrapper
    only hides the cause, such as `Connection refused`.
    """
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return str(reason) if reason is not None else str(exc)


def _advice(error_type: type[OpenTSDBError], status: int | None, message: str | None) -> str:
    if error_type is OpenTSDBAuthError:
        return (
            "Check the vScope metrics token: it must be the current token of the dedicatedCloud "
            "user, or the value of VSCOPE_OPENTSDB_TOKEN"
        )
    if status == 429:
        return "Run fewer queries at once, or retry later"
    if status == 413 or (status == 500 and is_fetch_limit_message(message)):
        return "The query exceeded a limit of the server (data points, bytes or query time)"
    if status in (408, 424):
        return "The server ran out of time or its storage failed: retry the run later"
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
