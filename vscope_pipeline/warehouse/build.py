"""Build the DuckDB file that analysts and BI tools open.

The database is rebuilt whole in a temporary folder beside the target. Its file then replaces
the target in one rename, so a reader that opens `vscope.duckdb` always finds a complete
database, and a failed build leaves the previous one in place. Metric points stay in
the Parquet lake: `metric_points` is a view over it, so a new day partition shows up without a
rebuild (once the lake holds at least one metric partition; before that the view is a typed
empty SELECT).

NOTE: DuckDB shares one database instance among the connections that one process opens on the
same path. While a connection to the old file stays open, `duckdb.connect()` in that same
process returns the old database; connections from other processes see the new file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.lake.layout import (
    INVENTORY_DIR,
    INVENTORY_KINDS,
    METRICS_DIR,
    latest_inventory_file,
)
from vscope_pipeline.lake.location import LakeLike, LakeLocation, as_lake
from vscope_pipeline.lake.staging import (
    PRIVATE_MODES,
    FileModes,
    claim_temporary_dir,
    make_dirs,
    remove_abandoned,
)
from vscope_pipeline.lake.storage_full import storage_full_error, storage_full_reason
from vscope_pipeline.warehouse.duckdb_s3 import HttpfsUnavailableError, prepare_session
from vscope_pipeline.warehouse.history import create_history_tables
from vscope_pipeline.warehouse.lake_sql import duckdb_message, has_files, sql_string
from vscope_pipeline.warehouse.named_views import create_named_views
from vscope_pipeline.warehouse.rollup_views import RollupReadError, create_rollup_views

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "vscope.duckdb"
# Start of the staging folder names beside the database. Older versions staged a file named
# `.vscope.duckdb.<hex>.tmp` (plus `.wal`), which the same prefix also cleans up.
STAGING_PREFIX = f".{WAREHOUSE_FILE}."

METRIC_POINTS_COLUMNS = "metric, entity_kind, service_name, datacenter, entity, nic, ts, value, day"

_EMPTY_METRIC_POINTS = """
SELECT
    NULL::VARCHAR AS metric, NULL::VARCHAR AS entity_kind, NULL::VARCHAR AS service_name,
    NULL::VARCHAR AS datacenter, NULL::VARCHAR AS entity, NULL::VARCHAR AS nic,
    NULL::TIMESTAMPTZ AS ts, NULL::DOUBLE AS value, NULL::DATE AS day
