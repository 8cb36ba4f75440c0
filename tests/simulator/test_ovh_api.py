"""The simulated OVH APIv6, driven by the real python-ovh client over loopback HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ovh
import ovh.client
import ovh.config
import pytest
import requests

from vscope_pipeline.simulator.credentials import AccessRule, SimulatorCredentials
from vscope_pipeline.simulator.fleet import Fleet, build_fleet
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.ovh_api import NO_ROUTE, OvhApiServer, make_ovh_api_server
from vscope_pipeline.simulator.ovh_auth import sign
from vscope_pipeline.simulator.ovh_faults import (
    REMOVED,
    ApiFaults,
    ForcedApiResponse,
    gateway_error_page,
    server_error,
    slow_response,
    too_many_requests,
)

ANCHOR = dt.date(2025, 3, 10)
# 06:00 UTC on the anchor day: after the deleted VM left, at 12:00 the day before.
SERVER_NOW = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC).timestamp()
OPENTSDB_URL = "http://127.0.0.1:4242"
CREDENTIALS = SimulatorCredentials()
SN = "pcc-203-0-113-10"
DC = f"/dedicatedCloud/{SN}/datacenter/1201"


@pytest.fixture(autouse=True)
def isolated_ovh_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the machine's OVH_* variables and ovh.conf files from python-ovh."""
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(ovh.config, "CONFIG_PATH", [])


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(ANCHOR)


@contextmanager
def running_api(fleet: Fleet, **options: Any) -> Iterator[OvhApiServer]:
    options.setdefault("clock", lambda: SERVER_NOW)
    server = make_ovh_api_server(
        fleet, options.pop("credentials", CREDENTIALS), OPENTSDB_URL, **options
    )
    with ServerThread(server, name="simulated OVH APIv6 (tests)"):
        yield server


@pytest.fixture(scope="module")
def api(fleet: Fleet) -> Iterator[OvhApiServer]:
    with running_api(fleet) as server:
        yield server


def make_client(
    server: OvhApiServer, credentials: SimulatorCredentials = CREDENTIALS
) -> ovh.Client:
    """Return a python-ovh client of the server, registered as the endpoint `simulator`.

    python-ovh 1.2.0 only accepts endpoint names, so the test adds one to its table. The
    `isolated_endpoints` fixture removes it again.
    """
    ovh.client.ENDPOINTS["simulator"] = f"{server.url}/1.0"
    return ovh.Client(
        "simulator",
        application_key=credentials.application_key,
        application_secret=credentials.application_secret,
        consumer_key=credentials.consumer_key,
    )


@pytest.fixture(autouse=True)
def isolated_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ovh.client, "ENDPOINTS", dict(ovh.client.ENDPOINTS))


@pytest.fixture
def client(api: OvhApiServer) -> ovh.Client:
    return make_client(api)


def message(error: ovh.exceptions.APIError) -> str:
    # str() of a python-ovh error appends the query id, so read the body's message in args[0].
    return str(error.args[0])


def test_signature_matches_python_ovh_vector() -> None:
    secret, consumer = "9ufkBmLaTQ9nz5yMUlg79taH0GNnzDjk", "5mBuy6SUQcRw2ZUxg0cG68BoDKpED4KY"
    url = "https://eu.api.ovh.com/1.0/auth"
    assert sign(secret, consumer, "GET", url, "", "1457018875") == (
        "$1$e9556054b6309771395efa467c22e627407461ad"
    )
    assert sign(secret, consumer, "POST", url, '{"a":"b","c":"d"}', "1457018875") == (
        "$1$ec2fb5c7a81f64723c77d2e5b609ae6f58a84fc1"
    )


def test_auth_time_needs_no_signature(client: ovh.Client) -> None:
    assert client.get("/auth/time", _need_auth=False) == int(SERVER_NOW)


def test_service_routes(client: ovh.Client, fleet: Fleet) -> None:
    assert client.get("/dedicatedCloud") == [SN]
    assert client.get(f"/dedicatedCloud/{SN}") == fleet.service
    assert client.get(f"/dedicatedCloud/{SN}/datacenter") == [1201, 1202]
    assert client.get(DC) == fleet.datacenter(1201).api  # type: ignore[union-attr]


