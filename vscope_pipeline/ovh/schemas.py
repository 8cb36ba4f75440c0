"""Arrow schemas of the four inventory tables, and the conversion of API objects into them.

Each table contains every field that the OVH APIv6 schema documents for its model
(`dedicatedCloud.Datacenter`, `.Filer`, `.Host`, `.Vm`, as published from 2020 to 2024), under
the snake_case of the OVH name, with the documented type and nullability. Key columns come
first. The columns that the API does not return (`service_name`, the containing
`datacenter_id`, `is_global`, `datacenter_label`, `snapshot_at`) come from the request context.

Policy for objects that do not match the documented model (applied by `fields.convert_row`,
counted in `InventoryTable` and logged as warnings that name the field, the value and an object):

- unknown enum value (`powerState: "suspendedX"`): kept as the string, counted per field and value;
- undocumented field: dropped, counted per field;
- optional field missing: NULL, as the model allows; optional field with an invalid value (a
  string where a number is expected, say): NULL, counted per field;
- required field missing, null or invalid: the object is skipped, because a row with NULL in a
  never-null column would break the table's contract. Skipped objects are listed with the reason.
  When every object of a kind is skipped, the conversion raises instead, because the model has
  likely changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import pyarrow as pa

from vscope_pipeline.catalog import datacenter_label
from vscope_pipeline.ovh.fields import (
    TIMESTAMP,
    ArrayOf,
    Conversion,
    Field,
    OvhEnum,
    SchemaMismatchError,
    Struct,
    arrow_field,
    convert_row,
    snake_case,
    unit_and_value,
)

log = logging.getLogger(__name__)

InventoryKind = Literal["datacenters", "filers", "hosts", "vms"]
INVENTORY_KINDS: tuple[InventoryKind, ...] = ("datacenters", "filers", "hosts", "vms")

# Enum values as published in the OVH APIv6 schema (captures from 2020 to 2024). The first
# argument is the schema's type name where known, else a description of the field.
ITEM_STATE = OvhEnum("host or filer state", ("adding", "delivered", "error", "removing", "unknown"))
BILLING_TYPE = OvhEnum(
    "ressources.BillingTypeEnum", ("freeSpare", "hourly", "monthly", "undefined")
)
HOST_CONNECTION_STATE = OvhEnum(
    "dedicatedCloud.hostSystemConnectionState", ("connected", "disconnected", "notResponding")
)
FILER_CONNECTION_STATE = OvhEnum("filer connection state", ("offline", "online"))
POWER_STATE = OvhEnum(
    "dedicatedCloud.virtualMachinePowerState", ("deleted", "poweredOff", "poweredOn", "suspended")
)
FAULT_TOLERANCE_STATE = OvhEnum(
    "dedicatedCloud.virtualMachineFaultToleranceState",
    ("disabled", "enabled", "needSecondary", "notConfigured", "running", "starting"),
)
_NETWORK_STATUS = OvhEnum(
    "dedicatedCloud.virtualDeviceConnectInfoStatus",
    ("ok", "recoverableError", "unrecoverableError", "untried"),
)
_BACKING_TYPE = OvhEnum("network backing type", ("DVS", "VSS"))
_WEEKDAY = OvhEnum(
    "backup day",
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
)
_BACKUP_RESULT = OvhEnum(
    "backup result",
    ("failed", "running", "stopped", "stopping", "success", "unknown", "warning"),
)
_BACKUP_OFFER = OvhEnum("backup offer type", ("advanced", "backup", "classic", "legacy", "premium"))
_RESTORE_POINT_TYPE = OvhEnum("restore point type", ("full", "incremental"))

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
    Field("state", ITEM_STATE, nullable=False),
    Field("billingType", BILLING_TYPE),
    Field("vmTotal", "long"),
    Field("connectionState", FILER_CONNECTION_STATE),
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
    Field("state", ITEM_STATE, nullable=False),
    Field("billingType", BILLING_TYPE, nullable=False),
    Field("connectionState", HOST_CONNECTION_STATE),
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
        Field("type", _BACKING_TYPE, nullable=False),
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
        Field("status", _NETWORK_STATUS, nullable=False),
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
        Field("type", _RESTORE_POINT_TYPE),
    )
)

# allocatedDisk is GB and retentionTime days, per the OVH schema descriptions.
_VM_BACKUP = Struct(
    (
        Field("allocatedDisk", "double"),
        Field("backupDays", ArrayOf(_WEEKDAY)),
        Field("backupRepositoryId", "long"),
        Field("encryption", "boolean"),
        Field("lastCreationTime", "datetime"),
        Field("lastSuccessfulCreationTime", "datetime"),
        Field("lastDuration", unit_and_value("long")),
        Field("lastSuccessfulDuration", unit_and_value("long")),
        Field("lastResult", _BACKUP_RESULT),
        Field("offerType", _BACKUP_OFFER),
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
    Field("powerState", POWER_STATE, nullable=False),
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
    Field("stateFt", FAULT_TOLERANCE_STATE),
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
class RejectedObject:
    """An object left out of its table: its name and the error that names the bad field."""

    subject: str
    reason: str


@dataclass(frozen=True)
class InventoryTable:
    """A converted table and the counts of the odd values it met (see the module policy).

    Paths are dotted OVH field names, with `[]` for array items.

    - `unknown_fields`: undocumented field path -> occurrences (dropped).
    - `unknown_enum_values`: field path -> undocumented value -> occurrences (kept).
    - `nulled_fields`: optional top-level field -> objects where its invalid value became NULL.
    - `rejected`: the objects skipped for a missing, null or invalid required field.
    """

    table: pa.Table
    unknown_fields: Mapping[str, int]
    unknown_enum_values: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    nulled_fields: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    rejected: tuple[RejectedObject, ...] = ()


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

    Odd values follow the module policy: they are kept, stored as NULL or make the object
    skipped, and each case is counted and logged once as a warning. Raises SchemaMismatchError
    when every object is skipped, or when an object's id field differs from the id it was
    listed under.
    """
    if snapshot_at.tzinfo is None:
        raise ValueError(
            f"snapshot_at {snapshot_at.isoformat()!r} has no time zone: pass an aware datetime, "
            "for example datetime.now(datetime.UTC)"
        )
    spec = TABLE_SPECS[kind]
    conversion = Conversion(unknown_fields=Counter())
    rows: list[dict[str, Any]] = []
    rejected: list[RejectedObject] = []
    for item in objects:
        conversion.subject = describe_object(spec, item)
        try:
            rows.append(_convert_row(spec, item, conversion, snapshot_at))
        except _RejectedObjectError as error:
            rejected.append(RejectedObject(conversion.subject, str(error)))

    if objects and not rows:
        raise SchemaMismatchError(
            f"all {len(objects)} {kind} returned by APIv6 lack a valid required field, so the "
            f"{spec.model} model has likely changed; first: {rejected[0].reason}. Update the "
            f"{spec.model} field list in vscope_pipeline/ovh/schemas.py"
        )
    _log_odd_values(spec, conversion, rejected)
    enum_values: dict[str, dict[str, int]] = {}
    for (path, value), count in sorted(conversion.unknown_enum_values.items()):
        enum_values.setdefault(path, {})[value] = count
    table = pa.Table.from_pylist(rows, schema=INVENTORY_SCHEMAS[kind])
    return InventoryTable(
        table,
        MappingProxyType(dict(conversion.unknown_fields)),
        unknown_enum_values=MappingProxyType(
            {path: MappingProxyType(values) for path, values in enum_values.items()}
        ),
        nulled_fields=MappingProxyType(dict(conversion.nulled_fields)),
        rejected=tuple(rejected),
    )


