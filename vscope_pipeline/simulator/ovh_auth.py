"""APIv6 request signatures and the error responses of the simulated OVH API.

A signed request carries `X-Ovh-Application` (application key), `X-Ovh-Consumer` (consumer
key), `X-Ovh-Timestamp` (epoch seconds, corrected by the client with `GET /auth/time`) and
`X-Ovh-Signature`. The signature is `"$1$"` followed by the hex SHA-1 of application secret,
consumer key, HTTP method, full URL, body and timestamp, joined with `+`. The URL is the one
the client built: scheme, host, port, path and query. That is how python-ovh 1.2.0 signs
(`Client.raw_call`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http import HTTPStatus

from vscope_pipeline.simulator.credentials import SimulatorCredentials

# How far a request's timestamp may be from the server clock, in seconds.
# NOTE: OVH does not document its tolerance, so three minutes is a guess.
MAX_CLOCK_SKEW_SECONDS = 180

AUTH_HEADERS = ("X-Ovh-Application", "X-Ovh-Consumer", "X-Ovh-Timestamp", "X-Ovh-Signature")


class ApiFailure(Exception):
    """An APIv6 error response: HTTP status, `errorCode` (None to omit it) and message.

    python-ovh 1.2.0 raises its exception from the status and `errorCode`: 400 is
    `BadParametersError`, 404 `ResourceNotFoundError`, 403 with `INVALID_KEY`,
    `INVALID_CREDENTIAL` or `NOT_GRANTED_CALL` is `InvalidKey`, `InvalidCredential` or
    `NotGrantedCall`, anything else `APIError`, each with the body's `message`.
    """

    def __init__(self, status: int, error_code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, str]:
        """Return the JSON body OVH sends: `message`, `httpCode` and usually `errorCode`."""
        body = {
            "message": self.message,
            "httpCode": f"{self.status} {HTTPStatus(self.status).phrase}",
        }
        if self.error_code is not None:
            body["errorCode"] = self.error_code
        return body


def sign(
    application_secret: str, consumer_key: str, method: str, url: str, body: str, timestamp: str
) -> str:
    """Return the `X-Ovh-Signature` value of a request."""
    text = "+".join((application_secret, consumer_key, method.upper(), url, body, timestamp))
    return "$1$" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def authenticate(
    credentials: SimulatorCredentials,
    headers: Mapping[str, str],
    method: str,
    url: str,
    body: str,
    now: int,
) -> None:
    """Raise `ApiFailure` unless the headers sign this request with `credentials`.

    Checks run in the order the errors are most useful to a client: application key, then
    consumer key, then timestamp, then signature.
    NOTE: the messages of the key errors, of a missing signature (401) and of a stale
    timestamp are not documented by OVH; these are plausible stand-ins. The codes and
    messages of `INVALID_SIGNATURE` and `INVALID_CREDENTIAL` are the ones OVH sends.
    """
    application_key = headers.get("X-Ovh-Application")
    if not application_key or not hmac.compare_digest(application_key, credentials.application_key):
        raise ApiFailure(403, "INVALID_KEY", "Invalid application key")
    consumer_key = headers.get("X-Ovh-Consumer")
    signature = headers.get("X-Ovh-Signature")
    timestamp = headers.get("X-Ovh-Timestamp")
    if not consumer_key or not signature or not timestamp:
        raise ApiFailure(401, "NOT_AUTHENTICATED", "You must login first")
    if not hmac.compare_digest(consumer_key, credentials.consumer_key):
        raise ApiFailure(403, "INVALID_CREDENTIAL", "This credential is not valid")
    if not timestamp.isdigit() or abs(int(timestamp) - now) > MAX_CLOCK_SKEW_SECONDS:
        raise ApiFailure(400, "QUERY_TIME_OUT", "Query out of time")
    expected = sign(credentials.application_secret, consumer_key, method, url, body, timestamp)
    if not hmac.compare_digest(signature, expected):
        raise ApiFailure(400, "INVALID_SIGNATURE", "Invalid signature")


def authorize(credentials: SimulatorCredentials, method: str, api_path: str) -> None:
    """Raise `ApiFailure` (403 `NOT_GRANTED_CALL`) unless the access rules allow the call."""
    if not credentials.grants(method, api_path):
        raise ApiFailure(403, "NOT_GRANTED_CALL", "This call has not been granted")
