"""Seeded random faults for soak tests of the pipeline against the simulator.

`TsdbChaos` is a request hook of the OpenTSDB server's `Faults`. For each `/api/query`
request it injects one fault or none: a 429 with Retry-After, a 500, 502 or 503, an HTML
proxy page, a connection reset mid-body, or a short delay. The choice is a hash of the seed,
the request body and how many times that body came before. Retries repeat their body, so the
same seed injects the same faults into the same queries whatever order the client's threads
send them in.

`ApiChaos` plans faults for the simulated APIv6 through `ApiFaults.force` only: before each
run it queues, for some of the routes that every ingestion run requests, a burst of 429 or
5xx responses that the first matching requests and their retries take. The server offers no
per-request hook, so APIv6 faults land on the first request of a route, not on any request.

Both stop after `max_consecutive` failures in a row for one request (one route, on APIv6), so
a client that makes more attempts than that always gets the real response.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vscope_pipeline.simulator.ovh_faults import (
    ApiFaults,
    ForcedApiResponse,
    gateway_error_page,
    server_error,
    too_many_requests,
)
from vscope_pipeline.simulator.tsdb_faults import ForcedResponse, InjectedFault

_TEXT = "text/plain; charset=utf-8"


class FaultKind(enum.StrEnum):
    """A fault the chaos injects, named as in the counts it reports."""

    TOO_MANY_REQUESTS = "429"
    INTERNAL_ERROR = "500"
    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    PROXY_PAGE = "html_502"
    RESET = "reset"
    DELAY = "delay"


# The kinds a client sees as a failed attempt, which it retries. A delay is not one of them.
FAILING_KINDS = frozenset(FaultKind) - {FaultKind.DELAY}
_SERVER_ERRORS = (FaultKind.INTERNAL_ERROR, FaultKind.BAD_GATEWAY, FaultKind.UNAVAILABLE)


@dataclass(frozen=True)
class ChaosRates:
    """Probabilities that one request attempt gets each fault, and the bounds on faults.

    `server_error` is split evenly between 500, 502 and 503. `reset` and `delay` apply to
    OpenTSDB only. `max_consecutive` is the most failures one request gets in a row: keep it
    below the attempts a client allows, which is 3 on HTTP 500 under the pipeline's default
    `RetryPolicy`. `retry_after_s` is the Retry-After of a 429 and `delay_s` the length of a delay,
    both in seconds.
    """

    too_many_requests: float = 0.01
    server_error: float = 0.015
    proxy_page: float = 0.005
    reset: float = 0.01
    delay: float = 0.02
    max_consecutive: int = 2
    retry_after_s: int = 1
    delay_s: float = 0.05

    def __post_init__(self) -> None:
        rates = {
            "too_many_requests": self.too_many_requests,
            "server_error": self.server_error,
            "proxy_page": self.proxy_page,
            "reset": self.reset,
            "delay": self.delay,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate {name}={rate!r} is invalid: expected a fraction in [0, 1]")
        if sum(rates.values()) > 1.0:
            raise ValueError(
                f"rates {rates!r} add up to {sum(rates.values()):.3f}: expected 1 or less, "
                "since each attempt gets at most one fault"
            )
        if self.max_consecutive < 0:
            raise ValueError(
                f"max_consecutive {self.max_consecutive!r} is invalid: expected 0 or more"
            )
        if self.retry_after_s < 0 or self.delay_s < 0:
            raise ValueError(
                f"retry_after_s {self.retry_after_s!r} and delay_s {self.delay_s!r} are "
                "invalid: expected seconds >= 0"
            )

    def thresholds(self) -> tuple[tuple[float, FaultKind], ...]:
        """Return the cumulative probability at which each kind ends, in a fixed order."""
        third = self.server_error / 3
        shares = (
            (self.too_many_requests, FaultKind.TOO_MANY_REQUESTS),
            (third, FaultKind.INTERNAL_ERROR),
            (third, FaultKind.BAD_GATEWAY),
            (third, FaultKind.UNAVAILABLE),
            (self.proxy_page, FaultKind.PROXY_PAGE),
            (self.reset, FaultKind.RESET),
            (self.delay, FaultKind.DELAY),
        )
        bounds = []
        total = 0.0
        for share, kind in shares:
            total += share
            bounds.append((total, kind))
        return tuple(bounds)


def choose_fault(thresholds: Sequence[tuple[float, FaultKind]], uniform: float) -> FaultKind | None:
    """Return the kind whose cumulative range contains `uniform` (in [0, 1)), or None."""
    for bound, kind in thresholds:
        if uniform < bound:
            return kind
    return None


def seeded_uniform(seed: int, *parts: object) -> float:
    """Return a number in [0, 1) that depends only on `seed` and `parts`."""
    text = "\x1f".join([str(seed), *(str(part) for part in parts)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultCounts:
    """Thread-safe counts of injected faults, by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[FaultKind] = Counter()

    def add(self, kind: FaultKind, count: int = 1) -> None:
        with self._lock:
            self._counts[kind] += count

    def snapshot(self) -> dict[FaultKind, int]:
        """Return the counts so far, without the kinds never injected."""
        with self._lock:
            return {kind: count for kind, count in self._counts.items() if count}

    def failures(self) -> int:
        """Return how many injected faults made an attempt fail (every kind but a delay)."""
        with self._lock:
            return sum(count for kind, count in self._counts.items() if kind in FAILING_KINDS)


