"""Ten example queries on the DuckDB file, each answering a question an operator asks often.

Every query reads the last UTC day stored of the metrics it reads (or the days up to it for
trends), so it runs unchanged on any warehouse the pipeline built. That last day is looked up
for those metrics only, because DuckDB then opens only their partition files, not every file
of the view. On `metric_daily` it comes from a window function over the rows already read: a
scalar subquery would make DuckDB list every file of the view a second time, which took about
as long as the rest of the query on a year of rollups. docs/example-queries.md lists the same
SQL.

Each query that reads metrics has two forms. `sql` reads the rollups (`metric_daily`, or
`metric_hourly` where it needs hours), so a dashboard over a year reads about 8,760 rows per
series instead of 525,600 points. `raw_sql` computes the same figures from `metric_points`.
Both forms give the same sample counts, minimums and maximums, and averages up to float
rounding: the rollup form weights each bucket's average by its samples,
`sum(avg * samples) / sum(samples)`. Two figures cannot be derived exactly from rollups:

- A 95th percentile over several days is the highest daily p95 of the period (the p95 of the
  worst day). On a one-day window it is the exact p95 of that day. Over a longer window it is
  usually at or above the exact p95, but not always, because each daily p95 interpolates
  between two ranks.
- A datastore's growth is the least-squares slope of its hourly averages against the start of
  each hour, and its used space is the average of the last hour stored, both close to the
  raw figures for a series that changes slowly.

`{days}` in a template is the window in days, ending on the last day stored; `sql` and
`raw_sql` use the example's default window, and `sql_over` / `raw_sql_over` take another.
"""

from __future__ import annotations

from dataclasses import dataclass

DAYS_PLACEHOLDER = "{days}"


@dataclass(frozen=True)
class ExampleQuery:
    """One documented example: a short title, the question it answers, and its two SQL forms.

    `template` reads the rollups and `raw_template` the raw points. `days` is the default
    window in days, None for a query that reads no metric (both templates are then the same).
    """

    title: str
    description: str
    template: str
    raw_template: str
    days: int | None = 1

    @property
    def sql(self) -> str:
        """The documented SQL: the rollup form over the default window."""
        return self.sql_over(self.days)

    @property
    def raw_sql(self) -> str:
        """The raw-point form over the default window, giving the same figures as `sql`."""
        return self.raw_sql_over(self.days)

    def sql_over(self, days: int | None) -> str:
        """Return the rollup form over the `days` days up to the last day stored."""
        return _render(self.template, days)

    def raw_sql_over(self, days: int | None) -> str:
        """Return the raw-point form over the `days` days up to the last day stored."""
        return _render(self.raw_template, days)


def _render(template: str, days: int | None) -> str:
    if DAYS_PLACEHOLDER not in template:
        return template
    if days is None or days < 1:
        raise ValueError(f"window of {days!r} days is invalid: expected a whole number >= 1")
    return template.replace(DAYS_PLACEHOLDER, str(days))


TOP_CPU_READY = ExampleQuery(
    "Top VMs by CPU ready",
    "The 10 VMs that waited longest for a physical CPU on the last day, with their host and "
    "vCPU count. CPU ready is in milliseconds per sample; a high value with a low CPU usage "
    "points at a crowded host or too many vCPUs.",
    """
SELECT v.name AS vm, v.host_name AS host, v.cpu_num AS vcpus,
       round(sum(r.avg * r.samples) / sum(r.samples), 1) AS avg_ready_ms,
       round(max(r.p95), 1) AS p95_ready_ms,
       round(max(r.max), 1) AS max_ready_ms
FROM (SELECT *, max(day) OVER () AS last_day
      FROM metric_daily WHERE metric = 'vscope.vm.cpu.ready') r
JOIN vms v
  ON v.service_name = r.service_name AND v.datacenter_label = r.datacenter
 AND v.mo_ref = r.entity
WHERE r.day > r.last_day - {days}
GROUP BY ALL
ORDER BY avg_ready_ms DESC, vm
LIMIT 10""",
    """
SELECT v.name AS vm, v.host_name AS host, v.cpu_num AS vcpus,
       round(avg(p.value), 1) AS avg_ready_ms,
       round(quantile_cont(p.value, 0.95), 1) AS p95_ready_ms,
       round(max(p.value), 1) AS max_ready_ms
FROM metric_points p
JOIN vms v
  ON v.service_name = p.service_name AND v.datacenter_label = p.datacenter
 AND v.mo_ref = p.entity
WHERE p.metric = 'vscope.vm.cpu.ready'
  AND p.day > (SELECT max(day) FROM metric_points WHERE metric = 'vscope.vm.cpu.ready') - {days}
GROUP BY ALL
ORDER BY avg_ready_ms DESC, vm
LIMIT 10""",
)

