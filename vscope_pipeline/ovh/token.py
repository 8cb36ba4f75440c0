"""The vScope metrics read token of a dedicatedCloud user, and the lookup of that user by login.

OVHcloud's API schema documented the token call as
`POST /dedicatedCloud/{serviceName}/user/{userId}/metricsToken` from 2020 to 2023; its 2019
vScope guide named it `.../getVscopeMetricsToken`. Both are tried, in that order, and the
second also when the consumer key may not call the first. The token is
held in a `Secret` and never written to logs, exception messages or reprs.

Every call goes through a RetryingClient (retries of 429, 5xx and timeouts, and the rate
limit). The token POST is retried like a GET, because it returns the current token and
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ovh

from vscope_pipeline.ovh.errors import (
    OvhResponseError,
    access_rule,
    error_text,
    request_failed,
)
from vscope_pipeline.ovh.retrying import RetryingClient, retrying_client
from vscope_pipeline.secrets import Secret

log = logging.getLogger(__name__)

TOKEN_ROUTES: tuple[str, ...] = ("metricsToken", "getVscopeMetricsToken")

# How many user names an error message lists before "and N more".
_LISTED_USERS = 20


class TokenError(RuntimeError):
    """The vScope metrics token could not be obtained."""


class UserNotFoundError(TokenError, LookupError):
    """No user of the service has the requested login."""


class TokenUnavailableError(TokenError):
    """Neither token route exists for this account."""


class TokenNotGrantedError(TokenError):
    """The consumer key allows neither token call, or only one that returned 404."""


@dataclass(frozen=True)
class MetricsToken:
    """A vScope metrics read token and the endpoints it is valid for.

    `route` is the APIv6 call that returned it (`metricsToken` or `getVscopeMetricsToken`).
    """

    token: Secret
    opentsdb_endpoint: str
    warp_endpoint: str | None
    route: str


def find_user_id(client: ovh.Client | RetryingClient, service_name: str, login: str) -> int:
    """Return the id of the user of `service_name` whose name (or login) is exactly `login`.

    `GET .../user?name=` is a "like" filter, so each returned user is read to find the exact
    match. Raises UserNotFoundError listing the service's user names when none matches.
    """
    api = retrying_client(client)
    users_path = f"/dedicatedCloud/{service_name}/user"
    candidates = _get_ids(api, users_path, name=login)
    for user_id in candidates:
        user = _get_user(api, f"{users_path}/{user_id}")
        if user is not None and login in (user.get("name"), user.get("login")):
            log.info("dedicatedCloud user %r of %s has id %d", login, service_name, user_id)
            return user_id

    names = _user_names(api, users_path)
    if not names:
        choice = "the service has no users: create one, or set VSCOPE_USER_ID"
    else:
        listed = ", ".join(names[:_LISTED_USERS])
        if len(names) > _LISTED_USERS:
            listed += f" and {len(names) - _LISTED_USERS} more"
        choice = f"set it to one of {listed}"
    raise UserNotFoundError(
        f"VSCOPE_USER_LOGIN {login!r} not found among users of {service_name}: {choice}"
    )


def fetch_metrics_token(
    client: ovh.Client | RetryingClient, service_name: str, user_id: int
) -> MetricsToken:
    """Ask APIv6 for the vScope metrics token of user `user_id` of `service_name`.

    Tries `POST .../metricsToken`, then `POST .../getVscopeMetricsToken` when the first returns
    404 or 403 NOT_GRANTED_CALL. Raises TokenUnavailableError when both return 404,
    TokenNotGrantedError, naming the access rule to add, when neither gives a token and the
    consumer key does not allow at least one of them, and OvhRequestError for other API errors
    (OvhRetriesExhaustedError when transient failures outlast the retries).
    """
    api = retrying_client(client)
    user_path = f"/dedicatedCloud/{service_name}/user/{user_id}"
    # Why each route gave no token, and the access rules of the routes the key may not call.
    outcomes: list[str] = []
    missing_rules: list[str] = []
    for route in TOKEN_ROUTES:
        path = f"{user_path}/{route}"
        try:
            response = api.post(path, idempotent=True)
        except ovh.ResourceNotFoundError as error:
            log.info("POST %s returned 404: %s", path, error_text(error))
            message = str(error.args[0]).strip() if error.args else "no message"
            outcomes.append(f"{route}: {message}")
            continue
        except ovh.NotGrantedCall as error:
            # The key may still allow the other route, so it is tried as after a 404.
            log.info("POST %s is not granted: %s", path, error_text(error))
            outcomes.append(f"{route}: not granted (403 NOT_GRANTED_CALL)")
            missing_rules.append(access_rule("POST", path))
            continue
        except ovh.APIError as error:
            raise request_failed("POST", path, error) from error

        token = _parse_token(path, route, response)
        log.info(
            "vScope metrics token of user %d of %s obtained with POST %s (OpenTSDB endpoint %s)",
            user_id,
            service_name,
            route,
            token.opentsdb_endpoint,
        )
        return token

    routes = f"POST {user_path}/metricsToken and POST {user_path}/getVscopeMetricsToken"
    details = "; ".join(outcomes)
    if missing_rules:
        raise TokenNotGrantedError(
            f"no vScope metrics token for user {user_id} of {service_name}: {routes} gave no "
            f"token ({details}). Add the access rule {missing_rules[0]} to the consumer key "
            "(request a new consumer key whose access rules include it, validate it, and set "
            "OVH_CONSUMER_KEY), or set VSCOPE_OPENTSDB_URL and VSCOPE_OPENTSDB_TOKEN to use an "
            "OpenTSDB endpoint and token directly"
        )
    raise TokenUnavailableError(
        f"no vScope metrics token for user {user_id} of {service_name}: {routes} both returned "
        f"404 ({details}), so both routes are missing on this account; set "
        "VSCOPE_OPENTSDB_URL and VSCOPE_OPENTSDB_TOKEN to use an OpenTSDB endpoint and token "
        "directly"
    )


def _parse_token(path: str, route: str, response: object) -> MetricsToken:
    # The response contains the token, so messages name its fields and types, never its values.
    if not isinstance(response, Mapping):
        raise OvhResponseError(
            f"POST {path} returned a JSON {type(response).__name__}, expected an object with "
            "token, opentsdbEndpoint and warpEndpoint"
        )
    token = response.get("token")
    if not isinstance(token, str) or not token:
        raise OvhResponseError(
            f"POST {path} returned no token (fields present: {', '.join(sorted(response))}), "
            "expected a non-empty string in 'token'"
        )
    endpoint = response.get("opentsdbEndpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise OvhResponseError(
            f"POST {path} returned opentsdbEndpoint {endpoint!r}, expected an http(s) URL; "
            "set VSCOPE_OPENTSDB_URL to give the endpoint directly"
        )
    warp = response.get("warpEndpoint")
    return MetricsToken(
        token=Secret(token),
        opentsdb_endpoint=endpoint.rstrip("/"),
        warp_endpoint=warp if isinstance(warp, str) and warp else None,
        route=route,
    )


def _get_ids(api: RetryingClient, path: str, **query: str) -> list[int]:
    try:
        response = api.get(path, query=query)
    except ovh.APIError as error:
        raise request_failed("GET", path, error) from error
    if not isinstance(response, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in response
    ):
        raise OvhResponseError(f"GET {path} returned {response!r:.80}, expected an array of ids")
    return sorted(set(response))


def _get_user(api: RetryingClient, path: str) -> Mapping[str, Any] | None:
    try:
        response = api.get(path)
    except ovh.ResourceNotFoundError:
        # Listed a moment ago and deleted since.
        return None
    except ovh.APIError as error:
        raise request_failed("GET", path, error) from error
    if not isinstance(response, Mapping):
        raise OvhResponseError(f"GET {path} returned {response!r:.80}, expected a user object")
    return response


def _user_names(api: RetryingClient, users_path: str) -> list[str]:
    names = []
    for user_id in _get_ids(api, users_path):
        user = _get_user(api, f"{users_path}/{user_id}")
        if user is not None and isinstance(user.get("name"), str):
            names.append(user["name"])
    return sorted(names)