def test_v1_alias(client: ovh.Client) -> None:
    assert client.get("/v1/dedicatedCloud") == [SN]
    assert client.get(f"/v1/dedicatedCloud/{SN}/datacenter") == [1201, 1202]


def test_host_routes(client: ovh.Client, fleet: Fleet) -> None:
    hosts = fleet.hosts_in(1202)
    assert client.get(f"/dedicatedCloud/{SN}/datacenter/1202/host") == [h.host_id for h in hosts]
    assert (
        client.get(f"/dedicatedCloud/{SN}/datacenter/1202/host/{hosts[1].host_id}") == hosts[1].api
    )


def test_filer_routes(client: ovh.Client, fleet: Fleet) -> None:
    local, shared = fleet.filers_in(1201), fleet.filers_in(None)
    assert client.get(f"{DC}/filer") == [filer.filer_id for filer in local]
    assert client.get(f"{DC}/filer/{local[0].filer_id}") == local[0].api
    assert client.get(f"/dedicatedCloud/{SN}/filer") == [shared[0].filer_id]
    assert client.get(f"/dedicatedCloud/{SN}/filer/{shared[0].filer_id}") == shared[0].api


def test_global_filer_not_under_datacenter(client: ovh.Client, fleet: Fleet) -> None:
    shared = fleet.filers_in(None)[0]
    with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
        client.get(f"{DC}/filer/{shared.filer_id}")
    assert (
        message(raised.value)
        == f"The requested object (filerId = {shared.filer_id}) does not exist"
    )


def test_vm_list_skips_deleted_vm(client: ovh.Client, fleet: Fleet) -> None:
    listed = client.get(f"{DC}/vm")
    expected = [
        vm.vm_id for vm in fleet.vms if vm.datacenter_id == 1201 and vm.deleted_at_ms is None
    ]
    assert listed == expected
    all_listed = listed + client.get(f"/dedicatedCloud/{SN}/datacenter/1202/vm")
    assert fleet.deleted_vm.vm_id not in all_listed
    assert fleet.missing_vm is not None
    assert fleet.missing_vm.vm_id in all_listed
    assert len(all_listed) == 59


def test_vm_get(client: ovh.Client, fleet: Fleet) -> None:
    vm = next(
        vm
        for vm in fleet.vms
        if vm.datacenter_id == 1201 and vm.deleted_at_ms is None and not vm.missing_on_get
    )
    assert client.get(f"{DC}/vm/{vm.vm_id}") == vm.api


def test_powered_off_vm_is_served(client: ovh.Client, fleet: Fleet) -> None:
    vm = fleet.powered_off_vm
    body = client.get(f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}/vm/{vm.vm_id}")
    assert body["powerState"] == "poweredOff"
    assert body["memoryUsed"] is None


@pytest.mark.parametrize("which", ["deleted", "missing"])
def test_vanished_vm_get_is_404(client: ovh.Client, fleet: Fleet, which: str) -> None:
    vm = fleet.deleted_vm if which == "deleted" else fleet.missing_vm
    assert vm is not None
    with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
        client.get(f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}/vm/{vm.vm_id}")
    assert message(raised.value) == f"The requested object (vmId = {vm.vm_id}) does not exist"
    assert raised.value.query_id.startswith("EU.ext-sim.")


def test_deleted_vm_served_before_deletion(fleet: Fleet) -> None:
    vm = fleet.deleted_vm
    before = (vm.deleted_at_ms or 0) / 1000 - 1
    with running_api(fleet, clock=lambda: before) as server:
        client = make_client(server)
        vm_path = f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}"
        assert vm.vm_id in client.get(f"{vm_path}/vm")
        assert client.get(f"{vm_path}/vm/{vm.vm_id}") == vm.api


