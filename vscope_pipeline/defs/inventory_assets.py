"""Inventory assets: one walk of OVH APIv6 yields the four inventory snapshots.

The inventory is live state, so it is not partitioned by day: each materialisation stores the
snapshot under the UTC day it was taken, by APIv6's clock (`inventory/kind=<kind>/day=<day>/`).
A second snapshot on the same day replaces the first, so re-runs never duplicate rows.
"""

# No `from __future__ import annotations` here: Dagster checks the `context` annotation
# by identity, which a string annotation fails.
import dagster as dg
from dagster import AssetExecutionContext

from vscope_pipeline.defs.resources import OvhApiResource, VScopeSettingsResource
from vscope_pipeline.lake.layout import INVENTORY_KINDS, inventory_partition_dir
from vscope_pipeline.lake.writer import write_partition

_GRAIN = {
    "datacenters": "one row per datacenter",
    "filers": "one row per datastore (filer), datacenter or global",
    "hosts": "one row per ESXi host",
    "vms": "one row per virtual machine",
}

INVENTORY_KEYS = {kind: dg.AssetKey(["inventory", kind]) for kind in INVENTORY_KINDS}


@dg.multi_asset(
    name="inventory_snapshot",
    specs=[
        dg.AssetSpec(
            INVENTORY_KEYS[kind],
            group_name="inventory",
            kinds={"parquet", "ovh"},
            description=f"Snapshot of the dedicatedCloud inventory from OVH APIv6: {_GRAIN[kind]}"
            ", every documented field, stored per snapshot day.",
        )
        for kind in INVENTORY_KINDS
    ],
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

    for kind, table in snapshot.tables.items():
        folder = inventory_partition_dir(settings.data_dir, kind, day)
        written = write_partition(table, folder, modes=settings.file_modes)
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
        context.log.info(
            "inventory %s: %d rows, %d listed but not found, written to %s",
            kind,
            table.num_rows,
            len(skipped),
            folder,
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
                "path": dg.MetadataValue.path(str(folder)),
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
            },
        )
