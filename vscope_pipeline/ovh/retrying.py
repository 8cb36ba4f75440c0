"""Bounded retries and a client-side rate limit around every python-ovh call.

python-ovh 1.2.0 makes one attempt per call. `RetryingClient` repeats a call that failed
transiently, with the waits and attempt limit of `vscope_pipeline.retry.RetryPolicy`:

- 429 Too Many Requests, waiting at least its Retry-After;
- 500, 502, 503 and 504;
- python-ovh's `HTTPError` ("Low HTTP request failed error": connection refused or reset, DNS
  failure, connect or read timeout) and `NetworkError`;
- python-ovh's `InvalidResponse`, a body that is not JSON. python-ovh 1.2.0 raises it without
  the HTTP status, and the usual cause is the HTML error page of a gateway (502, 503, 504) or a
  connection cut mid-body.

Any other error is raised at once, unchanged: a 404 (an object deleted since it was listed, or
a missing route) and every 400, 401 and 403 (NOT_GRANTED_CALL, INVALID_KEY, ...) would fail
the same way again. When no attempt is left, OvhRetriesExhaustedError names the URL, the
attempts and the last failure.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import ovh
import requests

from vscope_pipeline.ovh.errors import OvhRequestError, error_text
from vscope_pipeline.rate_limit import RateLimiter
from vscope_pipeline.retry import (
    RetriesExhausted,
    RetryPolicy,
    TransientFailure,
    call_with_retries,
    parse_retry_after,
)

log = logging.getLogger(__name__)

# Requests per second, and how many may go at once after a pause. A walk of a small account
# (about 25 calls with batch GET) then runs without waiting.
# NOTE: OVHcloud does not document APIv6 rate limits. In 2019 its staff wrote on python-ovh's
# issue tracker that under 60 requests per minute per consumer key "should be ok". This default
# is faster, so an account that hits a limit gets 429 responses, which are retried after their
# Retry-After.
DEFAULT_REQUESTS_PER_SECOND = 20.0
DEFAULT_BURST = 20

# 429 Too Many Requests, 500 "Internal server error" (also returned when a backend call of
# APIv6 fails for a moment), and the statuses of a gateway whose backend is overloaded,
# restarting or slow. Every call retried here is a GET or a POST that only reads
# (metricsToken returns the current token), so repeating one is harmless.
OVH_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

DEFAULT_POLICY = RetryPolicy()


@dataclass
class CallCounts:
    """Counters of one task, such as one inventory walk.

    `requests` counts the attempts sent, retries included, and not python-ovh's `/auth/time`
    call. `retries` counts the attempts that repeated a failed one. Not thread-safe: use one
    per task and thread.
    """

    requests: int = 0
    retries: int = 0


@dataclass(frozen=True)
class TransientError:
    """Why a failed call may succeed if repeated: the failure text, HTTP status and Retry-After.

    `status` is None for failures without a response (timeouts, connection errors) and for a
    body that is not JSON. `retry_after` is in seconds.
    """

    reason: str
    status: int | None = None
    retry_after: float | None = None


class OvhRetriesExhaustedError(OvhRequestError):
    """An APIv6 call that failed transiently on every allowed attempt.

    `url` is the full request URL, `attempts` the number of requests sent, and `status` the
    HTTP status of the last one (None for a timeout or a connection error).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        url: str,
        attempts: int,
        status: int | None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.url = url
        self.attempts = attempts
        self.status = status


_NOT_JSON = (
    "the response body is not JSON, as sent by a failing gateway or a connection cut mid-response"
)


class _FailedAttempt(TransientFailure):
    def __init__(self, transient: TransientError) -> None:
        super().__init__(transient.reason, retry_after=transient.retry_after)
        self.transient = transient


