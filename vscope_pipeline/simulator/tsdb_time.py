"""OpenTSDB 2.x time and duration parsing for `start`, `end` and downsample intervals.

The rules and error messages follow `DateTime.parseDateTimeString` and
`DateTime.parseDuration` of OpenTSDB 2.4, oddities included. A number of at most ten
characters is seconds and a longer one milliseconds. A duration is read as its leading digits
plus its last character, so `1.5h` means one hour. Every result is epoch milliseconds. The
caller passes the current time, so relative times are deterministic under a fake clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError

# Java's Long.MAX_VALUE: durations and timestamps are Java longs in OpenTSDB.
MAX_LONG = 2**63 - 1

_SECONDS_PER_UNIT = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86_400,
    "w": 7 * 86_400,
    "n": 30 * 86_400,  # a month is 30 days: no calendar arithmetic
    "y": 365 * 86_400,  # a year is 365 days, leap years ignored
}

_MS_LITERAL = re.compile(r"[0-9]+ms")
_DOTTED_MS = re.compile(r"[0-9]{10}\.[0-9]{1,3}")
# Absolute dates by string length: 10 `yyyy/MM/dd`, 16 `yyyy/MM/dd-HH:mm`, 19 with `:ss`.
# A space may replace the dash. Java's SimpleDateFormat ignores text after the last field.
_DATE = r"(\d+)/(\d+)/(\d+)"
_ABSOLUTE_FORMATS = {
    10: re.compile(_DATE),
    16: re.compile(_DATE + r"[- ](\d+):(\d+)"),
    19: re.compile(_DATE + r"[- ](\d+):(\d+):(\d+)"),
}


def parse_java_long(text: str) -> int:
    """Parse a signed decimal integer as OpenTSDB's `Tags.parseLong` does, with its messages.

    Raise InvalidQueryError (Java's NumberFormatException) for an empty string, a bare sign,
    more than 19 digits, a non-digit character or an overflow.
    """
    if not text:
        raise InvalidQueryError("Empty string")
    digits = text
    if text[0] in "+-":
        if len(text) == 1:
            raise InvalidQueryError(f"Just a sign, no value: {text}")
        if len(text) > 20:
            raise InvalidQueryError(f"Value too long: {text}")
        digits = text[1:]
    elif len(text) > 19:
        raise InvalidQueryError(f"Value too long: {text}")
    for char in digits:
        if not "0" <= char <= "9":
            raise InvalidQueryError(f"Invalid character '{char}' in {text}")
    value = int(text)
    if not -MAX_LONG - 1 <= value <= MAX_LONG:
        raise InvalidQueryError(f"Overflow in {text}")
    return value


def parse_duration(text: str) -> int:
    """Return the length in milliseconds of a duration such as `15m`, `1h` or `500ms`.

    Units are ms, s, m, h, d, w, n (30 days) and y (365 days), case-insensitive. As in
    OpenTSDB, only the leading digits and the last character are read.
    """
    if not text:
        raise InvalidQueryError("Cannot parse null or empty duration")
    digit_count = 0
    while "0" <= text[digit_count] <= "9":
        digit_count += 1
        if digit_count >= len(text):
            raise InvalidQueryError(f"Invalid duration, must have an integer and unit: {text}")
    number = text[:digit_count]
    if not number or int(number) > MAX_LONG:
        raise InvalidQueryError(f"Invalid duration (number): {text}")
    amount = int(number)
    if amount <= 0:
        raise InvalidQueryError(f"Zero or negative duration: {text}")

    unit = text[-1].lower()
    # Java compares the character before a final `s` with a lower-case `m` only.
    if unit == "s" and text[-2] == "m":
        return amount
    if unit not in _SECONDS_PER_UNIT:
        raise InvalidQueryError(f"Invalid duration (suffix): {text}")
    milliseconds = amount * _SECONDS_PER_UNIT[unit] * 1000
    if milliseconds > MAX_LONG:
        raise InvalidQueryError(f"Duration must be < Long.MAX_VALUE ms: {text}")
    return milliseconds


def parse_datetime(text: str, now_ms: int) -> int:
    """Return the epoch milliseconds of an OpenTSDB `start` or `end` string.

    The forms, tried in this order:
    - `<digits>ms`, `now` and `<n><unit>-ago`;
    - an absolute UTC date `yyyy/MM/dd`, `yyyy/MM/dd-HH:mm` or `yyyy/MM/dd-HH:mm:ss`, with
      a space or a dash before the time;
    - a number: seconds when it has at most ten characters, milliseconds otherwise;
    - `<10 digits>.<1-3 digits>`, whose dot is simply removed.
    """
    if _MS_LITERAL.fullmatch(text):
        return parse_java_long(text[:-2])
    lowered = text.lower()
    if lowered == "now":
        return now_ms
    if lowered.endswith("-ago"):
        return now_ms - parse_duration(text[:-4])
    if "/" in text or ":" in text:
        return _parse_absolute(text)
    return _parse_epoch_number(text)


def _parse_absolute(text: str) -> int:
    pattern = _ABSOLUTE_FORMATS.get(len(text))
    if pattern is None:
        raise InvalidQueryError(f"Invalid absolute date: {text}")
    match = pattern.match(text)
    if match is None:
        raise InvalidQueryError(f'Invalid date: {text}. Unparseable date: "{text}"')
    year, month, day, hour, minute, second = [int(part) for part in match.groups()] + [0] * (
        6 - len(match.groups())
    )
    # Java's lenient parser rolls out-of-range fields over (month 13 is January of the next
    # year), so the fields are added as offsets rather than validated.
    months = year * 12 + month - 1
    try:
        first_of_month = datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)
        moment = first_of_month + timedelta(
            days=day - 1, hours=hour, minutes=minute, seconds=second
        )
    except (ValueError, OverflowError) as error:
        raise InvalidQueryError(f'Invalid date: {text}. Unparseable date: "{text}"') from error
    return int(moment.timestamp()) * 1000


def _parse_epoch_number(text: str) -> int:
    if "." in text:
        if not _DOTTED_MS.fullmatch(text):
            raise InvalidQueryError(
                f"Invalid time: {text}. Millisecond timestamps must be in the format "
                "<seconds>.<ms> where the milliseconds are limited to 3 digits"
            )
        value = int(text.replace(".", ""))
    else:
        try:
            value = parse_java_long(text)
        except InvalidQueryError as error:
            raise InvalidQueryError(f"Invalid time: {text}. {error}") from error
    if value < 0:
        raise InvalidQueryError(f"Invalid time: {text}. Negative timestamps are not supported.")
    # OpenTSDB's own rule, valid until the year 2286: ten characters or fewer means seconds.
    if len(text) <= 10:
        value *= 1000
    return value
