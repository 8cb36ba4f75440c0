"""The benchmark day: a simulated fleet, its datacenter targets and its saved response bodies.

The day is fixed, so that every run decodes the same series. It is a Monday two days before
the simulator's anchor day, so the VM deleted at noon on the day before the anchor day still
reports all day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.collect import DEFAULT_MAX_WORKERS, DatacenterTarget
from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.opentsdb.planning import build_query_body
from vscope_pipeline.secrets import Secret
from vscope_pipeline.simulator.fleet import Fleet

ANCHOR_DAY = dt.date(2025, 6, 4)
BENCH_DAY = dt.date(2025, 6, 2)
DEFAULT_VM_COUNT = 500


@dataclass(frozen=True)
class SavedBody:
    """The response body of one metric of one datacenter, saved after gzip decoding."""

    spec: MetricSpec
    datacenter_label: str
    path: Path


def datacenter_targets(fleet: Fleet) -> list[DatacenterTarget]:
    """Return one target per datacenter, expecting every entity that reports series there."""
    expected: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for entity in fleet.series_entities():
        expected[entity.datacenter][entity.kind].add(entity.entity)
    return [
        DatacenterTarget(
            service_name=fleet.service_name,
            datacenter_label=datacenter.label,
            expected_entities={
                kind: frozenset(names) for kind, names in expected[datacenter.label].items()
            },
        )
        for datacenter in fleet.datacenters
    ]


def per_entity_requests(fleet: Fleet, catalog: Sequence[MetricSpec]) -> float:
    """Return the mean requests per datacenter-day with one request per entity and metric.

    A per-NIC metric counts one request per host, with a wildcard on the NIC.
    """
    targets = datacenter_targets(fleet)
    total = sum(
        len(target.expected_entities.get(spec.entity_kind, ()))
        for target in targets
        for spec in catalog
    )
    return total / len(targets)


def save_response_bodies(
    opentsdb_url: str,
    token: str,
    fleet: Fleet,
    specs: Sequence[MetricSpec],
    day: dt.date,
    folder: Path,
) -> list[SavedBody]:
    """Fetch each metric of each datacenter for `day` and save its body under `folder`.

    The queries are the pipeline's grouped queries, sent by `DEFAULT_MAX_WORKERS` threads.
    """
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, datacenter.label) for spec in specs for datacenter in fleet.datacenters]

    with OpenTSDBClient(opentsdb_url, Secret(token)) as client:

        def fetch(job: tuple[MetricSpec, str]) -> SavedBody:
            spec, label = job
            response = client.query(build_query_body(spec, label, day))
            path = folder / f"{spec.name}@{label}.json"
            path.write_bytes(response.content)
            return SavedBody(spec=spec, datacenter_label=label, path=path)

        with ThreadPoolExecutor(max_workers=DEFAULT_MAX_WORKERS) as pool:
            return list(pool.map(fetch, jobs))


@dataclass(frozen=True)
class MetricDay:
    """One metric of the benchmark day: the response body of each datacenter."""

    spec: MetricSpec
    bodies: tuple[tuple[str, bytes], ...]


def load_metric_days(saved: Sequence[SavedBody]) -> list[MetricDay]:
    """Read the saved bodies into memory, grouped by metric in their first-seen order."""
    grouped: dict[str, list[SavedBody]] = {}
    for body in saved:
        grouped.setdefault(body.spec.name, []).append(body)
    return [
        MetricDay(
            spec=bodies[0].spec,
            bodies=tuple((body.datacenter_label, body.path.read_bytes()) for body in bodies),
        )
        for bodies in grouped.values()
    ]


def total_bytes(days: Sequence[MetricDay]) -> int:
    return sum(len(body) for day in days for _, body in day.bodies)
