"""Fetch every metric of one UTC day for a set of datacenters and write its lake partitions.

A metric-day partition contains the series of every selected datacenter, so it is written once,
after all its datacenters are fetched: either the whole day lands or the previous file stays.
Re-running a day rewrites the same partitions with the same content, which makes it safe.

The partition also contains the series of every dedicatedCloud service, so a write replaces
only the rows of the services fetched this time and keeps the stored rows of the others. A
service whose token or inventory failed in this run is not fetched, so its earlier rows stay
and the day's file never loses them. A service dropped from the selection keeps its stored
rows too: they are still true for that day.

Services are isolated within a day too: when the OpenTSDB requests of one service fail after
their retries, that service's later requests of the day are skipped and its stored rows are
kept, while the other services' partitions are written. `collect_day` then raises
`MetricsFailedError`, which names the failed services and carries the reports of the day.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.lake.layout import ROLLUP_GRAINS, file_key, metric_partition_key
from vscope_pipeline.lake.location import LakeLike, LakeLocation, as_lake
from vscope_pipeline.lake.rollup_store import write_rollup_day
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.staging import PRIVATE_MODES, FileModes
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.opentsdb.client import MetricDayResult
from vscope_pipeline.opentsdb.errors import OpenTSDBError
from vscope_pipeline.opentsdb.results import DecodeStats
from vscope_pipeline.ovh.errors import OvhRequestError, OvhResponseError
from vscope_pipeline.ovh.token import TokenError
from vscope_pipeline.rollups import rollup_table

log = logging.getLogger(__name__)

# Requests in flight at once against one OpenTSDB endpoint.
DEFAULT_MAX_WORKERS = 4


class MetricDayFetcher(Protocol):
    """The part of `OpenTSDBClient` that `collect_day` calls, from several threads at once."""

    def fetch_metric_day(
        self,
        spec: MetricSpec,
        service_name: str,
        datacenter_label: str,
        day: dt.date,
        expected_entities: Collection[str] = (),
    ) -> MetricDayResult: ...


@dataclass(frozen=True)
class ServiceFailure:
    """A dedicatedCloud service whose data a run could not fetch.

    `stage` is where it failed (`inventory` or `metrics token`), `reason` the error message.
    """

    service_name: str
    stage: str
    reason: str


class ServicesFailedError(RuntimeError):
    """Some services failed; raised after the data of the other services are stored."""


# The stage of a ServiceFailure whose OpenTSDB requests failed after their retries.
OPENTSDB_STAGE = "OpenTSDB"


def services_failed_message(
    failures: Sequence[ServiceFailure], service_count: int, stored_partitions: int = 0
) -> str:
    """Return one message that names each failed service, where it failed and why.

    `service_count` is the number of services of the run, failed ones included. A service may
    fail at several stages, and is counted once. `stored_partitions` counts the metric-days
    written before every service failed, which are kept.
    """
    listed = "; ".join(
        f"{failure.service_name} ({failure.stage}): {failure.reason}" for failure in failures
    )
    failed_count = len({failure.service_name for failure in failures})
    if failed_count >= service_count and stored_partitions:
        return (
            f"all {failed_count} dedicatedCloud service(s) failed after {stored_partitions} "
            f"metric partition(s) were stored, which are kept. Fix the cause, then run the same "
            f"days again: {listed}"
        )
    if failed_count >= service_count:
        return (
            f"all {failed_count} dedicatedCloud service(s) failed, so no new data are stored. "
            f"Fix the cause, then run the same days again: {listed}"
        )
    return (
        f"{failed_count} of {service_count} dedicatedCloud service(s) failed, and the data of "
        f"the other services are stored. Fix the cause, then run the same days again to fill "
        f"the failed services: {listed}"
    )


class MetricsFailedError(ServicesFailedError):
    """The OpenTSDB requests of some or all services failed during a day.

    `reports` are the metric-days written for the other services, and `failures` the failed
    services with the first error of each.
    """

    def __init__(
        self, message: str, failures: Sequence[ServiceFailure], reports: Sequence[MetricDayReport]
    ) -> None:
        super().__init__(message)
        self.failures = list(failures)
        self.reports = list(reports)


class DayFailures:
    """The services of one day whose OpenTSDB requests failed, each with its first failure.

    A pool thread whose request failed marks its service at once, so that the requests of that
    service not yet sent are skipped. The collecting thread adds the failure itself when it
    reaches that metric, so failures are recorded in catalogue order.
    """

    def __init__(self, targets: Sequence[DatacenterTarget]) -> None:
        self.services = {target.service_name for target in targets}
        self._failures: dict[str, ServiceFailure] = {}
        self._errors: list[BaseException] = []
        self._marked: set[str] = set()
        self._lock = threading.Lock()

    @property
    def failures(self) -> list[ServiceFailure]:
        with self._lock:
            return sorted(self._failures.values(), key=lambda failure: failure.service_name)

    def add(self, failure: ServiceFailure, error: BaseException | None = None) -> None:
        """Record a service's failure; a later failure of the same service adds nothing."""
        with self._lock:
            if failure.service_name in self._failures:
                return
            self._failures[failure.service_name] = failure
            if error is not None:
                self._errors.append(error)
        log.error(
            "the OpenTSDB requests of dedicatedCloud service %s failed, so its other metrics "
            "of the day are not fetched and its stored rows are kept: %s",
            failure.service_name,
            failure.reason,
        )

    def mark(self, service_name: str) -> None:
        """Skip the requests of `service_name` sent from now on."""
        with self._lock:
            self._marked.add(service_name)

    def has_failed(self, service_name: str) -> bool:
        with self._lock:
            return service_name in self._failures or service_name in self._marked

    def alive(self, targets: Sequence[DatacenterTarget]) -> list[DatacenterTarget]:
        """Return the targets whose service has not failed."""
        with self._lock:
            return [target for target in targets if target.service_name not in self._failures]

    def raise_if_all_failed(self, reports: Sequence[MetricDayReport]) -> None:
        """Raise once every service failed: with one service, its own error as it was raised."""
        with self._lock:
            if not self.services or not self.services <= set(self._failures):
                return
            errors = list(self._errors)
        if len(self.services) == 1 and len(errors) == 1:
            raise errors[0]
        self.raise_if_any(reports)

    def raise_if_any(self, reports: Sequence[MetricDayReport]) -> None:
        failures = self.failures
        if failures:
            message = services_failed_message(failures, len(self.services), len(reports))
            raise MetricsFailedError(message, failures, reports)