def test_list_race_can_be_switched_off() -> None:
    fleet = build_fleet(ANCHOR, list_race=False)
    with running_api(fleet) as server:
        client = make_client(server)
        for dc in fleet.datacenters:
            path = f"/dedicatedCloud/{SN}/datacenter/{dc.datacenter_id}/vm"
            for vm_id in client.get(path):
                assert client.get(f"{path}/{vm_id}")["vmId"] == vm_id


def test_batch_get(client: ovh.Client, fleet: Fleet) -> None:
    vms = [
        vm
        for vm in fleet.vms
        if vm.datacenter_id == 1201 and vm.deleted_at_ms is None and not vm.missing_on_get
    ]
    ids = f"{vms[0].vm_id},{vms[1].vm_id},42,x"
    assert client.get(f"{DC}/vm/{ids}", batch=",") == [
        {"key": str(vms[0].vm_id), "value": vms[0].api, "error": None},
        {"key": str(vms[1].vm_id), "value": vms[1].api, "error": None},
        {"key": "42", "value": None, "error": "The requested object (vmId = 42) does not exist"},
        {"key": "x", "value": None, "error": "[vmId] Given data (x) is not valid for type long"},
    ]


@pytest.mark.parametrize(
    ("path", "fleet_ids"),
    [
        (f"{DC}/host", lambda f: [h.host_id for h in f.hosts_in(1201)]),
        (f"{DC}/filer", lambda f: [x.filer_id for x in f.filers_in(1201)]),
        (f"/dedicatedCloud/{SN}/filer", lambda f: [x.filer_id for x in f.filers_in(None)]),
        (f"/dedicatedCloud/{SN}/user", lambda f: [u.user_id for u in f.users]),
        (f"/dedicatedCloud/{SN}/datacenter", lambda f: [d.datacenter_id for d in f.datacenters]),
    ],
)
def test_batch_get_other_routes(
    client: ovh.Client, fleet: Fleet, path: str, fleet_ids: Any
) -> None:
    ids = fleet_ids(fleet)
    items = client.get(f"{path}/{';'.join(map(str, ids))}", batch=";")
    assert [item["key"] for item in items] == [str(i) for i in ids]
    assert [item["error"] for item in items] == [None] * len(ids)
    assert [item["value"] for item in items] == [client.get(f"{path}/{i}") for i in ids]


def test_list_without_batch_rejects_id_list(client: ovh.Client) -> None:
    with pytest.raises(ovh.exceptions.BadParametersError) as raised:
        client.get(f"{DC}/vm/5001,5002")
    assert message(raised.value) == "[vmId] Given data (5001,5002) is not valid for type long"


@pytest.mark.parametrize(
    ("name", "logins"),
    [
        (None, ["admin", "reporting", "netadmin"]),
        ("admin", ["admin", "netadmin"]),
        ("ADMIN", ["admin", "netadmin"]),
        ("report", ["reporting"]),
        ("nobody", []),
    ],
)
def test_user_name_filter(client: ovh.Client, name: str | None, logins: list[str]) -> None:
    query = {} if name is None else {"name": name}
    user_ids = client.get(f"/dedicatedCloud/{SN}/user", **query)
    assert [
        client.get(f"/dedicatedCloud/{SN}/user/{user_id}")["login"] for user_id in user_ids
    ] == logins


def test_user_get(client: ovh.Client, fleet: Fleet) -> None:
    admin = fleet.user("admin")
    assert client.get(f"/dedicatedCloud/{SN}/user/{admin.user_id}") == admin.api


@pytest.mark.parametrize("route", ["metricsToken", "getVscopeMetricsToken"])
def test_token_routes(client: ovh.Client, fleet: Fleet, route: str) -> None:
    user_id = fleet.user("admin").user_id
    assert client.post(f"/dedicatedCloud/{SN}/user/{user_id}/{route}") == {
        "token": CREDENTIALS.metrics_token,
        "opentsdbEndpoint": OPENTSDB_URL,
        "warpEndpoint": OPENTSDB_URL,
    }


