"""APIv6 authentication, authorization and transient faults met by the pipeline's calls, with
the real python-ovh client against the simulated APIv6. Each case either succeeds after retries
or fails with a message that names the call and the fix."""

import dataclasses
import datetime as dt
import re

import ovh
import pytest
from ovh_sim import CREDENTIALS, SERVER_NOW, api_server, client_for, running_api

from vscope_pipeline.ovh.errors import OvhNotGrantedError, access_rule
from vscope_pipeline.ovh.inventory import OvhRequestError, RetryingClient, snapshot_inventory
from vscope_pipeline.ovh.retrying import OvhRetriesExhaustedError
from vscope_pipeline.ovh.server_time import api_server_time
from vscope_pipeline.ovh.token import fetch_metrics_token, find_user_id
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.simulator.clock import SimulatorClock
from vscope_pipeline.simulator.ovh_faults import (
    ForcedApiResponse,
    server_error,
    too_many_requests,
)

SERVICE = "pcc-203-0-113-10"
ROOT = f"/dedicatedCloud/{SERVICE}"
QUERY_ID = r"\(OVH query id EU\.ext-sim\.[0-9a-f]{24}\)"
POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0)
NOT_GRANTED = "This call has not been granted"


@pytest.fixture
def api(fleet):
    """A simulated APIv6 of its own for each test, so that no queued fault outlives it."""
    with running_api(fleet) as thread:
        yield thread


def retrying(client, sleeps=None):
    return RetryingClient(
        client,
        rate_limiter=None,
        policy=POLICY,
        sleep=(sleeps if sleeps is not None else []).append,
        uniform=lambda: 0.0,
    )


def walk(client, **options):
    return snapshot_inventory(client, None, snapshot_at=SERVER_NOW, **options)


@pytest.mark.parametrize(
    "offset",
    [dt.timedelta(hours=-5), dt.timedelta(minutes=47), dt.timedelta(days=2, hours=3)],
    ids=["5h-behind", "47min-ahead", "2days-ahead"],
)
def test_clock_skew_corrected_by_auth_time(fleet, offset):
    server_clock = SimulatorClock()
    server_clock.advance(seconds=offset.total_seconds())
    with running_api(fleet, clock=server_clock) as api:
        client = retrying(client_for(api))
        snapshot_at = api_server_time(client)
        snapshot = walk(client)
        auth_time_calls = api_server(api).counters.count("GET /auth/time")
    assert abs((snapshot_at - server_clock.now()).total_seconds()) < 5
    assert snapshot_at.date() == (dt.datetime.now(dt.UTC) + offset).date()
    assert snapshot.stats.objects["vms"] == 58
    assert auth_time_calls == 1


def test_client_without_auth_time_rejected(fleet):
    server_clock = SimulatorClock()
    server_clock.advance(seconds=3600)
    with running_api(fleet, clock=server_clock) as api:
        client = client_for(api)
        # python-ovh then signs with the local clock, an hour behind the server's.
        client._time_delta = 0
        with pytest.raises(ovh.BadParametersError) as raw:
            client.get("/dedicatedCloud")
        with pytest.raises(OvhRequestError) as caught:
            walk(retrying(client))
    assert raw.value.response.json() == {
        "message": "Query out of time",
        "httpCode": "400 Bad Request",
        "errorCode": "QUERY_TIME_OUT",
    }
    assert re.fullmatch(
        rf"GET /dedicatedCloud failed with BadParametersError: Query out of time {QUERY_ID}; "
        rf"APIv6 at {api.url}/1.0/dedicatedCloud found the request timestamp too far from its "
        r"clock\. python-ovh corrects the local clock with GET /auth/time once per client, so "
        r"the local clock moved during the run: synchronise it \(NTP\) and run again",
        str(caught.value),
    )


