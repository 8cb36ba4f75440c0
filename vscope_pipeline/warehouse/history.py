"""Build slowly changing history tables from every daily inventory snapshot.

Each history table has one row per entity and version. A version starts on the first snapshot
day on which a tracked attribute differs (NULL-safe, `IS DISTINCT FROM`) from the entity's
previous snapshot, or on which the entity appears again after being absent. `valid_from` is the
first snapshot day of the version and `valid_to` the first snapshot day after its last one,
exclusive: the start of the next version, or the first snapshot without the entity. `valid_to`
is NULL for a version still present in the latest snapshot. `deleted_on` is the first snapshot
day after the entity's last appearance, on every row of that entity, and NULL while the entity
is in the latest snapshot.

Only snapshot days count: a calendar day without a snapshot of the kind neither ends a
version nor marks an entity deleted. Live statistics (CPU used, network rates) are not tracked,
as they change on every snapshot.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

import duckdb

from vscope_pipeline.lake.layout import PARTITION_FILE, inventory_kind_key
from vscope_pipeline.lake.location import LakeLike, as_lake
from vscope_pipeline.ovh.schemas import INVENTORY_SCHEMAS, InventoryKind
from vscope_pipeline.warehouse.lake_sql import sql_string

log = logging.getLogger(__name__)

_DAY_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class HistorySpec:
    """One history table: the inventory kind it reads, its entity key and tracked columns."""

    table: str
    kind: InventoryKind
    keys: tuple[str, ...]
    attributes: tuple[str, ...]


HISTORY_SPECS: tuple[HistorySpec, ...] = (
    HistorySpec(
        "vm_history",
        "vms",
        ("service_name", "vm_id"),
        (
            "name",
            "mo_ref",
            "datacenter_id",
            "datacenter_label",
            "host_name",
            "cluster_name",
            "folder_name",
            "power_state",
            "cpu_num",
            "memory_max",
            "guest_os_family",
            "vmware_tools_version",
        ),
    ),
    HistorySpec(
        "host_history",
        "hosts",
        ("service_name", "host_id"),
        (
            "name",
            "datacenter_id",
            "datacenter_label",
            "cluster_name",
            "state",
            "connection_state",
            "in_maintenance",
            "profile",
            "cpu_num",
            "ram",
        ),
    ),
    # A global filer has a NULL datacenter_id, and NULL keys form one group in PARTITION BY.
    HistorySpec(
        "filer_history",
        "filers",
        ("service_name", "datacenter_id", "filer_id"),
        ("name", "datacenter_label", "size", "state", "profile", "connection_state"),
    ),
)


def snapshot_files(data_dir: LakeLike, kind: str) -> list[str]:
    """Return the DuckDB URL of the `data.parquet` of every `day=<YYYY-MM-DD>` of `kind`, by day."""
    lake = as_lake(data_dir)
    kind_path = lake.path(inventory_kind_key(kind))
    files = []
    for name in lake.child_names(kind_path):
        day_text = name.removeprefix("day=")
        # date.fromisoformat also accepts `20261116`, which is not a lake day folder.
        if not name.startswith("day=") or not _DAY_TEXT.fullmatch(day_text):
            continue
        try:
            date.fromisoformat(day_text)
        except ValueError:
            continue
        path = f"{kind_path}/{name}/{PARTITION_FILE}"
        if lake.is_file(path):
            files.append(lake.url(path))
    return sorted(files)


def history_sql(spec: HistorySpec, files: list[str], typed_rows: str) -> str:
    """Return the SELECT that computes `spec.table` from the snapshot `files`.

    `typed_rows` names a registered empty table with the kind's full inventory schema: the
    union by name with it gives a typed NULL column to a file written before a column existed.
    """
    file_list = "[" + ", ".join(sql_string(str(path)) for path in files) + "]"
    keys = ", ".join(spec.keys)
    attributes = ", ".join(spec.attributes)
    changed = " OR ".join(
        f"{name} IS DISTINCT FROM lag({name}) OVER entity" for name in spec.attributes
    )
    whole = "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
    return f"""
WITH snapshots AS (
    SELECT day, {keys}, {attributes} FROM (
        SELECT * FROM {typed_rows}
        UNION ALL BY NAME
        SELECT * FROM read_parquet({file_list}, hive_partitioning = true,
                                   hive_types = {{'day': DATE}}, union_by_name = true)
    )
),
snapshot_days AS (
    SELECT day, lag(day) OVER (ORDER BY day) AS previous_day,
           lead(day) OVER (ORDER BY day) AS next_day
    FROM (SELECT DISTINCT day FROM snapshots)
),
marked AS (
    SELECT s.*, d.next_day,
           -- A new version on first sight, after an absence, or on a changed attribute.
           CASE WHEN lag(s.day) OVER entity IS NULL
                  OR lag(s.day) OVER entity <> d.previous_day
                  OR {changed}
                THEN 1 ELSE 0 END AS starts_version
    FROM snapshots s JOIN snapshot_days d USING (day)
    WINDOW entity AS (PARTITION BY {keys} ORDER BY s.day)
),
numbered AS (
    SELECT *,
           sum(starts_version) OVER (PARTITION BY {keys} ORDER BY day) AS version,
           last_value(next_day) OVER (PARTITION BY {keys} ORDER BY day {whole}) AS deleted_on
    FROM marked
),
bounded AS (
    SELECT *,
           last_value(next_day) OVER (PARTITION BY {keys}, version ORDER BY day {whole})
               AS valid_to
    FROM numbered
)
SELECT {keys}, {attributes}, day AS valid_from, valid_to, deleted_on
FROM bounded
WHERE starts_version = 1
ORDER BY {keys}, valid_from
"""


def create_history_tables(con: duckdb.DuckDBPyConnection, data_dir: LakeLike) -> list[str]:
    """Create each history table whose kind has at least one snapshot; return their names.

    Raises duckdb.Error when a snapshot file cannot be read.
    """
    created = []
    for spec in HISTORY_SPECS:
        files = snapshot_files(data_dir, spec.kind)
        if not files:
            log.info("no %s snapshot, %s not created", spec.kind, spec.table)
            continue
        typed_rows = f"{spec.table}_typed_rows"
        con.register(typed_rows, INVENTORY_SCHEMAS[spec.kind].empty_table())
        try:
            con.execute(f"CREATE TABLE {spec.table} AS {history_sql(spec, files, typed_rows)}")
        finally:
            con.unregister(typed_rows)
        created.append(spec.table)
    return created
