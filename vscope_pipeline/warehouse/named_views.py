"""Views that name each metric point with the inventory entity as it was on the point's day.

`vm_metrics`, `host_metrics` and `filer_metrics` read `metric_points` and pick, per series and
day, one version of the matching entity from the kind's history table:

- the version whose `valid_from` is the latest one on or before the day, which is the version
  valid that day (`valid_from <= day < valid_to`), or the last version of a deleted entity or of
  one absent from a snapshot;
- when the day is before the entity's first snapshot, its earliest version, because the first
  inventory snapshot is often taken after a backfill of earlier metric days.

A point whose entity matches no inventory entity keeps NULL entity columns. Each point yields
exactly one row, even when two versions overlap by mistake: the choice is made once per series
and day, with a total order on the candidate versions.

A view is created only when its history table exists, which needs at least one inventory
snapshot of the kind. Without it the view is absent, not empty.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import duckdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedViewSpec:
    """One named-metrics view: its metric entity kind, history table and columns."""

    view: str
    entity_kind: str
    history: str
    # The history key column that is NULL in the view when no inventory entity matched.
    key: str
    # `history_column AS view_column` items selected from the chosen version.
    columns: tuple[str, ...]
    # Condition on `p` (the series and day) and `h` (a history row) that names the same entity.
    match: str
    # True for kinds whose metrics have a `nic` label.
    has_nic: bool = False


NAMED_VIEW_SPECS: tuple[NamedViewSpec, ...] = (
    NamedViewSpec(
        "vm_metrics",
        "vm",
        "vm_history",
        "vm_id",
        (
            "vm_id",
            "name AS vm_name",
            "host_name",
            "cluster_name",
            "folder_name",
            "power_state",
            "cpu_num",
            "memory_max",
        ),
        "h.mo_ref = p.entity AND h.datacenter_label = p.datacenter",
    ),
    NamedViewSpec(
        "host_metrics",
        "host",
        "host_history",
        "host_id",
        (
            "host_id",
            "name AS host_name",
            "cluster_name",
            "state",
            "connection_state",
            "in_maintenance",
            "profile",
            "cpu_num",
            "ram",
        ),
        "h.name = p.entity AND h.datacenter_label = p.datacenter",
        has_nic=True,
    ),
    NamedViewSpec(
        "filer_metrics",
        "filer",
        "filer_history",
        "filer_id",
        (
            "filer_id",
            "datacenter_id AS filer_datacenter_id",
            "name AS filer_name",
            "size",
            "state",
            "profile",
            "connection_state",
        ),
        # A global datastore has no datacenter label, but its points carry the datacenter
        # they were read from, so it matches on its name within the service.
        "h.name = p.entity AND (h.datacenter_label = p.datacenter OR h.datacenter_label IS NULL)",
    ),
)


def named_view_sql(spec: NamedViewSpec) -> str:
    """Return the SELECT behind `spec.view`."""
    series = "service_name, datacenter, entity, day"
    chosen_columns = ", ".join(f"c.{column}" for column in spec.columns)
    nic = "p.nic, " if spec.has_nic else ""
    return f"""
WITH series_days AS (
    SELECT DISTINCT {series} FROM metric_points WHERE entity_kind = '{spec.entity_kind}'
),
candidates AS (
    SELECT p.service_name AS p_service_name, p.datacenter AS p_datacenter,
           p.entity AS p_entity, p.day AS p_day, h.*,
           row_number() OVER (
               PARTITION BY p.service_name, p.datacenter, p.entity, p.day
               ORDER BY
                   -- A datastore of the point's datacenter before a global one of the same
                   -- name. Then the latest version started on or before the day, or, for a day
                   -- before the first snapshot, the earliest version. The key breaks any tie.
                   h.datacenter_label IS NULL,
                   CASE WHEN h.valid_from <= p.day THEN h.valid_from END DESC NULLS LAST,
                   h.valid_from,
                   h.{spec.key}
           ) AS preference
    FROM series_days p
    JOIN {spec.history} h
      ON h.service_name = p.service_name AND {spec.match}
),
chosen AS (SELECT * FROM candidates WHERE preference = 1)
SELECT p.metric, m.unit, p.ts, p.day, p.value, p.service_name, p.datacenter, p.entity, {nic}
       {chosen_columns}
FROM metric_points p
LEFT JOIN metric_catalog m ON m.metric = p.metric
LEFT JOIN chosen c
  ON c.p_service_name = p.service_name AND c.p_datacenter = p.datacenter
 AND c.p_entity = p.entity AND c.p_day = p.day
WHERE p.entity_kind = '{spec.entity_kind}'
"""


def create_named_views(
    con: duckdb.DuckDBPyConnection, history_tables: Collection[str]
) -> list[str]:
    """Create each named-metrics view whose history table is in `history_tables`.

    `metric_points` and `metric_catalog` must exist. Returns the names of the created views.
    """
    created = []
    for spec in NAMED_VIEW_SPECS:
        if spec.history not in history_tables:
            log.info("no %s table, %s not created", spec.history, spec.view)
            continue
        con.execute(f"CREATE VIEW {spec.view} AS {named_view_sql(spec)}")
        created.append(spec.view)
    return created
