"""Fault injection for the simulated OVH APIv6: forced error responses, slow responses, and
objects whose fields differ from the documented model.

Tests and benchmarks change an `ApiFaults` object from another thread while the server runs.
They queue forced responses (a 429 with Retry-After, a burst of 503, the HTML page of a failing
gateway), delay one response past a client's read timeout, or delay every response. The
server's `RequestCounters` count forced responses under their route like real ones, and
`ApiFaults.taken()` counts the forced responses sent.

`ApiFaults.override` changes fields of one served object (an undocumented enum value, a missing
required field, a string where a number belongs) in single and batch GETs, until `clear()`.

Error bodies have APIv6's shape `{"message", "httpCode", "errorCode"}`.
NOTE: OVHcloud does not document the bodies of its 429 and 5xx responses. The messages and
error codes of the helper functions below are plausible stand-ins, not captured responses.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

from vscope_pipeline.simulator.ovh_auth import ApiFailure

_JSON = "application/json; charset=utf-8"

# The entities whose objects `ApiFaults.override` can change, as named in APIv6 paths.
OVERRIDABLE_ENTITIES = ("datacenter", "filer", "host", "vm", "user")


class _Removed:
    def __repr__(self) -> str:
        return "REMOVED"


# An override value that removes the field from the served object.
REMOVED: Any = _Removed()


@dataclass(frozen=True)
class ObjectOverride:
    """Field values that replace those of one served object: `entity` id `object_id`.

    `fields` maps OVH field names (top level) to the JSON values to send; `REMOVED` drops the
    field. The server applies it to every GET of that object, single or batch.
    """

    entity: str
    object_id: int
    fields: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.entity not in OVERRIDABLE_ENTITIES:
            raise ValueError(
                f"override entity {self.entity!r} is not valid: expected one of "
                f"{', '.join(OVERRIDABLE_ENTITIES)}"
            )

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return a copy of `data` with the overridden fields set or removed."""
        changed = dict(data)
        for name, value in self.fields.items():
            if value is REMOVED:
                changed.pop(name, None)
            else:
                changed[name] = value
        return changed


@dataclass(frozen=True)
class ForcedApiResponse:
    """A response the simulated APIv6 sends instead of the real one, or a delay before it.

    With `status` set, the server sleeps `delay_s` seconds, then sends that status with the
    OVH error body of `error_code` and `message`, or with `body` when it is given. With
    `status` None, it sleeps `delay_s` seconds, then serves the request normally. `headers`
    are added to the response and may replace its `X-Ovh-Queryid`. `method` and `path` (a
    regular expression matched against the whole API path without `/1.0`, such as
    `/dedicatedCloud/[^/]+`) select the requests it applies to; None matches any.
    """

    status: int | None
    message: str = ""
    error_code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = _JSON
    delay_s: float = 0.0
    method: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not _is_http_status(self.status):
            raise ValueError(
                f"forced status {self.status!r} is not an HTTP status: expected a code such "
                "as 429 or 503, or None to only delay the real response"
            )
        if self.delay_s < 0:
            raise ValueError(f"delay_s {self.delay_s!r} is invalid: expected seconds >= 0")
        if self.status is None and self.delay_s == 0:
            raise ValueError(
                "a forced response with status None only delays the real response: set "
                "delay_s to a positive number of seconds"
            )
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as error:
                raise ValueError(
                    f"path {self.path!r} is not a valid regular expression: {error}"
                ) from error

    def matches(self, method: str, api_path: str) -> bool:
        """Return True when this response applies to `method` on `api_path` (no `/1.0`)."""
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.fullmatch(self.path, api_path) is not None

    def encoded_body(self) -> bytes:
        """Return the bytes to send: `body`, or the OVH error body of the status."""
        if self.body is not None:
            return self.body
        assert self.status is not None
        return orjson.dumps(ApiFailure(self.status, self.error_code, self.message).body())


def _is_http_status(status: int) -> bool:
    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True


