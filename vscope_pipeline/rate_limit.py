"""A client-side rate limit shared by the APIv6 and OpenTSDB clients: a thread-safe token bucket."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class RateLimiter:
    """Spaces calls to at most `rate` per second on average, with bursts of up to `burst`.

    The bucket holds up to `burst` tokens and gains `rate` tokens per second; each call takes
    one. `acquire` reserves its token under a lock and sleeps outside it, so concurrent
    callers are spaced 1/rate seconds apart in the order they took the lock. `clock` returns
    seconds from a monotonic clock; `clock` and `sleep` are arguments so that tests can use a
    fake clock.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(
                f"rate {rate!r} is invalid: expected a positive, finite number of requests per "
                "second"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst {burst!r} is invalid: expected an integer of 1 or more")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}, burst={self.burst})"

    def acquire(self) -> float:
        """Wait until a call is allowed, and return the seconds waited (0.0 when none)."""
        with self._lock:
            now = self._clock()
            refilled = self._tokens + (now - self._updated) * self.rate
            self._tokens = min(float(self.burst), refilled) - 1.0
            self._updated = now
            # A negative balance is a debt: the calls before this one still have to run.
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            log.debug("rate limit of %g requests per second: waiting %.3f s", self.rate, wait)
            self._sleep(wait)
        return wait
