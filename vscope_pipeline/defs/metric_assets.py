"""Metric assets: one daily-partitioned asset per entity kind (VM, host, filer).

Each materialisation fetches every catalogue metric of its kind for the days of its partition
range and replaces the matching `metrics/metric=<name>/day=<day>/` partitions. A run may cover
several days (see the backfill policy), so a year of backfill is tens of runs, not hundreds.

Services are isolated: a service without a metrics token, whose inventory walk failed, or
whose OpenTSDB requests failed after their retries, keeps its stored rows (see `collect`), while
the others are fetched and stored. The asset then records its materialization, with the failed
services in the `failed_services` metadata, and one message names each failed service and why.
The asset fails with it, unless the warehouse runs later in the same run: the warehouse then
publishes first and fails the run (see `service_failures`).
"""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack

import dagster as dg
from dagster import AssetExecutionContext

from vscope_pipeline.catalog import (
    ENTITY_KINDS,
    EntityKind,
    MetricSpec,
    build_catalog,
    metrics_of_kind,
)
from vscope_pipeline.collect import (
    DatacenterTarget,
    MetricDayReport,
    MetricsFailedError,
    ServiceFailure,
    ServicesFailedError,
    collect_day,
    drop_metadata,
    open_service_clients,
    services_failed_message,
)
from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS, inventory_failures
from vscope_pipeline.defs.ownership import ASSET_OWNERS
from vscope_pipeline.defs.partitions import (
    build_daily_partitions,
    days_in_window,
    partition_policy_text,
)
from vscope_pipeline.defs.quality_checks import quality_check_results, quality_check_specs
from vscope_pipeline.defs.resources import OpenTSDBResource, VScopeSettingsResource
from vscope_pipeline.defs.service_failures import failures_metadata, warehouse_runs_later
from vscope_pipeline.metric_workers import MetricWorkerPool, WorkerSetup
from vscope_pipeline.quality import measure_days
from vscope_pipeline.settings import Settings
from vscope_pipeline.targets import load_targets

DAILY_PARTITIONS = build_daily_partitions()

# Days fetched by one run of a backfill.
DAYS_PER_RUN = 7

# Runs that query OpenTSDB share this Dagster pool, so parallel runs respect one limit.
OPENTSDB_POOL = "vscope_opentsdb"

_ENTITY_TABLE = {"vm": "vms", "host": "hosts", "filer": "filers"}
_ENTITY_NAME = {"vm": "virtual machine", "host": "ESXi host (and NIC)", "filer": "datastore"}


def metric_asset_key(kind: EntityKind) -> dg.AssetKey:
    return dg.AssetKey(["metrics", f"{kind}_metric_points"])


def _report_table(reports: list[MetricDayReport]) -> str:
    """Return one Markdown row per metric-day partition, the grain of completeness."""
    lines = [
        "| day | metric | entities expected | entities received | series | points | dropped "
        "| requests | retries | bytes | missing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.day} | {r.metric} | {r.entities_expected} | {r.entities_received} | {r.series} "
        f"| {r.rows} | {r.dropped_points} | {r.requests} | {r.retries} | {r.bytes_received} "
        f"| {', '.join(r.missing_entities[:5])}{' ...' if len(r.missing_entities) > 5 else ''} |"
        for r in reports
    ]
    return "\n".join(lines)


def _entity_gaps(report: MetricDayReport, shown: int = 10) -> str:
    """Return the missing and not-inventoried entities of a report, for its log line."""
    parts = []
    if report.missing_entities:
        parts.append(f", missing {len(report.missing_entities)}: {report.missing_entities[:shown]}")
    if report.unexpected_entities:
        parts.append(
            f", not in the inventory {len(report.unexpected_entities)}: "
            f"{report.unexpected_entities[:shown]}"
        )
    return "".join(parts)


def _latest_inventory_failures(context: AssetExecutionContext) -> list[ServiceFailure]:
    """Return the failed services of the latest inventory snapshot, which the targets come from."""
    event = context.instance.get_latest_materialization_event(INVENTORY_KEYS["datacenters"])
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return []
    return inventory_failures(dict(materialization.metadata))


def _collect_days(
    context: AssetExecutionContext,
    settings: Settings,
    opentsdb: OpenTSDBResource,
    catalog: Sequence[MetricSpec],
    days: Sequence[dt.date],
    targets: Sequence[DatacenterTarget],
    log_metric: Callable[[MetricDayReport], None],
) -> tuple[list[MetricDayReport], list[ServiceFailure]]:
    """Collect `days` one after the other; return the reports and the services that failed.

    A service whose OpenTSDB requests failed is left out of the days after, so the run spends
    no more retries on it. With VSCOPE_WORKERS above 1, the metric-days run in that many
    worker processes, started once for all the days.
    """
    reports: list[MetricDayReport] = []
    failures: list[ServiceFailure] = []
    with ExitStack() as stack:
        pool: MetricWorkerPool | None = None
        if settings.workers > 1 and targets:
            services = sorted({target.service_name for target in targets})
            setup = WorkerSetup(settings, {name: opentsdb.endpoint_for(name) for name in services})
            pool = stack.enter_context(MetricWorkerPool(settings.workers, setup))
            context.log.info("metric-days run in %d worker processes", settings.workers)
        for day in days:
            # Without a target, collect_day would only rewrite each partition as it is.
            if not targets:
                break
            try:
                if pool is not None:
                    reports += pool.collect_day(catalog, day, targets, on_metric_done=log_metric)
                else:
                    reports += collect_day(
                        catalog,
                        day,
                        targets,
                        opentsdb.client_for,
                        settings.lake,
                        max_workers=settings.opentsdb_tuning.max_concurrency,
                        on_metric_done=log_metric,
                        modes=settings.file_modes,
                    )
            except MetricsFailedError as error:
                reports += error.reports
                failures += error.failures
                failed = {failure.service_name for failure in error.failures}
                targets = [target for target in targets if target.service_name not in failed]
    return reports, failures


