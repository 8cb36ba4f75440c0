"""Counted, checked GET requests through python-ovh, with errors that name the URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import ovh

T = TypeVar("T", int, str)


class OvhRequestError(RuntimeError):
    """An APIv6 call that failed; the message names the method and the path."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class OvhResponseError(ValueError):
    """An APIv6 response whose JSON shape is not the documented one. The message names the path."""


@dataclass(frozen=True)
class ObjectRef:
    """An inventory object as listed by the API; `str()` is its API path.

    `entity` is the path segment (`datacenter`, `filer`, `host`, `vm`); `datacenter_id` is None
    for a service-wide (global) filer.
    """

    service_name: str
    datacenter_id: int | None
    entity: str
    object_id: int

    @property
    def list_path(self) -> str:
        root = f"/dedicatedCloud/{self.service_name}"
        if self.entity == "datacenter" or self.datacenter_id is None:
            return f"{root}/{self.entity}"
        return f"{root}/datacenter/{self.datacenter_id}/{self.entity}"

    @property
    def path(self) -> str:
        return f"{self.list_path}/{self.object_id}"

    def __str__(self) -> str:
        return self.path


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


class ApiReader:
    """GET requests of one walk: counts them and checks the shape of list and object responses."""

    def __init__(self, client: ovh.Client) -> None:
        self.client = client
        self.requests = 0

    def get_raw(self, target: str) -> Any:
        """GET `target` (path and query) and return the decoded JSON; python-ovh errors pass."""
        self.requests += 1
        return self.client.get(target)

    def get(self, path: str) -> Any:
        try:
            return self.get_raw(path)
        except ovh.APIError as error:
            raise request_failed("GET", path, error) from error

    def get_object(self, path: str) -> Mapping[str, Any] | None:
        """Return the object at `path`, or None when the API responds with 404."""
        try:
            response = self.get_raw(path)
        except ovh.ResourceNotFoundError:
            return None
        except ovh.APIError as error:
            raise request_failed("GET", path, error) from error
        if not isinstance(response, Mapping):
            raise OvhResponseError(
                f"GET {path} returned {_preview(response)}, expected a JSON object"
            )
        return response

    def get_list(self, path: str, item_type: type[T]) -> list[T]:
        """Return the ids listed at `path`, without duplicates and in ascending order."""
        response = self.get(path)
        if not isinstance(response, list) or not all(
            _is_instance(item, item_type) for item in response
        ):
            expected = "integers" if item_type is int else "strings"
            raise OvhResponseError(
                f"GET {path} returned {_preview(response)}, expected a JSON array of {expected}"
            )
        return sorted(set(response))


def _is_instance(value: object, item_type: type) -> bool:
    # bool is a subclass of int, and true is not an id.
    return isinstance(value, item_type) and not isinstance(value, bool)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
