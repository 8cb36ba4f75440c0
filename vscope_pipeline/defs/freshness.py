"""Freshness checks: yesterday's metric partitions exist by a set UTC hour.

Dagster's time-partition freshness check passes when the last partition that should exist at
the latest deadline has been materialised. A sensor evaluates it after each deadline, so a
daily run that did not happen, or failed, shows up even when nothing else runs.

Dagster 1.13 marks these builders as superseded by `FreshnessPolicy`. They are kept on purpose:
a cron `FreshnessPolicy` looks at when the asset last materialised, so a backfill of an old day
would count as fresh, while this check tests whether yesterday's partition itself exists.
"""

from __future__ import annotations

import warnings

import dagster as dg

from vscope_pipeline.defs.metric_assets import METRIC_ASSETS
from vscope_pipeline.settings import load_freshness_hour

FRESHNESS_SENSOR_NAME = "vscope_freshness_checks"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    FRESHNESS_CHECKS = dg.build_time_partition_freshness_checks(
        assets=METRIC_ASSETS,
        deadline_cron=f"0 {load_freshness_hour()} * * *",
        timezone="UTC",
        # A late partition is a gap to look at, not a defect of stored data.
        severity=dg.AssetCheckSeverity.WARN,
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=FRESHNESS_CHECKS,
        name=FRESHNESS_SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
