"""The DuckDB warehouse asset and its checks."""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import datetime as dt

import dagster as dg
import duckdb
from dagster import AssetExecutionContext

from vscope_pipeline.catalog import ENTITY_KINDS, build_catalog
from vscope_pipeline.defs.inventory_assets import INVENTORY_KEYS
from vscope_pipeline.defs.metric_assets import metric_asset_key
from vscope_pipeline.defs.resources import VScopeSettingsResource
from vscope_pipeline.warehouse.build import build_warehouse

WAREHOUSE_KEY = dg.AssetKey(["warehouse", "vscope_duckdb"])

# Days checked for duplicate keys: the ones a daily run has just written.
RECENT_DAYS_CHECKED = 3


@dg.asset(
    key=WAREHOUSE_KEY,
    group_name="warehouse",
    kinds={"duckdb"},
    deps=[*INVENTORY_KEYS.values(), *(metric_asset_key(kind) for kind in ENTITY_KINDS)],
    description=(
        "DuckDB file for SQL and BI tools: `metric_points` (a view over the Parquet lake), "
        "`metric_catalog`, and the latest inventory snapshot as `datacenters`, `filers`, "
        "`hosts` and `vms`."
    ),
)
def vscope_duckdb(
    context: AssetExecutionContext, vscope_settings: VScopeSettingsResource
) -> dg.MaterializeResult:
    settings = vscope_settings.settings
    summary = build_warehouse(settings.data_dir, build_catalog(settings.extra_metrics))
    context.log.info("published %s with %s", summary.path, summary.row_counts)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(summary.path)),
            **{f"rows_{name}": count for name, count in summary.row_counts.items()},
            "inventory_days": dg.MetadataValue.json(summary.inventory_days),
        }
    )


@dg.asset_check(
    asset=WAREHOUSE_KEY,
    description="No two rows of metric_points share metric, series and timestamp "
    f"over the last {RECENT_DAYS_CHECKED} days stored.",
)
def metric_points_unique(vscope_settings: VScopeSettingsResource) -> dg.AssetCheckResult:
    path = vscope_settings.settings.duckdb_path
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            """
            WITH recent AS (
                SELECT * FROM metric_points
                WHERE day > (SELECT max(day) FROM metric_points) - ?::INTEGER
            )
            SELECT count(*) - count(DISTINCT (metric, service_name, datacenter, entity, nic, ts))
            FROM recent
            """,
            [RECENT_DAYS_CHECKED],
        ).fetchone()
    duplicates = int(row[0]) if row else 0
    return dg.AssetCheckResult(
        passed=duplicates == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicate_rows": duplicates},
    )


@dg.asset_check(
    asset=WAREHOUSE_KEY,
    description="Every inventory table holds rows and metric_points holds the last day.",
)
def warehouse_complete(vscope_settings: VScopeSettingsResource) -> dg.AssetCheckResult:
    path = vscope_settings.settings.duckdb_path
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    counts: dict[str, int] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for kind in INVENTORY_KEYS:
            counts[kind] = (
                con.execute(f"SELECT count(*) FROM {kind}").fetchone()[0] if kind in tables else 0  # type: ignore[index]
            )
        last_day = con.execute("SELECT max(day) FROM metric_points").fetchone()[0]  # type: ignore[index]
    empty = [kind for kind, count in counts.items() if count == 0]
    return dg.AssetCheckResult(
        passed=not empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **{f"rows_{kind}": count for kind, count in counts.items()},
            "empty_tables": dg.MetadataValue.json(empty),
            "last_metric_day": str(last_day),
            "last_metric_day_is_yesterday": last_day == yesterday,
        },
    )
