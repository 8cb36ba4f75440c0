"""Fetching listed objects with batch GETs, or one GET per object where batch is not supported.

APIv6 responds to `GET .../vm/1,2,3?batch=,` with a JSON array of `{key, value, error}` items,
one per id. OVHcloud does not document this mode, so support is detected from the first
response (an item array, or anything else) and remembered per client. A client whose API does
not support it gets one GET per object.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import ovh

from vscope_pipeline.ovh.reader import (
    ApiReader,
    ObjectRef,
    OvhRequestError,
    OvhResponseError,
    request_failed,
)

log = logging.getLogger(__name__)

BatchMode = Literal["auto", "always", "never"]

# Ids per batch GET. 50 six-digit ids keep the URL under 400 characters.
DEFAULT_BATCH_SIZE = 50

# The error text of a batch item whose object no longer exists, such as
# "The requested object (vmId = 17) does not exist".
_NOT_FOUND = re.compile(r"not found|does not exist|doesn't exist", re.IGNORECASE)

# Whether each client's API returned an item array for a batch GET, learned on first use.
_batch_support: weakref.WeakKeyDictionary[ovh.Client, bool] = weakref.WeakKeyDictionary()
_batch_support_lock = threading.Lock()


def batch_support(client: ovh.Client) -> bool | None:
    """Return what was learned about the client's batch GET support; None before any try."""
    with _batch_support_lock:
        return _batch_support.get(client)


def _remember(client: ovh.Client, supported: bool) -> None:
    with _batch_support_lock:
        _batch_support[client] = supported
    log.info(
        "OVH API at %s %s batch GET",
        getattr(client, "_endpoint", "?"),
        "supports" if supported else "does not support",
    )


class ObjectFetcher:
    """Fetch objects that share a list path, in batches or one by one.

    `used_batch` becomes True once objects came from a batch response, and False once objects
    were fetched one by one and none in batch. It stays None while nothing was fetched.
    """

    def __init__(self, reader: ApiReader, *, mode: BatchMode, batch_size: int) -> None:
        if mode not in ("auto", "always", "never"):
            raise ValueError(f"batch mode {mode!r} is not valid: use 'auto', 'always' or 'never'")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size} is not valid: use a positive integer")
        self._reader = reader
        self._mode = mode
        self._batch_size = batch_size
        self.used_batch: bool | None = None

    def fetch(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, Mapping[str, Any]]:
        """Return the objects found, keyed by ref. Refs whose GET returned 404 are left out."""
        found: dict[ObjectRef, Mapping[str, Any]] = {}
        for start in range(0, len(refs), self._batch_size):
            chunk = refs[start : start + self._batch_size]
            if self._use_batch():
                found.update(self._fetch_batch(chunk))
            else:
                found.update(self._fetch_each(chunk))
        return found

    def _use_batch(self) -> bool:
        if self._mode != "auto":
            return self._mode == "always"
        return batch_support(self._reader.client) is not False

    def _fetch_each(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, Mapping[str, Any]]:
        found: dict[ObjectRef, Mapping[str, Any]] = {}
        for ref in refs:
            data = self._reader.get_object(ref.path)
            if data is not None:
                found[ref] = data
        if self.used_batch is None and refs:
            self.used_batch = False
        return found

    def _fetch_batch(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, Mapping[str, Any]]:
        target = f"{refs[0].list_path}/{','.join(str(ref.object_id) for ref in refs)}?batch=,"
        learning = self._mode == "auto" and batch_support(self._reader.client) is None
        try:
            response = self._reader.get_raw(target)
        except ovh.ResourceNotFoundError:
            # Either no batch support, or the parent datacenter vanished: single GETs tell.
            return self._not_batched(refs, learning)
        except ovh.BadParametersError as error:
            if self._mode == "always":
                raise request_failed("GET", target, error) from error
            return self._not_batched(refs, learning)
        except ovh.APIError as error:
            raise request_failed("GET", target, error) from error

        items = _item_array(response)
        if items is None:
            if self._mode == "always":
                raise OvhResponseError(
                    f"GET {target} did not return a batch item array: the API does not support "
                    "batch GET here, use batch='auto' or 'never'"
                )
            return self._not_batched(refs, learning)
        if learning:
            _remember(self._reader.client, True)
        self.used_batch = True
        return self._read_items(target, refs, items)

    def _not_batched(
        self, refs: Sequence[ObjectRef], learning: bool
    ) -> dict[ObjectRef, Mapping[str, Any]]:
        if learning:
            _remember(self._reader.client, False)
        return self._fetch_each(refs)

    def _read_items(
        self, target: str, refs: Sequence[ObjectRef], items: Mapping[str, Mapping[str, Any]]
    ) -> dict[ObjectRef, Mapping[str, Any]]:
        found: dict[ObjectRef, Mapping[str, Any]] = {}
        absent: list[ObjectRef] = []
        for ref in refs:
            item = items.get(str(ref.object_id))
            if item is None:
                absent.append(ref)
                continue
            error, value = item.get("error"), item.get("value")
            if error:
                if _NOT_FOUND.search(str(error)):
                    continue
                raise OvhRequestError(
                    f"GET {target} failed for {ref.entity} {ref.object_id}: {error}",
                    method="GET",
                    path=target,
                )
            if not isinstance(value, Mapping):
                raise OvhResponseError(
                    f"GET {target} returned an item for {ref.entity} {ref.object_id} without "
                    "an error or an object value"
                )
            found[ref] = value
        if absent:
            log.debug(
                "%s: %d ids missing from the batch response, fetched one by one",
                target,
                len(absent),
            )
            found.update(self._fetch_each(absent))
        return found


def _item_array(response: object) -> dict[str, Mapping[str, Any]] | None:
    """Index a batch response by key, or return None when it is not a non-empty item array."""
    if not isinstance(response, list) or not response:
        return None
    items: dict[str, Mapping[str, Any]] = {}
    for item in response:
        if not isinstance(item, Mapping) or "key" not in item:
            return None
        items[str(item["key"])] = item
    return items