class _RejectedObjectError(SchemaMismatchError):
    """A required field of an object is missing, null or invalid: the object is skipped."""


# How many skipped objects one warning lists; the InventoryTable keeps all of them.
_LOGGED_REJECTIONS = 10


def _log_odd_values(
    spec: TableSpec, conversion: Conversion, rejected: Sequence[RejectedObject]
) -> None:
    kind = spec.kind
    for path, count in sorted(conversion.unknown_fields.items()):
        log.warning(
            "dropped field %r of %s, not in the documented %s model (%d occurrences)",
            path,
            kind,
            spec.model,
            count,
        )
    for (path, value), count in sorted(conversion.unknown_enum_values.items()):
        log.warning(
            "kept value %r of field %r of %s, not among its documented values "
            "(%d occurrences, first in %s)",
            value,
            path,
            kind,
            count,
            conversion.enum_examples[(path, value)],
        )
    for path, count in sorted(conversion.nulled_fields.items()):
        log.warning(
            "stored NULL for field %r of %d %s whose value is invalid; first: %s",
            path,
            count,
            kind,
            conversion.nulled_examples[path],
        )
    if rejected:
        listed = "; ".join(item.reason for item in rejected[:_LOGGED_REJECTIONS])
        more = len(rejected) - _LOGGED_REJECTIONS
        log.warning(
            "skipped %d %s whose required fields do not match the documented %s model: %s%s",
            len(rejected),
            kind,
            spec.model,
            listed,
            f" and {more} more" if more > 0 else "",
        )


def _convert_row(
    spec: TableSpec, item: ApiObject, conversion: Conversion, snapshot_at: dt.datetime
) -> dict[str, Any]:
    row: dict[str, Any] = {"service_name": item.service_name}
    if spec.has_context_datacenter:
        row["datacenter_id"] = item.datacenter_id
    try:
        row.update(convert_row(spec.fields, item.data, conversion))
    except SchemaMismatchError as error:
        raise _RejectedObjectError(str(error)) from error

    # The id field is required, so convert_row has checked that it is a valid long.
    returned_id = row[snake_case(spec.id_field)]
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
