"""The token bucket that limits the APIv6 request rate, on a fake clock."""

import threading

import pytest

from vscope_pipeline.rate_limit import RateLimiter


class FakeClock:
    """A clock that moves when a test sets `now` or calls `sleep`, and records each sleep."""

    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(rate, burst, clock):
    return RateLimiter(rate, burst, clock=clock, sleep=clock.sleep)


def test_burst_then_spacing():
    clock = FakeClock()
    bucket = limiter(4, 3, clock)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25]
    assert clock.sleeps == [0.25, 0.25, 0.25]
    assert clock.now == 50.75


def test_idle_time_refills_up_to_burst():
    clock = FakeClock()
    bucket = limiter(2, 2, clock)
    bucket.acquire()
    bucket.acquire()
    clock.now += 60.0
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == [0.0, 0.0, 0.5]


def test_partial_refill_shortens_wait():
    clock = FakeClock()
    bucket = limiter(2, 1, clock)
    bucket.acquire()
    clock.now += 0.25
    assert bucket.acquire() == 0.25


def test_threads_get_distinct_slots():
    # The clock does not move, so each caller's wait shows its place in the queue.
    clock = FakeClock()
    recorded: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            recorded.append(seconds)

    bucket = RateLimiter(4, 2, clock=clock, sleep=sleep)
    waits: list[float] = []

    def worker() -> None:
        for _ in range(5):
            wait = bucket.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == [0.0, 0.0] + [n / 4 for n in range(1, 19)]
    assert sorted(recorded) == [n / 4 for n in range(1, 19)]


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 1, "rate 0 is invalid: expected a positive, finite number of requests per second"),
        (
            float("inf"),
            1,
            "rate inf is invalid: expected a positive, finite number of requests per second",
        ),
        (5, 0, "burst 0 is invalid: expected an integer of 1 or more"),
        (5, 1.5, "burst 1.5 is invalid: expected an integer of 1 or more"),
        (5, True, "burst True is invalid: expected an integer of 1 or more"),
    ],
)
def test_invalid_settings_rejected(rate, burst, message):
    with pytest.raises(ValueError, match="is invalid") as caught:
        RateLimiter(rate, burst)
    assert str(caught.value) == message


def test_repr_shows_settings():
    assert repr(RateLimiter(20, 20)) == "RateLimiter(rate=20, burst=20)"
