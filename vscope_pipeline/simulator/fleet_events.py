"""Dated changes of the simulated inventory, so that snapshots differ from one day to the next.

`build_fleet(..., inventory_changes=True)` adds these changes, at 06:00 UTC on days counted
back from the anchor day:

- anchor day - 3: one VM is resized (`cpuNum` and `memoryMax` doubled, `cpuMax` with them), and
  one datacenter datastore grows to the next size (`size`, `profile`, `fullProfile`,
  `spaceFree`);
- anchor day - 2: one VM moves to another host of its datacenter (`hostName`, `clusterName`),
  and one VM is powered off (`powerState` and its live statistics null; its series stop then);
- anchor day - 1: one host enters maintenance mode (`inMaintenance`).

The VM that every fleet deletes at 12:00 UTC on anchor day - 1 completes the script. The
changed VMs are running, not deleted and not the VM whose GET returns 404.

A change never edits the static APIv6 object: `object_at` returns a new dict with the changed
fields, so the server threads share nothing that changes.
NOTE: host totals (`vmTotal`, `vmVcpuTotal`, `memoryUsed`) and filer `vmTotal` keep the values
of the fleet before the changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vscope_pipeline.simulator import fleet_objects as objects
from vscope_pipeline.simulator.fleet_series import stable_seed

if TYPE_CHECKING:
    from vscope_pipeline.simulator.fleet import Fleet, FleetVm

ApiObject = dict[str, Any]

CHANGE_HOUR_UTC = 6
RESIZE_DAYS_BEFORE_ANCHOR = 3
MOVE_DAYS_BEFORE_ANCHOR = 2
POWER_OFF_DAYS_BEFORE_ANCHOR = 2
MAINTENANCE_DAYS_BEFORE_ANCHOR = 1
FILER_RESIZE_DAYS_BEFORE_ANCHOR = 3

# Datastore sizes in GB, in the order a datastore grows through them.
_FILER_SIZES_GB = (2000, 3000, 6000, 9000)

# The resized, moved and powered-off VMs, and the VMs that the script never changes: the one
# powered off from the start, the deleted one and the one whose GET returns 404.
MIN_VM_COUNT = 6


@dataclass(frozen=True)
class ObjectChange:
    """A dated change of one APIv6 object: from `at_ms` (epoch milliseconds) on, the values of
    `fields` replace the object's own. `summary` describes the change, for logs and test output."""

    at_ms: int
    summary: str
    fields: Mapping[str, Any] = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class ScriptedChanges:
    """The ids of the objects that the scripted inventory changes touch."""

    resized_vm_id: int
    moved_vm_id: int
    powered_off_vm_id: int
    maintenance_host_id: int
    resized_filer_id: int


def object_at(api: ApiObject, changes: Iterable[ObjectChange], now_ms: int) -> ApiObject:
    """Return `api` as it is at `now_ms`: `api` itself if no change has happened yet, else a
    new dict with the fields of every change made at or before `now_ms`, oldest first."""
    applied = sorted((change for change in changes if change.at_ms <= now_ms), key=_at_ms)
    if not applied:
        return api
    current = dict(api)
    for change in applied:
        current.update(change.fields)
    return current


def _at_ms(change: ObjectChange) -> int:
    return change.at_ms


def change_time_ms(anchor_day: dt.date, days_before: int) -> int:
    """Return the epoch milliseconds of 06:00 UTC, `days_before` days before `anchor_day`."""
    day = anchor_day - dt.timedelta(days=days_before)
    moment = dt.datetime.combine(day, dt.time(CHANGE_HOUR_UTC), dt.UTC)
    return int(moment.timestamp()) * 1000


