"""Paths of the Hive-style Parquet lake under the data directory.

    <data_dir>/metrics/metric=<name>/day=<YYYY-MM-DD>/data.parquet
    <data_dir>/inventory/kind=<kind>/day=<YYYY-MM-DD>/data.parquet
    <data_dir>/rollups/grain=<hour|day>/metric=<name>/month=<YYYY-MM>/data.parquet

A partition is one folder holding exactly one file, `data.parquet`, so replacing that file
replaces the whole partition (see `writer.write_partition`). DuckDB's
`read_parquet('<root>/**/*.parquet', hive_partitioning = true)` reads the keys from the
folder names and skips folders that a filter on `metric`, `kind` or `day` excludes. Rollups
are small, so they are kept one file per month (see `rollup_store`) and carry their `day`.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

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


def rollup_grain_dir(data_dir: str | os.PathLike[str], grain: str) -> Path:
    """Return the folder that contains every metric and day of one rollup grain."""
    if grain not in ROLLUP_GRAINS:
        raise ValueError(
            f"rollup grain {grain!r} is not supported: expected one of {', '.join(ROLLUP_GRAINS)}"
        )
    return rollups_root(data_dir) / f"grain={grain}"


def rollup_month_dir(data_dir: str | os.PathLike[str], grain: str, metric: str, day: date) -> Path:
    """Return the folder of the rollups of one grain and metric for the UTC month of `day`."""
    # metric_dir validates the name; only its last folder is reused under the grain.
    metric_folder = metric_dir(data_dir, metric).name
    return rollup_grain_dir(data_dir, grain) / metric_folder / f"month={day:%Y-%m}"


def metric_dir(data_dir: str | os.PathLike[str], metric: str) -> Path:
    """Return the folder that contains every day of one metric."""
    if not _METRIC_NAME.fullmatch(metric):
        raise ValueError(
            f"metric name {metric!r} cannot name a lake folder: expected letters, digits, "
            "'.', '_' or '-', for example 'vscope.vm.cpu.ready'"
        )
    return metrics_root(data_dir) / f"metric={metric}"


def metric_partition_dir(data_dir: str | os.PathLike[str], metric: str, day: date) -> Path:
    """Return the folder of one metric and UTC day."""
    return metric_dir(data_dir, metric) / f"day={_day_text(day)}"


def inventory_kind_dir(data_dir: str | os.PathLike[str], kind: str) -> Path:
    """Return the folder that contains every snapshot day of one inventory entity kind."""
    if not _KIND_NAME.fullmatch(kind):
        raise ValueError(
            f"inventory kind {kind!r} cannot name a lake folder: expected lower-case letters, "
            f"digits or '_', for example one of {', '.join(INVENTORY_KINDS)}"
        )
    return inventory_root(data_dir) / f"kind={kind}"


def inventory_partition_dir(data_dir: str | os.PathLike[str], kind: str, day: date) -> Path:
    """Return the folder of one inventory entity kind and snapshot day."""
    return inventory_kind_dir(data_dir, kind) / f"day={_day_text(day)}"


def partition_file(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / PARTITION_FILE


def inventory_days(data_dir: str | os.PathLike[str], kind: str) -> list[str]:
    """Return the snapshot days (`YYYY-MM-DD`) of `kind` that have a file, oldest first.

    Folders whose name is not a valid `day=<date>` and days without `data.parquet` are
    ignored.
    """
    kind_dir = inventory_kind_dir(data_dir, kind)
    if not kind_dir.is_dir():
        return []
    days: list[str] = []
    for folder in kind_dir.iterdir():
        match = _DAY_FOLDER.fullmatch(folder.name)
        if match is None or not _is_date(match.group(1)):
            continue
        if (folder / PARTITION_FILE).is_file():
            days.append(match.group(1))
    return sorted(days)


def latest_inventory_file(data_dir: str | os.PathLike[str], kind: str) -> tuple[str, Path] | None:
    """Return the day (`YYYY-MM-DD`) and file of the newest snapshot of `kind`, or None."""
    days = inventory_days(data_dir, kind)
    if not days:
        return None
    latest = days[-1]
    return latest, inventory_kind_dir(data_dir, kind) / f"day={latest}" / PARTITION_FILE


def _day_text(day: date) -> str:
    # A datetime is a date too; its time of day must not leak into the folder name.
    return date(day.year, day.month, day.day).isoformat()


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
