"""Build the JSON objects that OVH APIv6 returns for a dedicatedCloud service and its contents.

Each builder returns every property of one `dedicatedCloud.*` model of the APIv6 schema
(`https://eu.api.ovh.com/1.0/dedicatedCloud.json`, captures from 2023 and 2024) and nothing
else: camelCase names, the schema's own spellings (`spaceProvisionned`, `controler`), enum values
from the schema, `complexType.UnitAndValue` as `{"unit", "value"}`, and `null` only where the
schema allows it. Values are drawn from the `random.Random` passed in, so a fleet built twice
with the same seed is identical.

NOTE: the units inside `UnitAndValue` fields (`GHz`, `GB`, `second`) and of `vmFiler` sizes (MB)
are not enumerated by the schema; they are plausible guesses.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class HostProfile:
    """A commercial host model: its APIv6 profile names and hardware."""

    profile: str
    profile_code: str
    cores: int
    core_mhz: int
    ram_gb: int


HOST_PROFILES: tuple[HostProfile, ...] = (
    HostProfile("L+ 2018", "2018lp", 32, 2100, 384),
    HostProfile("XL 2018", "2018xl", 36, 2300, 768),
)


@dataclass(frozen=True)
class VmDisk:
    """One virtual disk of a VM: the datastore (filer) it lives on and its size in MB."""

    filer_name: str
    disk_key: str
    capacity_mb: float


@dataclass(frozen=True)
class VmShape:
    """The configuration of a VM that other objects (host, filers) depend on."""

    cpu_num: int
    memory_mb: int
    windows: bool
    disks: tuple[VmDisk, ...]


def unit_and_value(unit: str, value: float | int) -> JsonObject:
    return {"unit": unit, "value": value}


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _deterministic_uuid(rand: random.Random) -> str:
    return str(uuid.UUID(int=rand.getrandbits(128), version=4))


def service_object(service_name: str, rand: random.Random) -> JsonObject:
    """Return a `dedicatedCloud.dedicatedCloudWithIAM`."""
    portal = f"https://{service_name}.ovh.com"
    return {
        "serviceName": service_name,
        "description": "vScope simulator private cloud",
        "state": "delivered",
        "location": "rbx2",
        "commercialRange": "2016",
        "generation": "2.0",
        "managementInterface": "vsphere",
        "productReference": "EPCC",
        "billingType": "monthly",
        "bandwidth": "10 Gbps",
        "spla": True,
        "advancedSecurity": False,
        "canMigrateToVCD": False,
        "userAccessPolicy": "filtered",
        "userLogoutPolicy": "first",
        "userLimitConcurrentSession": 50,
        "userSessionTimeout": 1800,
        "certifiedInterfaceUrl": f"{portal}/ui/",
        "webInterfaceUrl": f"{portal}/ui/",
        "vScopeUrl": f"{portal}/vScope",
        "version": {"major": "7.0", "minor": "3", "build": "21958406"},
        "servicePackName": "premier",
        "sslV3": None,
        "iam": {
            "id": _deterministic_uuid(rand),
            "urn": f"urn:v1:eu:resource:pccVMware:{service_name}",
            "displayName": service_name,
            "tags": None,
        },
    }


def datacenter_object(datacenter_id: int, index: int) -> JsonObject:
    """Return a `dedicatedCloud.Datacenter`. The first one is production, the others not."""
    production = index == 0
    return {
        "datacenterId": datacenter_id,
        "name": f"datacenter{datacenter_id}",
        "description": "Production" if production else f"Pre-production {index}",
        "commercialName": "SDDC" if production else "VSPHERE",
        "commercialRangeName": "2016",
        "isRemovable": not production,
        "version": "7.0",
        "horizonViewName": None,
    }


def host_object(
    host_id: int,
    name: str,
    profile: HostProfile,
    *,
    rack: str,
    cluster_name: str | None,
    vms: list[VmShape],
    powered_on: list[bool],
    rand: random.Random,
) -> JsonObject:
    """Return a `dedicatedCloud.Host` whose totals add up over the VMs it runs."""
    cpu_max = profile.cores * profile.core_mhz
    running = [vm for vm, on in zip(vms, powered_on, strict=True) if on]
    # vSphere counts the hypervisor's own memory in use on top of the VMs' (about 4 GB).
    memory_used_mb = sum(vm.memory_mb for vm in running) * rand.uniform(0.55, 0.8) + 4096
    return {
        "hostId": host_id,
        "name": name,
        "profile": profile.profile,
        "profileCode": profile.profile_code,
        "rack": rack,
        "state": "delivered",
        "billingType": "monthly",
        "connectionState": "connected",
        "inMaintenance": False,
        "clusterName": cluster_name,
        "cpu": unit_and_value("GHz", round(cpu_max / 1000, 1)),
        "cpuMax": cpu_max,
        "cpuMaxCore": profile.core_mhz,
        "cpuNum": profile.cores,
        "cpuUsed": int(cpu_max * rand.uniform(0.15, 0.45)),
        "ram": unit_and_value("GB", profile.ram_gb),
        "memoryUsed": round(memory_used_mb, 2),
        "uptime": rand.randint(5, 400) * 86_400 + rand.randint(0, 86_399),
        "vmTotal": len(vms),
        "vmVcpuTotal": sum(vm.cpu_num for vm in running),
        "parentHostId": None,
        "resourceName": f"host-{host_id}" if rand.random() < 0.5 else None,
    }


def filer_size_fields(size_gb: int, used_gb: float) -> JsonObject:
    """Return the `dedicatedCloud.Filer` fields that follow from its size, in GB."""
    return {
        "profile": f"{size_gb // 1000}t-nfs",
        "fullProfile": f"Datastore NFS {size_gb // 1000} TB",
        "size": unit_and_value("GB", size_gb),
        "spaceFree": round(size_gb - used_gb, 2),
    }


def filer_object(
    filer_id: int,
    name: str,
    *,
    size_gb: int,
    used_gb: float,
    vm_total: int,
    managed_by_ovh: bool,
    rand: random.Random,
) -> JsonObject:
    """Return a `dedicatedCloud.Filer`, with space figures in GB as the schema states."""
    node = rand.randint(10, 99)
    has_slave = rand.random() < 0.7
    sized = filer_size_fields(size_gb, used_gb)
    return {
        "filerId": filer_id,
        "name": name,
        "profile": sized["profile"],
        "fullProfile": sized["fullProfile"],
        "size": sized["size"],
        "spaceUsed": round(used_gb, 2),
        "spaceFree": sized["spaceFree"],
        # Thin provisioning lets VMs be promised more than the datastore holds.
        "spaceProvisionned": round(used_gb * rand.uniform(1.1, 1.6), 2),
        "state": "delivered",
        "billingType": "monthly" if rand.random() < 0.8 else "hourly",
        "vmTotal": vm_total,
        "connectionState": "online",
        "activeNode": "master",
        "master": f"nfs-rbx2-{node}a.pcc.ovh.net",
        "slave": f"nfs-rbx2-{node}b.pcc.ovh.net" if has_slave else None,
        "isManagedByOvh": managed_by_ovh,
        "resourceName": None,
    }


def vm_shape(filer_names: list[str], windows: bool, rand: random.Random) -> VmShape:
    """Draw a VM's vCPU count, memory and disks, which sit on one of `filer_names`."""
    cpu_num = rand.choice((1, 2, 2, 4, 4, 8))
    memory_mb = cpu_num * rand.choice((2048, 4096))
    filer_name = rand.choice(filer_names)
    disk_count = rand.choice((1, 1, 2, 3))
    disks = tuple(
        VmDisk(filer_name, str(2000 + index), float(rand.choice((20, 40, 80, 200)) * 1024))
        for index in range(disk_count)
    )
    return VmShape(cpu_num, memory_mb, windows, disks)


