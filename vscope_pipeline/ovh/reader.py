"""Counted, checked GET requests through python-ovh, with errors that name the URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import ovh

from vscope_pipeline.ovh.errors import (
    OvhRequestError,
    OvhResponseError,
    error_text,
    request_failed,
)
from vscope_pipeline.ovh.retrying import CallCounts, RetryingClient, retrying_client

T = TypeVar("T", int, str)


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


class ApiReader:
    """GET requests of one walk: counts them and checks the shape of list and object responses.

    Every request goes through a RetryingClient: a bare python-ovh client gets the one that
    `retrying_client` shares for it. `client` is the python-ovh client.
    """

    def __init__(self, client: ovh.Client | RetryingClient) -> None:
        self.api = retrying_client(client)
        self.client = self.api.client
        self.counts = CallCounts()

    @property
    def requests(self) -> int:
        return self.counts.requests

    @property
    def retries(self) -> int:
        return self.counts.retries

    def get_raw(self, target: str) -> Any:
        """GET `target` (path and query) and return the decoded JSON.

        python-ovh errors of permanent failures pass unchanged. Raises OvhRetriesExhaustedError
        when transient failures use up the attempts.
        """
        return self.api.get(target, counts=self.counts)

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


__all__ = [
    "ApiReader",
    "ObjectRef",
    "OvhRequestError",
    "OvhResponseError",
    "error_text",
    "request_failed",
]
