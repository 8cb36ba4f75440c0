"""Days to full from a straight line fitted to used space, on series with a known slope."""

import pytest

from vscope_pipeline.report.forecast import estimate_days_to_full

HOUR = 3600
# 48 hourly points over two days.
TIMES = [1_773_100_800 + hour * HOUR for hour in range(48)]


def test_growing_series_days_to_full():
    # 240 kB a day, 10 an hour, from 1000 kB; the last point is 1000 + 47 * 10 = 1470 kB.
    used = [1000 + 10 * hour for hour in range(48)]

    forecast = estimate_days_to_full(TIMES, used, capacity=2470)

    assert forecast.growth_per_day == pytest.approx(240)
    assert forecast.days_to_full == pytest.approx(1000 / 240)
    assert forecast.status == "4 days"


def test_noisy_series_uses_fitted_slope():
    # Alternating +-5 kB around a line of 24 kB a day: the fit recovers the line's slope.
    used = [500 + hour + (5 if hour % 2 else -5) for hour in range(48)]

    forecast = estimate_days_to_full(TIMES, used, capacity=24_000)

    assert forecast.growth_per_day == pytest.approx(24, abs=0.5)
    assert forecast.days_to_full == pytest.approx((24_000 - used[-1]) / forecast.growth_per_day)


def test_flat_series_not_filling():
    forecast = estimate_days_to_full(TIMES, [800.0] * 48, capacity=1000)

    assert forecast.growth_per_day == pytest.approx(0, abs=1e-9)
    assert forecast.days_to_full is None
    assert forecast.status == "not filling"


def test_shrinking_series_not_filling():
    forecast = estimate_days_to_full(TIMES, [900 - hour for hour in range(48)], capacity=1000)

    assert forecast.growth_per_day == pytest.approx(-24)
    assert forecast.days_to_full is None
    assert forecast.status == "not filling"


def test_full_datastore_zero_days():
    forecast = estimate_days_to_full(TIMES, [990 + hour for hour in range(48)], capacity=1000)

    assert forecast.days_to_full == 0
    assert forecast.status == "full"


def test_unknown_size_keeps_growth():
    forecast = estimate_days_to_full(TIMES, [100 + hour for hour in range(48)], capacity=None)

    assert forecast.growth_per_day == pytest.approx(24)
    assert forecast.days_to_full is None
    assert forecast.status == "size unknown"


def test_single_time_too_few_points():
    forecast = estimate_days_to_full(TIMES[:1], [100.0], capacity=1000)

    assert forecast.growth_per_day is None
    assert forecast.status == "too few points"


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match=r"^2 times but 3 used-space values: expected as many$"):
        estimate_days_to_full(TIMES[:2], [1.0, 2.0, 3.0], capacity=10)
