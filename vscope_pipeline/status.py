"""`vscope-pipeline status`: what the lake holds, its gaps, the last Dagster run, its freshness.

Everything is read: the lake's folders (or bucket prefixes) and the footers of its Parquet
files, the DuckDB file's size and, when DAGSTER_HOME has an instance file, the instance's latest
run. Nothing is written, so status is safe while a run writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.day_ranges import (
    count_days,
    day_ranges,
    format_range,
    format_ranges,
    missing_ranges,
)
from vscope_pipeline.lake.layout import (
    INVENTORY_DIR,
    INVENTORY_KINDS,
    METRICS_DIR,
    PARTITION_FILE,
    ROLLUPS_DIR,
    inventory_days,
)
from vscope_pipeline.lake.location import LakeLocation
from vscope_pipeline.textable import format_table

log = logging.getLogger(__name__)

DUCKDB_FILE = "vscope.duckdb"
STATUS_FORMATS = ("table", "json")

_METRIC_FOLDER = re.compile(r"metric=(.+)")
_DAY_FOLDER = re.compile(r"day=(\d{4}-\d{2}-\d{2})")
_SERVICE_COLUMN = "service_name"


@dataclass
class LakeContents:
    """The metric days of each (service, metric), and the partitions that hold no series."""

    days: dict[tuple[str, str], set[dt.date]] = field(default_factory=lambda: defaultdict(set))
    empty_partitions: dict[str, set[dt.date]] = field(default_factory=lambda: defaultdict(set))

    @property
    def services(self) -> list[str]:
        return sorted({service for service, _ in self.days})


def _metric_partitions(lake: LakeLocation) -> Iterator[tuple[str, dt.date, str]]:
    """Yield the metric, day and file path of every metric partition of `lake`."""
    root = lake.path(METRICS_DIR)
    for metric_name in sorted(lake.child_names(root)):
        metric = _METRIC_FOLDER.fullmatch(metric_name)
        if metric is None:
            continue
        metric_path = f"{root}/{metric_name}"
        for day_name in sorted(lake.child_names(metric_path)):
            day = _DAY_FOLDER.fullmatch(day_name)
            file = f"{metric_path}/{day_name}/{PARTITION_FILE}"
            if day is not None and lake.is_file(file):
                try:
                    yield metric.group(1), dt.date.fromisoformat(day.group(1)), file
                except ValueError:
                    continue


def partition_services(file: str | Path, filesystem: pafs.FileSystem | None = None) -> set[str]:
    """Return the services with rows in a metric partition file of `filesystem` (local default).

    The footer's statistics give them without reading data when a row group has one service
    (minimum equals maximum). Other row groups are read, service column only.
    """
    parquet = pq.ParquetFile(str(file), filesystem=filesystem)
    metadata = parquet.metadata
    column = parquet.schema_arrow.get_field_index(_SERVICE_COLUMN)
    services: set[str] = set()
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        if group.num_rows == 0:
            continue
        stats = group.column(column).statistics if column >= 0 else None
        if stats is not None and stats.has_min_max and stats.min == stats.max:
            services.add(str(stats.min))
            continue
        values = parquet.read_row_group(index, columns=[_SERVICE_COLUMN]).column(0)
        services.update(str(value) for value in values.unique().to_pylist())
    return services


def scan_lake(lake: LakeLocation | Path) -> LakeContents:
    """Return the metric days of `lake`, a lake location or a local data folder."""
    location = lake if isinstance(lake, LakeLocation) else LakeLocation.local(lake)
    contents = LakeContents()
    for metric, day, file in _metric_partitions(location):
        services = partition_services(file, location.filesystem)
        if not services:
            contents.empty_partitions[metric].add(day)
        for service in services:
            contents.days[(service, metric)].add(day)
    return contents


def folder_bytes(lake: LakeLocation, folder: str) -> int:
    """Return the bytes of the files under `folder`, a path of `lake`'s file system."""
    selector = pafs.FileSelector(folder, allow_not_found=True, recursive=True)
    # A file that a run replaced after the listing has no size, and counts for nothing.
    return sum(
        info.size or 0
        for info in lake.filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File
    )


