"""A deterministic synthetic dedicatedCloud fleet: the simulator's inventory and time series.

`build_fleet(anchor_day)` returns the same fleet for the same arguments in every process. The
default fleet is one service, `pcc-203-0-113-10`, with 2 datacenters. Each datacenter has
3 hosts (4 NICs each) and 2 datastores, and one global datastore serves both. The fleet runs
60 VMs and has 3 users (`admin`, `reporting`, `netadmin`). Hosts grow with `vm_count`, about
one per 10 VMs.

`anchor_day` is the simulator's "today". Scripted events are placed relative to it:

- one VM is deleted at 12:00 UTC the day before `anchor_day`. Its series stop there, and from
  then on APIv6 neither lists it nor returns it (404).
- one VM is powered off: `powerState` is `poweredOff` and it has no series.
- with `list_race=True`, one VM is listed by its datacenter's `/vm` route but its own GET
  returns 404, as when a VM is deleted between the two calls. Its series are normal.
- with `inventory_changes=True`, VMs are resized, moved and powered off, a host enters
  maintenance and a datastore grows on the days before `anchor_day` (see `fleet_events`).
  APIv6 serves each object as it is at the server clock's time.

`FleetSeries(fleet)` serves the fleet's time series (see `fleet_series`).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vscope_pipeline.catalog import EntityKind, datacenter_label
from vscope_pipeline.simulator import fleet_objects as objects
from vscope_pipeline.simulator.fleet_events import (
    ObjectChange,
    ScriptedChanges,
    add_inventory_changes,
    object_at,
)
from vscope_pipeline.simulator.fleet_series import FleetSeries, datastore_fill, stable_seed

__all__ = [
    "Fleet",
    "FleetDatacenter",
    "FleetFiler",
    "FleetHost",
    "FleetSeries",
    "FleetUser",
    "FleetVm",
    "ObjectChange",
    "ScriptedChanges",
    "SeriesEntity",
    "build_fleet",
]

DEFAULT_SERVICE_NAME = "pcc-203-0-113-10"
NIC_NAMES = ("vmnic0", "vmnic1", "vmnic2", "vmnic3")
FIRST_DATACENTER_ID = 1201
FIRST_HOST_ID = 3101
FIRST_FILER_ID = 4101
FIRST_VM_ID = 5001
FIRST_VM_MOREF = 1001
FIRST_USER_ID = 2101
FILERS_PER_DATACENTER = 2
MIN_HOSTS_PER_DATACENTER = 3
VMS_PER_HOST = 10
# Host names are addresses 198.51.100.11 to .254 (TEST-NET-2, reserved for documentation).
FIRST_HOST_ADDRESS = 11
MAX_HOSTS = 254 - FIRST_HOST_ADDRESS + 1
MAX_VM_COUNT = MAX_HOSTS * VMS_PER_HOST

_VM_ROLES = ("web", "app", "db", "cache", "mq", "lb", "ci", "mon", "files", "ad")
_WINDOWS_ROLES = frozenset({"files", "ad"})

ApiObject = dict[str, Any]


@dataclass(frozen=True)
class FleetDatacenter:
    """A datacenter and the `datacenter` tag value its series carry."""

    datacenter_id: int
    label: str
    api: ApiObject = field(compare=False, repr=False)


@dataclass(frozen=True)
class FleetHost:
    """A host. `name` is its address, which is also its `host` tag value."""

    host_id: int
    datacenter_id: int
    name: str
    nics: tuple[str, ...]
    api: ApiObject = field(compare=False, repr=False)
    changes: tuple[ObjectChange, ...] = ()

    def api_at(self, now_ms: int) -> ApiObject:
        """Return the APIv6 object at `now_ms` (epoch milliseconds), after its changes."""
        return object_at(self.api, self.changes, now_ms)


@dataclass(frozen=True)
class FleetFiler:
    """A datastore. `datacenter_id` is None for a global one, served at `/{sn}/filer`.

    `size_gb` is the size before any change; its series stay bounded by it.
    """

    filer_id: int
    datacenter_id: int | None
    name: str
    size_gb: int
    api: ApiObject = field(compare=False, repr=False)
    changes: tuple[ObjectChange, ...] = ()

    def api_at(self, now_ms: int) -> ApiObject:
        """Return the APIv6 object at `now_ms` (epoch milliseconds), after its changes."""
        return object_at(self.api, self.changes, now_ms)

    @property
    def capacity_kb(self) -> int:
        return self.size_gb * 1024 * 1024


@dataclass(frozen=True)
class FleetVm:
    """A virtual machine. `mo_ref` is its `vm` tag value.

    `deleted_at_ms` (epoch milliseconds) is when it stops reporting and leaves APIv6, None if
    never. `missing_on_get` marks the VM whose GET returns 404 although its datacenter lists it.
    `host_id` and `powered_on` are the state before any change. `powered_off_at_ms` is when a
    scripted change powers it off and its series stop, None if never.
    """

    vm_id: int
    datacenter_id: int
    host_id: int
    mo_ref: str
    name: str
    powered_on: bool
    deleted_at_ms: int | None
    missing_on_get: bool
    api: ApiObject = field(compare=False, repr=False)
    changes: tuple[ObjectChange, ...] = ()
    powered_off_at_ms: int | None = None

    def exists_at(self, now_ms: int) -> bool:
        return self.deleted_at_ms is None or now_ms < self.deleted_at_ms

    def api_at(self, now_ms: int) -> ApiObject:
        """Return the APIv6 object at `now_ms` (epoch milliseconds), after its changes."""
        return object_at(self.api, self.changes, now_ms)

    @property
    def reports_until_ms(self) -> int | None:
        """Epoch milliseconds from which it sends no points (deleted or powered off), or None."""
        stops = [ms for ms in (self.deleted_at_ms, self.powered_off_at_ms) if ms is not None]
        return min(stops, default=None)


@dataclass(frozen=True)
class FleetUser:
    user_id: int
    name: str
    api: ApiObject = field(compare=False, repr=False)


@dataclass(frozen=True)
class SeriesEntity:
    """One entity as its time series name it: the label values of every series it reports.

    `reports_until_ms` is the epoch millisecond from which it stops reporting (None: never).
    `capacity_kb` is a datastore's size, the upper bound of its used space (None otherwise).
    """

    kind: EntityKind
    service_name: str
    datacenter_id: int
    datacenter: str
    entity: str
    nics: tuple[str, ...] = ()
    reports_until_ms: int | None = None
    capacity_kb: int | None = None


@dataclass(frozen=True)
class Fleet:
    """Everything the simulated APIv6 serves and the simulated OpenTSDB reports on."""

    anchor_day: dt.date
    seed: int
    service_name: str
    datacenters: tuple[FleetDatacenter, ...]
    hosts: tuple[FleetHost, ...]
    filers: tuple[FleetFiler, ...]
    vms: tuple[FleetVm, ...]
    users: tuple[FleetUser, ...]
    service: ApiObject = field(compare=False, repr=False)
    # The objects that scripted inventory changes touch, None without them.
    scripted: ScriptedChanges | None = None

    @property
    def anchor_ms(self) -> int:
        """Epoch milliseconds of 00:00 UTC on the anchor day."""
        midnight = dt.datetime.combine(self.anchor_day, dt.time(), dt.UTC)
        return int(midnight.timestamp()) * 1000

    @property
    def deleted_vm(self) -> FleetVm:
        return next(vm for vm in self.vms if vm.deleted_at_ms is not None)

    @property
    def powered_off_vm(self) -> FleetVm:
        return next(vm for vm in self.vms if not vm.powered_on)

    @property
    def missing_vm(self) -> FleetVm | None:
        """The VM listed by its datacenter whose GET returns 404, if `list_race` was set."""
        return next((vm for vm in self.vms if vm.missing_on_get), None)

    def datacenter(self, datacenter_id: int) -> FleetDatacenter | None:
        return next((dc for dc in self.datacenters if dc.datacenter_id == datacenter_id), None)

    def hosts_in(self, datacenter_id: int) -> tuple[FleetHost, ...]:
        return tuple(host for host in self.hosts if host.datacenter_id == datacenter_id)

    def filers_in(self, datacenter_id: int | None) -> tuple[FleetFiler, ...]:
        """Return a datacenter's datastores, or the global ones for None."""
        return tuple(filer for filer in self.filers if filer.datacenter_id == datacenter_id)

    def vms_in(self, datacenter_id: int, now_ms: int) -> tuple[FleetVm, ...]:
        """Return the VMs a datacenter lists at `now_ms` (deleted ones excluded)."""
        return tuple(
            vm for vm in self.vms if vm.datacenter_id == datacenter_id and vm.exists_at(now_ms)
        )

    def user(self, name: str) -> FleetUser:
        return next(user for user in self.users if user.name == name)

    def series_entities(self) -> tuple[SeriesEntity, ...]:
        """Return every entity that reports metrics, datacenter by datacenter.

        A global datastore is mounted in every datacenter, so it appears once per datacenter
        with the same name and values. NOTE: whether vScope reports it under every datacenter
        or under one is not documented; this is a guess.
        """
        entities: list[SeriesEntity] = []
        for dc in self.datacenters:
            entity = partial(
                SeriesEntity,
                service_name=self.service_name,
                datacenter_id=dc.datacenter_id,
                datacenter=dc.label,
            )
            for vm in self.vms:
                if vm.datacenter_id == dc.datacenter_id and vm.powered_on:
                    entities.append(
                        entity("vm", entity=vm.mo_ref, reports_until_ms=vm.reports_until_ms)
                    )
            for host in self.hosts_in(dc.datacenter_id):
                entities.append(entity("host", entity=host.name, nics=host.nics))
            for filer in self.filers_in(dc.datacenter_id) + self.filers_in(None):
                entities.append(entity("filer", entity=filer.name, capacity_kb=filer.capacity_kb))
        return tuple(entities)