HOST_NIC_SATURATION = ExampleQuery(
    "Host NIC saturation",
    "The 10 busiest host NIC directions on the last day: average, 95th percentile and peak "
    "rate, and the peak as a percentage of the link speed. The inventory does not record NIC "
    "speeds, so the query assumes 10 Gbit/s (1,250,000 KB/s, 1 KB = 1000 bytes); change "
    "`link_kb_per_s` to your NICs' speed.",
    """
WITH link AS (SELECT 1250000.0 AS link_kb_per_s)
SELECT r.entity AS host, r.nic, replace(r.metric, 'vscope.host.net.', '') AS direction,
       round(sum(r.avg * r.samples) / sum(r.samples), 1) AS avg_kb_per_s,
       round(max(r.p95), 1) AS p95_kb_per_s,
       round(max(r.max), 1) AS max_kb_per_s,
       round(100 * max(r.max) / (SELECT link_kb_per_s FROM link), 3) AS max_pct_of_link
FROM (SELECT *, max(day) OVER () AS last_day
      FROM metric_daily WHERE metric IN ('vscope.host.net.rx', 'vscope.host.net.tx')) r
WHERE r.day > r.last_day - {days}
GROUP BY ALL
ORDER BY max_pct_of_link DESC, host, nic, direction
LIMIT 10""",
    """
WITH link AS (SELECT 1250000.0 AS link_kb_per_s)
SELECT p.entity AS host, p.nic, replace(p.metric, 'vscope.host.net.', '') AS direction,
       round(avg(p.value), 1) AS avg_kb_per_s,
       round(quantile_cont(p.value, 0.95), 1) AS p95_kb_per_s,
       round(max(p.value), 1) AS max_kb_per_s,
       round(100 * max(p.value) / (SELECT link_kb_per_s FROM link), 3) AS max_pct_of_link
FROM metric_points p
WHERE p.metric IN ('vscope.host.net.rx', 'vscope.host.net.tx')
  AND p.day > (SELECT max(day) FROM metric_points
               WHERE metric IN ('vscope.host.net.rx', 'vscope.host.net.tx')) - {days}
GROUP BY ALL
ORDER BY max_pct_of_link DESC, host, nic, direction
LIMIT 10""",
)

_DATASTORE_SIZED = """
), sized AS (
    SELECT t.*, f.size.value * CASE f.size.unit WHEN 'TB' THEN 1024 ELSE 1 END AS size_gb
    FROM trend t
    JOIN filers f ON f.service_name = t.service_name AND f.name = t.datastore
)
SELECT datastore, size_gb,
       round(used_kb / 1048576, 1) AS used_gb,
       round(100 * used_kb / (size_gb * 1048576), 1) AS used_pct,
       round(growth_kb_per_day / 1048576, 3) AS growth_gb_per_day,
       CASE WHEN growth_kb_per_day > 0
            THEN round((size_gb * 1048576 - used_kb) / growth_kb_per_day)
       END AS days_to_full
FROM sized
ORDER BY days_to_full NULLS LAST, datastore"""

