"""Read the figures of the report from the DuckDB file: rollup views and history tables.

Every query reads the days `first..last` (inclusive UTC days) only. The rollup views
(`metric_daily`, `metric_hourly`) carry one row per series and day or hour, so a period of a
year reads about 8,760 rows per series instead of 525,600 points.

NOTE: every metric figure, the days counted as loaded included, comes from the rollups. A day
whose points are in the lake without rollups (rollups are written with each metric partition)
shows as not loaded until that day is ingested again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any

import duckdb

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.location import S3Connection
from vscope_pipeline.report.forecast import FillForecast, estimate_days_to_full
from vscope_pipeline.warehouse.duckdb_s3 import open_warehouse
from vscope_pipeline.warehouse.history import HISTORY_SPECS, HistorySpec

TOP_COUNT = 10
# Periods up to this many days are plotted by hour, longer ones by day.
HOURLY_MAX_DAYS = 31
# kB in a GB as the inventory counts datastore sizes (GB of 1024 MB).
KB_PER_GB = 1_048_576
USED_SPACE_METRIC = "vscope.filer.datastore.diskspace.used"
NIC_METRICS = ("vscope.host.net.rx", "vscope.host.net.tx")

_KIND_LABEL = {"vm_history": "VM", "host_history": "host", "filer_history": "datastore"}


@dataclass(frozen=True)
class Ranking:
    """One top-10 bar chart: the VMs with the highest sample-weighted average of `metrics`."""

    plot_id: str
    title: str
    metrics: tuple[str, ...]
    unit: str
    measure: str


RANKINGS: tuple[Ranking, ...] = (
    Ranking(
        "top-cpu-ready",
        "Top VMs by CPU ready",
        ("vscope.vm.cpu.ready",),
        "ms",
        "average CPU ready time per sample: time the VM waited for a physical CPU",
    ),
    Ranking(
        "top-disk-latency",
        "Top VMs by disk latency",
        ("vscope.vm.disk.latency.read", "vscope.vm.disk.latency.write"),
        "ms",
        "average disk latency, reads and writes together",
    ),
    Ranking(
        "top-memory",
        "Top VMs by memory use",
        ("vscope.vm.mem.usage.perc",),
        "%",
        "average memory usage, in percent of the VM's configured memory",
    ),
)


@dataclass(frozen=True)
class RankedVm:
    """A VM of a top-10 ranking, with its name from the inventory when one matched."""

    vm: str
    mo_ref: str
    host: str | None
    value: float


@dataclass(frozen=True)
class HostThroughput:
    """A host's receive and transmit rates, summed over its NICs, per hour or day, in KB/s."""

    host: str
    times: list[dt.datetime]
    rx: list[float]
    tx: list[float]

    @property
    def peak(self) -> float:
        return max(r + t for r, t in zip(self.rx, self.tx, strict=True))


@dataclass(frozen=True)
class DatastoreFill:
    """A datastore's hourly (or daily) average used space, its size and its forecast."""

    name: str
    times: list[dt.datetime]
    used_kb: list[float]
    capacity_kb: float | None
    forecast: FillForecast

    @property
    def used_pct(self) -> list[float] | None:
        if not self.capacity_kb:
            return None
        return [100 * used / self.capacity_kb for used in self.used_kb]


@dataclass(frozen=True)
class InventoryChange:
    """A VM, host or datastore created, deleted or changed on a snapshot day of the period."""

    day: dt.date
    kind: str
    change: str
    name: str
    details: str


@dataclass(frozen=True)
class Coverage:
    """The days of the period with every documented metric, with some of them, or with none."""

    days: list[dt.date]
    missing_days: list[dt.date]
    # Days with fewer metrics than the catalogue documents: day -> metrics stored.
    partial_days: dict[dt.date, int]
    metrics_expected: int


@dataclass
class ReportData:
    """Every figure the page shows, read once from the DuckDB file."""

    first: dt.date
    last: dt.date
    services: list[str]
    coverage: Coverage
    rankings: dict[str, list[RankedVm]] = field(default_factory=dict)
    time_grain: str = "hour"
    hosts: list[HostThroughput] = field(default_factory=list)
    hosts_total: int = 0
    datastores: list[DatastoreFill] = field(default_factory=list)
    changes: list[InventoryChange] = field(default_factory=list)
    # History tables absent from the file, because the kind never had an inventory snapshot.
    missing_history: list[str] = field(default_factory=list)


def _objects(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
    ).fetchall()
    return {name for (name,) in rows}


