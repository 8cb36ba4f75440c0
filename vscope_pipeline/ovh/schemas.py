"""Arrow schemas of the four inventory tables, and the conversion of API objects into them.

Each table contains every field that the OVH APIv6 schema documents for its model
(`dedicatedCloud.Datacenter`, `.Filer`, `.Host`, `.Vm`, as published from 2020 to 2024), under
the snake_case of the OVH name, with the documented type and nullability. Key columns come
first. The columns that the API does not return (`service_name`, the containing
`datacenter_id`, `is_global`, `datacenter_label`, `snapshot_at`) come from the request context.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import pyarrow as pa

from vscope_pipeline.catalog import datacenter_label
from vscope_pipeline.ovh.fields import (
    TIMESTAMP,
    ArrayOf,
    Conversion,
    Field,
    SchemaMismatchError,
    Struct,
    arrow_field,
    convert_object,
    unit_and_value,
)

log = logging.getLogger(__name__)

InventoryKind = Literal["datacenters", "filers", "hosts", "vms"]
INVENTORY_KINDS: tuple[InventoryKind, ...] = ("datacenters", "filers", "hosts", "vms")

DATACENTER_FIELDS: tuple[Field, ...] = (
    Field("datacenterId", "long", nullable=False),
    Field("name", "string", nullable=False),
    Field("description", "string", nullable=False),
    Field("commercialName", "string", nullable=False),
    Field("commercialRangeName", "string", nullable=False),
    Field("isRemovable", "boolean", nullable=False),
    Field("version", "string", nullable=False),
    Field("horizonViewName", "string"),
)

# Space figures are in GB, per the OVH schema descriptions.
FILER_FIELDS: tuple[Field, ...] = (
    Field("filerId", "long", nullable=False),
    Field("name", "string", nullable=False),
    Field("profile", "string", nullable=False),
    Field("fullProfile", "string", nullable=False),
    Field("size", unit_and_value("long"), nullable=False),
    Field("spaceUsed", "double"),
    Field("spaceFree", "double"),
    Field("spaceProvisionned", "double"),
    Field("state", "string", nullable=False),
    Field("billingType", "string"),
    Field("vmTotal", "long"),
    Field("connectionState", "string"),
    Field("activeNode", "string"),
    Field("master", "string", nullable=False),
    Field("slave", "string"),
    Field("isManagedByOvh", "boolean", nullable=False),
    Field("resourceName", "string"),
)

# cpu* figures are MHz, memoryUsed MB and uptime seconds, per the OVH schema descriptions.
HOST_FIELDS: tuple[Field, ...] = (
    Field("hostId", "long", nullable=False),
    Field("name", "string", nullable=False),
    Field("profile", "string", nullable=False),
    Field("profileCode", "string", nullable=False),
    Field("rack", "string", nullable=False),
    Field("state", "string", nullable=False),
    Field("billingType", "string", nullable=False),
    Field("connectionState", "string"),
    Field("inMaintenance", "boolean"),
    Field("clusterName", "string"),
    Field("cpu", unit_and_value("double"), nullable=False),
    Field("cpuMax", "long"),
    Field("cpuMaxCore", "long"),
    Field("cpuNum", "long"),
    Field("cpuUsed", "long"),
    Field("ram", unit_and_value("long"), nullable=False),
    Field("memoryUsed", "double"),
    Field("uptime", "long"),
    Field("vmTotal", "long"),
    Field("vmVcpuTotal", "long"),
    Field("parentHostId", "long"),
    Field("resourceName", "string"),
)

_VM_FILER = Struct(
    (
        Field("name", "string", nullable=False),
        Field("committed", "double", nullable=False),
        Field(
            "disks",
            ArrayOf(
                Struct(
                    (
                        Field("id", "string", nullable=False),
                        Field("capacity", "double", nullable=False),
                    )
                )
            ),
            nullable=False,
        ),
    )
)

_BOOL_POLICY = Struct(
    (Field("inherited", "boolean", nullable=False), Field("value", "boolean", nullable=False))
)

_VM_NETWORK_BACKING = Struct(
    (
        Field("type", "string", nullable=False),
        Field("deviceName", "string"),
        Field("portGroupKey", "string"),
        Field("portKey", "string"),
        Field("switchUuid", "string"),
        Field("valueMoref", "string"),
        Field("useAutoDetect", "boolean"),
        Field("carpState", "string"),
        Field(
            "portKeySecurityPolicy",
            Struct(
                (
                    Field("allowPromiscuous", _BOOL_POLICY, nullable=False),
                    Field("forgedTransmits", _BOOL_POLICY, nullable=False),
                    Field("macChanges", _BOOL_POLICY, nullable=False),
                )
            ),
        ),
    )
)

# `controler` is OVH's spelling.
_VM_NETWORK = Struct(
    (
        Field("label", "string", nullable=False),
        Field("macAddress", "string", nullable=False),
        Field("controler", "string", nullable=False),
        Field("connected", "boolean", nullable=False),
        Field("startConnected", "boolean", nullable=False),
        Field("allowGuestControl", "boolean", nullable=False),
        Field("status", "string", nullable=False),
        Field("backing", _VM_NETWORK_BACKING, nullable=False),
    )
)

_VM_CDROM = Struct((Field("connected", "boolean"), Field("iso", "string")))

_RESTORE_POINT = Struct(
    (
        Field("restorePointId", "long", nullable=False),
        Field("creationTime", "datetime"),
        Field("isCorrupted", "boolean"),
        Field("size", unit_and_value("long")),
        Field("type", "string"),
    )
)

# allocatedDisk is GB and retentionTime days, per the OVH schema descriptions.
_VM_BACKUP = Struct(
    (
        Field("allocatedDisk", "double"),
        Field("backupDays", ArrayOf("string")),
        Field("backupRepositoryId", "long"),
        Field("encryption", "boolean"),
        Field("lastCreationTime", "datetime"),
        Field("lastSuccessfulCreationTime", "datetime"),
        Field("lastDuration", unit_and_value("long")),
        Field("lastSuccessfulDuration", unit_and_value("long")),
        Field("lastResult", "string"),
        Field("offerType", "string"),
        Field("restorePoints", ArrayOf(_RESTORE_POINT)),
        Field("retentionTime", "long"),
        Field("state", "string"),
    )
)

# Units per the OVH schema descriptions: cpuMax/cpuUsed MHz, cpuReady and latencies ms,
# memory MB (memoryTps is a string), net and read/write rates KB/s, *PerSecond operations/s.
VM_FIELDS: tuple[Field, ...] = (
    Field("vmId", "long", nullable=False),
    Field("moRef", "string", nullable=False),
    Field("name", "string"),
    Field("powerState", "string", nullable=False),
    Field("hostName", "string"),
    Field("clusterName", "string"),
    Field("folderName", "string"),
    Field("cpuNum", "long"),
    Field("cpuMax", "double"),
    Field("cpuUsed", "long"),
    Field("cpuReady", "double"),
    Field("cpuReadyPercent", "double"),
    Field("memoryMax", "long"),
    Field("memoryUsed", "long"),
    Field("memoryTps", "string"),
    Field("netRx", "double"),
    Field("netTx", "double"),
    Field("netPacketRx", "double"),
    Field("netPacketTx", "double"),
    Field("readRate", "double"),
    Field("writeRate", "double"),
    Field("readLatency", "double"),
    Field("writeLatency", "double"),
    Field("readPerSecond", "double"),
    Field("writePerSecond", "double"),
    Field("filers", ArrayOf(_VM_FILER)),
    Field("networks", ArrayOf(_VM_NETWORK)),
    Field("cdroms", ArrayOf(_VM_CDROM)),
    Field("backup", _VM_BACKUP),
    Field("snapshotNum", "long"),
    Field("stateFt", "string"),
    Field("roleFt", "string"),
    Field("vmwareTools", "string"),
    Field("vmwareToolsVersion", "string"),
    Field("guestOsFamily", "string"),
    Field("license", "string"),
)


@dataclass(frozen=True)
class TableSpec:
    """The mapping of one inventory kind to a table: its OVH model, id field and derived columns."""

    kind: InventoryKind
    model: str
    entity: str
    id_field: str
    fields: tuple[Field, ...]
    # False for datacenters, whose own `datacenterId` field is the key column.
    has_context_datacenter: bool = True
    has_is_global: bool = False

    def schema(self) -> pa.Schema:
        columns = [pa.field("service_name", pa.string(), nullable=False)]
        if self.has_context_datacenter:
            # Only global filers have no datacenter.
            columns.append(pa.field("datacenter_id", pa.int64(), nullable=self.has_is_global))
        columns.extend(arrow_field(field) for field in self.fields)
        if self.has_is_global:
            columns.append(pa.field("is_global", pa.bool_(), nullable=False))
        columns.append(pa.field("datacenter_label", pa.string(), nullable=self.has_is_global))
        columns.append(pa.field("snapshot_at", TIMESTAMP, nullable=False))
        return pa.schema(columns, metadata={"ovh_model": self.model})


TABLE_SPECS: Mapping[InventoryKind, TableSpec] = MappingProxyType(
    {
        "datacenters": TableSpec(
            "datacenters",
            "dedicatedCloud.Datacenter",
            "datacenter",
            "datacenterId",
            DATACENTER_FIELDS,
            has_context_datacenter=False,
        ),
        "filers": TableSpec(
            "filers", "dedicatedCloud.Filer", "filer", "filerId", FILER_FIELDS, has_is_global=True
        ),
        "hosts": TableSpec("hosts", "dedicatedCloud.Host", "host", "hostId", HOST_FIELDS),
        "vms": TableSpec("vms", "dedicatedCloud.Vm", "vm", "vmId", VM_FIELDS),
    }
)

INVENTORY_SCHEMAS: Mapping[InventoryKind, pa.Schema] = MappingProxyType(
    {kind: spec.schema() for kind, spec in TABLE_SPECS.items()}
)


@dataclass(frozen=True)
class ApiObject:
    """One object as returned by APIv6, with where it was listed.

    `object_id` is the id from the listing URL; `datacenter_id` is None for a service-wide
    (global) filer and, for a datacenter, equals `object_id`.
    """

    service_name: str
    datacenter_id: int | None
    object_id: int
    data: Mapping[str, Any]


@dataclass(frozen=True)
class InventoryTable:
    """A converted table and the API fields it dropped.

    `unknown_fields` maps each undocumented field (dotted path, `[]` for array items) to the
    number of times it occurred.
    """

    table: pa.Table
    unknown_fields: Mapping[str, int]


def describe_object(spec: TableSpec, item: ApiObject) -> str:
    """Name an object for messages: `vm 42 of pcc-1 datacenter 7`."""
    where = item.service_name
    if spec.kind == "filers" and item.datacenter_id is None:
        where += " (global filer)"
    elif spec.has_context_datacenter:
        where += f" datacenter {item.datacenter_id}"
    return f"{spec.entity} {item.object_id} of {where}"


def build_inventory_table(
    kind: InventoryKind, objects: Sequence[ApiObject], *, snapshot_at: dt.datetime
) -> InventoryTable:
    """Convert API objects of one kind into a table with that kind's `INVENTORY_SCHEMAS` schema.

    Missing or null optional fields become NULL. Undocumented fields are dropped, counted and
    logged once per field. Raises SchemaMismatchError for a value of the wrong type, a missing
    or null required field, or an id field that differs from the id the object was listed
    under.
    """
    if snapshot_at.tzinfo is None:
        raise ValueError(
            f"snapshot_at {snapshot_at.isoformat()!r} has no time zone: pass an aware datetime, "
            "for example datetime.now(datetime.UTC)"
        )
    spec = TABLE_SPECS[kind]
    conversion = Conversion(unknown_fields=Counter())
    rows = [_convert_row(spec, item, conversion, snapshot_at) for item in objects]

    for path, count in sorted(conversion.unknown_fields.items()):
        log.warning(
            "dropped field %r of %s, not in the documented %s model (%d occurrences)",
            path,
            kind,
            spec.model,
            count,
        )
    table = pa.Table.from_pylist(rows, schema=INVENTORY_SCHEMAS[kind])
    return InventoryTable(table, MappingProxyType(dict(conversion.unknown_fields)))


def _convert_row(
    spec: TableSpec, item: ApiObject, conversion: Conversion, snapshot_at: dt.datetime
) -> dict[str, Any]:
    conversion.subject = describe_object(spec, item)
    row: dict[str, Any] = {"service_name": item.service_name}
    if spec.has_context_datacenter:
        row["datacenter_id"] = item.datacenter_id
    row.update(convert_object(spec.fields, item.data, conversion))

    returned_id = item.data[spec.id_field]
    if returned_id != item.object_id:
        raise SchemaMismatchError(
            f"{conversion.subject}: the API returned {spec.id_field} {returned_id!r} for it; "
            "the response belongs to another object"
        )
    datacenter_id = item.datacenter_id if spec.has_context_datacenter else item.object_id
    if spec.has_is_global:
        row["is_global"] = item.datacenter_id is None
    row["datacenter_label"] = (
        None if datacenter_id is None else datacenter_label(item.service_name, datacenter_id)
    )
    row["snapshot_at"] = snapshot_at
    return row
