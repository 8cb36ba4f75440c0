"""The daily schedule: when it ticks and which day each tick requests."""

import datetime as dt

import dagster as dg
import pytest

from vscope_pipeline.definitions import defs
from vscope_pipeline.defs.partitions import days_in_window

SCHEDULE_NAME = "vscope_daily_ingest"

# Dagster 1.13's own partitioned-schedule code calls this deprecated method on every tick.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Function `JobDefinition.run_request_for_partition` is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def schedule() -> dg.ScheduleDefinition:
    return defs.resolve_schedule_def(SCHEDULE_NAME)


def _tick(schedule: dg.ScheduleDefinition, at: dt.datetime):
    context = dg.build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def test_schedule_runs_daily_at_0130_utc(schedule):
    assert schedule.cron_schedule == "30 1 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "vscope_ingest"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_tick_requests_previous_day(schedule):
    result = _tick(schedule, dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC))

    assert result.skip_message is None
    assert result.run_requests is not None
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key == "2026-11-19"
    assert request.run_key == "2026-11-19"
    assert request.job_name == "vscope_ingest"
    assert request.tags["dagster/partition"] == "2026-11-19"
    assert request.tags["dagster/schedule_name"] == SCHEDULE_NAME


def test_requested_partition_covers_one_day(schedule):
    request = _tick(schedule, dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC)).run_requests[0]
    partitions = defs.resolve_job_def("vscope_ingest").partitions_def
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)

    window = partitions.time_window_for_partition_key(request.partition_key)

    assert window.start == dt.datetime(2026, 11, 19, tzinfo=dt.UTC)
    assert window.end == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert days_in_window(window) == [dt.date(2026, 11, 19)]


def test_tick_on_new_year_requests_last_day(schedule):
    request = _tick(schedule, dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.UTC)).run_requests[0]

    assert request.partition_key == "2025-12-31"


def test_first_partition_requested_day_after_start(schedule):
    partitions = defs.resolve_job_def("vscope_ingest").partitions_def
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    start = partitions.start.astimezone(dt.UTC)

    on_start_day = _tick(schedule, start.replace(hour=1, minute=30))
    next_day = _tick(schedule, start.replace(hour=1, minute=30) + dt.timedelta(days=1))

    assert on_start_day.run_requests == []
    assert on_start_day.skip_message == "The job's PartitionsDefinition has no partitions"
    assert [request.partition_key for request in next_day.run_requests] == [
        start.date().isoformat()
    ]