@pytest.mark.parametrize(
    ("enabled", "disabled"),
    [(("metricsToken",), "getVscopeMetricsToken"), (("getVscopeMetricsToken",), "metricsToken")],
)
def test_token_route_disabled(fleet: Fleet, enabled: tuple[str, ...], disabled: str) -> None:
    user_id = fleet.user("admin").user_id
    with running_api(fleet, token_routes=enabled) as server:
        client = make_client(server)
        assert client.post(f"/dedicatedCloud/{SN}/user/{user_id}/{enabled[0]}")["token"]
        with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
            client.post(f"/dedicatedCloud/{SN}/user/{user_id}/{disabled}")
    assert message(raised.value) == "Got an invalid (or empty) URL"


def test_no_token_route(fleet: Fleet) -> None:
    with running_api(fleet, token_routes=()) as server:
        client = make_client(server)
        for route in ("metricsToken", "getVscopeMetricsToken"):
            with pytest.raises(ovh.exceptions.ResourceNotFoundError):
                client.post(f"/dedicatedCloud/{SN}/user/2101/{route}")
        assert server.counters.count(route=NO_ROUTE, status=404) == 2


def test_token_of_unknown_user(client: ovh.Client) -> None:
    with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
        client.post(f"/dedicatedCloud/{SN}/user/9/metricsToken")
    assert message(raised.value) == "The requested object (userId = 9) does not exist"


def test_unknown_token_route_name(fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="metricToken") as raised:
        make_ovh_api_server(fleet, CREDENTIALS, OPENTSDB_URL, token_routes=("metricToken",))
    assert str(raised.value) == (
        "token_routes ['metricToken'] are not token routes: expected a subset of "
        "['metricsToken', 'getVscopeMetricsToken']"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/dedicatedCloud/pcc-nope", "This service does not exist"),
        ("/dedicatedCloud/pcc-nope/datacenter/1201/vm", "This service does not exist"),
        (
            f"/dedicatedCloud/{SN}/datacenter/9",
            "The requested object (datacenterId = 9) does not exist",
        ),
        (
            f"/dedicatedCloud/{SN}/datacenter/9/host",
            "The requested object (datacenterId = 9) does not exist",
        ),
        (f"{DC}/host/3999", "The requested object (hostId = 3999) does not exist"),
        (f"/dedicatedCloud/{SN}/user/77", "The requested object (userId = 77) does not exist"),
    ],
)
def test_missing_objects_are_404(client: ovh.Client, path: str, expected: str) -> None:
    with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
        client.get(path)
    assert message(raised.value) == expected
    assert raised.value.response.json()["errorCode"] == "Client::NotFound"
    assert raised.value.response.json()["httpCode"] == "404 Not Found"


def test_malformed_id_is_400(client: ovh.Client) -> None:
    with pytest.raises(ovh.exceptions.BadParametersError) as raised:
        client.get(f"/dedicatedCloud/{SN}/datacenter/abc")
    assert message(raised.value) == "[datacenterId] Given data (abc) is not valid for type long"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dedicatedCloud/x/unknown"),
        ("GET", "/me"),
        ("DELETE", f"/dedicatedCloud/{SN}"),
        ("PUT", f"/dedicatedCloud/{SN}/user/2101"),
        ("GET", f"/dedicatedCloud/{SN}/user/2101/metricsToken"),
    ],
)
def test_unknown_route_is_404(client: ovh.Client, method: str, path: str) -> None:
    with pytest.raises(ovh.exceptions.ResourceNotFoundError) as raised:
        client.call(method, path)
    assert raised.value.response.json() == {
        "message": "Got an invalid (or empty) URL",
        "httpCode": "404 Not Found",
    }


def test_path_outside_api_is_404(api: OvhApiServer) -> None:
    response = requests.get(f"{api.url}/2.0/dedicatedCloud", timeout=5)
    assert response.status_code == 404
    assert response.json()["message"] == "Got an invalid (or empty) URL"
    assert response.headers["X-Ovh-Queryid"].startswith("EU.ext-sim.")


