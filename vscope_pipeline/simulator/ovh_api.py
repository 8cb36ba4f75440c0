"""The simulated OVH APIv6: the dedicatedCloud routes that vScope inventory and tokens need.

It serves one or more dedicatedCloud services, one fleet each. Every service returns its own
metrics token from the token routes, and all of them the same `opentsdbEndpoint`.

Routes are served under `/1.0` and under its alias `/v1`. Every route but `GET /auth/time`
needs a request signed as python-ovh signs it (see `ovh_auth`), and the consumer key's access
rules must grant it, except `GET /auth/currentCredential`, which returns those rules.
NOTE: that exception assumes APIv6 lets every valid consumer key read its own credential;
OVH does not document which rule, if any, that call needs. Responses are JSON and carry an
`X-Ovh-Queryid` header. Errors have the APIv6 body `{"message", "httpCode", "errorCode"}`:

- 404 `Client::NotFound`: "This service does not exist" for an unknown service, "The requested
  object (vmId = 42) does not exist" for an unknown datacenter, filer, host, VM or user;
- 404 without `errorCode`, message "Got an invalid (or empty) URL": no route for this method
  and path, including a token route disabled by `token_routes`;
- 400 for an id that is not a long; 400, 401 and 403 for authentication failures.

Object routes of datacenters, filers, hosts, VMs and users also serve batch mode, as APIv6
does for third-party tools: `GET …/vm/5001,5002?batch=,` returns a JSON array of
`{"key", "value", "error"}` items in request order, with `value` null and `error` the 404
message for a missing object. NOTE: OVH does not document batch mode; the item shape comes
from code that uses it, and whether `key` is a string or a number there is not known.

The server's `faults` (see `ovh_faults`) force error responses or delays on chosen requests,
before the signature is checked, as a rate limiter or gateway in front of APIv6 would. They
also change fields of chosen objects, in single and batch GETs.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import Fleet
from vscope_pipeline.simulator.http import LoopbackHTTPServer, QuietHandler
from vscope_pipeline.simulator.ovh_auth import (
    AUTH_HEADERS,
    ApiFailure,
    authenticate,
    authorize,
)
from vscope_pipeline.simulator.ovh_faults import ApiFaults, ForcedApiResponse

log = logging.getLogger(__name__)

API_PREFIXES = ("/1.0", "/v1")
TOKEN_ROUTES = ("metricsToken", "getVscopeMetricsToken")
NO_ROUTE = "(no route)"
INVALID_URL_MESSAGE = "Got an invalid (or empty) URL"
CURRENT_CREDENTIAL = "/auth/currentCredential"

_DC = "/dedicatedCloud/{serviceName}"
_DATACENTER = _DC + "/datacenter/{datacenterId}"

Handler = Callable[["_Request"], Any]


class RequestCounters:
    """Requests served, per route template (`GET /dedicatedCloud/{serviceName}`) and status.

    Requests that match no route are counted under `NO_ROUTE`. Safe to read while serving.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()

    def record(self, route: str, status: int) -> None:
        with self._lock:
            self._counts[(route, status)] += 1

    def count(self, route: str | None = None, status: int | None = None) -> int:
        """Return how many requests matched `route` and `status` (None matches any)."""
        with self._lock:
            return sum(
                number
                for (counted_route, counted_status), number in self._counts.items()
                if route in (None, counted_route) and status in (None, counted_status)
            )

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._counts)


class OvhApiServer(LoopbackHTTPServer):
    """The HTTP server of the simulated APIv6.

    `counters` records what it has served; `faults` may be changed while it runs.
    """

    def __init__(self, host: str, port: int, api: _Api) -> None:
        self.api = api
        self.counters = api.counters
        self.faults = api.faults
        handler = type("OvhApiHandler", (_OvhApiHandler,), {"api": api})
        super().__init__(host, port, handler)


