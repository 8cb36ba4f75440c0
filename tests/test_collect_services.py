"""Metric partitions shared by several services: a write replaces only the services fetched."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_collect import CPU, DAY, FakeOpenTSDB, _rows

from vscope_pipeline.collect import (
    DatacenterTarget,
    ServiceFailure,
    collect_day,
    open_service_clients,
    services_failed_message,
)
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.ovh.errors import OvhRequestError
from vscope_pipeline.ovh.token import TokenUnavailableError

SERVICE_A = "pcc-203-0-113-10"
SERVICE_B = "pcc-203-0-113-11"
DC_A = f"{SERVICE_A}_datacenter1201"
DC_B = f"{SERVICE_B}_datacenter1301"
TARGET_A = DatacenterTarget(SERVICE_A, DC_A, {"vm": frozenset({"vm-1", "vm-2"})})
TARGET_B = DatacenterTarget(SERVICE_B, DC_B, {"vm": frozenset({"vm-1"})})


def _stored(data_dir: Path) -> pa.Table:
    return pq.read_table(metric_partition_dir(data_dir, CPU.name, DAY) / "data.parquet")


def _store(data_dir: Path, *tables: pa.Table) -> None:
    write_partition(pa.concat_tables(tables), metric_partition_dir(data_dir, CPU.name, DAY))


def _shifted(table: pa.Table, offset: float) -> pa.Table:
    """Return `table` with `offset` added to every value, to tell two fetches apart."""
    values = [value + offset for value in table.column("value").to_pylist()]
    index = table.schema.get_field_index("value")
    return table.set_column(index, table.schema.field(index), pa.array(values, pa.float64()))


def test_failed_service_rows_kept(tmp_path):
    old_a = _rows("vm", DC_A, ["vm-1", "vm-2"], service=SERVICE_A)
    old_b = _rows("vm", DC_B, ["vm-1"], service=SERVICE_B)
    _store(tmp_path, old_a, old_b)
    new_a = _shifted(old_a, 100.0)
    client = FakeOpenTSDB({(CPU.name, DC_A): new_a})

    (report,) = collect_day([CPU], DAY, [TARGET_A], lambda _: client, tmp_path)

    stored = _stored(tmp_path)
    assert stored.equals(pa.concat_tables([new_a, old_b]))
    assert report.rows == 4
    assert report.kept_other_service_rows == 2
    assert report.entities_expected == 2


def test_fetched_service_rows_replaced(tmp_path):
    old_a = _rows("vm", DC_A, ["vm-1", "vm-2"], service=SERVICE_A)
    old_b = _rows("vm", DC_B, ["vm-1"], service=SERVICE_B)
    _store(tmp_path, old_b, old_a)
    new_a = _shifted(old_a, 100.0)
    new_b = _shifted(old_b, 200.0)
    client = FakeOpenTSDB({(CPU.name, DC_A): new_a, (CPU.name, DC_B): new_b})

    (report,) = collect_day([CPU], DAY, [TARGET_A, TARGET_B], lambda _: client, tmp_path)

    assert _stored(tmp_path).equals(pa.concat_tables([new_a, new_b]))
    assert report.kept_other_service_rows == 0


def test_unreadable_partition_replaced(tmp_path, caplog):
    folder = metric_partition_dir(tmp_path, CPU.name, DAY)
    folder.mkdir(parents=True)
    (folder / "data.parquet").write_bytes(b"not parquet")
    new_a = _rows("vm", DC_A, ["vm-1", "vm-2"], service=SERVICE_A)
    client = FakeOpenTSDB({(CPU.name, DC_A): new_a})

    (report,) = collect_day([CPU], DAY, [TARGET_A], lambda _: client, tmp_path)

    assert _stored(tmp_path).equals(new_a)
    assert report.kept_other_service_rows == 0
    assert "cannot be read, so no row of it is kept" in caplog.text


def test_open_service_clients_isolates_failures():
    client = FakeOpenTSDB({})
    missing = TokenUnavailableError(f"no vScope metrics token for user 2101 of {SERVICE_B}")
    refused = OvhRequestError(
        "GET /dedicatedCloud/pcc-3/user failed", method="GET", path="/dedicatedCloud/pcc-3/user"
    )
    errors: dict[str, Exception] = {SERVICE_B: missing, "pcc-3": refused}

    def client_for(service_name: str) -> FakeOpenTSDB:
        if service_name in errors:
            raise errors[service_name]
        return client

    clients, failures = open_service_clients({SERVICE_B, "pcc-3", SERVICE_A}, client_for)

    assert clients == {SERVICE_A: client}
    # In service name order, whatever the order of the set.
    assert failures == [
        ServiceFailure(
            SERVICE_B, "metrics token", f"no vScope metrics token for user 2101 of {SERVICE_B}"
        ),
        ServiceFailure("pcc-3", "metrics token", "GET /dedicatedCloud/pcc-3/user failed"),
    ]


def test_open_service_clients_passes_other_errors():
    def client_for(service_name: str) -> FakeOpenTSDB:
        raise KeyError(service_name)

    with pytest.raises(KeyError):
        open_service_clients({SERVICE_A}, client_for)


def test_services_failed_message():
    failures = [
        ServiceFailure(SERVICE_B, "inventory", "GET /x failed"),
        ServiceFailure("pcc-3", "metrics token", "no token"),
    ]

    assert services_failed_message(failures, 3) == (
        "2 of 3 dedicatedCloud service(s) failed, and the data of the other services are "
        "stored. Fix the cause, then run the same days again to fill the failed services: "
        f"{SERVICE_B} (inventory): GET /x failed; pcc-3 (metrics token): no token"
    )


def test_services_failed_message_all_failed():
    failures = [
        ServiceFailure(SERVICE_B, "inventory", "GET /x failed"),
        ServiceFailure(SERVICE_B, "metrics token", "no token"),
    ]

    assert services_failed_message(failures, 1) == (
        "all 1 dedicatedCloud service(s) failed, so no new data are stored. Fix the cause, "
        f"then run the same days again: {SERVICE_B} (inventory): GET /x failed; "
        f"{SERVICE_B} (metrics token): no token"
    )


def test_all_failed_message_counts_stored():
    failures = [ServiceFailure(SERVICE_B, "OpenTSDB", "HTTP 500")]

    assert services_failed_message(failures, 1, stored_partitions=3) == (
        "all 1 dedicatedCloud service(s) failed after 3 metric partition(s) were stored, "
        "which are kept. Fix the cause, then run the same days again: "
        f"{SERVICE_B} (OpenTSDB): HTTP 500"
    )


def test_no_day_lost_across_services(tmp_path):
    """Three runs of one day: both services, then A alone, then B alone."""
    rows_a = _rows("vm", DC_A, ["vm-1", "vm-2"], service=SERVICE_A)
    rows_b = _rows("vm", DC_B, ["vm-1"], service=SERVICE_B)
    client = FakeOpenTSDB({(CPU.name, DC_A): rows_a, (CPU.name, DC_B): rows_b})

    for targets in ([TARGET_A, TARGET_B], [TARGET_A], [TARGET_B]):
        collect_day([CPU], DAY, targets, lambda _: client, tmp_path)
        assert _stored(tmp_path).equals(pa.concat_tables([rows_a, rows_b]))
