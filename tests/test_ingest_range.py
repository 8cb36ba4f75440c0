import datetime as dt

import pytest

from vscope_pipeline.ingest import IngestRangeError, last_complete_day, split_range, validate_range

D = dt.date


def test_split_range_chunks():
    assert split_range(D(2026, 1, 1), D(2026, 1, 10), 4) == [
        (D(2026, 1, 1), D(2026, 1, 4)),
        (D(2026, 1, 5), D(2026, 1, 8)),
        (D(2026, 1, 9), D(2026, 1, 10)),
    ]
    assert split_range(D(2026, 1, 1), D(2026, 1, 1), 7) == [(D(2026, 1, 1), D(2026, 1, 1))]


def test_thirty_days_in_five_runs():
    assert len(split_range(D(2026, 1, 1), D(2026, 1, 30), 7)) == 5


def test_last_complete_day_is_yesterday_utc():
    now = dt.datetime(2026, 12, 4, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert last_complete_day(now) == D(2026, 12, 2)


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (D(2026, 5, 2), D(2026, 5, 1), "--from 2026-05-02 is after --to 2026-05-01"),
        (D(2026, 5, 1), D(2026, 6, 2), "--to 2026-06-02 is not a complete UTC day yet"),
        (D(2024, 12, 31), D(2025, 1, 2), "--from 2024-12-31 is before the first partition"),
    ],
)
def test_validate_range_errors(first, last, message):
    with pytest.raises(IngestRangeError, match=message):
        validate_range(first, last, start_date=D(2025, 1, 1), latest=D(2026, 6, 1))
