"""An OpenTSDB failure of one service during a day spares the other services of that day."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_collect import CPU, DAY, FAILURE_MESSAGE, MEM, READY, FakeOpenTSDB, _rows
from test_collect_services import DC_A, DC_B, SERVICE_A, SERVICE_B, TARGET_A, TARGET_B

from vscope_pipeline.catalog import MetricSpec
from vscope_pipeline.collect import MetricsFailedError, ServiceFailure, collect_day
from vscope_pipeline.lake.layout import metric_partition_dir
from vscope_pipeline.lake.writer import write_partition

CATALOG = [CPU, MEM, READY]


def _tables(datacenter: str, service: str) -> dict[tuple[str, str], pa.Table]:
    return {
        (spec.name, datacenter): _rows("vm", datacenter, ["vm-1"], service=service)
        for spec in CATALOG
    }


def _services(data_dir: Path, spec: MetricSpec) -> list[str]:
    path = metric_partition_dir(data_dir, spec.name, DAY) / "data.parquet"
    return pq.read_table(path).column("service_name").to_pylist()


def test_failed_service_spares_others(tmp_path):
    stored_b = _rows("vm", DC_B, ["vm-old"], service=SERVICE_B)
    for spec in (MEM, READY):
        write_partition(stored_b, metric_partition_dir(tmp_path, spec.name, DAY))
    clients = {
        SERVICE_A: FakeOpenTSDB(_tables(DC_A, SERVICE_A)),
        SERVICE_B: FakeOpenTSDB(_tables(DC_B, SERVICE_B), failing=frozenset({MEM.name})),
    }
    done: list[str] = []

    with pytest.raises(MetricsFailedError) as raised:
        collect_day(
            CATALOG,
            DAY,
            [TARGET_A, TARGET_B],
            clients.__getitem__,
            tmp_path,
            max_workers=1,
            on_metric_done=lambda report: done.append(report.metric),
        )

    assert str(raised.value) == (
        "1 of 2 dedicatedCloud service(s) failed, and the data of the other services are "
        "stored. Fix the cause, then run the same days again to fill the failed services: "
        f"{SERVICE_B} (OpenTSDB): {FAILURE_MESSAGE}"
    )
    assert raised.value.failures == [ServiceFailure(SERVICE_B, "OpenTSDB", FAILURE_MESSAGE)]
    assert (
        [report.metric for report in raised.value.reports]
        == done
        == [
            CPU.name,
            MEM.name,
            READY.name,
        ]
    )
    # B's requests after its failure are skipped: one thread sends them in catalogue order.
    assert [call[0] for call in clients[SERVICE_B].calls] == [CPU.name, MEM.name]
    assert _services(tmp_path, CPU) == [SERVICE_A] * 2 + [SERVICE_B] * 2
    # A's new rows and B's stored rows: the failed service loses nothing.
    for spec in (MEM, READY):
        assert _services(tmp_path, spec) == [SERVICE_A] * 2 + [SERVICE_B] * 2
        rows = pq.read_table(metric_partition_dir(tmp_path, spec.name, DAY) / "data.parquet")
        assert sorted(set(rows.column("entity").to_pylist())) == ["vm-1", "vm-old"]
    assert raised.value.reports[1].kept_other_service_rows == 2


def test_every_service_failed_stops_day(tmp_path):
    failing = frozenset({MEM.name})
    clients = {
        SERVICE_A: FakeOpenTSDB(_tables(DC_A, SERVICE_A), failing=failing),
        SERVICE_B: FakeOpenTSDB(_tables(DC_B, SERVICE_B), failing=failing),
    }

    with pytest.raises(MetricsFailedError) as raised:
        collect_day(CATALOG, DAY, [TARGET_A, TARGET_B], clients.__getitem__, tmp_path)

    # The CPU partition was written before both services failed, so the message counts it.
    assert str(raised.value).startswith(
        "all 2 dedicatedCloud service(s) failed after 1 metric partition(s) were stored, "
        "which are kept. Fix the cause, then run the same days again: "
    )
    assert [failure.service_name for failure in raised.value.failures] == [SERVICE_A, SERVICE_B]
    assert [report.metric for report in raised.value.reports] == [CPU.name]
    assert not metric_partition_dir(tmp_path, MEM.name, DAY).exists()
    assert not metric_partition_dir(tmp_path, READY.name, DAY).exists()
