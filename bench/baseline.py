"""The straightforward decoder that the pipeline's decode and write are compared with.

It is what one would write first with the standard library and pandas: `json.loads`, one
DataFrame per series, `pd.concat`, then `DataFrame.to_parquet`. It produces the same rows as
the pipeline on the benchmark day: missing values and points outside the day are dropped and
the rows are sorted by datacenter, entity, NIC and time. It does less checking than
`decode_query_response`: it does not validate the response or remove duplicate points,
which the benchmark day does not have, and it reads every key as milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.day import MetricDay
from vscope_pipeline.catalog import NIC_LABEL
from vscope_pipeline.lake.layout import metric_partition_dir, partition_file
from vscope_pipeline.opentsdb.planning import DayWindow


def baseline_decode_and_write(
    days: Sequence[MetricDay], service_name: str, window: DayWindow, lake: Path
) -> int:
    """Decode and write every metric-day the straightforward way; return the rows written."""
    rows = 0
    for day in days:
        spec = day.spec
        frames = []
        for label, body in day.bodies:
            for element in json.loads(body):
                dps = element.get("dps")
                if not element.get("metric") or not dps:
                    continue
                tags = element["tags"]
                frame = pd.DataFrame(
                    {
                        "ts": [int(key) for key in dps],
                        "value": list(dps.values()),
                    }
                )
                frame["entity_kind"] = spec.entity_kind
                frame["service_name"] = service_name
                frame["datacenter"] = label
                frame["entity"] = tags[spec.entity_label]
                frame["nic"] = tags.get(NIC_LABEL) if spec.per_nic else None
                frames.append(frame)

        table = pd.concat(frames, ignore_index=True)
        table["value"] = pd.to_numeric(table["value"], errors="coerce")
        in_day = (table["ts"] >= window.start_ms) & (table["ts"] < window.stop_ms)
        table = table[in_day & table["value"].notna()]
        table = table.sort_values(["datacenter", "entity", "nic", "ts"])
        table["ts"] = pd.to_datetime(table["ts"], unit="ms", utc=True)
        table = table[["entity_kind", "service_name", "datacenter", "entity", "nic", "ts", "value"]]

        folder = metric_partition_dir(lake, spec.name, window.day)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_parquet(partition_file(folder), compression="zstd", index=False)
        rows += len(table)
    return rows
