"""Plain-text tables for the command line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as an aligned text table; numbers are right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(width, len(text)) for width, text in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            text.rjust(width) if is_number else text.ljust(width)
            for text, width, is_number in zip(values, widths, numeric, strict=True)
        ).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(columns), separator, *(line(row) for row in cells)])
