"""Splitting a query that is too large for the server: by time first, then by entities.

A query is too large when the server returns 413 (OpenTSDB's data-point, byte and time
limits) or a 500 whose message reports an exceeded fetch limit (OVH's proxy), or when no
response arrives within the read timeout on any attempt. The window is cut in two halves
until a half would be shorter than MIN_SPLIT_WINDOW_MS. Then the entities are cut: a grouped
query becomes per-entity sub-queries in batches of ENTITY_BATCH_SIZE, and a batch is cut in
halves down to a single entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vscope_pipeline.opentsdb.errors import (
    OpenTSDBError,
    OpenTSDBReadTimeout,
    is_fetch_limit_message,
)
from vscope_pipeline.opentsdb.planning import DayWindow, sub_window

MIN_SPLIT_WINDOW_MS = 15 * 60_000
# Sub-queries per POST when querying entity by entity: enough to keep the request count low
# for a few thousand VMs, few enough that one POST stays far below the server's limits.
ENTITY_BATCH_SIZE = 50
# Raw windows are cut on whole seconds, downsampled ones on whole buckets.
RAW_SPLIT_ALIGN_MS = 1_000


@dataclass(frozen=True)
class QueryUnit:
    """A part of a metric-day: a window, and the entities of its per-entity sub-queries.

    `entities` None means one grouped sub-query over every entity.
    """

    window: DayWindow
    entities: tuple[str, ...] | None = None


def is_too_large(error: OpenTSDBError) -> bool:
    """Return whether a failed query may succeed once split into smaller ones.

    NOTE: a server that accepts connections but never responds also gives read timeouts.
    The client then spends its retries on each of 7 time levels and up to 7 entity levels
    before it raises. With the default policy and a 120 s read timeout, a level costs about
    10 minutes (5 attempts and 15 s of backoff), so the fetch fails after one to two hours.
    """
    if isinstance(error, OpenTSDBReadTimeout):
        return True
    if error.status == 413:
        return True
    return error.status == 500 and is_fetch_limit_message(error.server_message)


def split_window(
    window: DayWindow, align_ms: int, min_window_ms: int = MIN_SPLIT_WINDOW_MS
) -> tuple[DayWindow, DayWindow] | None:
    """Cut a window in two at a multiple of `align_ms` from its start, or return None.

    None means that a half would be shorter than `min_window_ms` or that no aligned cut
    exists. The start of the window must be on the `align_ms` grid for the halves to be.
    """
    length = window.stop_ms - window.start_ms
    middle = window.start_ms + (length // 2) // align_ms * align_ms
    if middle - window.start_ms < min_window_ms or window.stop_ms - middle < min_window_ms:
        return None
    return (
        sub_window(window, window.start_ms, middle),
        sub_window(window, middle, window.stop_ms),
    )


def batch_entities(entities: Sequence[str], size: int = ENTITY_BATCH_SIZE) -> list[tuple[str, ...]]:
    """Cut sorted entity names into consecutive batches of at most `size`."""
    return [tuple(entities[index : index + size]) for index in range(0, len(entities), size)]


def split_unit(
    unit: QueryUnit,
    expected_entities: Sequence[str],
    align_ms: int,
    min_window_ms: int = MIN_SPLIT_WINDOW_MS,
) -> list[QueryUnit] | None:
    """Return the smaller units that replace a unit the server found too large, or None.

    `expected_entities` (sorted) are used when a grouped unit must be cut by entity. None
    means the unit is already the smallest: a minimum window and one entity, or a grouped
    minimum window whose datacenter has fewer than two expected entities.
    """
    halves = split_window(unit.window, align_ms, min_window_ms)
    if halves is not None:
        return [QueryUnit(half, unit.entities) for half in halves]

    entities = unit.entities if unit.entities is not None else tuple(expected_entities)
    if len(entities) > ENTITY_BATCH_SIZE:
        return [QueryUnit(unit.window, batch) for batch in batch_entities(entities)]
    if len(entities) < 2:
        return None
    middle = len(entities) // 2
    return [QueryUnit(unit.window, entities[:middle]), QueryUnit(unit.window, entities[middle:])]