DATASTORE_DAYS_TO_FULL = ExampleQuery(
    "Datastore growth and days to full",
    "Each datastore's used space (the average of its last hour stored) and its growth per "
    "day (the least-squares slope of its hourly averages over the last 30 days stored). The "
    "last column is the days left before it is full at that rate, NULL when it is not "
    "growing. Sizes in the inventory are in GB of 1024 MB, used space in kB.",
    """
WITH trend AS (
    SELECT service_name, entity AS datastore,
           arg_max(avg, bucket) AS used_kb,
           regr_slope(avg, epoch(bucket)) * 86400 AS growth_kb_per_day
    FROM metric_hourly
    WHERE metric = 'vscope.filer.datastore.diskspace.used'
      AND day > (SELECT max(day) FROM metric_hourly
                 WHERE metric = 'vscope.filer.datastore.diskspace.used') - {days}
    GROUP BY ALL"""
    + _DATASTORE_SIZED,
    """
WITH trend AS (
    SELECT service_name, entity AS datastore,
           arg_max(value, ts) AS used_kb,
           regr_slope(value, epoch(ts)) * 86400 AS growth_kb_per_day
    FROM metric_points
    WHERE metric = 'vscope.filer.datastore.diskspace.used'
      AND day > (SELECT max(day) FROM metric_points
                 WHERE metric = 'vscope.filer.datastore.diskspace.used') - {days}
    GROUP BY ALL"""
    + _DATASTORE_SIZED,
    days=30,
)

_RIGHT_SIZED = """
), sized AS (
    SELECT v.name AS vm, v.cpu_num AS vcpus, v.memory_max AS memory_mb,
           round(u.p95_cpu_pct, 1) AS p95_cpu_pct, round(u.p95_mem_pct, 1) AS p95_mem_pct,
           least(v.cpu_num, greatest(1, ceil(v.cpu_num * u.p95_cpu_pct / 70)))::BIGINT
               AS suggested_vcpus,
           least(
               v.memory_max, greatest(1, ceil(v.memory_max * u.p95_mem_pct / 70 / 1024)) * 1024
           )::BIGINT AS suggested_memory_mb
    FROM usage u
    JOIN vms v
      ON v.service_name = u.service_name AND v.datacenter_label = u.datacenter
     AND v.mo_ref = u.entity
    WHERE v.power_state = 'poweredOn'
)
SELECT *
FROM sized
WHERE suggested_vcpus < vcpus OR suggested_memory_mb < memory_mb
ORDER BY vcpus - suggested_vcpus DESC, memory_mb - suggested_memory_mb DESC, vm"""

VM_RIGHT_SIZING = ExampleQuery(
    "VM right-sizing candidates",
    "Powered-on VMs that would run their 95th percentile CPU and memory usage of the last 7 "
    "days at 70 % or less with fewer vCPUs or less memory, with the suggested size, never "
    "above the current one. The percentile is the highest daily p95 of the 7 days, so a busy "
    "day keeps a VM at its size. Memory sizes are in MB, the suggested one a whole number "
    "of GB.",
    """
WITH usage AS (
    SELECT service_name, datacenter, entity,
           max(p95) FILTER (metric = 'vscope.vm.cpu.usage.perc') AS p95_cpu_pct,
           max(p95) FILTER (metric = 'vscope.vm.mem.usage.perc') AS p95_mem_pct
    FROM (SELECT *, max(day) OVER () AS last_day
          FROM metric_daily
          WHERE metric IN ('vscope.vm.cpu.usage.perc', 'vscope.vm.mem.usage.perc'))
    WHERE day > last_day - {days}
    GROUP BY ALL"""
    + _RIGHT_SIZED,
    """
WITH usage AS (
    SELECT service_name, datacenter, entity,
           quantile_cont(value, 0.95) FILTER (metric = 'vscope.vm.cpu.usage.perc') AS p95_cpu_pct,
           quantile_cont(value, 0.95) FILTER (metric = 'vscope.vm.mem.usage.perc') AS p95_mem_pct
    FROM metric_points
    WHERE metric IN ('vscope.vm.cpu.usage.perc', 'vscope.vm.mem.usage.perc')
      AND day > (SELECT max(day) FROM metric_points
                 WHERE metric IN ('vscope.vm.cpu.usage.perc',
                                  'vscope.vm.mem.usage.perc')) - {days}
    GROUP BY ALL"""
    + _RIGHT_SIZED,
    days=7,
)

_HOST_COLUMNS = """
SELECT h.name AS host, h.cluster_name AS cluster, h.vm_total AS vms,
       h.vm_vcpu_total AS vcpus, h.cpu_num AS cores,
       round(h.vm_vcpu_total / h.cpu_num, 2) AS vcpus_per_core,"""

