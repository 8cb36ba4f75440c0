"""Dagster code location of vscope-pipeline: wiring only."""

from __future__ import annotations

import dagster as dg

from vscope_pipeline.defs.freshness import FRESHNESS_CHECKS, freshness_sensor
from vscope_pipeline.defs.inventory_assets import inventory_snapshot
from vscope_pipeline.defs.jobs import daily_ingest_schedule, ingest_job
from vscope_pipeline.defs.metric_assets import METRIC_ASSETS
from vscope_pipeline.defs.report_assets import report_after_warehouse, report_job, vscope_report
from vscope_pipeline.defs.resources import build_resources
from vscope_pipeline.defs.warehouse_assets import (
    metric_points_matched,
    metric_points_unique,
    vscope_duckdb,
    warehouse_complete,
)

defs = dg.Definitions(
    assets=[inventory_snapshot, *METRIC_ASSETS, vscope_duckdb, vscope_report],
    asset_checks=[
        metric_points_unique,
        warehouse_complete,
        metric_points_matched,
        *FRESHNESS_CHECKS,
    ],
    jobs=[ingest_job, report_job],
    schedules=[daily_ingest_schedule],
    sensors=[freshness_sensor, report_after_warehouse],
    resources=build_resources(),
)
