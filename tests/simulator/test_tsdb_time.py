"""OpenTSDB time and duration parsing: accepted forms and the exact error messages."""

from __future__ import annotations

import pytest

from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError
from vscope_pipeline.simulator.tsdb_time import parse_datetime, parse_duration, parse_java_long

# 2024-03-01T12:00:00.250Z, the fake "now" of these tests.
NOW_MS = 1_709_294_400_250

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        # At most ten characters: seconds.
        ("1709294400", 1_709_294_400_000),
        ("0", 0),
        ("+12", 12_000),
        # More than ten characters: already milliseconds, even when short of a real ms value.
        ("1709294400250", 1_709_294_400_250),
        ("17092944002", 17_092_944_002),
        # Dotted: the dot is deleted, so only three decimals give the intended time.
        ("1709294400.250", 1_709_294_400_250),
        ("1709294400.5", 17_092_944_005),
        ("1709294400250ms", 1_709_294_400_250),
        ("5ms", 5),
        ("now", NOW_MS),
        ("NOW", NOW_MS),
        ("1h-ago", NOW_MS - HOUR_MS),
        ("1H-AGO", NOW_MS - HOUR_MS),
        ("250ms-ago", NOW_MS - 250),
        ("30s-ago", NOW_MS - 30_000),
        ("15m-ago", NOW_MS - 15 * MINUTE_MS),
        ("2d-ago", NOW_MS - 2 * DAY_MS),
        ("1w-ago", NOW_MS - 7 * DAY_MS),
        ("1n-ago", NOW_MS - 30 * DAY_MS),
        ("1y-ago", NOW_MS - 365 * DAY_MS),
        # Only the leading digits and the last character count, as in OpenTSDB.
        ("1.5h-ago", NOW_MS - HOUR_MS),
        ("2024/03/01", 1_709_251_200_000),
        ("2024/03/01-12:30", 1_709_296_200_000),
        ("2024/03/01 12:30", 1_709_296_200_000),
        ("2024/03/01-12:30:15", 1_709_296_215_000),
        ("2024/03/01 12:30:15", 1_709_296_215_000),
        # Java's lenient parser rolls month 13 over into January of the next year.
        ("2023/13/01", 1_704_067_200_000),
    ],
)
def test_parse_datetime_forms(text: str, expected_ms: int) -> None:
    assert parse_datetime(text, NOW_MS) == expected_ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024/3/1", "Invalid absolute date: 2024/3/1"),
        (
            "2024/03/01T12:30",
            'Invalid date: 2024/03/01T12:30. Unparseable date: "2024/03/01T12:30"',
        ),
        (
            "1709294400.25000",
            "Invalid time: 1709294400.25000. Millisecond timestamps must be in the format "
            "<seconds>.<ms> where the milliseconds are limited to 3 digits",
        ),
        ("-5", "Invalid time: -5. Negative timestamps are not supported."),
        ("2024-03-01", "Invalid time: 2024-03-01. Invalid character '-' in 2024-03-01"),
        ("yesterday", "Invalid time: yesterday. Invalid character 'y' in yesterday"),
        ("0h-ago", "Zero or negative duration: 0h"),
        ("h-ago", "Invalid duration (number): h"),
        ("-ago", "Cannot parse null or empty duration"),
        ("5x-ago", "Invalid duration (suffix): 5x"),
    ],
)
def test_parse_datetime_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_datetime(text, NOW_MS)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("1ms", 1),
        ("1s", 1000),
        ("20m", 20 * MINUTE_MS),
        ("1h", HOUR_MS),
        ("1d", DAY_MS),
        ("1D", DAY_MS),
        ("1w", 7 * DAY_MS),
        ("1n", 30 * DAY_MS),
        ("1y", 365 * DAY_MS),
        # A capital M before the s is not read as milliseconds, as in OpenTSDB.
        ("5Ms", 5000),
    ],
)
def test_parse_duration_units(text: str, expected_ms: int) -> None:
    assert parse_duration(text) == expected_ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Cannot parse null or empty duration"),
        ("15", "Invalid duration, must have an integer and unit: 15"),
        ("m", "Invalid duration (number): m"),
        ("0m", "Zero or negative duration: 0m"),
        ("3q", "Invalid duration (suffix): 3q"),
        ("99999999999999999999s", "Invalid duration (number): 99999999999999999999s"),
        ("9999999999999999y", "Duration must be < Long.MAX_VALUE ms: 9999999999999999y"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Empty string"),
        ("-", "Just a sign, no value: -"),
        ("12345678901234567890", "Value too long: 12345678901234567890"),
        ("12a", "Invalid character 'a' in 12a"),
        ("9223372036854775808", "Overflow in 9223372036854775808"),
    ],
)
def test_parse_java_long_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        parse_java_long(text)
    assert str(caught.value) == message


def test_parse_java_long_limits() -> None:
    assert parse_java_long("9223372036854775807") == 2**63 - 1
    assert parse_java_long("-9223372036854775808") == -(2**63)
