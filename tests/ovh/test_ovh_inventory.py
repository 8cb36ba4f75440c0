"""The inventory walk with the real python-ovh client against the simulated APIv6."""

import dataclasses
import logging
import re

import pytest
from ovh_sim import CREDENTIALS, SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.batch import batch_support
from vscope_pipeline.ovh.inventory import (
    ObjectRef,
    OvhRequestError,
    RetryingClient,
    ServiceNotFoundError,
    snapshot_inventory,
)
from vscope_pipeline.ovh.schemas import INVENTORY_SCHEMAS
from vscope_pipeline.simulator.credentials import AccessRule
from vscope_pipeline.simulator.ovh_api import _Api

SNAPSHOT_AT = SERVER_NOW


def walk(client, service_names=None, **options):
    # Without the default rate limit, the walks of one GET per object take no extra time.
    unlimited = RetryingClient(client, rate_limiter=None)
    return snapshot_inventory(unlimited, service_names, snapshot_at=SNAPSHOT_AT, **options)


def test_default_fleet_counts(client, fleet):
    snapshot = walk(client)
    missing = fleet.missing_vm
    assert snapshot.service_names == ("pcc-203-0-113-10",)
    assert dict(snapshot.stats.objects) == {"datacenters": 2, "filers": 5, "hosts": 6, "vms": 58}
    assert snapshot.stats.retries == 0
    assert dict(snapshot.stats.skipped_not_found) == {
        "datacenters": (),
        "filers": (),
        "hosts": (),
        "vms": (ObjectRef(fleet.service_name, missing.datacenter_id, "vm", missing.vm_id),),
    }
    for kind, table in snapshot.tables.items():
        assert table.schema == INVENTORY_SCHEMAS[kind]
        assert snapshot.stats.unknown_fields[kind] == {}


def test_vanished_and_deleted_vms_absent(client, fleet):
    vm_ids = sorted(walk(client).tables["vms"].column("vm_id").to_pylist())
    expected = sorted(
        vm.vm_id for vm in fleet.vms if vm.deleted_at_ms is None and not vm.missing_on_get
    )
    assert vm_ids == expected
    assert fleet.deleted_vm.vm_id not in vm_ids
    assert fleet.missing_vm.vm_id not in vm_ids


def test_skipped_ref_prints_api_path(client, fleet):
    (skipped,) = walk(client).stats.skipped_not_found["vms"]
    missing = fleet.missing_vm
    assert str(skipped) == (
        f"/dedicatedCloud/pcc-203-0-113-10/datacenter/{missing.datacenter_id}/vm/{missing.vm_id}"
    )


def test_global_filers_have_null_datacenter(client, fleet):
    rows = walk(client).tables["filers"].to_pylist()
    global_rows = [row for row in rows if row["datacenter_id"] is None]
    assert [row["filer_id"] for row in global_rows] == [f.filer_id for f in fleet.filers_in(None)]
    assert [row["is_global"] for row in global_rows] == [True]
    assert [row["datacenter_label"] for row in global_rows] == [None]
    local = sorted(
        (row["datacenter_id"], row["filer_id"]) for row in rows if row["datacenter_id"] is not None
    )
    assert local == sorted(
        (f.datacenter_id, f.filer_id) for f in fleet.filers if f.datacenter_id is not None
    )


def test_rows_carry_metric_datacenter_label(client, fleet):
    hosts = walk(client).tables["hosts"].to_pylist()
    labels = {dc.datacenter_id: dc.label for dc in fleet.datacenters}
    assert [(row["host_id"], row["datacenter_label"]) for row in hosts] == [
        (host.host_id, labels[host.datacenter_id]) for host in fleet.hosts
    ]
    assert [row["name"] for row in hosts] == [host.name for host in fleet.hosts]


def test_vm_row_matches_api_object(client, fleet):
    rows = {row["vm_id"]: row for row in walk(client).tables["vms"].to_pylist()}
    vm = fleet.powered_off_vm
    row = rows[vm.vm_id]
    assert row["mo_ref"] == vm.mo_ref
    assert row["name"] == vm.name
    assert row["power_state"] == "poweredOff"
    assert row["datacenter_id"] == vm.datacenter_id
    assert row["memory_max"] == vm.api["memoryMax"]
    assert row["snapshot_at"] == SNAPSHOT_AT


def test_batch_and_single_walks_identical(api, fleet):
    batched = walk(client_for(api), batch="always")
    single = walk(client_for(api), batch="never")
    for kind, table in batched.tables.items():
        assert table.equals(single.tables[kind]), kind
    assert batched.stats.skipped_not_found == single.stats.skipped_not_found
    assert batched.stats.batch is True
    assert single.stats.batch is False


def test_request_counts_per_mode(api, fleet):
    datacenters = len(fleet.datacenters)
    # /dedicatedCloud, the service, its datacenter list, each datacenter, its three lists,
    # and the global filer list.
    fixed = 3 + datacenters * 4 + 1
    listed = len(fleet.filers) + len(fleet.hosts) + len(fleet.vms) - 1  # deleted VM unlisted
    assert walk(client_for(api), batch="never").stats.requests == fixed + listed
    # One batch per datacenter filer, host and VM list, and one for the global filers.
    assert walk(client_for(api), batch="always").stats.requests == fixed + datacenters * 3 + 1


