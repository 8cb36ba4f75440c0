"""Inventory snapshots of a day when a service's walk failed: its earlier rows are kept."""

import dagster as dg
import pyarrow as pa

from vscope_pipeline.collect import ServiceFailure
from vscope_pipeline.defs.inventory_assets import inventory_failures, keep_failed_service_rows
from vscope_pipeline.lake.writer import write_partition

SCHEMA = pa.schema(
    [
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("vm_id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
    ]
)


def _table(rows: list[tuple[str, int, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"service_name": s, "vm_id": i, "name": n} for s, i, n in rows], schema=SCHEMA
    )


def test_failed_service_rows_kept(tmp_path):
    write_partition(
        _table([("pcc-a", 1, "web-01"), ("pcc-b", 1, "db-01"), ("pcc-c", 7, "ci-01")]), tmp_path
    )
    fresh = _table([("pcc-a", 1, "web-01-renamed")])

    merged, kept = keep_failed_service_rows(fresh, tmp_path, {"pcc-b", "pcc-c"})

    assert kept == 2
    assert merged.equals(
        _table([("pcc-a", 1, "web-01-renamed"), ("pcc-b", 1, "db-01"), ("pcc-c", 7, "ci-01")])
    )


def test_nothing_kept_without_failure(tmp_path):
    write_partition(_table([("pcc-b", 1, "db-01")]), tmp_path)
    fresh = _table([("pcc-a", 1, "web-01")])

    assert keep_failed_service_rows(fresh, tmp_path, set()) == (fresh, 0)


def test_nothing_kept_without_earlier_snapshot(tmp_path):
    fresh = _table([("pcc-a", 1, "web-01")])

    assert keep_failed_service_rows(fresh, tmp_path / "day=2026-01-01", {"pcc-b"}) == (fresh, 0)


def test_other_schema_keeps_nothing(tmp_path, caplog):
    old = pa.table({"service_name": ["pcc-b"], "other": [1]})
    write_partition(old, tmp_path)
    fresh = _table([("pcc-a", 1, "web-01")])

    assert keep_failed_service_rows(fresh, tmp_path, {"pcc-b"}) == (fresh, 0)
    assert "cannot be read with the current schema, so no row of the failed services" in (
        caplog.text
    )


def test_inventory_failures_from_metadata():
    reasons = {"pcc-b": "GET /x failed", "pcc-a": "404"}
    metadata = {"failed_services": dg.MetadataValue.json(reasons)}

    assert inventory_failures(metadata) == [
        ServiceFailure("pcc-a", "inventory", "404"),
        ServiceFailure("pcc-b", "inventory", "GET /x failed"),
    ]
    assert inventory_failures({}) == []
