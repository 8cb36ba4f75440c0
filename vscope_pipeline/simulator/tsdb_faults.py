"""Fault injection and request counters for the simulated OpenTSDB server.

Tests and benchmarks change a `Faults` object while the server runs, from another thread:
queue forced responses (a 429 with `Retry-After`, a 502 page), delay every response, or set
a data-point limit so that large sub-queries fail with OpenTSDB's 413. `RequestCounters`
records the responses the server sent.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ForcedResponse:
    """A response sent instead of the real one, e.g. `ForcedResponse(429, ...)`."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"


@dataclass
class Faults:
    """Faults the OpenTSDB server injects into its `/api/query` responses.

    `delay_s` (seconds) is slept before every `/api/query` response. `max_data_points` > 0 makes
    a sub-query that scans more points fail with 413, as OpenTSDB's
    `tsd.query.limits.data_points.default` does. Plain attribute assignment is atomic in
    CPython, so the two fields may be set from any thread; the queue has its own lock.
    """

    delay_s: float = 0.0
    max_data_points: int = 0
    _forced: deque[ForcedResponse] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
