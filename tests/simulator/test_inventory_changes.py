"""Scripted inventory changes: the dated objects of the fleet, APIv6 and OpenTSDB series."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator

import ovh
import ovh.config
import pytest

from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import Fleet, FleetSeries, build_fleet
from vscope_pipeline.simulator.fleet_events import ObjectChange, change_time_ms, object_at
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.ovh_api import make_ovh_api_server

ANCHOR = dt.date(2026, 3, 13)
SN = "pcc-203-0-113-10"
CREDENTIALS = SimulatorCredentials()
# The objects the script changes in the fleet of 12 VMs built with seed 7.
RESIZED_VM, MOVED_VM, POWERED_OFF_VM, DELETED_VM = 5001, 5010, 5012, 5007
MAINTENANCE_HOST, GROWN_FILER = 3106, 4103
HOUR_MS = 3_600_000


def noon(days_before_anchor: int) -> dt.datetime:
    day = ANCHOR - dt.timedelta(days=days_before_anchor)
    return dt.datetime.combine(day, dt.time(12), dt.UTC)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(ANCHOR, vm_count=12, inventory_changes=True)


@pytest.fixture(autouse=True)
def isolated_ovh_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the machine's OVH_* variables and ovh.conf files from python-ovh."""
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(ovh.config, "CONFIG_PATH", [])


@pytest.fixture(scope="module")
def clock() -> SimulatorClock:
    return SimulatorClock()


@pytest.fixture(scope="module")
def api_url(fleet: Fleet, clock: SimulatorClock) -> Iterator[str]:
    server = make_ovh_api_server(fleet, CREDENTIALS, "http://127.0.0.1:4242", clock=clock)
    with ServerThread(server, name="simulated OVH APIv6 (inventory changes)") as thread:
        yield thread.url


def client_at(api_url: str, clock: SimulatorClock, moment: dt.datetime) -> ovh.Client:
    """Return a new client, so that python-ovh measures its clock offset at `moment`."""
    clock.set(moment)
    return build_ovh_client(
        f"{api_url}/1.0",
        application_key=CREDENTIALS.application_key,
        application_secret=CREDENTIALS.application_secret,
        consumer_key=CREDENTIALS.consumer_key,
    )


def vm_path(fleet: Fleet, vm_id: int) -> str:
    vm = next(vm for vm in fleet.vms if vm.vm_id == vm_id)
    return f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}/vm/{vm_id}"


def test_scripted_objects(fleet: Fleet) -> None:
    assert fleet.scripted is not None
    assert fleet.scripted.resized_vm_id == RESIZED_VM
    assert fleet.scripted.moved_vm_id == MOVED_VM
    assert fleet.scripted.powered_off_vm_id == POWERED_OFF_VM
    assert fleet.scripted.maintenance_host_id == MAINTENANCE_HOST
    assert fleet.scripted.resized_filer_id == GROWN_FILER
    assert fleet.deleted_vm.vm_id == DELETED_VM


def test_change_times(fleet: Fleet) -> None:
    changes = {vm.vm_id: [change.at_ms for change in vm.changes] for vm in fleet.vms if vm.changes}
    anchor_ms = fleet.anchor_ms
    assert changes == {
        RESIZED_VM: [anchor_ms - 3 * 24 * HOUR_MS + 6 * HOUR_MS],
        MOVED_VM: [anchor_ms - 2 * 24 * HOUR_MS + 6 * HOUR_MS],
        POWERED_OFF_VM: [anchor_ms - 2 * 24 * HOUR_MS + 6 * HOUR_MS],
    }
    assert change_time_ms(ANCHOR, 1) == anchor_ms - 18 * HOUR_MS


def test_changes_are_opt_in(fleet: Fleet) -> None:
    plain = build_fleet(ANCHOR, vm_count=12)
    assert plain.scripted is None
    assert all(not vm.changes and vm.powered_off_at_ms is None for vm in plain.vms)
    assert all(not host.changes for host in plain.hosts)
    assert all(not filer.changes for filer in plain.filers)
    # The static objects are those of the plain fleet: changes only apply on top of them.
    assert [vm.api for vm in fleet.vms] == [vm.api for vm in plain.vms]
    assert [host.api for host in fleet.hosts] == [host.api for host in plain.hosts]
    assert [filer.api for filer in fleet.filers] == [filer.api for filer in plain.filers]


