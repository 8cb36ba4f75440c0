"""The DuckDB warehouse asset and its checks."""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from vscope_pipeline.catalog import ENTITY_KINDS, build_catalog
from vscope_pipeline.collect import ServicesFailedError, services_failed_message
from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS
from vscope_pipeline.defs.metric_assets import metric_asset_key
from vscope_pipeline.defs.ownership import ASSET_OWNERS
from vscope_pipeline.defs.resources import VScopeSettingsResource
from vscope_pipeline.defs.service_failures import WAREHOUSE_KEY, run_failures
from vscope_pipeline.lake.location import S3Connection
from vscope_pipeline.warehouse.build import build_warehouse
from vscope_pipeline.warehouse.duckdb_s3 import open_warehouse
from vscope_pipeline.warehouse.named_views import NAMED_VIEW_SPECS

# Days checked for duplicate keys: the ones a daily run has just written.
RECENT_DAYS_CHECKED = 3

# Unmatched series names listed in the check metadata; the count covers them all.
UNMATCHED_NAMES_SHOWN = 50


@dg.asset(
    key=WAREHOUSE_KEY,
    group_name="warehouse",
    kinds={"duckdb"},
    owners=ASSET_OWNERS,
    deps=[*INVENTORY_KEYS.values(), *(metric_asset_key(kind) for kind in ENTITY_KINDS)],
    description=(
        "DuckDB file for SQL and BI tools, rebuilt whole after every ingestion run: "
        "`metric_points` (a view over the Parquet lake, one row per metric, series and "
        "timestamp), the rollup views `metric_hourly` and `metric_daily` (one row per series and "
        "UTC hour or day), `metric_catalog` (one row per metric), the latest inventory snapshot "
        "as `datacenters`, `filers`, `hosts` and `vms` (one row per object), and history tables "
        "(one row per object and version)."
    ),
)
def vscope_duckdb(
    context: AssetExecutionContext, vscope_settings: VScopeSettingsResource
) -> Iterator[dg.MaterializeResult]:
    """Publish the lake and the latest inventory, then fail if a service of the run failed.

    The metric assets of a run that includes this asset leave their failed services to it (see
    `service_failures`), so the inventory tables are current for the services that succeeded.
    """
    settings = vscope_settings.settings
    summary = build_warehouse(
        settings.data_dir,
        build_catalog(settings.extra_metrics),
        modes=settings.file_modes,
        lake=settings.lake,
    )
    context.log.info("published %s with %s", summary.path, summary.row_counts)
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(summary.path)),
            **{f"rows_{name}": count for name, count in summary.row_counts.items()},
            "inventory_days": dg.MetadataValue.json(summary.inventory_days),
        }
    )
    failures, service_count = run_failures(
        context, [metric_asset_key(kind) for kind in ENTITY_KINDS]
    )
    if failures:
        raise ServicesFailedError(services_failed_message(failures, service_count))


