"""Data-quality asset checks of the metric assets, evaluated on the partitions a run wrote.

Severities follow one rule: a defect of the stored data fails the run (ERROR, blocking, so the
warehouse is not republished over it), and a gap that the source explains warns (WARN).
- `partitions_complete`: ERROR when a metric-day stored no series although the inventory of that
  day lists entities that should report; WARN when only some entities are missing (a VM
  deleted during the day, a host rebooting).
- `keys_unique`: ERROR when two stored rows share metric, series and timestamp.
- `values_in_range`: ERROR when a stored value is outside the catalogue's plausible range.
- `series_without_gaps`: WARN when points are missing inside a series.
- `series_in_inventory`: WARN when a series names an entity the inventory does not list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from vscope_pipeline.quality import GAP_FACTOR, PartitionQuality

# Names listed in a check's metadata; the counts cover them all.
NAMES_SHOWN = 20

_ERROR = dg.AssetCheckSeverity.ERROR
_WARN = dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class _Check:
    name: str
    description: str
    # The worst severity the check can fail with, also recorded when it passes.
    worst: dg.AssetCheckSeverity
    evaluate: Callable[[Sequence[PartitionQuality]], tuple[dg.AssetCheckSeverity | None, dict]]


def _rows(parts: Sequence[PartitionQuality], count: Callable[[PartitionQuality], int]) -> str:
    """Return a Markdown table of the metric-days where `count` is not zero."""
    lines = ["| day | metric | count |", "|---|---|---:|"]
    lines += [f"| {p.day} | {p.metric} | {count(p)} |" for p in parts if count(p)]
    return "\n".join(lines)


def _completeness(parts: Sequence[PartitionQuality]) -> tuple[dg.AssetCheckSeverity | None, dict]:
    empty = [p for p in parts if p.entities_expected and p.entities_received == 0]
    missing = sorted({f"{p.day} {key}" for p in parts for key in p.missing_entities})
    severity = None
    if empty:
        severity = _ERROR
    elif missing:
        severity = _WARN
    metadata: dict = {}
    if empty:
        first = empty[0]
        metadata["problem"] = (
            f"no series stored for {first.metric} on {first.day} although the inventory of "
            f"{first.snapshot_day} lists {first.entities_expected} reporting entities "
            f"({len(empty)} metric-day(s) in all): check that OpenTSDB answers for that day, "
            "then re-materialize the partition"
        )
    return severity, {
        **metadata,
        "empty_partitions": len(empty),
        "empty_partition_names": dg.MetadataValue.json(
            [f"{p.metric} {p.day}" for p in empty][:NAMES_SHOWN]
        ),
        "missing_entities": len(missing),
        "missing_entity_names": dg.MetadataValue.json(missing[:NAMES_SHOWN]),
        "inventory_days": dg.MetadataValue.json(
            sorted({f"{p.day}: {p.snapshot_day}" for p in parts})
        ),
        "per_metric": dg.MetadataValue.md(_rows(parts, lambda p: len(p.missing_entities))),
    }


def _unique(parts: Sequence[PartitionQuality]) -> tuple[dg.AssetCheckSeverity | None, dict]:
    duplicates = sum(p.duplicate_keys for p in parts)
    return _ERROR if duplicates else None, {
        "duplicate_rows": duplicates,
        "per_metric": dg.MetadataValue.md(_rows(parts, lambda p: p.duplicate_keys)),
    }


def _in_range(parts: Sequence[PartitionQuality]) -> tuple[dg.AssetCheckSeverity | None, dict]:
    outside = sum(p.out_of_range for p in parts)
    return _ERROR if outside else None, {
        "values_out_of_range": outside,
        "per_metric": dg.MetadataValue.md(_rows(parts, lambda p: p.out_of_range)),
    }


def _gaps(parts: Sequence[PartitionQuality]) -> tuple[dg.AssetCheckSeverity | None, dict]:
    gaps = sum(p.gaps for p in parts)
    steps = sorted({p.usual_step_s for p in parts if p.usual_step_s is not None})
    return _WARN if gaps else None, {
        "gaps": gaps,
        "usual_steps_s": dg.MetadataValue.json(steps),
        "per_metric": dg.MetadataValue.md(_rows(parts, lambda p: p.gaps)),
    }


def _in_inventory(parts: Sequence[PartitionQuality]) -> tuple[dg.AssetCheckSeverity | None, dict]:
    unlisted = sorted({f"{p.day} {key}" for p in parts for key in p.unlisted_entities})
    return _WARN if unlisted else None, {
        "unlisted_entities": len(unlisted),
        "unlisted_entity_names": dg.MetadataValue.json(unlisted[:NAMES_SHOWN]),
    }


CHECKS: tuple[_Check, ...] = (
    _Check(
        "partitions_complete",
        "Every entity that the inventory of the day lists sent a series: fails the run when a "
        "metric-day stored no series at all, warns when some entities are missing.",
        _ERROR,
        _completeness,
    ),
    _Check(
        "keys_unique",
        "No two stored rows share metric, datacenter, entity, NIC and timestamp.",
        _ERROR,
        _unique,
    ),
    _Check(
        "values_in_range",
        "Every stored value is inside the metric's plausible range from the catalogue "
        "(0 to 100 for percentages, not negative for the others).",
        _ERROR,
        _in_range,
    ),
    _Check(
        "series_without_gaps",
        f"No step between two points of a series is longer than {GAP_FACTOR} times the usual "
        "step of its metric-day (warns).",
        _WARN,
        _gaps,
    ),
    _Check(
        "series_in_inventory",
        "Every series names an entity that the inventory of the day lists (warns).",
        _WARN,
        _in_inventory,
    ),
)


def quality_check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """Return the check specs that a metric asset declares.

    Blocking: a failed ERROR check stops the warehouse from being rebuilt in the same run.
    """
    return [
        dg.AssetCheckSpec(check.name, asset=asset_key, description=check.description, blocking=True)
        for check in CHECKS
    ]


def quality_check_results(
    asset_key: dg.AssetKey, parts: Sequence[PartitionQuality]
) -> list[dg.AssetCheckResult]:
    """Evaluate every check on the measured partitions of one run."""
    days = sorted({p.day.isoformat() for p in parts})
    results = []
    for check in CHECKS:
        severity, metadata = check.evaluate(parts)
        results.append(
            dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=check.name,
                passed=severity is None,
                severity=severity or check.worst,
                metadata={"days": dg.MetadataValue.json(days), **metadata},
            )
        )
    return results