def test_wrong_secret_is_invalid_signature(api: OvhApiServer) -> None:
    client = make_client(api, dataclasses.replace(CREDENTIALS, application_secret="x" * 32))
    with pytest.raises(ovh.exceptions.BadParametersError) as raised:
        client.get("/dedicatedCloud")
    assert message(raised.value) == "Invalid signature"
    assert raised.value.response.json()["errorCode"] == "INVALID_SIGNATURE"
    assert raised.value.response.json()["httpCode"] == "400 Bad Request"


def test_unknown_application_key(api: OvhApiServer) -> None:
    client = make_client(api, dataclasses.replace(CREDENTIALS, application_key="unknownAppKey000"))
    with pytest.raises(ovh.exceptions.InvalidKey) as raised:
        client.get("/dedicatedCloud")
    assert message(raised.value) == "Invalid application key"


def test_unknown_consumer_key(api: OvhApiServer) -> None:
    client = make_client(api, dataclasses.replace(CREDENTIALS, consumer_key="y" * 32))
    with pytest.raises(ovh.exceptions.InvalidCredential) as raised:
        client.get("/dedicatedCloud")
    assert message(raised.value) == "This credential is not valid"


def test_tampered_url_is_invalid_signature(api: OvhApiServer) -> None:
    timestamp = str(int(SERVER_NOW))
    signed_url = f"{api.url}/1.0/dedicatedCloud"
    headers = signed_headers("GET", signed_url, "", timestamp)
    response = requests.get(f"{api.url}/1.0/dedicatedCloud/{SN}", headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_SIGNATURE"


def signed_headers(method: str, url: str, body: str, timestamp: str) -> dict[str, str]:
    return {
        "X-Ovh-Application": CREDENTIALS.application_key,
        "X-Ovh-Consumer": CREDENTIALS.consumer_key,
        "X-Ovh-Timestamp": timestamp,
        "X-Ovh-Signature": sign(
            CREDENTIALS.application_secret, CREDENTIALS.consumer_key, method, url, body, timestamp
        ),
    }


@pytest.mark.parametrize("skew", [-181, 181])
def test_stale_timestamp_is_rejected(api: OvhApiServer, skew: int) -> None:
    url = f"{api.url}/1.0/dedicatedCloud"
    response = requests.get(
        url, headers=signed_headers("GET", url, "", str(int(SERVER_NOW) + skew)), timeout=5
    )
    assert response.status_code == 400
    assert response.json() == {
        "message": "Query out of time",
        "httpCode": "400 Bad Request",
        "errorCode": "QUERY_TIME_OUT",
    }


@pytest.mark.parametrize("skew", [-180, 0, 180])
def test_timestamp_within_skew_is_accepted(api: OvhApiServer, skew: int) -> None:
    url = f"{api.url}/v1/dedicatedCloud"
    response = requests.get(
        url, headers=signed_headers("GET", url, "", str(int(SERVER_NOW) + skew)), timeout=5
    )
    assert response.status_code == 200
    assert response.json() == [SN]


def test_unsigned_request_is_401(api: OvhApiServer) -> None:
    response = requests.get(
        f"{api.url}/1.0/dedicatedCloud",
        headers={"X-Ovh-Application": CREDENTIALS.application_key},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json() == {
        "message": "You must login first",
        "httpCode": "401 Unauthorized",
        "errorCode": "NOT_AUTHENTICATED",
    }


def test_client_corrects_clock_offset(fleet: Fleet) -> None:
    # A server an hour ahead: python-ovh signs with the /auth/time delta, so calls succeed.
    with running_api(fleet, clock=lambda: time.time() + 3600) as server:
        assert make_client(server).get("/dedicatedCloud") == [SN]


def test_access_rules_deny_ungranted_call(fleet: Fleet) -> None:
    read_only = dataclasses.replace(CREDENTIALS, access_rules=(AccessRule("GET", "/*"),))
    with running_api(fleet, credentials=read_only) as server:
        client = make_client(server, read_only)
        assert client.get("/dedicatedCloud") == [SN]
        with pytest.raises(ovh.exceptions.NotGrantedCall) as raised:
            client.post(f"/dedicatedCloud/{SN}/user/2101/metricsToken")
    assert message(raised.value) == "This call has not been granted"


def test_current_credential_lists_rules(fleet: Fleet) -> None:
    # A key without any rule on /auth still reads its own credential.
    narrow = dataclasses.replace(
        CREDENTIALS,
        access_rules=(
            AccessRule("GET", "/dedicatedCloud"),
            AccessRule("POST", "/dedicatedCloud/*"),
        ),
    )
    with running_api(fleet, credentials=narrow) as server:
        credential = make_client(server, narrow).get("/auth/currentCredential")
    assert credential == {
        "credentialId": 424242,
        "applicationId": 4242,
        "status": "validated",
        "rules": [
            {"method": "GET", "path": "/dedicatedCloud"},
            {"method": "POST", "path": "/dedicatedCloud/*"},
        ],
        "creation": "2025-02-08T06:00:00+00:00",
        "expiration": None,
        "lastUse": "2025-03-10T06:00:00+00:00",
        "ovhSupport": False,
        "allowedIPs": None,
    }


def test_current_credential_rejects_anonymous(api: OvhApiServer) -> None:
    response = requests.get(f"{api.url}/1.0/auth/currentCredential", timeout=5)
    assert response.status_code == 403
    assert response.json()["errorCode"] == "INVALID_KEY"


def test_access_rule_path_is_exact_without_star(fleet: Fleet) -> None:
    narrow = dataclasses.replace(
        CREDENTIALS,
        access_rules=(
            AccessRule("GET", "/dedicatedCloud"),
            AccessRule("GET", f"/dedicatedCloud/{SN}/user*"),
        ),
    )
    with running_api(fleet, credentials=narrow) as server:
        client = make_client(server, narrow)
        assert client.get("/dedicatedCloud") == [SN]
        assert client.get(f"/dedicatedCloud/{SN}/user", name="admin") == [2101, 2103]
        with pytest.raises(ovh.exceptions.NotGrantedCall):
            client.get(f"/dedicatedCloud/{SN}")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "GAT",
            "/*",
            "access rule method 'GAT' is not valid: expected one of GET, POST, PUT, DELETE",
        ),
        (
            "GET",
            "dedicatedCloud",
            "access rule path 'dedicatedCloud' is not valid: expected a path that starts with "
            "'/', for example '/dedicatedCloud/*'",
        ),
    ],
)
def test_access_rule_validation(method: str, path: str, expected: str) -> None:
    with pytest.raises(ValueError, match="access rule") as raised:
        AccessRule(method, path)
    assert str(raised.value) == expected


