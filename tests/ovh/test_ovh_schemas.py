"""Arrow schemas of the inventory tables and the conversion of API objects into them."""

import datetime as dt
import logging
from collections import Counter

import pyarrow as pa
import pytest

from vscope_pipeline.ovh.fields import (
    ArrayOf,
    Conversion,
    Field,
    SchemaMismatchError,
    convert_field,
    snake_case,
    unit_and_value,
)
from vscope_pipeline.ovh.schemas import (
    INVENTORY_SCHEMAS,
    ApiObject,
    RejectedObject,
    build_inventory_table,
)

SNAPSHOT_AT = dt.datetime(2025, 3, 10, 6, 0, 0, tzinfo=dt.UTC)
SERVICE = "pcc-203-0-113-10"
UTC_MS = pa.timestamp("ms", tz="UTC")


def datacenter(datacenter_id=1201, **changes):
    data = {
        "datacenterId": datacenter_id,
        "name": f"datacenter{datacenter_id}",
        "description": "production",
        "commercialName": "SDDC",
        "commercialRangeName": "2018v1",
        "isRemovable": False,
        "version": "7.0",
        "horizonViewName": None,
    }
    data.update(changes)
    return data


def filer(filer_id=4101, **changes):
    data = {
        "filerId": filer_id,
        "name": "pcc-000441",
        "profile": "2t",
        "fullProfile": "2 TB",
        "size": {"unit": "GB", "value": 2000},
        "spaceUsed": 812.5,
        "spaceFree": 1187.5,
        "spaceProvisionned": 1500,
        "state": "delivered",
        "billingType": "monthly",
        "vmTotal": 12,
        "connectionState": "online",
        "activeNode": "master",
        "master": "nfs-441a.example",
        "slave": None,
        "isManagedByOvh": False,
        "resourceName": None,
    }
    data.update(changes)
    return data


def host(host_id=3101, **changes):
    data = {
        "hostId": host_id,
        "name": "198.51.100.11",
        "profile": "L",
        "profileCode": "l2",
        "rack": "R01-B01",
        "state": "delivered",
        "billingType": "monthly",
        "cpu": {"unit": "GHz", "value": 46.4},
        "ram": {"unit": "GB", "value": 256},
        "cpuNum": 16,
    }
    data.update(changes)
    return data


def vm(vm_id=5001, **changes):
    data = {
        "vmId": vm_id,
        "moRef": f"vm-{vm_id - 4000}",
        "name": "web-01",
        "powerState": "poweredOn",
    }
    data.update(changes)
    return data


def build(kind, objects):
    return build_inventory_table(kind, objects, snapshot_at=SNAPSHOT_AT)


@pytest.mark.parametrize(
    ("ovh_name", "column"),
    [
        ("memoryMax", "memory_max"),
        ("spaceProvisionned", "space_provisionned"),
        ("isManagedByOvh", "is_managed_by_ovh"),
        ("vmVcpuTotal", "vm_vcpu_total"),
        ("moRef", "mo_ref"),
        ("controler", "controler"),
        ("portKeySecurityPolicy", "port_key_security_policy"),
        ("cpuReadyPercent", "cpu_ready_percent"),
        ("vmwareToolsVersion", "vmware_tools_version"),
    ],
)
def test_snake_case_of_ovh_names(ovh_name, column):
    assert snake_case(ovh_name) == column


@pytest.mark.parametrize(
    ("kind", "leading"),
    [
        ("datacenters", ["service_name", "datacenter_id", "name"]),
        ("filers", ["service_name", "datacenter_id", "filer_id", "name"]),
        ("hosts", ["service_name", "datacenter_id", "host_id", "name"]),
        ("vms", ["service_name", "datacenter_id", "vm_id", "mo_ref", "name"]),
    ],
)
def test_schema_leading_and_trailing_columns(kind, leading):
    names = INVENTORY_SCHEMAS[kind].names
    assert names[: len(leading)] == leading
    assert names[-2:] == ["datacenter_label", "snapshot_at"]
    assert len(names) == len(set(names))


def test_schema_column_counts():
    counts = {kind: len(schema.names) for kind, schema in INVENTORY_SCHEMAS.items()}
    # Documented fields plus service_name, datacenter_id (except datacenters, where it is the
    # documented datacenterId), datacenter_label, snapshot_at and, for filers, is_global.
    assert counts == {"datacenters": 11, "filers": 22, "hosts": 26, "vms": 40}


UNIT_LONG = pa.struct(
    [pa.field("unit", pa.string(), nullable=False), pa.field("value", pa.int64(), nullable=False)]
)
UNIT_DOUBLE = pa.struct(
    [pa.field("unit", pa.string(), nullable=False), pa.field("value", pa.float64(), False)]
)