def add_inventory_changes(fleet: Fleet) -> Fleet:
    """Return a copy of `fleet` with the scripted changes; the same fleet gives the same copy.

    Raises ValueError when the fleet has too few running VMs to pick three to change.
    """
    rand = random.Random(stable_seed(fleet.seed, "inventory changes", fleet.service_name))
    candidates = [
        vm
        for vm in fleet.vms
        if vm.powered_on and vm.deleted_at_ms is None and not vm.missing_on_get
    ]
    if len(candidates) < 3:
        raise ValueError(
            f"inventory changes need 3 running VMs besides the scripted ones, and this fleet of "
            f"{len(fleet.vms)} VMs has {len(candidates)}: build it with vm_count >= "
            f"{MIN_VM_COUNT}"
        )
    resized, moved, powered_off = rand.sample(candidates, 3)
    host = rand.choice(fleet.hosts)
    filer = rand.choice([filer for filer in fleet.filers if filer.datacenter_id is not None])
    power_off = ObjectChange(
        change_time_ms(fleet.anchor_day, POWER_OFF_DAYS_BEFORE_ANCHOR),
        f"VM {powered_off.vm_id} powered off",
        objects.powered_off_vm_fields(),
    )
    vm_changes = {
        resized.vm_id: _resize_vm(
            resized, change_time_ms(fleet.anchor_day, RESIZE_DAYS_BEFORE_ANCHOR)
        ),
        moved.vm_id: _move_vm(
            fleet, moved, rand, change_time_ms(fleet.anchor_day, MOVE_DAYS_BEFORE_ANCHOR)
        ),
        powered_off.vm_id: power_off,
    }
    vms = tuple(
        dataclasses.replace(
            vm,
            changes=(vm_changes[vm.vm_id],),
            powered_off_at_ms=power_off.at_ms if vm.vm_id == powered_off.vm_id else None,
        )
        if vm.vm_id in vm_changes
        else vm
        for vm in fleet.vms
    )

    maintenance = ObjectChange(
        change_time_ms(fleet.anchor_day, MAINTENANCE_DAYS_BEFORE_ANCHOR),
        f"host {host.host_id} entered maintenance mode",
        {"inMaintenance": True},
    )
    hosts = tuple(
        dataclasses.replace(item, changes=(maintenance,)) if item.host_id == host.host_id else item
        for item in fleet.hosts
    )

    new_size_gb = _next_filer_size(filer.size_gb)
    growth = ObjectChange(
        change_time_ms(fleet.anchor_day, FILER_RESIZE_DAYS_BEFORE_ANCHOR),
        f"datastore {filer.filer_id} grown from {filer.size_gb} GB to {new_size_gb} GB",
        objects.filer_size_fields(new_size_gb, filer.api["spaceUsed"]),
    )
    filers = tuple(
        dataclasses.replace(item, changes=(growth,)) if item.filer_id == filer.filer_id else item
        for item in fleet.filers
    )

    scripted = ScriptedChanges(
        resized_vm_id=resized.vm_id,
        moved_vm_id=moved.vm_id,
        powered_off_vm_id=powered_off.vm_id,
        maintenance_host_id=host.host_id,
        resized_filer_id=filer.filer_id,
    )
    return dataclasses.replace(fleet, vms=vms, hosts=hosts, filers=filers, scripted=scripted)


def _resize_vm(vm: FleetVm, at_ms: int) -> ObjectChange:
    cpu_num, memory_mb = vm.api["cpuNum"], vm.api["memoryMax"]
    core_mhz = vm.api["cpuMax"] / cpu_num
    return ObjectChange(
        at_ms,
        f"VM {vm.vm_id} resized from {cpu_num} to {cpu_num * 2} vCPUs",
        {
            "cpuNum": cpu_num * 2,
            "memoryMax": memory_mb * 2,
            "cpuMax": float(cpu_num * 2 * core_mhz),
        },
    )


def _move_vm(fleet: Fleet, vm: FleetVm, rand: random.Random, at_ms: int) -> ObjectChange:
    others = [host for host in fleet.hosts_in(vm.datacenter_id) if host.host_id != vm.host_id]
    target = rand.choice(others)
    return ObjectChange(
        at_ms,
        f"VM {vm.vm_id} moved from host {vm.host_id} to host {target.host_id}",
        {"hostName": target.name, "clusterName": target.api["clusterName"]},
    )


def _next_filer_size(size_gb: int) -> int:
    larger = [size for size in _FILER_SIZES_GB if size > size_gb]
    return larger[0] if larger else size_gb * 2
