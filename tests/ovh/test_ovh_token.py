"""User lookup and the vScope metrics token, with the real python-ovh client and simulated APIv6."""

import dataclasses
import logging
import re

import pytest
from ovh_sim import CREDENTIALS, OPENTSDB_URL, client_for, running_api

from vscope_pipeline.ovh.reader import OvhRequestError
from vscope_pipeline.ovh.token import (
    MetricsToken,
    TokenNotGrantedError,
    TokenUnavailableError,
    UserNotFoundError,
    fetch_metrics_token,
    find_user_id,
)
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.credentials import AccessRule

SERVICE = "pcc-203-0-113-10"
TOKEN_TEXT = CREDENTIALS.metrics_token


@pytest.mark.parametrize("login", ["admin", "netadmin", "reporting"])
def test_find_user_id_exact_match(client, fleet, login):
    # The "like" filter returns both admin and netadmin for "admin".
    assert find_user_id(client, SERVICE, login) == fleet.user(login).user_id


def test_unknown_login_lists_users(client):
    with pytest.raises(UserNotFoundError) as caught:
        find_user_id(client, SERVICE, "admn")
    assert str(caught.value) == (
        "VSCOPE_USER_LOGIN 'admn' not found among users of pcc-203-0-113-10: set it to one of "
        "admin, netadmin, reporting"
    )


def test_login_substring_is_not_a_match(client):
    with pytest.raises(UserNotFoundError, match=r"^VSCOPE_USER_LOGIN 'adm' not found"):
        find_user_id(client, SERVICE, "adm")


def test_user_lookup_on_unknown_service(client):
    with pytest.raises(OvhRequestError) as caught:
        find_user_id(client, "pcc-192-0-2-1", "admin")
    assert re.fullmatch(
        r"GET /dedicatedCloud/pcc-192-0-2-1/user failed with ResourceNotFoundError: This "
        r"service does not exist \(OVH query id EU\.ext-sim\.[0-9a-f]{24}\)",
        str(caught.value),
    )


def test_token_from_metrics_token_route(client, fleet):
    token = fetch_metrics_token(client, SERVICE, fleet.user("admin").user_id)
    assert token.route == "metricsToken"
    assert token.token.reveal() == TOKEN_TEXT
    assert token.opentsdb_endpoint == OPENTSDB_URL
    assert token.warp_endpoint == OPENTSDB_URL


def test_token_from_older_route(fleet):
    with running_api(fleet, token_routes=("getVscopeMetricsToken",)) as api:
        token = fetch_metrics_token(client_for(api), SERVICE, fleet.user("admin").user_id)
    assert token.route == "getVscopeMetricsToken"
    assert token.token == Secret(TOKEN_TEXT)
    assert token.opentsdb_endpoint == OPENTSDB_URL


def test_both_routes_missing(fleet):
    with running_api(fleet, token_routes=()) as api, pytest.raises(TokenUnavailableError) as caught:
        fetch_metrics_token(client_for(api), SERVICE, 2101)
    assert str(caught.value) == (
        "no vScope metrics token for user 2101 of pcc-203-0-113-10: POST "
        "/dedicatedCloud/pcc-203-0-113-10/user/2101/metricsToken and POST "
        "/dedicatedCloud/pcc-203-0-113-10/user/2101/getVscopeMetricsToken both returned 404 "
        "(metricsToken: Got an invalid (or empty) URL; getVscopeMetricsToken: Got an invalid "
        "(or empty) URL), so both routes are missing on this account; set VSCOPE_OPENTSDB_URL "
        "and VSCOPE_OPENTSDB_TOKEN to use an OpenTSDB endpoint and token directly"
    )


def test_unknown_user_reports_both_answers(client):
    with pytest.raises(TokenUnavailableError) as caught:
        fetch_metrics_token(client, SERVICE, 999)
    assert (
        "(metricsToken: The requested object (userId = 999) does not exist; "
        "getVscopeMetricsToken: The requested object (userId = 999) does not exist)"
    ) in str(caught.value)


