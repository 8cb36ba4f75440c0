"""Detecting, from a response, that the server merged series that were meant to stay apart.

A grouped query requests one series per entity (and per NIC). A server without group-by
support returns the matching series aggregated into one, whose `tags` lack the entity label
because its values differ, and whose `aggregateTags` list that label. The check relies on
`tags`: OpenTSDB never puts a key in both, and OVH's proxy lists every group-by key in
`aggregateTags` even for a correctly grouped series, so `aggregateTags` alone proves nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from vscope_pipeline.catalog import NIC_LABEL, MetricSpec


def find_merged_series(content: bytes, spec: MetricSpec) -> str | None:
    """Describe the first series whose `tags` lack a key that identifies it, or return None.

    The keys are the entity label and, for a per-NIC metric, `nicname`. A body that is not
    a JSON array of objects returns None, so the decoder reports it as it does any other.
    """
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, list):
        return None
    required = (spec.entity_label, NIC_LABEL) if spec.per_nic else (spec.entity_label,)
    for index, element in enumerate(document):
        if not isinstance(element, dict) or not element.get("metric") or not element.get("dps"):
            continue
        tags = element.get("tags")
        if not isinstance(tags, dict):
            continue
        missing = [key for key in required if not _has_value(tags, key)]
        if missing:
            return (
                f"element {index} has no {', '.join(repr(key) for key in missing)} tag "
                f"(tags {_sorted_keys(tags)}, aggregateTags "
                f"{_aggregate_tags(element.get('aggregateTags'))})"
            )
    return None


def _has_value(tags: dict[str, Any], key: str) -> bool:
    value = tags.get(key)
    return isinstance(value, str) and bool(value)


def _sorted_keys(tags: dict[str, Any]) -> str:
    return "[" + ", ".join(sorted(str(key) for key in tags)) + "]"


def _aggregate_tags(value: object) -> str:
    if not isinstance(value, list):
        return repr(value)
    return "[" + ", ".join(sorted(str(key) for key in value)) + "]"