def open_service_clients(
    service_names: Collection[str], client_for: Callable[[str], MetricDayFetcher]
) -> tuple[dict[str, MetricDayFetcher], list[ServiceFailure]]:
    """Return the OpenTSDB client of each service that has one, and the services without.

    A service whose token request fails (TokenError, or an APIv6 error or odd response) is
    returned as a `metrics token` failure, so the other services are still fetched.
    """
    clients: dict[str, MetricDayFetcher] = {}
    failures: list[ServiceFailure] = []
    for service_name in sorted(service_names):
        try:
            clients[service_name] = client_for(service_name)
        except (TokenError, OvhRequestError, OvhResponseError) as error:
            log.error(
                "no OpenTSDB client for dedicatedCloud service %s, so its metrics are not "
                "fetched and its stored rows are kept: %s",
                service_name,
                error,
            )
            failures.append(ServiceFailure(service_name, "metrics token", str(error)))
    return clients, failures


@dataclass(frozen=True)
class DatacenterTarget:
    """A datacenter whose series are fetched, with the entities its inventory lists.

    `shared_entities` are listed without a datacenter (global datastores): a series of theirs
    under this datacenter is neither expected nor unexpected.
    """

    service_name: str
    datacenter_label: str
    expected_entities: dict[str, frozenset[str]] = field(default_factory=dict)
    shared_entities: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class MetricDayReport:
    metric: str
    day: dt.date
    rows: int = 0
    # Entities the inventory lists for this metric's kind, and how many of them sent a series.
    entities_expected: int = 0
    entities_received: int = 0
    requests: int = 0
    retries: int = 0
    splits: int = 0
    fallback_requests: int = 0
    # The decoding counts of every datacenter together: series, points and drops by reason.
    decoded: DecodeStats = field(default_factory=DecodeStats)
    # Datacenters for which the server knew neither the metric nor the datacenter tag value.
    no_such_name: int = 0
    bytes_received: int = 0
    file_bytes: int = 0
    # Bytes of the hourly and daily month files of rollups rewritten with this metric-day.
    rollup_file_bytes: int = 0
    missing_entities: list[str] = field(default_factory=list)
    # Entities that sent a series but are not in the inventory snapshot: deleted since, or
    # listed by APIv6 but not found on GET.
    unexpected_entities: list[str] = field(default_factory=list)
    # True when the response had no series although entities were expected, so the partition
    # already stored with rows was kept instead of being replaced by an empty one.
    kept_stored: bool = False
    # Rows of services not fetched this time, kept from the stored partition.
    kept_other_service_rows: int = 0

    @property
    def series(self) -> int:
        return self.decoded.series

    @property
    def points(self) -> int:
        return self.decoded.points

    @property
    def dropped_points(self) -> int:
        """Return the points received but not stored, whatever the reason."""
        return self.decoded.dropped_points


