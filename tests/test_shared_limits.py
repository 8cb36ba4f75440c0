"""Request limits shared through files: the token bucket and the slots, on a fake clock."""

import contextlib
import logging
import os
import threading

import pytest

from vscope_pipeline.rate_limit import (
    SLOT_POLL_SECONDS,
    SharedRateLimiter,
    SharedSlots,
    endpoint_key,
    limits_folder,
    shared_limits,
)


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


def bucket(path, clock, rate=4.0, burst=2):
    return SharedRateLimiter(path, rate, burst, clock=clock, sleep=clock.sleep)


def test_two_limiters_share_one_bucket(tmp_path):
    clock = FakeClock()
    first = bucket(tmp_path / "rate", clock)
    second = bucket(tmp_path / "rate", clock)
    waits = [first.acquire(), second.acquire(), first.acquire(), second.acquire()]
    assert waits == [0.0, 0.0, 0.25, 0.25]
    assert clock.now == 50.5


def test_state_file_stores_balance(tmp_path):
    clock = FakeClock()
    bucket(tmp_path / "rate", clock).acquire()
    assert (tmp_path / "rate").read_text() == "1.0 50.0\n"


def test_invalid_state_is_full_bucket(tmp_path, caplog):
    (tmp_path / "rate").write_text("not a bucket")
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.rate_limit"):
        assert bucket(tmp_path / "rate", clock, burst=1).acquire() == 0.0
    assert caplog.messages == [
        f"rate limit state {tmp_path / 'rate'} is invalid ('not a bucket'): starting with a "
        "full bucket"
    ]


def test_clock_behind_state_is_full_bucket(tmp_path):
    # A state counted later than now was written before the machine rebooted.
    (tmp_path / "rate").write_text("-5.0 900.0\n")
    clock = FakeClock()
    assert bucket(tmp_path / "rate", clock, burst=1).acquire() == 0.0
    assert (tmp_path / "rate").read_text() == "0.0 50.0\n"


def test_debt_of_another_process_delays(tmp_path):
    # Another process took two tokens more than the bucket held, at the same moment.
    (tmp_path / "rate").write_text("-2.0 50.0\n")
    clock = FakeClock()
    assert bucket(tmp_path / "rate", clock).acquire() == 0.75


def test_slots_bound_holders(tmp_path):
    slots = SharedSlots(tmp_path, 2)
    with slots.hold() as first, slots.hold() as second:
        assert {first, second} == {0, 1}
        assert sorted(os.listdir(tmp_path)) == ["slot-0.lock", "slot-1.lock"]


def test_slot_waits_for_release(tmp_path):
    holders = contextlib.ExitStack()
    owner = SharedSlots(tmp_path, 2)
    held_indexes = [holders.enter_context(owner.hold()) for _ in range(2)]
    sleeps = []

    def release_first(seconds):
        sleeps.append(seconds)
        holders.close()

    waiter = SharedSlots(tmp_path, 2, sleep=release_first)
    with waiter.hold() as index:
        assert index in held_indexes
    assert sleeps == [SLOT_POLL_SECONDS]


def test_slots_bound_threads(tmp_path):
    slots = SharedSlots(tmp_path, 2)
    lock = threading.Lock()
    in_flight = [0]
    peak = [0]

    def work():
        for _ in range(20):
            with slots.hold():
                with lock:
                    in_flight[0] += 1
                    peak[0] = max(peak[0], in_flight[0])
                threading.Event().wait(0.001)
                with lock:
                    in_flight[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peak[0] == 2


@pytest.mark.parametrize("count", [0, -1, True, 1.5])
def test_invalid_slot_count(tmp_path, count):
    with pytest.raises(ValueError, match="is invalid") as raised:
        SharedSlots(tmp_path, count)
    assert str(raised.value) == (
        f"slot count {count!r} is invalid: expected an integer of 1 or more"
    )


@pytest.mark.parametrize(
    ("endpoint", "key"),
    [
        ("127.0.0.1:4242", "opentsdb-127.0.0.1-4242"),
        ("opentsdb.gra1-ovh.metrics.ovh.net", "opentsdb-opentsdb.gra1-ovh.metrics.ovh.net"),
        ("http://127.0.0.1:8080/1.0", "opentsdb-http-127.0.0.1-8080-1.0"),
    ],
)
def test_endpoint_key(endpoint, key):
    assert endpoint_key("opentsdb", endpoint) == key


def test_endpoint_key_rejects_empty():
    with pytest.raises(ValueError, match="is invalid") as raised:
        endpoint_key("opentsdb", "/")
    assert str(raised.value) == (
        "endpoint '/' is invalid: expected a host name, host:port or endpoint name"
    )


def test_limits_folder_is_private(tmp_path):
    folder = limits_folder(tmp_path / "limits", "opentsdb-host")
    assert folder == tmp_path / "limits" / "opentsdb-host"
    assert folder.stat().st_mode & 0o777 == 0o700


def test_limits_folder_rejects_shared_base(tmp_path):
    base = tmp_path / "limits"
    base.mkdir()
    base.chmod(0o777)
    with pytest.raises(PermissionError) as raised:
        limits_folder(base, "opentsdb-host")
    assert str(raised.value) == (
        f"shared limits folder {base} is writable by other users (mode drwxrwxrwx): expected "
        "a folder of this user with mode 0700. Remove it and run again"
    )


def test_shared_limits_without_rate(tmp_path):
    limits = shared_limits(tmp_path, "opentsdb-host", max_concurrency=3, rate=None)
    assert limits.rate_limiter is None
    assert limits.slots.count == 3
    assert limits.slots.folder == tmp_path / "opentsdb-host"
