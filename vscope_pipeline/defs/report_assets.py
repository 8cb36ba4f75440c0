"""The report asset, its job, and the sensor that runs it after each warehouse build.

The report runs in its own job, `vscope_report`, not in the ingestion job. A report that fails
(a plot that cannot be drawn, a full disk) then fails only its own run: the ingestion run that
stored the data stays green, and `vscope-pipeline ingest` still exits 0. The sensor requests
the report of a partition as soon as the warehouse is materialised, so a Dagster deployment
(daemon running) gets a report after every daily run without anyone starting it.
"""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import datetime as dt

import dagster as dg
from dagster import AssetExecutionContext
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, PARTITION_NAME_TAG

from vscope_pipeline.defs.metric_assets import DAILY_PARTITIONS
from vscope_pipeline.defs.ownership import ASSET_OWNERS
from vscope_pipeline.defs.report_metadata import report_metadata
from vscope_pipeline.defs.resources import VScopeSettingsResource
from vscope_pipeline.defs.warehouse_assets import WAREHOUSE_KEY
from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.report.build import default_report_path, write_report

REPORT_KEY = dg.AssetKey(["report", "vscope_report"])
REPORT_JOB_NAME = "vscope_report"
REPORT_SENSOR_NAME = "vscope_report_after_warehouse"

# Days in one report: the partition day and the 6 days before it, a week of data.
REPORT_DAYS = 7


def report_period(day: dt.date) -> tuple[dt.date, dt.date]:
    """Return the first and last day of the report of partition `day`."""
    return day - dt.timedelta(days=REPORT_DAYS - 1), day


@dg.asset(
    key=REPORT_KEY,
    group_name="report",
    kinds={"html", "python"},
    owners=ASSET_OWNERS,
    partitions_def=DAILY_PARTITIONS,
    deps=[WAREHOUSE_KEY],
    description=(
        f"HTML report for ops and FinOps managers: one page per UTC day, covering the "
        f"{REPORT_DAYS} days up to the partition day, written to "
        "`<data dir>/reports/vscope-report-<first>-<last>.html`. Top VMs by CPU ready, disk "
        "latency and memory use, host NIC throughput, datastore fill with days to full, and "
        "inventory changes. Daily partitions (UTC days), materialised by the job "
        f"`vscope_report`, which the sensor `{REPORT_SENSOR_NAME}` starts for the last ingested "
        "day after each warehouse build (after the 01:30 UTC daily ingestion), so a failed "
        "report never fails the ingestion run. A backfill writes one report per run."
    ),
)
def vscope_report(
    context: AssetExecutionContext, vscope_settings: VScopeSettingsResource
) -> dg.MaterializeResult:
    settings = vscope_settings.settings
    day = dt.date.fromisoformat(context.partition_key)
    first, last = report_period(day)
    written = write_report(
        settings.duckdb_path,
        first,
        last,
        default_report_path(settings.data_dir, first, last),
        modes=settings.file_modes,
        s3=settings.lake.s3,
    )
    context.log.info(f"wrote the report of {first}..{last} to {written.path}")
    return dg.MaterializeResult(metadata=report_metadata(written))


report_job = dg.define_asset_job(
    REPORT_JOB_NAME,
    selection=[REPORT_KEY],
    description=f"Write the HTML report of the {REPORT_DAYS} days up to the partition day.",
)


def report_day(tags: dict[str, str], today_complete: dt.date) -> dt.date:
    """Return the partition day to report after a warehouse build by a run with `tags`.

    That is the last day the run ingested: the end of its partition range, or its partition.
    A run without a partition (the warehouse materialised alone) gets the last complete day.
    """
    text = tags.get(ASSET_PARTITION_RANGE_END_TAG) or tags.get(PARTITION_NAME_TAG)
    return dt.date.fromisoformat(text) if text else today_complete


@dg.asset_sensor(
    asset_key=WAREHOUSE_KEY,
    job=report_job,
    name=REPORT_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Request the report of the last ingested day after each warehouse build.",
)
def report_after_warehouse(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest | None:
    run = context.instance.get_run_by_id(asset_event.run_id)
    day = report_day(dict(run.tags) if run else {}, last_complete_day())
    # One report per warehouse build: the run id makes the request unique.
    return dg.RunRequest(run_key=asset_event.run_id, partition_key=day.isoformat())