def transient_error(error: ovh.APIError) -> TransientError | None:
    """Return why `error` may go away on a new attempt, or None when it is permanent."""
    if isinstance(error, ovh.HTTPError):
        cause = error.args[1] if len(error.args) > 1 else None
        if isinstance(cause, requests.Timeout):
            return TransientError(f"timed out: {_transport_text(cause)}")
        if isinstance(cause, requests.RequestException):
            return TransientError(f"connection failed: {_transport_text(cause)}")
        return TransientError(f"request failed: {error_text(error)}")
    if isinstance(error, ovh.NetworkError):
        return TransientError("network error reported by python-ovh")
    if isinstance(error, ovh.InvalidResponse):
        return TransientError(_NOT_JSON)

    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    # A bare APIError without a response (raised by code, not by an HTTP reply) is permanent.
    if not isinstance(status, int) or status not in OVH_RETRY_STATUSES:
        return None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))  # type: ignore[union-attr]
    return TransientError(
        f"HTTP {status} {_phrase(status)}: {error_text(error)}", status, retry_after
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def _transport_text(cause: requests.RequestException) -> str:
    """Return the underlying cause of a requests error without urllib3's "Max retries" wrapper.

    python-ovh sends each request once (its session's adapter retries nothing), so that
    wrapper only hides the cause, such as `Connection refused`.
    """
    inner = cause.args[0] if cause.args else None
    reason = getattr(inner, "reason", None)
    return str(reason) if reason is not None else str(cause)


class RetryingClient:
    """A python-ovh client whose calls are rate limited and retried when they fail transiently.

    `rate_limiter` is taken before every attempt; pass None for no limit, or one limiter to
    several clients to share it. python-ovh's one `/auth/time` request, made inside the first
    call, shares that call's attempt and token. `sleep` and `uniform` (a random number in
    [0, 1) for the backoff jitter) are arguments so that tests observe every wait without
    waiting. One instance may be shared by threads: the rate limiter is thread-safe and the
    other attributes are read-only.
    """

    def __init__(
        self,
        client: ovh.Client,
        *,
        rate_limiter: RateLimiter | None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._limiter = rate_limiter
        self._policy = policy
        self._sleep = sleep
        self._uniform = uniform

    def __repr__(self) -> str:
        return f"RetryingClient({self._client!r}, {self._policy!r}, {self._limiter!r})"

    @property
    def client(self) -> ovh.Client:
        return self._client

    @property
    def rate_limiter(self) -> RateLimiter | None:
        return self._limiter

    def get(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        counts: CallCounts | None = None,
    ) -> Any:
        """GET `path` with the query parameters `query` and return the decoded JSON.

        Raises the python-ovh error of a permanent failure unchanged, and
        OvhRetriesExhaustedError when transient failures used up the attempts.
        """
        target = f"{path}?{urlencode(query)}" if query else path
        return self._call(
            "GET",
            path,
            target,
            lambda: self._client.get(path, **(query or {})),
            counts=counts,
            idempotent=True,
        )

    def time_delta(self) -> int:
        """Return python-ovh's `time_delta`: APIv6 time minus local time, in whole seconds.

        python-ovh reads `GET /auth/time` once per client and caches the difference, so only
        the first call sends a request. That request is rate limited and retried like the others.
        """
        return int(
            self._call(
                "GET",
                "/auth/time",
                "/auth/time",
                lambda: self._client.time_delta,
                counts=None,
                idempotent=True,
            )
        )

    def post(self, path: str, *, idempotent: bool, counts: CallCounts | None = None) -> Any:
        """POST to `path` without a body and return the decoded JSON.

        Set `idempotent` when repeating the call is harmless. A POST that is not is only
        repeated after 429 Too Many Requests, which APIv6 returns before doing anything.
        """
        return self._call(
            "POST",
            path,
            path,
            lambda: self._client.post(path),
            counts=counts,
            idempotent=idempotent,
        )

    def _call(
        self,
        method: str,
        path: str,
        target: str,
        send: Callable[[], Any],
        *,
        counts: CallCounts | None,
        idempotent: bool,
    ) -> Any:
        counted = counts if counts is not None else CallCounts()
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            if self._limiter is not None:
                self._limiter.acquire()
            attempts += 1
            counted.requests += 1
            if attempts > 1:
                counted.retries += 1
            try:
                return send()
            except ovh.APIError as error:
                transient = transient_error(error)
                if transient is None or not (idempotent or transient.status == 429):
                    raise
                raise _FailedAttempt(transient) from error

        try:
            return call_with_retries(
                attempt,
                self._policy,
                description=f"{method} {target}",
                sleep=self._sleep,
                uniform=self._uniform,
            ).value
        except RetriesExhausted as exhausted:
            last = exhausted.last_failure
            assert isinstance(last, _FailedAttempt)
            raise self._exhausted_error(method, path, target, exhausted, last.transient) from (
                last.__cause__ or last
            )

    def _exhausted_error(
        self,
        method: str,
        path: str,
        target: str,
        exhausted: RetriesExhausted,
        transient: TransientError,
    ) -> OvhRetriesExhaustedError:
        # python-ovh 1.2.0 keeps the base URL, such as https://eu.api.ovh.com/1.0, in _endpoint.
        url = f"{getattr(self._client, '_endpoint', '')}{target}"
        message = (
            f"{method} {url} failed: {transient.reason}; {exhausted.reason}. {_advice(transient)}"
        )
        return OvhRetriesExhaustedError(
            message,
            method=method,
            path=path,
            url=url,
            attempts=exhausted.attempts,
            status=transient.status,
        )


def _advice(transient: TransientError) -> str:
    if transient.status == 429:
        return (
            "APIv6 limits the request rate of this consumer key: lower the client rate limit, "
            "or run again later"
        )
    if transient.status is None and transient.reason != _NOT_JSON:
        return "Check the network and OVH_ENDPOINT, or run again later"
    return "APIv6 or a gateway in front of it is failing: run again later"


# One rate limit per python-ovh client, shared by every RetryingClient made for it by
# `retrying_client`. The bucket does not refer to the client, so the entry goes with it.
_shared_limiters: weakref.WeakKeyDictionary[ovh.Client, RateLimiter] = weakref.WeakKeyDictionary()
_shared_limiters_lock = threading.Lock()


def retrying_client(client: ovh.Client | RetryingClient) -> RetryingClient:
    """Return `client` if it is a RetryingClient, else one with the default policy and limit.

    Every RetryingClient returned for the same python-ovh client shares one rate limit, so
    that the inventory walk and the token lookup together stay under it.
    """
    if isinstance(client, RetryingClient):
        return client
    with _shared_limiters_lock:
        limiter = _shared_limiters.get(client)
        if limiter is None:
            limiter = RateLimiter(DEFAULT_REQUESTS_PER_SECOND, DEFAULT_BURST)
            _shared_limiters[client] = limiter
    return RetryingClient(client, rate_limiter=limiter)
