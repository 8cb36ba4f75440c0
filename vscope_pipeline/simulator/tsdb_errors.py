"""Errors of the simulated OpenTSDB `/api/query` endpoint, with OpenTSDB 2.4's own wording.

OpenTSDB responds to a failed query with `{"error":{"code":N,"message":"...","details":"..."}}`.
`details` is left out when empty. The real server also appends a Java stack trace under
`trace` unless `tsd.http.show_stack_trace` is false; the simulator behaves as if it were false.
"""

from __future__ import annotations

import orjson

# Message of the 400 error for a body that is not JSON or does not fit the query schema. Its
# `details` carry the parser's explanation (OpenTSDB puts the Jackson exception text there).
PARSE_ERROR_MESSAGE = "Unable to parse the given JSON"


class InvalidQueryError(ValueError):
    """A query value that OpenTSDB rejects; the message is OpenTSDB's text for it."""


class TsdbHttpError(Exception):
    """An OpenTSDB error response: HTTP status, message and optional details."""

    def __init__(self, status: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def body(self) -> bytes:
        """Return the JSON error body OpenTSDB sends for this error."""
        error: dict[str, object] = {"code": self.status, "message": self.message}
        if self.details:
            error["details"] = self.details
        return orjson.dumps({"error": error})


def no_such_name(kind: str, name: str) -> TsdbHttpError:
    """Return the 400 error for a metric, tag key or tag value that was never written.

    `kind` is `metrics`, `tagk` or `tagv`, as in OpenTSDB's UID tables. OpenTSDB repeats the
    message in `details`.
    """
    message = f"No such name for '{kind}': '{name}'"
    return TsdbHttpError(400, message, message)


def data_point_limit_exceeded(limit: int) -> TsdbHttpError:
    """Return the 413 error OpenTSDB sends when a sub-query scans more than `limit` points."""
    return TsdbHttpError(
        413,
        f"Sorry, you have attempted to fetch more than our limit of {limit} data points. "
        "Please try filtering using more tags or decrease your time range.",
    )