def _vm_filers(shape: VmShape, rand: random.Random) -> list[JsonObject]:
    by_filer: dict[str, list[VmDisk]] = {}
    for disk in shape.disks:
        by_filer.setdefault(disk.filer_name, []).append(disk)
    return [
        {
            "name": filer_name,
            "committed": round(sum(d.capacity_mb for d in disks) * rand.uniform(0.3, 0.9), 2),
            "disks": [{"id": d.disk_key, "capacity": d.capacity_mb} for d in disks],
        }
        for filer_name, disks in by_filer.items()
    ]


def _vm_network(vm_id: int, index: int, distributed: bool, rand: random.Random) -> JsonObject:
    # 00:50:56 is the OUI VMware assigns to virtual NICs.
    mac = f"00:50:56:{(vm_id >> 8) & 0xFF:02x}:{vm_id & 0xFF:02x}:{index:02x}"
    if distributed:
        portgroup = rand.choice((101, 102, 201))
        policy = {"inherited": True, "value": False}
        backing: JsonObject = {
            "type": "DVS",
            "deviceName": f"VLAN{portgroup}",
            "portGroupKey": f"dvportgroup-{portgroup}",
            "portKey": str(rand.randint(10, 900)),
            "switchUuid": "50 1a 7c 3e 92 04 d6 1b-8e 4f 21 0a 6d 93 c5 70",
            "valueMoref": f"dvportgroup-{portgroup}",
            "useAutoDetect": None,
            "carpState": None,
            "portKeySecurityPolicy": {
                "allowPromiscuous": dict(policy),
                "forgedTransmits": dict(policy),
                "macChanges": dict(policy),
            },
        }
    else:
        backing = {
            "type": "VSS",
            "deviceName": "VM Network",
            "portGroupKey": None,
            "portKey": None,
            "switchUuid": None,
            "valueMoref": "network-12",
            "useAutoDetect": False,
            "carpState": None,
            "portKeySecurityPolicy": None,
        }
    return {
        "label": f"Network adapter {index + 1}",
        "macAddress": mac,
        "controler": "VirtualVmxnet3",
        "connected": True,
        "startConnected": True,
        "allowGuestControl": True,
        "status": "ok",
        "backing": backing,
    }


