"""Inventory assets: one walk of OVH APIv6 yields the four inventory snapshots.

The inventory is live state, so it is not partitioned by day: each materialisation stores the
snapshot under the UTC day it was taken, by APIv6's clock (`inventory/kind=<kind>/day=<day>/`).
A second snapshot on the same day replaces the first, so re-runs never duplicate rows.

A service whose walk fails is named in the `failed_services` metadata and logged, and the other
services' snapshots are still written, so the metric assets run for them (and fail the run at
its end, naming the service). The new snapshot keeps that service's rows of an earlier snapshot
of the same day, with their own `snapshot_at`, so the metrics of that day stay attached to an
inventory and that service's datacenters are still fetched. A service with no earlier snapshot
that day is absent from the new one.
When every service fails, nothing is written and the asset fails.
"""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import logging
from collections.abc import Collection
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext

from vscope_pipeline.collect import ServiceFailure, ServicesFailedError, services_failed_message
from vscope_pipeline.defs.ownership import ASSET_OWNERS
from vscope_pipeline.defs.resources import OvhApiResource, VScopeSettingsResource
from vscope_pipeline.lake.layout import INVENTORY_KINDS, file_key, inventory_partition_key
from vscope_pipeline.lake.location import LakeLike, as_lake
from vscope_pipeline.lake.writer import write_partition

log = logging.getLogger(__name__)

# Runs that walk the APIv6 inventory share this Dagster pool, so dagster.yaml bounds how many
# walk at once. The request rate of all of them together is bounded by a limit shared through
# files (vscope_pipeline.rate_limit), which applies whatever the pool's limit is.
OVH_API_POOL = "vscope_ovh_api"

# The metadata key that names the services whose walk failed, with the error of each.
FAILED_SERVICES_KEY = "failed_services"

_GRAIN = {
    "datacenters": "one row per datacenter",
    "filers": "one row per datastore (filer), datacenter or global",
    "hosts": "one row per ESXi host",
    "vms": "one row per virtual machine",
}

INVENTORY_KEYS = {kind: dg.AssetKey(["inventory", kind]) for kind in INVENTORY_KINDS}


def inventory_failures(metadata: dict[str, object]) -> list[ServiceFailure]:
    """Return the failed services that an inventory materialization's metadata names."""
    found = metadata.get(FAILED_SERVICES_KEY)
    reasons = found.value if isinstance(found, dg.JsonMetadataValue) else None
    if not isinstance(reasons, dict):
        return []
    return [
        ServiceFailure(str(name), "inventory", str(reason))
        for name, reason in sorted(reasons.items())
    ]


