"""Series keys and synthetic values for the rollup benchmark, made with numpy from a fixed seed.

The series are the simulator fleet's (`Fleet.series_entities`): each powered-on VM, each host
(one series per NIC for a per-NIC metric) and each datastore, named as the simulator names
them. The values only need a plausible shape for the queries to do real work: office-hour
peaks for activity metrics, and a slow linear fill for datastores. They do not reproduce the
simulator's values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA, ROLLUP_FILE_SCHEMA
from vscope_pipeline.rollups import SERIES_COLUMNS
from vscope_pipeline.simulator.fleet import Fleet

MINUTES_PER_DAY = 1440
HOURS_PER_DAY = 24
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DATASTORE_METRIC = "vscope.filer.datastore.diskspace.used"
# Datastores fill from FILL_START to FILL_START + FILL_PER_YEAR of their size over 365 days.
FILL_START = 0.35
FILL_PER_YEAR = 0.3
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MetricSeries:
    """The series of one metric: their key columns (sorted), base level and datastore size.

    `keys` has the SERIES_COLUMNS of ROLLUP_FILE_SCHEMA, one row per series. `levels` is each
    series' mean value outside office hours. `capacity_kb` is each datastore's size (0 for
    other kinds).
    """

    spec: MetricSpec
    keys: pa.Table
    levels: FloatArray
    capacity_kb: FloatArray

    @property
    def count(self) -> int:
        return self.keys.num_rows


def metric_series(fleet: Fleet, spec: MetricSpec, seed: int) -> MetricSeries:
    """Return the series of `spec` in `fleet`, sorted by their key columns."""
    rows: list[dict[str, str | None]] = []
    capacities: list[float] = []
    for entity in fleet.series_entities():
        if entity.kind != spec.entity_kind:
            continue
        nics: tuple[str | None, ...] = entity.nics if spec.per_nic else (None,)
        for nic in nics:
            rows.append(
                {
                    "entity_kind": entity.kind,
                    "service_name": entity.service_name,
                    "datacenter": entity.datacenter,
                    "entity": entity.entity,
                    "nic": nic,
                }
            )
            capacities.append(float(entity.capacity_kb or 0))
    schema = pa.schema([ROLLUP_FILE_SCHEMA.field(name) for name in SERIES_COLUMNS])
    keys = pa.Table.from_pylist(rows, schema=schema)
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in SERIES_COLUMNS])
    keys = keys.take(order)
    capacity = np.asarray(capacities, dtype=np.float64)[order.to_numpy()]

    rng = np.random.default_rng([seed, _stable_number(spec.name)])
    if spec.max_value == 100.0:
        levels = rng.uniform(3.0, 45.0, keys.num_rows)
    else:
        levels = rng.lognormal(3.0, 1.0, keys.num_rows)
    return MetricSeries(spec, keys, levels, capacity)


def _stable_number(text: str) -> int:
    # Python's hash() is salted per process, so it cannot seed reproducible data.
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def activity_factor(minute_of_day: npt.NDArray[np.int64], weekday: int) -> FloatArray:
    """Return the load factor at each minute: 2.2 in office hours (08:00-18:00 UTC, Monday
    to Friday), 1.0 otherwise."""
    office = (minute_of_day >= 8 * 60) & (minute_of_day < 18 * 60) & (weekday < 5)
    return np.where(office, 2.2, 1.0)


def _fill(day: dt.date, first_day: dt.date, minutes: FloatArray) -> FloatArray:
    """Return the datastore fill ratio at `minutes` past midnight of `day`."""
    elapsed_days = (day - first_day).days + minutes / MINUTES_PER_DAY
    return FILL_START + FILL_PER_YEAR * elapsed_days / 365.0


def _clip(spec: MetricSpec, values: FloatArray) -> FloatArray:
    upper = spec.max_value if spec.max_value is not None else np.inf
    return np.clip(values, 0.0, upper)


def raw_points(series: MetricSeries, day: dt.date, first_day: dt.date, seed: int) -> pa.Table:
    """Return one point per minute of `day` for every series, as a METRIC_FILE_SCHEMA table."""
    rng = np.random.default_rng([seed, _stable_number(series.spec.name), day.toordinal(), 1])
    count = series.count
    minutes = np.arange(MINUTES_PER_DAY, dtype=np.int64)
    if series.spec.name == DATASTORE_METRIC:
        fill = _fill(day, first_day, minutes.astype(np.float64))
        values = np.outer(series.capacity_kb, fill)
        values += rng.normal(0.0, 1000.0, values.shape)
    else:
        factor = activity_factor(minutes, day.weekday())
        values = np.outer(series.levels, factor) * rng.gamma(4.0, 0.25, (count, MINUTES_PER_DAY))
    values = _clip(series.spec, values.ravel())

    midnight_ms = _midnight_ms(day)
    ts = np.tile(midnight_ms + minutes * MINUTE_MS, count)
    repeated = series.keys.take(pa.array(np.repeat(np.arange(count), MINUTES_PER_DAY)))
    columns = [repeated.column(name) for name in SERIES_COLUMNS]
    columns += [pa.array(ts).cast(pa.timestamp("ms", tz="UTC")), pa.array(values)]
    return pa.Table.from_arrays(columns, schema=METRIC_FILE_SCHEMA)


def generated_rollups(
    series: MetricSeries, day: dt.date, first_day: dt.date, seed: int
) -> tuple[pa.Table, pa.Table]:
    """Return generated hourly and daily rollups of `day`, as ROLLUP_FILE_SCHEMA tables.

    Every hour has 60 samples, and its statistics keep min <= avg <= p95 <= max. The daily
    p95 is the 95th percentile of the hourly p95s, a stand-in, because only raw points give
    the real one.
    """
    rng = np.random.default_rng([seed, _stable_number(series.spec.name), day.toordinal(), 2])
    count = series.count
    hour_minutes = np.arange(HOURS_PER_DAY, dtype=np.int64) * 60 + 30
    shape = (count, HOURS_PER_DAY)
    if series.spec.name == DATASTORE_METRIC:
        fill = _fill(day, first_day, hour_minutes.astype(np.float64))
        avg = np.outer(series.capacity_kb, fill)
        spread = np.full(shape, 2000.0)
        low, p95, high = avg - spread, avg + 0.9 * spread, avg + spread
    else:
        factor = activity_factor(hour_minutes, day.weekday())
        avg = np.outer(series.levels, factor) * rng.normal(1.0, 0.05, shape)
        low = avg * rng.uniform(0.05, 0.4, shape)
        high = avg * rng.uniform(2.0, 3.5, shape)
        p95 = avg + (high - avg) * rng.uniform(0.4, 0.7, shape)
    avg, low, p95, high = (_clip(series.spec, array) for array in (avg, low, p95, high))
    samples = np.full(shape, 60, dtype=np.int64)

    hourly_buckets = _midnight_ms(day) + np.arange(HOURS_PER_DAY, dtype=np.int64) * HOUR_MS
    hourly = _rollup_table(
        series.keys.take(pa.array(np.repeat(np.arange(count), HOURS_PER_DAY))),
        np.tile(hourly_buckets, count),
        [samples, avg, low, high, p95],
    )
    daily = _rollup_table(
        series.keys,
        np.full(count, _midnight_ms(day), dtype=np.int64),
        [
            samples.sum(axis=1),
            avg.mean(axis=1),
            low.min(axis=1),
            high.max(axis=1),
            np.percentile(p95, 95, axis=1),
        ],
    )
    return hourly, daily


def _rollup_table(
    keys: pa.Table, buckets: npt.NDArray[np.int64], statistics: list[npt.NDArray[np.generic]]
) -> pa.Table:
    """Assemble a ROLLUP_FILE_SCHEMA table from key rows, buckets and samples/avg/min/max/p95."""
    columns = [keys.column(name) for name in SERIES_COLUMNS]
    columns.append(pa.array(buckets).cast(pa.timestamp("ms", tz="UTC")))
    columns += [pa.array(np.ravel(array)) for array in statistics]
    days = np.floor_divide(buckets, DAY_MS).astype(np.int32)
    columns.append(pa.array(days).cast(pa.date32()))
    return pa.Table.from_arrays(columns, schema=ROLLUP_FILE_SCHEMA)


def _midnight_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1000