def read_coverage(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> Coverage:
    """Count the documented metrics stored per day of the period, from `metric_daily`."""
    documented = [spec.name for spec in BUILTIN_METRICS]
    rows = con.execute(
        """
        SELECT day, count(DISTINCT metric) FROM metric_daily
        WHERE day BETWEEN ? AND ? AND list_contains(?, metric)
        GROUP BY day
        """,
        [first, last, documented],
    ).fetchall()
    stored = {day: int(count) for day, count in rows}
    days = [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]
    return Coverage(
        days=days,
        missing_days=[day for day in days if day not in stored],
        partial_days={day: n for day, n in sorted(stored.items()) if n < len(documented)},
        metrics_expected=len(documented),
    )


def read_services(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[str]:
    """Return the services with metrics in the period, or those of the inventory without any."""
    rows = con.execute(
        "SELECT DISTINCT service_name FROM metric_daily WHERE day BETWEEN ? AND ?", [first, last]
    ).fetchall()
    if not rows and "datacenters" in _objects(con):
        rows = con.execute("SELECT DISTINCT service_name FROM datacenters").fetchall()
    return sorted(str(name) for (name,) in rows if name is not None)


def _vm_names_sql(objects: set[str]) -> str:
    # The latest version of each VM, deleted ones included, names the moRef of its points.
    if "vm_history" in objects:
        return """
            SELECT service_name, datacenter_label, mo_ref,
                   arg_max(name, valid_from) AS name, arg_max(host_name, valid_from) AS host_name
            FROM vm_history GROUP BY ALL"""
    return """
        SELECT NULL::VARCHAR AS service_name, NULL::VARCHAR AS datacenter_label,
               NULL::VARCHAR AS mo_ref, NULL::VARCHAR AS name, NULL::VARCHAR AS host_name
        WHERE false"""


def read_ranking(
    con: duckdb.DuckDBPyConnection, ranking: Ranking, first: dt.date, last: dt.date
) -> list[RankedVm]:
    """Return the TOP_COUNT VMs with the highest sample-weighted average over the period."""
    rows = con.execute(
        f"""
        WITH averages AS (
            SELECT service_name, datacenter, entity,
                   sum(avg * samples) / sum(samples) AS value
            FROM metric_daily
            WHERE list_contains(?, metric) AND day BETWEEN ? AND ?
            GROUP BY ALL
        ), names AS ({_vm_names_sql(_objects(con))})
        SELECT coalesce(n.name, a.entity) AS vm, a.entity, n.host_name, a.value
        FROM averages a
        LEFT JOIN names n
          ON n.service_name = a.service_name AND n.datacenter_label = a.datacenter
         AND n.mo_ref = a.entity
        WHERE a.value IS NOT NULL
        ORDER BY a.value DESC, vm
        LIMIT {TOP_COUNT}
        """,
        [list(ranking.metrics), first, last],
    ).fetchall()
    return [RankedVm(str(vm), str(mo_ref), host, float(value)) for vm, mo_ref, host, value in rows]


def _entity_label(service_name: str, name: str, several_services: bool) -> str:
    # Two services may each have a host or datastore of the same name.
    return f"{service_name}/{name}" if several_services else str(name)


def time_grain(first: dt.date, last: dt.date) -> str:
    """Return `hour` for periods of up to HOURLY_MAX_DAYS days, `day` for longer ones."""
    return "hour" if (last - first).days + 1 <= HOURLY_MAX_DAYS else "day"


def read_host_throughput(
    con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date, grain: str
) -> list[HostThroughput]:
    """Return each host's receive and transmit rates over time, its NICs summed, busiest first."""
    view = "metric_hourly" if grain == "hour" else "metric_daily"
    rows = con.execute(
        f"""
        SELECT service_name, entity, bucket,
               coalesce(sum(avg) FILTER (metric = 'vscope.host.net.rx'), 0) AS rx,
               coalesce(sum(avg) FILTER (metric = 'vscope.host.net.tx'), 0) AS tx
        FROM {view}
        WHERE list_contains(?, metric) AND day BETWEEN ? AND ?
        GROUP BY ALL
        ORDER BY service_name, entity, bucket
        """,
        [list(NIC_METRICS), first, last],
    ).fetchall()
    several_services = len({service for service, *_ in rows}) > 1
    series: dict[tuple[str, str], HostThroughput] = {}
    for service, host, bucket, rx, tx in rows:
        label = _entity_label(service, host, several_services)
        entry = series.setdefault((service, host), HostThroughput(label, [], [], []))
        entry.times.append(bucket)
        entry.rx.append(float(rx))
        entry.tx.append(float(tx))
    return sorted(series.values(), key=lambda item: (-item.peak, item.host))


def read_datastore_fill(
    con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date, grain: str
) -> list[DatastoreFill]:
    """Return each datastore's used space over time, its size and days-to-full, fullest first.

    A global datastore is reported under every datacenter with the same value, so the series
    is keyed by service and name and its values averaged across datacenters.
    """
    view = "metric_hourly" if grain == "hour" else "metric_daily"
    rows = con.execute(
        f"""
        SELECT service_name, entity, bucket, avg(avg) AS used_kb
        FROM {view}
        WHERE metric = ? AND day BETWEEN ? AND ?
        GROUP BY ALL
        ORDER BY service_name, entity, bucket
        """,
        [USED_SPACE_METRIC, first, last],
    ).fetchall()
    sizes: dict[tuple[str, str], float] = {}
    if "filers" in _objects(con):
        size_rows = con.execute(
            """
            SELECT service_name, name,
                   max(size.value * CASE size.unit WHEN 'TB' THEN 1024 ELSE 1 END)
            FROM filers GROUP BY ALL
            """
        ).fetchall()
        sizes = {(service, name): float(gb) * KB_PER_GB for service, name, gb in size_rows if gb}
    points: dict[tuple[str, str], tuple[list[dt.datetime], list[float]]] = {}
    for service, name, bucket, used in rows:
        times, values = points.setdefault((str(service), str(name)), ([], []))
        times.append(bucket)
        values.append(float(used))
    fills = []
    several_services = len({service for service, _ in points}) > 1
    for key, (times, values) in points.items():
        capacity = sizes.get(key)
        forecast = estimate_days_to_full([t.timestamp() for t in times], values, capacity)
        label = _entity_label(key[0], key[1], several_services)
        fills.append(DatastoreFill(label, times, values, capacity, forecast))
    return sorted(fills, key=lambda item: (-(item.used_pct or [0.0])[-1], item.name))


def _describe_change(spec: HistorySpec, before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = [
        f"{name} {before[name]} → {after[name]}"
        for name in spec.attributes
        if before[name] != after[name]
    ]
    return "; ".join(changed) or "back in the inventory after an absence"


def _entity_changes(
    spec: HistorySpec, versions: list[dict[str, Any]], history_start: dt.date
) -> list[InventoryChange]:
    """Return the changes of one entity, whose versions are sorted by `valid_from`."""
    kind = _KIND_LABEL[spec.table]
    changes = []
    first_seen = versions[0]
    if first_seen["valid_from"] != history_start:
        changes.append(
            InventoryChange(first_seen["valid_from"], kind, "created", str(first_seen["name"]), "")
        )
    for before, after in pairwise(versions):
        details = _describe_change(spec, before, after)
        changes.append(
            InventoryChange(after["valid_from"], kind, "changed", str(after["name"]), details)
        )
    last_seen = versions[-1]
    if last_seen["deleted_on"] is not None:
        changes.append(
            InventoryChange(last_seen["deleted_on"], kind, "deleted", str(last_seen["name"]), "")
        )
    return changes


def read_inventory_changes(
    con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date
) -> tuple[list[InventoryChange], list[str]]:
    """Return the creations, deletions and changes in the period, and the absent history tables.

    An entity first seen on the kind's first snapshot day is not counted as created: that day
    only starts the history. A deletion is dated on the first snapshot without the entity.
    """
    objects = _objects(con)
    changes: list[InventoryChange] = []
    missing = []
    for spec in HISTORY_SPECS:
        if spec.table not in objects:
            missing.append(spec.table)
            continue
        columns = [*spec.keys, *spec.attributes, "valid_from", "deleted_on"]
        order = ", ".join([*spec.keys, "valid_from"])
        cursor = con.execute(f"SELECT {', '.join(columns)} FROM {spec.table} ORDER BY {order}")
        rows: list[dict[str, Any]] = [
            dict(zip(columns, row, strict=True)) for row in cursor.fetchall()
        ]
        if not rows:
            continue
        history_start = min(row["valid_from"] for row in rows)
        for _, versions in groupby(rows, key=lambda row: tuple(row[key] for key in spec.keys)):
            changes += _entity_changes(spec, list(versions), history_start)
    in_period = [change for change in changes if first <= change.day <= last]
    return sorted(in_period, key=lambda c: (c.day, c.kind, c.change, c.name)), missing


def read_report_data(
    database: Path, first: dt.date, last: dt.date, s3: S3Connection | None = None
) -> ReportData:
    """Read every figure of the report for the days `first..last` from `database`, read-only.

    `s3` is the connection to the lake's bucket, None for a lake in a folder.
    """
    with open_warehouse(database, s3) as con:
        # Rollup buckets are UTC hours and days.
        con.execute("SET TimeZone = 'UTC'")
        grain = time_grain(first, last)
        data = ReportData(
            first, last, read_services(con, first, last), read_coverage(con, first, last)
        )
        data.rankings = {r.plot_id: read_ranking(con, r, first, last) for r in RANKINGS}
        data.time_grain = grain
        hosts = read_host_throughput(con, first, last, grain)
        data.hosts_total = len(hosts)
        data.hosts = hosts[:TOP_COUNT]
        data.datastores = read_datastore_fill(con, first, last, grain)
        data.changes, data.missing_history = read_inventory_changes(con, first, last)
    return data