# The DecodeStats fields that count dropped points or odd values, as run metadata keys.
DROP_COUNTERS = (
    "dropped_nan",
    "dropped_infinite",
    "dropped_out_of_range",
    "dropped_out_of_window",
    "duplicates",
    "dropped_unidentified",
    "unidentified_series",
    "numeric_strings",
)


def drop_metadata(reports: Sequence[MetricDayReport]) -> dict[str, int]:
    """Return each drop counter summed over `reports`, for a run's metadata."""
    total = sum((report.decoded for report in reports), DecodeStats())
    return {name: getattr(total, name) for name in DROP_COUNTERS}


def _series_keys(table: pa.Table) -> set[str]:
    if table.num_rows == 0:
        return set()
    pairs = table.select(["datacenter", "entity"]).group_by(["datacenter", "entity"]).aggregate([])
    return {
        f"{dc}/{entity}"
        for dc, entity in zip(
            pairs.column("datacenter").to_pylist(), pairs.column("entity").to_pylist(), strict=True
        )
    }


def _fetch_unless_failed(
    client_for: Callable[[str], MetricDayFetcher],
    spec: MetricSpec,
    day: dt.date,
    target: DatacenterTarget,
    failures: DayFailures,
) -> MetricDayResult | None:
    """Fetch one metric of one datacenter, or return None when its service already failed."""
    if failures.has_failed(target.service_name):
        return None
    try:
        return client_for(target.service_name).fetch_metric_day(
            spec,
            target.service_name,
            target.datacenter_label,
            day,
            # Needed only when the server does not group by entity and each is asked for.
            target.expected_entities.get(spec.entity_kind, frozenset()),
        )
    except OpenTSDBError:
        failures.mark(target.service_name)
        raise


def _submit(
    spec: MetricSpec,
    day: dt.date,
    targets: Sequence[DatacenterTarget],
    client_for: Callable[[str], MetricDayFetcher],
    executor: ThreadPoolExecutor,
    failures: DayFailures,
) -> list[Future[MetricDayResult | None]]:
    return [
        executor.submit(_fetch_unless_failed, client_for, spec, day, target, failures)
        for target in targets
    ]


