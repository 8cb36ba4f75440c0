"""Start the simulated OVH APIv6 and OpenTSDB services together, on loopback."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.fleet import Fleet, FleetSeries, build_fleet
from vscope_pipeline.simulator.http import ServerThread
from vscope_pipeline.simulator.opentsdb_server import make_opentsdb_server
from vscope_pipeline.simulator.ovh_api import make_ovh_api_server

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RunningSimulator:
    fleet: Fleet
    series: FleetSeries
    credentials: SimulatorCredentials
    ovh_url: str
    opentsdb_url: str
    ovh_server: ServerThread
    opentsdb_server: ServerThread

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
            "VSCOPE_SERVICE_NAMES": self.fleet.service_name,
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
) -> Iterator[RunningSimulator]:
    """Run both simulated services until the block exits.

    `anchor_day` is the simulator's "today" (default: today in UTC); the fleet's scripted events,
    such as the VM deleted at noon the day before, are placed relative to it. `step_seconds` is
    the interval between two points of a series. Port 0 picks a free port. `clock` returns the
    epoch seconds both servers take as "now": pass a `SimulatorClock` to set them to another
    day. `inventory_changes` adds dated inventory changes before the anchor day (see
    `fleet_events`), and needs `vm_count` of 6 or more.
    """
    anchor_day = anchor_day or dt.datetime.now(dt.UTC).date()
    credentials = credentials or SimulatorCredentials()
    fleet = build_fleet(
        anchor_day, seed=seed, vm_count=vm_count, inventory_changes=inventory_changes
    )
    series = FleetSeries(fleet, step_seconds=step_seconds)
    with ExitStack() as stack:
        tsdb = stack.enter_context(
            ServerThread(
                make_opentsdb_server(
                    series, [credentials.metrics_token], host=HOST, port=opentsdb_port, clock=clock
                ),
                name="simulated OpenTSDB",
            )
        )
        api = stack.enter_context(
            ServerThread(
                make_ovh_api_server(
                    fleet, credentials, tsdb.url, host=HOST, port=ovh_port, clock=clock
                ),
                name="simulated OVH APIv6",
            )
        )
        yield RunningSimulator(
            fleet=fleet,
            series=series,
            credentials=credentials,
            ovh_url=api.url,
            opentsdb_url=tsdb.url,
            ovh_server=api,
            opentsdb_server=tsdb,
        )
