"""Metric worker processes: a killed worker fails the day with a message, without a hang."""

import datetime as dt
import multiprocessing
import os
import pickle
import signal
import threading
from multiprocessing.reduction import ForkingPickler

import pytest

from bench.day import datacenter_targets
from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.metric_workers import MetricWorkerPool, WorkerCrashedError, WorkerSetup
from vscope_pipeline.secrets import Secret
from vscope_pipeline.service_clients import ServiceEndpoint
from vscope_pipeline.settings import load_settings
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.simulator.tsdb_faults import InjectedFault

pytestmark = pytest.mark.timeout(60)

CPU = next(spec for spec in BUILTIN_METRICS if spec.name == "vscope.vm.cpu.usage.perc")
# Long enough to kill the worker while its request waits for the response.
QUERY_DELAY_S = 5.0
ARRIVAL_TIMEOUT_S = 30.0


def _pool_processes() -> list[multiprocessing.Process]:
    return [
        process
        for process in multiprocessing.active_children()
        if process.name.startswith("ForkServerProcess")
    ]


def test_killed_worker_names_metric_day(tmp_path):
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with running_simulator(vm_count=6, step_seconds=600) as simulator:
        server = simulator.opentsdb_server.server
        arrived = threading.Event()

        def hold_query(body: bytes) -> InjectedFault:
            arrived.set()
            return InjectedFault(delay_s=QUERY_DELAY_S)

        server.faults.request_hook = hold_query
        settings = load_settings({**simulator.environment(), "VSCOPE_DATA_DIR": str(tmp_path)})
        token = Secret(simulator.credentials.metrics_token)
        endpoints = {simulator.fleet.service_name: ServiceEndpoint(simulator.opentsdb_url, token)}
        errors: list[BaseException] = []

        with MetricWorkerPool(1, WorkerSetup(settings, endpoints)) as pool:

            def collect() -> None:
                try:
                    pool.collect_day([CPU], day, datacenter_targets(simulator.fleet))
                except BaseException as error:
                    errors.append(error)

            collector = threading.Thread(target=collect)
            collector.start()
            assert arrived.wait(ARRIVAL_TIMEOUT_S)
            (worker,) = _pool_processes()
            os.kill(worker.pid, signal.SIGKILL)
            collector.join(timeout=ARRIVAL_TIMEOUT_S)

    assert not collector.is_alive()
    (error,) = errors
    assert isinstance(error, WorkerCrashedError)
    assert str(error) == (
        "a metric worker process exited before it finished (killed, or out of memory) while "
        f"these metric-days were in progress: {day} {CPU.name}. Their partitions are "
        "unchanged; run the day again, with a lower VSCOPE_WORKERS if memory ran out"
    )
    assert not (tmp_path / "metrics").exists()


def test_setup_keeps_token_secret(tmp_path):
    token = "token-value-of-the-test"
    settings = load_settings(
        {
            "OVH_APPLICATION_KEY": "ak",
            "OVH_APPLICATION_SECRET": "secret-of-the-test",
            "OVH_CONSUMER_KEY": "consumer-key-of-the-test",
            "VSCOPE_DATA_DIR": str(tmp_path),
        }
    )
    setup = WorkerSetup(settings, {"pcc-1": ServiceEndpoint("http://127.0.0.1:1", Secret(token))})

    shown = repr(setup)
    assert token not in shown
    assert "secret-of-the-test" not in shown
    assert "consumer-key-of-the-test" not in shown
    # Only multiprocessing's pickler, which writes to a worker's pipe, carries a Secret.
    with pytest.raises(TypeError, match="a Secret cannot be pickled"):
        pickle.dumps(setup)
    copied = pickle.loads(ForkingPickler.dumps(setup))
    assert copied.endpoints["pcc-1"].token.reveal() == token
