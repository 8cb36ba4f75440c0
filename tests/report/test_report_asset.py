"""The report asset materialised on two ingested days, and the sensor that requests it."""

import base64
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from report_support import FIRST_DAY, LAST_DAY, IngestedDays

from vscope_pipeline.definitions import defs
from vscope_pipeline.defs.report_assets import (
    REPORT_KEY,
    REPORT_SENSOR_NAME,
    report_day,
    vscope_report,
)
from vscope_pipeline.defs.resources import VScopeSettingsResource

pytestmark = pytest.mark.integration

# The 7 days up to the partition day, of which the last two are ingested.
REPORT_FIRST = "2026-03-06"
NOT_LOADED = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
DATA_URI = re.compile(r"!\[([^\]]+)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


@pytest.fixture(scope="module")
def metadata(ingested: IngestedDays) -> dict[str, dg.MetadataValue]:
    result = dg.materialize(
        [vscope_report],
        partition_key=str(LAST_DAY),
        instance=ingested.instance,
        resources={"vscope_settings": VScopeSettingsResource()},
    )
    assert result.success
    materialization = result.asset_materializations_for_node("report__vscope_report")[0]
    return dict(materialization.metadata)


def test_metadata_names_file_and_period(ingested: IngestedDays, metadata):
    path = Path(metadata["path"].value)

    assert path == ingested.data_dir / "reports" / f"vscope-report-{REPORT_FIRST}-{LAST_DAY}.html"
    assert path.is_file()
    assert metadata["file_bytes"].value == path.stat().st_size
    assert metadata["first_day"].value == REPORT_FIRST
    assert metadata["last_day"].value == str(LAST_DAY)
    assert metadata["services"].value == ["pcc-203-0-113-10"]
    assert metadata["days_with_metrics"].value == 2
    assert metadata["days_not_loaded"].value == NOT_LOADED


def test_metadata_top_cpu_ready_table(ingested: IngestedDays, metadata):
    with duckdb.connect(str(ingested.database), read_only=True) as con:
        expected = con.execute(
            """
            SELECT entity, avg(value) FROM metric_points
            WHERE metric = 'vscope.vm.cpu.ready' AND day BETWEEN ? AND ?
            GROUP BY entity ORDER BY avg(value) DESC LIMIT 10
            """,
            [FIRST_DAY, LAST_DAY],
        ).fetchall()
    records = metadata["top_cpu_ready"].value.records

    assert len(records) == 10
    for record, (_, value) in zip(records, expected, strict=True):
        assert record.data["value"] == pytest.approx(value, abs=0.005 + 1e-9)
    for key in ("top_disk_latency", "top_memory"):
        assert len(metadata[key].value.records) == 10, key


def test_metadata_days_to_full(metadata):
    records = metadata["days_to_full"].value.records

    assert len(records) == 5
    for record in records:
        assert re.fullmatch(r"[\d,]+ days|not filling", record.data["days_to_full"]), record


def test_metadata_inventory_changes(metadata):
    assert metadata["inventory_created"].value == 0
    assert metadata["inventory_changed"].value == 1
    assert metadata["inventory_deleted"].value == 1


def test_metadata_plots_as_svg_images(metadata):
    images = DATA_URI.findall(metadata["plots"].value)

    assert [title for title, _ in images] == [
        "Top VMs by CPU ready",
        "Top VMs by disk latency",
        "Top VMs by memory use",
        "Host NIC throughput",
        "Datastore fill",
        "Inventory changes",
    ]
    for title, encoded in images:
        assert base64.b64decode(encoded).startswith(b"<svg"), title


def test_sensor_requests_last_ingested_day(ingested: IngestedDays):
    sensor = defs.get_repository_def().get_sensor_def(REPORT_SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=ingested.instance, repository_def=defs.get_repository_def()
    )

    result = sensor.evaluate_tick(context)

    assert [request.partition_key for request in result.run_requests] == [str(LAST_DAY)]
    assert [request.run_key for request in result.run_requests] == [ingested.outcomes[-1].run_id]
    assert result.run_requests[0].asset_selection in (None, [REPORT_KEY])


def test_report_day_from_run_tags():
    fallback = LAST_DAY

    assert report_day(
        {"dagster/asset_partition_range_end": "2026-03-09"}, fallback
    ).isoformat() == ("2026-03-09")
    assert report_day({"dagster/partition": "2026-03-08"}, fallback).isoformat() == "2026-03-08"
    assert report_day({}, fallback) == fallback
