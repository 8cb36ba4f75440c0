"""Fetch, decode and write the metric-days of a run in several worker processes.

Decoding a response (orjson, then pyarrow) and writing its partition keep a core busy, and
threads of one process share one core for that Python work. With VSCOPE_WORKERS above 1, each
metric-day of a day is handed whole to one of that many processes, which fetches every
datacenter, decodes, writes the partition and its rollups, and returns only its small report.

- The processes are forked from a `forkserver` process, which starts without the parent's
  threads: `fork` would copy Dagster's and the HTTP clients' threads and locks in an unknown
  state.
- The settings and each service's OpenTSDB URL and token reach a worker as arguments of its
  start, pickled through the pipe that `multiprocessing` opens to it: never a file, the
  command line or the environment. `Secret` refuses the standard pickle, so it is registered
  with multiprocessing's own pickler only, and stays masked in every repr.
- Each worker builds its clients with the shared limits of `vscope_pipeline.rate_limit`, so
  VSCOPE_OPENTSDB_MAX_CONCURRENCY and VSCOPE_OPENTSDB_RATE_LIMIT bound all processes together.
- At most one metric-day per worker is queued at a time, so the metric-days queued later leave
  out a service as soon as one of its requests has failed.

VSCOPE_WORKERS is applied here, inside each metric asset, and not as the `max_concurrent` of
Dagster's `multiprocess_executor` (see `defs.jobs`): the VM asset has 13 of the 20 metrics
and most of the points, so one process per asset step would leave one process with most of
the work.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import pickle
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from types import TracebackType

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.collect import (
    OPENTSDB_STAGE,
    DatacenterTarget,
    DayFailures,
    MetricDayReport,
    MetricsFailedError,
    ServiceFailure,
    collect_day,
)
from vscope_pipeline.opentsdb.client import OpenTSDBClient
from vscope_pipeline.opentsdb.errors import OpenTSDBError
from vscope_pipeline.secrets import Secret
from vscope_pipeline.service_clients import (
    ServiceEndpoint,
    build_opentsdb_client,
    build_retrying_ovh_client,
    request_metrics_token,
)
from vscope_pipeline.settings import Settings

log = logging.getLogger(__name__)


def _reduce_secret(secret: Secret) -> tuple[type[Secret], tuple[str]]:
    return Secret, (secret.reveal(),)


# Only multiprocessing's pickler, which writes to the pipes of its child processes, carries a
# Secret. The standard pickle, which Dagster's IO managers would write to disk, still raises.
ForkingPickler.register(Secret, _reduce_secret)


class WorkerCrashedError(RuntimeError):
    """A worker process exited (killed, or out of memory) before it returned its metric-day."""


@dataclass(frozen=True)
class WorkerSetup:
    """The start arguments of a run's worker processes: settings and each service's endpoint."""

    settings: Settings
    endpoints: Mapping[str, ServiceEndpoint]


@dataclass
class MetricDayOutcome:
    """The result of one metric-day in a worker: its report, or the error that stopped it.

    With `failures`, `error` is the one failed service's own error. Without, it failed the day.
    """

    reports: list[MetricDayReport] = field(default_factory=list)
    failures: list[ServiceFailure] = field(default_factory=list)
    error: BaseException | None = None


# The state of a worker process, set once by `_start_worker`.
_setup: WorkerSetup | None = None
_clients: dict[str, OpenTSDBClient] = {}


def _start_worker(setup: WorkerSetup) -> None:
    global _setup
    _setup = setup
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(levelname)s %(message)s")


def _worker_client(service_name: str) -> OpenTSDBClient:
    """Return this process's client of a service, built from the endpoint the run passed."""
    assert _setup is not None, "the worker process was started without its setup"
    setup = _setup
    if service_name not in _clients:
        endpoint = setup.endpoints[service_name]
        refresh_token: Callable[[], Secret] | None = None
        if not setup.settings.opentsdb_token:

            def refresh_token() -> Secret:
                client = build_retrying_ovh_client(setup.settings.ovh)
                return request_metrics_token(client, setup.settings, service_name).token

        _clients[service_name] = build_opentsdb_client(
            setup.settings, endpoint.url, endpoint.token, refresh_token
        )
    return _clients[service_name]


