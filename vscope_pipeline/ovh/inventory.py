"""The inventory walk: every datacenter, filer, host and VM of the chosen dedicatedCloud services.

For each service the walk reads `/dedicatedCloud/{sn}`, its datacenters, then each datacenter's
filer, host and VM lists and objects, and the service-wide ("global") filers of
`/dedicatedCloud/{sn}/filer`. An object that is listed but returns 404 when fetched (a VM
deleted in between) is skipped and counted. Transient failures (429, 5xx, timeouts) are
retried by `RetryingClient`, which also applies the client-side rate limit. Any other API
error, or a transient one that outlasts the retries, stops the walk and names the failing URL.
Objects come from batch GETs when the API supports them (see `batch.py`), else from one GET
each. Objects that do not match the documented OVH model are converted under the policy of
`schemas.py` (unknown enum values kept, invalid optional fields NULL, objects with an invalid
required field skipped), and every case is counted in `InventoryStats`.

With `isolate_services=True`, a service whose walk fails is left out of the snapshot and
named in `InventorySnapshot.failed_services` with the error, and the walk goes on with the
other services. Only a failure of `GET /dedicatedCloud`, which every service needs, still
stops the walk.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import ovh
import pyarrow as pa

from vscope_pipeline.ovh.batch import DEFAULT_BATCH_SIZE, BatchMode, ObjectFetcher
from vscope_pipeline.ovh.reader import (
    ApiReader,
    ObjectRef,
    OvhRequestError,
    OvhResponseError,
)
from vscope_pipeline.ovh.retrying import OvhRetriesExhaustedError, RetryingClient
from vscope_pipeline.ovh.schemas import (
    INVENTORY_KINDS,
    ApiObject,
    InventoryKind,
    RejectedObject,
    build_inventory_table,
)

log = logging.getLogger(__name__)

_DATACENTER_CHILDREN: tuple[tuple[InventoryKind, str], ...] = (
    ("filers", "filer"),
    ("hosts", "host"),
    ("vms", "vm"),
)

# How many skipped objects the summary log line names; the stats keep all of them.
_LOGGED_SKIPS = 10


class ServiceNotFoundError(LookupError):
    """A requested dedicatedCloud service that the account does not see."""


@dataclass(frozen=True)
class InventoryStats:
    """Counters of one walk.

    - `requests`: HTTP requests of the walk, retries included, without python-ovh's one
      `/auth/time` call.
    - `retries`: requests that repeated one that failed transiently (429, 5xx, timeout).
    - `objects`: rows per kind.
    - `skipped_not_found`: per kind, the objects that were listed but returned 404.
    - `unknown_fields`: per kind, the dropped undocumented fields and their counts.
    - `batch`: whether objects came from batch GETs (None when no object was fetched).
    - `unknown_enum_values`: per kind, field path -> undocumented enum value -> count; the
      values are stored as sent.
    - `nulled_fields`: per kind, the optional fields stored as NULL because their value was
      invalid, and in how many objects.
    - `rejected`: per kind, the objects skipped for a missing, null or invalid required field.
    The policy behind the last three is in `vscope_pipeline.ovh.schemas`.
    """

    requests: int
    retries: int
    objects: Mapping[InventoryKind, int]
    skipped_not_found: Mapping[InventoryKind, tuple[ObjectRef, ...]]
    unknown_fields: Mapping[InventoryKind, Mapping[str, int]]
    batch: bool | None
    unknown_enum_values: Mapping[InventoryKind, Mapping[str, Mapping[str, int]]] = field(
        default_factory=lambda: MappingProxyType({kind: {} for kind in INVENTORY_KINDS})
    )
    nulled_fields: Mapping[InventoryKind, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({kind: {} for kind in INVENTORY_KINDS})
    )
    rejected: Mapping[InventoryKind, tuple[RejectedObject, ...]] = field(
        default_factory=lambda: MappingProxyType({kind: () for kind in INVENTORY_KINDS})
    )


@dataclass(frozen=True)
class InventorySnapshot:
    """The four inventory tables of one walk, keyed by kind, and the walk's statistics.

    `service_names` are the services whose walk succeeded, and the tables contain only their
    objects. `failed_services` maps each service whose walk failed to the error message.
    """

    snapshot_at: dt.datetime
    service_names: tuple[str, ...]
    tables: Mapping[InventoryKind, pa.Table]
    stats: InventoryStats
    failed_services: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass
class _Collected:
    objects: dict[InventoryKind, list[ApiObject]] = field(
        default_factory=lambda: {kind: [] for kind in INVENTORY_KINDS}
    )
    skipped: dict[InventoryKind, list[ObjectRef]] = field(
        default_factory=lambda: {kind: [] for kind in INVENTORY_KINDS}
    )

    def add(self, other: _Collected) -> None:
        for kind in INVENTORY_KINDS:
            self.objects[kind] += other.objects[kind]
            self.skipped[kind] += other.skipped[kind]


def snapshot_inventory(
    client: ovh.Client | RetryingClient,
    service_names: Sequence[str] | None,
    *,
    snapshot_at: dt.datetime,
    batch: BatchMode = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    isolate_services: bool = False,
) -> InventorySnapshot:
    """Walk the inventory of `service_names` (None: every service the account can read).

    A python-ovh `client` is wrapped with `retrying_client`, so it shares one rate limit with
    every other call made for that client. Pass a RetryingClient to choose the policy and limit.
    `batch` is "auto" (detect batch GET support once per client and remember it), "always" or
    "never". `batch_size` is the number of ids per batch GET. Raises ServiceNotFoundError for a
    service missing from `GET /dedicatedCloud`, and OvhRequestError (OvhRetriesExhaustedError
    after the retries) or OvhResponseError, which name the URL, for a failed call or an
    unexpected response.

    With `isolate_services`, those errors of one service do not raise: the service goes to
    `failed_services` with the error message, none of its objects enter the tables, and the
    other services are walked. A failed `GET /dedicatedCloud` still raises.
    """
    reader = ApiReader(client)
    fetcher = ObjectFetcher(reader, mode=batch, batch_size=batch_size)
    failed: dict[str, str] = {}
    if isolate_services:
        requested, failed = _select_services_isolated(reader, service_names)
    else:
        requested = _select_services(reader, service_names)
    collected = _Collected()
    for service_name in requested:
        service_collected = _Collected()
        try:
            _walk_service(reader, fetcher, service_name, service_collected)
        except (OvhRequestError, OvhResponseError, ServiceNotFoundError) as error:
            if not isolate_services:
                raise
            failed[service_name] = str(error)
            log.error(
                "inventory of dedicatedCloud service %s failed, so it is left out of this "
                "snapshot and the other services are walked: %s",
                service_name,
                error,
            )
            continue
        collected.add(service_collected)
    services = tuple(name for name in requested if name not in failed)

    converted = {
        kind: build_inventory_table(kind, collected.objects[kind], snapshot_at=snapshot_at)
        for kind in INVENTORY_KINDS
    }
    tables = {kind: converted[kind].table for kind in INVENTORY_KINDS}

    stats = InventoryStats(
        requests=reader.requests,
        retries=reader.retries,
        objects=MappingProxyType({kind: tables[kind].num_rows for kind in INVENTORY_KINDS}),
        skipped_not_found=MappingProxyType(
            {kind: tuple(collected.skipped[kind]) for kind in INVENTORY_KINDS}
        ),
        unknown_fields=MappingProxyType(
            {kind: converted[kind].unknown_fields for kind in INVENTORY_KINDS}
        ),
        batch=fetcher.used_batch,
        unknown_enum_values=MappingProxyType(
            {kind: converted[kind].unknown_enum_values for kind in INVENTORY_KINDS}
        ),
        nulled_fields=MappingProxyType(
            {kind: converted[kind].nulled_fields for kind in INVENTORY_KINDS}
        ),
        rejected=MappingProxyType({kind: converted[kind].rejected for kind in INVENTORY_KINDS}),
    )
    _log_summary(services, stats)
    return InventorySnapshot(
        snapshot_at=snapshot_at,
        service_names=services,
        tables=MappingProxyType(tables),
        stats=stats,
        failed_services=MappingProxyType(failed),
    )


def _select_services(reader: ApiReader, requested: Sequence[str] | None) -> tuple[str, ...]:
    visible = reader.get_list("/dedicatedCloud", str)
    if requested is None:
        if not visible:
            log.warning("the OVH account has no dedicatedCloud service: the snapshot is empty")
        return tuple(sorted(visible))
    services = _requested_services(requested)
    unseen = [name for name in services if name not in visible]
    if unseen:
        raise _service_not_found(unseen, visible)
    return services


def _requested_services(requested: Sequence[str]) -> tuple[str, ...]:
    """Return the requested names without repeats, or raise for an argument of the wrong kind."""
    if isinstance(requested, str):
        raise TypeError(
            f"service_names must be a sequence of names, not the string {requested!r}: "
            f"pass [{requested!r}]"
        )
    if not requested:
        raise ValueError(
            "service_names is empty: pass None to snapshot every service the account can access"
        )
    return tuple(dict.fromkeys(requested))


def _select_services_isolated(
    reader: ApiReader, requested: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Return the services to walk and, by name, the requested ones the account does not see."""
    if requested is None:
        return _select_services(reader, None), {}
    services = _requested_services(requested)
    visible = reader.get_list("/dedicatedCloud", str)
    failed: dict[str, str] = {}
    for name in services:
        if name not in visible:
            reason = str(_service_not_found([name], visible))
            failed[name] = reason
            log.error("dedicatedCloud service %s is left out of the snapshot: %s", name, reason)
    return tuple(name for name in services if name in visible), failed