def test_credentials_hide_secrets() -> None:
    text = repr(CREDENTIALS)
    assert CREDENTIALS.application_key in text
    assert CREDENTIALS.application_secret not in text
    assert CREDENTIALS.consumer_key not in text
    assert CREDENTIALS.metrics_token not in text


def test_generated_credentials() -> None:
    first, second = SimulatorCredentials.generate(), SimulatorCredentials.generate()
    assert first != second
    assert len(first.application_key) == 16
    assert len(first.application_secret) == 32
    assert len(first.consumer_key) == 32
    assert first.application_key.isalnum()


def test_counters(fleet: Fleet) -> None:
    with running_api(fleet) as server:
        client = make_client(server)
        client.get("/dedicatedCloud")
        client.get(f"/dedicatedCloud/{SN}/datacenter")
        vm = fleet.deleted_vm
        with pytest.raises(ovh.exceptions.ResourceNotFoundError):
            client.get(f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}/vm/{vm.vm_id}")
        assert server.counters.snapshot() == {
            ("GET /auth/time", 200): 1,
            ("GET /dedicatedCloud", 200): 1,
            ("GET /dedicatedCloud/{serviceName}/datacenter", 200): 1,
            ("GET /dedicatedCloud/{serviceName}/datacenter/{datacenterId}/vm/{vmId}", 404): 1,
        }
        assert server.counters.count() == 4
        assert server.counters.count(status=200) == 3


