"""The ingestion job and its daily schedule."""

from __future__ import annotations

import dagster as dg

INGEST_JOB_NAME = "vscope_ingest"

ingest_job = dg.define_asset_job(
    INGEST_JOB_NAME,
    selection=dg.AssetSelection.groups("inventory", "metrics", "warehouse"),
    description="Snapshot the inventory, fetch the metrics of the selected days, rebuild DuckDB.",
)

# Runs at 01:30 UTC for the day that ended at midnight, leaving vScope time to flush its last
# points of the day.
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job,
    name="vscope_daily_ingest",
    hour_of_day=1,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