def test_not_granted_names_path(fleet):
    read_only = dataclasses.replace(CREDENTIALS, access_rules=(AccessRule("GET", "/*"),))
    with running_api(fleet, read_only) as api, pytest.raises(TokenNotGrantedError) as caught:
        fetch_metrics_token(client_for(api, read_only), SERVICE, 2101)
    assert str(caught.value) == (
        "no vScope metrics token for user 2101 of pcc-203-0-113-10: POST "
        "/dedicatedCloud/pcc-203-0-113-10/user/2101/metricsToken and POST "
        "/dedicatedCloud/pcc-203-0-113-10/user/2101/getVscopeMetricsToken gave no token "
        "(metricsToken: not granted (403 NOT_GRANTED_CALL); getVscopeMetricsToken: not granted "
        "(403 NOT_GRANTED_CALL)). Add the access rule POST /dedicatedCloud/*/user/*/metricsToken "
        "to the consumer key (request a new consumer key whose access rules include it, "
        "validate it, and set OVH_CONSUMER_KEY), or set VSCOPE_OPENTSDB_URL and "
        "VSCOPE_OPENTSDB_TOKEN to use an OpenTSDB endpoint and token directly"
    )


def test_not_granted_route_falls_back(fleet):
    rules = (
        AccessRule("GET", "/*"),
        AccessRule("POST", "/dedicatedCloud/*/user/*/getVscopeMetricsToken"),
    )
    credentials = dataclasses.replace(CREDENTIALS, access_rules=rules)
    with running_api(fleet, credentials) as api:
        token = fetch_metrics_token(client_for(api, credentials), SERVICE, 2101)
    assert token.route == "getVscopeMetricsToken"
    assert token.token.reveal() == TOKEN_TEXT


def test_not_granted_then_404_names_rule(fleet):
    rules = (AccessRule("GET", "/*"), AccessRule("POST", "/dedicatedCloud/*/user/*/metricsToken"))
    credentials = dataclasses.replace(CREDENTIALS, access_rules=rules)
    with (
        running_api(fleet, credentials, token_routes=("getVscopeMetricsToken",)) as api,
        pytest.raises(TokenNotGrantedError) as caught,
    ):
        fetch_metrics_token(client_for(api, credentials), SERVICE, 2101)
    assert "(metricsToken: Got an invalid (or empty) URL; getVscopeMetricsToken: not granted " in (
        str(caught.value)
    )
    assert (
        "Add the access rule POST /dedicatedCloud/*/user/*/getVscopeMetricsToken to the "
        "consumer key"
    ) in str(caught.value)


def test_token_text_never_shown(fleet, caplog):
    with caplog.at_level(logging.DEBUG), running_api(fleet) as api:
        client = client_for(api)
        token = fetch_metrics_token(client, SERVICE, find_user_id(client, SERVICE, "admin"))
    displayed = [repr(token), str(token), f"{token}", repr(token.token), str(token.token)]
    displayed.append(f"{token.token}")
    for text in displayed:
        assert TOKEN_TEXT not in text
    assert repr(token.token) == "Secret('***')"
    assert repr(token) == (
        "MetricsToken(token=Secret('***'), opentsdb_endpoint='http://127.0.0.1:4242', "
        "warp_endpoint='http://127.0.0.1:4242', route='metricsToken')"
    )
    assert caplog.records
    for record in caplog.records:
        assert TOKEN_TEXT not in record.getMessage()
    assert TOKEN_TEXT not in caplog.text


def test_token_absent_from_errors(fleet):
    with running_api(fleet, token_routes=()) as api, pytest.raises(TokenUnavailableError) as caught:
        fetch_metrics_token(client_for(api), SERVICE, 2101)
    assert TOKEN_TEXT not in str(caught.value)
    assert TOKEN_TEXT not in repr(caught.value)


def test_metrics_token_is_frozen():
    token = MetricsToken(Secret("t"), "https://opentsdb.example", None, "metricsToken")
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.route = "other"
