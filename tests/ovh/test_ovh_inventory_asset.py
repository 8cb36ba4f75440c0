"""The inventory asset's metadata and log report the odd OVH values of a snapshot."""

import dagster as dg

from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS, inventory_snapshot
from vscope_pipeline.defs.resources import build_resources
from vscope_pipeline.simulator.ovh_faults import REMOVED
from vscope_pipeline.simulator.runner import running_simulator


def metadata_values(result, kind):
    (materialization,) = [
        materialization
        for materialization in result.asset_materializations_for_node("inventory_snapshot")
        if materialization.asset_key == INVENTORY_KEYS[kind]
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


def test_odd_values_reach_asset_metadata(tmp_path, monkeypatch):
    with running_simulator(vm_count=12) as simulator:
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path))
        vms = [
            vm for vm in simulator.fleet.vms if not vm.missing_on_get and vm.deleted_at_ms is None
        ]
        faults = simulator.ovh_server.server.faults
        faults.override("vm", vms[0].vm_id, powerState="suspendedX")
        faults.override("vm", vms[1].vm_id, moRef=REMOVED)
        faults.override("vm", vms[2].vm_id, cpuNum="4")
        result = dg.materialize([inventory_snapshot], resources=build_resources())

    assert result.success
    vm_metadata = metadata_values(result, "vms")
    assert vm_metadata["unknown_enum_values"] == 1
    assert vm_metadata["unknown_enum_values_by_field"] == {"powerState": {"suspendedX": 1}}
    assert vm_metadata["nulled_invalid_values"] == {"cpuNum": 1}
    assert vm_metadata["skipped_invalid"] == 1
    (skipped,) = vm_metadata["skipped_invalid_objects"]
    assert skipped["object"].startswith(f"vm {vms[1].vm_id} of ")
    assert "field 'moRef' is missing" in skipped["reason"]
    host_metadata = metadata_values(result, "hosts")
    assert host_metadata["unknown_enum_values"] == 0
    assert host_metadata["skipped_invalid"] == 0
    assert host_metadata["nulled_invalid_values"] == {}
