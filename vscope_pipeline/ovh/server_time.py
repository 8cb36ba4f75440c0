"""The current time of OVH APIv6, as python-ovh measures it to sign requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import ovh

from vscope_pipeline.ovh.retrying import RetryingClient, retrying_client


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def api_server_time(
    client: ovh.Client | RetryingClient,
    *,
    local_now: Callable[[], dt.datetime] = _utc_now,
) -> dt.datetime:
    """Return APIv6's current time in UTC, to the second: local time plus python-ovh's offset.

    The offset is python-ovh's `time_delta` (server time minus local time, in seconds), read
    from `GET /auth/time` on the client's first call and cached by the client, so this adds no
    request to a client that has already called APIv6. A snapshot stamped with this time is
    dated by the API's clock, even when the local clock is wrong. `local_now` must return an
    aware datetime. Raises the errors of `RetryingClient.get` when `/auth/time` fails.
    """
    local = local_now()
    if local.tzinfo is None:
        raise ValueError(
            f"local_now returned the naive datetime {local.isoformat()}: expected an aware "
            "datetime, such as datetime.now(UTC)"
        )
    offset = dt.timedelta(seconds=retrying_client(client).time_delta())
    return (local + offset).astimezone(dt.UTC).replace(microsecond=0)
