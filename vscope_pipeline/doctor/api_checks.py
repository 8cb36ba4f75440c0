"""Doctor checks of OVH APIv6 and OpenTSDB: settings, clock, access rules, token, one query.

They make the calls an ingest makes first, with the same clients and settings, and change
nothing: `GET /auth/time`, `GET /auth/currentCredential`, `GET /dedicatedCloud`, the token POST,
which returns the current token, and one OpenTSDB query of one metric over the last hour.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import ovh

from vscope_pipeline.defs.resources import OpenTSDBResource, OvhApiResource
from vscope_pipeline.doctor.result import CheckResult
from vscope_pipeline.opentsdb.errors import OpenTSDBError
from vscope_pipeline.ovh.access_rules import REQUIRED_ACCESS_RULES, missing_access_rules
from vscope_pipeline.ovh.errors import OvhRequestError, OvhResponseError, request_failed
from vscope_pipeline.ovh.retrying import RetryingClient
from vscope_pipeline.ovh.token import TokenError
from vscope_pipeline.settings import Settings, SettingsError, load_settings

# Clock offsets to OVH's /auth/time, in seconds. python-ovh signs with the server's time
# whatever the offset, but `ingest` dates "the last complete UTC day" by the local clock, so a
# clock minutes off can fetch a day that has not ended on OVH's side.
CLOCK_WARN_SECONDS = 5
CLOCK_FAIL_SECONDS = 60

# The metric and window of the OpenTSDB probe: one host metric, whole fleet, last hour.
PROBE_METRIC = "vscope.host.cpu.usage.perc"
PROBE_WINDOW = dt.timedelta(hours=1)

CURRENT_CREDENTIAL_PATH = "/auth/currentCredential"
NTP_FIX = (
    "synchronise the local clock with NTP (for example `timedatectl set-ntp true`, or chrony), "
    "then run doctor again"
)


def check_configuration() -> tuple[CheckResult, Settings | None]:
    try:
        settings = load_settings()
    except SettingsError as error:
        count = len(error.problems)
        return CheckResult(
            "FAIL",
            "configuration",
            f"invalid configuration ({count} problem{'s' * (count > 1)})",
            "set the variables named above (the README's Configuration table lists them)",
            items=tuple(error.problems),
        ), None
    services = ", ".join(settings.service_names) if settings.service_names else "every service"
    if settings.user_id is not None:
        user = f"user id {settings.user_id}"
    else:
        user = f"user login {settings.user_login}"
    return CheckResult.ok(
        "configuration",
        f"settings loaded: endpoint {settings.ovh.endpoint}, services: {services}, {user}, "
        f"data folder {settings.data_dir}",
    ), settings


def check_clock(client: RetryingClient) -> CheckResult:
    """Compare the local clock with OVH's `GET /auth/time`."""
    try:
        offset = client.time_delta()
    except (ovh.APIError, OvhRequestError) as error:
        # GET /auth/time needs no key, so its failure means APIv6 cannot be reached.
        detail = str(error) if isinstance(error, OvhRequestError) else f"GET /auth/time: {error}"
        return CheckResult(
            "FAIL",
            "clock",
            detail,
            "check OVH_ENDPOINT and that this machine reaches it (proxy, firewall)",
            blocking=True,
        )
    direction = "behind" if offset > 0 else "ahead of"
    detail = f"local clock {abs(offset)} s {direction} OVH's GET /auth/time"
    if offset == 0:
        detail = "local clock within 1 s of OVH's GET /auth/time"
    if abs(offset) > CLOCK_FAIL_SECONDS:
        return CheckResult.fail("clock", f"{detail} (more than {CLOCK_FAIL_SECONDS} s)", NTP_FIX)
    if abs(offset) > CLOCK_WARN_SECONDS:
        return CheckResult.warn("clock", f"{detail} (more than {CLOCK_WARN_SECONDS} s)", NTP_FIX)
    return CheckResult.ok("clock", detail)


def check_access_rules(client: RetryingClient, settings: Settings) -> CheckResult:
    """Check the consumer key's state and rules, from `GET /auth/currentCredential`."""
    name = "access rules"
    if settings.ovh.client_id:
        return CheckResult.ok(
            name, "skipped: an OAuth2 service account has IAM policies, not access rules"
        )
    try:
        credential = client.get(CURRENT_CREDENTIAL_PATH)
    except ovh.APIError as error:
        failure = request_failed("GET", CURRENT_CREDENTIAL_PATH, error)
        return CheckResult.fail(
            name, str(failure), "fix the consumer key or application keys named above"
        )
    except OvhRequestError as error:
        return CheckResult.fail(
            name, str(error), "check that OVH_ENDPOINT is reachable, then run again"
        )
    if not isinstance(credential, dict) or not isinstance(credential.get("rules"), list):
        return CheckResult.fail(
            name,
            f"GET {CURRENT_CREDENTIAL_PATH} returned {str(credential)[:80]!r}, expected an "
            "auth.ApiCredential object with rules",
        )
    key = f"consumer key with credential id {credential.get('credentialId')}"
    status = credential.get("status")
    if status != "validated":
        return CheckResult.fail(
            name,
            f"{key} has status {status!r}, expected 'validated'",
            "validate the consumer key at the validation URL OVH returned when it was "
            "requested, or request a new one, and set OVH_CONSUMER_KEY",
        )
    rules = [
        (str(rule.get("method")), str(rule.get("path")))
        for rule in credential["rules"]
        if isinstance(rule, dict)
    ]
    required = list(REQUIRED_ACCESS_RULES)
    if settings.opentsdb_url and settings.opentsdb_token:
        # The token is given, so neither token route is called.
        required = [rule for rule in required if rule.method == "GET"]
    missing = missing_access_rules(rules, required)
    needed = [rule for rule in missing if not rule.optional]
    expiry = credential.get("expiration") or "never"
    if needed:
        listed = ", ".join(rule.text for rule in needed)
        return CheckResult.fail(
            name,
            f"{key} (expires {expiry}) misses {len(needed)} rule(s): {listed}",
            f"request a new consumer key whose access rules include {listed}, validate it, "
            "and set OVH_CONSUMER_KEY",
        )
    optional = "".join(f"; no {rule.text} (optional fallback)" for rule in missing)
    return CheckResult.ok(
        name, f"{key} (expires {expiry}) allows every call the pipeline makes{optional}"
    )


