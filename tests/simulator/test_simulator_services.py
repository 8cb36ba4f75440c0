"""The simulator with several dedicatedCloud services: fleets, tokens and scoped series."""

import datetime as dt
from collections.abc import Iterator

import ovh
import pytest
import requests

from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import build_fleet
from vscope_pipeline.simulator.ovh_api import make_ovh_api_server
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator, service_names

ANCHOR = dt.date(2025, 3, 10)
NOW_S = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC).timestamp()
SERVICE_A = "pcc-203-0-113-10"
SERVICE_B = "pcc-203-0-113-11"
CPU = "vscope.vm.cpu.usage.perc"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator(
        anchor_day=ANCHOR, services=2, vm_count=12, clock=lambda: NOW_S
    ) as running:
        yield running


def _query(simulator: RunningSimulator, token: str, datacenter: str) -> requests.Response:
    body = {
        "start": int(NOW_S) - 3600,
        "end": int(NOW_S),
        "queries": [
            {"metric": CPU, "aggregator": "none", "tags": {"datacenter": datacenter, "vm": "*"}}
        ],
    }
    return requests.post(
        f"{simulator.opentsdb_url}/api/query", json=body, auth=("read", token), timeout=10
    )


def test_service_names_from_count():
    assert service_names(1) == (SERVICE_A,)
    assert service_names(3) == (SERVICE_A, SERVICE_B, "pcc-203-0-113-12")
    assert service_names(["pcc-1", "pcc-2"]) == ("pcc-1", "pcc-2")


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (0, "services 0 is out of range: expected 1 or more"),
        (
            ["pcc-1", "pcc-1"],
            "services ['pcc-1', 'pcc-1'] are not valid: expected one or more distinct, "
            "non-empty service names",
        ),
        ([], "services [] are not valid: expected one or more distinct, non-empty service names"),
    ],
)
def test_service_names_invalid(services, message):
    with pytest.raises(ValueError, match=r"^services ") as caught:
        service_names(services)
    assert str(caught.value) == message


def test_service_names_string_rejected():
    with pytest.raises(TypeError) as caught:
        service_names("pcc-1")
    assert str(caught.value) == (
        "services must be a count or a sequence of names, not the string 'pcc-1': pass ['pcc-1']"
    )


def test_fleets_have_distinct_datacenters(simulator):
    assert simulator.service_names == (SERVICE_A, SERVICE_B)
    assert [[dc.datacenter_id for dc in fleet.datacenters] for fleet in simulator.fleets] == [
        [1201, 1202],
        [1301, 1302],
    ]
    assert [dc.label for dc in simulator.fleets[1].datacenters] == [
        f"{SERVICE_B}_datacenter1301",
        f"{SERVICE_B}_datacenter1302",
    ]
    assert simulator.fleet is simulator.fleets[0]
    assert simulator.environment()["VSCOPE_SERVICE_NAMES"] == f"{SERVICE_A},{SERVICE_B}"


def test_default_is_one_service():
    with running_simulator(anchor_day=ANCHOR, vm_count=12, clock=lambda: NOW_S) as running:
        assert running.service_names == (SERVICE_A,)
        assert running.metrics_tokens == {SERVICE_A: SimulatorCredentials().metrics_token}
        assert running.environment()["VSCOPE_SERVICE_NAMES"] == SERVICE_A


def test_metrics_tokens_per_service(simulator):
    tokens = simulator.metrics_tokens
    assert tokens[SERVICE_A] == simulator.credentials.metrics_token
    assert tokens[SERVICE_B].startswith("vscope-sim-")
    assert tokens[SERVICE_B] != tokens[SERVICE_A]
    generated = SimulatorCredentials.generate().service_metrics_tokens([SERVICE_A, SERVICE_B])
    assert generated[SERVICE_B] != tokens[SERVICE_B]


def test_api_serves_each_service(simulator):
    credentials = simulator.credentials
    client = build_ovh_client(
        simulator.ovh_endpoint,
        application_key=credentials.application_key,
        application_secret=credentials.application_secret,
        consumer_key=credentials.consumer_key,
    )
    assert client.get("/dedicatedCloud") == [SERVICE_A, SERVICE_B]
    assert client.get(f"/dedicatedCloud/{SERVICE_B}/datacenter") == [1301, 1302]
    # A datacenter of A does not exist under B.
    with pytest.raises(ovh.ResourceNotFoundError, match=r"\(datacenterId = 1201\) does not"):
        client.get(f"/dedicatedCloud/{SERVICE_B}/datacenter/1201")
    for service in (SERVICE_A, SERVICE_B):
        answer = client.post(f"/dedicatedCloud/{service}/user/2101/metricsToken")
        assert answer["token"] == simulator.metrics_tokens[service]
        assert answer["opentsdbEndpoint"] == simulator.opentsdb_url


def test_token_reads_only_its_service(simulator):
    token_b = simulator.metrics_tokens[SERVICE_B]
    own = _query(simulator, token_b, f"{SERVICE_B}_datacenter1301")
    other = _query(simulator, token_b, f"{SERVICE_A}_datacenter1201")

    assert own.status_code == 200
    assert {series["tags"]["servicename"] for series in own.json()} == {SERVICE_B}
    assert other.status_code == 400
    assert other.json()["error"]["message"] == (
        f"No such name for 'tagv': '{SERVICE_A}_datacenter1201'"
    )


def test_api_rejects_duplicate_services():
    fleet = build_fleet(ANCHOR, vm_count=12)
    with pytest.raises(ValueError, match=r"^fleets of services ") as caught:
        make_ovh_api_server([fleet, fleet], SimulatorCredentials(), "http://127.0.0.1:4242")
    assert str(caught.value) == (
        f"fleets of services ['{SERVICE_A}', '{SERVICE_A}'] are not valid: expected at least "
        "one fleet, and distinct service names"
    )