def latest_run(dagster_home: Path) -> dict[str, Any] | None:
    """Return the newest run of the Dagster instance in `dagster_home`, or None without one.

    A folder without `dagster.yaml` has no instance to read, and none is created.
    """
    instance_file = dagster_home / "dagster.yaml"
    if not instance_file.is_file():
        return None
    # Imported here because both modules import Dagster, which `vscope-pipeline sql` never needs.
    import dagster as dg

    from vscope_pipeline.ingest import environment, instance_storage_kind

    # Opening a SQLite instance creates its databases, so a home that has none yet has no
    # run to show and is left as it is.
    if instance_storage_kind(instance_file) == "sqlite" and not _has_sqlite_runs(dagster_home):
        return None

    try:
        # The instance file reads its folder from DAGSTER_HOME, which is unset when the home is
        # the default `.dagster_home`, as it is for `vscope-pipeline ingest` too.
        with (
            environment({"DAGSTER_HOME": str(dagster_home)}),
            dg.DagsterInstance.from_config(str(dagster_home)) as instance,
        ):
            records = instance.get_run_records(limit=1)
    except Exception as error:
        # A PostgreSQL server that is down, or a broken instance file: the lake's status
        # is still worth printing, so the run history is reported as unreadable.
        log.warning("cannot read the Dagster instance in %s: %s", dagster_home, error)
        return {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    tags = run.tags
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "status": run.status.value,
        "started": _timestamp(record.start_time),
        "ended": _timestamp(record.end_time),
        "first_day": tags.get("dagster/asset_partition_range_start"),
        "last_day": tags.get("dagster/asset_partition_range_end"),
    }


def _has_sqlite_runs(dagster_home: Path) -> bool:
    # Where dagster.yaml's `storage: sqlite: base_dir: $DAGSTER_HOME` keeps its run database.
    return (dagster_home / "history" / "runs.db").is_file()


def _timestamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(microsecond=0).isoformat()


def freshness(
    contents: LakeContents, metrics: list[str], now: dt.datetime, freshness_hour: int
) -> dict[str, Any]:
    """Return whether yesterday's partition of every metric exists, against the deadline.

    The deadline is `freshness_hour` o'clock UTC today, as for the freshness checks.
    """
    yesterday = now.date() - dt.timedelta(days=1)
    loaded = sorted(
        {
            metric
            for (_, metric), days in contents.days.items()
            if metric in metrics and yesterday in days
        }
        | {metric for metric, days in contents.empty_partitions.items() if yesterday in days}
    )
    deadline = dt.datetime.combine(now.date(), dt.time(freshness_hour), dt.UTC)
    if len(loaded) >= len(metrics):
        state = "fresh"
    elif now < deadline:
        state = "due"
    else:
        state = "late"
    return {
        "day": yesterday.isoformat(),
        "metrics_loaded": len(loaded),
        "metrics_expected": len(metrics),
        "deadline": deadline.isoformat(),
        "state": state,
    }


def build_status(
    data_dir: Path,
    dagster_home: Path,
    *,
    start_date: dt.date,
    freshness_hour: int,
    now: dt.datetime,
    lake: LakeLocation | None = None,
) -> dict[str, Any]:
    """Return the status as a JSON-ready mapping; `render_table` prints the same facts.

    `lake` is where the Parquet lake is, the local `data_dir` by default; the DuckDB file is
    always in `data_dir`.
    """
    lake = lake or LakeLocation.local(data_dir)
    contents = scan_lake(lake)
    found_metrics = {metric for _, metric in contents.days} | set(contents.empty_partitions)
    metrics = sorted({spec.name for spec in BUILTIN_METRICS} | found_metrics)
    all_days = {day for days in contents.days.values() for day in days}
    lake_folders = [lake.path(folder) for folder in (METRICS_DIR, INVENTORY_DIR, ROLLUPS_DIR)]
    database = data_dir / DUCKDB_FILE
    first_loaded = min(all_days) if all_days else None
    # Each service's first and last loaded day, over all its metrics: a metric missing a day
    # inside that span has a gap, even at the span's edges.
    spans: dict[str, tuple[dt.date, dt.date]] = {}
    for (service, _), days in contents.days.items():
        first, last = spans.get(service, (min(days), max(days)))
        spans[service] = (min(first, *days), max(last, *days))
    return {
        "data_dir": str(data_dir),
        "data_dir_exists": data_dir.is_dir(),
        "lake": lake.url(lake.root),
        "loaded": bool(all_days) or bool(contents.empty_partitions),
        "metrics": [
            {
                "service": service,
                "metric": metric,
                "days": count_days(day_ranges(days)),
                "loaded": [format_range(r) for r in day_ranges(days)],
                "gaps": [format_range(r) for r in missing_ranges(days, spans[service])],
            }
            for (service, metric), days in sorted(contents.days.items())
        ],
        "empty_partitions": {
            metric: [format_range(r) for r in day_ranges(days)]
            for metric, days in sorted(contents.empty_partitions.items())
        },
        "not_loaded_since_start": (
            format_range((start_date, first_loaded - dt.timedelta(days=1)))
            if first_loaded is not None and first_loaded > start_date
            else None
        ),
        "days_not_loaded_since_start": (
            (first_loaded - start_date).days if first_loaded and first_loaded > start_date else 0
        ),
        "start_date": start_date.isoformat(),
        "inventory": {kind: _inventory_ranges(lake, kind) for kind in INVENTORY_KINDS},
        "last_run": latest_run(dagster_home),
        "dagster_home": str(dagster_home),
        "freshness": freshness(contents, metrics, now, freshness_hour),
        "lake_bytes": sum(folder_bytes(lake, folder) for folder in lake_folders),
        "duckdb_bytes": database.stat().st_size if database.is_file() else None,
    }