def check_token(api: OvhApiResource, settings: Settings, service: str) -> CheckResult:
    name = f"metrics token of {service}"
    if settings.opentsdb_url and settings.opentsdb_token:
        return CheckResult.ok(
            name, "skipped: VSCOPE_OPENTSDB_URL and VSCOPE_OPENTSDB_TOKEN are set"
        )
    try:
        token = api.metrics_token(service)
    except (TokenError, OvhRequestError, OvhResponseError) as error:
        return CheckResult.fail(name, str(error), _token_fix(error))
    return CheckResult.ok(
        name,
        f"obtained with POST .../{token.route}; OpenTSDB endpoint {token.opentsdb_endpoint}",
    )


def _token_fix(error: Exception) -> str:
    # A rejected signature or key carries its own advice, and only a missing service or user
    # points to these two settings.
    if not isinstance(error, TokenError) and isinstance(error.__cause__, ovh.ResourceNotFoundError):
        return "check the service name in VSCOPE_SERVICE_NAMES and the user in VSCOPE_USER_LOGIN"
    return "follow the advice in the message above"


def check_opentsdb(
    opentsdb: OpenTSDBResource, service: str, now: Callable[[], float] = time.time
) -> CheckResult:
    """Send one small query: one metric over the last hour, downsampled to one point."""
    name = f"OpenTSDB query of {service}"
    end_ms = int(now()) * 1000
    body = {
        "start": end_ms - int(PROBE_WINDOW.total_seconds() * 1000),
        "end": end_ms,
        "queries": [{"metric": PROBE_METRIC, "aggregator": "max", "downsample": "1h-max"}],
    }
    try:
        client = opentsdb.client_for(service)
        started = time.monotonic()
        response = client.query(body)
        seconds = time.monotonic() - started
    except (TokenError, OvhRequestError, OvhResponseError) as error:
        return CheckResult.fail(name, f"no client: {error}", "fix the metrics token check first")
    except OpenTSDBError as error:
        return CheckResult.fail(
            name, str(error), "check the OpenTSDB endpoint and token named above"
        )
    series: Any = json.loads(response.content or b"[]")
    points = sum(len(item.get("dps") or {}) for item in series if isinstance(item, dict))
    detail = (
        f"POST /api/query of {PROBE_METRIC} over the last hour returned {len(series)} "
        f"series, {points} point(s) in {seconds:.2f} s"
    )
    if not points:
        return CheckResult.warn(
            name,
            detail,
            "the token reads no recent host CPU point: check that VSCOPE_USER_LOGIN is a user "
            "of this service and that vScope shows graphs",
        )
    return CheckResult.ok(name, detail)


def service_names(client: RetryingClient, settings: Settings) -> tuple[list[str], CheckResult]:
    """Return the services to check: those of VSCOPE_SERVICE_NAMES, else every one listed.

    The list is read even when VSCOPE_SERVICE_NAMES is set, so that a misspelt name fails here
    with the names the account can list, not later as a missing user or token.
    """
    try:
        listed = client.get("/dedicatedCloud")
    except ovh.APIError as error:
        failure = request_failed("GET", "/dedicatedCloud", error)
        return [], CheckResult.fail(
            "services", str(failure), "follow the advice in the message above"
        )
    except OvhRequestError as error:
        return [], CheckResult.fail("services", str(error), "check that OVH_ENDPOINT is reachable")
    seen = [str(name) for name in listed] if isinstance(listed, list) else []
    if settings.service_names:
        names = list(settings.service_names)
        unknown = [name for name in names if name not in seen]
        if unknown:
            return [name for name in names if name in seen], CheckResult.fail(
                "services",
                f"{', '.join(unknown)} from VSCOPE_SERVICE_NAMES not found: the account sees "
                f"{', '.join(seen) or 'no service'}",
                "set VSCOPE_SERVICE_NAMES to services the account sees, or use the keys of the "
                "account that owns them",
            )
        return names, CheckResult.ok(
            "services", f"{len(names)} from VSCOPE_SERVICE_NAMES: {', '.join(names)}"
        )
    if not seen:
        return [], CheckResult.fail(
            "services",
            "GET /dedicatedCloud returned no service",
            "use the keys of the account that owns the Hosted Private Cloud",
        )
    return seen, CheckResult.ok("services", f"{len(seen)} seen by the account: {', '.join(seen)}")
