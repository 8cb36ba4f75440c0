"""Fault injection and request counters for the simulated OpenTSDB server.

Tests and benchmarks change a `Faults` object while the server runs, from another thread.
They can queue forced responses (a 429 with `Retry-After`, a 502 page) and delay every
response or only large ones. A data-point limit makes large sub-queries fail with OpenTSDB's
413 or with the 500 of OVH's proxy. The server can also ignore group-by, or align downsample
buckets to the query end as OVH's proxy does, and cut responses short: the headers and half
of the body are sent, then the connection is reset. A `request_hook` chooses a fault for each
request from its body, as the seeded chaos of a soak test does. `RequestCounters` records the
responses the server sent, and `RequestLog` when each `/api/query` request arrived and finished.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ForcedResponse:
    """A response sent instead of the real one, e.g. `ForcedResponse(429, ...)`."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class InjectedFault:
    """The fault a request hook chooses for one `/api/query` request.

    The server sleeps `delay_s` seconds, then sends `response` instead of the real response
    when it is set. With `cut`, the response sent is reset after half its body, as
    `Faults.cut_next` does.
    """

    delay_s: float = 0.0
    response: ForcedResponse | None = None
    cut: bool = False


# Called with the body of every `/api/query` request, before the other faults apply.
RequestHook = Callable[[bytes], InjectedFault | None]


@dataclass
class Faults:
    """Faults the OpenTSDB server injects into its `/api/query` responses.

    Plain attribute assignment is atomic in CPython, so the fields may be set from any
    thread; the queue of forced responses has its own lock.
    """

    # Seconds slept before every `/api/query` response.
    delay_s: float = 0.0
    # When > 0, a sub-query that scans more points fails with 413, as OpenTSDB's
    # `tsd.query.limits.data_points.default` does, or with 500 under `limit_error_as_proxy`.
    max_data_points: int = 0
    # Report the data-point limit as OVH's proxy reports Warp 10's: HTTP 500 with the
    # plain-text message "... FETCH exceeded limit of N datapoints, current count is M ...".
    limit_error_as_proxy: bool = False
    # When > 0, a successful response with more data points is sent `slow_delay_s` seconds
    # late, like a backend whose query time grows with the data read.
    slow_above_points: int = 0
    slow_delay_s: float = 0.0
    # Ignore every group-by flag, as a server without group-by support does: the series that
    # match a sub-query are aggregated into one instead of one per tag value. The `none`
    # aggregator still returns each series apart, since it does not group.
    ignore_group_by: bool = False
    # Align downsample buckets to the query end and stamp each with its last millisecond,
    # as OVH's proxy does (Warp 10's BUCKETIZE with the end as last bucket), instead of
    # OpenTSDB's epoch-aligned buckets stamped with their start.
    end_aligned_buckets: bool = False
    # Chooses a fault for each request; the request is served normally when it returns None.
    # It runs on the server's request threads, several at once, so it must be thread-safe.
    request_hook: RequestHook | None = None
    _forced: deque[ForcedResponse] = field(default_factory=deque, repr=False)
    _cuts: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cut_next(self, count: int = 1) -> None:
        """Cut the next `count` `/api/query` responses, forced ones included, after half the body.

        Each sends its headers with the full Content-Length and the first half of the body (as
        sent, so gzip-compressed when the client accepts gzip), then resets the connection.
        """
        if count < 0:
            raise ValueError(f"cut_next count {count} is invalid: expected 0 or more")
        with self._lock:
            self._cuts += count

    def take_cut(self) -> bool:
        """Return whether the response being sent is to be cut, using up one cut if so."""
        with self._lock:
            if self._cuts == 0:
                return False
            self._cuts -= 1
            return True

    def clear(self) -> None:
        """Remove the queued forced responses and the pending cuts."""
        with self._lock:
            self._forced.clear()
            self._cuts = 0

    def force(self, *responses: ForcedResponse) -> None:
        """Queue responses that the next `/api/query` requests get, one each, in order."""
        with self._lock:
            self._forced.extend(responses)

    def next_forced(self) -> ForcedResponse | None:
        """Remove and return the next queued response, or None when the queue is empty."""
        with self._lock:
            return self._forced.popleft() if self._forced else None

    def pending(self) -> int:
        """Return how many forced responses are still queued."""
        with self._lock:
            return len(self._forced)

    def pending_cuts(self) -> int:
        """Return how many responses are still to be cut."""
        with self._lock:
            return self._cuts


@dataclass(frozen=True)
class CounterSnapshot:
    """The counters at one moment: requests, requests per status, data points returned."""

    requests: int
    by_status: Mapping[int, int]
    points_returned: int


class RequestCounters:
    """Thread-safe counts of the responses a server sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._by_status: Counter[int] = Counter()
        self._points = 0

    def record(self, status: int, points: int = 0) -> None:
        """Count one response with its status and the data points it holds.

        A response counts even when the client closed the connection before receiving it.
        """
        with self._lock:
            self._requests += 1
            self._by_status[status] += 1
            self._points += points

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(self._requests, dict(self._by_status), self._points)


@dataclass(frozen=True)
class LoggedRequest:
    """One `/api/query` request as the server saw it, in seconds of the log's clock."""

    # When the server had read the request line and headers, before the body.
    arrived: float
    # When the server had sent the whole response, or found the client gone.
    finished: float
    # The status sent, or None when the handler failed before sending one.
    status: int | None


class RequestLog:
    """Thread-safe log of the `/api/query` requests a server handled, in order of finish.

    `clock` returns seconds; the default, `time.monotonic`, is comparable across the
    processes of one machine on Linux and macOS.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def now(self) -> float:
        """Return the log clock's reading, to pass as `arrived` to `finish`."""
        return self._clock()

    def finish(self, arrived: float, status: int | None) -> None:
        """Record a request that arrived at `arrived` and finishes now."""
        entry = LoggedRequest(arrived, self._clock(), status)
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> tuple[LoggedRequest, ...]:
        with self._lock:
            return tuple(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
