"""Turn the latest inventory snapshot into the datacenters whose metrics are fetched."""

from __future__ import annotations

from collections import defaultdict

import pyarrow.parquet as pq

from vscope_pipeline.catalog import EntityKind
from vscope_pipeline.collect import DatacenterTarget
from vscope_pipeline.lake.layout import latest_inventory_file
from vscope_pipeline.lake.location import LakeLike, as_lake

# Inventory table, and its column that contains the value of the entity's metric tag.
ENTITY_COLUMNS: dict[EntityKind, tuple[str, str]] = {
    "vm": ("vms", "mo_ref"),
    "host": ("hosts", "name"),
    "filer": ("filers", "name"),
}


class MissingInventoryError(RuntimeError):
    """No inventory snapshot is stored yet, so there is nothing to plan metric queries on."""


def load_targets(data_dir: LakeLike) -> list[DatacenterTarget]:
    """Return one target per datacenter of the latest snapshot, with its expected entities.

    Global filers have no datacenter, so they are not expected in any datacenter's series, but
    a series of theirs under any datacenter of their service is known (`shared_entities`).
    """
    lake = as_lake(data_dir)
    latest = latest_inventory_file(lake, "datacenters")
    if latest is None:
        raise MissingInventoryError(
            f"no inventory snapshot under {lake.url(lake.root)}: materialize the inventory "
            "assets first (`vscope-pipeline ingest` runs them before the metrics)"
        )
    datacenters = pq.read_table(
        latest[1], columns=["service_name", "datacenter_label"], filesystem=lake.filesystem
    )
    if datacenters.num_rows == 0:
        # Fetching nothing would replace every metric partition of the day with an empty file.
        raise MissingInventoryError(
            f"the latest inventory snapshot ({latest[0]}) lists no datacenter, so no metric "
            "can be fetched: check VSCOPE_SERVICE_NAMES and the API keys' rights, then "
            "materialize the inventory again"
        )

    expected: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    # Global filers by service, then entity kind.
    shared: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for kind, (table_name, column) in ENTITY_COLUMNS.items():
        found = latest_inventory_file(lake, table_name)
        if found is None:
            continue
        table = pq.read_table(found[1], filesystem=lake.filesystem)
        # A VM that is not powered on sends no metrics, so it is not expected to.
        running = (
            [state == "poweredOn" for state in table.column("power_state").to_pylist()]
            if kind == "vm"
            else [True] * table.num_rows
        )
        for service_name, label, entity, is_running in zip(
            table.column("service_name").to_pylist(),
            table.column("datacenter_label").to_pylist(),
            table.column(column).to_pylist(),
            running,
            strict=True,
        ):
            if entity is None or not is_running:
                continue
            if label is None:
                shared[service_name][kind].add(entity)
            else:
                expected[label][kind].add(entity)

    return [
        DatacenterTarget(
            service_name=service_name,
            datacenter_label=label,
            expected_entities={kind: frozenset(names) for kind, names in expected[label].items()},
            shared_entities={
                kind: frozenset(names) for kind, names in shared[service_name].items()
            },
        )
        for service_name, label in sorted(
            zip(
                datacenters.column("service_name").to_pylist(),
                datacenters.column("datacenter_label").to_pylist(),
                strict=True,
            )
        )
    ]
