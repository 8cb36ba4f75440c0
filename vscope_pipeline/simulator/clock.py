"""A clock for the simulated services that tests can set to any day and move forward."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable


class SimulatorClock:
    """Real time shifted by an offset: a callable that returns epoch seconds.

    After `set` or `advance` the clock keeps running at the real pace, so the timestamps that
    python-ovh signs with stay within the server's allowed skew during a long run. Pass it as
    the `clock` of the simulated APIv6 and OpenTSDB servers. Safe to call from any thread.
    """

    def __init__(
        self, start: dt.datetime | None = None, *, time_source: Callable[[], float] = time.time
    ) -> None:
        self._time_source = time_source
        self._lock = threading.Lock()
        self._offset_s = 0.0
        if start is not None:
            self.set(start)

    def __call__(self) -> float:
        with self._lock:
            return self._time_source() + self._offset_s

    def now(self) -> dt.datetime:
        """Return the clock's current time as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self(), dt.UTC)

    def set(self, moment: dt.datetime) -> None:
        """Make the clock read `moment` now. `moment` must be timezone-aware."""
        if moment.tzinfo is None:
            raise ValueError(
                f"simulator clock time {moment.isoformat()} has no timezone: pass an aware "
                "datetime, such as datetime(2025, 3, 10, 12, tzinfo=UTC)"
            )
        with self._lock:
            self._offset_s = moment.timestamp() - self._time_source()

    def advance(self, *, days: float = 0, seconds: float = 0) -> None:
        """Move the clock forward (or back, with negative values) by `days` and `seconds`."""
        with self._lock:
            self._offset_s += days * 86_400 + seconds
