"""OVH objects that differ from the documented model, served by the simulated APIv6 and walked
with the real python-ovh client: unknown enum values, missing required fields, wrong types."""

import logging

import pytest
from ovh_sim import SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.fields import SchemaMismatchError
from vscope_pipeline.ovh.inventory import RetryingClient, snapshot_inventory
from vscope_pipeline.ovh.schemas import RejectedObject
from vscope_pipeline.simulator.ovh_faults import REMOVED, ApiFaults, ObjectOverride

VM = 5002
VM_NAME = "vm 5002 of pcc-203-0-113-10 datacenter 1201"


@pytest.fixture
def api(fleet):
    with running_api(fleet) as thread:
        yield thread


@pytest.fixture
def faults(api) -> ApiFaults:
    return api_server(api).faults


def walk(api, batch="auto"):
    client = RetryingClient(client_for(api), rate_limiter=None)
    return snapshot_inventory(client, None, snapshot_at=SERVER_NOW, batch=batch)


def schema_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "vscope_pipeline.ovh.schemas"]


def vm_row(snapshot, vm_id=VM):
    (row,) = [row for row in snapshot.tables["vms"].to_pylist() if row["vm_id"] == vm_id]
    return row


@pytest.mark.parametrize("batch", ["always", "never"])
def test_unknown_enum_values_kept_and_counted(api, faults, batch, caplog):
    faults.override("vm", VM, powerState="suspendedX")
    faults.override("host", 3101, state="newState")
    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ovh.schemas"):
        snapshot = walk(api, batch)
    assert vm_row(snapshot)["power_state"] == "suspendedX"
    hosts = {row["host_id"]: row for row in snapshot.tables["hosts"].to_pylist()}
    assert hosts[3101]["state"] == "newState"
    assert dict(snapshot.stats.objects) == {"datacenters": 2, "filers": 5, "hosts": 6, "vms": 58}
    assert snapshot.stats.unknown_enum_values["vms"] == {"powerState": {"suspendedX": 1}}
    assert snapshot.stats.unknown_enum_values["hosts"] == {"state": {"newState": 1}}
    assert snapshot.stats.rejected["vms"] == ()
    assert schema_warnings(caplog) == [
        "kept value 'newState' of field 'state' of hosts, not among its documented values "
        "(1 occurrences, first in host 3101 of pcc-203-0-113-10 datacenter 1201)",
        "kept value 'suspendedX' of field 'powerState' of vms, not among its documented values "
        f"(1 occurrences, first in {VM_NAME})",
    ]


def test_missing_required_field_skips_object(api, faults, caplog):
    faults.override("vm", VM, moRef=REMOVED)
    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ovh.schemas"):
        snapshot = walk(api)
    assert snapshot.stats.objects["vms"] == 57
    assert VM not in snapshot.tables["vms"].column("vm_id").to_pylist()
    reason = (
        f"{VM_NAME}: field 'moRef' is missing, but the OVH model documents it as never null; "
        "the API response does not match the documented OVH model"
    )
    assert snapshot.stats.rejected["vms"] == (RejectedObject(VM_NAME, reason),)
    assert schema_warnings(caplog) == [
        "skipped 1 vms whose required fields do not match the documented dedicatedCloud.Vm "
        f"model: {reason}"
    ]


def test_string_for_number_nulls_optional_field(api, faults):
    faults.override("vm", VM, cpuNum="4", memoryMax="8 GB")
    snapshot = walk(api)
    row = vm_row(snapshot)
    assert row["cpu_num"] is None
    assert row["memory_max"] is None
    assert row["mo_ref"] is not None
    assert snapshot.stats.nulled_fields["vms"] == {"cpuNum": 1, "memoryMax": 1}
    assert snapshot.stats.objects["vms"] == 58


def test_string_for_required_number_skips_object(api, faults):
    faults.override("host", 3102, ram={"unit": "GB", "value": "768"})
    snapshot = walk(api)
    (rejected,) = snapshot.stats.rejected["hosts"]
    assert rejected.reason == (
        "host 3102 of pcc-203-0-113-10 datacenter 1201: field 'ram.value' is '768' (str), "
        "expected an integer (OVH type long); the API response does not match the documented "
        "OVH model"
    )
    assert snapshot.stats.objects["hosts"] == 5


def test_every_object_invalid_fails_clearly(api, faults, fleet):
    for datacenter in fleet.datacenters:
        faults.override("datacenter", datacenter.datacenter_id, name=REMOVED)
    with pytest.raises(SchemaMismatchError) as caught:
        walk(api)
    assert str(caught.value) == (
        "all 2 datacenters returned by APIv6 lack a valid required field, so the "
        "dedicatedCloud.Datacenter model has likely changed; first: datacenter 1201 of "
        "pcc-203-0-113-10: field 'name' is missing, but the OVH model documents it as never "
        "null; the API response does not match the documented OVH model. Update the "
        "dedicatedCloud.Datacenter field list in vscope_pipeline/ovh/schemas.py"
    )


def test_override_merges_and_clears(faults):
    faults.override("vm", VM, powerState="x")
    faults.override("vm", VM, name=REMOVED)
    assert faults.overridden("vm", VM, {"powerState": "poweredOn", "name": "a", "vmId": VM}) == {
        "powerState": "x",
        "vmId": VM,
    }
    faults.clear()
    assert faults.overridden("vm", VM, {"name": "a"}) == {"name": "a"}


def test_override_rejects_unknown_entity():
    with pytest.raises(ValueError, match="override entity") as caught:
        ObjectOverride("vms", VM, {})
    assert str(caught.value) == (
        "override entity 'vms' is not valid: expected one of datacenter, filer, host, vm, user"
    )


def test_overridden_user_served(api, faults, fleet):
    admin = fleet.user("admin").user_id
    faults.override("user", admin, state="frozen")
    user = client_for(api).get(f"/dedicatedCloud/pcc-203-0-113-10/user/{admin}")
    assert user["state"] == "frozen"
    assert user["userId"] == admin