def _fetched_services(
    spec: MetricSpec,
    targets: Sequence[DatacenterTarget],
    futures: Sequence[Future[MetricDayResult | None]],
    failures: DayFailures,
) -> tuple[list[DatacenterTarget], list[MetricDayResult]]:
    """Wait for one metric's requests; return the targets and results of the intact services.

    A service is intact when every one of its datacenters was fetched. The stored rows of
    the others are kept whole, because a partition replaces the rows of a service at once.
    """
    results: list[tuple[DatacenterTarget, MetricDayResult | None]] = []
    for target, future in zip(targets, futures, strict=True):
        try:
            results.append((target, future.result()))
        except OpenTSDBError as error:
            failure = ServiceFailure(target.service_name, OPENTSDB_STAGE, str(error))
            failures.add(failure, error)
            results.append((target, None))
    broken = {target.service_name for target, result in results if result is None}
    kept = [(target, result) for target, result in results if target.service_name not in broken]
    return [target for target, _ in kept], [result for _, result in kept if result is not None]


def _write_metric_day(
    spec: MetricSpec,
    day: dt.date,
    targets: Sequence[DatacenterTarget],
    results: Sequence[MetricDayResult],
    data_dir: LakeLike,
    modes: FileModes,
) -> MetricDayReport:
    tables = [result.table for result in results]
    table = pa.concat_tables(tables) if tables else METRIC_FILE_SCHEMA.empty_table()
    report = MetricDayReport(metric=spec.name, day=day, rows=table.num_rows)
    for result in results:
        report.requests += result.stats.requests
        report.retries += result.stats.retries
        report.splits += result.stats.splits
        report.fallback_requests += result.stats.fallback_requests
        report.decoded += result.stats.decoded
        report.no_such_name += result.stats.no_such_name
        report.bytes_received += result.stats.bytes_received

    received = _series_keys(table)
    expected_keys: set[str] = set()
    shared_keys: set[str] = set()
    for target in targets:
        expected = target.expected_entities.get(spec.entity_kind, frozenset())
        report.entities_expected += len(expected)
        expected_keys.update(f"{target.datacenter_label}/{entity}" for entity in expected)
        shared = target.shared_entities.get(spec.entity_kind, frozenset())
        shared_keys.update(f"{target.datacenter_label}/{entity}" for entity in shared)
    report.entities_received = len(received & expected_keys)
    report.missing_entities = sorted(expected_keys - received)
    report.unexpected_entities = sorted(received - expected_keys - shared_keys)

    lake = as_lake(data_dir)
    folder = lake.path(metric_partition_key(spec.name, day))
    if table.num_rows == 0 and expected_keys and _stored_rows(lake, folder) > 0:
        # An empty response for a day already stored is an outage of the source, not a day
        # without data, so the stored points stay and the report records it.
        report.kept_stored = True
        log.warning(
            "%s %s: no series received although %d entities were expected; the stored "
            "partition is kept. Re-run the day once OpenTSDB answers again.",
            day.isoformat(),
            spec.name,
            len(expected_keys),
        )
        return report

    kept = _rows_of_other_services(lake, folder, {target.service_name for target in targets})
    if kept.num_rows:
        report.kept_other_service_rows = kept.num_rows
        # Sorted by service, so a file reads the same whichever services this run fetched.
        table = pa.concat_tables([table, kept.cast(table.schema)]).sort_by("service_name")
    written = write_partition(table, folder, filesystem=lake.filesystem, modes=modes)
    report.file_bytes = written.bytes_written

    # Written after the points, so a rollup never describes points that are not in the lake.
    for grain in ROLLUP_GRAINS:
        rollup = rollup_table(table, grain)
        report.rollup_file_bytes += write_rollup_day(
            lake, grain, spec.name, day, rollup, modes=modes
        ).bytes_written
    _log_report(report)
    return report