def _backup(shape: VmShape, anchor_day: dt.date, rand: random.Random) -> JsonObject | None:
    if rand.random() < 0.35:
        return None
    last_run = dt.datetime.combine(
        anchor_day - dt.timedelta(days=1), dt.time(2, rand.randint(0, 59)), dt.UTC
    )
    duration_s = rand.randint(120, 3600)
    allocated_gb = round(sum(d.capacity_mb for d in shape.disks) / 1024, 2)
    restore_points = [
        {
            "restorePointId": rand.randint(100_000, 999_999),
            "creationTime": _iso(last_run - dt.timedelta(days=age)),
            "isCorrupted": False,
            "size": unit_and_value("GB", max(1, int(allocated_gb * rand.uniform(0.05, 0.6)))),
            "type": "full" if age == 2 else "incremental",
        }
        for age in (2, 1, 0)
    ]
    result = "success" if rand.random() < 0.9 else "warning"
    return {
        "allocatedDisk": allocated_gb,
        "backupDays": list(_WEEKDAYS),
        "backupRepositoryId": 61,
        "encryption": False,
        "lastCreationTime": _iso(last_run),
        "lastDuration": unit_and_value("second", duration_s),
        "lastResult": result,
        "lastSuccessfulCreationTime": _iso(last_run),
        "lastSuccessfulDuration": unit_and_value("second", duration_s),
        "offerType": "advanced",
        "restorePoints": restore_points,
        "retentionTime": 14,
        "state": "delivered",
    }


def _live_vm_statistics(shape: VmShape, core_mhz: int, rand: random.Random) -> JsonObject:
    """Return the VM fields that vSphere only measures while the VM runs."""
    cpu_max = float(shape.cpu_num * core_mhz)
    ready_ms = round(rand.uniform(20, 400), 2)
    read_per_second = round(rand.uniform(1, 150), 2)
    write_per_second = round(rand.uniform(1, 120), 2)
    return {
        "cpuMax": cpu_max,
        "cpuUsed": int(cpu_max * rand.uniform(0.03, 0.5)),
        # vSphere samples CPU ready over 20-second intervals: 20 000 ms is 100 %.
        "cpuReady": ready_ms,
        "cpuReadyPercent": round(ready_ms / 20_000 * 100, 2),
        "memoryUsed": int(shape.memory_mb * rand.uniform(0.15, 0.8)),
        "memoryTps": str(int(shape.memory_mb * rand.uniform(0.01, 0.2))),
        "netRx": round(rand.uniform(1, 900), 2),
        "netTx": round(rand.uniform(1, 900), 2),
        "netPacketRx": round(rand.uniform(10, 2000), 2),
        "netPacketTx": round(rand.uniform(10, 2000), 2),
        "readRate": round(read_per_second * rand.uniform(8, 64), 2),
        "writeRate": round(write_per_second * rand.uniform(8, 64), 2),
        "readLatency": round(rand.uniform(0.3, 6), 2),
        "writeLatency": round(rand.uniform(0.3, 8), 2),
        "readPerSecond": read_per_second,
        "writePerSecond": write_per_second,
    }


