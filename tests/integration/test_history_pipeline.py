"""Inventory history through the whole pipeline: one run a day while the simulated fleet changes.

The simulator's clock is set to 12:00 UTC on each of four days before the anchor day, and the
pipeline snapshots the inventory and fetches that day's metrics. The scripted changes, at
06:00 UTC, must appear as new versions in the history tables and in the named metric views.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.noon_ingest import ingest_at_noon
from vscope_pipeline.ingest import RunOutcome
from vscope_pipeline.simulator.runner import RunningSimulator

pytestmark = pytest.mark.integration

ANCHOR = dt.date(2026, 3, 13)
DAYS = [ANCHOR - dt.timedelta(days=back) for back in (4, 3, 2, 1)]
MARCH_9, MARCH_10, MARCH_11, MARCH_12 = DAYS
# One point every 10 minutes: 144 a day, enough to see where a series stops.
STEP_SECONDS = 600
METRIC = "vscope.vm.cpu.usage.perc"
# The objects the script changes in the fleet of 12 VMs built with seed 7.
RESIZED_VM, MOVED_VM, POWERED_OFF_VM, DELETED_VM = 5001, 5010, 5012, 5007
MAINTENANCE_HOST, GROWN_FILER = 3106, 4103


@dataclass
class History:
    simulator: RunningSimulator
    data_dir: Path
    outcomes: list[RunOutcome]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    data_dir = tmp_path_factory.mktemp("history")
    with ingest_at_noon(
        data_dir, DAYS, anchor=ANCHOR, vm_count=12, step_seconds=STEP_SECONDS
    ) as runs:
        yield History(runs.simulator, data_dir, runs.outcomes)


def query(history: History, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    with duckdb.connect(str(history.data_dir / "vscope.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def vm_versions(history: History, vm_id: int) -> list[tuple]:
    return query(
        history,
        """
        SELECT host_name, power_state, cpu_num, memory_max, valid_from, valid_to, deleted_on
        FROM vm_history WHERE vm_id = ? ORDER BY valid_from
        """,
        (vm_id,),
    )


def vm_metric_days(history: History, vm_id: int) -> list[tuple]:
    """Return, per day, the VM attributes its points carry, their count and last time."""
    return query(
        history,
        """
        SELECT day, host_name, power_state, cpu_num, memory_max, count(*),
               strftime(max(ts), '%H:%M')
        FROM vm_metrics WHERE metric = ? AND vm_id = ?
        GROUP BY ALL ORDER BY day
        """,
        (METRIC, vm_id),
    )


def test_every_day_succeeds(history: History) -> None:
    assert [(o.first_day, o.success, o.error) for o in history.outcomes] == [
        (day, True, None) for day in DAYS
    ]


def test_snapshots_dated_by_api_clock(history: History) -> None:
    folders = sorted(p.name for p in (history.data_dir / "inventory" / "kind=vms").iterdir())
    assert folders == [f"day={day.isoformat()}" for day in DAYS]
    latest = query(history, "SELECT DISTINCT CAST(snapshot_at AS DATE) FROM vms")
    assert latest == [(MARCH_12,)]


def test_latest_inventory_lacks_deleted_vm(history: History) -> None:
    # 12 VMs less the one deleted on the last day and the one listed but returning 404.
    assert query(history, "SELECT count(*) FROM vms") == [(10,)]
    assert query(history, "SELECT count(*) FROM vms WHERE vm_id = ?", (DELETED_VM,)) == [(0,)]


def test_resized_vm_history(history: History) -> None:
    assert vm_versions(history, RESIZED_VM) == [
        ("198.51.100.14", "poweredOn", 8, 16384, MARCH_9, MARCH_10, None),
        ("198.51.100.14", "poweredOn", 16, 32768, MARCH_10, None, None),
    ]


def test_moved_vm_history(history: History) -> None:
    assert vm_versions(history, MOVED_VM) == [
        ("198.51.100.12", "poweredOn", 2, 8192, MARCH_9, MARCH_11, None),
        ("198.51.100.11", "poweredOn", 2, 8192, MARCH_11, None, None),
    ]


def test_powered_off_vm_history(history: History) -> None:
    assert vm_versions(history, POWERED_OFF_VM) == [
        ("198.51.100.15", "poweredOn", 4, 16384, MARCH_9, MARCH_11, None),
        ("198.51.100.15", "poweredOff", 4, 16384, MARCH_11, None, None),
    ]


def test_deleted_vm_history_kept(history: History) -> None:
    assert vm_versions(history, DELETED_VM) == [
        ("198.51.100.15", "poweredOn", 4, 8192, MARCH_9, MARCH_12, MARCH_12),
    ]


def test_unchanged_vm_has_one_version(history: History) -> None:
    assert vm_versions(history, 5003) == [
        ("198.51.100.13", "poweredOn", 2, 8192, MARCH_9, None, None),
    ]


def test_host_maintenance_history(history: History) -> None:
    rows = query(
        history,
        """
        SELECT in_maintenance, valid_from, valid_to FROM host_history
        WHERE host_id = ? ORDER BY valid_from
        """,
        (MAINTENANCE_HOST,),
    )
    assert rows == [(False, MARCH_9, MARCH_12), (True, MARCH_12, None)]


def test_grown_filer_history(history: History) -> None:
    rows = query(
        history,
        """
        SELECT size.value, profile, valid_from, valid_to FROM filer_history
        WHERE filer_id = ? ORDER BY valid_from
        """,
        (GROWN_FILER,),
    )
    assert rows == [(6000, "6t-nfs", MARCH_9, MARCH_10), (9000, "9t-nfs", MARCH_10, None)]


def test_resized_vm_metrics_carry_size_of_day(history: History) -> None:
    assert vm_metric_days(history, RESIZED_VM) == [
        (MARCH_9, "198.51.100.14", "poweredOn", 8, 16384, 144, "23:50"),
        (MARCH_10, "198.51.100.14", "poweredOn", 16, 32768, 144, "23:50"),
        (MARCH_11, "198.51.100.14", "poweredOn", 16, 32768, 144, "23:50"),
        (MARCH_12, "198.51.100.14", "poweredOn", 16, 32768, 144, "23:50"),
    ]


def test_moved_vm_metrics_carry_host_of_day(history: History) -> None:
    assert [row[:2] for row in vm_metric_days(history, MOVED_VM)] == [
        (MARCH_9, "198.51.100.12"),
        (MARCH_10, "198.51.100.12"),
        (MARCH_11, "198.51.100.11"),
        (MARCH_12, "198.51.100.11"),
    ]


def test_powered_off_vm_metrics_stop(history: History) -> None:
    # The day's version is the one of its noon snapshot: powered off since 06:00.
    assert vm_metric_days(history, POWERED_OFF_VM) == [
        (MARCH_9, "198.51.100.15", "poweredOn", 4, 16384, 144, "23:50"),
        (MARCH_10, "198.51.100.15", "poweredOn", 4, 16384, 144, "23:50"),
        (MARCH_11, "198.51.100.15", "poweredOff", 4, 16384, 36, "05:50"),
    ]


def test_deleted_vm_metrics_keep_last_version(history: History) -> None:
    assert vm_metric_days(history, DELETED_VM) == [
        (MARCH_9, "198.51.100.15", "poweredOn", 4, 8192, 144, "23:50"),
        (MARCH_10, "198.51.100.15", "poweredOn", 4, 8192, 144, "23:50"),
        (MARCH_11, "198.51.100.15", "poweredOn", 4, 8192, 144, "23:50"),
        (MARCH_12, "198.51.100.15", "poweredOn", 4, 8192, 72, "11:50"),
    ]


def test_host_metrics_carry_maintenance_of_day(history: History) -> None:
    rows = query(
        history,
        """
        SELECT DISTINCT day, in_maintenance FROM host_metrics
        WHERE metric = 'vscope.host.cpu.usage.perc' AND host_id = ? ORDER BY day
        """,
        (MAINTENANCE_HOST,),
    )
    assert rows == [(MARCH_9, False), (MARCH_10, False), (MARCH_11, False), (MARCH_12, True)]
