"""The daily partitions shared by every metric asset."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from vscope_pipeline.settings import load_start_date

# The daily schedule runs at 01:30 UTC for the day that ended at midnight, leaving vScope time
# to flush its last points of the day.
SCHEDULE_HOUR_UTC = 1
SCHEDULE_MINUTE = 30


def partition_policy_text(days_per_run: int) -> str:
    """Return the sentence on schedule and backfills for the descriptions of partitioned assets."""
    return (
        f"Daily partitions (UTC days): the schedule `vscope_daily_ingest` fills yesterday's "
        f"partition at {SCHEDULE_HOUR_UTC:02d}:{SCHEDULE_MINUTE:02d} UTC, and a backfill "
        f"runs {days_per_run} days per run."
    )


def build_daily_partitions() -> dg.DailyPartitionsDefinition:
    """Return UTC day partitions from VSCOPE_START_DATE to the last complete day.

    The partition of a day exists once that day has ended, so a run never stores a day that is
    still being written.
    """
    return dg.DailyPartitionsDefinition(start_date=load_start_date().isoformat(), timezone="UTC")


def days_in_window(window: dg.TimeWindow) -> list[dt.date]:
    """Return the UTC days a partition time window covers, in order."""
    first = window.start.astimezone(dt.UTC).date()
    last = window.end.astimezone(dt.UTC).date()
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days)]