# The keys `_live_vm_statistics` returns except `cpuMax`, which is configuration.
_LIVE_ONLY_FIELDS = (
    "cpuUsed",
    "cpuReady",
    "cpuReadyPercent",
    "memoryUsed",
    "memoryTps",
    "netRx",
    "netTx",
    "netPacketRx",
    "netPacketTx",
    "readRate",
    "writeRate",
    "readLatency",
    "writeLatency",
    "readPerSecond",
    "writePerSecond",
)


def powered_off_vm_fields() -> JsonObject:
    """Return the `dedicatedCloud.Vm` fields that change when a running VM is powered off."""
    return {"powerState": "poweredOff", **dict.fromkeys(_LIVE_ONLY_FIELDS)}


def vm_object(
    vm_id: int,
    mo_ref: str,
    name: str,
    shape: VmShape,
    *,
    host_name: str,
    cluster_name: str | None,
    core_mhz: int,
    powered_on: bool,
    anchor_day: dt.date,
    rand: random.Random,
) -> JsonObject:
    """Return a `dedicatedCloud.Vm`. Live statistics are null while it is powered off."""
    if powered_on:
        live = _live_vm_statistics(shape, core_mhz, rand)
    else:
        live = {"cpuMax": float(shape.cpu_num * core_mhz), **dict.fromkeys(_LIVE_ONLY_FIELDS)}
    iso = f"[{shape.disks[0].filer_name}] iso/debian-12.7.0-amd64-netinst.iso"
    cdrom_loaded = rand.random() < 0.15
    # Either all of the VM's NICs sit on a distributed switch, or none does.
    distributed = rand.random() < 0.8
    license_name = (
        rand.choice(("windows 2022 Standard", "windows 2019 Standard", "windows 2022 Datacenter"))
        if shape.windows
        else None
    )
    return {
        "vmId": vm_id,
        "moRef": mo_ref,
        "name": name,
        "powerState": "poweredOn" if powered_on else "poweredOff",
        "hostName": host_name,
        "clusterName": cluster_name,
        "folderName": rand.choice(("Production", "Infrastructure", None)),
        "cpuNum": shape.cpu_num,
        "memoryMax": shape.memory_mb,
        **live,
        "filers": _vm_filers(shape, rand),
        "networks": [
            _vm_network(vm_id, index, distributed, rand) for index in range(rand.choice((1, 1, 2)))
        ],
        "cdroms": [
            {"connected": cdrom_loaded, "iso": iso if cdrom_loaded else None},
        ],
        "backup": _backup(shape, anchor_day, rand),
        "snapshotNum": rand.choice((0, 0, 0, 1, 2)),
        "stateFt": "notConfigured",
        "roleFt": None,
        "vmwareTools": "guestToolsCurrent" if rand.random() < 0.8 else "guestToolsNeedUpgrade",
        "vmwareToolsVersion": rand.choice(("12352", "12389", "11365")),
        "guestOsFamily": "windowsGuest" if shape.windows else "linuxGuest",
        "license": license_name,
    }


@dataclass(frozen=True)
class UserProfile:
    """A dedicatedCloud user account of the simulated service and its rights."""

    name: str
    admin: bool
    email: str | None
    first_name: str | None
    last_name: str | None


USER_PROFILES: tuple[UserProfile, ...] = (
    UserProfile("admin", True, "ops@example.com", None, None),
    UserProfile("reporting", False, "bi@example.com", "Report", "Reader"),
    # A second name that contains "admin", so that `?name=admin` (a substring filter) returns
    # two users and a client has to pick the exact match.
    UserProfile("netadmin", False, None, "Network", "Admin"),
)


def user_object(user_id: int, profile: UserProfile) -> JsonObject:
    """Return a `dedicatedCloud.User`. Local accounts use their name as login.

    NOTE: that a local account's `login` equals its `name` is an assumption.
    """
    return {
        "userId": user_id,
        "login": profile.name,
        "name": profile.name,
        "state": "delivered",
        "activationState": "enabled",
        "email": profile.email,
        "firstName": profile.first_name,
        "lastName": profile.last_name,
        "phoneNumber": None,
        "type": "user",
        "canManageIpFailOvers": profile.admin,
        "canManageNetwork": profile.admin,
        "canManageRights": profile.admin,
        "encryptionRight": profile.admin,
        "fullAdminRo": not profile.admin,
        "isEnableManageable": not profile.admin,
        "isTokenValidator": profile.admin,
        "nsxRight": profile.admin,
        "receiveAlerts": profile.admin,
        "identityProviderId": None,
        "identityProviderType": None,
        "activeDirectoryId": None,
        "activeDirectoryType": None,
    }
