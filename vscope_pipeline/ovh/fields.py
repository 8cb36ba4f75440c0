"""Typed descriptions of OVH APIv6 model fields, their Arrow types, and checked value conversion.

A model is described with the OVH field names and types (`long`, `double`, `boolean`, `string`,
`datetime`, enums, nested models and arrays). Arrow column and struct field names are the
snake_case of the OVH names. Conversion checks every value against its declared type and raises
`SchemaMismatchError` quoting the field, the value and the object.

`convert_row` applies the policy for odd API objects, so that a changed OVH model neither stops
a snapshot nor stores wrong data:

- an undocumented field is dropped and counted;
- an enum value outside the documented set is kept as the string APIv6 sent (enums are strings
  in the tables) and counted;
- an optional (nullable) top-level field whose value is invalid, anywhere inside it, is stored
  as NULL and counted;
- a required (never-null) field that is missing, null or invalid raises `SchemaMismatchError`,
  and the caller skips the whole object and counts it (see `schemas.build_inventory_table`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal, TypeAlias

import pyarrow as pa

Scalar = Literal["long", "double", "boolean", "string", "datetime"]

# OVH `datetime` values become UTC timestamps. pyarrow (26) truncates sub-millisecond digits
# when it converts a Python datetime to this type.
TIMESTAMP = pa.timestamp("ms", tz="UTC")

_ARROW_SCALARS: dict[str, pa.DataType] = {
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": TIMESTAMP,
}

_EXPECTED: dict[str, str] = {
    "long": "an integer (OVH type long)",
    "double": "a number (OVH type double)",
    "boolean": "true or false (OVH type boolean)",
    "string": "a string",
    "datetime": "an ISO 8601 date-time with a UTC offset (OVH type datetime)",
}

# Marks a field absent from an API object, as opposed to present with JSON null.
_MISSING = object()

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Struct:
    """An OVH model nested in another one (`complexType.UnitAndValue`, `dedicatedCloud.vmFiler`)."""

    fields: tuple[Field, ...]


@dataclass(frozen=True, init=False)
class OvhEnum:
    """An OVH enum type such as `dedicatedCloud.virtualMachinePowerState`: a string from a set.

    Values outside `values` are kept and counted, so that a value added by OVH does not stop a
    snapshot.
    """

    model: str
    values: frozenset[str]

    def __init__(self, model: str, values: Iterable[str]) -> None:
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "values", frozenset(values))


@dataclass(frozen=True)
class ArrayOf:
    """An OVH array type such as `dedicatedCloud.vmFiler[]`."""

    item: FieldType


FieldType: TypeAlias = Scalar | OvhEnum | Struct | ArrayOf


@dataclass(frozen=True)
class Field:
    """One field of an OVH model: its camelCase name, type, and whether null is allowed.

    `nullable=False` mirrors the schema's `canBeNull: false`: such a field must be present and
    not null in every object.
    """

    name: str
    type: FieldType
    nullable: bool = True

    @property
    def column(self) -> str:
        return snake_case(self.name)


class SchemaMismatchError(ValueError):
    """An API object whose value does not match the documented OVH model."""


def snake_case(name: str) -> str:
    """Convert an OVH camelCase field name: `spaceProvisionned` -> `space_provisionned`."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def unit_and_value(value_type: Literal["long", "double"]) -> Struct:
    """Return OVH's `complexType.UnitAndValue<long|double>`: `{unit, value}`."""
    return Struct((Field("unit", "string", nullable=False), Field("value", value_type, False)))


def arrow_type(field_type: FieldType) -> pa.DataType:
    if isinstance(field_type, Struct):
        return pa.struct([arrow_field(child) for child in field_type.fields])
    if isinstance(field_type, ArrayOf):
        return pa.list_(arrow_type(field_type.item))
    if isinstance(field_type, OvhEnum):
        return pa.string()
    return _ARROW_SCALARS[field_type]


def arrow_field(field: Field) -> pa.Field:
    return pa.field(field.column, arrow_type(field.type), nullable=field.nullable)


@dataclass
class Conversion:
    """The state of converting one table: the object being converted and the counts of odd values.

    Counts are keyed by schema path (dotted, `[]` for array items). `unknown_enum_values` is
    keyed by (path, value) and `enum_examples` names the first object that had each pair.
    `nulled_fields` counts the optional fields stored as NULL because their value was invalid,
    and `nulled_examples` keeps the first error message of each.
    """

    unknown_fields: Counter[str]
    # Names the object in error messages, e.g. "vm 42 of pcc-1 datacenter 7".
    subject: str = ""
    unknown_enum_values: Counter[tuple[str, str]] = dataclass_field(default_factory=Counter)
    enum_examples: dict[tuple[str, str], str] = dataclass_field(default_factory=dict)
    nulled_fields: Counter[str] = dataclass_field(default_factory=Counter)
    nulled_examples: dict[str, str] = dataclass_field(default_factory=dict)

    def fail(self, path: str, value: object, expected: str) -> SchemaMismatchError:
        return SchemaMismatchError(
            f"{self.subject}: field {path!r} is {_quote(value)}, expected {expected}; "
            "the API response does not match the documented OVH model"
        )


