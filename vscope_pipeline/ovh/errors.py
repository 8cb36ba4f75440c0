"""Exceptions of APIv6 calls, with messages that name the method, the path and the fix."""

from __future__ import annotations

from typing import Any

import ovh

# Path segments that APIv6 follows with an id or a service name. An access rule replaces those
# ids with `*`: `/dedicatedCloud/pcc-1/datacenter/7/vm` becomes `/dedicatedCloud/*/datacenter/*/vm`.
_COLLECTIONS = frozenset({"dedicatedCloud", "datacenter", "filer", "host", "vm", "user"})


class OvhRequestError(RuntimeError):
    """An APIv6 call that failed; the message names the method and the path."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class OvhNotGrantedError(OvhRequestError):
    """An APIv6 call that the consumer key's access rules do not allow (403 NOT_GRANTED_CALL).

    `rule` is the access rule that would allow it, as OVH writes rules: `GET /dedicatedCloud/*`.
    """

    def __init__(self, message: str, *, method: str, path: str, rule: str) -> None:
        super().__init__(message, method=method, path=path)
        self.rule = rule


class OvhResponseError(ValueError):
    """An APIv6 response whose JSON shape is not the documented one. The message names the path."""


def access_rule(method: str, target: str) -> str:
    """Return the access rule that grants `method` on `target`, ids replaced by `*`.

    `target` may carry a query string and a batch id list (`.../vm/1,2?batch=,`), which the rule
    drops: `GET /dedicatedCloud/*/datacenter/*/vm/*`.
    """
    path = target.split("?", 1)[0]
    segments: list[str] = []
    after_collection = False
    for segment in path.split("/"):
        if after_collection and segment:
            segments.append("*")
            after_collection = False
        else:
            segments.append(segment)
            after_collection = segment in _COLLECTIONS
    return f"{method} {'/'.join(segments)}"


def request_failed(method: str, path: str, error: ovh.APIError) -> OvhRequestError:
    """Wrap a python-ovh error with the method and path, and what to do about it.

    Messages of authentication and authorization errors name the key or access rule to fix,
    and the request URL, never a key or secret.
    """
    message = f"{method} {path} failed with {type(error).__name__}: {error_text(error)}"
    if isinstance(error, ovh.NotGrantedCall):
        rule = access_rule(method, path)
        message += (
            f"; the consumer key has no access rule for this call: add the rule {rule} to "
            "the consumer key (request a new consumer key whose access rules include it, "
            "validate it, and set OVH_CONSUMER_KEY)"
        )
        return OvhNotGrantedError(message, method=method, path=path, rule=rule)
    advice = _credential_advice(error)
    if advice:
        message += f"; {advice}"
    return OvhRequestError(message, method=method, path=path)


def error_code(error: ovh.APIError) -> str | None:
    """Return the `errorCode` of the APIv6 error body, or None when there is none."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _credential_advice(error: ovh.APIError) -> str | None:
    """Return what to check for an authentication error, or None for other errors."""
    code = error_code(error)
    response = getattr(error, "response", None)
    at = f"APIv6 at {response.url}" if response is not None else "APIv6"
    if isinstance(error, ovh.InvalidCredential) or code == "INVALID_CREDENTIAL":
        return (
            f"{at} rejected the consumer key (OVH_CONSUMER_KEY): it has expired or was "
            "revoked. Create a new consumer key with the access rules the pipeline needs, "
            "validate it, and set OVH_CONSUMER_KEY"
        )
    if code == "INVALID_SIGNATURE":
        return (
            f"{at} rejected the request signature: check that OVH_APPLICATION_SECRET is the "
            "secret of OVH_APPLICATION_KEY, and that OVH_CONSUMER_KEY was created for this "
            "application and validated"
        )
    if isinstance(error, ovh.InvalidKey) or code == "INVALID_KEY":
        return (
            f"{at} does not know the application key: check OVH_APPLICATION_KEY, and that the "
            "application was created on the API of OVH_ENDPOINT"
        )
    if isinstance(error, ovh.NotCredential) or code in ("NOT_CREDENTIAL", "NOT_AUTHENTICATED"):
        return f"{at} received no valid consumer key: set OVH_CONSUMER_KEY"
    if code == "QUERY_TIME_OUT":
        return (
            f"{at} found the request timestamp too far from its clock. python-ovh corrects "
            "the local clock with GET /auth/time once per client, so the local clock moved "
            "during the run: synchronise it (NTP) and run again"
        )
    return None


def error_text(error: ovh.APIError) -> str:
    """Return the API's message and query id on one line.

    python-ovh 1.2.0's `str()` puts the query id on a second line after a space.
    """
    text = str(error.args[0]).strip() if error.args else type(error).__name__
    query_id = getattr(error, "query_id", None)
    return f"{text} (OVH query id {query_id})" if query_id else text