HOST_PRESSURE = ExampleQuery(
    "Host CPU and memory pressure",
    "Per host on the last day: average and 95th percentile CPU and memory usage, with the "
    "VMs and vCPUs it runs and its vCPU-to-core ratio.",
    _HOST_COLUMNS
    + """
       round(sum(r.avg * r.samples) FILTER (r.metric = 'vscope.host.cpu.usage.perc')
             / sum(r.samples) FILTER (r.metric = 'vscope.host.cpu.usage.perc'), 1) AS avg_cpu_pct,
       round(max(r.p95) FILTER (r.metric = 'vscope.host.cpu.usage.perc'), 1) AS p95_cpu_pct,
       round(sum(r.avg * r.samples) FILTER (r.metric = 'vscope.host.mem.usage.perc')
             / sum(r.samples) FILTER (r.metric = 'vscope.host.mem.usage.perc'), 1) AS avg_mem_pct,
       round(max(r.p95) FILTER (r.metric = 'vscope.host.mem.usage.perc'), 1) AS p95_mem_pct
FROM (SELECT *, max(day) OVER () AS last_day
      FROM metric_daily
      WHERE metric IN ('vscope.host.cpu.usage.perc', 'vscope.host.mem.usage.perc')) r
JOIN hosts h
  ON h.service_name = r.service_name AND h.datacenter_label = r.datacenter
 AND h.name = r.entity
WHERE r.day > r.last_day - {days}
GROUP BY ALL
ORDER BY p95_cpu_pct DESC, host""",
    _HOST_COLUMNS
    + """
       round(avg(p.value) FILTER (p.metric = 'vscope.host.cpu.usage.perc'), 1) AS avg_cpu_pct,
       round(quantile_cont(p.value, 0.95) FILTER (p.metric = 'vscope.host.cpu.usage.perc'), 1)
           AS p95_cpu_pct,
       round(avg(p.value) FILTER (p.metric = 'vscope.host.mem.usage.perc'), 1) AS avg_mem_pct,
       round(quantile_cont(p.value, 0.95) FILTER (p.metric = 'vscope.host.mem.usage.perc'), 1)
           AS p95_mem_pct
FROM metric_points p
JOIN hosts h
  ON h.service_name = p.service_name AND h.datacenter_label = p.datacenter
 AND h.name = p.entity
WHERE p.metric IN ('vscope.host.cpu.usage.perc', 'vscope.host.mem.usage.perc')
  AND p.day > (SELECT max(day) FROM metric_points
               WHERE metric IN ('vscope.host.cpu.usage.perc',
                                'vscope.host.mem.usage.perc')) - {days}
GROUP BY ALL
ORDER BY p95_cpu_pct DESC, host""",
)

_SLOWEST_DISKS = """
    GROUP BY ALL
)
SELECT v.name AS vm, v.host_name AS host,
       round(d.p95_read_ms, 2) AS p95_read_ms, round(d.p95_write_ms, 2) AS p95_write_ms,
       round(d.avg_read_iops, 1) AS avg_read_iops, round(d.avg_write_iops, 1) AS avg_write_iops
FROM disk d
JOIN vms v
  ON v.service_name = d.service_name AND v.datacenter_label = d.datacenter
 AND v.mo_ref = d.entity
ORDER BY greatest(d.p95_read_ms, d.p95_write_ms) DESC, vm
LIMIT 10"""