def _rows_of_other_services(lake: LakeLocation, folder: str, fetched: Collection[str]) -> pa.Table:
    """Return the stored rows of `folder` whose service is not in `fetched`, or an empty table."""
    path = file_key(folder)
    if not lake.is_file(path):
        return METRIC_FILE_SCHEMA.empty_table()
    try:
        # The service column alone is cheap to read, and usually shows there is nothing to keep.
        services = pq.read_table(path, columns=["service_name"], filesystem=lake.filesystem).column(
            "service_name"
        )
        others = set(services.unique().to_pylist()) - set(fetched)
        if not others:
            return METRIC_FILE_SCHEMA.empty_table()
        return pq.read_table(
            path, filters=[("service_name", "in", sorted(others))], filesystem=lake.filesystem
        )
    except FileNotFoundError:
        return METRIC_FILE_SCHEMA.empty_table()
    except (OSError, pa.ArrowInvalid) as error:
        # A file that cannot be read has nothing worth keeping, and the write replaces it.
        log.warning("stored partition %s cannot be read, so no row of it is kept: %s", path, error)
        return METRIC_FILE_SCHEMA.empty_table()


def _stored_rows(lake: LakeLocation, folder: str) -> int:
    """Return the rows of the partition stored in `folder`, 0 when there is none."""
    try:
        return pq.read_metadata(file_key(folder), filesystem=lake.filesystem).num_rows
    except (OSError, pa.ArrowInvalid):
        # No file, or one that cannot be read: nothing worth keeping.
        return 0


def _log_report(report: MetricDayReport) -> None:
    """Warn about a metric-day whose values were dropped as invalid or whose metric is unknown.

    The run log already has one line per metric-day with every count, so days without such a
    problem add nothing here.
    """
    decoded = report.decoded
    invalid = decoded.dropped_infinite + decoded.dropped_out_of_range + decoded.dropped_unidentified
    if not invalid and not report.no_such_name:
        return
    log.warning(
        "%s %s: %d rows from %d series; dropped or odd values: %s%s",
        report.day.isoformat(),
        report.metric,
        report.rows,
        decoded.series,
        decoded.describe_drops(),
        (
            f"; {report.no_such_name} datacenter(s) where the server knows no such metric "
            "or datacenter"
            if report.no_such_name
            else ""
        ),
    )


def collect_day(
    catalog: Sequence[MetricSpec],
    day: dt.date,
    targets: Sequence[DatacenterTarget],
    client_for: Callable[[str], MetricDayFetcher],
    data_dir: LakeLike,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    on_metric_done: Callable[[MetricDayReport], None] | None = None,
    modes: FileModes = PRIVATE_MODES,
) -> list[MetricDayReport]:
    """Fetch and write every metric of `catalog` for one day; return one report per metric.

    Every (metric, datacenter) request is queued at once on a bounded pool, and each metric's
    partition is written as soon as its own requests are done.

    An OpenTSDB error of a service, after its retries, fails that service for the rest of the
    day: its stored rows are kept and its later requests skipped, the other services' partitions
    are written, and `MetricsFailedError` is raised at the end. When every service has failed,
    the day stops before the failing metric's partition is touched, and with one service its
    own error is raised. Any other error stops the day in the same way.
    """
    reports: list[MetricDayReport] = []
    failures = DayFailures(targets)
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="opentsdb") as pool:
        pending = deque(
            (spec, _submit(spec, day, targets, client_for, pool, failures)) for spec in catalog
        )
        try:
            while pending:
                # Popping drops the queue's reference to a written metric's tables, so a day
                # holds in memory only the metrics fetched but not yet written.
                spec, futures = pending.popleft()
                fetched, results = _fetched_services(spec, targets, futures, failures)
                del futures
                failures.raise_if_all_failed(reports)
                report = _write_metric_day(spec, day, fetched, results, data_dir, modes)
                del results
                reports.append(report)
                if on_metric_done is not None:
                    on_metric_done(report)
        except BaseException:
            for _, futures in pending:
                for future in futures:
                    future.cancel()
            raise
    failures.raise_if_any(reports)
    return reports
