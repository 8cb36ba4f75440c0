"""Failed services of a run, reported by the warehouse step after it has published.

A metric asset whose services partly failed has stored the other services' data. When the
DuckDB warehouse is part of the same run, the asset does not fail its step, because Dagster
would then skip the warehouse and leave the previous inventory tables in place. The warehouse
publishes what the run stored, then reads the failures from this run's metric materializations
and fails the run with the same message.
"""

# No `from __future__ import annotations` here, like the asset modules that import it.
import dagster as dg

from vscope_pipeline.collect import ServiceFailure

WAREHOUSE_KEY = dg.AssetKey(["warehouse", "vscope_duckdb"])

# Metadata of a metric materialization: failed services as {"<service> (<stage>)": reason},
# and the number of services of the run, failed ones included.
FAILED_SERVICES_KEY = "failed_services"
SERVICE_COUNT_KEY = "services"


def failures_metadata(
    failures: list[ServiceFailure], service_count: int
) -> dict[str, dg.MetadataValue]:
    """Return the metadata entries that record a metric asset's failed services."""
    return {
        FAILED_SERVICES_KEY: dg.MetadataValue.json(
            {f"{f.service_name} ({f.stage})": f.reason for f in failures}
        ),
        SERVICE_COUNT_KEY: dg.MetadataValue.int(service_count),
    }


def warehouse_runs_later(context: dg.AssetExecutionContext) -> bool:
    """Return whether this run also materializes the warehouse, after the metric assets."""
    selection = context.run.asset_selection
    # A run of the whole job, such as `execute_in_process`, has no selection or an empty one.
    if not selection:
        return WAREHOUSE_KEY in context.job_def.asset_layer.executable_asset_keys
    return WAREHOUSE_KEY in selection


def run_failures(
    context: dg.AssetExecutionContext, asset_keys: list[dg.AssetKey]
) -> tuple[list[ServiceFailure], int]:
    """Return the failed services that this run's materializations of `asset_keys` recorded.

    A service and stage that several assets or partitions record is returned once. The count is
    the largest number of services that a materialization recorded.
    """
    found: dict[tuple[str, str], ServiceFailure] = {}
    service_count = 0
    records = context.instance.get_records_for_run(
        run_id=context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=100_000
    ).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None or materialization.asset_key not in asset_keys:
            continue
        metadata = materialization.metadata
        count = metadata.get(SERVICE_COUNT_KEY)
        if isinstance(count, dg.IntMetadataValue) and count.value is not None:
            service_count = max(service_count, count.value)
        reasons = metadata.get(FAILED_SERVICES_KEY)
        if not isinstance(reasons, dg.JsonMetadataValue) or not isinstance(reasons.value, dict):
            continue
        for label, reason in reasons.value.items():
            # Service names contain no space, so the first " (" ends the name.
            service_name, _, stage = str(label).partition(" (")
            failure = ServiceFailure(service_name, stage.removesuffix(")"), str(reason))
            found.setdefault((failure.service_name, failure.stage), failure)
    return sorted(found.values(), key=lambda f: (f.service_name, f.stage)), service_count
