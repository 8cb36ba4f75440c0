"""Client-side request limits: a thread-safe token bucket, and limits shared by processes.

`RateLimiter` paces the threads of one process. Parallel Dagster runs are separate processes,
so each would get the whole configured rate and concurrency from its own limiter, and two runs
together would send twice as much. `SharedRateLimiter` and `SharedSlots` apply across
processes instead, because their state lives in files of one directory, keyed by endpoint.
Every process of this user on this machine that uses the same directory and key shares one
limit, whatever the number of runs or of Dagster pool slots.

- `SharedRateLimiter` keeps the bucket (tokens and the time they were counted) in a small file,
  read and rewritten under an exclusive `fcntl.flock`. Time is `time.monotonic`, which on Linux
  and macOS counts from boot for every process alike, so processes can compare their readings.
- `SharedSlots` bounds the requests in flight with N lock files `slot-<i>.lock`: a request
  holds one, taken with a non-blocking exclusive flock. The kernel releases a lock when its
  process dies, so a crashed run does not keep its slot.

flock locks belong to an open file description, so threads of one process that each open the
file also exclude one another. The limits are advisory: a process that does not use them is
not limited. Each process applies its own rate and slot count to the shared state, so with
different settings the strictest rate is not guaranteed, but the number of slots in use never
exceeds the largest slot count configured.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import random
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Seconds between two rounds of attempts to take a shared slot while all are held. A request
# to the endpoint takes tens of milliseconds or more, so a shorter poll only burns CPU.
SLOT_POLL_SECONDS = 0.005

_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def _check_rate(rate: float, burst: int) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(
            f"rate {rate!r} is invalid: expected a positive, finite number of requests per second"
        )
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst {burst!r} is invalid: expected an integer of 1 or more")


def take_token(
    tokens: float, updated: float, now: float, rate: float, burst: int
) -> tuple[float, float]:
    """Take one token from a bucket last counted at `updated`; return the new balance and wait.

    The bucket gains `rate` tokens per second up to `burst`. A negative balance is a debt: the
    calls before this one still have to run, so this one waits until the debt is paid. A
    clock reading earlier than `updated` (another boot of the machine) counts as a full bucket.
    """
    elapsed = now - updated
    refilled = float(burst) if elapsed < 0 else tokens + elapsed * rate
    balance = min(float(burst), refilled) - 1.0
    wait = -balance / rate if balance < 0 else 0.0
    return balance, wait


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
        _check_rate(rate, burst)
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
            self._tokens, wait = take_token(self._tokens, self._updated, now, self.rate, self.burst)
            self._updated = now
        if wait > 0:
            log.debug("rate limit of %g requests per second: waiting %.3f s", self.rate, wait)
            self._sleep(wait)
        return wait


class SharedRateLimiter(RateLimiter):
    """A `RateLimiter` whose bucket is the file `path`, shared by every process that uses it.

    `acquire` reads the balance, takes a token and writes the balance back while it holds an
    exclusive flock on the file, then sleeps outside the lock. A missing, empty or unreadable
    file counts as a full bucket.
    """

    def __init__(
        self,
        path: Path,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate, burst, clock=clock, sleep=sleep)
        self.path = path

    def __repr__(self) -> str:
        return f"SharedRateLimiter({str(self.path)!r}, rate={self.rate:g}, burst={self.burst})"

    def acquire(self) -> float:
        """Wait until a call is allowed by the shared bucket; return the seconds waited."""
        # The thread lock keeps this process's threads from queueing on the file lock.
        with self._lock, _open_locked(self.path) as fd:
            now = self._clock()
            tokens, updated = _read_bucket(fd, self.path, default=(float(self.burst), now))
            balance, wait = take_token(tokens, updated, now, self.rate, self.burst)
            _write_bucket(fd, balance, now)
        if wait > 0:
            log.debug(
                "shared rate limit of %g requests per second: waiting %.3f s", self.rate, wait
            )
            self._sleep(wait)
        return wait


@contextlib.contextmanager
def _open_locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # Closing the only descriptor of the open file releases its lock.


def _read_bucket(fd: int, path: Path, *, default: tuple[float, float]) -> tuple[float, float]:
    text = os.pread(fd, 256, 0).decode("ascii", errors="replace").strip()
    if not text:
        return default
    try:
        tokens_text, updated_text = text.split()
        return float(tokens_text), float(updated_text)
    except ValueError:
        log.warning("rate limit state %s is invalid (%r): starting with a full bucket", path, text)
        return default


def _write_bucket(fd: int, tokens: float, updated: float) -> None:
    data = f"{tokens!r} {updated!r}\n".encode("ascii")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


class SharedSlots:
    """At most `count` holders at once across processes, as lock files `slot-<i>.lock` in `folder`.

    `hold()` tries the slots in turn from a random one with a non-blocking exclusive flock,
    and polls every SLOT_POLL_SECONDS while all are held. Slots are not queued in order, so
    under contention a waiter may wait longer than a later one.
    """

    def __init__(
        self,
        folder: Path,
        count: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"slot count {count!r} is invalid: expected an integer of 1 or more")
        self.folder = folder
        self.count = count
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SharedSlots({str(self.folder)!r}, count={self.count})"

    @contextlib.contextmanager
    def hold(self) -> Iterator[int]:
        """Hold one slot for the duration of the block; yield its index."""
        fd, index = self._take()
        try:
            yield index
        finally:
            os.close(fd)  # Releases the flock.

    def _take(self) -> tuple[int, int]:
        first = random.randrange(self.count)
        waited = 0.0
        while True:
            for offset in range(self.count):
                index = (first + offset) % self.count
                fd = os.open(self.folder / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                if waited:
                    log.debug("took shared slot %d of %s after %.3f s", index, self.folder, waited)
                return fd, index
            self._sleep(SLOT_POLL_SECONDS)
            waited += SLOT_POLL_SECONDS


def endpoint_key(kind: str, endpoint: str) -> str:
    """Return a file-name-safe key for an endpoint, such as `opentsdb-127.0.0.1-4242`."""
    cleaned = _UNSAFE_KEY_CHARACTERS.sub("-", endpoint).strip("-.")
    if not cleaned:
        raise ValueError(
            f"endpoint {endpoint!r} is invalid: expected a host name, host:port or endpoint name"
        )
    return f"{kind}-{cleaned}"


def default_limits_dir() -> Path:
    """Return the machine-wide folder of shared limits of this user, under the temp folder."""
    return Path(tempfile.gettempdir()) / f"vscope-pipeline-limits-{os.getuid()}"


def limits_folder(base: Path, key: str) -> Path:
    """Create (if needed) and return the folder of one endpoint's shared limits under `base`.

    The parent of `base` must exist. The folders are private to this user (mode 0700). Raises
    PermissionError when `base` or the folder belongs to another user, who could otherwise
    hold every slot, or when another user may write in it.
    """
    folder = base / key
    base.mkdir(mode=0o700, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    for checked in (base, folder):
        info = checked.stat()
        if info.st_uid != os.getuid():
            problem = f"belongs to user id {info.st_uid}, not to this user (id {os.getuid()})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"is writable by other users (mode {stat.filemode(info.st_mode)})"
        else:
            continue
        raise PermissionError(
            f"shared limits folder {checked} {problem}: expected a folder of this user with "
            "mode 0700. Remove it and run again"
        )
    return folder


@dataclass(frozen=True)
class SharedLimits:
    """The shared limits of one endpoint: slots for the requests in flight, and their rate."""

    slots: SharedSlots
    # None sends without a rate limit.
    rate_limiter: SharedRateLimiter | None


def shared_limits(
    base: Path, key: str, *, max_concurrency: int, rate: float | None, burst: int = 1
) -> SharedLimits:
    """Return the limits of the endpoint `key` (see `endpoint_key`), stored under `base`."""
    folder = limits_folder(base, key)
    limiter = SharedRateLimiter(folder / "rate", rate, burst) if rate is not None else None
    return SharedLimits(SharedSlots(folder, max_concurrency), limiter)
