"""Deterministic vScope time series for a synthetic fleet, as OpenTSDB would store them.

A series' value at a timestamp depends only on the fleet seed, the series and the timestamp.
Points are generated one whole UTC day at a time, from a numpy generator seeded with a blake2b
hash of (seed, series, day), and then cut to the requested window. Two overlapping queries
therefore return the same points where they overlap. Nothing is cached between calls, so
memory does not grow with the number of days read.

Shapes: CPU, network and disk activity follow office hours (08:00-18:00 UTC on weekdays, low
at night and at weekends), disks also see a nightly backup window around 02:30 UTC, memory is
flat, and datastore usage grows slowly along a logistic curve that never reaches the
datastore's size. Some series lose a few 5-30 minute stretches on some days.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vscope_pipeline.catalog import (
    DATACENTER_LABEL,
    NIC_LABEL,
    MetricSpec,
    build_catalog,
    parse_extra_metric,
)

if TYPE_CHECKING:
    from vscope_pipeline.simulator.fleet import Fleet, SeriesEntity

DAY_MS = 86_400_000
MINUTE_MS = 60_000

# An undocumented metric that vScope also stores, to show how the catalogue is extended.
TPS_METRIC = parse_extra_metric("vscope.vm.mem.tps:MB")
SIMULATED_METRICS: tuple[MetricSpec, ...] = build_catalog((TPS_METRIC,))

# Tags that real vScope series carry besides the catalogue's label keys.
EXTRA_TAGS = {"env": "prod", "servicetype": "vscope"}
SERVICE_NAME_TAG = "servicename"

GAP_MIN_MINUTES = 5
GAP_MAX_MINUTES = 30

Tags = Mapping[str, str]
Points = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def stable_seed(*parts: object) -> int:
    """Return a 64-bit seed from `parts`, the same in every process and Python version.

    Python's `hash()` is salted per process, so it cannot seed reproducible data.
    """
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class SignalModel:
    """The random model of one metric's values.

    A series picks its base `level` and its `office_gain` uniformly within the given ranges.
    At a timestamp its value is level * (1 + office_gain * office + night_gain * backup)
    * wander * (1 + noise * N(0, 1)), clipped to the metric's range and rounded to `decimals`.
    `office` and `backup` are 0..1 time-of-day profiles; `wander` is a slow drift of +-12 %.
    """

    level: tuple[float, float]
    office_gain: tuple[float, float]
    noise: float
    decimals: int = 2
    night_gain: float = 0.0


_MODELS: dict[str, SignalModel] = {
    "vscope.host.cpu.usage.perc": SignalModel((12, 30), (0.6, 1.3), 0.06),
    "vscope.host.mem.usage.perc": SignalModel((45, 70), (0.03, 0.12), 0.01),
    "vscope.host.net.tx": SignalModel((300, 6000), (0.5, 1.5), 0.2),
    "vscope.host.net.rx": SignalModel((300, 6000), (0.5, 1.5), 0.2),
    "vscope.host.net.packetstx": SignalModel((300, 5000), (0.5, 1.5), 0.2, decimals=0),
    "vscope.host.net.packetsrx": SignalModel((300, 5000), (0.5, 1.5), 0.2, decimals=0),
    "vscope.vm.cpu.usage.perc": SignalModel((3, 25), (0.5, 2.0), 0.15),
    "vscope.vm.mem.usage.perc": SignalModel((15, 55), (0.1, 0.4), 0.04),
    "vscope.vm.cpu.ready": SignalModel((20, 150), (0.3, 1.0), 0.3),
    "vscope.vm.net.rx": SignalModel((5, 800), (0.5, 2.0), 0.3),
    "vscope.vm.net.tx": SignalModel((5, 800), (0.5, 2.0), 0.3, night_gain=1.5),
    "vscope.vm.net.packetsrx": SignalModel((10, 1500), (0.5, 2.0), 0.3, decimals=0),
    "vscope.vm.net.packetstx": SignalModel((10, 1500), (0.5, 2.0), 0.3, decimals=0),
    "vscope.vm.disk.io.read": SignalModel((2, 150), (0.3, 1.5), 0.3, night_gain=3.0),
    "vscope.vm.disk.io.write": SignalModel((2, 120), (0.3, 1.5), 0.3),
    "vscope.vm.disk.bandwidth.read": SignalModel((20, 4000), (0.3, 1.5), 0.3, night_gain=3.0),
    "vscope.vm.disk.bandwidth.write": SignalModel((20, 3000), (0.3, 1.5), 0.3),
    "vscope.vm.disk.latency.read": SignalModel((0.4, 4), (0.1, 0.5), 0.4),
    "vscope.vm.disk.latency.write": SignalModel((0.5, 6), (0.1, 0.5), 0.4),
    TPS_METRIC.name: SignalModel((50, 900), (0.0, 0.05), 0.01, decimals=0),
}

FILER_USED_METRIC = "vscope.filer.datastore.diskspace.used"

# Slow drift: three sine waves whose periods (hours) share no common rhythm with the day.
_WANDER_PERIODS_H = np.array([5.3, 17.9, 61.0])
_WANDER_AMPLITUDE = 0.12
# Time scale of the logistic curve of datastore fill: it rises from 12 % to 88 % of its span
# in about 16 months.
_FILL_TIMESCALE_MS = 120 * DAY_MS


@dataclass(frozen=True)
class _Series:
    spec: MetricSpec
    entity: SeriesEntity
    nic: str | None
    tags: Mapping[str, str]
    # Seed key: metric, service, entity and NIC, but not the datacenter, so that a global
    # datastore reported under every datacenter has the same values everywhere.
    key: str
    level: float
    gain: float
    phases: npt.NDArray[np.float64]


class FleetSeries:
    """The `SeriesSource` of a fleet: every catalogue metric plus `vscope.vm.mem.tps`.

    VMs powered off from the start have no series. The series of a deleted VM, or of one that a
    scripted change powers off, end at that time.
    `step_seconds` is the interval between points and must divide a day. Points sit on exact
    multiples of it since the epoch, so on minute boundaries for the default of 60 s.
    `gap_probability` is the chance that a given series loses 1 to 3 stretches of 5-30
    minutes on a given day. Series start `history_days` days before the anchor day, which
    also bounds the work of a query with a very early start.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        step_seconds: int = 60,
        gap_probability: float = 0.02,
        history_days: int = 400,
    ) -> None:
        if step_seconds < 1 or 86_400 % step_seconds:
            raise ValueError(
                f"step_seconds {step_seconds!r} is not valid: expected a whole number of "
                "seconds that divides a day (86400), for example 60 or 300"
            )
        if not 0.0 <= gap_probability <= 1.0:
            raise ValueError(
                f"gap_probability {gap_probability!r} is not valid: expected a probability "
                "between 0 and 1"
            )
        if history_days < 0:
            raise ValueError(f"history_days {history_days!r} is not valid: expected 0 or more days")
        self.fleet = fleet
        self.step_seconds = step_seconds
        self.gap_probability = gap_probability
        self.first_day = fleet.anchor_ms // DAY_MS - history_days
        self._by_metric: dict[str, list[_Series]] = {}
        self._index: dict[tuple[str, frozenset[tuple[str, str]]], _Series] = {}
        for spec in SIMULATED_METRICS:
            for entity in fleet.series_entities():
                if entity.kind != spec.entity_kind:
                    continue
                for nic in entity.nics if spec.per_nic else (None,):
                    series = self._make_series(spec, entity, nic)
                    self._by_metric.setdefault(spec.name, []).append(series)
                    self._index[(spec.name, frozenset(series.tags.items()))] = series

    def _make_series(self, spec: MetricSpec, entity: SeriesEntity, nic: str | None) -> _Series:
        tags = {DATACENTER_LABEL: entity.datacenter, spec.entity_label: entity.entity}
        if nic is not None:
            tags[NIC_LABEL] = nic
        tags.update(EXTRA_TAGS)
        tags[SERVICE_NAME_TAG] = entity.service_name
        key = "|".join((spec.name, entity.service_name, entity.entity, nic or ""))
        rng = np.random.default_rng(stable_seed(self.fleet.seed, key))
        model = _MODELS.get(spec.name)
        level_range, gain_range = (model.level, model.office_gain) if model else ((0, 1), (0, 1))
        return _Series(
            spec=spec,
            entity=entity,
            nic=nic,
            tags=tags,
            key=key,
            level=float(rng.uniform(*level_range)),
            gain=float(rng.uniform(*gain_range)),
            phases=rng.uniform(0, 2 * np.pi, size=len(_WANDER_PERIODS_H)),
        )

    # SeriesSource protocol

    def metric_names(self) -> frozenset[str]:
        return frozenset(self._by_metric)

    def series_tags(self, metric: str) -> Sequence[Tags]:
        # Copies, so that a caller that edits a tag set cannot corrupt the index.
        return [dict(series.tags) for series in self._by_metric.get(metric, ())]

    def points(self, metric: str, tags: Tags, start_ms: int, end_ms: int) -> Points:
        series = self._index.get((metric, frozenset(tags.items())))
        if series is None or end_ms < start_ms:
            return _empty()
        first_day = max(start_ms // DAY_MS, self.first_day)
        chunks = [self._day_points(series, day) for day in range(first_day, end_ms // DAY_MS + 1)]
        if not chunks:
            return _empty()
        timestamps = np.concatenate([chunk[0] for chunk in chunks])
        values = np.concatenate([chunk[1] for chunk in chunks])
        inside = (timestamps >= start_ms) & (timestamps <= end_ms)
        return timestamps[inside], values[inside]

    # Lookups for tests and tools

    def gaps(self, metric: str, tags: Tags, day: int) -> tuple[tuple[int, int], ...]:
        """Return the missing stretches of a series on a day, as `[start_ms, end_ms)` pairs.

        `day` counts days since the epoch (`start_ms // 86_400_000`).
        """
        series = self._index.get((metric, frozenset(tags.items())))
        if series is None:
            raise KeyError(
                f"no series {metric!r} with tags {dict(tags)!r}: expected one of the tag sets "
                "that series_tags() returns"
            )
        return self._gaps(series, day)

    # Generation

    def _day_points(self, series: _Series, day: int) -> Points:
        step_ms = self.step_seconds * 1000
        count = DAY_MS // step_ms
        timestamps = day * DAY_MS + np.arange(count, dtype=np.int64) * step_ms
        keep = np.ones(count, dtype=bool)
        for gap_start, gap_end in self._gaps(series, day):
            keep &= (timestamps < gap_start) | (timestamps >= gap_end)
        stop_ms = series.entity.reports_until_ms
        if stop_ms is not None:
            keep &= timestamps < stop_ms
        if not keep.any():
            return _empty()
        values = self._values(series, day, timestamps)
        return timestamps[keep], values[keep]

    def _gaps(self, series: _Series, day: int) -> tuple[tuple[int, int], ...]:
        rng = np.random.default_rng(stable_seed(self.fleet.seed, series.key, day, "gaps"))
        if rng.random() >= self.gap_probability:
            return ()
        count = int(rng.integers(1, 4))
        starts = rng.integers(0, (DAY_MS - GAP_MAX_MINUTES * MINUTE_MS) // MINUTE_MS, count)
        lengths = rng.integers(GAP_MIN_MINUTES, GAP_MAX_MINUTES + 1, count)
        return tuple(
            (day * DAY_MS + int(start) * MINUTE_MS, day * DAY_MS + int(start + length) * MINUTE_MS)
            for start, length in sorted(zip(starts, lengths, strict=True))
        )

    def _values(
        self, series: _Series, day: int, timestamps: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        rng = np.random.default_rng(stable_seed(self.fleet.seed, series.key, day))
        noise = rng.standard_normal(len(timestamps))
        if series.spec.name == FILER_USED_METRIC:
            return self._filer_used(series, timestamps, noise)
        model = _MODELS.get(series.spec.name) or SignalModel((0, 1), (0, 1), 0.1)
        office, backup = _day_profiles(self.step_seconds)
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0.
        office_factor = office * (0.2 if weekday >= 5 else 1.0)
        hours = timestamps / 3_600_000.0
        wander = 1.0 + _WANDER_AMPLITUDE * np.mean(
            np.sin(2 * np.pi * hours[:, None] / _WANDER_PERIODS_H + series.phases), axis=1
        )
        values = (
            series.level
            * (1.0 + series.gain * office_factor + model.night_gain * backup)
            * wander
            * (1.0 + model.noise * noise)
        )
        return _clip_and_round(values, series.spec, model.decimals)

    def _filer_used(
        self,
        series: _Series,
        timestamps: npt.NDArray[np.int64],
        noise: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        fill = datastore_fill(
            self.fleet.seed,
            series.entity.service_name,
            series.entity.entity,
            self.fleet.anchor_ms,
            timestamps,
        )
        # Files come and go during the day: +-0.2 % of the capacity at most.
        fill = fill + 0.0005 * np.clip(noise, -4, 4)
        return np.round(fill * (series.entity.capacity_kb or 0))


def datastore_fill(
    seed: int,
    service_name: str,
    filer_name: str,
    anchor_ms: int,
    at_ms: npt.NDArray[np.int64] | int,
) -> npt.NDArray[np.float64]:
    """Return the trend of a datastore's used fraction of its capacity at `at_ms`.

    The trend is a logistic curve centred on the anchor day. It starts between 35 % and 55 %
    and rises by 15 to 30 points, mostly within 8 months either side of the anchor day, so it
    always stays below 85 %. The APIv6
    `spaceUsed` of a filer is this fraction of its size at the anchor day.
    """
    rng = np.random.default_rng(stable_seed(seed, "fill", service_name, filer_name))
    start_fill, rise = rng.uniform(0.35, 0.55), rng.uniform(0.15, 0.30)
    elapsed = (np.asarray(at_ms, dtype=np.float64) - anchor_ms) / _FILL_TIMESCALE_MS
    return np.asarray(start_fill + rise / (1.0 + np.exp(-elapsed)), dtype=np.float64)


@lru_cache(maxsize=8)
def _day_profiles(step_seconds: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return the office-hours and backup-window profiles (0..1) over one day's points."""
    hours = np.arange(0, 86_400, step_seconds) / 3600.0
    office = 1.0 / (1.0 + np.exp(-(hours - 7.5) / 0.5)) / (1.0 + np.exp((hours - 17.5) / 0.7))
    backup = np.exp(-0.5 * ((hours - 2.5) / 0.7) ** 2)
    office.flags.writeable = False
    backup.flags.writeable = False
    return office, backup


def _clip_and_round(
    values: npt.NDArray[np.float64], spec: MetricSpec, decimals: int
) -> npt.NDArray[np.float64]:
    low = spec.min_value if spec.min_value is not None else 0.0
    high = spec.max_value if spec.max_value is not None else np.inf
    clipped = np.clip(values, low, high)
    return np.round(clipped, decimals).astype(np.float64, copy=False)


def _empty() -> Points:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
