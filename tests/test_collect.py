"""Collecting one day of metrics into lake partitions, with a fake OpenTSDB client."""

import datetime as dt
import threading
import time
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec
from vscope_pipeline.collect import DatacenterTarget, MetricDayReport, collect_day
from vscope_pipeline.lake.layout import ROLLUP_GRAINS, metric_partition_dir, rollup_month_dir
from vscope_pipeline.lake.schema import METRIC_FILE_SCHEMA
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.opentsdb.client import MetricDayResult, MetricDayStats
from vscope_pipeline.opentsdb.errors import OpenTSDBServerError
from vscope_pipeline.opentsdb.results import DecodeStats

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
CPU = SPECS["vscope.vm.cpu.usage.perc"]
MEM = SPECS["vscope.vm.mem.usage.perc"]
READY = SPECS["vscope.vm.cpu.ready"]
NET_TX = SPECS["vscope.host.net.tx"]
SERVICE = "pcc-203-0-113-10"
OTHER_SERVICE = "pcc-198-51-100-7"
DC1 = f"{SERVICE}_datacenter1"
DC2 = f"{SERVICE}_datacenter2"
OTHER_DC = f"{OTHER_SERVICE}_datacenter5"
DAY = dt.date(2026, 11, 19)
MIDNIGHT = dt.datetime(2026, 11, 19, tzinfo=dt.UTC)
FAILURE_MESSAGE = "POST http://127.0.0.1:4242/api/query: HTTP 503 after 4 attempts"


def _rows(
    kind: str, datacenter: str, entities: list[str], nic: str | None = None, service=SERVICE
) -> pa.Table:
    rows = [
        {
            "entity_kind": kind,
            "service_name": service,
            "datacenter": datacenter,
            "entity": entity,
            "nic": nic,
            "ts": MIDNIGHT + dt.timedelta(minutes=minute),
            "value": float(index * 10 + minute),
        }
        for index, entity in enumerate(entities)
        for minute in range(2)
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_FILE_SCHEMA)


