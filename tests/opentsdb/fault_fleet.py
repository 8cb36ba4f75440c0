"""A small in-memory fleet and a simulated OpenTSDB server over it, for the client's fault tests.

Datacenter 1 has six VMs and two hosts with two NICs each, datacenter 2 one VM. Every series
has one point every 5 minutes from an hour before the test day to an hour after it, so that
OpenTSDB's scan padding reads points outside the day. Values encode the entity and the time,
so that a misplaced point changes a value, and stay inside each metric's valid range (the
percentages between 10 and 93).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.opentsdb.planning import day_window

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
VM_CPU = SPECS["vscope.vm.cpu.usage.perc"]
VM_MEM = SPECS["vscope.vm.mem.usage.perc"]
HOST_TX = SPECS["vscope.host.net.tx"]

TOKEN = "fault-test-token"
SERVICE = "pcc-1-2-3-4"
DC1 = "pcc-1-2-3-4_datacenter1"
DC2 = "pcc-1-2-3-4_datacenter2"
DAY = date(2024, 5, 1)
T0 = day_window(DAY).start_ms
STOP = day_window(DAY).stop_ms
STEP_MS = 300_000

DC1_VMS = tuple(f"vm-{number}" for number in range(1, 7))
DC1_HOSTS = ("esx-1", "esx-2")
NICS = ("vmnic0", "vmnic1")

_Stored = tuple[dict[str, str], npt.NDArray[np.int64], npt.NDArray[np.float64]]


class FleetSource:
    """A SeriesSource over the fault-test fleet."""

    def __init__(self) -> None:
        self._series: dict[str, list[_Stored]] = {}
        ts = np.arange(T0 - 3_600_000, STOP + 3_600_000, STEP_MS, dtype=np.int64)
        steps = (ts - T0) // STEP_MS
        for number, vm in enumerate(DC1_VMS, start=1):
            for spec, scale in ((VM_CPU, 0.01), (VM_MEM, 0.005)):
                values = (number * 1000 + steps) * scale
                self._add(spec.name, {"datacenter": DC1, "vm": vm}, ts, values)
        self._add(VM_CPU.name, {"datacenter": DC2, "vm": "vm-9"}, ts, (9000.0 + steps) / 100)
        for host_number, host in enumerate(DC1_HOSTS, start=1):
            for nic_number, nic in enumerate(NICS):
                tags = {"datacenter": DC1, "host": host, "nicname": nic}
                self._add(HOST_TX.name, tags, ts, host_number * 100 + nic_number * 10 + steps)

    def _add(
        self, metric: str, tags: dict[str, str], ts: npt.NDArray[np.int64], values: object
    ) -> None:
        stored = ({**tags, "env": "prod"}, ts, np.asarray(values, dtype=np.float64))
        self._series.setdefault(metric, []).append(stored)

    def metric_names(self) -> frozenset[str]:
        return frozenset(self._series)

    def series_tags(self, metric: str) -> Sequence[Mapping[str, str]]:
        return [tags for tags, _, _ in self._series.get(metric, [])]

    def points(
        self, metric: str, tags: Mapping[str, str], start_ms: int, end_ms: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        for stored_tags, ts, values in self._series.get(metric, []):
            if stored_tags == dict(tags):
                keep = (ts >= start_ms) & (ts <= end_ms)
                return ts[keep], values[keep]
        return np.empty(0, np.int64), np.empty(0, np.float64)