@pytest.mark.parametrize(
    ("kind", "column", "arrow_type", "nullable"),
    [
        ("datacenters", "datacenter_id", pa.int64(), False),
        ("datacenters", "is_removable", pa.bool_(), False),
        ("datacenters", "horizon_view_name", pa.string(), True),
        ("filers", "datacenter_id", pa.int64(), True),
        ("filers", "size", UNIT_LONG, False),
        ("filers", "space_provisionned", pa.float64(), True),
        ("filers", "is_managed_by_ovh", pa.bool_(), False),
        ("filers", "is_global", pa.bool_(), False),
        ("filers", "datacenter_label", pa.string(), True),
        ("hosts", "cpu", UNIT_DOUBLE, False),
        ("hosts", "ram", UNIT_LONG, False),
        ("hosts", "memory_used", pa.float64(), True),
        ("hosts", "uptime", pa.int64(), True),
        ("hosts", "datacenter_label", pa.string(), False),
        ("vms", "memory_max", pa.int64(), True),
        ("vms", "memory_tps", pa.string(), True),
        ("vms", "cpu_max", pa.float64(), True),
        ("vms", "power_state", pa.string(), False),
        ("vms", "snapshot_at", UTC_MS, False),
    ],
)
def test_schema_column_types(kind, column, arrow_type, nullable):
    field = INVENTORY_SCHEMAS[kind].field(column)
    assert field.type == arrow_type
    assert field.nullable is nullable


def test_schema_vm_nested_types():
    schema = INVENTORY_SCHEMAS["vms"]
    disk = pa.struct(
        [pa.field("id", pa.string(), False), pa.field("capacity", pa.float64(), False)]
    )
    assert schema.field("filers").type == pa.list_(
        pa.struct(
            [
                pa.field("name", pa.string(), False),
                pa.field("committed", pa.float64(), False),
                pa.field("disks", pa.list_(disk), False),
            ]
        )
    )
    assert schema.field("cdroms").type == pa.list_(
        pa.struct([pa.field("connected", pa.bool_()), pa.field("iso", pa.string())])
    )
    backup = schema.field("backup").type
    assert backup.field("backup_days").type == pa.list_(pa.string())
    assert backup.field("last_creation_time").type == UTC_MS
    assert backup.field("last_duration").type == UNIT_LONG
    restore_point = backup.field("restore_points").type.value_type
    assert restore_point.field("size").type == UNIT_LONG
    network = schema.field("networks").type.value_type
    assert network.field("mac_address").type == pa.string()
    policy = network.field("backing").type.field("port_key_security_policy").type
    assert policy.field("mac_changes").type == pa.struct(
        [pa.field("inherited", pa.bool_(), False), pa.field("value", pa.bool_(), False)]
    )


@pytest.mark.parametrize(
    ("ovh_type", "value", "converted"),
    [
        ("long", 4096, 4096),
        ("long", -1, -1),
        ("double", 12, 12.0),
        ("double", 0.25, 0.25),
        ("boolean", False, False),
        ("string", "poweredOn", "poweredOn"),
        ("datetime", "2025-03-09T03:54:00+01:00", dt.datetime(2025, 3, 9, 2, 54, tzinfo=dt.UTC)),
        ("datetime", "2025-03-09T02:54:00Z", dt.datetime(2025, 3, 9, 2, 54, tzinfo=dt.UTC)),
        (unit_and_value("long"), {"unit": "GB", "value": 21}, {"unit": "GB", "value": 21}),
        (unit_and_value("double"), {"unit": "GHz", "value": 46}, {"unit": "GHz", "value": 46.0}),
        (ArrayOf("string"), ["Monday", "Friday"], ["Monday", "Friday"]),
        (ArrayOf("long"), [], []),
    ],
)
def test_convert_field_values(ovh_type, value, converted):
    result = convert_field(
        Field("x", ovh_type), value, Conversion(unknown_fields=Counter()), path="x", schema_path="x"
    )
    assert result == converted
    assert type(result) is type(converted)


