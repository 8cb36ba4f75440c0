from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.opentsdb.downsample import (
    Downsample,
    parse_downsample,
    restamp_to_epoch_grid,
)
from vscope_pipeline.opentsdb.errors import OpenTSDBDecodeError
from vscope_pipeline.opentsdb.planning import day_window
from vscope_pipeline.secrets import Secret

T0 = day_window(date(2024, 5, 1)).start_ms
FIVE_MINUTES = 300_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m-avg", Downsample("5m-avg", 300_000, "avg", "none")),
        ("1h-max-nan", Downsample("1h-max-nan", 3_600_000, "max", "nan")),
        ("1d-sum-zero", Downsample("1d-sum-zero", 86_400_000, "sum", "zero")),
        ("30s-p95-null", Downsample("30s-p95-null", 30_000, "p95", "null")),
        ("500ms-last", Downsample("500ms-last", 500, "last", "none")),
    ],
)
def test_parse_downsample_valid(text: str, expected: Downsample) -> None:
    assert parse_downsample(text) == expected


SPEC_FORMAT = (
    "expected '<n><unit>-<function>[-<fill>]' with a unit of ms, s, m, h or d, for example "
    "'5m-avg' or '1h-max-nan'"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5m", f"downsample '5m' is invalid: {SPEC_FORMAT}"),
        ("avg-5m", f"downsample 'avg-5m' is invalid: {SPEC_FORMAT}"),
        ("1w-avg", f"downsample '1w-avg' is invalid: {SPEC_FORMAT}"),
        ("1dc-avg", f"downsample '1dc-avg' is invalid: {SPEC_FORMAT}"),
        ("0all-sum", f"downsample '0all-sum' is invalid: {SPEC_FORMAT}"),
        (
            "7m-avg",
            "downsample '7m-avg' is invalid: its interval must divide a day (86400 s), so that "
            "no bucket spans two days, for example 1m, 5m, 15m, 1h or 1d",
        ),
        (
            "0m-avg",
            "downsample '0m-avg' is invalid: its interval must divide a day (86400 s), so that "
            "no bucket spans two days, for example 1m, 5m, 15m, 1h or 1d",
        ),
        (
            "5m-mean",
            "downsample '5m-mean' is invalid: function 'mean' is not one of avg, count, dev, "
            "first, last, max, mimmax, mimmin, min, p50, p75, p90, p95, p99, p999, sum, zimsum",
        ),
        (
            "5m-avg-linear",
            "downsample '5m-avg-linear' is invalid: fill policy 'linear' is not one of nan, "
            "none, null, zero",
        ),
    ],
)
def test_parse_downsample_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="is invalid") as raised:
        parse_downsample(text)

    assert str(raised.value) == message


def test_client_validates_downsample() -> None:
    with pytest.raises(ValueError, match="is invalid") as raised:
        OpenTSDBClient("http://127.0.0.1:4242", Secret("token"), downsample="5min-avg")

    assert str(raised.value).startswith("downsample '5min-avg' is invalid: ")


def _table(ts: list[int], entities: list[str] | None = None) -> pa.Table:
    rows = len(ts)
    columns: dict[str, Any] = {
        "entity_kind": ["vm"] * rows,
        "service_name": ["pcc-1"] * rows,
        "datacenter": ["pcc-1_datacenter1"] * rows,
        "entity": entities or ["vm-1"] * rows,
        "nic": [None] * rows,
        "ts": ts,
        "value": [float(index) for index in range(rows)],
    }
    return pa.Table.from_pydict(columns, schema=METRIC_FILE_SCHEMA)


def _ts(table: pa.Table) -> list[int]:
    return table.column("ts").cast(pa.int64()).to_pylist()


def test_restamp_bucket_ends_to_starts() -> None:
    # The stamps of a server that aligns 5-minute buckets to an end of 23:59:59.999.
    table = _table([T0 + FIVE_MINUTES - 1, T0 + 2 * FIVE_MINUTES - 1], ["vm-1", "vm-2"])

    restamped = restamp_to_epoch_grid(table, FIVE_MINUTES, "test")

    assert _ts(restamped) == [T0, T0 + FIVE_MINUTES]
    assert restamped.column("value").to_pylist() == [0.0, 1.0]
    assert restamped.column("entity").to_pylist() == ["vm-1", "vm-2"]
    assert restamped.schema == METRIC_FILE_SCHEMA


def test_restamp_offset_of_query_end() -> None:
    # An end at 12:03:20 stamps 5-minute buckets at 11:58:20 and 12:03:20.
    noon = T0 + 12 * 3_600_000
    table = _table([noon - 100_000, noon + 200_000])

    assert _ts(restamp_to_epoch_grid(table, FIVE_MINUTES, "test")) == [
        noon - FIVE_MINUTES,
        noon,
    ]


def test_restamp_epoch_grid_unchanged() -> None:
    table = _table([T0, T0 + FIVE_MINUTES])

    assert restamp_to_epoch_grid(table, FIVE_MINUTES, "test") is table


def test_restamp_empty_table_unchanged() -> None:
    table = METRIC_FILE_SCHEMA.empty_table()

    assert restamp_to_epoch_grid(table, FIVE_MINUTES, "test") is table


def test_restamp_rejects_two_grids() -> None:
    table = _table([T0, T0 + 60_000, T0 + 120_000])

    with pytest.raises(OpenTSDBDecodeError) as raised:
        restamp_to_epoch_grid(table, FIVE_MINUTES, "metric m, datacenter d, day 2024-05-01")

    assert str(raised.value) == (
        "invalid OpenTSDB response for metric m, datacenter d, day 2024-05-01: the bucket "
        "timestamps are not on one grid of 300000 ms (offsets 0, 60000, 120000 ms), so they "
        "cannot be restamped to bucket starts. Check that the server applied the downsample "
        "setting"
    )