@dataclass
class ApiFaults:
    """Faults the simulated APIv6 injects into its responses.

    `delay_s` (seconds) is slept before every response. Plain attribute assignment is atomic in
    CPython, so it may be set from any thread; the queue has its own lock.
    """

    delay_s: float = 0.0
    _forced: list[ForcedApiResponse] = field(default_factory=list, repr=False)
    _taken: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _overrides: dict[tuple[str, int], ObjectOverride] = field(default_factory=dict, repr=False)

    def override(self, entity: str, object_id: int, **fields: Any) -> None:
        """Serve object `object_id` of `entity` with `fields` changed (`REMOVED` drops one).

        A second call for the same object adds to the fields of the first.
        """
        with self._lock:
            previous = self._overrides.get((entity, object_id))
            merged = {**(previous.fields if previous else {}), **fields}
            self._overrides[(entity, object_id)] = ObjectOverride(entity, object_id, merged)

    def overridden(self, entity: str, object_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Return `data` with the override of that object applied, or `data` when it has none."""
        with self._lock:
            found = self._overrides.get((entity, object_id))
        return data if found is None else found.apply(data)

    def force(self, *responses: ForcedApiResponse) -> None:
        """Queue responses; each goes to the next request it matches, in queue order."""
        with self._lock:
            self._forced.extend(responses)

    def take(self, method: str, api_path: str) -> ForcedApiResponse | None:
        """Remove and return the first queued response that matches the request, or None."""
        with self._lock:
            for index, forced in enumerate(self._forced):
                if forced.matches(method, api_path):
                    self._taken += 1
                    return self._forced.pop(index)
        return None

    def pending(self) -> int:
        """Return how many forced responses are still queued."""
        with self._lock:
            return len(self._forced)

    def taken(self) -> int:
        """Return how many forced responses requests have taken so far."""
        with self._lock:
            return self._taken

    def clear(self) -> None:
        """Drop the queued responses and the object overrides, and set `delay_s` back to 0."""
        with self._lock:
            self._forced.clear()
            self._overrides.clear()
        self.delay_s = 0.0


def too_many_requests(
    retry_after: int | None = None,
    *,
    query_id: str | None = None,
    method: str | None = None,
    path: str | None = None,
) -> ForcedApiResponse:
    """Return a 429 Too Many Requests, with a Retry-After of `retry_after` seconds if given."""
    headers = _query_id_header(query_id)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return ForcedApiResponse(
        429,
        "Too many requests, retry later",
        "TOO_MANY_REQUESTS",
        headers=headers,
        method=method,
        path=path,
    )


def server_error(
    status: int = 503,
    *,
    query_id: str | None = None,
    method: str | None = None,
    path: str | None = None,
) -> ForcedApiResponse:
    """Return an OVH-style 5xx error, with the query id `query_id` when given."""
    if not 500 <= status <= 599:
        raise ValueError(f"status {status} is not a server error: expected 500 to 599")
    if status == 500:
        # The body the simulator also sends when one of its handlers fails.
        message, code = "Internal server error", "INTERNAL_SERVER_ERROR"
    else:
        message, code = "The service is temporarily unavailable, retry later", None
    headers = _query_id_header(query_id)
    return ForcedApiResponse(status, message, code, headers=headers, method=method, path=path)


def gateway_error_page(
    status: int = 502, *, method: str | None = None, path: str | None = None
) -> ForcedApiResponse:
    """Return the HTML error page of a reverse proxy, which python-ovh cannot decode as JSON."""
    phrase = HTTPStatus(status).phrase
    page = f"<html><body><h1>{status} {phrase}</h1></body></html>\n"
    return ForcedApiResponse(
        status,
        body=page.encode(),
        content_type="text/html; charset=utf-8",
        method=method,
        path=path,
    )


def slow_response(
    delay_s: float, *, method: str | None = None, path: str | None = None
) -> ForcedApiResponse:
    """Return a fault that delays one real response by `delay_s` seconds."""
    return ForcedApiResponse(None, delay_s=delay_s, method=method, path=path)


def _query_id_header(query_id: str | None) -> dict[str, str]:
    # The same header name as the server's own, so that this value replaces the random one.
    return {} if query_id is None else {"X-Ovh-Queryid": query_id}