def _quote(value: object) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def convert_row(
    fields: tuple[Field, ...], data: Mapping[str, Any], conversion: Conversion
) -> dict[str, Any]:
    """Convert one API object to a row, storing NULL for each invalid optional field.

    Raises SchemaMismatchError, naming the field and the object, when a required field is
    missing, null or invalid: the caller then skips the object.
    """
    row: dict[str, Any] = {}
    for declared in fields:
        try:
            row[declared.column] = convert_field(
                declared,
                data.get(declared.name, _MISSING),
                conversion,
                path=declared.name,
                schema_path=declared.name,
            )
        except SchemaMismatchError as error:
            if not declared.nullable:
                raise
            row[declared.column] = None
            conversion.nulled_fields[declared.name] += 1
            conversion.nulled_examples.setdefault(declared.name, str(error))
    known = {declared.name for declared in fields}
    for name in data:
        if name not in known:
            conversion.unknown_fields[str(name)] += 1
    return row


def convert_object(
    fields: tuple[Field, ...],
    data: object,
    conversion: Conversion,
    *,
    path: str = "",
    schema_path: str = "",
) -> dict[str, Any]:
    """Convert one API object to a row keyed by snake_case column names.

    `path` locates the object in error messages (`networks[0].backing`); `schema_path` is the
    same without list indexes and keys the count of unknown fields.
    """
    if not isinstance(data, Mapping):
        raise conversion.fail(path or "(object)", data, "a JSON object")
    row: dict[str, Any] = {}
    for field in fields:
        row[field.column] = convert_field(
            field,
            data.get(field.name, _MISSING),
            conversion,
            path=_join(path, field.name),
            schema_path=_join(schema_path, field.name),
        )
    known = {field.name for field in fields}
    for name in data:
        if name not in known:
            conversion.unknown_fields[_join(schema_path, str(name))] += 1
    return row


def convert_field(
    field: Field, value: object, conversion: Conversion, *, path: str, schema_path: str
) -> Any:
    if value is None or value is _MISSING:
        if field.nullable:
            return None
        state = "missing" if value is _MISSING else "null"
        raise SchemaMismatchError(
            f"{conversion.subject}: field {path!r} is {state}, but the OVH model documents it "
            "as never null; the API response does not match the documented OVH model"
        )
    return _convert_value(field.type, value, conversion, path=path, schema_path=schema_path)


def _convert_value(
    field_type: FieldType, value: object, conversion: Conversion, *, path: str, schema_path: str
) -> Any:
    if isinstance(field_type, Struct):
        return convert_object(
            field_type.fields, value, conversion, path=path, schema_path=schema_path
        )
    if isinstance(field_type, ArrayOf):
        if not isinstance(value, list):
            raise conversion.fail(path, value, "a JSON array")
        item_field = Field("", field_type.item, nullable=False)
        return [
            convert_field(
                item_field,
                item,
                conversion,
                path=f"{path}[{index}]",
                schema_path=f"{schema_path}[]",
            )
            for index, item in enumerate(value)
        ]
    if isinstance(field_type, OvhEnum):
        return _convert_enum(field_type, value, conversion, path=path, schema_path=schema_path)
    return _convert_scalar(field_type, value, conversion, path)


def _convert_enum(
    field_type: OvhEnum, value: object, conversion: Conversion, *, path: str, schema_path: str
) -> str:
    if not isinstance(value, str):
        raise conversion.fail(path, value, f"a string ({field_type.model} enum)")
    if value not in field_type.values:
        key = (schema_path, value)
        conversion.unknown_enum_values[key] += 1
        conversion.enum_examples.setdefault(key, conversion.subject)
    return value


def _convert_scalar(kind: Scalar, value: object, conversion: Conversion, path: str) -> Any:
    # bool is a subclass of int in Python, so it is excluded explicitly from the numbers.
    if kind == "long":
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and _INT64_MIN <= value <= _INT64_MAX
        ):
            return value
        raise conversion.fail(path, value, _EXPECTED[kind])
    if kind == "double":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise conversion.fail(path, value, _EXPECTED[kind])
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise conversion.fail(path, value, _EXPECTED[kind])
    if kind == "string":
        if isinstance(value, str):
            return value
        raise conversion.fail(path, value, _EXPECTED[kind])
    return _parse_datetime(value, conversion, path)


def _parse_datetime(value: object, conversion: Conversion, path: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(dt.UTC)
    raise conversion.fail(path, value, _EXPECTED["datetime"])


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