def _service_not_found(unseen: Sequence[str], visible: Sequence[str]) -> ServiceNotFoundError:
    names = ", ".join(repr(name) for name in unseen)
    seen = ", ".join(sorted(visible)) if visible else "none"
    return ServiceNotFoundError(
        f"dedicatedCloud service {names} not found among the services this OVH account can "
        f"access ({seen}): fix the service name (VSCOPE_SERVICE_NAMES), or use credentials of the "
        "account that owns it"
    )


def _walk_service(
    reader: ApiReader, fetcher: ObjectFetcher, service_name: str, collected: _Collected
) -> None:
    root = f"/dedicatedCloud/{service_name}"
    if reader.get_object(root) is None:
        raise _service_not_found([service_name], reader.get_list("/dedicatedCloud", str))

    datacenter_ids = reader.get_list(f"{root}/datacenter", int)
    for datacenter_id in datacenter_ids:
        ref = ObjectRef(service_name, datacenter_id, "datacenter", datacenter_id)
        data = reader.get_object(ref.path)
        if data is None:
            collected.skipped["datacenters"].append(ref)
            continue
        collected.objects["datacenters"].append(
            ApiObject(service_name, datacenter_id, datacenter_id, data)
        )
        datacenter_root = f"{root}/datacenter/{datacenter_id}"
        for kind, entity in _DATACENTER_CHILDREN:
            ids = reader.get_list(f"{datacenter_root}/{entity}", int)
            refs = [ObjectRef(service_name, datacenter_id, entity, item) for item in ids]
            _collect(fetcher, kind, refs, collected)

    global_filers = reader.get_list(f"{root}/filer", int)
    refs = [ObjectRef(service_name, None, "filer", item) for item in global_filers]
    _collect(fetcher, "filers", refs, collected)


