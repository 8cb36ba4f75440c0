"""The summary `make demo` prints: what landed in DuckDB and a few queries to start from."""

from __future__ import annotations

from pathlib import Path

import duckdb

from vscope_pipeline.textable import format_table

TABLES = ("metric_points", "metric_catalog", "datacenters", "filers", "hosts", "vms")

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Busiest VMs by average CPU usage on the last day",
        """
SELECT v.name AS vm, p.entity AS mo_ref, round(avg(p.value), 2) AS avg_cpu_pct,
       round(max(p.value), 2) AS max_cpu_pct
FROM metric_points p
JOIN vms v ON v.mo_ref = p.entity AND v.datacenter_label = p.datacenter
WHERE p.metric = 'vscope.vm.cpu.usage.perc'
  AND p.day = (SELECT max(day) FROM metric_points)
GROUP BY ALL
ORDER BY avg_cpu_pct DESC
LIMIT 5""",
    ),
    (
        "Host network transmit per NIC, hourly average (KB/s)",
        """
SELECT entity AS host, nic, date_trunc('hour', ts) AS hour, round(avg(value), 1) AS avg_tx
FROM metric_points
WHERE metric = 'vscope.host.net.tx'
GROUP BY ALL
ORDER BY hour DESC, host, nic
LIMIT 5""",
    ),
    (
        "Datastore space used at the last point, against its size",
        """
SELECT f.name AS datastore, f.size.value AS size, f.size.unit AS size_unit,
       round(arg_max(p.value, p.ts) / 1024 / 1024, 1) AS used_gb
FROM metric_points p
JOIN filers f ON f.name = p.entity
WHERE p.metric = 'vscope.filer.datastore.diskspace.used'
GROUP BY ALL
ORDER BY used_gb DESC
LIMIT 5""",
    ),
)


def render_summary(database: Path) -> str:
    """Return the demo summary of `database`, opened read-only as a BI tool would."""
    out = [f"DuckDB file: {database}", ""]
    with duckdb.connect(str(database), read_only=True) as con:
        # Partition days are UTC days, so hours are UTC hours whatever the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        counts = [
            (name, con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
            for name in TABLES
        ]
        metrics = con.execute(
            "SELECT count(DISTINCT metric), min(day), max(day) FROM metric_points"
        ).fetchone()
        out += ["Rows per table:", format_table(["table", "rows"], counts), ""]
        out += [f"Metrics stored: {metrics[0]}, days {metrics[1]} .. {metrics[2]}", ""]  # type: ignore[index]
        for title, sql in EXAMPLE_QUERIES:
            cursor = con.execute(sql)
            columns = [column[0] for column in cursor.description or []]
            out += [f"-- {title}", sql.strip() + ";", format_table(columns, cursor.fetchall()), ""]
    return "\n".join(out)