class TsdbChaos:
    """A `Faults.request_hook` that injects seeded random faults into OpenTSDB queries.

    Install it with `faults.request_hook = TsdbChaos(seed, rates)`. `counts` records what it
    injected and `requests` how many requests it saw.
    """

    def __init__(self, seed: int, rates: ChaosRates | None = None) -> None:
        self.seed = seed
        self.rates = rates or ChaosRates()
        self.counts = FaultCounts()
        self._thresholds = self.rates.thresholds()
        self._lock = threading.Lock()
        self._requests = 0
        # Per request body (its SHA-256): attempts seen, and failures injected in a row.
        self._attempts: Counter[str] = Counter()
        self._failures_in_row: Counter[str] = Counter()

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def __call__(self, body: bytes) -> InjectedFault | None:
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            self._requests += 1
            attempt = self._attempts[digest]
            self._attempts[digest] += 1
            kind: FaultKind | None = None
            if self._failures_in_row[digest] < self.rates.max_consecutive:
                kind = choose_fault(self._thresholds, seeded_uniform(self.seed, digest, attempt))
            if kind in FAILING_KINDS:
                self._failures_in_row[digest] += 1
            else:
                self._failures_in_row[digest] = 0
        if kind is None:
            return None
        self.counts.add(kind)
        return self._fault(kind)

    def _fault(self, kind: FaultKind) -> InjectedFault:
        if kind is FaultKind.DELAY:
            return InjectedFault(delay_s=self.rates.delay_s)
        if kind is FaultKind.RESET:
            return InjectedFault(cut=True)
        return InjectedFault(response=tsdb_error_response(kind, self.rates.retry_after_s))


def tsdb_error_response(kind: FaultKind, retry_after_s: int) -> ForcedResponse:
    """Return the response OVH's OpenTSDB proxy or a gateway in front of it sends for `kind`."""
    if kind is FaultKind.TOO_MANY_REQUESTS:
        return ForcedResponse(
            429, b"Too Many Requests\n", {"Retry-After": str(retry_after_s)}, _TEXT
        )
    if kind is FaultKind.INTERNAL_ERROR:
        # The proxy reports any backend failure as a plain-text 500.
        return ForcedResponse(500, b"backend unavailable, retry later\n", {}, _TEXT)
    if kind is FaultKind.BAD_GATEWAY:
        return ForcedResponse(502, b"Bad Gateway\n", {}, _TEXT)
    if kind is FaultKind.UNAVAILABLE:
        return ForcedResponse(503, b"Service Unavailable\n", {}, _TEXT)
    if kind is FaultKind.PROXY_PAGE:
        page = b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>\n"
        return ForcedResponse(502, page, {}, "text/html; charset=utf-8")
    raise ValueError(f"fault kind {kind!r} has no error response: expected an HTTP error kind")


INVENTORY_TASK = "inventory"
TOKEN_TASK = "metrics token"


@dataclass(frozen=True)
class ApiRoute:
    """An APIv6 route that every ingestion run requests: a name and its path pattern.

    `task` is the part of the run that requests it: the inventory walk, or the metrics token
    request (with its user lookup), whose requests the inventory counts leave out.
    """

    name: str
    method: str
    path: str
    task: str = INVENTORY_TASK