def build_metric_asset(kind: EntityKind) -> dg.AssetsDefinition:
    @dg.asset(
        key=metric_asset_key(kind),
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN),
        group_name="metrics",
        kinds={"python", "parquet", "opentsdb"},
        owners=ASSET_OWNERS,
        pool=OPENTSDB_POOL,
        check_specs=quality_check_specs(metric_asset_key(kind)),
        deps=[INVENTORY_KEYS["datacenters"], INVENTORY_KEYS[_ENTITY_TABLE[kind]]],
        description=(
            f"vScope metrics of every {_ENTITY_NAME[kind]} from OpenTSDB: one row per metric, "
            "series and timestamp, one Parquet partition per metric and UTC day. "
            + partition_policy_text(DAYS_PER_RUN)
        ),
    )
    def _metric_points(
        context: AssetExecutionContext,
        vscope_settings: VScopeSettingsResource,
        opentsdb: OpenTSDBResource,
    ) -> Iterator[dg.MaterializeResult]:
        settings = vscope_settings.settings
        catalog = metrics_of_kind(build_catalog(settings.extra_metrics), kind)
        all_targets = load_targets(settings.lake)
        days = days_in_window(context.partition_time_window)
        services = {target.service_name for target in all_targets}
        clients, token_failures = open_service_clients(services, opentsdb.client_for)
        targets = [target for target in all_targets if target.service_name in clients]
        failures = sorted(
            [*_latest_inventory_failures(context), *token_failures],
            key=lambda failure: (failure.service_name, failure.stage),
        )
        context.log.info(
            "fetching %d %s metrics for %d day(s) %s..%s over %d datacenter(s) of %d service(s)",
            len(catalog),
            kind,
            len(days),
            days[0],
            days[-1],
            len(targets),
            len(clients),
        )

        def log_metric(report: MetricDayReport) -> None:
            # `vscope-pipeline ingest` counts these lines for its progress: keep the start of
            # the message in step with progress.METRIC_DAY_LINE.
            context.log.info(
                "%s %s: %d/%d entities, %d series, %d rows, %d request(s), %d retries, "
                "dropped: %s%s",
                report.day,
                report.metric,
                report.entities_received,
                report.entities_expected,
                report.series,
                report.rows,
                report.requests,
                report.retries,
                report.decoded.describe_drops(),
                _entity_gaps(report),
            )

        reports, opentsdb_failures = _collect_days(
            context, settings, opentsdb, catalog, days, targets, log_metric
        )
        failures = sorted(
            [*failures, *opentsdb_failures],
            key=lambda failure: (failure.service_name, failure.stage),
        )

        service_count = len(services | {failure.service_name for failure in failures})
        qualities = measure_days(settings.lake, catalog, days)
        missing = sorted({key for report in reports for key in report.missing_entities})
        unexpected = sorted({key for report in reports for key in report.unexpected_entities})
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(r.rows for r in reports),
                "days": len(days),
                "first_day": days[0].isoformat(),
                "last_day": days[-1].isoformat(),
                "metrics": len(catalog),
                "series": sum(r.series for r in reports),
                "points": sum(r.points for r in reports),
                "requests": sum(r.requests for r in reports),
                "retries": sum(r.retries for r in reports),
                "splits": sum(r.splits for r in reports),
                "fallback_requests": sum(r.fallback_requests for r in reports),
                "dropped_points": sum(r.dropped_points for r in reports),
                **drop_metadata(reports),
                "kept_stored_partitions": sum(r.kept_stored for r in reports),
                "kept_rows_of_other_services": sum(r.kept_other_service_rows for r in reports),
                **failures_metadata(failures, service_count),
                "bytes_received": sum(r.bytes_received for r in reports),
                "file_bytes": sum(r.file_bytes for r in reports),
                "rollup_file_bytes": sum(r.rollup_file_bytes for r in reports),
                "missing_series": len(missing),
                "missing_series_names": dg.MetadataValue.json(missing[:100]),
                "unexpected_series": len(unexpected),
                "unexpected_series_names": dg.MetadataValue.json(unexpected[:100]),
                "downsample": settings.opentsdb_tuning.downsample or "raw points",
                "per_metric": dg.MetadataValue.md(_report_table(reports)),
            },
            check_results=quality_check_results(metric_asset_key(kind), qualities),
        )
        if failures:
            message = services_failed_message(failures, service_count, len(reports))
            if warehouse_runs_later(context):
                # The warehouse publishes the other services' data, then fails the run.
                context.log.error(message)
                return
            # After the materialization above, so the stored services' data are recorded.
            raise ServicesFailedError(message)

    return _metric_points


METRIC_ASSETS = [build_metric_asset(kind) for kind in ENTITY_KINDS]
