"""`vscope-pipeline doctor` on a lake in a moto bucket: listing, conditional PUTs and DuckDB."""

from __future__ import annotations

import os
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.s3.conftest import SECRET_ACCESS_KEY, MotoServer, free_port, run_in_httpfs_venv
from vscope_pipeline.cli import main
from vscope_pipeline.doctor.lake_checks import PROBE_KEY, check_bucket_lake
from vscope_pipeline.lake.location import LakeLocation
from vscope_pipeline.simulator.runner import running_simulator
from vscope_pipeline.warehouse import duckdb_s3

PREFIX = "vscope"
CONDITIONAL_HEADERS = frozenset({"if-match", "if-none-match"})


@pytest.fixture
def no_httpfs_download(monkeypatch: pytest.MonkeyPatch) -> None:
    # A closed loopback port: the last resort of load_httpfs must fail here without sending a
    # request off this machine.
    install = f"INSTALL httpfs FROM 'http://127.0.0.1:{free_port()}'"
    monkeypatch.setattr(duckdb_s3, "INSTALL_HTTPFS", install)


def test_doctor_checks_bucket_lake(
    moto_server: MotoServer,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_httpfs_download: None,
) -> None:
    for name in list(os.environ):
        if name.startswith(("OVH_", "VSCOPE_")):
            monkeypatch.delenv(name)
    with running_simulator(vm_count=3) as simulator:
        for name, value in {
            **simulator.environment(),
            **moto_server.environment(bucket, PREFIX),
            "VSCOPE_DATA_DIR": str(tmp_path),
        }.items():
            monkeypatch.setenv(name, value)
        code = main(["doctor"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    probe = f"s3://{bucket}/{PREFIX}/{PROBE_KEY}"

    assert SECRET_ACCESS_KEY not in captured.out + captured.err
    assert lines[-6].startswith(f"OK    data folder: {tmp_path} exists, writable, ")
    assert lines[-5] == (
        f"OK    lake bucket: s3://{bucket}/{PREFIX} at {moto_server.endpoint} listed, the "
        "prefix is empty"
    )
    assert lines[-4] == (
        f"OK    conditional writes: the store rejected PUT {probe} with If-None-Match: * over "
        "the object, and with a stale If-Match, so concurrent runs keep each other's rollup days"
    )
    # The product's DuckDB finds no httpfs on this machine, which cannot download it.
    assert lines[-3].startswith(
        "FAIL  DuckDB over the bucket: failed to load DuckDB's httpfs extension, which reading "
        "the lake in a bucket needs"
    )
    assert lines[-2].startswith("      fix: make DuckDB's httpfs extension available")
    assert lines[-1] == "doctor: 9 OK, 0 warning(s), 1 failure(s)"
    assert code == 1
    # The probe object is deleted, and the lake's prefix is left empty.
    assert moto_server.keys(bucket) == {}


def test_doctor_missing_bucket(moto_server: MotoServer) -> None:
    lake = moto_server.lake("no-such-bucket", PREFIX)

    results = check_bucket_lake(lake, workers=1)

    assert [result.lines() for result in results] == [
        [
            f"FAIL  lake bucket: bucket no-such-bucket not found at {moto_server.endpoint}. The "
            "bucket's other checks need the listing, so they did not run",
            "      fix: create the bucket (the pipeline creates none), or correct "
            "VSCOPE_LAKE_URL and VSCOPE_S3_ENDPOINT",
        ]
    ]


@pytest.fixture
def unconditional_store(moto_server: MotoServer) -> Iterator[str]:
    """Yield the endpoint of a proxy to moto that drops If-Match and If-None-Match."""

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in CONDITIONAL_HEADERS | {"host"}
            }
            response = requests.request(
                self.command,
                f"{moto_server.endpoint}{self.path}",
                headers=headers,
                data=body,
                timeout=30,
            )
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("workers", "status"), [(1, "WARN"), (2, "FAIL")])
def test_doctor_store_ignoring_conditions(
    moto_server: MotoServer,
    bucket: str,
    unconditional_store: str,
    no_httpfs_download: None,
    workers: int,
    status: str,
) -> None:
    connection = moto_server.connection()
    proxied = type(connection)(
        endpoint=unconditional_store,
        region=connection.region,
        access_key_id=connection.access_key_id,
        secret_access_key=connection.secret_access_key,
    )
    lake = LakeLocation.bucket(f"{bucket}/{PREFIX}", proxied)

    results = check_bucket_lake(lake, workers=workers)

    probe = f"s3://{bucket}/{PREFIX}/{PROBE_KEY}"
    conditional = results[1]
    assert conditional.status == status
    assert conditional.detail.startswith(
        f"the store ignored If-None-Match: * and ignored If-Match on PUT {probe}, so two "
        "writers of one rollup month can drop each other's day"
    )
    assert conditional.fix == (
        "keep one writer per rollup month: VSCOPE_WORKERS=1 and one backfill at a time, or use "
        "a store that honours If-Match and If-None-Match on PUT"
    )
    assert moto_server.keys(bucket) == {}


def test_doctor_duckdb_reads_bucket_with_httpfs(moto_server: MotoServer, bucket: str) -> None:
    script = textwrap.dedent(
        """
        from vscope_pipeline.doctor.lake_checks import check_bucket_lake
        from vscope_pipeline.settings import lake_location, load_lake

        data_dir, bucket = load_lake()
        for result in check_bucket_lake(lake_location(data_dir, bucket), workers=1):
            print(result.lines()[0])
        """
    )
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VSCOPE_")},
        **moto_server.environment(bucket, PREFIX),
    }

    child = run_in_httpfs_venv(["-c", script], environment, timeout=120)

    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "OK    lake bucket",
        "OK    conditional writes",
        "OK    DuckDB over the bucket",
    ]
    assert lines[2] == (
        f"OK    DuckDB over the bucket: DuckDB 1.5.5 read s3://{bucket}/{PREFIX}/{PROBE_KEY} "
        "through httpfs"
    )