def test_wrong_secret_names_endpoint_and_keys(api):
    wrong = dataclasses.replace(CREDENTIALS, application_secret="WrongSecretWrongSecretWrong00001")
    with pytest.raises(OvhRequestError) as caught:
        walk(retrying(client_for(api, wrong)))
    message = str(caught.value)
    assert re.fullmatch(
        rf"GET /dedicatedCloud failed with BadParametersError: Invalid signature {QUERY_ID}; "
        rf"APIv6 at {api.url}/1.0/dedicatedCloud rejected the request signature: check that "
        r"OVH_APPLICATION_SECRET is the secret of OVH_APPLICATION_KEY, and that "
        r"OVH_CONSUMER_KEY was created for this application and validated",
        message,
    )
    for secret in (wrong.application_secret, CREDENTIALS.application_secret, wrong.consumer_key):
        assert secret not in message


def test_expired_consumer_key_asks_for_new_one(api):
    expired = dataclasses.replace(CREDENTIALS, consumer_key="ExpiredConsumerKeyExpiredKey0001")
    with pytest.raises(OvhRequestError) as caught:
        find_user_id(retrying(client_for(api, expired)), SERVICE, "admin")
    message = str(caught.value)
    assert re.fullmatch(
        rf"GET {ROOT}/user failed with InvalidCredential: This credential is not valid "
        rf"{QUERY_ID}; APIv6 at {api.url}/1.0{ROOT}/user\?name=admin rejected the consumer key "
        r"\(OVH_CONSUMER_KEY\): it has expired or was revoked\. Create a new consumer key with "
        r"the access rules the pipeline needs, validate it, and set OVH_CONSUMER_KEY",
        message,
    )
    assert expired.consumer_key not in message


def test_unknown_application_key_named(api):
    unknown = dataclasses.replace(CREDENTIALS, application_key="UnknownAppKey001")
    with pytest.raises(OvhRequestError) as caught:
        walk(retrying(client_for(api, unknown)))
    assert str(caught.value).endswith(
        f"APIv6 at {api.url}/1.0/dedicatedCloud does not know the application key: check "
        "OVH_APPLICATION_KEY, and that the application was created on the API of OVH_ENDPOINT"
    )


@pytest.mark.parametrize(
    ("target", "path_pattern", "rule", "batch"),
    [
        ("/dedicatedCloud", "/dedicatedCloud", "GET /dedicatedCloud", "auto"),
        (ROOT, "/dedicatedCloud/[^/]+", "GET /dedicatedCloud/*", "auto"),
        (
            f"{ROOT}/datacenter",
            "/dedicatedCloud/[^/]+/datacenter",
            "GET /dedicatedCloud/*/datacenter",
            "auto",
        ),
        (
            f"{ROOT}/datacenter/1201",
            r"/dedicatedCloud/[^/]+/datacenter/\d+",
            "GET /dedicatedCloud/*/datacenter/*",
            "auto",
        ),
        (
            f"{ROOT}/datacenter/1201/filer",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/filer",
            "GET /dedicatedCloud/*/datacenter/*/filer",
            "auto",
        ),
        (
            f"{ROOT}/datacenter/1201/filer/4101,4102?batch=,",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/filer/[\d,]+",
            "GET /dedicatedCloud/*/datacenter/*/filer/*",
            "always",
        ),
        (
            f"{ROOT}/datacenter/1201/host",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/host",
            "GET /dedicatedCloud/*/datacenter/*/host",
            "auto",
        ),
        (
            f"{ROOT}/datacenter/1201/host/3101",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/host/\d+",
            "GET /dedicatedCloud/*/datacenter/*/host/*",
            "never",
        ),
        (
            f"{ROOT}/datacenter/1201/vm",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/vm",
            "GET /dedicatedCloud/*/datacenter/*/vm",
            "auto",
        ),
        (
            f"{ROOT}/datacenter/1201/vm/5002",
            r"/dedicatedCloud/[^/]+/datacenter/\d+/vm/\d+",
            "GET /dedicatedCloud/*/datacenter/*/vm/*",
            "never",
        ),
        (f"{ROOT}/filer", "/dedicatedCloud/[^/]+/filer", "GET /dedicatedCloud/*/filer", "auto"),
    ],
    ids=[
        "services",
        "service",
        "datacenters",
        "datacenter",
        "filers",
        "filer-batch",
        "hosts",
        "host",
        "vms",
        "vm",
        "global-filers",
    ],
)
def test_not_granted_walk_call_names_rule(api, target, path_pattern, rule, batch):
    api_server(api).faults.force(
        ForcedApiResponse(403, NOT_GRANTED, "NOT_GRANTED_CALL", method="GET", path=path_pattern)
    )
    with pytest.raises(OvhNotGrantedError) as caught:
        walk(retrying(client_for(api)), batch=batch)
    error = caught.value
    assert (error.method, error.path, error.rule) == ("GET", target, rule)
    assert re.fullmatch(
        rf"GET {re.escape(target)} failed with NotGrantedCall: {NOT_GRANTED} {QUERY_ID}; the "
        rf"consumer key has no access rule for this call: add the rule {re.escape(rule)} to "
        r"the consumer key \(request a new consumer key whose access rules include it, "
        r"validate it, and set OVH_CONSUMER_KEY\)",
        str(error),
    )


