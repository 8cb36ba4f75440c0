"""The settable clock of the simulated services."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from vscope_pipeline.simulator.clock import SimulatorClock

NOON = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


class FakeTime:
    """A time source that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_default_clock_is_real_time() -> None:
    fake = FakeTime()
    assert SimulatorClock(time_source=fake)() == 1_700_000_000.0


def test_set_moves_clock_to_moment() -> None:
    clock = SimulatorClock(time_source=FakeTime())
    clock.set(NOON)
    assert clock() == NOON.timestamp()
    assert clock.now() == NOON


def test_start_argument_sets_clock() -> None:
    assert SimulatorClock(NOON, time_source=FakeTime()).now() == NOON


def test_clock_keeps_running_after_set() -> None:
    fake = FakeTime()
    clock = SimulatorClock(NOON, time_source=fake)
    fake.now += 2.5
    assert clock.now() == NOON + dt.timedelta(seconds=2.5)


def test_advance_by_days_and_seconds() -> None:
    clock = SimulatorClock(NOON, time_source=FakeTime())
    clock.advance(days=1)
    assert clock.now() == dt.datetime(2025, 3, 11, 12, 0, tzinfo=dt.UTC)
    clock.advance(seconds=-3600)
    assert clock.now() == dt.datetime(2025, 3, 11, 11, 0, tzinfo=dt.UTC)


def test_set_accepts_other_timezones() -> None:
    clock = SimulatorClock(time_source=FakeTime())
    clock.set(dt.datetime(2025, 3, 10, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert clock.now() == NOON


def test_set_rejects_naive_datetime() -> None:
    clock = SimulatorClock(time_source=FakeTime())
    message = (
        "simulator clock time 2025-03-10T12:00:00 has no timezone: pass an aware datetime, "
        "such as datetime(2025, 3, 10, 12, tzinfo=UTC)"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        clock.set(dt.datetime(2025, 3, 10, 12, 0))
    assert str(raised.value) == message
