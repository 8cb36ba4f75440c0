"""Start the simulated OVH APIv6 and OpenTSDB services together, on loopback.

The simulator serves one dedicatedCloud service by default, or several, each with its own
fleet, datacenter ids, metrics token and series.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import (
    DEFAULT_SERVICE_NAME,
    FIRST_DATACENTER_ID,
    Fleet,
    FleetSeries,
    build_fleet,
)
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import make_opentsdb_server
from vscope_pipeline.simulator.ovh_api import make_ovh_api_server

HOST = "127.0.0.1"

# Datacenter ids of the n-th service start at FIRST_DATACENTER_ID + n * this step, so that no
# two services share a datacenter id.
DATACENTER_ID_STEP = 100


@dataclass(frozen=True)
class RunningSimulator:
    """The running servers and what they serve.

    `fleet` and `series` are those of the first service. `fleets`, `series_by_service` and
    `metrics_tokens` (service name -> token) cover every service, in `service_names` order.
    """

    fleet: Fleet
    series: FleetSeries
    credentials: SimulatorCredentials
    ovh_url: str
    opentsdb_url: str
    ovh_server: ServerThread
    opentsdb_server: ServerThread
    fleets: tuple[Fleet, ...] = ()
    series_by_service: Mapping[str, FleetSeries] = field(default_factory=dict)
    metrics_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(fleet.service_name for fleet in self.fleets) or (self.fleet.service_name,)

    @property
    def ovh_endpoint(self) -> str:
        """The value of OVH_ENDPOINT that points the pipeline at this simulator."""
        return f"{self.ovh_url}/1.0"

    def environment(self) -> dict[str, str]:
        """Return the environment variables that point the pipeline at this simulator.

        The metrics token is not among them: the pipeline requests it from the simulated APIv6,
        as it does against OVHcloud.
        """
        return {
            "OVH_ENDPOINT": self.ovh_endpoint,
            "OVH_APPLICATION_KEY": self.credentials.application_key,
            "OVH_APPLICATION_SECRET": self.credentials.application_secret,
            "OVH_CONSUMER_KEY": self.credentials.consumer_key,
            "VSCOPE_SERVICE_NAMES": ",".join(self.service_names),
            # The simulator runs on this machine: pacing requests to it only wastes time.
            "VSCOPE_OPENTSDB_RATE_LIMIT": "1000",
        }


@contextmanager
def running_simulator(
    *,
    anchor_day: dt.date | None = None,
    vm_count: int = 60,
    seed: int = 7,
    step_seconds: int = 60,
    ovh_port: int = 0,
    opentsdb_port: int = 0,
    credentials: SimulatorCredentials | None = None,
    clock: Callable[[], float] = time.time,
    inventory_changes: bool = False,
    services: int | Sequence[str] = 1,
) -> Iterator[RunningSimulator]:
    """Run both simulated services until the block exits.

    `anchor_day` is the simulator's "today" (default: today in UTC); the fleet's scripted events,
    such as the VM deleted at noon the day before, are placed relative to it. `step_seconds` is
    the interval between two points of a series. Port 0 picks a free port. `clock` returns the
    epoch seconds both servers take as "now": pass a `SimulatorClock` to set them to another
    day. `inventory_changes` adds dated inventory changes before the anchor day (see
    `fleet_events`), and needs `vm_count` of 6 or more.

    `services` is the number of dedicatedCloud services, or their names. The first of a number
    is `pcc-203-0-113-10`, the next ones `pcc-203-0-113-11` and up. Each service has its own
    fleet of `vm_count` VMs and its own metrics token, which reads only that service's series.
    With one service, the token reads the one fleet's series as before.
    """
    anchor_day = anchor_day or dt.datetime.now(dt.UTC).date()
    credentials = credentials or SimulatorCredentials()
    names = service_names(services)
    fleets = tuple(
        build_fleet(
            anchor_day,
            seed=seed,
            vm_count=vm_count,
            inventory_changes=inventory_changes,
            service_name=name,
            first_datacenter_id=FIRST_DATACENTER_ID + index * DATACENTER_ID_STEP,
        )
        for index, name in enumerate(names)
    )
    series = {fleet.service_name: FleetSeries(fleet, step_seconds=step_seconds) for fleet in fleets}
    tokens = credentials.service_metrics_tokens(names)
    # One service keeps the unscoped token of a one-service simulator: tests that accept or
    # rotate tokens while it runs read the same series with any token.
    scopes = {tokens[name]: series[name] for name in names} if len(names) > 1 else None
    first = fleets[0]
    with ExitStack() as stack:
        tsdb = stack.enter_context(
            ServerThread(
                make_opentsdb_server(
                    series[first.service_name],
                    list(tokens.values()),
                    host=HOST,
                    port=opentsdb_port,
                    clock=clock,
                    scopes=scopes,
                ),
                name="simulated OpenTSDB",
            )
        )
        api = stack.enter_context(
            ServerThread(
                make_ovh_api_server(
                    fleets,
                    credentials,
                    tsdb.url,
                    host=HOST,
                    port=ovh_port,
                    clock=clock,
                    metrics_tokens=tokens,
                ),
                name="simulated OVH APIv6",
            )
        )
        yield RunningSimulator(
            fleet=first,
            series=series[first.service_name],
            credentials=credentials,
            ovh_url=api.url,
            opentsdb_url=tsdb.url,
            ovh_server=api,
            opentsdb_server=tsdb,
            fleets=fleets,
            series_by_service=series,
            metrics_tokens=tokens,
        )


def service_names(services: int | Sequence[str]) -> tuple[str, ...]:
    """Return the service names that `running_simulator(services=...)` serves."""
    if isinstance(services, int):
        if services < 1:
            raise ValueError(f"services {services!r} is out of range: expected 1 or more")
        prefix, _, last = DEFAULT_SERVICE_NAME.rpartition("-")
        return tuple(f"{prefix}-{int(last) + index}" for index in range(services))
    if isinstance(services, str):
        raise TypeError(
            f"services must be a count or a sequence of names, not the string {services!r}: "
            f"pass [{services!r}]"
        )
    names = tuple(services)
    if not names or len(set(names)) != len(names) or not all(names):
        raise ValueError(
            f"services {list(names)!r} are not valid: expected one or more distinct, "
            "non-empty service names"
        )
    return names