def make_ovh_api_server(
    fleet: Fleet | Sequence[Fleet],
    credentials: SimulatorCredentials,
    opentsdb_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token_routes: Iterable[str] = TOKEN_ROUTES,
    clock: Callable[[], float] = time.time,
    faults: ApiFaults | None = None,
    metrics_tokens: Mapping[str, str] | None = None,
) -> OvhApiServer:
    """Create (not start) the APIv6 server of `fleet`; run it with `ServerThread`.

    `fleet` is one fleet, or several whose service names differ: `GET /dedicatedCloud` lists
    them in the given order. `metrics_tokens` maps each service name to the token its token
    routes return (default: `credentials.service_metrics_tokens`, which gives the first
    service `credentials.metrics_token`). `opentsdb_url` is the `opentsdbEndpoint` the token
    routes return. `token_routes` names the
    token routes that exist (`metricsToken`, `getVscopeMetricsToken`). The others return 404,
    as on accounts where OVH has removed them. `clock` returns epoch seconds: it sets
    `/auth/time`, the reference for signature timestamps, when the deleted VM disappears and
    which scripted inventory changes the objects show (see `fleet_events`).
    `faults` are the faults to inject, by default none until some are queued.
    """
    unknown = sorted(set(token_routes) - set(TOKEN_ROUTES))
    if unknown:
        raise ValueError(
            f"token_routes {unknown!r} are not token routes: expected a subset of "
            f"{list(TOKEN_ROUTES)!r}"
        )
    fleets = (fleet,) if isinstance(fleet, Fleet) else tuple(fleet)
    names = [item.service_name for item in fleets]
    if not fleets or len(set(names)) != len(names):
        raise ValueError(
            f"fleets of services {names!r} are not valid: expected at least one fleet, and "
            "distinct service names"
        )
    tokens = dict(metrics_tokens or credentials.service_metrics_tokens(names))
    untokened = [name for name in names if not tokens.get(name)]
    if untokened:
        raise ValueError(
            f"metrics_tokens has no token for services {untokened!r}: give every served "
            "service a non-empty token"
        )
    api = _Api(
        fleets,
        credentials,
        opentsdb_url,
        frozenset(token_routes),
        clock,
        faults or ApiFaults(),
        tokens,
    )
    return OvhApiServer(host, port, api)


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]
    signed: bool = True

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class _Request:
    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    # The server clock when the request arrived, in epoch seconds.
    now: float

    @property
    def now_ms(self) -> int:
        return int(self.now * 1000)


class _ChangingObject(Protocol):
    def api_at(self, now_ms: int) -> dict[str, Any]: ...


def _lookup_at(
    found: Mapping[int, _ChangingObject], now_ms: int
) -> Callable[[int], dict[str, Any] | None]:
    """Return a lookup of the APIv6 objects in `found` by id, as they are at `now_ms`."""

    def lookup(object_id: int) -> dict[str, Any] | None:
        item = found.get(object_id)
        return None if item is None else item.api_at(now_ms)

    return lookup


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(regex)


def _parse_long(name: str, raw: str) -> int:
    # NOTE: the wording of OVH's message for a malformed path parameter is a guess.
    if not re.fullmatch(r"-?\d{1,18}", raw):
        raise ApiFailure(
            400, "INVALID_PARAMETER", f"[{name}] Given data ({raw}) is not valid for type long"
        )
    return int(raw)


def _not_found(name: str, value: object) -> ApiFailure:
    return ApiFailure(
        404, "Client::NotFound", f"The requested object ({name} = {value}) does not exist"
    )


