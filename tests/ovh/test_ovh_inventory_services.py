"""The inventory walk over two services, where one service's failure spares the other."""

from collections.abc import Iterator

import pytest
from ovh_sim import ANCHOR_DAY, SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.errors import OvhNotGrantedError
from vscope_pipeline.ovh.inventory import RetryingClient, snapshot_inventory
from vscope_pipeline.simulator.fleet import build_fleet
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.ovh_faults import ForcedApiResponse

SERVICE_A = "pcc-203-0-113-10"
SERVICE_B = "pcc-203-0-113-11"
QUERY_ID = "EU.ext-sim.services-test"
NOT_GRANTED = (
    f"GET /dedicatedCloud/{SERVICE_B}/datacenter/1301/vm failed with NotGrantedCall: This call "
    f"has not been granted (OVH query id {QUERY_ID}); the consumer key has no access rule for "
    "this call: add the rule GET /dedicatedCloud/*/datacenter/*/vm to the consumer key (request "
    "a new consumer key whose access rules include it, validate it, and set OVH_CONSUMER_KEY)"
)


@pytest.fixture(scope="module")
def two_services() -> Iterator[ServerThread]:
    fleets = [
        build_fleet(ANCHOR_DAY, vm_count=12),
        build_fleet(ANCHOR_DAY, vm_count=12, service_name=SERVICE_B, first_datacenter_id=1301),
    ]
    with running_api(fleets) as thread:
        yield thread


@pytest.fixture(autouse=True)
def clear_faults(two_services) -> Iterator[None]:
    yield
    api_server(two_services).faults.clear()


def _walk(api: ServerThread, service_names=None, **options):
    client = RetryingClient(client_for(api), rate_limiter=None)
    return snapshot_inventory(client, service_names, snapshot_at=SERVER_NOW, **options)


def _refuse_vm_listing(api: ServerThread) -> None:
    api_server(api).faults.force(
        ForcedApiResponse(
            403,
            "This call has not been granted",
            "NOT_GRANTED_CALL",
            headers={"X-Ovh-Queryid": QUERY_ID},
            method="GET",
            path=rf"/dedicatedCloud/{SERVICE_B}/datacenter/\d+/vm",
        )
    )


def _services_of(snapshot, kind: str) -> set[str]:
    return set(snapshot.tables[kind].column("service_name").to_pylist())


def test_both_services_walked(two_services):
    snapshot = _walk(two_services, isolate_services=True)

    assert snapshot.service_names == (SERVICE_A, SERVICE_B)
    assert dict(snapshot.failed_services) == {}
    assert dict(snapshot.stats.objects) == {"datacenters": 4, "filers": 10, "hosts": 12, "vms": 20}


def test_failed_service_left_out(two_services):
    _refuse_vm_listing(two_services)

    snapshot = _walk(two_services, isolate_services=True)

    assert snapshot.service_names == (SERVICE_A,)
    assert dict(snapshot.failed_services) == {SERVICE_B: NOT_GRANTED}
    for kind in ("datacenters", "filers", "hosts", "vms"):
        assert _services_of(snapshot, kind) == {SERVICE_A}
    assert dict(snapshot.stats.objects) == {"datacenters": 2, "filers": 5, "hosts": 6, "vms": 10}


def test_failure_raises_without_isolation(two_services):
    _refuse_vm_listing(two_services)

    with pytest.raises(OvhNotGrantedError) as caught:
        _walk(two_services)

    assert str(caught.value) == NOT_GRANTED


def test_unknown_service_isolated(two_services):
    snapshot = _walk(two_services, ["pcc-192-0-2-1", SERVICE_B], isolate_services=True)

    assert snapshot.service_names == (SERVICE_B,)
    assert dict(snapshot.failed_services) == {
        "pcc-192-0-2-1": (
            "dedicatedCloud service 'pcc-192-0-2-1' not found among the services this OVH "
            f"account can access ({SERVICE_A}, {SERVICE_B}): fix the service name "
            "(VSCOPE_SERVICE_NAMES), or use credentials of the account that owns it"
        )
    }
    assert snapshot.stats.objects["vms"] == 10