def count_duplicate_rows(
    database: Path, days: int = RECENT_DAYS_CHECKED, s3: S3Connection | None = None
) -> int:
    """Count the rows of `metric_points` that repeat the key of another row.

    Only the last `days` days stored are read. A key present 3 times counts 2. `s3` is the
    connection to the lake's bucket, None for a local lake.

    Each metric-day is counted on its own, so the memory needed is that of one partition, not
    of all the days (one query over 3 days of a 500-VM fleet peaked at 6.3 GiB). A key cannot
    span two metric-days: it contains the metric and the timestamp, and the lake writer puts
    each point in the partition of its metric and UTC day.
    """
    total = 0
    with open_warehouse(database, s3) as con:
        partitions = con.execute(
            """
            SELECT DISTINCT metric, day FROM metric_points
            WHERE day > (SELECT max(day) FROM metric_points) - ?::INTEGER
            ORDER BY ALL
            """,
            [days],
        ).fetchall()
        for metric, day in partitions:
            row = con.execute(
                """
                SELECT count(*) - count(DISTINCT (service_name, datacenter, entity, nic, ts))
                FROM metric_points WHERE metric = ? AND day = ?
                """,
                [metric, day],
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


@dg.asset_check(
    asset=WAREHOUSE_KEY,
    description="No two rows of metric_points share metric, series and timestamp "
    f"over the last {RECENT_DAYS_CHECKED} days stored.",
)
def metric_points_unique(vscope_settings: VScopeSettingsResource) -> dg.AssetCheckResult:
    settings = vscope_settings.settings
    duplicates = count_duplicate_rows(settings.duckdb_path, s3=settings.lake.s3)
    return dg.AssetCheckResult(
        passed=duplicates == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicate_rows": duplicates},
    )


def check_completeness(
    database: Path, last_complete_day: dt.date, s3: S3Connection | None = None
) -> dg.AssetCheckResult:
    """Check that every inventory table has rows and that metrics reach `last_complete_day`."""
    counts: dict[str, int] = {}
    with open_warehouse(database, s3) as con:
        tables = {
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for kind in INVENTORY_KEYS:
            row = con.execute(f"SELECT count(*) FROM {kind}").fetchone() if kind in tables else None
            counts[kind] = int(row[0]) if row else 0
        row = con.execute("SELECT max(day) FROM metric_points").fetchone()
    last_day: dt.date | None = row[0] if row else None

    problems = []
    empty = [kind for kind, count in counts.items() if count == 0]
    if empty:
        problems.append(f"no rows in {', '.join(empty)}")
    if last_day is None:
        problems.append(f"no metric points, expected days up to {last_complete_day}")
    elif last_day < last_complete_day:
        problems.append(f"metric points end on {last_day}, expected {last_complete_day}")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata={
            **{f"rows_{kind}": count for kind, count in counts.items()},
            "empty_tables": dg.MetadataValue.json(empty),
            "last_metric_day": str(last_day),
            "last_complete_day": str(last_complete_day),
        },
    )


@dg.asset_check(
    asset=WAREHOUSE_KEY,
    description="Every inventory table has rows and metric_points reaches the last complete "
    "UTC day (yesterday).",
)
def warehouse_complete(vscope_settings: VScopeSettingsResource) -> dg.AssetCheckResult:
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    settings = vscope_settings.settings
    return check_completeness(settings.duckdb_path, yesterday, s3=settings.lake.s3)


def find_unmatched_series(database: Path, s3: S3Connection | None = None) -> list[str]:
    """Return the series of the last stored day that match no inventory entity, sorted.

    A series is `metric datacenter/entity`, with `/nic` for a per-NIC series. Every series of
    a kind whose named view is absent (no inventory snapshot of the kind) is unmatched.
    """
    with open_warehouse(database, s3) as con:
        views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        selects = []
        for spec in NAMED_VIEW_SPECS:
            if spec.view in views:
                nic = "nic" if spec.has_nic else "NULL"
                selects.append(
                    f"SELECT metric, datacenter, entity, {nic} AS nic, day FROM {spec.view} "
                    f"WHERE {spec.key} IS NULL"
                )
            else:
                selects.append(
                    "SELECT metric, datacenter, entity, nic, day FROM metric_points "
                    f"WHERE entity_kind = '{spec.entity_kind}'"
                )
        rows = con.execute(
            f"""
            WITH unmatched AS ({" UNION ALL ".join(selects)})
            SELECT DISTINCT metric || ' ' || datacenter || '/' || entity
                            || coalesce('/' || nic, '') AS series
            FROM unmatched
            WHERE day = (SELECT max(day) FROM metric_points)
            ORDER BY series
            """
        ).fetchall()
    return [series for (series,) in rows]


@dg.asset_check(
    asset=WAREHOUSE_KEY,
    description="Every series of the last day stored in metric_points matches an inventory "
    "entity (VM moRef, host or datastore name in its datacenter).",
)
def metric_points_matched(vscope_settings: VScopeSettingsResource) -> dg.AssetCheckResult:
    settings = vscope_settings.settings
    unmatched = find_unmatched_series(settings.duckdb_path, s3=settings.lake.s3)
    return dg.AssetCheckResult(
        passed=not unmatched,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unmatched_series": len(unmatched),
            "unmatched_names": dg.MetadataValue.json(unmatched[:UNMATCHED_NAMES_SHOWN]),
        },
    )
