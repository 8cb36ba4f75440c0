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

# Columns stored in each rollup file (`rollups/grain=<hour|day>/metric=<name>/month=<YYYY-MM>`):
# one row per series and bucket. `bucket` is the start of the UTC hour or day; `p95` is the 95th
# percentile of the bucket's values with linear interpolation between the two nearest ranks.
ROLLUP_FILE_SCHEMA = pa.schema(
    [
        pa.field("entity_kind", pa.string(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("datacenter", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("nic", pa.string(), nullable=True),
        pa.field("bucket", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("samples", pa.int64(), nullable=False),
        pa.field("avg", pa.float64(), nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("p95", pa.float64(), nullable=False),
        # The UTC day of `bucket`: a rollup file contains a whole month, and readers filter on it.
        pa.field("day", pa.date32(), nullable=False),
    ]
)
