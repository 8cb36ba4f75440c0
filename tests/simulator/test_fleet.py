"""The synthetic fleet: shape, APIv6 objects against the schema, and its time series."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, datacenter_label
from vscope_pipeline.simulator.fleet import Fleet, FleetSeries, build_fleet
from vscope_pipeline.simulator.fleet_series import DAY_MS, MINUTE_MS, stable_seed

ANCHOR = dt.date(2026, 12, 4)  # a Friday
ANCHOR_MS = 1_796_342_400_000  # 2026-12-04T00:00:00Z
SERVICE = "pcc-203-0-113-10"


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(ANCHOR)


@pytest.fixture(scope="module")
def series(fleet: Fleet) -> FleetSeries:
    return FleetSeries(fleet)


# Field tables of the APIv6 models (dedicatedCloud.json): name -> (type, nullable). A type is
# a primitive name, a frozenset of enum values, a nested model name, or ("array", type).
BILLING = frozenset({"freeSpare", "hourly", "monthly", "undefined"})
STATE = frozenset({"adding", "delivered", "error", "removing", "unknown"})
MODELS: dict[str, dict[str, tuple[Any, bool]]] = {
    "dedicatedCloudWithIAM": {
        "serviceName": ("string", False),
        "description": ("string", False),
        "state": (
            frozenset(
                {
                    "available",
                    "delivered",
                    "disabled",
                    "disabling",
                    "error",
                    "migrating",
                    "provisionning",
                    "recycling",
                    "reserved",
                    "toDisable",
                    "toProvision",
                    "toRecycle",
                    "toRemove",
                    "toUnprovision",
                    "unprovisionning",
                    "upgrading",
                }
            ),
            False,
        ),
        "location": ("string", False),
        "commercialRange": ("string", False),
        "generation": (frozenset({"1.0", "2.0"}), False),
        "managementInterface": (
            frozenset({"azure", "openstack", "systemcenter", "vcloud", "vcsa", "vsphere"}),
            False,
        ),
        "productReference": (frozenset({"EPCC", "MBM"}), False),
        "billingType": (frozenset({"demo", "monthly"}), False),
        "bandwidth": ("string", False),
        "spla": ("boolean", False),
        "advancedSecurity": ("boolean", False),
        "canMigrateToVCD": ("boolean", False),
        "userAccessPolicy": (frozenset({"filtered", "open"}), False),
        "userLogoutPolicy": (frozenset({"first", "last"}), False),
        "userLimitConcurrentSession": ("long", False),
        "userSessionTimeout": ("long", False),
        "certifiedInterfaceUrl": ("string", False),
        "webInterfaceUrl": ("string", False),
        "vScopeUrl": ("string", False),
        "version": ("Version", False),
        "servicePackName": ("string", True),
        "sslV3": ("boolean", True),
        "iam": ("ResourceMetadata", True),
    },
    "Version": {"major": ("string", False), "minor": ("string", False), "build": ("string", False)},
    "ResourceMetadata": {
        "id": ("uuid", False),
        "urn": ("string", False),
        "displayName": ("string", True),
        "tags": ("map", True),
    },
    "Datacenter": {
        "datacenterId": ("long", False),
        "name": ("string", False),
        "description": ("string", False),
        "commercialName": ("string", False),
        "commercialRangeName": ("string", False),
        "isRemovable": ("boolean", False),
        "version": ("string", False),
        "horizonViewName": ("string", True),
    },
    "Filer": {
        "filerId": ("long", False),
        "name": ("string", False),
        "profile": ("string", False),
        "fullProfile": ("string", False),
        "size": ("UnitAndValue<long>", False),
        "spaceUsed": ("double", True),
        "spaceFree": ("double", True),
        "spaceProvisionned": ("double", True),
        "state": (STATE, False),
        "billingType": (BILLING, True),
        "vmTotal": ("long", True),
        "connectionState": (frozenset({"offline", "online"}), True),
        "activeNode": (frozenset({"master", "slave"}), True),
        "master": ("string", False),
        "slave": ("string", True),
        "isManagedByOvh": ("boolean", False),
        "resourceName": ("string", True),
    },
    "Host": {
        "hostId": ("long", False),
        "name": ("string", False),
        "profile": ("string", False),
        "profileCode": ("string", False),
        "rack": ("string", False),
        "state": (STATE, False),
        "billingType": (BILLING, False),
        "connectionState": (frozenset({"connected", "disconnected", "notResponding"}), True),
        "inMaintenance": ("boolean", True),
        "clusterName": ("string", True),
        "cpu": ("UnitAndValue<double>", False),
        "cpuMax": ("long", True),
        "cpuMaxCore": ("long", True),
        "cpuNum": ("long", True),
        "cpuUsed": ("long", True),
        "ram": ("UnitAndValue<long>", False),
        "memoryUsed": ("double", True),
        "uptime": ("long", True),
        "vmTotal": ("long", True),
        "vmVcpuTotal": ("long", True),
        "parentHostId": ("long", True),
        "resourceName": ("string", True),
    },
    "Vm": {
        "vmId": ("long", False),
        "moRef": ("string", False),
        "name": ("string", True),
        "powerState": (frozenset({"deleted", "poweredOff", "poweredOn", "suspended"}), False),
        "hostName": ("string", True),
        "clusterName": ("string", True),
        "folderName": ("string", True),
        "cpuNum": ("long", True),
        "cpuMax": ("double", True),
        "cpuUsed": ("long", True),
        "cpuReady": ("double", True),
        "cpuReadyPercent": ("double", True),
        "memoryMax": ("long", True),
        "memoryUsed": ("long", True),
        "memoryTps": ("string", True),
        "netRx": ("double", True),
        "netTx": ("double", True),
        "netPacketRx": ("double", True),
        "netPacketTx": ("double", True),
        "readRate": ("double", True),
        "writeRate": ("double", True),
        "readLatency": ("double", True),
        "writeLatency": ("double", True),
        "readPerSecond": ("double", True),
        "writePerSecond": ("double", True),
        "filers": (("array", "vmFiler"), True),
        "networks": (("array", "vmNetwork"), True),
        "cdroms": (("array", "virtualMachineCdrom"), True),
        "backup": ("Backup", True),
        "snapshotNum": ("long", True),
        "stateFt": (
            frozenset(
                {"disabled", "enabled", "needSecondary", "notConfigured", "running", "starting"}
            ),
            True,
        ),
        "roleFt": ("string", True),
        "vmwareTools": ("string", True),
        "vmwareToolsVersion": ("string", True),
        "guestOsFamily": ("string", True),
        "license": ("string", True),
    },
    "vmFiler": {
        "name": ("string", False),
        "committed": ("double", False),
        "disks": (("array", "vmFilerDisk"), False),
    },
    "vmFilerDisk": {"id": ("string", False), "capacity": ("double", False)},
    "vmNetwork": {
        "label": ("string", False),
        "macAddress": ("string", False),
        "controler": ("string", False),
        "connected": ("boolean", False),
        "startConnected": ("boolean", False),
        "allowGuestControl": ("boolean", False),
        "status": (
            frozenset({"ok", "recoverableError", "unrecoverableError", "untried"}),
            False,
        ),
        "backing": ("vmNetworkBacking", False),
    },
    "vmNetworkBacking": {
        "type": (frozenset({"DVS", "VSS"}), False),
        "deviceName": ("string", True),
        "portGroupKey": ("string", True),
        "portKey": ("string", True),
        "switchUuid": ("string", True),
        "valueMoref": ("string", True),
        "useAutoDetect": ("boolean", True),
        "carpState": ("string", True),
        "portKeySecurityPolicy": ("DvsSecurityPolicy", True),
    },
    "DvsSecurityPolicy": {
        "allowPromiscuous": ("vmwareBoolPolicy", False),
        "forgedTransmits": ("vmwareBoolPolicy", False),
        "macChanges": ("vmwareBoolPolicy", False),
    },
    "vmwareBoolPolicy": {"inherited": ("boolean", False), "value": ("boolean", False)},
    "virtualMachineCdrom": {"connected": ("boolean", True), "iso": ("string", True)},
    "Backup": {
        "allocatedDisk": ("double", True),
        "backupDays": (
            (
                "array",
                frozenset(
                    {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
                ),
            ),
            True,
        ),
        "backupRepositoryId": ("long", True),
        "encryption": ("boolean", True),
        "lastCreationTime": ("datetime", True),
        "lastDuration": ("UnitAndValue<long>", True),
        "lastResult": (
            frozenset(
                {"failed", "running", "stopped", "stopping", "success", "unknown", "warning"}
            ),
            True,
        ),
        "lastSuccessfulCreationTime": ("datetime", True),
        "lastSuccessfulDuration": ("UnitAndValue<long>", True),
        "offerType": (frozenset({"advanced", "backup", "classic", "legacy", "premium"}), True),
        "restorePoints": (("array", "RestorePoint"), True),
        "retentionTime": ("long", True),
        "state": ("string", True),
    },
    "RestorePoint": {
        "restorePointId": ("long", False),
        "creationTime": ("datetime", True),
        "isCorrupted": ("boolean", True),
        "size": ("UnitAndValue<long>", True),
        "type": (frozenset({"full", "incremental"}), True),
    },
    "UnitAndValue<long>": {"unit": ("string", False), "value": ("long", False)},
    "UnitAndValue<double>": {"unit": ("string", False), "value": ("double", False)},
    "User": {
        "userId": ("long", False),
        "login": ("string", False),
        "name": ("string", False),
        "state": (frozenset({"creating", "deleting", "delivered", "error"}), False),
        "canManageIpFailOvers": ("boolean", False),
        "canManageNetwork": ("boolean", False),
        "canManageRights": ("boolean", False),
        "encryptionRight": ("boolean", False),
        "fullAdminRo": ("boolean", False),
        "isEnableManageable": ("boolean", False),
        "isTokenValidator": ("boolean", False),
        "nsxRight": ("boolean", False),
        "receiveAlerts": ("boolean", False),
        "activationState": (
            frozenset({"disabled", "disabling", "enabled", "enabling", "toDisable", "toEnable"}),
            True,
        ),
        "email": ("string", True),
        "firstName": ("string", True),
        "lastName": ("string", True),
        "phoneNumber": ("string", True),
        "type": (frozenset({"group", "user"}), True),
        "identityProviderId": ("long", True),
        "identityProviderType": (frozenset({"federation", "iam"}), True),
        "activeDirectoryId": ("long", True),
        "activeDirectoryType": (frozenset({"group", "user"}), True),
    },
}


def schema_errors(value: Any, model: str, where: str) -> list[str]:
    """Return every way `value` differs from `model`: missing, extra, null or mistyped fields."""
    fields = MODELS[model]
    if not isinstance(value, dict):
        return [f"{where}: expected a {model} object, got {value!r}"]
    errors = [f"{where}.{name}: missing" for name in fields if name not in value]
    errors += [f"{where}.{name}: not in the schema" for name in value if name not in fields]
    for name, (kind, nullable) in fields.items():
        if name in value:
            errors += type_errors(value[name], kind, nullable, f"{where}.{name}")
    return errors


def type_errors(value: Any, kind: Any, nullable: bool, where: str) -> list[str]:
    if value is None:
        return [] if nullable else [f"{where}: null but the schema forbids it"]
    if isinstance(kind, frozenset):
        return [] if value in kind else [f"{where}: {value!r} is not one of the enum values"]
    if isinstance(kind, tuple):
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {value!r}"]
        return [
            e
            for i, item in enumerate(value)
            for e in type_errors(item, kind[1], False, f"{where}[{i}]")
        ]
    if kind in MODELS:
        return schema_errors(value, kind, where)
    checks = {
        "string": lambda v: isinstance(v, str),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, float),
        "boolean": lambda v: isinstance(v, bool),
        "map": lambda v: isinstance(v, dict),
        "uuid": lambda v: isinstance(v, str) and len(v) == 36,
        "datetime": lambda v: (
            isinstance(v, str) and dt.datetime.fromisoformat(v).tzinfo is not None
        ),
    }
    return [] if checks[kind](value) else [f"{where}: {value!r} is not a {kind}"]


def test_default_fleet_shape(fleet: Fleet) -> None:
    assert fleet.service_name == SERVICE
    assert [dc.datacenter_id for dc in fleet.datacenters] == [1201, 1202]
    assert [dc.label for dc in fleet.datacenters] == [
        "pcc-203-0-113-10_datacenter1201",
        "pcc-203-0-113-10_datacenter1202",
    ]
    assert len(fleet.hosts_in(1201)) == 3
    assert len(fleet.hosts_in(1202)) == 3
    assert [host.name for host in fleet.hosts] == [f"198.51.100.{n}" for n in range(11, 17)]
    assert {host.nics for host in fleet.hosts} == {("vmnic0", "vmnic1", "vmnic2", "vmnic3")}
    assert len(fleet.filers_in(1201)) == 2
    assert len(fleet.filers_in(1202)) == 2
    assert [filer.name for filer in fleet.filers_in(None)] == ["pcc-000453"]
    assert len(fleet.vms) == 60
    assert fleet.vms[0].mo_ref == "vm-1001"
    assert fleet.vms[0].vm_id == 5001
    assert [user.name for user in fleet.users] == ["admin", "reporting", "netadmin"]


def test_scripted_vms_are_distinct(fleet: Fleet) -> None:
    deleted, off, missing = fleet.deleted_vm, fleet.powered_off_vm, fleet.missing_vm
    assert missing is not None
    assert len({deleted.vm_id, off.vm_id, missing.vm_id}) == 3
    assert deleted.deleted_at_ms == ANCHOR_MS - 12 * 3_600_000
    assert off.api["powerState"] == "poweredOff"
    assert off.api["cpuUsed"] is None
    assert missing.powered_on


def test_list_race_switch() -> None:
    assert build_fleet(ANCHOR, list_race=False).missing_vm is None


def test_build_is_deterministic(fleet: Fleet) -> None:
    again = build_fleet(ANCHOR)
    assert again == fleet
    assert [vm.api for vm in again.vms] == [vm.api for vm in fleet.vms]
    assert again.service == fleet.service


def test_seed_changes_fleet(fleet: Fleet) -> None:
    other = build_fleet(ANCHOR, seed=8)
    assert [vm.api for vm in other.vms] != [vm.api for vm in fleet.vms]


def test_hosts_scale_with_vms() -> None:
    big = build_fleet(ANCHOR, vm_count=500)
    assert len(big.vms) == 500
    assert len(big.hosts) == 50
    assert big.hosts[-1].name == "198.51.100.60"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"vm_count": 2},
            "vm_count 2 is out of range: expected 3 to 2440 (the fleet needs 3 VMs for its "
            "scripted events and has one /24 of host addresses)",
        ),
        ({"datacenter_count": 0}, "datacenter_count 0 is out of range: expected 1 or more"),
        (
            {"vm_count": 2440, "datacenter_count": 3},
            "3 datacenters of 82 hosts exceed the 244 host addresses of 198.51.100.0/24: "
            "lower vm_count or datacenter_count",
        ),
    ],
)
def test_build_rejects_bad_sizes(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        build_fleet(ANCHOR, **kwargs)
    assert str(raised.value) == message


def test_api_objects_match_schema(fleet: Fleet) -> None:
    errors = schema_errors(fleet.service, "dedicatedCloudWithIAM", "service")
    for dc in fleet.datacenters:
        errors += schema_errors(dc.api, "Datacenter", f"datacenter {dc.datacenter_id}")
    for filer in fleet.filers:
        errors += schema_errors(filer.api, "Filer", f"filer {filer.filer_id}")
    for host in fleet.hosts:
        errors += schema_errors(host.api, "Host", f"host {host.host_id}")
    for vm in fleet.vms:
        errors += schema_errors(vm.api, "Vm", f"vm {vm.vm_id}")
    for user in fleet.users:
        errors += schema_errors(user.api, "User", f"user {user.user_id}")
    assert errors == []


def test_changed_objects_match_schema() -> None:
    changed = build_fleet(ANCHOR, vm_count=12, inventory_changes=True)
    assert changed.scripted is not None
    # At the anchor day every scripted change has happened.
    now_ms = changed.anchor_ms
    errors = []
    for filer in changed.filers:
        errors += schema_errors(filer.api_at(now_ms), "Filer", f"filer {filer.filer_id}")
    for host in changed.hosts:
        errors += schema_errors(host.api_at(now_ms), "Host", f"host {host.host_id}")
    for vm in changed.vms:
        errors += schema_errors(vm.api_at(now_ms), "Vm", f"vm {vm.vm_id}")
    assert errors == []
    changed_count = sum(
        1
        for entity in (*changed.vms, *changed.hosts, *changed.filers)
        if entity.api_at(now_ms) != entity.api
    )
    assert changed_count == 5


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("vm", "folderName"),
        ("vm", "backup"),
        ("vm", "license"),
        ("vm", "memoryTps"),
        ("host", "resourceName"),
        ("filer", "slave"),
        ("user", "email"),
        ("user", "firstName"),
    ],
)
def test_nullable_fields_are_sometimes_null(fleet: Fleet, kind: str, field: str) -> None:
    objects = {
        "vm": [vm.api for vm in fleet.vms],
        "host": [host.api for host in fleet.hosts],
        "filer": [filer.api for filer in fleet.filers],
        "user": [user.api for user in fleet.users],
    }[kind]
    values = [obj[field] for obj in objects]
    assert None in values
    assert any(value is not None for value in values)


def test_api_objects_are_consistent(fleet: Fleet) -> None:
    for host in fleet.hosts:
        assert host.api["hostId"] == host.host_id
        assert host.api["name"] == host.name
        on_host = [
            vm for vm in fleet.vms if vm.host_id == host.host_id and vm.deleted_at_ms is None
        ]
        assert host.api["vmTotal"] == len(on_host)
    for vm in fleet.vms:
        host = next(h for h in fleet.hosts if h.host_id == vm.host_id)
        assert vm.api["hostName"] == host.name
        assert vm.api["moRef"] == vm.mo_ref
        dc_filers = {f.name for f in fleet.filers_in(vm.datacenter_id) + fleet.filers_in(None)}
        assert {filer["name"] for filer in vm.api["filers"]} <= dc_filers
    for filer in fleet.filers:
        assert filer.api["size"] == {"unit": "GB", "value": filer.size_gb}
        assert filer.api["spaceUsed"] + filer.api["spaceFree"] == pytest.approx(filer.size_gb)


def test_series_cover_catalogue_and_tps(series: FleetSeries) -> None:
    expected = {spec.name for spec in BUILTIN_METRICS} | {"vscope.vm.mem.tps"}
    assert series.metric_names() == expected
    counts = {metric: len(series.series_tags(metric)) for metric in expected}
    assert counts["vscope.vm.cpu.usage.perc"] == 59  # the powered-off VM has no series
    assert counts["vscope.vm.mem.tps"] == 59
    assert counts["vscope.host.cpu.usage.perc"] == 6
    assert counts["vscope.host.net.tx"] == 24
    # 2 datastores per datacenter, plus the global one under each datacenter.
    assert counts["vscope.filer.datastore.diskspace.used"] == 6


def test_series_tags(fleet: Fleet, series: FleetSeries) -> None:
    host = fleet.hosts[0]
    assert series.series_tags("vscope.host.net.rx")[1] == {
        "datacenter": datacenter_label(SERVICE, 1201),
        "host": host.name,
        "nicname": "vmnic1",
        "env": "prod",
        "servicename": SERVICE,
        "servicetype": "vscope",
    }
    vm_tags = series.series_tags("vscope.vm.cpu.ready")
    assert set(vm_tags[0]) == {"datacenter", "vm", "env", "servicename", "servicetype"}
    powered_off = fleet.powered_off_vm.mo_ref
    assert all(tags["vm"] != powered_off for tags in vm_tags)
    filer_tags = series.series_tags("vscope.filer.datastore.diskspace.used")
    assert [(t["datacenter"][-4:], t["datastore"]) for t in filer_tags] == [
        ("1201", "pcc-000441"),
        ("1201", "pcc-000444"),
        ("1201", "pcc-000453"),
        ("1202", "pcc-000447"),
        ("1202", "pcc-000450"),
        ("1202", "pcc-000453"),
    ]


def test_series_tags_are_copies(series: FleetSeries) -> None:
    tags = series.series_tags("vscope.host.cpu.usage.perc")[0]
    tags["host"] = "changed"
    assert series.series_tags("vscope.host.cpu.usage.perc")[0]["host"] == "198.51.100.11"


def find_series_without_gaps(series: FleetSeries, metric: str, day: int) -> dict[str, str]:
    return next(dict(t) for t in series.series_tags(metric) if not series.gaps(metric, t, day))


def test_day_has_one_point_per_minute(series: FleetSeries) -> None:
    day = ANCHOR_MS // DAY_MS - 2
    tags = find_series_without_gaps(series, "vscope.vm.cpu.usage.perc", day)
    timestamps, values = series.points(
        "vscope.vm.cpu.usage.perc", tags, day * DAY_MS, (day + 1) * DAY_MS - 1
    )
    assert len(timestamps) == 1440
    assert timestamps[0] == day * DAY_MS
    assert np.all(np.diff(timestamps) == MINUTE_MS)
    assert timestamps.dtype == np.int64
    assert values.dtype == np.float64


def test_step_seconds_sets_resolution(fleet: Fleet) -> None:
    coarse = FleetSeries(fleet, step_seconds=300, gap_probability=0.0)
    tags = coarse.series_tags("vscope.host.cpu.usage.perc")[0]
    timestamps, _ = coarse.points(
        "vscope.host.cpu.usage.perc", tags, ANCHOR_MS, ANCHOR_MS + DAY_MS - 1
    )
    assert len(timestamps) == 288
    assert np.all(timestamps % 300_000 == 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"step_seconds": 7},
            "step_seconds 7 is not valid: expected a whole number of seconds that divides a "
            "day (86400), for example 60 or 300",
        ),
        (
            {"gap_probability": 1.5},
            "gap_probability 1.5 is not valid: expected a probability between 0 and 1",
        ),
        ({"history_days": -1}, "history_days -1 is not valid: expected 0 or more days"),
    ],
)
def test_series_rejects_bad_options(fleet: Fleet, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        FleetSeries(fleet, **kwargs)
    assert str(raised.value) == message


def test_overlapping_windows_agree(series: FleetSeries) -> None:
    metric = "vscope.vm.net.rx"
    tags = series.series_tags(metric)[5]
    start = ANCHOR_MS - 2 * DAY_MS
    wide_ts, wide_values = series.points(metric, tags, start, start + 2 * DAY_MS)
    part_start, part_end = start + 17 * 3_600_000 + 30_000, start + 30 * 3_600_000
    part_ts, part_values = series.points(metric, tags, part_start, part_end)
    inside = (wide_ts >= part_start) & (wide_ts <= part_end)
    assert len(part_ts) > 700
    np.testing.assert_array_equal(part_ts, wide_ts[inside])
    np.testing.assert_array_equal(part_values, wide_values[inside])


def test_window_bounds_are_inclusive(series: FleetSeries) -> None:
    tags = find_series_without_gaps(series, "vscope.host.mem.usage.perc", ANCHOR_MS // DAY_MS)
    timestamps, _ = series.points(
        "vscope.host.mem.usage.perc", tags, ANCHOR_MS, ANCHOR_MS + 2 * MINUTE_MS
    )
    assert timestamps.tolist() == [ANCHOR_MS, ANCHOR_MS + MINUTE_MS, ANCHOR_MS + 2 * MINUTE_MS]


def test_same_points_from_new_instance(fleet: Fleet, series: FleetSeries) -> None:
    metric = "vscope.vm.disk.latency.write"
    tags = series.series_tags(metric)[3]
    first = series.points(metric, tags, ANCHOR_MS, ANCHOR_MS + DAY_MS)
    second = FleetSeries(build_fleet(ANCHOR)).points(metric, tags, ANCHOR_MS, ANCHOR_MS + DAY_MS)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_unknown_series_has_no_points(series: FleetSeries) -> None:
    timestamps, values = series.points("vscope.vm.cpu.usage.perc", {"vm": "vm-9"}, 0, ANCHOR_MS)
    assert len(timestamps) == 0
    assert len(values) == 0


def test_history_starts_before_anchor(fleet: Fleet) -> None:
    short = FleetSeries(fleet, history_days=3, gap_probability=0.0)
    tags = short.series_tags("vscope.host.cpu.usage.perc")[0]
    timestamps, _ = short.points("vscope.host.cpu.usage.perc", tags, 0, ANCHOR_MS + DAY_MS - 1)
    assert timestamps[0] == ANCHOR_MS - 3 * DAY_MS
    assert len(timestamps) == 4 * 1440
    before, _ = short.points("vscope.host.cpu.usage.perc", tags, 0, ANCHOR_MS - 3 * DAY_MS - 1)
    assert len(before) == 0


def test_deleted_vm_stops_at_noon(fleet: Fleet, series: FleetSeries) -> None:
    deleted = fleet.deleted_vm
    metric = "vscope.vm.mem.usage.perc"
    tags = next(t for t in series.series_tags(metric) if t["vm"] == deleted.mo_ref)
    day_before = ANCHOR_MS - DAY_MS
    timestamps, _ = series.points(metric, tags, day_before - DAY_MS, ANCHOR_MS + DAY_MS)
    noon = day_before + 12 * 3_600_000
    gaps = series.gaps(metric, tags, day_before // DAY_MS)
    last_expected = noon - MINUTE_MS
    while any(start <= last_expected < end for start, end in gaps):
        last_expected -= MINUTE_MS
    assert timestamps[-1] == last_expected
    assert timestamps[0] == day_before - DAY_MS


@pytest.mark.parametrize(
    "metric", sorted({s.name for s in BUILTIN_METRICS} | {"vscope.vm.mem.tps"})
)
def test_values_stay_in_range(series: FleetSeries, metric: str) -> None:
    spec = next((s for s in BUILTIN_METRICS if s.name == metric), None)
    upper = spec.max_value if spec and spec.max_value is not None else np.inf
    for tags in series.series_tags(metric)[:12]:
        _, values = series.points(metric, tags, ANCHOR_MS - 7 * DAY_MS, ANCHOR_MS)
        assert values.min() >= 0.0
        assert values.max() <= upper
        assert not np.isnan(values).any()


def test_filer_used_stays_below_size_and_grows(fleet: Fleet, series: FleetSeries) -> None:
    metric = "vscope.filer.datastore.diskspace.used"
    for tags in series.series_tags(metric):
        filer = next(f for f in fleet.filers if f.name == tags["datastore"])
        _, early = series.points(metric, tags, ANCHOR_MS - 60 * DAY_MS, ANCHOR_MS - 59 * DAY_MS)
        _, late = series.points(metric, tags, ANCHOR_MS, ANCHOR_MS + DAY_MS)
        assert late.max() < filer.capacity_kb
        assert late.mean() > early.mean()
        assert np.all(late == np.round(late))


def test_global_filer_same_in_every_datacenter(series: FleetSeries) -> None:
    metric = "vscope.filer.datastore.diskspace.used"
    global_tags = [t for t in series.series_tags(metric) if t["datastore"] == "pcc-000453"]
    first = series.points(metric, global_tags[0], ANCHOR_MS, ANCHOR_MS + DAY_MS)
    second = series.points(metric, global_tags[1], ANCHOR_MS, ANCHOR_MS + DAY_MS)
    np.testing.assert_array_equal(first[1], second[1])


def test_filer_space_used_matches_series_trend(fleet: Fleet, series: FleetSeries) -> None:
    filer = fleet.filers[0]
    tags = next(
        t
        for t in series.series_tags("vscope.filer.datastore.diskspace.used")
        if t["datastore"] == filer.name
    )
    _, values = series.points("vscope.filer.datastore.diskspace.used", tags, ANCHOR_MS, ANCHOR_MS)
    used_gb = values[0] / 1024 / 1024
    assert used_gb == pytest.approx(filer.api["spaceUsed"], rel=0.005)


def test_office_hours_peak_over_night(series: FleetSeries) -> None:
    metric = "vscope.host.cpu.usage.perc"
    weekday = ANCHOR_MS - DAY_MS  # Thursday 2026-12-03
    for tags in series.series_tags(metric):
        _, night = series.points(metric, tags, weekday, weekday + 5 * 3_600_000)
        _, office = series.points(metric, tags, weekday + 10 * 3_600_000, weekday + 16 * 3_600_000)
        assert office.mean() > 1.3 * night.mean()


def test_weekend_is_quieter_than_weekday(series: FleetSeries) -> None:
    metric = "vscope.vm.cpu.usage.perc"
    thursday, sunday = ANCHOR_MS - DAY_MS, ANCHOR_MS + 2 * DAY_MS

    def afternoon_values(day_ms: int) -> np.ndarray:
        start, end = day_ms + 11 * 3_600_000, day_ms + 15 * 3_600_000
        return np.concatenate(
            [series.points(metric, tags, start, end)[1] for tags in series.series_tags(metric)]
        )

    assert afternoon_values(thursday).mean() > 1.2 * afternoon_values(sunday).mean()


def test_gaps_are_few_and_short(series: FleetSeries) -> None:
    day = ANCHOR_MS // DAY_MS - 1
    gapped = 0
    total = 0
    for metric in sorted(series.metric_names()):
        for tags in series.series_tags(metric):
            total += 1
            gaps = series.gaps(metric, tags, day)
            gapped += bool(gaps)
            for start, end in gaps:
                assert 5 * MINUTE_MS <= end - start <= 30 * MINUTE_MS
                assert start % MINUTE_MS == 0
    assert 0 < gapped < total * 0.05


def test_gap_removes_exactly_its_points(series: FleetSeries) -> None:
    day = ANCHOR_MS // DAY_MS - 2  # every series reports all day long
    metric, tags, gaps = next(
        (metric, tags, gaps)
        for metric in sorted(series.metric_names())
        for tags in series.series_tags(metric)
        if (gaps := series.gaps(metric, tags, day))
    )
    timestamps, _ = series.points(metric, tags, day * DAY_MS, (day + 1) * DAY_MS - 1)
    missing = {ts for start, end in gaps for ts in range(start, end, MINUTE_MS)}
    assert len(timestamps) == 1440 - len(missing)
    assert missing.isdisjoint(timestamps.tolist())


def test_stable_seed_is_fixed() -> None:
    # The first 8 bytes of blake2b("7\x1fa"): unlike hash(), the same in every process.
    assert stable_seed(7, "a") == 0xF4DFF1015E5AFDB7