def test_changes_need_six_vms() -> None:
    message = (
        "inventory changes need 3 running VMs besides the scripted ones, and this fleet of 5 "
        "VMs has 2: build it with vm_count >= 6"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        build_fleet(ANCHOR, vm_count=5, inventory_changes=True)
    assert str(raised.value) == message


def test_object_at_applies_changes_in_time_order() -> None:
    static = {"cpuNum": 2, "memoryMax": 4096}
    changes = (
        ObjectChange(2000, "second", {"cpuNum": 8}),
        ObjectChange(1000, "first", {"cpuNum": 4, "memoryMax": 8192}),
    )
    assert object_at(static, changes, 999) is static
    assert object_at(static, changes, 1000) == {"cpuNum": 4, "memoryMax": 8192}
    assert object_at(static, changes, 2000) == {"cpuNum": 8, "memoryMax": 8192}
    assert static == {"cpuNum": 2, "memoryMax": 4096}


def test_resized_vm_before_and_after(fleet: Fleet) -> None:
    vm = next(vm for vm in fleet.vms if vm.vm_id == RESIZED_VM)
    at_ms = vm.changes[0].at_ms
    before, after = vm.api_at(at_ms - 1), vm.api_at(at_ms)
    assert (before["cpuNum"], before["memoryMax"], before["cpuMax"]) == (8, 16384, 18400.0)
    assert (after["cpuNum"], after["memoryMax"], after["cpuMax"]) == (16, 32768, 36800.0)
    assert vm.api["cpuNum"] == 8


def test_api_serves_objects_before_changes(
    fleet: Fleet, api_url: str, clock: SimulatorClock
) -> None:
    client = client_at(api_url, clock, noon(4))
    resized = client.get(vm_path(fleet, RESIZED_VM))
    assert (resized["cpuNum"], resized["memoryMax"]) == (8, 16384)
    assert client.get(vm_path(fleet, MOVED_VM))["hostName"] == "198.51.100.12"
    assert client.get(vm_path(fleet, POWERED_OFF_VM))["powerState"] == "poweredOn"
    host = client.get(f"/dedicatedCloud/{SN}/datacenter/1202/host/{MAINTENANCE_HOST}")
    assert host["inMaintenance"] is False
    filer = client.get(f"/dedicatedCloud/{SN}/datacenter/1202/filer/{GROWN_FILER}")
    assert filer["size"] == {"unit": "GB", "value": 6000}
    assert DELETED_VM in client.get(f"/dedicatedCloud/{SN}/datacenter/1202/vm")


def test_api_serves_objects_after_changes(
    fleet: Fleet, api_url: str, clock: SimulatorClock
) -> None:
    client = client_at(api_url, clock, noon(1))
    resized = client.get(vm_path(fleet, RESIZED_VM))
    assert (resized["cpuNum"], resized["memoryMax"], resized["cpuMax"]) == (16, 32768, 36800.0)
    moved = client.get(vm_path(fleet, MOVED_VM))
    assert (moved["hostName"], moved["clusterName"]) == ("198.51.100.11", "Cluster1201")
    off = client.get(vm_path(fleet, POWERED_OFF_VM))
    assert (off["powerState"], off["cpuUsed"], off["memoryUsed"]) == ("poweredOff", None, None)
    host = client.get(f"/dedicatedCloud/{SN}/datacenter/1202/host/{MAINTENANCE_HOST}")
    assert host["inMaintenance"] is True
    filer = client.get(f"/dedicatedCloud/{SN}/datacenter/1202/filer/{GROWN_FILER}")
    assert filer["size"] == {"unit": "GB", "value": 9000}
    assert (filer["profile"], filer["fullProfile"]) == ("9t-nfs", "Datastore NFS 9 TB")
    assert (filer["spaceUsed"], filer["spaceFree"]) == (3454.3, 5545.7)
    assert DELETED_VM not in client.get(f"/dedicatedCloud/{SN}/datacenter/1202/vm")


def test_api_batch_serves_changed_objects(
    fleet: Fleet, api_url: str, clock: SimulatorClock
) -> None:
    client = client_at(api_url, clock, noon(1))
    items = client.get(
        f"/dedicatedCloud/{SN}/datacenter/1202/vm/{RESIZED_VM},{POWERED_OFF_VM}?batch=,"
    )
    assert [item["value"]["cpuNum"] for item in items] == [16, 4]
    assert [item["value"]["powerState"] for item in items] == ["poweredOn", "poweredOff"]


def test_powered_off_vm_series_stop(fleet: Fleet) -> None:
    series = FleetSeries(fleet, step_seconds=600, gap_probability=0.0)
    off = next(vm for vm in fleet.vms if vm.vm_id == POWERED_OFF_VM)
    assert off.powered_off_at_ms == off.changes[0].at_ms
    assert off.reports_until_ms == off.powered_off_at_ms
    metric = "vscope.vm.cpu.usage.perc"
    tags = next(tags for tags in series.series_tags(metric) if tags["vm"] == off.mo_ref)
    day_start = off.changes[0].at_ms - 6 * HOUR_MS
    timestamps, _ = series.points(metric, tags, day_start, day_start + 48 * HOUR_MS)
    # 00:00 to 05:50 on the day of the change, one point every 10 minutes, then none.
    assert len(timestamps) == 36
    assert int(timestamps[-1]) == off.changes[0].at_ms - 600_000


def test_moved_and_resized_vm_series_continue(fleet: Fleet) -> None:
    series = FleetSeries(fleet, step_seconds=600, gap_probability=0.0)
    metric = "vscope.vm.mem.usage.perc"
    for vm_id in (RESIZED_VM, MOVED_VM):
        vm = next(vm for vm in fleet.vms if vm.vm_id == vm_id)
        assert vm.reports_until_ms is None
        tags = next(tags for tags in series.series_tags(metric) if tags["vm"] == vm.mo_ref)
        # Two whole days around the change: 144 points a day at one point every 10 minutes.
        day_start = vm.changes[0].at_ms - 6 * HOUR_MS
        timestamps, _ = series.points(metric, tags, day_start, day_start + 48 * HOUR_MS - 1)
        assert len(timestamps) == 288