def keep_failed_service_rows(
    table: pa.Table, folder: str | Path, failed_services: Collection[str], lake: LakeLike = "/"
) -> tuple[pa.Table, int]:
    """Add to `table` the rows of `failed_services` stored in `folder`; return it and their count.

    `folder` is a path of `lake`'s file system (any local path with the default). A stored file
    that is missing, unreadable or of another schema adds nothing.
    """
    location = as_lake(lake)
    path = file_key(str(folder))
    if not failed_services or not location.is_file(path):
        return table, 0
    try:
        kept = pq.read_table(
            path,
            filters=[("service_name", "in", sorted(failed_services))],
            filesystem=location.filesystem,
        )
        kept = kept.select(table.schema.names).cast(table.schema)
    except (OSError, KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        log.warning(
            "earlier snapshot %s cannot be read with the current schema, so no row of the "
            "failed services %s is kept: %s",
            path,
            ", ".join(sorted(failed_services)),
            error,
        )
        return table, 0
    return pa.concat_tables([table, kept]).sort_by("service_name"), kept.num_rows


@dg.multi_asset(
    name="inventory_snapshot",
    specs=[
        dg.AssetSpec(
            INVENTORY_KEYS[kind],
            group_name="inventory",
            kinds={"python", "parquet", "ovh"},
            owners=ASSET_OWNERS,
            description=f"Snapshot of the dedicatedCloud inventory from OVH APIv6: {_GRAIN[kind]}"
            " per snapshot day (UTC, by APIv6's clock), every documented field. Not partitioned: "
            "each run stores the live inventory under the day it was taken, and the ingestion "
            "job takes it before the metrics.",
        )
        for kind in INVENTORY_KINDS
    ],
    pool=OVH_API_POOL,
)
def inventory_snapshot(
    context: AssetExecutionContext,
    vscope_settings: VScopeSettingsResource,
    ovh_api: OvhApiResource,
):
    settings = vscope_settings.settings
    # The API's clock, not this machine's, dates the snapshot: it describes the API's state.
    snapshot_at = ovh_api.server_time()
    day = snapshot_at.date()
    snapshot = ovh_api.snapshot_inventory(snapshot_at)
    failed = dict(snapshot.failed_services)
    for service_name, reason in sorted(failed.items()):
        context.log.error(f"inventory of dedicatedCloud service {service_name} failed: {reason}")
    if failed and not snapshot.service_names:
        failures = [
            ServiceFailure(name, "inventory", reason) for name, reason in sorted(failed.items())
        ]
        raise ServicesFailedError(services_failed_message(failures, len(failures)))

    for kind, fresh in snapshot.tables.items():
        lake = settings.lake
        folder = lake.path(inventory_partition_key(kind, day))
        table, kept_rows = keep_failed_service_rows(fresh, folder, failed, lake)
        written = write_partition(
            table, folder, filesystem=lake.filesystem, modes=settings.file_modes
        )
        skipped = snapshot.stats.skipped_not_found.get(kind, ())
        enum_values = snapshot.stats.unknown_enum_values.get(kind, {})
        nulled = snapshot.stats.nulled_fields.get(kind, {})
        rejected = snapshot.stats.rejected.get(kind, ())
        odd_values = sum(sum(values.values()) for values in enum_values.values())
        if odd_values or nulled or rejected:
            context.log.warning(
                f"inventory {kind}: {odd_values} undocumented enum values kept, "
                f"{sum(nulled.values())} invalid optional values stored as NULL, "
                f"{len(rejected)} objects skipped for an invalid required field "
                "(details in the metadata and the warnings above)"
            )
        kept_note = (
            f" ({kept_rows} of them kept from the failed services' earlier snapshot)"
            if failed
            else ""
        )
        context.log.info(
            "inventory %s: %d rows%s, %d listed but not found, written to %s",
            kind,
            table.num_rows,
            kept_note,
            len(skipped),
            lake.url(folder),
        )
        yield dg.MaterializeResult(
            asset_key=INVENTORY_KEYS[kind],
            metadata={
                "dagster/row_count": table.num_rows,
                "snapshot_day": day.isoformat(),
                "snapshot_at": snapshot_at.isoformat(),
                "skipped_not_found": len(skipped),
                "skipped_ids": dg.MetadataValue.json([str(key) for key in skipped][:50]),
                "file_bytes": written.bytes_written,
                "path": dg.MetadataValue.path(lake.url(folder)),
                "requests": snapshot.stats.requests,
                "retries": snapshot.stats.retries,
                "unknown_enum_values": odd_values,
                "unknown_enum_values_by_field": dg.MetadataValue.json(
                    {path: dict(values) for path, values in enum_values.items()}
                ),
                "nulled_invalid_values": dg.MetadataValue.json(dict(nulled)),
                "skipped_invalid": len(rejected),
                "skipped_invalid_objects": dg.MetadataValue.json(
                    [{"object": item.subject, "reason": item.reason} for item in rejected][:50]
                ),
                "dropped_unknown_fields": dg.MetadataValue.json(
                    dict(snapshot.stats.unknown_fields.get(kind, {}))
                ),
                FAILED_SERVICES_KEY: dg.MetadataValue.json(failed),
                "kept_rows_of_failed_services": kept_rows,
            },
        )