# The routes of one inventory walk and one metrics-token request, as regular expressions on
# the API path without `/1.0`. `GET /auth/time` is left out: python-ovh also requests it on
# its own, without the pipeline's retries.
INGEST_ROUTES = (
    ApiRoute("service list", "GET", r"/dedicatedCloud"),
    ApiRoute("service", "GET", r"/dedicatedCloud/[^/]+"),
    ApiRoute("datacenter list", "GET", r"/dedicatedCloud/[^/]+/datacenter"),
    ApiRoute("datacenters", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+"),
    ApiRoute("host list", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/host"),
    ApiRoute("hosts", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/host/[^/]+"),
    ApiRoute("vm list", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/vm"),
    ApiRoute("vms", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/vm/[^/]+"),
    ApiRoute("datastore list", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/filer"),
    ApiRoute("datastores", "GET", r"/dedicatedCloud/[^/]+/datacenter/[^/]+/filer/[^/]+"),
    ApiRoute("global datastore list", "GET", r"/dedicatedCloud/[^/]+/filer"),
    ApiRoute("global datastores", "GET", r"/dedicatedCloud/[^/]+/filer/[^/]+"),
    ApiRoute("user list", "GET", r"/dedicatedCloud/[^/]+/user", TOKEN_TASK),
    ApiRoute("users", "GET", r"/dedicatedCloud/[^/]+/user/[^/]+", TOKEN_TASK),
    ApiRoute("metrics token", "POST", r"/dedicatedCloud/[^/]+/user/[^/]+/metricsToken", TOKEN_TASK),
)

_API_KINDS = (
    FaultKind.TOO_MANY_REQUESTS,
    FaultKind.INTERNAL_ERROR,
    FaultKind.BAD_GATEWAY,
    FaultKind.UNAVAILABLE,
    FaultKind.PROXY_PAGE,
)


@dataclass(frozen=True)
class PlannedApiFault:
    """One forced APIv6 response of a run's plan, with the route and kind it was drawn for."""

    run: int
    route: ApiRoute
    kind: FaultKind
    response: ForcedApiResponse


class ApiChaos:
    """Seeded random APIv6 faults, queued with `ApiFaults.force` before each run.

    In run number `run`, each route of `routes` gets a burst of faults with probability
    `route_rate`. A burst has 1 to `max_consecutive` faults, each of a kind drawn with the
    weights of `rates` (429, 5xx and HTML page only). The first request of that route takes the
    first fault and its retries take the rest, since requests are matched in queue order.
    `counts` records the faults queued so far.
    """

    def __init__(
        self,
        seed: int,
        rates: ChaosRates | None = None,
        *,
        route_rate: float = 0.05,
        routes: Sequence[ApiRoute] = INGEST_ROUTES,
    ) -> None:
        if not 0.0 <= route_rate <= 1.0:
            raise ValueError(f"route_rate {route_rate!r} is invalid: expected a fraction in [0, 1]")
        self.seed = seed
        self.rates = rates or ChaosRates()
        self.route_rate = route_rate
        self.routes = tuple(routes)
        self.counts = FaultCounts()
        self.planned: list[PlannedApiFault] = []

    def plan(self, run: int) -> list[PlannedApiFault]:
        """Return the faults of run number `run`. The same seed and run give the same plan."""
        weights = self._kind_weights()
        planned = []
        for route in self.routes:
            if seeded_uniform(self.seed, "api", run, route.name) >= self.route_rate:
                continue
            burst = 1 + int(
                seeded_uniform(self.seed, "burst", run, route.name) * self.rates.max_consecutive
            )
            for position in range(min(burst, self.rates.max_consecutive)):
                draw = seeded_uniform(self.seed, "kind", run, route.name, position)
                kind = _weighted_choice(weights, draw)
                response = api_error_response(kind, route, self.rates.retry_after_s)
                planned.append(PlannedApiFault(run, route, kind, response))
        return planned

    def queue_run(self, faults: ApiFaults, run: int) -> list[PlannedApiFault]:
        """Queue the faults of run number `run` on `faults`, count them and return them."""
        planned = self.plan(run)
        faults.force(*(fault.response for fault in planned))
        for fault in planned:
            self.counts.add(fault.kind)
        self.planned += planned
        return planned

    def _kind_weights(self) -> tuple[tuple[float, FaultKind], ...]:
        third = self.rates.server_error / 3
        weights = (self.rates.too_many_requests, third, third, third, self.rates.proxy_page)
        total = sum(weights)
        if total == 0:
            raise ValueError(
                "ApiChaos has no APIv6 fault to draw: set too_many_requests, server_error or "
                "proxy_page above 0, or use route_rate=0"
            )
        bounds = []
        cumulative = 0.0
        for weight, kind in zip(weights, _API_KINDS, strict=True):
            cumulative += weight / total
            bounds.append((cumulative, kind))
        return tuple(bounds)


def _weighted_choice(bounds: Sequence[tuple[float, FaultKind]], uniform: float) -> FaultKind:
    # Rounding can leave the last bound just under 1, so the last kind takes the remainder.
    return choose_fault(bounds, uniform) or bounds[-1][1]


def api_error_response(kind: FaultKind, route: ApiRoute, retry_after_s: int) -> ForcedApiResponse:
    """Return the forced APIv6 response of `kind`, limited to the requests of `route`."""
    if kind is FaultKind.TOO_MANY_REQUESTS:
        return too_many_requests(retry_after_s, method=route.method, path=route.path)
    if kind in _SERVER_ERRORS:
        return server_error(int(kind), method=route.method, path=route.path)
    if kind is FaultKind.PROXY_PAGE:
        return gateway_error_page(502, method=route.method, path=route.path)
    raise ValueError(f"fault kind {kind!r} is not an APIv6 fault: expected one of {_API_KINDS}")


def describe_counts(counts: Mapping[FaultKind, int]) -> str:
    """Return counts as `429: 3, reset: 1`, in the order of `FaultKind`."""
    return ", ".join(f"{kind}: {counts[kind]}" for kind in FaultKind if counts.get(kind))
