"""Exceptions of APIv6 calls, with messages that name the method and the path."""

from __future__ import annotations

import ovh


class OvhRequestError(RuntimeError):
    """An APIv6 call that failed; the message names the method and the path."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class OvhResponseError(ValueError):
    """An APIv6 response whose JSON shape is not the documented one. The message names the path."""


def request_failed(method: str, path: str, error: ovh.APIError) -> OvhRequestError:
    """Wrap a python-ovh error with the method and path, and the fix when the key lacks a rule."""
    message = f"{method} {path} failed with {type(error).__name__}: {error_text(error)}"
    if isinstance(error, ovh.NotGrantedCall):
        message += f"; the consumer key must allow {method} on this path"
    return OvhRequestError(message, method=method, path=path)


def error_text(error: ovh.APIError) -> str:
    """Return the API's message and query id on one line.

    python-ovh 1.2.0's `str()` puts the query id on a second line after a space.
    """
    text = str(error.args[0]).strip() if error.args else type(error).__name__
    query_id = getattr(error, "query_id", None)
    return f"{text} (OVH query id {query_id})" if query_id else text
