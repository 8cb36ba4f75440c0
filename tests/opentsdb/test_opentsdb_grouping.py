from __future__ import annotations

from typing import Any

import orjson
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.opentsdb.grouping import find_merged_series

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
VM_CPU = SPECS["vscope.vm.cpu.usage.perc"]
HOST_TX = SPECS["vscope.host.net.tx"]
DC = "pcc-1_datacenter1"


def _series(tags: dict[str, str], aggregate_tags: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "metric": VM_CPU.name,
        "tags": {"datacenter": DC, **tags},
        "aggregateTags": aggregate_tags,
        "dps": {"1714521600000": 1.0},
        **extra,
    }


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        pytest.param(
            [_series({"vm": "vm-1"}, []), _series({"vm": "vm-2"}, [])], None, id="grouped"
        ),
        pytest.param(
            # OVH's proxy lists the group-by keys in aggregateTags of grouped series.
            [_series({"vm": "vm-1"}, ["datacenter", "vm"])],
            None,
            id="proxy-grouped",
        ),
        pytest.param(
            [_series({"vm": "vm-1"}, []), _series({"env": "prod"}, ["vm"])],
            "element 1 has no 'vm' tag (tags [datacenter, env], aggregateTags [vm])",
            id="merged",
        ),
        pytest.param([_series({}, ["vm"], dps={})], None, id="empty-dps-skipped"),
        pytest.param([{"statsSummary": {}}], None, id="summary-skipped"),
        pytest.param({"error": "x"}, None, id="not-an-array"),
    ],
)
def test_find_merged_series_cases(elements: Any, expected: str | None) -> None:
    assert find_merged_series(orjson.dumps(elements), VM_CPU) == expected


def test_merged_nics_are_found() -> None:
    body = [
        {
            "metric": HOST_TX.name,
            "tags": {"datacenter": DC, "host": "esx-1"},
            "aggregateTags": ["nicname"],
            "dps": {"1714521600000": 1.0},
        }
    ]

    assert find_merged_series(orjson.dumps(body), HOST_TX) == (
        "element 0 has no 'nicname' tag (tags [datacenter, host], aggregateTags [nicname])"
    )


def test_body_that_is_not_json() -> None:
    assert find_merged_series(b"<html>", VM_CPU) is None
