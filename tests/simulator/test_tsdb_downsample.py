"""Downsample specs, scan windows, bucket alignment, fill policies and rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vscope_pipeline.simulator.tsdb_downsample import (
    DownsampleSpec,
    FillPolicy,
    ScanWindow,
    downsample_series,
    parse_downsample,
    scan_window,
)
from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError, TsdbHttpError
from vscope_pipeline.simulator.tsdb_rate import RateOptions, rate_series

# 2024-01-01T00:00:00Z in ms.
T0 = 1_704_067_200_000
HOUR = 3_600_000


@pytest.mark.parametrize(
    ("text", "interval_ms", "aggregator", "fill"),
    [
        ("20m-max-zero", 1_200_000, "max", FillPolicy.ZERO),
        ("1h-avg", HOUR, "avg", FillPolicy.NONE),
        ("10s-sum-NaN", 10_000, "sum", FillPolicy.NAN),
        ("1m-count-null", 60_000, "count", FillPolicy.NULL),
        ("1m-avg-none", 60_000, "avg", FillPolicy.NONE),
        ("1m-avg-scalar", 60_000, "avg", FillPolicy.SCALAR),
        # Java's split drops trailing empty parts.
        ("1m-avg-", 60_000, "avg", FillPolicy.NONE),
        ("0all-sum", 0, "sum", FillPolicy.NONE),
        ("all-max", 0, "max", FillPolicy.NONE),
        ("1dc-avg", 86_400_000, "avg", FillPolicy.NONE),
        ("15mc-avg", 900_000, "avg", FillPolicy.NONE),
        ("500ms-p95", 500, "p95", FillPolicy.NONE),
    ],
)
def test_parse_downsample(text: str, interval_ms: int, aggregator: str, fill: FillPolicy) -> None:
    spec = parse_downsample(text)
    assert spec.interval_ms == interval_ms
    assert spec.aggregator.name == aggregator
    assert spec.fill is fill


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1m", "Invalid downsampling specifier '1m': must provide at least interval and function"),
        (
            "1m-avg-zero-x",
            "Invalid downsampling specifier '1m-avg-zero-x': must consist of interval, "
            "function, and optional fill policy",
        ),
        ("1m-average", "No such downsampling function: average"),
        ("1m-AVG", "No such downsampling function: AVG"),
        ("1m-none", "cannot use the NONE aggregator for downsampling"),
        ("1m-avg-linear", "Unrecognized fill policy: linear"),
        ("1x-avg", "Invalid duration (suffix): 1x"),
        ("0m-avg", "Zero or negative duration: 0m"),
        ("-avg", "String index out of range: -1"),
        (
            "1wc-avg",
            "Calendar downsampling interval '1wc' is not supported by the simulator: use one "
            "that divides a second, minute, hour or day (e.g. 1dc, 1hc, 15mc), or an "
            "epoch-aligned interval without the 'c'",
        ),
    ],
)
def test_parse_downsample_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_downsample(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "downsample", "expected"),
    [
        # Without downsampling: back to the hour, forward to the next hour (even from one).
        (T0 + 90_000, T0 + 2 * HOUR, None, ScanWindow(T0, T0 + 3 * HOUR)),
        (T0, T0 + 59_000, None, ScanWindow(T0, T0 + HOUR)),
        # With downsampling: the end moves to the next interval boundary, then the hour.
        (T0 + 90_000, T0 + 2 * HOUR, "1m-avg", ScanWindow(T0, T0 + 3 * HOUR)),
        (T0 + 90_000, T0 + HOUR - 61_000, "1m-avg", ScanWindow(T0, T0 + HOUR)),
        # 7-hour buckets are epoch multiples: on 2024-01-01 they start at 02:00, 09:00, 16:00.
        (T0 + 10 * HOUR, T0 + 11 * HOUR, "7h-avg", ScanWindow(T0 + 9 * HOUR, T0 + 16 * HOUR)),
        # `all` scans as if not downsampling.
        (T0 + 90_000, T0 + 2 * HOUR, "0all-sum", ScanWindow(T0, T0 + 3 * HOUR)),
    ],
)
def test_scan_window(
    start_ms: int, end_ms: int, downsample: str | None, expected: ScanWindow
) -> None:
    spec = parse_downsample(downsample) if downsample else None
    assert scan_window(start_ms, end_ms, spec) == expected


def run_downsample(
    spec_text: str, points: list[tuple[int, float]], start_ms: int, end_ms: int
) -> list[tuple[int, float]]:
    spec: DownsampleSpec = parse_downsample(spec_text)
    ts = np.array([T0 + offset * 1000 for offset, _ in points], np.int64)
    values = np.array([value for _, value in points], np.float64)
    window = scan_window(start_ms, end_ms, spec)
    out_ts, out_values = downsample_series(ts, values, spec, window, start_ms, end_ms)
    return [
        ((timestamp - T0) // 1000, value)
        for timestamp, value in zip(out_ts.tolist(), out_values.tolist(), strict=True)
        if start_ms <= timestamp <= end_ms
    ]


def test_buckets_are_epoch_aligned_and_stamped_at_start() -> None:
    points = [(5, 1.0), (25, 3.0), (35, 5.0), (61, 7.0)]
    assert run_downsample("30s-avg", points, T0, T0 + 120_000) == [
        (0, 2.0),
        (30, 5.0),
        (60, 7.0),
    ]


def test_unaligned_start_drops_partial_first_bucket() -> None:
    points = [(5, 1.0), (25, 3.0), (35, 5.0)]
    assert run_downsample("30s-sum", points, T0 + 10_000, T0 + 60_000) == [(30, 5.0)]


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        ("none", [(0, 1.0), (30, 2.0)]),
        ("zero", [(0, 1.0), (10, 0.0), (20, 0.0), (30, 2.0), (40, 0.0)]),
    ],
)
def test_fill_policies(fill: str, expected: list[tuple[int, float]]) -> None:
    points = [(0, 1.0), (30, 2.0)]
    assert run_downsample(f"10s-sum-{fill}", points, T0, T0 + 40_000) == expected


@pytest.mark.parametrize("fill", ["nan", "null"])
def test_fill_nan_and_null_emit_nan(fill: str) -> None:
    points = [(0, 1.0), (30, 2.0)]
    result = run_downsample(f"10s-sum-{fill}", points, T0, T0 + 40_000)
    assert [offset for offset, _ in result] == [0, 10, 20, 30, 40]
    assert [value for _, value in result if not math.isnan(value)] == [1.0, 2.0]


def test_fill_covers_scan_window_outside_the_data() -> None:
    spec = parse_downsample("20m-max-zero")
    window = scan_window(T0, T0 + HOUR, spec)
    ts = np.array([T0 + 30 * 60_000], np.int64)
    out_ts, out_values = downsample_series(ts, np.array([4.0]), spec, window, T0, T0 + HOUR)
    assert ((out_ts - T0) // 60_000).tolist() == [0, 20, 40, 60, 80, 100]
    assert out_values.tolist() == [0.0, 4.0, 0.0, 0.0, 0.0, 0.0]


def test_scalar_fill_fails_on_an_empty_bucket() -> None:
    with pytest.raises(TsdbHttpError) as caught:
        run_downsample("10s-sum-scalar", [(0, 1.0), (30, 2.0)], T0, T0 + 40_000)
    assert caught.value.status == 400
    assert caught.value.message == "unhandled fill policy"


def test_all_reduces_start_inclusive_end_exclusive() -> None:
    points = [(0, 1.0), (10, 2.0), (20, 4.0), (30, 8.0)]
    assert run_downsample("0all-sum", points, T0 + 10_000, T0 + 30_000) == [(10, 6.0)]
    assert run_downsample("0all-count", points, T0 + 31_000, T0 + 40_000) == []


def test_rate_per_second_with_first_point_against_zero() -> None:
    ts = np.array([2000, 4000, 5000], np.int64)
    values = np.array([10.0, 30.0, 20.0])
    out_ts, rates = rate_series(ts, values, RateOptions())
    assert out_ts.tolist() == [2000, 4000, 5000]
    assert rates.tolist() == [5.0, 10.0, -10.0]


def test_counter_rate_wraps_at_counter_max() -> None:
    # OpenTSDB's documented example: counterMax 65535, 64000 then 1000 gives 2535.
    ts = np.array([1000, 2000], np.int64)
    values = np.array([64000.0, 1000.0])
    _, rates = rate_series(ts, values, RateOptions(counter=True, counter_max=65535))
    assert rates.tolist() == [64000.0, 2535.0]


def test_counter_rate_above_reset_value_is_zero() -> None:
    ts = np.array([1000, 2000, 3000], np.int64)
    values = np.array([1.0, 64000.0, 1000.0])
    options = RateOptions(counter=True, counter_max=65535, reset_value=1000)
    _, rates = rate_series(ts, values, options)
    assert rates.tolist() == [1.0, 63999.0, 0.0]


def test_counter_drop_resets_skips_the_reset_point() -> None:
    ts = np.array([1000, 2000, 3000, 4000], np.int64)
    values = np.array([10.0, 20.0, 5.0, 8.0])
    out_ts, rates = rate_series(ts, values, RateOptions(counter=True, drop_resets=True))
    assert out_ts.tolist() == [1000, 2000, 4000]
    # The dropped point stays the previous point of the next rate: (8 - 5) / 1 s.
    assert rates.tolist() == [10.0, 10.0, 3.0]