def test_small_batches_same_table(client):
    full = walk(client, batch="always")
    chunked = walk(client, batch="always", batch_size=7)
    assert chunked.tables["vms"].equals(full.tables["vms"])
    assert chunked.stats.requests > full.stats.requests


def test_batch_support_learned_once_per_client(api):
    client = client_for(api)
    assert batch_support(client) is None
    assert walk(client).stats.batch is True
    assert batch_support(client) is True
    assert batch_support(client_for(api)) is None


@pytest.fixture
def api_without_batch(fleet, monkeypatch):
    """An APIv6 that responds to `.../vm/1,2?batch=,` with 400, like a route without batch mode."""

    def single_object(request, id_name, lookup):
        return _Api._object(id_name, request.params[id_name], lookup)

    with running_api(fleet) as thread:
        monkeypatch.setattr(api_server(thread).api, "_objects", single_object)
        yield thread


def test_no_batch_support_falls_back(api_without_batch, api):
    client = client_for(api_without_batch)
    first = walk(client)
    assert batch_support(client) is False
    assert first.stats.batch is False
    counters = api_server(api_without_batch).counters
    rejected = counters.count(status=400)
    assert rejected == 1

    second = walk(client)
    assert counters.count(status=400) == rejected
    reference = walk(client_for(api), batch="always")
    for kind, table in second.tables.items():
        assert table.equals(reference.tables[kind]), kind


def test_batch_always_without_support_fails(api_without_batch, fleet):
    with pytest.raises(OvhRequestError) as caught:
        walk(client_for(api_without_batch), batch="always")
    assert str(caught.value).startswith(
        "GET /dedicatedCloud/pcc-203-0-113-10/datacenter/1201/filer/4101,4102?batch=, failed "
        "with BadParametersError: [filerId] Given data (4101,4102) is not valid for type long "
        "(OVH query id EU.ext-sim."
    )


def test_requested_service_selected(client, fleet):
    snapshot = walk(client, [fleet.service_name, fleet.service_name])
    assert snapshot.service_names == (fleet.service_name,)
    assert snapshot.stats.objects["vms"] == 58


def test_unknown_service_lists_visible_ones(client):
    with pytest.raises(ServiceNotFoundError) as caught:
        walk(client, ["pcc-192-0-2-1", "pcc-203-0-113-10", "pcc-192-0-2-2"])
    assert str(caught.value) == (
        "dedicatedCloud service 'pcc-192-0-2-1', 'pcc-192-0-2-2' not found among the services "
        "this OVH account can access (pcc-203-0-113-10): fix the service name "
        "(VSCOPE_SERVICE_NAMES), or use credentials of the account that owns it"
    )


def test_empty_service_list_rejected(client):
    with pytest.raises(ValueError, match="service_names is empty") as caught:
        walk(client, [])
    assert str(caught.value) == (
        "service_names is empty: pass None to snapshot every service the account can access"
    )


def test_single_string_service_rejected(client):
    with pytest.raises(TypeError) as caught:
        walk(client, "pcc-203-0-113-10")
    assert str(caught.value) == (
        "service_names must be a sequence of names, not the string 'pcc-203-0-113-10': "
        "pass ['pcc-203-0-113-10']"
    )


def test_not_granted_error_names_url(fleet):
    rules = (AccessRule("GET", "/dedicatedCloud"), AccessRule("GET", "/dedicatedCloud/*/"))
    credentials = dataclasses.replace(CREDENTIALS, access_rules=rules)
    with running_api(fleet, credentials) as api, pytest.raises(OvhRequestError) as caught:
        walk(client_for(api, credentials))
    error = caught.value
    assert error.method == "GET"
    assert error.path == "/dedicatedCloud/pcc-203-0-113-10"
    assert re.fullmatch(
        r"GET /dedicatedCloud/pcc-203-0-113-10 failed with NotGrantedCall: This call has not "
        r"been granted \(OVH query id EU\.ext-sim\.[0-9a-f]{24}\); the consumer key has no "
        r"access rule for this call: add the rule GET /dedicatedCloud/\* to the consumer key "
        r"\(request a new consumer key whose access rules include it, validate it, and set "
        r"OVH_CONSUMER_KEY\)",
        str(error),
    )


def test_summary_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="vscope_pipeline.ovh.inventory"):
        walk(client, batch="always")
    messages = [r.getMessage() for r in caplog.records if r.name == "vscope_pipeline.ovh.inventory"]
    assert messages[0] == (
        "inventory of 1 service(s) (pcc-203-0-113-10): 2 datacenters, 5 filers, 6 hosts, 58 vms "
        "in 19 requests (batch GET)"
    )
    assert messages[1].startswith(
        "skipped 1 vms listed but not found on GET (removed since the listing): "
    )