@pytest.mark.parametrize(
    ("path_pattern", "target", "rule"),
    [
        (f"{ROOT}/user", f"{ROOT}/user", "GET /dedicatedCloud/*/user"),
        (rf"{ROOT}/user/\d+", f"{ROOT}/user/2101", "GET /dedicatedCloud/*/user/*"),
    ],
    ids=["user-list", "user"],
)
def test_not_granted_user_call_names_rule(api, path_pattern, target, rule):
    api_server(api).faults.force(
        ForcedApiResponse(403, NOT_GRANTED, "NOT_GRANTED_CALL", method="GET", path=path_pattern)
    )
    with pytest.raises(OvhNotGrantedError) as caught:
        find_user_id(retrying(client_for(api)), SERVICE, "admin")
    assert caught.value.rule == rule
    assert str(caught.value).startswith(
        f"GET {target} failed with NotGrantedCall: {NOT_GRANTED} (OVH query id "
    )
    assert str(caught.value).endswith(
        f"add the rule {rule} to the consumer key (request a new consumer key whose access "
        "rules include it, validate it, and set OVH_CONSUMER_KEY)"
    )


def test_not_granted_token_route_falls_back(api):
    api_server(api).faults.force(
        ForcedApiResponse(
            403, NOT_GRANTED, "NOT_GRANTED_CALL", method="POST", path=r".*/metricsToken"
        )
    )
    token = fetch_metrics_token(retrying(client_for(api)), SERVICE, 2101)
    assert token.route == "getVscopeMetricsToken"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dedicatedCloud", "GET /dedicatedCloud"),
        (f"{ROOT}/user?name=admin", "GET /dedicatedCloud/*/user"),
        (f"{ROOT}/datacenter/1201/vm/5001,5002?batch=,", "GET /dedicatedCloud/*/datacenter/*/vm/*"),
        # A service named like a collection is still an id.
        ("/dedicatedCloud/vm/datacenter/7/host", "GET /dedicatedCloud/*/datacenter/*/host"),
    ],
)
def test_access_rule_of_target(target, expected):
    assert access_rule("GET", target) == expected


TRANSIENT_CALLS = [
    "/dedicatedCloud",
    "/dedicatedCloud/[^/]+",
    "/dedicatedCloud/[^/]+/datacenter",
    r"/dedicatedCloud/[^/]+/datacenter/\d+",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/filer",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/filer/[\d,]+",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/host",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/host/[\d,]+",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/vm",
    r"/dedicatedCloud/[^/]+/datacenter/\d+/vm/[\d,]+",
    "/dedicatedCloud/[^/]+/filer",
    r"/dedicatedCloud/[^/]+/filer/[\d,]+",
]


