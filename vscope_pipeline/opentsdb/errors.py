"""Exceptions raised by the OpenTSDB client, and the server message they quote.

Every message names the query URL (without credentials), the metric, datacenter and time window,
the HTTP status when there was one, and the server's own message. None of them contains the
metrics token: the client removes it from any text it quotes.
"""

from __future__ import annotations

import html
import re

import orjson

# Long enough for OpenTSDB's longest one-line messages ("Sorry, you have attempted to fetch more
# than our limit of ..."), short enough that an HTML error page does not flood a log line.
MAX_SERVER_MESSAGE_CHARS = 300

# OVH's OpenTSDB proxy passes on Warp 10's "FETCH exceeded limit of N datapoints, current count
# is M" as an HTTP 500. OpenTSDB itself returns 413 with "Sorry, you have attempted to fetch
# more than our limit of N data points".
_FETCH_LIMIT = re.compile(r"exceeded limit of|more than our limit of", re.IGNORECASE)

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SCRIPT_OR_STYLE = re.compile(rb"<(script|style)[^>]*>.*?</\1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]+>")
_SPACES = re.compile(r"\s+")


class OpenTSDBError(Exception):
    """Base of every error raised while querying OpenTSDB or reading its response."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.server_message = server_message


class OpenTSDBAuthError(OpenTSDBError):
    """The server rejected the metrics token (HTTP 401 or 403)."""


class OpenTSDBQueryError(OpenTSDBError):
    """The server rejected the query (an HTTP 4xx other than 401 and 403)."""


class OpenTSDBServerError(OpenTSDBError):
    """The server failed (HTTP 5xx) on every attempt."""


class OpenTSDBTimeout(OpenTSDBError):
    """No response arrived within the connect or read timeout on every attempt."""


class OpenTSDBReadTimeout(OpenTSDBTimeout):
    """The server accepted the connection but sent no response within the read timeout.

    Unlike a connect timeout, this often means the query is too large to run in time.
    """


class OpenTSDBConnectionError(OpenTSDBError):
    """The connection failed (refused, reset, DNS) on every attempt."""


class OpenTSDBDecodeError(OpenTSDBError):
    """A response body that is not the JSON array of series that `/api/query` returns."""


class OpenTSDBLimitError(OpenTSDBError):
    """A query that exceeds a server limit even after splitting it to the smallest unit.

    The smallest unit is the minimum time window and a single entity. The error quotes the
    last server message; its cause is the error of that last request.
    """


class OpenTSDBGroupingError(OpenTSDBError):
    """The server merges series that the client must store apart, and no fallback can split them.

    Raised when the server ignores group-by and no expected entities are known, or when
    even per-entity sub-queries come back merged.
    """


def server_message(content: bytes) -> str:
    """Extract a one-line message from an error response body.

    OpenTSDB sends `{"error": {"code", "message", "details"}}`; OVH's proxy sends plain text
    such as `Not authorized`; other proxies send an HTML page, whose title (or text) is used.
    """
    text = content.strip()
    if not text:
        return "(empty body)"

    if text.startswith(b"{"):
        message = _json_error_message(text)
        if message is not None:
            return _shorten(message)

    if text.startswith(b"<"):
        return _shorten(_html_text(text))

    return _shorten(text.decode("utf-8", errors="replace"))


def _json_error_message(text: bytes) -> str | None:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    return error["message"]


def _html_text(text: bytes) -> str:
    title = _TITLE.search(text)
    if title is not None and title.group(1).strip():
        raw = title.group(1)
    else:
        raw = _TAG.sub(b" ", _SCRIPT_OR_STYLE.sub(b" ", text))
    return html.unescape(raw.decode("utf-8", errors="replace"))


def _shorten(message: str) -> str:
    one_line = _SPACES.sub(" ", message).strip()
    if len(one_line) <= MAX_SERVER_MESSAGE_CHARS:
        return one_line
    return one_line[: MAX_SERVER_MESSAGE_CHARS - 3] + "..."


def is_fetch_limit_message(message: str | None) -> bool:
    """Return whether a server message reports that a query read more data points than allowed."""
    return message is not None and _FETCH_LIMIT.search(message) is not None