def _portable(error: BaseException) -> BaseException:
    """Return `error` if it survives a pickle round trip, else a RuntimeError with its message."""
    try:
        pickle.loads(ForkingPickler.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def collect_metric_day(
    spec: MetricSpec, day: dt.date, targets: Sequence[DatacenterTarget]
) -> MetricDayOutcome:
    """Fetch and write one metric-day in a worker process; return errors instead of raising.

    Every Exception is returned in the outcome. A BaseException such as KeyboardInterrupt
    still propagates, and the pool then reports it for this metric-day.
    """
    assert _setup is not None, "the worker process was started without its setup"
    settings = _setup.settings
    try:
        reports = collect_day(
            [spec],
            day,
            targets,
            _worker_client,
            settings.lake,
            max_workers=settings.opentsdb_tuning.max_concurrency,
            modes=settings.file_modes,
        )
    except MetricsFailedError as error:
        return MetricDayOutcome(error.reports, error.failures)
    except OpenTSDBError as error:
        services = {target.service_name for target in targets}
        if len(services) != 1:
            return MetricDayOutcome(error=_portable(error))
        # With one service, collect_day raises that service's own error as it failed.
        failure = ServiceFailure(services.pop(), OPENTSDB_STAGE, str(error))
        return MetricDayOutcome(failures=[failure], error=_portable(error))
    except Exception as error:
        return MetricDayOutcome(error=_portable(error))
    return MetricDayOutcome(reports)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Return the forkserver context, whose server imports the pipeline once per run process.

    Every worker imports the parent's main module again before it starts (`python -m` names
    it by module, other programs by path). Preloaded, it and its imports are forked from the
    server instead, in milliseconds rather than seconds. pandas is preloaded too, because
    pyarrow imports it on the first `pa.array` call of every process.
    """
    preload = ["__main__", __name__, "pandas"]
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None:
        preload.append(main_spec.name)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


class MetricWorkerPool:
    """`workers` processes that fetch, decode and write metric-days, for one run."""

    def __init__(self, workers: int, setup: WorkerSetup) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers!r} is invalid: expected 1 or more processes")
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_worker_context(),
            initializer=_start_worker,
            initargs=(setup,),
        )

    def __enter__(self) -> MetricWorkerPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers once their current metric-day is done; queued ones are dropped."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def collect_day(
        self,
        catalog: Sequence[MetricSpec],
        day: dt.date,
        targets: Sequence[DatacenterTarget],
        *,
        on_metric_done: Callable[[MetricDayReport], None] | None = None,
    ) -> list[MetricDayReport]:
        """Do what `collect.collect_day` does, one metric-day per worker process at a time.

        The reports are returned in catalogue order, and `on_metric_done` gets each one as its
        metric-day finishes. Failures are those of `collect.collect_day`, and a worker that
        exits before it returns raises WorkerCrashedError naming the metric-days in progress.
        """
        failures = DayFailures(targets)
        queued = deque(catalog)
        in_flight: dict[Future[MetricDayOutcome], MetricSpec] = {}
        reports: dict[str, MetricDayReport] = {}
        try:
            while queued or in_flight:
                while queued and len(in_flight) < self.workers:
                    spec = queued.popleft()
                    future = self._executor.submit(
                        collect_metric_day, spec, day, failures.alive(targets)
                    )
                    in_flight[future] = spec
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = self._outcome(future, day, in_flight)
                    del in_flight[future]
                    if outcome.error is not None and not outcome.failures:
                        raise outcome.error
                    for failure in outcome.failures:
                        failures.add(failure, outcome.error)
                    for report in outcome.reports:
                        reports[report.metric] = report
                        if on_metric_done is not None:
                            on_metric_done(report)
                    failures.raise_if_all_failed(self._ordered(reports, catalog))
        finally:
            for future in in_flight:
                future.cancel()
        ordered = self._ordered(reports, catalog)
        failures.raise_if_any(ordered)
        return ordered

    @staticmethod
    def _ordered(
        reports: Mapping[str, MetricDayReport], catalog: Sequence[MetricSpec]
    ) -> list[MetricDayReport]:
        return [reports[spec.name] for spec in catalog if spec.name in reports]

    @staticmethod
    def _outcome(
        future: Future[MetricDayOutcome],
        day: dt.date,
        in_flight: Mapping[Future[MetricDayOutcome], MetricSpec],
    ) -> MetricDayOutcome:
        try:
            return future.result()
        except BrokenProcessPool as error:
            started = ", ".join(f"{day} {spec.name}" for spec in in_flight.values())
            raise WorkerCrashedError(
                "a metric worker process exited before it finished (killed, or out of memory) "
                f"while these metric-days were in progress: {started}. Their partitions are "
                "unchanged; run the day again, with a lower VSCOPE_WORKERS if memory ran out"
            ) from error
