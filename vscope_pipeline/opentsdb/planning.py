"""Request bodies for `POST /api/query`: one metric of one datacenter over a part of a UTC day.

The grouped body requests one output series per entity (and per NIC for per-NIC metrics):
- `filters` only, never `tags`: in a JSON body the later of the two replaces the other;
- `literal_or` on `datacenter` and `wildcard(*)` on the entity label and `nicname`, all
  group-by, so every group contains exactly one stored series;
- aggregator `avg`, which returns that single series unchanged and exists in every OpenTSDB
  version and in OVH's proxy;
- explicit integer times in milliseconds (13 digits, so OpenTSDB reads them as ms) and
  `msResolution`, so that points less than a second apart keep distinct `dps` keys.

The per-entity body, for servers that ignore group-by and for queries split by entity, has
one sub-query per entity with a `literal_or` filter on the entity label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from vscope_pipeline.catalog import DATACENTER_LABEL, ENTITY_LABEL, NIC_LABEL, MetricSpec

AGGREGATOR = "avg"
# OpenTSDB's aggregator that returns every stored series on its own, whatever the group-by.
NO_AGGREGATION = "none"

# OpenTSDB accepts letters (any script), digits, '-', '_', '.' and '/' in tag values. A '|'
# would also turn the literal_or filter into a list of several datacenters.
_TAG_VALUE = re.compile(r"[\w./-]+")

_MS_PER_DAY = 86_400_000

ENTITY_LABELS = frozenset(ENTITY_LABEL.values())


@dataclass(frozen=True)
class DayWindow:
    """One UTC day as epoch milliseconds: the half-open interval [start_ms, stop_ms)."""

    day: date
    start_ms: int
    stop_ms: int

    @property
    def end_ms(self) -> int:
        """Return the last millisecond of the day, the inclusive `end` that OpenTSDB expects."""
        return self.stop_ms - 1


def sub_window(window: DayWindow, start_ms: int, stop_ms: int) -> DayWindow:
    """Return the part `[start_ms, stop_ms)` of a day window; raise ValueError outside it."""
    if not window.start_ms <= start_ms < stop_ms <= window.stop_ms:
        raise ValueError(
            f"window [{start_ms}, {stop_ms}) is invalid: expected a non-empty part of the day "
            f"{window.day.isoformat()}, [{window.start_ms}, {window.stop_ms})"
        )
    return DayWindow(day=window.day, start_ms=start_ms, stop_ms=stop_ms)


def day_window(day: date) -> DayWindow:
    """Return the window of a UTC day; a `datetime` is reduced to its date."""
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    start_ms = int(midnight.timestamp()) * 1000
    return DayWindow(day=midnight.date(), start_ms=start_ms, stop_ms=start_ms + _MS_PER_DAY)


def validate_tag_value(value: str, name: str) -> None:
    """Raise ValueError unless `value` can be sent as one literal OpenTSDB tag value."""
    if not _TAG_VALUE.fullmatch(value):
        raise ValueError(
            f"{name} {value!r} is not a valid OpenTSDB tag value: expected letters, digits, "
            "'-', '_', '.' or '/', for example 'pcc-37-187-228-180_datacenter869'"
        )


def build_query_body(spec: MetricSpec, datacenter_label: str, day: date) -> dict[str, Any]:
    """Build the `/api/query` body that fetches one metric of one datacenter for one UTC day."""
    return build_window_body(spec, datacenter_label, day_window(day))


def build_window_body(
    spec: MetricSpec,
    datacenter_label: str,
    window: DayWindow,
    entities: Sequence[str] | None = None,
    downsample: str | None = None,
) -> dict[str, Any]:
    """Build the body that fetches one metric of one datacenter over `window`.

    With `entities` None, one grouped sub-query covers every entity. Otherwise each entity
    gets its own sub-query. For a per-NIC metric that sub-query uses the `none` aggregator,
    which returns each stored series apart, so NICs stay apart even on a server that ignores
    group-by. `downsample` is a validated spec such as `5m-avg`, sent as is.
    """
    validate_tag_value(datacenter_label, "datacenter label")
    if entities is None:
        queries = [_sub_query(spec, datacenter_label, "*", AGGREGATOR, downsample)]
    else:
        if not entities:
            raise ValueError("entities is empty: expected at least one entity name, or None")
        aggregator = NO_AGGREGATION if spec.per_nic else AGGREGATOR
        queries = []
        for entity in entities:
            validate_tag_value(entity, f"{spec.entity_label} name")
            queries.append(_sub_query(spec, datacenter_label, entity, aggregator, downsample))
    return {
        "start": window.start_ms,
        "end": window.end_ms,
        "msResolution": True,
        "queries": queries,
    }


def _sub_query(
    spec: MetricSpec,
    datacenter_label: str,
    entity: str,
    aggregator: str,
    downsample: str | None,
) -> dict[str, Any]:
    entity_filter = "wildcard" if entity == "*" else "literal_or"
    filters = [_filter("literal_or", DATACENTER_LABEL, datacenter_label)]
    filters.append(_filter(entity_filter, spec.entity_label, entity))
    if spec.per_nic:
        filters.append(_filter("wildcard", NIC_LABEL, "*"))
    query: dict[str, Any] = {"metric": spec.name, "aggregator": aggregator, "filters": filters}
    if downsample is not None:
        query["downsample"] = downsample
    return query


def _filter(kind: str, tag_key: str, expression: str) -> dict[str, Any]:
    return {"type": kind, "tagk": tag_key, "filter": expression, "groupBy": True}


def describe_query(body: Mapping[str, Any]) -> str:
    """Summarise a query body for log lines and error messages: metrics, datacenters, window.

    A body of per-entity sub-queries also gives the number of entities, or the entity when
    there is one. Tolerates any body, so that describing a malformed request never raises.
    """
    metrics: list[str] = []
    datacenters: list[str] = []
    entities: list[str] = []
    queries = body.get("queries")
    for query in queries if isinstance(queries, list) else []:
        if not isinstance(query, Mapping):
            continue
        metrics.append(str(query.get("metric")))
        filters = query.get("filters")
        for item in filters if isinstance(filters, list) else []:
            if not isinstance(item, Mapping):
                continue
            if item.get("tagk") == DATACENTER_LABEL:
                datacenters.append(str(item.get("filter")))
            elif item.get("type") == "literal_or" and item.get("tagk") in ENTITY_LABELS:
                entities.append(f"{item.get('tagk')} {item.get('filter')}")

    parts = [f"metric {', '.join(dict.fromkeys(metrics)) or '(none)'}"]
    if datacenters:
        parts.append(f"datacenter {', '.join(dict.fromkeys(datacenters))}")
    if len(entities) == 1:
        parts.append(entities[0])
    elif entities:
        parts.append(f"{len(entities)} entities")
    parts.append(f"from {_format_ms(body.get('start'))} to {_format_ms(body.get('end'))}")
    return ", ".join(parts)


def _format_ms(value: object) -> str:
    """Format an epoch-millisecond integer as ISO 8601 UTC, any other value as its repr."""
    if not isinstance(value, int) or isinstance(value, bool):
        return repr(value)
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
    except OverflowError:
        return repr(value)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
