"""Helpers shared by the SQL that reads the lake: string literals, file look-ups, errors."""

from __future__ import annotations

from pathlib import PurePosixPath

import duckdb

from vscope_pipeline.lake.location import LakeLocation


def sql_string(text: str) -> str:
    """Return `text` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def has_files(lake: LakeLocation, folder: str, pattern: str) -> bool:
    """Return True when a file under `folder` matches the `/`-separated glob `pattern`.

    Each `*` matches within one path level, as in DuckDB's read_parquet globs.
    """
    depth = pattern.count("/") + 1
    return any(
        len(PurePosixPath(relative).parts) == depth and PurePosixPath(relative).match(pattern)
        for relative in lake.files_under(folder)
    )


def duckdb_message(error: duckdb.Error) -> str:
    """Return the first line of a DuckDB error, without the failing SQL and caret it adds."""
    return str(error).strip().splitlines()[0]