@pytest.mark.parametrize(
    ("ovh_type", "value", "expected"),
    [
        ("long", "4096", "'4096' (str), expected an integer (OVH type long)"),
        ("long", True, "True (bool), expected an integer (OVH type long)"),
        ("long", 2.5, "2.5 (float), expected an integer (OVH type long)"),
        ("long", 2**63, "9223372036854775808 (int), expected an integer (OVH type long)"),
        ("double", "1.5", "'1.5' (str), expected a number (OVH type double)"),
        ("boolean", 1, "1 (int), expected true or false (OVH type boolean)"),
        ("string", 7, "7 (int), expected a string"),
        (
            "datetime",
            "2025-03-09T02:54:00",
            "'2025-03-09T02:54:00' (str), expected an ISO 8601 date-time with a UTC offset "
            "(OVH type datetime)",
        ),
        ("datetime", "yesterday", "'yesterday' (str), expected an ISO 8601 date-time"),
        (ArrayOf("string"), "Monday", "'Monday' (str), expected a JSON array"),
        (unit_and_value("long"), 2000, "2000 (int), expected a JSON object"),
    ],
)
def test_convert_field_wrong_types(ovh_type, value, expected):
    conversion = Conversion(unknown_fields=Counter(), subject="vm 5001 of pcc-1 datacenter 1201")
    with pytest.raises(SchemaMismatchError) as caught:
        convert_field(Field("x", ovh_type), value, conversion, path="x", schema_path="x")
    assert str(caught.value).startswith(
        f"vm 5001 of pcc-1 datacenter 1201: field 'x' is {expected}"
    )


def test_wrong_type_on_required_field_skips_object():
    objects = [
        ApiObject(SERVICE, 1201, 5001, vm(powerState=1)),
        ApiObject(SERVICE, 1201, 5002, vm(5002)),
    ]
    converted = build("vms", objects)
    assert converted.table.column("vm_id").to_pylist() == [5002]
    assert converted.rejected == (
        RejectedObject(
            "vm 5001 of pcc-203-0-113-10 datacenter 1201",
            "vm 5001 of pcc-203-0-113-10 datacenter 1201: field 'powerState' is 1 (int), "
            "expected a string (dedicatedCloud.virtualMachinePowerState enum); the API response "
            "does not match the documented OVH model",
        ),
    )


def test_wrong_type_in_nested_field_nulls_it(caplog):
    network = {
        "label": "Network adapter 1",
        "macAddress": "00:50:56:13:89:00",
        "controler": "VirtualVmxnet3",
        "connected": True,
        "startConnected": "yes",
        "allowGuestControl": True,
        "status": "ok",
        "backing": {"type": "VSS"},
    }
    objects = [ApiObject(SERVICE, 1201, 5001, vm(networks=[network]))]
    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ovh.schemas"):
        converted = build("vms", objects)
    row = converted.table.to_pylist()[0]
    assert row["networks"] is None
    assert row["power_state"] == "poweredOn"
    assert dict(converted.nulled_fields) == {"networks": 1}
    assert converted.rejected == ()
    assert [record.getMessage() for record in caplog.records] == [
        "stored NULL for field 'networks' of 1 vms whose value is invalid; first: vm 5001 of "
        "pcc-203-0-113-10 datacenter 1201: field 'networks[0].startConnected' is 'yes' (str), "
        "expected true or false (OVH type boolean); the API response does not match the "
        "documented OVH model"
    ]


@pytest.mark.parametrize(("value", "state"), [(None, "null"), ("absent", "missing")])
def test_required_field_missing_or_null(value, state):
    data = host()
    if value == "absent":
        del data["rack"]
    else:
        data["rack"] = None
    converted = build(
        "hosts", [ApiObject(SERVICE, 1201, 3101, data), ApiObject(SERVICE, 1201, 3102, host(3102))]
    )
    assert converted.table.column("host_id").to_pylist() == [3102]
    (rejected,) = converted.rejected
    assert rejected.subject == "host 3101 of pcc-203-0-113-10 datacenter 1201"
    assert rejected.reason == (
        f"host 3101 of pcc-203-0-113-10 datacenter 1201: field 'rack' is {state}, but the OVH "
        "model documents it as never null; the API response does not match the documented "
        "OVH model"
    )


def test_missing_optional_fields_are_null():
    table = build("vms", [ApiObject(SERVICE, 1201, 5001, vm())]).table
    row = table.to_pylist()[0]
    assert row["vm_id"] == 5001
    assert row["mo_ref"] == "vm-1001"
    assert row["memory_max"] is None
    assert row["filers"] is None
    assert row["backup"] is None
    assert row["license"] is None
    assert row["datacenter_label"] == "pcc-203-0-113-10_datacenter1201"
    assert row["snapshot_at"] == SNAPSHOT_AT
    assert table.schema == INVENTORY_SCHEMAS["vms"]


