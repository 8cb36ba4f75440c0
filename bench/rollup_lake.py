"""Write the rollup benchmark's lake: a year of rollups, a raw window and one inventory snapshot.

Days before the raw window get generated rollups only (`generated_rollups`). Each day of the
raw window gets raw points (`raw_points`), written like the pipeline writes them, and its
rollups are computed from those points with the pipeline's own `rollup_table`, so raw points
and rollups agree on that window. Rollups are stored as the pipeline stores them, one file per
grain, metric and month, each written once here. Months are spread over a pool of processes;
each process builds the fleet and the series once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bench.rollup_series import MetricSeries, generated_rollups, metric_series, raw_points
from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.layout import (
    inventory_partition_dir,
    metric_partition_dir,
    rollup_month_dir,
)
from vscope_pipeline.lake.rollup_store import SORT_KEYS
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.ovh.schemas import ApiObject, InventoryKind, build_inventory_table
from vscope_pipeline.rollups import rollup_table
from vscope_pipeline.simulator.fleet import Fleet, build_fleet

log = logging.getLogger(__name__)

DEFAULT_SEED = 20250601


@dataclass(frozen=True)
class LakeSpec:
    """Contents of the benchmark lake: fleet size, last day, days of rollups, days of raw points."""

    vm_count: int
    last_day: dt.date
    rollup_days: int
    raw_days: int
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not 1 <= self.raw_days <= self.rollup_days:
            raise ValueError(
                f"raw window of {self.raw_days} days is invalid: expected 1 to rollup_days "
                f"({self.rollup_days})"
            )

    @property
    def first_day(self) -> dt.date:
        return self.last_day - dt.timedelta(days=self.rollup_days - 1)

    @property
    def first_raw_day(self) -> dt.date:
        return self.last_day - dt.timedelta(days=self.raw_days - 1)

    @property
    def anchor_day(self) -> dt.date:
        # The fleet deletes one VM at noon on the day before its anchor day. An anchor two
        # days after the last day keeps that deletion out of the benchmark's window.
        return self.last_day + dt.timedelta(days=2)


@dataclass(frozen=True)
class MonthWritten:
    """Days, rows and bytes written for one month, over every metric."""

    days: int
    raw_rows: int
    hourly_rows: int
    daily_rows: int
    bytes_written: int


@dataclass(frozen=True)
class LakeWritten:
    """Totals of `write_lake`, with its wall time in seconds."""

    days: int
    raw_days: int
    raw_rows: int
    hourly_rows: int
    daily_rows: int
    bytes_written: int
    seconds: float


_WORKER_SERIES: list[MetricSeries] = []


def _init_worker(spec: LakeSpec) -> None:
    fleet = build_fleet(spec.anchor_day, vm_count=spec.vm_count)
    _WORKER_SERIES[:] = [metric_series(fleet, metric, spec.seed) for metric in BUILTIN_METRICS]


def write_month(
    data_dir: Path, spec: LakeSpec, days: Sequence[dt.date], series: Sequence[MetricSeries]
) -> MonthWritten:
    """Write every metric's partitions of `days`, which share one month.

    Raw days get their points; every day gets its rollups, and each metric's month file of
    each grain is written once.
    """
    raw_rows = hourly_rows = daily_rows = written = 0
    for metric in series:
        name = metric.spec.name
        rollups: dict[str, list[pa.Table]] = {"hour": [], "day": []}
        for day in days:
            if day >= spec.first_raw_day:
                points = raw_points(metric, day, spec.first_day, spec.seed)
                written += write_partition(
                    points, metric_partition_dir(data_dir, name, day)
                ).bytes_written
                raw_rows += points.num_rows
                hourly, daily = rollup_table(points, "hour"), rollup_table(points, "day")
            else:
                hourly, daily = generated_rollups(metric, day, spec.first_day, spec.seed)
            rollups["hour"].append(hourly)
            rollups["day"].append(daily)
        for grain, tables in rollups.items():
            month = pa.concat_tables(tables)
            month = month.take(pc.sort_indices(month, sort_keys=SORT_KEYS))
            folder = rollup_month_dir(data_dir, grain, name, days[0])
            written += write_partition(month, folder).bytes_written
        hourly_rows += sum(table.num_rows for table in rollups["hour"])
        daily_rows += sum(table.num_rows for table in rollups["day"])
    return MonthWritten(len(days), raw_rows, hourly_rows, daily_rows, written)


def _write_month_in_worker(data_dir: Path, spec: LakeSpec, days: list[dt.date]) -> MonthWritten:
    return write_month(data_dir, spec, days, _WORKER_SERIES)


def write_lake(data_dir: Path, spec: LakeSpec, workers: int) -> LakeWritten:
    """Write every day of `spec` under `data_dir` with `workers` processes, logging progress."""
    started = time.perf_counter()
    months: dict[tuple[int, int], list[dt.date]] = {}
    for offset in range(spec.rollup_days):
        day = spec.first_day + dt.timedelta(days=offset)
        months.setdefault((day.year, day.month), []).append(day)
    # Months with raw days first: they are the slowest, so the pool ends on generated months.
    ordered = sorted(months.values(), key=lambda days: (days[-1] < spec.first_raw_day, days[0]))
    results: list[MonthWritten] = []
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        futures = [pool.submit(_write_month_in_worker, data_dir, spec, days) for days in ordered]
        for future in futures:
            results.append(future.result())
            written = sum(result.bytes_written for result in results)
            log.info(
                "wrote %d of %d days, %.2f GB, %.0f s",
                sum(result.days for result in results),
                spec.rollup_days,
                written / 1e9,
                time.perf_counter() - started,
            )
    return LakeWritten(
        days=sum(result.days for result in results),
        raw_days=spec.raw_days,
        raw_rows=sum(result.raw_rows for result in results),
        hourly_rows=sum(result.hourly_rows for result in results),
        daily_rows=sum(result.daily_rows for result in results),
        bytes_written=sum(result.bytes_written for result in results),
        seconds=time.perf_counter() - started,
    )


def write_inventory(data_dir: Path, fleet: Fleet, day: dt.date) -> None:
    """Write the fleet's datacenters, hosts, datastores and VMs as the snapshot of `day`."""
    snapshot_at = dt.datetime.combine(day, dt.time(23, 0), dt.UTC)
    service = fleet.service_name
    objects: dict[InventoryKind, list[ApiObject]] = {
        "datacenters": [
            ApiObject(service, dc.datacenter_id, dc.datacenter_id, dc.api)
            for dc in fleet.datacenters
        ],
        "hosts": [
            ApiObject(service, host.datacenter_id, host.host_id, host.api) for host in fleet.hosts
        ],
        "filers": [
            ApiObject(service, filer.datacenter_id, filer.filer_id, filer.api)
            for filer in fleet.filers
        ],
        "vms": [ApiObject(service, vm.datacenter_id, vm.vm_id, vm.api) for vm in fleet.vms],
    }
    for kind, items in objects.items():
        table = build_inventory_table(kind, items, snapshot_at=snapshot_at).table
        write_partition(table, inventory_partition_dir(data_dir, kind, day))


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))