@pytest.mark.parametrize("path_pattern", TRANSIENT_CALLS)
def test_429_and_5xx_on_each_call_retried(api, path_pattern):
    faults = api_server(api).faults
    faults.force(
        too_many_requests(retry_after=2, method="GET", path=path_pattern),
        server_error(500, method="GET", path=path_pattern),
    )
    sleeps: list[float] = []
    snapshot = walk(retrying(client_for(api), sleeps), batch="always")
    assert dict(snapshot.stats.objects) == {"datacenters": 2, "filers": 5, "hosts": 6, "vms": 58}
    assert faults.pending() == 0
    # Both faults hit the first matching request: its Retry-After, then the second backoff.
    assert snapshot.stats.retries == 2
    assert sleeps == [2.0, 1.0]


def test_user_and_token_calls_retried(api):
    faults = api_server(api).faults
    faults.force(
        server_error(502, path=f"{ROOT}/user"),
        too_many_requests(retry_after=1, path=rf"{ROOT}/user/\d+"),
        server_error(503, method="POST"),
    )
    sleeps: list[float] = []
    client = retrying(client_for(api), sleeps)
    user_id = find_user_id(client, SERVICE, "admin")
    token = fetch_metrics_token(client, SERVICE, user_id)
    assert token.route == "metricsToken"
    assert sleeps == [0.5, 1.0, 0.5]
    assert faults.pending() == 0


def test_exhausted_retries_name_the_call(api):
    vms = rf"{ROOT}/datacenter/1201/vm/[\d,]+"
    api_server(api).faults.force(*[server_error(503, path=vms)] * 3)
    with pytest.raises(OvhRetriesExhaustedError) as caught:
        walk(retrying(client_for(api)), batch="always")
    assert re.fullmatch(
        rf"GET {api.url}/1\.0{ROOT}/datacenter/1201/vm/[\d,]+\?batch=, failed: HTTP 503 "
        r"Service Unavailable: The service is temporarily unavailable, retry later "
        rf"{QUERY_ID}; gave up after 3 attempts\. APIv6 or a gateway in front of it is "
        r"failing: run again later",
        str(caught.value),
    )
    assert caught.value.path.startswith(f"{ROOT}/datacenter/1201/vm/5002,")


def test_exhausted_429_on_token_names_route(api):
    api_server(api).faults.force(*[too_many_requests(retry_after=1, method="POST")] * 3)
    with pytest.raises(OvhRetriesExhaustedError) as caught:
        fetch_metrics_token(retrying(client_for(api)), SERVICE, 2101)
    assert re.fullmatch(
        rf"POST {api.url}/1\.0{ROOT}/user/2101/metricsToken failed: HTTP 429 Too Many "
        rf"Requests: Too many requests, retry later {QUERY_ID}; gave up after 3 attempts\. "
        r"APIv6 limits the request rate of this consumer key: lower the client rate limit, or "
        r"run again later",
        str(caught.value),
    )


@pytest.mark.parametrize(
    ("kind", "entity", "object_id", "path"),
    [
        ("datacenters", "datacenter", 1202, f"{ROOT}/datacenter/1202"),
        ("filers", "filer", 4101, f"{ROOT}/datacenter/1201/filer/4101"),
        ("hosts", "host", 3102, f"{ROOT}/datacenter/1201/host/3102"),
    ],
)
def test_object_gone_between_list_and_get(api, kind, entity, object_id, path):
    reference = walk(retrying(client_for(api)), batch="never")
    api_server(api).faults.force(
        ForcedApiResponse(
            404,
            f"The requested object ({entity}Id = {object_id}) does not exist",
            "Client::NotFound",
            path=re.escape(path),
        )
    )
    snapshot = walk(retrying(client_for(api)), batch="never")
    (skipped,) = snapshot.stats.skipped_not_found[kind]
    assert str(skipped) == path
    assert snapshot.stats.objects[kind] == reference.stats.objects[kind] - 1
    assert snapshot.stats.retries == 0