def test_server_binds_loopback_only(fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        make_ovh_api_server(fleet, CREDENTIALS, OPENTSDB_URL, host="0.0.0.0")


# Fault injection

QUERY_ID = "EU.ext-sim.000000000000000000000042"


@pytest.fixture
def faulty_api(fleet: Fleet) -> Iterator[OvhApiServer]:
    """A server of its own for each fault test, so that no queued fault outlives the test."""
    with running_api(fleet) as server:
        yield server


def test_forced_429_has_ovh_body_and_headers(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(too_many_requests(retry_after=7, query_id=QUERY_ID))
    response = requests.get(f"{faulty_api.url}/1.0/dedicatedCloud", timeout=5)
    assert response.status_code == 429
    assert response.json() == {
        "message": "Too many requests, retry later",
        "httpCode": "429 Too Many Requests",
        "errorCode": "TOO_MANY_REQUESTS",
    }
    assert response.headers["Retry-After"] == "7"
    assert response.headers["X-Ovh-Queryid"] == QUERY_ID
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_forced_error_reaches_python_ovh(faulty_api: OvhApiServer) -> None:
    client = make_client(faulty_api)
    faulty_api.faults.force(server_error(503, query_id=QUERY_ID, path="/dedicatedCloud"))
    with pytest.raises(ovh.exceptions.APIError) as caught:
        client.get("/dedicatedCloud")
    assert type(caught.value) is ovh.exceptions.APIError
    assert message(caught.value) == "The service is temporarily unavailable, retry later"
    assert caught.value.query_id == QUERY_ID
    assert caught.value.response.status_code == 503
    assert client.get("/dedicatedCloud") == [SN]


def test_forced_500_body(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(server_error(500))
    response = requests.get(f"{faulty_api.url}/1.0/dedicatedCloud", timeout=5)
    assert response.status_code == 500
    assert response.json() == {
        "message": "Internal server error",
        "httpCode": "500 Internal Server Error",
        "errorCode": "INTERNAL_SERVER_ERROR",
    }


def test_gateway_page_is_not_json(faulty_api: OvhApiServer) -> None:
    client = make_client(faulty_api)
    faulty_api.faults.force(gateway_error_page(504, path="/dedicatedCloud"))
    with pytest.raises(ovh.exceptions.InvalidResponse):
        client.get("/dedicatedCloud")
    faulty_api.faults.force(gateway_error_page(504))
    response = requests.get(f"{faulty_api.url}/1.0/dedicatedCloud", timeout=5)
    assert response.status_code == 504
    assert response.text == "<html><body><h1>504 Gateway Timeout</h1></body></html>\n"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_forced_responses_match_method_and_path(faulty_api: OvhApiServer) -> None:
    client = make_client(faulty_api)
    client.get("/dedicatedCloud")
    faults = faulty_api.faults
    faults.force(
        server_error(502, path=f"/dedicatedCloud/{SN}"),
        too_many_requests(method="POST"),
        server_error(503, path="/dedicatedCloud"),
    )
    with pytest.raises(ovh.exceptions.APIError) as first:
        client.get("/dedicatedCloud")
    assert first.value.response.status_code == 503
    with pytest.raises(ovh.exceptions.APIError) as second:
        client.post(f"/dedicatedCloud/{SN}/user/2101/metricsToken")
    assert second.value.response.status_code == 429
    assert faults.pending() == 1
    assert client.get(f"/dedicatedCloud/{SN}/datacenter") == [1201, 1202]
    with pytest.raises(ovh.exceptions.APIError) as third:
        client.get(f"/dedicatedCloud/{SN}")
    assert third.value.response.status_code == 502
    assert faults.pending() == 0
    assert faults.taken() == 3


def test_forced_responses_counted_by_route(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(server_error(503), server_error(503))
    requests.get(f"{faulty_api.url}/1.0/dedicatedCloud", timeout=5)
    requests.get(f"{faulty_api.url}/1.0/nowhere", timeout=5)
    assert faulty_api.counters.snapshot() == {
        ("GET /dedicatedCloud", 503): 1,
        (NO_ROUTE, 503): 1,
    }


def test_forced_response_precedes_authentication(faulty_api: OvhApiServer) -> None:
    # An unsigned request gets the forced 429, as from a rate limiter in front of the API.
    faulty_api.faults.force(too_many_requests())
    response = requests.get(f"{faulty_api.url}/1.0/dedicatedCloud/{SN}", timeout=5)
    assert response.status_code == 429
    response = requests.get(f"{faulty_api.url}/1.0/dedicatedCloud/{SN}", timeout=5)
    assert response.status_code == 403
    assert response.json()["errorCode"] == "INVALID_KEY"


def test_slow_response_delays_real_one(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(slow_response(0.3, path="/auth/time"))
    started = time.monotonic()
    response = requests.get(f"{faulty_api.url}/1.0/auth/time", timeout=5)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.json() == int(SERVER_NOW)


def test_slow_response_outlasts_client_timeout(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(slow_response(0.6, path="/auth/time"))
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{faulty_api.url}/1.0/auth/time", timeout=(2.0, 0.2))
    response = requests.get(f"{faulty_api.url}/1.0/auth/time", timeout=5)
    assert response.json() == int(SERVER_NOW)


def test_delay_applies_to_every_response(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.delay_s = 0.15
    started = time.monotonic()
    for _ in range(2):
        assert requests.get(f"{faulty_api.url}/1.0/auth/time", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3
    faulty_api.faults.clear()
    assert faulty_api.faults.delay_s == 0.0


def test_clear_drops_queued_faults(faulty_api: OvhApiServer) -> None:
    faulty_api.faults.force(server_error(503), too_many_requests())
    faulty_api.faults.clear()
    assert faulty_api.faults.pending() == 0
    assert requests.get(f"{faulty_api.url}/1.0/auth/time", timeout=5).status_code == 200


def test_faults_passed_at_creation(fleet: Fleet) -> None:
    faults = ApiFaults()
    faults.force(server_error(502))
    with running_api(fleet, faults=faults) as server:
        assert server.faults is faults
        response = requests.get(f"{server.url}/1.0/auth/time", timeout=5)
    assert response.status_code == 502


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"status": 999},
            "forced status 999 is not an HTTP status: expected a code such as 429 or 503, or "
            "None to only delay the real response",
        ),
        (
            {"status": None},
            "a forced response with status None only delays the real response: set delay_s to "
            "a positive number of seconds",
        ),
        ({"status": 503, "delay_s": -1.0}, "delay_s -1.0 is invalid: expected seconds >= 0"),
        (
            {"status": 503, "path": "/dedicatedCloud/("},
            "path '/dedicatedCloud/(' is not a valid regular expression: missing ), unterminated "
            "subpattern at position 16",
        ),
    ],
)
def test_forced_response_validation(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=r"^(forced|a forced|delay_s|path) ") as caught:
        ForcedApiResponse(**options)
    assert str(caught.value) == expected


def test_server_error_needs_5xx() -> None:
    with pytest.raises(ValueError, match="not a server error") as caught:
        server_error(429)
    assert str(caught.value) == "status 429 is not a server error: expected 500 to 599"


def test_override_applies_to_single_and_batch_get(faulty_api: OvhApiServer, fleet: Fleet) -> None:
    vm = fleet.powered_off_vm
    faulty_api.faults.override("vm", vm.vm_id, powerState="suspendedX", moRef=REMOVED)
    client = make_client(faulty_api)
    vm_path = f"/dedicatedCloud/{SN}/datacenter/{vm.datacenter_id}/vm/{vm.vm_id}"
    single = client.get(vm_path)
    (item,) = client.get(f"{vm_path}?batch=,")
    assert single["powerState"] == "suspendedX"
    assert "moRef" not in single
    assert item["value"] == single
    faulty_api.faults.clear()
    assert client.get(vm_path)["moRef"] == vm.mo_ref