def test_unknown_fields_dropped_counted_logged_once(caplog):
    cpu_with_extra = {"unit": "GHz", "value": 1, "x": 1}
    objects = [
        ApiObject(SERVICE, 1201, 3101, host(3101, vmPoweredOn=3)),
        ApiObject(SERVICE, 1201, 3102, host(3102, vmPoweredOn=4, cpu=cpu_with_extra)),
        ApiObject(SERVICE, 1201, 3103, host(3103, vmPoweredOn=5)),
    ]
    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ovh.schemas"):
        converted = build("hosts", objects)
    assert dict(converted.unknown_fields) == {"vmPoweredOn": 3, "cpu.x": 1}
    assert "vm_powered_on" not in converted.table.schema.names
    assert converted.table.num_rows == 3
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "dropped field 'cpu.x' of hosts, not in the documented dedicatedCloud.Host model "
        "(1 occurrences)",
        "dropped field 'vmPoweredOn' of hosts, not in the documented dedicatedCloud.Host model "
        "(3 occurrences)",
    ]


def test_unknown_fields_in_arrays_counted_once_per_path():
    disks = [
        {"id": "2000", "capacity": 40960, "thin": True},
        {"id": "2001", "capacity": 1024, "thin": False},
    ]
    data = vm(filers=[{"name": "pcc-000441", "committed": 3.5, "disks": disks}])
    converted = build("vms", [ApiObject(SERVICE, 1201, 5001, data)])
    assert dict(converted.unknown_fields) == {"filers[].disks[].thin": 2}
    row = converted.table.to_pylist()[0]
    assert row["filers"] == [
        {
            "name": "pcc-000441",
            "committed": 3.5,
            "disks": [{"id": "2000", "capacity": 40960.0}, {"id": "2001", "capacity": 1024.0}],
        }
    ]


def test_filers_global_and_datacenter_rows():
    objects = [
        ApiObject(SERVICE, 1201, 4101, filer(4101)),
        ApiObject(SERVICE, None, 4105, filer(4105, name="pcc-000453")),
    ]
    rows = build("filers", objects).table.to_pylist()
    assert [(row["datacenter_id"], row["filer_id"], row["is_global"]) for row in rows] == [
        (1201, 4101, False),
        (None, 4105, True),
    ]
    assert rows[0]["datacenter_label"] == "pcc-203-0-113-10_datacenter1201"
    assert rows[1]["datacenter_label"] is None
    assert rows[0]["size"] == {"unit": "GB", "value": 2000}
    assert rows[0]["space_provisionned"] == 1500.0


def test_datacenter_row_uses_its_own_id():
    rows = build("datacenters", [ApiObject(SERVICE, 1202, 1202, datacenter(1202))]).table
    assert rows.to_pylist()[0] == {
        "service_name": SERVICE,
        "datacenter_id": 1202,
        "name": "datacenter1202",
        "description": "production",
        "commercial_name": "SDDC",
        "commercial_range_name": "2018v1",
        "is_removable": False,
        "version": "7.0",
        "horizon_view_name": None,
        "datacenter_label": "pcc-203-0-113-10_datacenter1202",
        "snapshot_at": SNAPSHOT_AT,
    }


def test_id_field_must_match_listed_id():
    with pytest.raises(SchemaMismatchError) as caught:
        build("vms", [ApiObject(SERVICE, 1201, 5001, vm(5002))])
    assert str(caught.value) == (
        "vm 5001 of pcc-203-0-113-10 datacenter 1201: the API returned vmId 5002 for it; the "
        "response belongs to another object"
    )


def test_global_filer_rejection_names_it_global():
    objects = [
        ApiObject(SERVICE, None, 4105, filer(4105, size=None)),
        ApiObject(SERVICE, 1201, 4101, filer(4101)),
    ]
    (rejected,) = build("filers", objects).rejected
    assert rejected.subject == "filer 4105 of pcc-203-0-113-10 (global filer)"
    assert rejected.reason.startswith(
        "filer 4105 of pcc-203-0-113-10 (global filer): field 'size' is null"
    )


def test_empty_kind_gives_empty_table():
    table = build("hosts", []).table
    assert table.num_rows == 0
    assert table.schema == INVENTORY_SCHEMAS["hosts"]


def test_naive_snapshot_time_rejected():
    with pytest.raises(ValueError, match="has no time zone") as caught:
        build_inventory_table("hosts", [], snapshot_at=dt.datetime(2025, 3, 10, 6))
    assert str(caught.value) == (
        "snapshot_at '2025-03-10T06:00:00' has no time zone: pass an aware datetime, for "
        "example datetime.now(datetime.UTC)"
    )


def test_snapshot_time_stored_in_utc():
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2025, 3, 10, 7, 0, tzinfo=paris)
    table = build_inventory_table(
        "hosts", [ApiObject(SERVICE, 1201, 3101, host())], snapshot_at=at
    ).table
    assert table.column("snapshot_at").to_pylist() == [SNAPSHOT_AT]
