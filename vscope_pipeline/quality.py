"""Data-quality measures of stored metric partitions, read back from the lake with DuckDB.

The metric assets run these after writing a day, so the figures describe the files as stored,
not the responses as received. Each metric-day gets one `PartitionQuality`:
- completeness against the inventory snapshot of that day (the latest snapshot taken on or
  before it, else the earliest one after it, since a backfill may predate every snapshot);
- duplicate keys (metric, datacenter, entity, NIC, timestamp);
- values outside the metric's plausible range from the catalogue;
- gaps: steps between two points of a series longer than twice the usual step of the
  metric-day (the median step over all its series);
- series whose entity the snapshot does not list at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from vscope_pipeline.catalog import EntityKind, MetricSpec
from vscope_pipeline.lake.layout import (
    file_key,
    inventory_days,
    inventory_partition_key,
    metric_partition_key,
)
from vscope_pipeline.lake.location import LakeLike, as_lake
from vscope_pipeline.targets import ENTITY_COLUMNS

# A step longer than this many times the usual step of the metric-day counts as a gap.
GAP_FACTOR = 2


@dataclass(frozen=True)
class ExpectedEntities:
    """Entities of one kind in one snapshot, as `datacenter/entity` keys.

    `reporting` are those expected to send series (running VMs, every host, every datastore of
    a datacenter); `listed` are all of them, powered-off VMs included. A global datastore has no
    datacenter, so `global_names` lists it by name: its series may come under any datacenter.
    """

    snapshot_day: str | None
    reporting: frozenset[str]
    listed: frozenset[str]
    global_names: frozenset[str] = frozenset()

    def lists(self, key: str) -> bool:
        """Tell whether the snapshot lists the entity of a `datacenter/entity` key."""
        return key in self.listed or key.partition("/")[2] in self.global_names


@dataclass(frozen=True)
class PartitionQuality:
    """Quality figures of one stored metric-day partition."""

    metric: str
    day: dt.date
    rows: int
    series: int
    duplicate_keys: int
    out_of_range: int
    # Steps longer than GAP_FACTOR times the usual step, and that usual step in seconds.
    gaps: int
    usual_step_s: float | None
    snapshot_day: str | None
    entities_expected: int
    missing_entities: tuple[str, ...]
    unlisted_entities: tuple[str, ...]

    @property
    def entities_received(self) -> int:
        return self.entities_expected - len(self.missing_entities)


def snapshot_day_for(data_dir: LakeLike, table: str, day: dt.date) -> str | None:
    """Return the snapshot day of inventory `table` that describes `day`, or None if none."""
    days = inventory_days(data_dir, table)
    if not days:
        return None
    on_or_before = [snapshot for snapshot in days if snapshot <= day.isoformat()]
    return on_or_before[-1] if on_or_before else days[0]


def expected_entities(data_dir: LakeLike, kind: EntityKind, day: dt.date) -> ExpectedEntities:
    """Return the entities of `kind` that the inventory snapshot describing `day` lists."""
    lake = as_lake(data_dir)
    table_name, column = ENTITY_COLUMNS[kind]
    snapshot = snapshot_day_for(lake, table_name, day)
    if snapshot is None:
        return ExpectedEntities(None, frozenset(), frozenset())
    path = lake.path(file_key(inventory_partition_key(table_name, snapshot)))
    columns = ["datacenter_label", column] + (["power_state"] if kind == "vm" else [])
    rows = pq.read_table(path, columns=columns, filesystem=lake.filesystem).to_pylist()
    listed, reporting, global_names = set(), set(), set()
    for row in rows:
        if row[column] is None:
            continue
        if row["datacenter_label"] is None:
            global_names.add(row[column])
            continue
        key = f"{row['datacenter_label']}/{row[column]}"
        listed.add(key)
        if kind != "vm" or row["power_state"] == "poweredOn":
            reporting.add(key)
    return ExpectedEntities(
        snapshot, frozenset(reporting), frozenset(listed), frozenset(global_names)
    )


# `{points}` is the stored partition: read_parquet of a local file, or an Arrow table that was
# read from object storage through pyarrow.fs, so that no DuckDB extension is needed.
_FIGURES_SQL = """
WITH points AS (SELECT * FROM {points}),
steps AS (
    SELECT epoch(ts - lag(ts) OVER (PARTITION BY datacenter, entity, nic ORDER BY ts)) AS step
    FROM points
),
usual AS (SELECT median(step) AS step FROM steps WHERE step > 0)
SELECT
    (SELECT count(*) FROM points),
    (SELECT count(DISTINCT (datacenter, entity, nic)) FROM points),
    (SELECT count(*) - count(DISTINCT (datacenter, entity, nic, ts)) FROM points),
    (SELECT count(*) FROM points
     WHERE value < coalesce($low, '-inf'::DOUBLE) OR value > coalesce($high, 'inf'::DOUBLE)),
    (SELECT count(*) FROM steps WHERE step > $factor * (SELECT step FROM usual)),
    (SELECT step FROM usual)
"""


def measure_partition(
    con: duckdb.DuckDBPyConnection,
    data_dir: LakeLike,
    spec: MetricSpec,
    day: dt.date,
    expected: ExpectedEntities,
) -> PartitionQuality:
    """Measure the stored partition of `spec` on `day`; a missing file measures as empty."""
    lake = as_lake(data_dir)
    path = lake.path(file_key(metric_partition_key(spec.name, day)))
    received: set[str] = set()
    figures: tuple = (0, 0, 0, 0, 0, None)
    if lake.is_file(path):
        parameters: dict[str, object] = {
            "low": spec.min_value,
            "high": spec.max_value,
            "factor": GAP_FACTOR,
        }
        if lake.is_local:
            points = "read_parquet($path)"
            parameters["path"] = path
        else:
            points = "stored_points"
            con.register(points, pq.read_table(path, filesystem=lake.filesystem))
        try:
            sql = _FIGURES_SQL.format(points=points)
            figures = con.execute(sql, parameters).fetchone() or figures
            received = {
                key
                for (key,) in con.execute(
                    f"SELECT DISTINCT datacenter || '/' || entity FROM {points}",
                    {"path": path} if lake.is_local else {},
                ).fetchall()
            }
        finally:
            if not lake.is_local:
                con.unregister(points)
    rows, series, duplicates, out_of_range, gaps, usual_step = figures
    return PartitionQuality(
        metric=spec.name,
        day=day,
        rows=rows,
        series=series,
        duplicate_keys=duplicates,
        out_of_range=out_of_range,
        gaps=gaps,
        usual_step_s=usual_step,
        snapshot_day=expected.snapshot_day,
        entities_expected=len(expected.reporting),
        missing_entities=tuple(sorted(expected.reporting - received)),
        unlisted_entities=tuple(sorted(key for key in received if not expected.lists(key))),
    )


def measure_days(
    data_dir: LakeLike, catalog: Sequence[MetricSpec], days: Sequence[dt.date]
) -> list[PartitionQuality]:
    """Measure every stored partition of `catalog` on `days`, day by day."""
    data_dir = as_lake(data_dir)
    results = []
    with duckdb.connect() as con:
        for day in days:
            expected = {
                kind: expected_entities(data_dir, kind, day)
                for kind in {spec.entity_kind for spec in catalog}
            }
            results += [
                measure_partition(con, data_dir, spec, day, expected[spec.entity_kind])
                for spec in catalog
            ]
    return results
