"""Paths of the Hive-style Parquet lake under its root (a folder or a bucket prefix).

    <data_dir>/metrics/metric=<name>/day=<YYYY-MM-DD>/data.parquet
    <data_dir>/inventory/kind=<kind>/day=<YYYY-MM-DD>/data.parquet
    <data_dir>/rollups/grain=<hour|day>/metric=<name>/month=<YYYY-MM>/data.parquet

A partition is one folder holding exactly one file, `data.parquet`, so replacing that file
replaces the whole partition (see `writer.write_partition`). DuckDB's
`read_parquet('<root>/**/*.parquet', hive_partitioning = true)` reads the keys from the
folder names and skips folders that a filter on `metric`, `kind` or `day` excludes. Rollups
are small, so they are kept one file per month (see `rollup_store`) and carry their `day`.

The `*_key` functions return paths relative to the lake root, joined with `/`, for a
`LakeLocation` of any file system. The `*_dir` functions join the same keys to a local folder.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

from vscope_pipeline.lake.location import LakeLike, as_lake

METRICS_DIR = "metrics"
INVENTORY_DIR = "inventory"
ROLLUPS_DIR = "rollups"
PARTITION_FILE = "data.parquet"

# The inventory entity kinds, each stored under `kind=<kind>` and published as a DuckDB table
# of the same name.
INVENTORY_KINDS: tuple[str, ...] = ("datacenters", "hosts", "vms", "filers")

# Rollup grains, each stored under `grain=<grain>`: one row per series and UTC hour or day.
RollupGrain = Literal["hour", "day"]
ROLLUP_GRAINS: tuple[RollupGrain, ...] = ("hour", "day")

# Names become folder names: '/' would add a folder level, '=' would confuse the Hive
# `key=value` parsing, and glob characters would make `**/*.parquet` patterns match too much.
_METRIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]*")
_DAY_FOLDER = re.compile(r"day=(\d{4}-\d{2}-\d{2})")


def metrics_root(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / METRICS_DIR


def inventory_root(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / INVENTORY_DIR


def rollups_root(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / ROLLUPS_DIR


def rollup_grain_key(grain: str) -> str:
    """Return the lake-relative folder that contains every metric and day of one rollup grain."""
    if grain not in ROLLUP_GRAINS:
        raise ValueError(
            f"rollup grain {grain!r} is not supported: expected one of {', '.join(ROLLUP_GRAINS)}"
        )
    return f"{ROLLUPS_DIR}/grain={grain}"


def rollup_grain_dir(data_dir: str | os.PathLike[str], grain: str) -> Path:
    """Return the folder that contains every metric and day of one rollup grain."""
    return Path(data_dir) / rollup_grain_key(grain)


def rollup_month_key(grain: str, metric: str, day: date) -> str:
    """Return the lake-relative folder of the rollups of one grain and metric for `day`'s month."""
    return f"{rollup_grain_key(grain)}/{_metric_folder(metric)}/month={day:%Y-%m}"


def rollup_month_dir(data_dir: str | os.PathLike[str], grain: str, metric: str, day: date) -> Path:
    """Return the folder of the rollups of one grain and metric for the UTC month of `day`."""
    return Path(data_dir) / rollup_month_key(grain, metric, day)


def _metric_folder(metric: str) -> str:
    if not _METRIC_NAME.fullmatch(metric):
        raise ValueError(
            f"metric name {metric!r} cannot name a lake folder: expected letters, digits, "
            "'.', '_' or '-', for example 'vscope.vm.cpu.ready'"
        )
    return f"metric={metric}"


def metric_dir(data_dir: str | os.PathLike[str], metric: str) -> Path:
    """Return the folder that contains every day of one metric."""
    return metrics_root(data_dir) / _metric_folder(metric)


def metric_partition_key(metric: str, day: date) -> str:
    """Return the lake-relative folder of one metric and UTC day."""
    return f"{METRICS_DIR}/{_metric_folder(metric)}/day={_day_text(day)}"


def metric_partition_dir(data_dir: str | os.PathLike[str], metric: str, day: date) -> Path:
    """Return the folder of one metric and UTC day."""
    return Path(data_dir) / metric_partition_key(metric, day)


def inventory_kind_key(kind: str) -> str:
    """Return the lake-relative folder that contains every snapshot day of one entity kind."""
    if not _KIND_NAME.fullmatch(kind):
        raise ValueError(
            f"inventory kind {kind!r} cannot name a lake folder: expected lower-case letters, "
            f"digits or '_', for example one of {', '.join(INVENTORY_KINDS)}"
        )
    return f"{INVENTORY_DIR}/kind={kind}"


def inventory_kind_dir(data_dir: str | os.PathLike[str], kind: str) -> Path:
    """Return the folder that contains every snapshot day of one inventory entity kind."""
    return Path(data_dir) / inventory_kind_key(kind)


def inventory_partition_key(kind: str, day: date | str) -> str:
    """Return the lake-relative folder of one inventory entity kind and snapshot day."""
    day_text = day if isinstance(day, str) else _day_text(day)
    return f"{inventory_kind_key(kind)}/day={day_text}"


def inventory_partition_dir(data_dir: str | os.PathLike[str], kind: str, day: date) -> Path:
    """Return the folder of one inventory entity kind and snapshot day."""
    return Path(data_dir) / inventory_partition_key(kind, day)


def partition_file(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / PARTITION_FILE


def file_key(folder_key: str) -> str:
    """Return the lake-relative path of the `data.parquet` of a partition folder."""
    return f"{folder_key}/{PARTITION_FILE}"


def inventory_days(lake: LakeLike, kind: str) -> list[str]:
    """Return the snapshot days (`YYYY-MM-DD`) of `kind` that have a file, oldest first.

    Folders whose name is not a valid `day=<date>` and days without `data.parquet` are
    ignored.
    """
    location = as_lake(lake)
    kind_path = location.path(inventory_kind_key(kind))
    days: list[str] = []
    for name in location.child_names(kind_path):
        match = _DAY_FOLDER.fullmatch(name)
        if match is None or not _is_date(match.group(1)):
            continue
        if location.is_file(f"{kind_path}/{name}/{PARTITION_FILE}"):
            days.append(match.group(1))
    return sorted(days)


def latest_inventory_file(lake: LakeLike, kind: str) -> tuple[str, str] | None:
    """Return the day (`YYYY-MM-DD`) and lake path of the newest snapshot of `kind`, or None."""
    location = as_lake(lake)
    days = inventory_days(location, kind)
    if not days:
        return None
    latest = days[-1]
    return latest, location.path(file_key(inventory_partition_key(kind, latest)))


def _day_text(day: date) -> str:
    # A datetime is a date too; its time of day must not leak into the folder name.
    return date(day.year, day.month, day.day).isoformat()


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