def build_fleet(
    anchor_day: dt.date,
    *,
    seed: int = 7,
    vm_count: int = 60,
    datacenter_count: int = 2,
    service_name: str = DEFAULT_SERVICE_NAME,
    first_datacenter_id: int = FIRST_DATACENTER_ID,
    list_race: bool = True,
    inventory_changes: bool = False,
) -> Fleet:
    """Build the synthetic fleet. The same arguments always give the same fleet.

    `vm_count` VMs are spread over about `vm_count / 10` hosts (at least 3 per datacenter).
    `list_race` adds the VM that is listed but whose GET returns 404. `inventory_changes` adds
    the dated changes of `fleet_events`, which need `vm_count` of 6 or more. Without them the
    fleet is the same as before they existed, object for object. Datacenters are numbered from
    `first_datacenter_id`, so that the fleets of several services can have distinct ids.
    """
    if not 3 <= vm_count <= MAX_VM_COUNT:
        raise ValueError(
            f"vm_count {vm_count!r} is out of range: expected 3 to {MAX_VM_COUNT} (the fleet "
            "needs 3 VMs for its scripted events and has one /24 of host addresses)"
        )
    if datacenter_count < 1:
        raise ValueError(
            f"datacenter_count {datacenter_count!r} is out of range: expected 1 or more"
        )
    if first_datacenter_id < 1:
        raise ValueError(
            f"first_datacenter_id {first_datacenter_id!r} is out of range: expected 1 or more"
        )
    hosts_per_dc = max(
        MIN_HOSTS_PER_DATACENTER, math.ceil(vm_count / (VMS_PER_HOST * datacenter_count))
    )
    if hosts_per_dc * datacenter_count > MAX_HOSTS:
        raise ValueError(
            f"{datacenter_count} datacenters of {hosts_per_dc} hosts exceed the {MAX_HOSTS} "
            "host addresses of 198.51.100.0/24: lower vm_count or datacenter_count"
        )
    rand = random.Random(stable_seed(seed, "fleet", service_name))
    anchor_ms = int(dt.datetime.combine(anchor_day, dt.time(), dt.UTC).timestamp()) * 1000

    datacenters = tuple(
        FleetDatacenter(
            first_datacenter_id + index,
            datacenter_label(service_name, first_datacenter_id + index),
            objects.datacenter_object(first_datacenter_id + index, index),
        )
        for index in range(datacenter_count)
    )
    dc_ids = [dc.datacenter_id for dc in datacenters]
    host_dcs = [dc_id for dc_id in dc_ids for _ in range(hosts_per_dc)]
    filer_dcs: list[int | None] = [dc_id for dc_id in dc_ids for _ in range(FILERS_PER_DATACENTER)]
    filer_dcs.append(None)
    filer_names = [f"pcc-{441 + index * 3:06d}" for index in range(len(filer_dcs))]
    global_filers = [
        name for name, dc_id in zip(filer_names, filer_dcs, strict=True) if dc_id is None
    ]

    # VMs: pick a host, then the VM's shape, which the host and filer objects add up.
    vm_hosts = [rand.randrange(len(host_dcs)) for _ in range(vm_count)]
    shapes = []
    for index, host_index in enumerate(vm_hosts):
        dc_filers = [
            name
            for name, dc_id in zip(filer_names, filer_dcs, strict=True)
            if dc_id == host_dcs[host_index]
        ]
        # Three VMs in ten keep their disks on the global datastore.
        candidates = global_filers if rand.random() < 0.3 else dc_filers
        windows = _VM_ROLES[index % len(_VM_ROLES)] in _WINDOWS_ROLES
        shapes.append(objects.vm_shape(candidates, windows, rand))
    powered_off_index, deleted_index, missing_index = rand.sample(range(vm_count), 3)
    deleted_at_ms = anchor_ms - 12 * 3_600_000  # 12:00 UTC on the day before the anchor day

    hosts = []
    for index, dc_id in enumerate(host_dcs):
        # Totals describe the fleet after the anchor day, when the deleted VM is gone.
        on_host = [
            i for i, host_index in enumerate(vm_hosts) if host_index == index and i != deleted_index
        ]
        host_id = FIRST_HOST_ID + index
        profile = objects.HOST_PROFILES[index % len(objects.HOST_PROFILES)]
        api = objects.host_object(
            host_id,
            f"198.51.100.{FIRST_HOST_ADDRESS + index}",
            profile,
            rack=f"R{dc_id % 100:02d}-B{index + 1:02d}",
            cluster_name=f"Cluster{dc_id}",
            vms=[shapes[i] for i in on_host],
            powered_on=[i != powered_off_index for i in on_host],
            rand=rand,
        )
        hosts.append(FleetHost(host_id, dc_id, api["name"], NIC_NAMES, api))

    vms = []
    for index, host_index in enumerate(vm_hosts):
        host = hosts[host_index]
        role = _VM_ROLES[index % len(_VM_ROLES)]
        vm_id, mo_ref = FIRST_VM_ID + index, f"vm-{FIRST_VM_MOREF + index}"
        name = f"{role}-{index // len(_VM_ROLES) + 1:02d}"
        powered_on = index != powered_off_index
        profile = objects.HOST_PROFILES[host_index % len(objects.HOST_PROFILES)]
        api = objects.vm_object(
            vm_id,
            mo_ref,
            name,
            shapes[index],
            host_name=host.name,
            cluster_name=host.api["clusterName"],
            core_mhz=profile.core_mhz,
            powered_on=powered_on,
            anchor_day=anchor_day,
            rand=rand,
        )
        vms.append(
            FleetVm(
                vm_id,
                host.datacenter_id,
                host.host_id,
                mo_ref,
                name,
                powered_on,
                deleted_at_ms if index == deleted_index else None,
                list_race and index == missing_index,
                api,
            )
        )

    filers = []
    for index, (name, filer_dc) in enumerate(zip(filer_names, filer_dcs, strict=True)):
        filer_id = FIRST_FILER_ID + index
        size_gb = rand.choice((2000, 3000, 6000))
        fill = float(datastore_fill(seed, service_name, name, anchor_ms, anchor_ms))
        vm_total = sum(
            1
            for i, shape in enumerate(shapes)
            if i != deleted_index and any(disk.filer_name == name for disk in shape.disks)
        )
        api = objects.filer_object(
            filer_id,
            name,
            size_gb=size_gb,
            used_gb=fill * size_gb,
            vm_total=vm_total,
            managed_by_ovh=False,
            rand=rand,
        )
        filers.append(FleetFiler(filer_id, filer_dc, name, size_gb, api))

    users = tuple(
        FleetUser(
            FIRST_USER_ID + index, profile.name, objects.user_object(FIRST_USER_ID + index, profile)
        )
        for index, profile in enumerate(objects.USER_PROFILES)
    )
    fleet = Fleet(
        anchor_day=anchor_day,
        seed=seed,
        service_name=service_name,
        datacenters=datacenters,
        hosts=tuple(hosts),
        filers=tuple(filers),
        vms=tuple(vms),
        users=users,
        service=objects.service_object(service_name, rand),
    )
    return add_inventory_changes(fleet) if inventory_changes else fleet
