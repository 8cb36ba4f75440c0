from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from vscope_pipeline.retry import (
    RETRY_STATUSES,
    RetriesExhausted,
    RetryOutcome,
    RetryPolicy,
    TransientFailure,
    call_with_retries,
    parse_retry_after,
)

POLICY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0, jitter=0.5)


@pytest.mark.parametrize(
    ("attempt", "uniform", "expected"),
    [
        (1, 0.0, 1.0),
        (2, 0.0, 2.0),
        (3, 0.0, 4.0),
        (4, 0.0, 8.0),
        (1, 0.5, 0.75),
        (3, 0.999, 2.002),
        (5, 0.0, 16.0),
        (6, 0.0, 30.0),
        (20, 0.0, 30.0),
        (20, 0.999, 15.015),
    ],
)
def test_backoff_doubles_and_is_capped(attempt: int, uniform: float, expected: float) -> None:
    assert POLICY.backoff(attempt, uniform) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 10])
def test_backoff_jitter_range(attempt: int) -> None:
    ceiling = min(30.0, 2.0 ** (attempt - 1))
    delays = [POLICY.backoff(attempt, step / 100) for step in range(100)]

    assert max(delays) == ceiling
    assert min(delays) > ceiling * 0.5
    assert all(ceiling * 0.5 < delay <= ceiling for delay in delays)


def test_backoff_without_jitter_is_fixed() -> None:
    policy = RetryPolicy(jitter=0.0)

    assert policy.backoff(3, 0.0) == 4.0
    assert policy.backoff(3, 0.99) == 4.0


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 1.0),
        (1, 10.0, 10.0),
        (4, 3.0, 8.0),
        (4, 120.0, 120.0),
        (1, 120.5, None),
        (5, None, None),
        (5, 1.0, None),
    ],
)
def test_delay_before_retry_cases(
    attempt: int, retry_after: float | None, expected: float | None
) -> None:
    assert POLICY.delay_before_retry(attempt, retry_after, 0.0) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_attempts": 0}, "max_attempts 0 is invalid: expected 1 or more"),
        ({"jitter": 1.5}, "jitter 1.5 is invalid: expected a fraction in [0, 1]"),
        (
            {"max_attempts_on_500": 0},
            "max_attempts_on_500 0 is invalid: expected 1 or more",
        ),
        (
            {"base_delay": 5.0, "max_delay": 1.0},
            "base_delay 5.0 and max_delay 1.0 are invalid: expected 0 <= base_delay <= max_delay",
        ),
    ],
)
def test_policy_rejects_invalid_settings(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=r"is invalid|are invalid") as raised:
        RetryPolicy(**arguments)  # type: ignore[arg-type]

    assert str(raised.value) == message


class _Script:
    """An operation that fails with the given failures, then returns "done"."""

    def __init__(self, failures: Sequence[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def test_retries_until_success() -> None:
    sleeps: list[float] = []
    operation = _Script([TransientFailure("HTTP 503"), TransientFailure("HTTP 502")])

    outcome = call_with_retries(
        operation, POLICY, description="query", sleep=sleeps.append, uniform=lambda: 0.0
    )

    assert outcome == RetryOutcome("done", 3)
    assert operation.calls == 3
    assert sleeps == [1.0, 2.0]


def test_retries_honour_retry_after() -> None:
    sleeps: list[float] = []
    operation = _Script([TransientFailure("HTTP 429", retry_after=7.0)])

    outcome = call_with_retries(
        operation, POLICY, description="query", sleep=sleeps.append, uniform=lambda: 0.0
    )

    assert outcome.attempts == 2
    assert sleeps == [7.0]


def test_retries_are_bounded() -> None:
    sleeps: list[float] = []
    last = TransientFailure("HTTP 503")
    operation = _Script([TransientFailure("HTTP 503")] * 4 + [last, TransientFailure("x")])

    with pytest.raises(RetriesExhausted) as raised:
        call_with_retries(
            operation, POLICY, description="query", sleep=sleeps.append, uniform=lambda: 0.0
        )

    assert operation.calls == 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert raised.value.attempts == 5
    assert raised.value.last_failure is last
    assert raised.value.__cause__ is last
    assert str(raised.value) == "HTTP 503; gave up after 5 attempts"


def test_failure_lowers_attempt_limit() -> None:
    sleeps: list[float] = []
    operation = _Script([TransientFailure("HTTP 500", max_attempts=2)] * 3)

    with pytest.raises(RetriesExhausted) as raised:
        call_with_retries(
            operation, POLICY, description="query", sleep=sleeps.append, uniform=lambda: 0.0
        )

    assert operation.calls == 2
    assert sleeps == [1.0]
    assert raised.value.attempts == 2
    assert str(raised.value) == "HTTP 500; gave up after 2 attempts"


def test_failure_limit_counts_earlier_attempts() -> None:
    sleeps: list[float] = []
    failures = [TransientFailure("HTTP 503"), TransientFailure("HTTP 503")]
    operation = _Script([*failures, TransientFailure("HTTP 500", max_attempts=3)])

    with pytest.raises(RetriesExhausted) as raised:
        call_with_retries(
            operation, POLICY, description="query", sleep=sleeps.append, uniform=lambda: 0.0
        )

    assert operation.calls == 3
    assert sleeps == [1.0, 2.0]
    assert raised.value.reason == "gave up after 3 attempts"


def test_failure_limit_above_policy_is_ignored() -> None:
    assert POLICY.attempt_limit(None) == 5
    assert POLICY.attempt_limit(3) == 3
    assert POLICY.attempt_limit(9) == 5


def test_retry_statuses() -> None:
    assert sorted(RETRY_STATUSES) == [408, 424, 429, 500, 502, 503, 504]


def test_retries_stop_on_long_retry_after() -> None:
    sleeps: list[float] = []
    operation = _Script([TransientFailure("HTTP 429", retry_after=3600.0)])

    with pytest.raises(RetriesExhausted) as raised:
        call_with_retries(operation, POLICY, description="query", sleep=sleeps.append)

    assert sleeps == []
    assert raised.value.attempts == 1
    assert raised.value.reason == (
        "gave up after 1 attempt because the server asked to wait 3600 s (Retry-After), "
        "more than the 120 s allowed"
    )


def test_other_exceptions_are_not_retried() -> None:
    sleeps: list[float] = []
    operation = _Script([KeyError("boom")])

    with pytest.raises(KeyError):
        call_with_retries(operation, POLICY, description="query", sleep=sleeps.append)

    assert operation.calls == 1
    assert sleeps == []


def test_retry_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    operation = _Script([TransientFailure("HTTP 503: busy")])

    call_with_retries(
        operation, POLICY, description="OpenTSDB query", sleep=lambda _: None, uniform=lambda: 0.0
    )

    assert caplog.messages == [
        "OpenTSDB query failed (HTTP 503: busy): attempt 1 of 5, retrying in 1.0 s"
    ]


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_parse_retry_after_cases(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected
