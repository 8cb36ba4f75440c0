"""The metrics token of an OpenTSDB client: Basic auth, refresh after a refusal, scrubbing.

vScope metrics tokens can expire or be rotated while a backfill runs. The client keeps the
current token with a generation number. When the server rejects a token, the first thread to
report that generation calls the refresh callback for a new token. Threads that report the
same generation later get the token it fetched instead of calling the callback again.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable

import requests

from vscope_pipeline.secrets import Secret

BASIC_AUTH_USER = "read"


def check_token(token: object, source: str) -> Secret:
    """Return `token` if it is a non-empty Secret; raise TypeError or ValueError otherwise."""
    if not isinstance(token, Secret):
        raise TypeError(
            f"{source} must be a vscope_pipeline.secrets.Secret, not "
            f"{type(token).__name__}: wrap it with Secret(...) so that it stays out of logs"
        )
    if not token:
        raise ValueError(f"{source} is empty: set the vScope metrics token")
    return token


class TokenAuth(requests.auth.AuthBase):
    """HTTP Basic auth with user `read` and the metrics token, revealed only into the header."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        credentials = f"{BASIC_AUTH_USER}:{self._token.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        return request

    def __repr__(self) -> str:
        return "TokenAuth(Secret('***'))"


class TokenState:
    """The current token and its generation, every token used so far, and the refresh callback."""

    def __init__(self, token: Secret, refresh: Callable[[], Secret] | None) -> None:
        self._lock = threading.Lock()
        self._token = token
        self._generation = 0
        self._refresh = refresh
        self._revealed = {token.reveal()}

    @property
    def can_refresh(self) -> bool:
        return self._refresh is not None

    def current(self) -> tuple[TokenAuth, int]:
        """Return the auth of the current token and its generation."""
        with self._lock:
            return TokenAuth(self._token), self._generation

    def refresh(self, rejected_generation: int) -> None:
        """Make a token newer than `rejected_generation` current, calling the callback if needed.

        Raises what the callback raises, TypeError or ValueError when it returns no usable
        token, and RuntimeError when the client has no callback.
        """
        if self._refresh is None:
            raise RuntimeError("this client has no refresh_token callback")
        with self._lock:
            if self._generation != rejected_generation:
                return
            token = check_token(self._refresh(), "the token returned by refresh_token")
            self._token = token
            self._generation += 1
            self._revealed.add(token.reveal())

    def scrub(self, text: str) -> str:
        """Replace every token used so far anywhere in `text`, such as a server echoing it."""
        with self._lock:
            revealed = tuple(self._revealed)
        for value in revealed:
            text = text.replace(value, "***")
        return text