def _collect(
    fetcher: ObjectFetcher,
    kind: InventoryKind,
    refs: Sequence[ObjectRef],
    collected: _Collected,
) -> None:
    found: Mapping[ObjectRef, Any] = fetcher.fetch(refs)
    for ref in refs:
        data = found.get(ref)
        if data is None:
            collected.skipped[kind].append(ref)
        else:
            collected.objects[kind].append(
                ApiObject(ref.service_name, ref.datacenter_id, ref.object_id, data)
            )


def _log_summary(services: Sequence[str], stats: InventoryStats) -> None:
    counts = ", ".join(f"{stats.objects[kind]} {kind}" for kind in INVENTORY_KINDS)
    rejected = sum(len(stats.rejected[kind]) for kind in INVENTORY_KINDS)
    if rejected:
        counts += f" ({rejected} objects skipped for invalid required fields)"
    mode = {True: "batch GET", False: "one GET per object", None: "no object fetched"}
    retried = f", {stats.retries} of them retries" if stats.retries else ""
    log.info(
        "inventory of %d service(s) (%s): %s in %d requests%s (%s)",
        len(services),
        ", ".join(services),
        counts,
        stats.requests,
        retried,
        mode[stats.batch],
    )
    for kind in INVENTORY_KINDS:
        skipped = stats.skipped_not_found[kind]
        if skipped:
            listed = ", ".join(str(ref) for ref in skipped[:_LOGGED_SKIPS])
            more = (
                f" and {len(skipped) - _LOGGED_SKIPS} more" if len(skipped) > _LOGGED_SKIPS else ""
            )
            log.warning(
                "skipped %d %s listed but not found on GET (removed since the listing): %s%s",
                len(skipped),
                kind,
                listed,
                more,
            )


__all__ = [
    "InventorySnapshot",
    "InventoryStats",
    "ObjectRef",
    "OvhRequestError",
    "OvhResponseError",
    "OvhRetriesExhaustedError",
    "RetryingClient",
    "ServiceNotFoundError",
    "snapshot_inventory",
]
