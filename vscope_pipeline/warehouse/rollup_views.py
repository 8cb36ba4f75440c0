"""The `metric_hourly` and `metric_daily` views over the rollup partitions of the lake."""

from __future__ import annotations

import duckdb

from vscope_pipeline.lake.layout import ROLLUP_GRAINS, ROLLUPS_DIR, RollupGrain, rollup_grain_key
from vscope_pipeline.lake.location import LakeLike, as_lake
from vscope_pipeline.warehouse.lake_sql import duckdb_message, has_files, sql_string

ROLLUP_VIEWS: dict[RollupGrain, str] = {"hour": "metric_hourly", "day": "metric_daily"}

ROLLUP_COLUMNS = (
    "metric, entity_kind, service_name, datacenter, entity, nic, bucket, samples, avg, min, max, "
    "p95, day"
)

_EMPTY_ROLLUP = """
SELECT
    NULL::VARCHAR AS metric, NULL::VARCHAR AS entity_kind, NULL::VARCHAR AS service_name,
    NULL::VARCHAR AS datacenter, NULL::VARCHAR AS entity, NULL::VARCHAR AS nic,
    NULL::TIMESTAMPTZ AS bucket, NULL::BIGINT AS samples, NULL::DOUBLE AS avg,
    NULL::DOUBLE AS min, NULL::DOUBLE AS max, NULL::DOUBLE AS p95, NULL::DATE AS day
WHERE false
"""


class RollupReadError(RuntimeError):
    """A rollup file that DuckDB failed to read while creating its view."""


def rollup_sql(data_dir: LakeLike, grain: RollupGrain) -> str:
    """Return the SELECT behind the view of one grain, a typed empty SELECT if it has no file.

    `metric` comes from the Hive folder name, pinned to VARCHAR as in metric_points, and `day`
    from the files, which hold one month each. Rollup folders of single days (`day=<D>`), the
    layout before month files, are not read.
    """
    lake = as_lake(data_dir)
    root = lake.path(rollup_grain_key(grain))
    if not has_files(lake, root, "metric=*/month=*/*.parquet"):
        return _EMPTY_ROLLUP
    pattern = sql_string(lake.url(f"{root}/metric=*/month=*/*.parquet"))
    return (
        f"SELECT {ROLLUP_COLUMNS} FROM read_parquet({pattern}, "
        "hive_partitioning = true, hive_types = {'metric': VARCHAR, 'month': VARCHAR})"
    )


def create_rollup_views(con: duckdb.DuckDBPyConnection, data_dir: LakeLike) -> list[str]:
    """Create `metric_hourly` and `metric_daily` and return their names.

    Raises RollupReadError, naming the rollup folder, when DuckDB fails to read a rollup file.
    """
    for grain in ROLLUP_GRAINS:
        try:
            con.execute(f"CREATE VIEW {ROLLUP_VIEWS[grain]} AS {rollup_sql(data_dir, grain)}")
        except duckdb.Error as error:
            raise RollupReadError(
                f"failed to read the rollup partitions under {_rollups_url(data_dir)}: "
                f"{duckdb_message(error)}. Re-materialize the metric partition that it names; "
                "its rollups are rewritten with it."
            ) from error
    return [ROLLUP_VIEWS[grain] for grain in ROLLUP_GRAINS]


def _rollups_url(data_dir: LakeLike) -> str:
    lake = as_lake(data_dir)
    return lake.url(lake.path(ROLLUPS_DIR))
