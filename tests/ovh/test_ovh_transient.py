"""Which python-ovh errors are retried, built as python-ovh 1.2.0 builds them."""

import ovh
import pytest
import requests
import urllib3.exceptions

from vscope_pipeline.ovh.retrying import TransientError, transient_error


def response(status, retry_after=None, query_id=None):
    """Return a requests.Response as python-ovh attaches it to the APIError of a reply."""
    built = requests.Response()
    built.status_code = status
    if retry_after is not None:
        built.headers["Retry-After"] = retry_after
    if query_id is not None:
        built.headers["X-Ovh-Queryid"] = query_id
    return built


def low_level(cause):
    return ovh.HTTPError("Low HTTP request failed error", cause)


POOL = urllib3.HTTPConnectionPool("127.0.0.1", 8000)
READ_TIMEOUT = requests.ReadTimeout(
    urllib3.exceptions.ReadTimeoutError(
        POOL, "/1.0/dedicatedCloud", "Read timed out. (read timeout=0.3)"
    )
)
REFUSED = requests.ConnectionError(
    urllib3.exceptions.MaxRetryError(
        POOL, "/1.0/auth/time", urllib3.exceptions.ProtocolError("Connection refused")
    )
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ovh.APIError("Too many requests", response=response(429, "7", "EU.ext-1.ab")),
            TransientError(
                "HTTP 429 Too Many Requests: Too many requests (OVH query id EU.ext-1.ab)", 429, 7.0
            ),
        ),
        (
            ovh.APIError("Internal server error", response=response(500)),
            TransientError("HTTP 500 Internal Server Error: Internal server error", 500),
        ),
        (
            ovh.APIError("Bad gateway", response=response(502)),
            TransientError("HTTP 502 Bad Gateway: Bad gateway", 502),
        ),
        (
            ovh.APIError("Unavailable", response=response(503, "Wed, 21 Oct 2015 07:28:00 GMT")),
            TransientError("HTTP 503 Service Unavailable: Unavailable", 503, 0.0),
        ),
        (
            ovh.APIError("Gateway timeout", response=response(504)),
            TransientError("HTTP 504 Gateway Timeout: Gateway timeout", 504),
        ),
        (
            low_level(READ_TIMEOUT),
            TransientError(
                "timed out: HTTPConnectionPool(host='127.0.0.1', port=8000): Read timed out. "
                "(read timeout=0.3)"
            ),
        ),
        (low_level(REFUSED), TransientError("connection failed: Connection refused")),
        (
            low_level(ValueError("odd")),
            TransientError("request failed: Low HTTP request failed error"),
        ),
        (ovh.NetworkError(), TransientError("network error reported by python-ovh")),
        (
            ovh.InvalidResponse("Failed to decode API response", ValueError("Expecting value")),
            TransientError(
                "the response body is not JSON, as sent by a failing gateway or a connection "
                "cut mid-response"
            ),
        ),
    ],
    ids=[
        "429",
        "500",
        "502",
        "503-past-date",
        "504",
        "read-timeout",
        "refused",
        "other-cause",
        "network",
        "not-json",
    ],
)
def test_transient_errors(error, expected):
    assert transient_error(error) == expected


@pytest.mark.parametrize(
    "error",
    [
        ovh.ResourceNotFoundError("The requested object (vmId = 1) does not exist"),
        ovh.BadParametersError("Invalid signature", response=response(400)),
        ovh.APIError("You must login first", response=response(401)),
        ovh.NotGrantedCall("This call has not been granted", response=response(403)),
        ovh.InvalidKey("Invalid application key", response=response(403)),
        ovh.APIError("Conflict", response=response(409)),
        ovh.APIError("Not implemented", response=response(501)),
        ovh.APIError("no response attached"),
    ],
    ids=["404", "400", "401", "403-not-granted", "403-invalid-key", "409", "501", "no-response"],
)
def test_permanent_errors(error):
    assert transient_error(error) is None