WHERE false
"""


class WarehouseBuildError(RuntimeError):
    """A lake file that failed to load into the new database. The previous database is kept."""


@dataclass(frozen=True)
class WarehouseSummary:
    """Result of `build_warehouse`: the published file, rows per object, snapshot day per kind."""

    path: Path
    row_counts: dict[str, int]
    inventory_days: dict[str, str | None]


def _metric_read_error(lake: LakeLocation, error: duckdb.Error) -> WarehouseBuildError:
    return WarehouseBuildError(
        f"failed to read the metric partitions under {lake.url(lake.path(METRICS_DIR))}: "
        f"{duckdb_message(error)}. Re-materialize the metric partition that it names."
    )


def _count_rows(
    con: duckdb.DuckDBPyConnection, lake: LakeLocation, tables: Sequence[str]
) -> dict[str, int]:
    counts = {}
    for name in tables:
        try:
            row = con.execute(f"SELECT count(*) FROM {name}").fetchone()
        except duckdb.Error as error:
            # Creating the view reads the first file only, but counting its rows reads them all.
            raise _metric_read_error(lake, error) from error
        counts[name] = int(row[0]) if row else 0
    return counts


def metric_points_sql(data_dir: LakeLike) -> str:
    """Return the SELECT behind the `metric_points` view.

    The path is absolute, or an `s3://` URL for a lake in a bucket, so that BI tools, whose
    working folder is not ours, resolve it. `day` and `metric` come from the Hive folder names;
    their types are pinned so that DuckDB does not have to guess them from the first folder it
    reads.
    """
    lake = as_lake(data_dir)
    root = lake.path(METRICS_DIR)
    if not has_files(lake, root, "metric=*/day=*/*.parquet"):
        return _EMPTY_METRIC_POINTS
    pattern = sql_string(lake.url(f"{root}/metric=*/day=*/*.parquet"))
    return (
        f"SELECT {METRIC_POINTS_COLUMNS} FROM read_parquet({pattern}, "
        "hive_partitioning = true, hive_types = {'metric': VARCHAR, 'day': DATE})"
    )


def catalog_table(catalog: Sequence[MetricSpec]) -> pa.Table:
    return pa.table(
        {
            "metric": [spec.name for spec in catalog],
            "entity_kind": [spec.entity_kind for spec in catalog],
            "unit": [spec.unit for spec in catalog],
            "description": [spec.description for spec in catalog],
            "label_keys": [list(spec.label_keys) for spec in catalog],
            "min_value": pa.array([spec.min_value for spec in catalog], pa.float64()),
            "max_value": pa.array([spec.max_value for spec in catalog], pa.float64()),
            "documented": [spec.documented for spec in catalog],
        }
    )


def _create_objects(
    con: duckdb.DuckDBPyConnection, lake: LakeLocation, catalog: Sequence[MetricSpec]
) -> tuple[dict[str, str | None], list[str]]:
    """Create every object and return the snapshot day per kind and the history tables."""
    try:
        prepare_session(con, lake.s3)
    except HttpfsUnavailableError as error:
        raise WarehouseBuildError(str(error)) from error
    try:
        con.execute(f"CREATE VIEW metric_points AS {metric_points_sql(lake)}")
    except duckdb.Error as error:
        raise _metric_read_error(lake, error) from error
    try:
        create_rollup_views(con, lake)
    except RollupReadError as error:
        # One error type for every unreadable lake file keeps callers' handling simple.
        raise WarehouseBuildError(str(error)) from error

    catalog_rows = catalog_table(catalog)
    con.register("catalog_rows", catalog_rows)
    con.execute("CREATE TABLE metric_catalog AS SELECT * FROM catalog_rows")
    con.unregister("catalog_rows")

    days: dict[str, str | None] = {}
    for kind in INVENTORY_KINDS:
        latest = latest_inventory_file(lake, kind)
        if latest is None:
            days[kind] = None
            log.warning("no inventory snapshot of %s under %s", kind, lake.url(lake.root))
            continue
        day, path = latest
        days[kind] = day
        try:
            con.execute(
                # Without hive_partitioning = false, DuckDB would add `kind` and `day` columns
                # from the folder names, and `day` would clash with metric_points.day in joins.
                f"CREATE TABLE {kind} AS SELECT * FROM read_parquet("
                f"{sql_string(lake.url(path))}, hive_partitioning = false)"
            )
        except duckdb.Error as error:
            raise WarehouseBuildError(
                f"failed to read the {kind} snapshot {lake.url(path)}: {duckdb_message(error)}. "
                "Re-materialize the inventory assets to rewrite it."
            ) from error
    try:
        history_tables = create_history_tables(con, lake)
    except duckdb.Error as error:
        inventory_url = lake.url(lake.path(INVENTORY_DIR))
        raise WarehouseBuildError(
            f"failed to read the inventory snapshots under {inventory_url} for the "
            f"history tables: {duckdb_message(error)}. Re-materialize the snapshot day that it "
            "names."
        ) from error
    create_named_views(con, history_tables)
    return days, history_tables


def build_warehouse(
    data_dir: Path,
    catalog: Sequence[MetricSpec],
    *,
    modes: FileModes = PRIVATE_MODES,
    lake: LakeLocation | None = None,
) -> WarehouseSummary:
    """Rebuild `<data_dir>/vscope.duckdb` from the lake and publish it in one rename.

    The lake is `lake`, by default the lake folder `data_dir`. For a lake in a bucket, the
    build session loads httpfs and creates a TEMPORARY S3 secret (see `duckdb_s3`); the views
    name `s3://` URLs and the published file contains no key.

    The new database is built in a private staging folder (mode 0o700) beside the target, so
    its write-ahead log and spill files are never readable by other users, and it is published
    with mode `modes.file` (0o600 by default). A missing `data_dir` is created with
    `modes.folder`. Staging folders left by a build that was killed are removed first.

    Raises WarehouseBuildError when a lake file fails to load, and StorageFullError when the
    disk, the quota or the file size limit is full. The previous database then stays in place
    and no temporary file is left behind.
    """
    target = data_dir / WAREHOUSE_FILE
    location = LakeLocation.local(data_dir) if lake is None else lake
    try:
        make_dirs(data_dir, mode=modes.folder)
        remove_abandoned(data_dir, STAGING_PREFIX)
        with claim_temporary_dir(data_dir, STAGING_PREFIX) as staging_dir:
            staging = staging_dir / WAREHOUSE_FILE
            with duckdb.connect(str(staging)) as con:
                days, history_tables = _create_objects(con, location, catalog)
                tables = ["metric_points", "metric_catalog"]
                tables += [kind for kind in INVENTORY_KINDS if days[kind] is not None]
                tables += history_tables
                counts = _count_rows(con, location, tables)
                con.execute("CHECKPOINT")
            os.chmod(staging, modes.file)
            os.replace(staging, target)
    except (OSError, duckdb.Error, WarehouseBuildError) as error:
        reason = storage_full_reason(error)
        if reason is not None:
            raise storage_full_error(target, reason, data_dir) from error
        raise
    log.info("published %s: %s", target, counts)
    return WarehouseSummary(path=target, row_counts=counts, inventory_days=days)
