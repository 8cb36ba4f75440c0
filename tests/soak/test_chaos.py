"""The seeded fault injector: its choices, its bounds, and its faults on the HTTP server."""

import orjson
import pytest
import requests

from vscope_pipeline.simulator.chaos import (
    INGEST_ROUTES,
    ApiChaos,
    ChaosRates,
    FaultKind,
    TsdbChaos,
    choose_fault,
)
from vscope_pipeline.simulator.ovh_faults import ApiFaults
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.simulator.tsdb_faults import InjectedFault

QUERY = orjson.dumps(
    {"start": "1h-ago", "queries": [{"metric": "vscope.host.cpu.usage.perc", "aggregator": "sum"}]}
)

RESET_ERRORS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


def only(max_consecutive: int = 2, **rates: float) -> ChaosRates:
    """Return rates that inject nothing but the given faults."""
    zero = {"too_many_requests": 0.0, "server_error": 0.0, "proxy_page": 0.0, "reset": 0.0}
    return ChaosRates(**{**zero, "delay": 0.0, **rates}, max_consecutive=max_consecutive)


def test_thresholds_are_cumulative() -> None:
    rates = ChaosRates(
        too_many_requests=0.1, server_error=0.3, proxy_page=0.1, reset=0.1, delay=0.1
    )
    bounds = rates.thresholds()
    assert [kind for _, kind in bounds] == list(FaultKind)
    assert [bound for bound, _ in bounds] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert choose_fault(bounds, 0.05) is FaultKind.TOO_MANY_REQUESTS
    assert choose_fault(bounds, 0.45) is FaultKind.PROXY_PAGE
    assert choose_fault(bounds, 0.55) is FaultKind.RESET
    assert choose_fault(bounds, 0.69) is FaultKind.DELAY
    assert choose_fault(bounds, 0.7) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reset": 1.5}, "rate reset=1.5 is invalid: expected a fraction in [0, 1]"),
        ({"max_consecutive": -1}, "max_consecutive -1 is invalid: expected 0 or more"),
        (
            {"delay_s": -0.1},
            "retry_after_s 1 and delay_s -0.1 are invalid: expected seconds >= 0",
        ),
    ],
)
def test_rates_reject_invalid_values(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=r"is invalid|are invalid") as raised:
        ChaosRates(**arguments)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_rates_reject_sum_above_one() -> None:
    with pytest.raises(ValueError, match=r"add up to 1\.200: expected 1 or less"):
        only(server_error=0.6, reset=0.6)


def test_consecutive_faults_are_bounded() -> None:
    chaos = TsdbChaos(seed=1, rates=only(reset=1.0))
    injected = [chaos(b"same body") for _ in range(7)]
    cut = InjectedFault(cut=True)
    assert injected == [cut, cut, None, cut, cut, None, cut]
    assert chaos.counts.snapshot() == {FaultKind.RESET: 5}
    assert chaos.requests == 7


def test_no_fault_when_bound_is_zero() -> None:
    chaos = TsdbChaos(seed=1, rates=only(server_error=1.0, max_consecutive=0))
    assert [chaos(b"body") for _ in range(3)] == [None, None, None]


def test_choices_ignore_request_order() -> None:
    bodies = [f"query {number}".encode() for number in range(200)]
    forward = TsdbChaos(seed=42)
    backward = TsdbChaos(seed=42)
    first = {body: [forward(body) for _ in range(3)] for body in bodies}
    second = {body: [backward(body) for _ in range(3)] for body in reversed(bodies)}
    assert first == second
    assert forward.counts.snapshot() == backward.counts.snapshot()
    assert sum(forward.counts.snapshot().values()) > 0


def test_seed_changes_choices() -> None:
    bodies = [f"query {number}".encode() for number in range(500)]
    first_seed, second_seed = TsdbChaos(seed=1), TsdbChaos(seed=2)
    assert [first_seed(body) for body in bodies] != [second_seed(body) for body in bodies]


def test_api_plan_is_seeded_and_bounded() -> None:
    chaos = ApiChaos(seed=5, route_rate=1.0)
    plan = chaos.plan(0)
    assert plan == chaos.plan(0)
    per_route = {route.name: 0 for route in INGEST_ROUTES}
    for fault in plan:
        per_route[fault.route.name] += 1
        assert fault.kind in FaultKind
        assert fault.kind not in (FaultKind.RESET, FaultKind.DELAY)
    assert all(1 <= count <= 2 for count in per_route.values())
    assert ApiChaos(seed=5, route_rate=0.0).plan(0) == []


def test_api_queue_run_counts_faults() -> None:
    chaos = ApiChaos(seed=5, route_rate=1.0)
    faults = ApiFaults()
    planned = chaos.queue_run(faults, run=3)
    assert faults.pending() == len(planned)
    assert sum(chaos.counts.snapshot().values()) == len(planned)
    assert chaos.planned == planned


def test_api_chaos_rejects_invalid_route_rate() -> None:
    with pytest.raises(ValueError, match=r"^route_rate ") as raised:
        ApiChaos(seed=1, route_rate=2.0)
    assert str(raised.value) == "route_rate 2.0 is invalid: expected a fraction in [0, 1]"


@pytest.mark.parametrize(
    ("rates", "status", "content_type"),
    [
        (only(too_many_requests=1.0), 429, "text/plain; charset=utf-8"),
        (only(proxy_page=1.0), 502, "text/html; charset=utf-8"),
    ],
)
def test_server_sends_injected_errors(rates: ChaosRates, status: int, content_type: str) -> None:
    with running_simulator(vm_count=3) as simulator:
        simulator.opentsdb_server.server.faults.request_hook = TsdbChaos(seed=3, rates=rates)
        auth = ("read", simulator.credentials.metrics_token)
        url = f"{simulator.opentsdb_url}/api/query"
        with requests.Session() as session:
            responses = [session.post(url, data=QUERY, auth=auth, timeout=10) for _ in range(3)]
    assert [response.status_code for response in responses] == [status, status, 200]
    assert responses[0].headers["Content-Type"] == content_type
    if status == 429:
        assert responses[0].headers["Retry-After"] == "1"


def test_server_resets_injected_cuts() -> None:
    with running_simulator(vm_count=3) as simulator:
        chaos = TsdbChaos(seed=3, rates=only(reset=1.0))
        simulator.opentsdb_server.server.faults.request_hook = chaos
        auth = ("read", simulator.credentials.metrics_token)
        url = f"{simulator.opentsdb_url}/api/query"
        for _ in range(2):
            # The reset reaches the client while it reads the body, or before the headers.
            with pytest.raises(RESET_ERRORS):
                requests.post(url, data=QUERY, auth=auth, timeout=10)
        response = requests.post(url, data=QUERY, auth=auth, timeout=10)
    assert response.status_code == 200
    assert chaos.counts.snapshot() == {FaultKind.RESET: 2}