VM_DISK_LATENCY = ExampleQuery(
    "VMs with the slowest disks",
    "The 10 VMs with the highest 95th percentile disk latency (read or write, in ms) on the "
    "last day, with their read and write operations per second.",
    """
WITH disk AS (
    SELECT service_name, datacenter, entity,
           max(p95) FILTER (metric = 'vscope.vm.disk.latency.read') AS p95_read_ms,
           max(p95) FILTER (metric = 'vscope.vm.disk.latency.write') AS p95_write_ms,
           sum(avg * samples) FILTER (metric = 'vscope.vm.disk.io.read')
               / sum(samples) FILTER (metric = 'vscope.vm.disk.io.read') AS avg_read_iops,
           sum(avg * samples) FILTER (metric = 'vscope.vm.disk.io.write')
               / sum(samples) FILTER (metric = 'vscope.vm.disk.io.write') AS avg_write_iops
    FROM (SELECT *, max(day) OVER () AS last_day
          FROM metric_daily
          WHERE metric IN ('vscope.vm.disk.latency.read', 'vscope.vm.disk.latency.write',
                           'vscope.vm.disk.io.read', 'vscope.vm.disk.io.write'))
    WHERE day > last_day - {days}"""
    + _SLOWEST_DISKS,
    """
WITH disk AS (
    SELECT service_name, datacenter, entity,
           quantile_cont(value, 0.95) FILTER (metric = 'vscope.vm.disk.latency.read')
               AS p95_read_ms,
           quantile_cont(value, 0.95) FILTER (metric = 'vscope.vm.disk.latency.write')
               AS p95_write_ms,
           avg(value) FILTER (metric = 'vscope.vm.disk.io.read') AS avg_read_iops,
           avg(value) FILTER (metric = 'vscope.vm.disk.io.write') AS avg_write_iops
    FROM metric_points
    WHERE metric IN ('vscope.vm.disk.latency.read', 'vscope.vm.disk.latency.write',
                     'vscope.vm.disk.io.read', 'vscope.vm.disk.io.write')
      AND day > (SELECT max(day) FROM metric_points
                 WHERE metric IN ('vscope.vm.disk.latency.read', 'vscope.vm.disk.latency.write',
                                  'vscope.vm.disk.io.read', 'vscope.vm.disk.io.write')) - {days}"""
    + _SLOWEST_DISKS,
)

VM_NETWORK_VOLUME = ExampleQuery(
    "Top VMs by network traffic",
    "The 10 VMs that moved the most data over the network on the last day, in GB "
    "(10^9 bytes), estimated as the average rate in KB/s times the 86,400 seconds of each "
    "day of the window.",
    """
SELECT v.name AS vm, v.host_name AS host,
       round(sum(r.avg * r.samples) FILTER (r.metric = 'vscope.vm.net.rx')
             / sum(r.samples) FILTER (r.metric = 'vscope.vm.net.rx') * 86400 * {days} / 1e6, 2)
           AS rx_gb,
       round(sum(r.avg * r.samples) FILTER (r.metric = 'vscope.vm.net.tx')
             / sum(r.samples) FILTER (r.metric = 'vscope.vm.net.tx') * 86400 * {days} / 1e6, 2)
           AS tx_gb,
       rx_gb + tx_gb AS total_gb
FROM (SELECT *, max(day) OVER () AS last_day
      FROM metric_daily WHERE metric IN ('vscope.vm.net.rx', 'vscope.vm.net.tx')) r
JOIN vms v
  ON v.service_name = r.service_name AND v.datacenter_label = r.datacenter
 AND v.mo_ref = r.entity
WHERE r.day > r.last_day - {days}
GROUP BY ALL
ORDER BY total_gb DESC, vm
LIMIT 10""",
    """
SELECT v.name AS vm, v.host_name AS host,
       round(avg(p.value) FILTER (p.metric = 'vscope.vm.net.rx') * 86400 * {days} / 1e6, 2)
           AS rx_gb,
       round(avg(p.value) FILTER (p.metric = 'vscope.vm.net.tx') * 86400 * {days} / 1e6, 2)
           AS tx_gb,
       rx_gb + tx_gb AS total_gb
FROM metric_points p
JOIN vms v
  ON v.service_name = p.service_name AND v.datacenter_label = p.datacenter
 AND v.mo_ref = p.entity
WHERE p.metric IN ('vscope.vm.net.rx', 'vscope.vm.net.tx')
  AND p.day > (SELECT max(day) FROM metric_points
               WHERE metric IN ('vscope.vm.net.rx', 'vscope.vm.net.tx')) - {days}
GROUP BY ALL
ORDER BY total_gb DESC, vm
LIMIT 10""",
)

