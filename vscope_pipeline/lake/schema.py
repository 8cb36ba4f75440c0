"""Arrow schemas of the files in the Parquet lake."""

from __future__ import annotations

import pyarrow as pa

# Columns stored in each metric file. `metric` and `day` are not stored in the file: they are
# the Hive partition keys of its folder (`metric=<name>/day=<YYYY-MM-DD>`).
METRIC_FILE_SCHEMA = pa.schema(
    [
        pa.field("entity_kind", pa.string(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("datacenter", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("nic", pa.string(), nullable=True),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
