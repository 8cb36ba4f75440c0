"""Retry policy for HTTP calls: bounded attempts, exponential backoff with jitter.

The policy is plain data and pure functions; `call_with_retries` takes the sleep and random
functions as arguments, so tests check every delay without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses whose failure may go away on a later attempt. 429 is Too Many Requests. OpenTSDB
# returns 408 and 424 when a request timed out or its storage failed. OVH's OpenTSDB proxy
# returns 500 for any backend failure, which callers retry fewer times (see
# RetryPolicy.max_attempts_on_500). A gateway returns 502, 503 and 504 while the backend is
# overloaded, restarting or slow. Other statuses would fail the same way again.
RETRY_STATUSES = frozenset({408, 424, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before repeating a failed request. Times in seconds."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    # Fraction of each backoff delay removed at random, so that parallel clients that failed
    # together do not retry together.
    jitter: float = 0.5
    # A longer Retry-After ends the retries at once instead of stalling a run.
    max_retry_after: float = 120.0
    # A 500 is often a server bug that repeats on every attempt, so it gets fewer attempts.
    max_attempts_on_500: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts {self.max_attempts} is invalid: expected 1 or more")
        if self.max_attempts_on_500 < 1:
            raise ValueError(
                f"max_attempts_on_500 {self.max_attempts_on_500} is invalid: expected 1 or more"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter {self.jitter} is invalid: expected a fraction in [0, 1]")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(
                f"base_delay {self.base_delay} and max_delay {self.max_delay} are invalid: "
                "expected 0 <= base_delay <= max_delay"
            )

    def backoff(self, attempt: int, uniform: float) -> float:
        """Return the jittered delay after failed attempt number `attempt` (1-based).

        `uniform` is a random number in [0, 1). The delay lies in
        ((1 - jitter) * ceiling, ceiling], where
        ceiling = min(max_delay, base_delay * 2 ** (attempt - 1)).
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (1.0 - self.jitter * uniform)

    def delay_before_retry(
        self,
        attempt: int,
        retry_after: float | None,
        uniform: float,
        max_attempts: int | None = None,
    ) -> float | None:
        """Return how long to wait before the next attempt, or None when no retry is left.

        A server's Retry-After is a minimum: the delay is the larger of it and the backoff.
        `max_attempts`, when given, lowers the policy's own limit for this failure.
        """
        if attempt >= self.attempt_limit(max_attempts):
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        delay = self.backoff(attempt, uniform)
        return delay if retry_after is None else max(delay, retry_after)

    def attempt_limit(self, max_attempts: int | None) -> int:
        """Return the attempts allowed for a failure whose own `max_attempts` may be None."""
        return self.max_attempts if max_attempts is None else min(self.max_attempts, max_attempts)


class TransientFailure(Exception):
    """Raised by one attempt whose failure may go away if the request is repeated.

    `max_attempts`, when set, caps the attempts below the policy's limit for this kind of
    failure, counting every attempt of the call.
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, max_attempts: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.max_attempts = max_attempts


class RetriesExhausted(Exception):
    """Every allowed attempt failed, or the server asked to wait longer than allowed."""

    def __init__(self, last_failure: TransientFailure, attempts: int, reason: str) -> None:
        super().__init__(f"{last_failure.reason}; {reason}")
        self.last_failure = last_failure
        self.attempts = attempts
        self.reason = reason


@dataclass(frozen=True)
class RetryOutcome(Generic[T]):
    value: T
    attempts: int


def call_with_retries(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    description: str,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[], float] = random.random,
) -> RetryOutcome[T]:
    """Call `operation` until it returns, retrying each TransientFailure it raises.

    Any other exception propagates at once. Raises RetriesExhausted, chained to the last
    failure, when the policy allows no further attempt.
    """
    attempt = 1
    while True:
        try:
            return RetryOutcome(operation(), attempt)
        except TransientFailure as failure:
            delay = policy.delay_before_retry(
                attempt, failure.retry_after, uniform(), failure.max_attempts
            )
            if delay is None:
                reason = _give_up_reason(policy, failure, attempt)
                raise RetriesExhausted(failure, attempt, reason) from failure
            log.warning(
                "%s failed (%s): attempt %d of %d, retrying in %.1f s",
                description,
                failure.reason,
                attempt,
                policy.attempt_limit(failure.max_attempts),
                delay,
            )
            sleep(delay)
            attempt += 1


def _give_up_reason(policy: RetryPolicy, failure: TransientFailure, attempts: int) -> str:
    counted = f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"
    if attempts >= policy.attempt_limit(failure.max_attempts):
        return f"gave up after {counted}"
    return (
        f"gave up after {counted} because the server asked to wait "
        f"{failure.retry_after:.0f} s (Retry-After), more than the {policy.max_retry_after:.0f} s "
        "allowed"
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return a Retry-After header as seconds to wait, or None when absent or invalid.

    The header contains either delay-seconds or an HTTP-date (RFC 9110, section 10.2.3).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        log.warning("ignoring an invalid Retry-After header %r", text)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (moment - reference).total_seconds())
