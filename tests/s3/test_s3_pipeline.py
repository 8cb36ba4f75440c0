"""The whole pipeline with its lake in a moto bucket, compared with the same days in a folder.

Both runs ingest the same 2 days from one simulator through the real Dagster job. The product's
DuckDB (the version of uv.lock) cannot load httpfs on a machine without access to
extensions.duckdb.org, so in this process the S3 run stores every partition and then fails at
the warehouse with the httpfs error. The warehouse is then built from the bucket, and queried
over httpfs, by `httpfs_child.py` in `.venv-httpfs` (DuckDB 1.5.5 and its packaged httpfs).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.s3.conftest import SECRET_ACCESS_KEY, MotoServer, free_port, run_in_httpfs_venv
from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.status import build_status
from vscope_pipeline.warehouse import duckdb_s3

pytestmark = pytest.mark.integration

PREFIX = "vscope"
# Columns whose value is the time of the run that wrote the row, not data of the day.
RUN_TIME_COLUMNS = {"snapshot_at"}

# Compared between the local warehouse (DuckDB of uv.lock, local files) and the warehouse built
# from the bucket (DuckDB 1.5.5 over httpfs), with floats cut to 10 significant digits: the two
# add the values in another order.
QUERIES = {
    "points": "SELECT metric, CAST(day AS VARCHAR), count(*), count(DISTINCT entity), "
    "sum(value) FROM metric_points GROUP BY ALL ORDER BY ALL",
    "hourly": "SELECT metric, count(*), sum(avg), max(p95) "
    "FROM metric_hourly GROUP BY ALL ORDER BY ALL",
    "daily": "SELECT metric, CAST(day AS VARCHAR), count(*), sum(samples) "
    "FROM metric_daily GROUP BY ALL ORDER BY ALL",
    "vms": "SELECT service_name, vm_id, mo_ref, name FROM vms ORDER BY ALL",
    "hosts": "SELECT count(*) FROM hosts",
    "vm_metrics": "SELECT count(*), count(vm_id) FROM vm_metrics",
    "vm_history": "SELECT count(*) FROM vm_history",
}


@dataclass
class Runs:
    local_dir: Path
    s3_home: Path
    bucket: str
    first: dt.date
    last: dt.date
    local_outcomes: list[RunOutcome]
    s3_outcomes: list[RunOutcome]
    keys_after_first_run: dict[str, str]
    keys_after_rerun: dict[str, str]
    rerun_outcomes: list[RunOutcome]
    log_text: str
    event_text: str


@pytest.fixture(scope="module")
def runs(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    local_dir = tmp_path_factory.mktemp("local")
    s3_home = tmp_path_factory.mktemp("s3-home")
    bucket = moto_server.new_bucket()
    last = last_complete_day()
    first = last - dt.timedelta(days=1)
    records: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    with (
        running_simulator(vm_count=10, step_seconds=300) as simulator,
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        # A closed loopback port: the last resort of load_httpfs must fail here without
        # sending a request off this machine.
        monkeypatch.setattr(
            duckdb_s3, "INSTALL_HTTPFS", f"INSTALL httpfs FROM 'http://127.0.0.1:{free_port()}'"
        )

        monkeypatch.setenv("VSCOPE_DATA_DIR", str(local_dir))
        local_outcomes = ingest_range(first, last, instance=instance, days_per_run=2)

        monkeypatch.setenv("VSCOPE_DATA_DIR", str(s3_home))
        for name, value in moto_server.environment(bucket, PREFIX).items():
            monkeypatch.setenv(name, value)
        s3_outcomes = ingest_range(first, last, instance=instance, days_per_run=2)
        keys_after_first_run = moto_server.keys(bucket)
        rerun_outcomes = ingest_range(last, last, instance=instance, days_per_run=1)
        keys_after_rerun = moto_server.keys(bucket)

        event_text = "\n".join(
            dg.serialize_value(entry)
            for outcome in [*local_outcomes, *s3_outcomes, *rerun_outcomes]
            for entry in instance.all_logs(outcome.run_id)
        )
        root.removeHandler(handler)
        yield Runs(
            local_dir,
            s3_home,
            bucket,
            first,
            last,
            local_outcomes,
            s3_outcomes,
            keys_after_first_run,
            keys_after_rerun,
            rerun_outcomes,
            "\n".join(records),
            event_text,
        )


def _local_partitions(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("data.parquet")
        if path.is_file()
    }


def _s3_partitions(keys: dict[str, str]) -> set[str]:
    return {key.removeprefix(f"{PREFIX}/") for key in keys}


def _comparable(table: pa.Table) -> pa.Table:
    kept = [name for name in table.column_names if name not in RUN_TIME_COLUMNS]
    table = table.select(kept)
    return table.sort_by([(name, "ascending") for name in kept if _sortable(table, name)])


def _sortable(table: pa.Table, name: str) -> bool:
    kind = table.schema.field(name).type
    return not (pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_map(kind))


def test_local_run_succeeds(runs: Runs) -> None:
    assert [outcome.success for outcome in runs.local_outcomes] == [True]


def test_s3_run_fails_only_at_httpfs(runs: Runs) -> None:
    [outcome] = runs.s3_outcomes
    assert not outcome.success
    assert outcome.error is not None
    assert "failed to load DuckDB's httpfs extension, which reading the lake in a bucket" in (
        outcome.error
    )
    assert f"DuckDB {duckdb.__version__}" in outcome.error
    assert not (runs.s3_home / "vscope.duckdb").exists()


def test_same_partitions(runs: Runs) -> None:
    local = _local_partitions(runs.local_dir)
    stored = _s3_partitions(runs.keys_after_first_run)

    assert stored == local
    kinds = {path.split("/")[0] for path in stored}
    assert kinds == {"inventory", "metrics", "rollups"}
    days = {part for path in stored for part in path.split("/") if part.startswith("day=")}
    assert days >= {f"day={runs.first}", f"day={runs.last}"}
    # Nothing but partition objects: no temporary object, no lock.
    assert all(key.endswith("/data.parquet") for key in runs.keys_after_first_run)


def test_identical_rows(runs: Runs, moto_server: MotoServer) -> None:
    lake = moto_server.lake(runs.bucket, PREFIX)
    compared = 0
    for relative in sorted(_local_partitions(runs.local_dir)):
        local = pq.read_table(runs.local_dir / relative)
        stored = pq.read_table(lake.path(relative), filesystem=lake.filesystem)
        assert _comparable(stored).equals(_comparable(local)), relative
        compared += local.num_rows
    assert compared > 10_000


def test_rerun_is_idempotent(runs: Runs, moto_server: MotoServer) -> None:
    assert [outcome.success for outcome in runs.rerun_outcomes] == [False]
    assert runs.keys_after_rerun.keys() == runs.keys_after_first_run.keys()
    # The metric objects of the day hold the same bytes again, so their ETags match.
    metric_keys = [key for key in runs.keys_after_rerun if "/metrics/" in key]
    assert metric_keys
    assert all(runs.keys_after_rerun[key] == runs.keys_after_first_run[key] for key in metric_keys)
    uploads = moto_server.client().list_multipart_uploads(Bucket=runs.bucket)
    assert uploads.get("Uploads", []) == []


@pytest.fixture(scope="module")
def httpfs_result(runs: Runs, moto_server: MotoServer) -> dict:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VSCOPE_")},
        **moto_server.environment(runs.bucket, PREFIX),
        "VSCOPE_DATA_DIR": str(runs.s3_home),
    }
    child = run_in_httpfs_venv(
        [
            str(Path(__file__).with_name("httpfs_child.py")),
            json.dumps(QUERIES),
            runs.first.isoformat(),
            runs.last.isoformat(),
        ],
        environment,
        timeout=180,
    )
    assert child.returncode == 0, child.stderr
    assert SECRET_ACCESS_KEY not in child.stdout + child.stderr
    return json.loads(child.stdout)


def test_duckdb_reads_bucket_like_folder(runs: Runs, httpfs_result: dict) -> None:
    with duckdb.connect(str(runs.local_dir / "vscope.duckdb"), read_only=True) as con:
        local = {
            name: [list(row) for row in con.execute(sql).fetchall()]
            for name, sql in QUERIES.items()
        }
    local = json.loads(json.dumps(local, default=str))

    assert httpfs_result["duckdb"] == "1.5.5"
    assert httpfs_result["results"]["points"]
    for name in QUERIES:
        assert _rounded(httpfs_result["results"][name]) == _rounded(local[name]), name
    points = sum(row[2] for row in local["points"])
    assert httpfs_result["sql_command"] == [0, f"points\r\n{points}\r\n"]
    # The report reads the rollup views over httpfs with the same session set-up.
    assert httpfs_result["report_bytes"] > 10_000


def _rounded(rows: list[list]) -> list[list]:
    return [
        [float(f"{value:.10g}") if isinstance(value, float) else value for value in row]
        for row in rows
    ]


def test_views_name_bucket_without_secret(runs: Runs, httpfs_result: dict) -> None:
    views = "\n".join(httpfs_result["views"])
    assert f"s3://{runs.bucket}/{PREFIX}/metrics/metric=*/day=*/*.parquet" in views
    assert f"s3://{runs.bucket}/{PREFIX}/rollups/grain=hour/" in views
    assert httpfs_result["secrets_in_new_session"] == 0
    for form in _encoded_forms(SECRET_ACCESS_KEY):
        assert form not in views


def test_secret_in_no_output(runs: Runs) -> None:
    database = (runs.s3_home / "vscope.duckdb").read_bytes()
    outputs = {
        "DuckDB file": database.decode("latin-1"),
        "logs": runs.log_text,
        "Dagster event records": runs.event_text,
        "run errors": "\n".join(str(outcome.error) for outcome in runs.s3_outcomes),
    }
    files = [path for path in runs.s3_home.rglob("*") if path.is_file()]
    outputs |= {str(path): path.read_bytes().decode("latin-1") for path in files}
    assert runs.event_text
    for name, text in outputs.items():
        for form in _encoded_forms(SECRET_ACCESS_KEY):
            assert form not in text, name


def _encoded_forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        json.dumps(secret)[1:-1],
    }


def test_status_reads_bucket_like_folder(runs: Runs, moto_server: MotoServer) -> None:
    now = dt.datetime.now(dt.UTC)
    options = {"start_date": runs.first, "freshness_hour": 6, "now": now}
    local = build_status(runs.local_dir, runs.local_dir / "no-home", **options)
    in_bucket = build_status(
        runs.s3_home,
        runs.s3_home / "no-home",
        lake=moto_server.lake(runs.bucket, PREFIX),
        **options,
    )

    assert in_bucket["lake"] == f"s3://{runs.bucket}/{PREFIX}"
    assert len(in_bucket["metrics"]) == 20
    assert in_bucket["metrics"] == local["metrics"]
    assert in_bucket["inventory"] == local["inventory"]
    assert in_bucket["freshness"] == local["freshness"]
    assert in_bucket["lake_bytes"] == sum(
        size
        for key, size in _object_sizes(moto_server, runs.bucket).items()
        if key.split("/")[1] in ("metrics", "inventory", "rollups")
    )


def _object_sizes(moto_server: MotoServer, bucket: str) -> dict[str, int]:
    pages = moto_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}
