"""Plain-text tables for the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from decimal import Decimal


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return _float_cell(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dict | list | tuple):
        # Structs, lists and maps: JSON reads better than Python's repr of their values.
        return json.dumps(_json_value(value), ensure_ascii=False)
    return str(value)


def _float_cell(value: float) -> str:
    """Return six significant digits, written out: 1126490000 rather than 1.12649e+09."""
    if not math.isfinite(value) or not 1e-4 <= abs(value) < 1e15:
        return f"{value:.6g}"
    decimals = max(0, 5 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _numeric_columns(count: int, rows: Sequence[Sequence[object]]) -> list[bool]:
    """Return, per column, whether it has a row and every value is a number or NULL."""
    return [
        bool(rows)
        and all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(count)
    ]


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as an aligned text table; numbers are right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(width, len(text)) for width, text in zip(widths, row, strict=True)]
    numeric = _numeric_columns(len(columns), rows)

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            text.rjust(width) if is_number else text.ljust(width)
            for text, width, is_number in zip(values, widths, numeric, strict=True)
        ).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(columns), separator, *(line(row) for row in cells)])


def _json_value(value: object) -> object:
    """Convert one DuckDB result value into something `json` writes as standard JSON."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity, so they become null, as JSON readers expect.
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _json_value(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)


def format_json(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a JSON array of objects keyed by column name.

    Timestamps and dates are ISO 8601 strings, NaN and infinities are null, DECIMAL values are
    numbers, and STRUCT and LIST values are nested objects and arrays.
    """
    records = [
        {name: _json_value(value) for name, value in zip(columns, row, strict=True)} for row in rows
    ]
    return json.dumps(records, ensure_ascii=False, allow_nan=False, indent=1)


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # repr keeps every digit, unlike the rounded table text.
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return str(value)


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as RFC 4180 CSV: a header row, CRLF line ends, quotes only where needed.

    NULL is an empty field, timestamps and dates are ISO 8601, and STRUCT and LIST values are
    JSON text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def _markdown_cell(text: str) -> str:
    # A pipe would end the cell and a line break would end the row.
    return (
        text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
    )


def format_markdown(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a GitHub Markdown table; number columns are right-aligned."""
    numeric = _numeric_columns(len(columns), rows)
    header = [_markdown_cell(name) for name in columns]
    rule = ["---:" if is_number else "---" for is_number in numeric]
    body = [[_markdown_cell(_cell(value)) for value in row] for row in rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *body])
