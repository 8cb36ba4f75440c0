"""The ingestion job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from vscope_pipeline.defs.freshness import FRESHNESS_CHECKS
from vscope_pipeline.defs.partitions import SCHEDULE_HOUR_UTC, SCHEDULE_MINUTE

INGEST_JOB_NAME = "vscope_ingest"

# The job keeps Dagster's default executor: `vscope-pipeline ingest` runs it in one process, the
# daemon and the web UI with one process per step. The metric work of a step is spread over
# VSCOPE_WORKERS processes by the step itself (see `metric_workers`), which balances the
# metric-days better than the three metric steps would.
# NOTE: under the multiprocess executor, the three metric steps may run at once, each with
# VSCOPE_WORKERS processes. The shared OpenTSDB limits still bound their requests together.
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