class _Api:
    """Route table and handlers over the fleets, shared read-only by every handler thread."""

    def __init__(
        self,
        fleets: Sequence[Fleet],
        credentials: SimulatorCredentials,
        opentsdb_url: str,
        token_routes: frozenset[str],
        clock: Callable[[], float],
        faults: ApiFaults,
        metrics_tokens: Mapping[str, str],
    ) -> None:
        self.fleets = {fleet.service_name: fleet for fleet in fleets}
        self.metrics_tokens = dict(metrics_tokens)
        self.credentials = credentials
        self.opentsdb_url = opentsdb_url
        self.clock = clock
        self.faults = faults
        self.counters = RequestCounters()
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/auth/time", self.auth_time, False),
            ("GET", CURRENT_CREDENTIAL, self.current_credential, True),
            ("GET", "/dedicatedCloud", self.services, True),
            ("GET", _DC, self.service, True),
            ("GET", _DC + "/datacenter", self.datacenter_ids, True),
            ("GET", _DATACENTER, self.datacenters, True),
            ("GET", _DATACENTER + "/filer", self.datacenter_filer_ids, True),
            ("GET", _DATACENTER + "/filer/{filerId}", self.datacenter_filers, True),
            ("GET", _DATACENTER + "/host", self.host_ids, True),
            ("GET", _DATACENTER + "/host/{hostId}", self.hosts, True),
            ("GET", _DATACENTER + "/vm", self.vm_ids, True),
            ("GET", _DATACENTER + "/vm/{vmId}", self.vms, True),
            ("GET", _DC + "/filer", self.global_filer_ids, True),
            ("GET", _DC + "/filer/{filerId}", self.global_filers, True),
            ("GET", _DC + "/user", self.user_ids, True),
            ("GET", _DC + "/user/{userId}", self.users, True),
        ]
        routes += [
            ("POST", f"{_DC}/user/{{userId}}/{name}", self.metrics_token, True)
            for name in TOKEN_ROUTES
            if name in token_routes
        ]
        self.routes = tuple(
            _Route(method, template, handler, _compile(template), signed)
            for method, template, handler, signed in routes
        )

    def match(self, method: str, api_path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.fullmatch(api_path)
            if found:
                return route, {key: unquote(value) for key, value in found.groupdict().items()}
        return None

    # Lookups shared by the handlers. Each raises the 404 of the first missing parent.

    def _fleet(self, request: _Request) -> Fleet:
        found = self.fleets.get(request.params["serviceName"])
        if found is None:
            raise ApiFailure(404, "Client::NotFound", "This service does not exist")
        return found

    def _datacenter_id(self, request: _Request) -> tuple[Fleet, int]:
        fleet = self._fleet(request)
        datacenter_id = _parse_long("datacenterId", request.params["datacenterId"])
        if fleet.datacenter(datacenter_id) is None:
            raise _not_found("datacenterId", datacenter_id)
        return fleet, datacenter_id

    def _objects(
        self, request: _Request, id_name: str, lookup: Callable[[int], dict[str, Any] | None]
    ) -> Any:
        """Return one object, or a batch of them when the query has `batch=<separator>`."""
        raw_ids = request.params[id_name]
        lookup = self._with_overrides(id_name, lookup)
        separators = request.query.get("batch")
        if not separators or not separators[0]:
            return self._object(id_name, raw_ids, lookup)
        items = []
        for raw_id in raw_ids.split(separators[0]):
            try:
                items.append(
                    {"key": raw_id, "value": self._object(id_name, raw_id, lookup), "error": None}
                )
            except ApiFailure as failure:
                items.append({"key": raw_id, "value": None, "error": failure.message})
        return items

    def _with_overrides(
        self, id_name: str, lookup: Callable[[int], dict[str, Any] | None]
    ) -> Callable[[int], dict[str, Any] | None]:
        """Wrap `lookup` so that it returns objects with the fault overrides applied."""
        entity = id_name.removesuffix("Id")

        def overridden(object_id: int) -> dict[str, Any] | None:
            found = lookup(object_id)
            return None if found is None else self.faults.overridden(entity, object_id, found)

        return overridden

    @staticmethod
    def _object(
        id_name: str, raw_id: str, lookup: Callable[[int], dict[str, Any] | None]
    ) -> dict[str, Any]:
        object_id = _parse_long(id_name, raw_id)
        found = lookup(object_id)
        if found is None:
            raise _not_found(id_name, object_id)
        return found

    # Handlers

    def auth_time(self, request: _Request) -> int:
        return int(request.now)

    def current_credential(self, request: _Request) -> dict[str, Any]:
        return self.credentials.api_credential(request.now)

    def services(self, request: _Request) -> list[str]:
        return list(self.fleets)

    def service(self, request: _Request) -> dict[str, Any]:
        return self._fleet(request).service

    def datacenter_ids(self, request: _Request) -> list[int]:
        return [dc.datacenter_id for dc in self._fleet(request).datacenters]

    def datacenters(self, request: _Request) -> Any:
        fleet = self._fleet(request)

        def lookup(datacenter_id: int) -> dict[str, Any] | None:
            found = fleet.datacenter(datacenter_id)
            return found.api if found else None

        return self._objects(request, "datacenterId", lookup)

    def datacenter_filer_ids(self, request: _Request) -> list[int]:
        fleet, datacenter_id = self._datacenter_id(request)
        return [filer.filer_id for filer in fleet.filers_in(datacenter_id)]

    def datacenter_filers(self, request: _Request) -> Any:
        fleet, datacenter_id = self._datacenter_id(request)
        filers = {filer.filer_id: filer for filer in fleet.filers_in(datacenter_id)}
        return self._objects(request, "filerId", _lookup_at(filers, request.now_ms))

    def global_filer_ids(self, request: _Request) -> list[int]:
        return [filer.filer_id for filer in self._fleet(request).filers_in(None)]

    def global_filers(self, request: _Request) -> Any:
        filers = {filer.filer_id: filer for filer in self._fleet(request).filers_in(None)}
        return self._objects(request, "filerId", _lookup_at(filers, request.now_ms))

    def host_ids(self, request: _Request) -> list[int]:
        fleet, datacenter_id = self._datacenter_id(request)
        return [host.host_id for host in fleet.hosts_in(datacenter_id)]

    def hosts(self, request: _Request) -> Any:
        fleet, datacenter_id = self._datacenter_id(request)
        hosts = {host.host_id: host for host in fleet.hosts_in(datacenter_id)}
        return self._objects(request, "hostId", _lookup_at(hosts, request.now_ms))

    def vm_ids(self, request: _Request) -> list[int]:
        fleet, datacenter_id = self._datacenter_id(request)
        return [vm.vm_id for vm in fleet.vms_in(datacenter_id, request.now_ms)]

    def vms(self, request: _Request) -> Any:
        fleet, datacenter_id = self._datacenter_id(request)
        vms = {
            vm.vm_id: vm
            for vm in fleet.vms_in(datacenter_id, request.now_ms)
            if not vm.missing_on_get
        }
        return self._objects(request, "vmId", _lookup_at(vms, request.now_ms))

    def user_ids(self, request: _Request) -> list[int]:
        fleet = self._fleet(request)
        # APIv6 documents `name` as a "like" filter. Here it is a case-insensitive substring.
        pattern = (request.query.get("name") or [""])[0].lower()
        return [user.user_id for user in fleet.users if pattern in user.name.lower()]

    def users(self, request: _Request) -> Any:
        users = {user.user_id: user.api for user in self._fleet(request).users}
        return self._objects(request, "userId", users.get)

    def metrics_token(self, request: _Request) -> dict[str, str]:
        fleet = self._fleet(request)
        user_id = _parse_long("userId", request.params["userId"])
        if all(user.user_id != user_id for user in fleet.users):
            raise _not_found("userId", user_id)
        # NOTE: OVHcloud documents one read token per dedicatedCloud user, and users belong to
        # one service. Every user of a service gets that service's one token here.
        return {
            "token": self.metrics_tokens[fleet.service_name],
            "opentsdbEndpoint": self.opentsdb_url,
            # NOTE: the simulator serves no Warp 10 API. The field repeats the OpenTSDB URL so
            # that the object has every field of the schema, and the pipeline never reads it.
            "warpEndpoint": self.opentsdb_url,
        }


class _OvhApiHandler(QuietHandler):
    api: _Api

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError) as error:
            # A client that timed out while a delay ran has closed its connection.
            log.debug("client %s closed the connection: %s", self.address_string(), error)

    def _serve(self, method: str) -> None:
        body = self.read_body().decode("utf-8", errors="replace")
        url = urlsplit(self.path)
        api_path = _strip_prefix(url.path)
        matched = self.api.match(method, api_path) if api_path is not None else None
        if self._inject_fault(method, api_path or url.path, matched):
            return
        if api_path is None or matched is None:
            self._reply(NO_ROUTE, 404, ApiFailure(404, None, INVALID_URL_MESSAGE).body())
            return
        route, params = matched
        try:
            now = self.api.clock()
            if route.signed:
                self._check_signature(method, body, now)
                if route.template != CURRENT_CREDENTIAL:
                    authorize(self.api.credentials, method, api_path)
            payload = route.handler(_Request(params, parse_qs(url.query), now))
        except ApiFailure as failure:
            if failure.status in (400, 401, 403):
                log.info("rejected %s %s: %s %s", method, url.path, failure.status, failure.message)
            self._reply(route.name, failure.status, failure.body())
        except Exception:
            log.exception("simulated APIv6 failed on %s %s", method, url.path)
            error = ApiFailure(500, "INTERNAL_SERVER_ERROR", "Internal server error")
            self._reply(route.name, error.status, error.body())
        else:
            self._reply(route.name, 200, payload)

    def _inject_fault(
        self, method: str, api_path: str, matched: tuple[_Route, dict[str, str]] | None
    ) -> bool:
        """Apply the configured delays, and send a forced response if one applies.

        Returns True when a forced response was sent instead of the real one.
        """
        faults = self.api.faults
        if faults.delay_s > 0:
            time.sleep(faults.delay_s)
        forced = faults.take(method, api_path)
        if forced is None:
            return False
        if forced.delay_s > 0:
            time.sleep(forced.delay_s)
        if forced.status is None:
            return False
        route_name = matched[0].name if matched is not None else NO_ROUTE
        log.info("forced response %d to %s %s", forced.status, method, api_path)
        self._send_forced(route_name, forced)
        return True

    def _send_forced(self, route_name: str, forced: ForcedApiResponse) -> None:
        assert forced.status is not None
        self.api.counters.record(route_name, forced.status)
        headers = {"X-Ovh-Queryid": _query_id(), **forced.headers}
        self.send_body(forced.status, forced.encoded_body(), forced.content_type, headers)

    def _check_signature(self, method: str, body: str, now: float) -> None:
        # python-ovh signs the URL it sent: rebuild it from the Host header and request line.
        host = self.headers.get("Host") or urlsplit(cast(OvhApiServer, self.server).url).netloc
        headers = {name: self.headers.get(name, "") for name in AUTH_HEADERS}
        url = f"http://{host}{self.path}"
        authenticate(self.api.credentials, headers, method, url, body, int(now))

    def _reply(self, route_name: str, status: int, payload: Any) -> None:
        self.api.counters.record(route_name, status)
        self.send_body(status, orjson.dumps(payload), headers={"X-Ovh-Queryid": _query_id()})


def _strip_prefix(path: str) -> str | None:
    for prefix in API_PREFIXES:
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return None


def _query_id() -> str:
    return f"EU.ext-sim.{secrets.token_hex(12)}"
