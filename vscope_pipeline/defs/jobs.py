"""The ingestion job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from vscope_pipeline.defs.freshness import FRESHNESS_CHECKS
from vscope_pipeline.defs.partitions import SCHEDULE_HOUR_UTC, SCHEDULE_MINUTE

INGEST_JOB_NAME = "vscope_ingest"

ingest_job = dg.define_asset_job(
    INGEST_JOB_NAME,
    # The freshness checks run from their own sensor: in a backfill of past days they would
    # only repeat that yesterday is not loaded yet.
    selection=dg.AssetSelection.groups("inventory", "metrics", "warehouse")
    - dg.AssetSelection.checks(*FRESHNESS_CHECKS),
    description="Snapshot the inventory, fetch the metrics of the selected days, rebuild DuckDB.",
)

daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job,
    name="vscope_daily_ingest",
    hour_of_day=SCHEDULE_HOUR_UTC,
    minute_of_hour=SCHEDULE_MINUTE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