FLEET_HOURLY_CPU = ExampleQuery(
    "Hourly CPU profile of the VM fleet",
    "For each UTC hour of the last day: the VMs reporting, their average CPU usage and the "
    "highest CPU usage of any VM, to see when the fleet is busy.",
    """
SELECT bucket AS hour,
       count(DISTINCT service_name || '/' || datacenter || '/' || entity) AS vms,
       round(sum(avg * samples) / sum(samples), 1) AS avg_cpu_pct,
       round(max(max), 1) AS max_cpu_pct
FROM metric_hourly
WHERE metric = 'vscope.vm.cpu.usage.perc'
  AND day > (SELECT max(day) FROM metric_hourly WHERE metric = 'vscope.vm.cpu.usage.perc') - {days}
GROUP BY ALL
ORDER BY hour""",
    """
SELECT date_trunc('hour', ts) AS hour,
       count(DISTINCT service_name || '/' || datacenter || '/' || entity) AS vms,
       round(avg(value), 1) AS avg_cpu_pct,
       round(max(value), 1) AS max_cpu_pct
FROM metric_points
WHERE metric = 'vscope.vm.cpu.usage.perc'
  AND day > (SELECT max(day) FROM metric_points WHERE metric = 'vscope.vm.cpu.usage.perc') - {days}
GROUP BY ALL
ORDER BY hour""",
)

_COMPLETENESS_SUMMARY = """
SELECT metric, count(*) AS series, sum(points) AS points,
       min(points) AS min_points_per_series, max(points) AS max_points_per_series,
       min(first_hour) AS first_hour, max(last_hour) AS last_hour
FROM series
GROUP BY metric
ORDER BY metric"""

METRIC_COMPLETENESS = ExampleQuery(
    "Metric completeness",
    "For each metric on the last day: the series stored, the points, the fewest and most "
    "points of a series, and the first and last UTC hours with a point. A series with fewer "
    "points than the others had gaps.",
    """
WITH series AS (
    SELECT metric, service_name, datacenter, entity, nic,
           sum(samples) AS points, min(bucket) AS first_hour, max(bucket) AS last_hour
    FROM metric_hourly
    WHERE day > (SELECT max(day) FROM metric_hourly) - {days}
    GROUP BY ALL
)"""
    + _COMPLETENESS_SUMMARY,
    """
WITH series AS (
    SELECT metric, service_name, datacenter, entity, nic,
           count(*) AS points,
           date_trunc('hour', min(ts)) AS first_hour, date_trunc('hour', max(ts)) AS last_hour
    FROM metric_points
    WHERE day > (SELECT max(day) FROM metric_points) - {days}
    GROUP BY ALL
)"""
    + _COMPLETENESS_SUMMARY,
)

_HOST_ALLOCATION_SQL = """
WITH placed AS (
    SELECT service_name, datacenter_id, host_name,
           count(*) AS vms,
           count(*) FILTER (power_state = 'poweredOn') AS powered_on,
           sum(cpu_num) AS vcpus, sum(memory_max) AS memory_mb
    FROM vms
    GROUP BY ALL
)
SELECT h.name AS host, h.cluster_name AS cluster,
       coalesce(p.vms, 0) AS vms, coalesce(p.powered_on, 0) AS powered_on,
       coalesce(p.vcpus, 0) AS vcpus, h.cpu_num AS cores,
       round(coalesce(p.memory_mb, 0) / 1024, 1) AS vm_memory_gb, h.ram.value AS ram_gb,
       round(100 * coalesce(p.memory_mb, 0) / 1024 / h.ram.value, 1) AS memory_alloc_pct
FROM hosts h
LEFT JOIN placed p
  ON p.service_name = h.service_name AND p.datacenter_id = h.datacenter_id
 AND p.host_name = h.name
ORDER BY memory_alloc_pct DESC, host"""

HOST_ALLOCATION = ExampleQuery(
    "VM allocation per host",
    "For each host in the latest inventory: the VMs placed on it, powered on or not, and "
    "the vCPUs and memory they are given against its cores and RAM (memory in GB of "
    "1024 MB).",
    _HOST_ALLOCATION_SQL,
    _HOST_ALLOCATION_SQL,
    days=None,
)

EXAMPLES: tuple[ExampleQuery, ...] = (
    TOP_CPU_READY,
    HOST_NIC_SATURATION,
    DATASTORE_DAYS_TO_FULL,
    VM_RIGHT_SIZING,
    HOST_PRESSURE,
    VM_DISK_LATENCY,
    VM_NETWORK_VOLUME,
    FLEET_HOURLY_CPU,
    METRIC_COMPLETENESS,
    HOST_ALLOCATION,
)