class FakeOpenTSDB:
    """A `MetricDayFetcher` that serves prepared tables instead of querying OpenTSDB.

    Each call costs one request and reports one dropped point. `failing` names the metrics
    whose fetch raises, and `delay` (seconds) keeps each call in flight that long.
    """

    def __init__(
        self,
        tables: dict[tuple[str, str], pa.Table],
        failing: frozenset[str] = frozenset(),
        delay: float = 0.0,
    ) -> None:
        self.tables = tables
        self.failing = failing
        self.delay = delay
        self.calls: list[tuple[str, str, str, dt.date]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.expected: dict[tuple[str, str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def fetch_metric_day(
        self,
        spec: MetricSpec,
        service_name: str,
        datacenter_label: str,
        day: dt.date,
        expected_entities: Collection[str] = (),
    ) -> MetricDayResult:
        with self._lock:
            self.calls.append((spec.name, service_name, datacenter_label, day))
            self.expected[(spec.name, datacenter_label)] = frozenset(expected_entities)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if spec.name in self.failing:
                raise OpenTSDBServerError(FAILURE_MESSAGE, status=503)
            empty = METRIC_FILE_SCHEMA.empty_table()
            table = self.tables.get((spec.name, datacenter_label), empty)
            identities = zip(table["entity"].to_pylist(), table["nic"].to_pylist(), strict=True)
            series = len(set(identities))
            stats = MetricDayStats(
                requests=1,
                decoded=DecodeStats(series=series, points=table.num_rows + 1, dropped_nan=1),
                bytes_received=1000,
                no_such_name=False,
            )
            return MetricDayResult(table, stats)
        finally:
            with self._lock:
                self.in_flight -= 1


TARGETS = [
    DatacenterTarget(
        SERVICE,
        DC1,
        {
            "vm": frozenset({"vm-101", "vm-102"}),
            "host": frozenset({"host-1.example", "host-2.example"}),
        },
    ),
    DatacenterTarget(SERVICE, DC2, {"vm": frozenset({"vm-201"})}),
]


def _read(data_dir: Path, spec: MetricSpec) -> pa.Table:
    return pq.read_table(metric_partition_dir(data_dir, spec.name, DAY) / "data.parquet")


def _file_size(data_dir: Path, spec: MetricSpec) -> int:
    return (metric_partition_dir(data_dir, spec.name, DAY) / "data.parquet").stat().st_size


def _rollup_size(data_dir: Path, spec: MetricSpec) -> int:
    folders = [rollup_month_dir(data_dir, grain, spec.name, DAY) for grain in ROLLUP_GRAINS]
    return sum((folder / "data.parquet").stat().st_size for folder in folders)


def _has_rollups(data_dir: Path, spec: MetricSpec) -> bool:
    folders = [rollup_month_dir(data_dir, grain, spec.name, DAY) for grain in ROLLUP_GRAINS]
    return any((folder / "data.parquet").exists() for folder in folders)


def test_partitions_written_per_metric(tmp_path):
    tables = {
        (CPU.name, DC1): _rows("vm", DC1, ["vm-101", "vm-102"]),
        (CPU.name, DC2): _rows("vm", DC2, ["vm-201"]),
        (MEM.name, DC1): _rows("vm", DC1, ["vm-101", "vm-102"]),
        (MEM.name, DC2): _rows("vm", DC2, ["vm-201"]),
    }
    client = FakeOpenTSDB(tables)

    reports = collect_day([CPU, MEM], DAY, TARGETS, lambda _: client, tmp_path)

    assert reports == [
        MetricDayReport(
            metric=CPU.name,
            day=DAY,
            rows=6,
            entities_expected=3,
            entities_received=3,
            requests=2,
            decoded=DecodeStats(series=3, points=8, dropped_nan=2),
            bytes_received=2000,
            file_bytes=_file_size(tmp_path, CPU),
            rollup_file_bytes=_rollup_size(tmp_path, CPU),
            missing_entities=[],
        ),
        MetricDayReport(
            metric=MEM.name,
            day=DAY,
            rows=6,
            entities_expected=3,
            entities_received=3,
            requests=2,
            decoded=DecodeStats(series=3, points=8, dropped_nan=2),
            bytes_received=2000,
            file_bytes=_file_size(tmp_path, MEM),
            rollup_file_bytes=_rollup_size(tmp_path, MEM),
            missing_entities=[],
        ),
    ]
    expected_cpu = pa.concat_tables([tables[(CPU.name, DC1)], tables[(CPU.name, DC2)]])
    assert _read(tmp_path, CPU).equals(expected_cpu)
    assert _read(tmp_path, CPU).schema.equals(METRIC_FILE_SCHEMA)
    assert sorted(client.calls) == [
        (CPU.name, SERVICE, DC1, DAY),
        (CPU.name, SERVICE, DC2, DAY),
        (MEM.name, SERVICE, DC1, DAY),
        (MEM.name, SERVICE, DC2, DAY),
    ]
    cpu_folder = metric_partition_dir(tmp_path, CPU.name, DAY)
    assert sorted(path.name for path in cpu_folder.iterdir()) == ["data.parquet"]


def test_missing_entities_reported_by_name(tmp_path):
    tables = {
        (CPU.name, DC1): _rows("vm", DC1, ["vm-101"]),
        (NET_TX.name, DC1): _rows("host", DC1, ["host-1.example"], nic="vmnic0"),
    }
    client = FakeOpenTSDB(tables)

    reports = collect_day([CPU, NET_TX], DAY, TARGETS, lambda _: client, tmp_path)

    assert [report.missing_entities for report in reports] == [
        [f"{DC1}/vm-102", f"{DC2}/vm-201"],
        [f"{DC1}/host-2.example"],
    ]
    assert [report.rows for report in reports] == [2, 2]
    assert [(r.entities_expected, r.entities_received) for r in reports] == [(3, 1), (2, 1)]
    # Each datacenter's fetch receives its own entities of the metric's kind.
    assert client.expected[(CPU.name, DC1)] == frozenset({"vm-101", "vm-102"})
    assert client.expected[(CPU.name, DC2)] == frozenset({"vm-201"})
    assert client.expected[(NET_TX.name, DC1)] == frozenset({"host-1.example", "host-2.example"})


def test_empty_response_keeps_stored_partition(tmp_path, caplog):
    stored = _rows("vm", DC1, ["vm-101"])
    write_partition(stored, metric_partition_dir(tmp_path, CPU.name, DAY))
    client = FakeOpenTSDB({})

    reports = collect_day([CPU], DAY, TARGETS, lambda _: client, tmp_path)

    assert reports[0].kept_stored is True
    assert reports[0].rows == 0
    assert reports[0].missing_entities == [f"{DC1}/vm-101", f"{DC1}/vm-102", f"{DC2}/vm-201"]
    assert _read(tmp_path, CPU).equals(stored)
    # Nothing was written: no rollup either.
    assert not _has_rollups(tmp_path, CPU)
    assert (
        "2026-11-19 vscope.vm.cpu.usage.perc: no series received although 3 entities were "
        "expected; the stored partition is kept. Re-run the day once OpenTSDB answers again."
    ) in caplog.messages


def test_empty_response_replaces_unexpected_partition(tmp_path):
    stale = _rows("vm", DC1, ["vm-stale"])
    write_partition(stale, metric_partition_dir(tmp_path, CPU.name, DAY))
    client = FakeOpenTSDB({})
    targets = [DatacenterTarget(SERVICE, DC1, {})]

    reports = collect_day([CPU], DAY, targets, lambda _: client, tmp_path)

    assert reports[0].kept_stored is False
    assert _read(tmp_path, CPU).num_rows == 0
    assert _read(tmp_path, CPU).schema.equals(METRIC_FILE_SCHEMA)


def test_empty_response_written_when_nothing_stored(tmp_path):
    client = FakeOpenTSDB({})

    reports = collect_day([CPU], DAY, TARGETS, lambda _: client, tmp_path)

    assert reports[0].kept_stored is False
    assert reports[0].entities_received == 0
    assert _read(tmp_path, CPU).num_rows == 0


def test_shared_datastore_known_in_every_datacenter(tmp_path):
    used = SPECS["vscope.filer.datastore.diskspace.used"]
    tables = {
        (used.name, DC1): _rows("filer", DC1, ["ds-1", "ds-global", "ds-other"]),
        (used.name, DC2): _rows("filer", DC2, ["ds-global"]),
    }
    targets = [
        DatacenterTarget(
            SERVICE, DC1, {"filer": frozenset({"ds-1"})}, {"filer": frozenset({"ds-global"})}
        ),
        DatacenterTarget(SERVICE, DC2, {}, {"filer": frozenset({"ds-global"})}),
    ]
    client = FakeOpenTSDB(tables)

    (report,) = collect_day([used], DAY, targets, lambda _: client, tmp_path)

    assert (report.entities_expected, report.entities_received) == (1, 1)
    assert report.missing_entities == []
    assert report.unexpected_entities == [f"{DC1}/ds-other"]


def test_client_chosen_per_service(tmp_path):
    clients = {
        SERVICE: FakeOpenTSDB({(CPU.name, DC1): _rows("vm", DC1, ["vm-101"])}),
        OTHER_SERVICE: FakeOpenTSDB(
            {(CPU.name, OTHER_DC): _rows("vm", OTHER_DC, ["vm-501"], service=OTHER_SERVICE)}
        ),
    }
    targets = [DatacenterTarget(SERVICE, DC1), DatacenterTarget(OTHER_SERVICE, OTHER_DC)]

    reports = collect_day([CPU], DAY, targets, clients.__getitem__, tmp_path)

    assert clients[SERVICE].calls == [(CPU.name, SERVICE, DC1, DAY)]
    assert clients[OTHER_SERVICE].calls == [(CPU.name, OTHER_SERVICE, OTHER_DC, DAY)]
    assert reports[0].rows == 4
    assert _read(tmp_path, CPU)["service_name"].to_pylist() == [SERVICE] * 2 + [OTHER_SERVICE] * 2


def test_failed_fetch_keeps_previous_partition(tmp_path):
    previous = _rows("vm", DC1, ["vm-previous"])
    mem_folder = metric_partition_dir(tmp_path, MEM.name, DAY)
    write_partition(previous, mem_folder)
    before = (mem_folder / "data.parquet").read_bytes()
    client = FakeOpenTSDB(
        {(CPU.name, DC1): _rows("vm", DC1, ["vm-101"])}, failing=frozenset({MEM.name})
    )
    done: list[str] = []

    with pytest.raises(OpenTSDBServerError) as raised:
        collect_day(
            [CPU, MEM, READY],
            DAY,
            TARGETS,
            lambda _: client,
            tmp_path,
            on_metric_done=lambda report: done.append(report.metric),
        )

    assert str(raised.value) == FAILURE_MESSAGE
    assert (mem_folder / "data.parquet").read_bytes() == before
    assert sorted(path.name for path in mem_folder.iterdir()) == ["data.parquet"]
    # Partitions are written in catalogue order, so the metric before the failure landed and
    # the one after it was not written.
    assert done == [CPU.name]
    assert _read(tmp_path, CPU).num_rows == 2
    assert not metric_partition_dir(tmp_path, READY.name, DAY).exists()


def test_requests_bounded_by_max_workers(tmp_path):
    client = FakeOpenTSDB({}, delay=0.02)

    reports = collect_day(
        [CPU, MEM, READY], DAY, TARGETS, lambda _: client, tmp_path, max_workers=2
    )

    assert len(client.calls) == 6
    assert client.max_in_flight == 2
    assert [report.metric for report in reports] == [CPU.name, MEM.name, READY.name]