def _inventory_ranges(lake: LakeLocation, kind: str) -> list[str]:
    days = (dt.date.fromisoformat(day) for day in inventory_days(lake, kind))
    return [format_range(day_range) for day_range in day_ranges(days)]


def _size(count: int | None) -> str:
    if count is None:
        return "missing"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _metric_rows(status: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Return one table row per service and set of metrics with the same days and gaps."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for entry in status["metrics"]:
        key = (entry["service"], ", ".join(entry["loaded"]), ", ".join(entry["gaps"]) or "none")
        groups[key].append(entry["metric"])
    rows = []
    for (service, loaded, gaps), metrics in groups.items():
        label = metrics[0] if len(metrics) == 1 else f"{len(metrics)} metrics"
        rows.append((service, label, loaded, gaps))
    return rows


def render_table(status: dict[str, Any]) -> str:
    """Return the status for a terminal: metric days and gaps, inventory, run, freshness, sizes."""
    out = [f"data folder: {status['data_dir']}"]
    if not status["data_dir_exists"]:
        out[0] += " (not created yet: check VSCOPE_DATA_DIR if you expected data there)"
    if status["lake"] != status["data_dir"]:
        out.append(f"lake: {status['lake']}")
    if not status["loaded"]:
        out.append(
            "no metric data yet: run `vscope-pipeline ingest --from YYYY-MM-DD --to YYYY-MM-DD` "
            "(add --simulator to try the simulator), or `make demo`"
        )
    else:
        columns = ["service", "metrics", "days loaded", "gaps"]
        out += ["", format_table(columns, _metric_rows(status))]
        for metric, ranges in status["empty_partitions"].items():
            out.append(f"partitions without series: {metric} {', '.join(ranges)}")
        if status["not_loaded_since_start"]:
            out.append(
                f"not loaded since VSCOPE_START_DATE {status['start_date']}: "
                f"{status['not_loaded_since_start']} ({status['days_not_loaded_since_start']} days)"
            )
    out.append("")
    for kind, ranges in status["inventory"].items():
        out.append(f"inventory {kind}: {', '.join(ranges) or 'none'}")
    out.append(_describe_run(status["last_run"], status["dagster_home"]))
    out.append(_describe_freshness(status["freshness"]))
    out.append(
        f"lake size: {_size(status['lake_bytes'])}, DuckDB file: {_size(status['duckdb_bytes'])}"
    )
    return "\n".join(out)


def _describe_run(run: dict[str, Any] | None, dagster_home: str) -> str:
    if run is None:
        return f"last Dagster run: none in {dagster_home}"
    if "error" in run:
        return (
            f"last Dagster run: the instance in {dagster_home} cannot be read ({run['error']}): "
            "check its dagster.yaml and, for PostgreSQL, that the server is up"
        )
    days = ""
    if run["first_day"]:
        days = f", days {format_ranges([(_date(run['first_day']), _date(run['last_day']))])}"
    return (
        f"last Dagster run: {run['run_id']} ({run['job']}) {run['status']}, "
        f"started {run['started']}, ended {run['ended'] or 'not yet'}{days}"
    )


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _describe_freshness(fresh: dict[str, Any]) -> str:
    counts = f"{fresh['metrics_loaded']}/{fresh['metrics_expected']} metrics"
    if fresh["state"] == "fresh":
        return f"yesterday {fresh['day']}: loaded ({counts})"
    if fresh["state"] == "due":
        return f"yesterday {fresh['day']}: not loaded yet ({counts}), due by {fresh['deadline']}"
    return (
        f"yesterday {fresh['day']}: LATE, {counts} loaded, due by {fresh['deadline']} "
        "(VSCOPE_FRESHNESS_HOUR): run `vscope-pipeline ingest` for that day, or check the "
        "daily schedule"
    )


def render_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2)
