"""A moto S3 server on 127.0.0.1 and the settings that point the lake at a bucket in it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from vscope_pipeline.lake.location import LakeLocation, S3Connection
from vscope_pipeline.secrets import Secret

REPOSITORY = Path(__file__).resolve().parents[2]
# The venv whose DuckDB (1.5.5) has httpfs from a package, made by `make httpfs-venv`.
HTTPFS_PYTHON = REPOSITORY / ".venv-httpfs" / "bin" / "python"
# Seconds to wait for moto to respond after it starts.
STARTUP_TIMEOUT = 30
ACCESS_KEY_ID = "AKIAS3LAKECANARY01"
# The '/', '+' and '=' make its URL-encoded forms differ from the raw value.
SECRET_ACCESS_KEY = "S3Secret/Canary+Lk5=LakeLeakTest0001"
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    endpoint: str

    def connection(self) -> S3Connection:
        return S3Connection(
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=Secret(SECRET_ACCESS_KEY),
        )

    def client(self):
        return self.connection().client()

    def new_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def lake(self, bucket: str, prefix: str = "vscope") -> LakeLocation:
        return LakeLocation.bucket(f"{bucket}/{prefix}", self.connection())

    def environment(self, bucket: str, prefix: str = "vscope") -> dict[str, str]:
        """Return the settings that put the lake under s3://<bucket>/<prefix>."""
        return {
            "VSCOPE_LAKE_URL": f"s3://{bucket}/{prefix}",
            "VSCOPE_S3_ENDPOINT": self.endpoint,
            "VSCOPE_S3_REGION": REGION,
            "VSCOPE_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "VSCOPE_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "VSCOPE_S3_URL_STYLE": "path",
        }

    def keys(self, bucket: str) -> dict[str, str]:
        """Return every object key of `bucket` with its ETag."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_in_httpfs_venv(
    args: list[str], environment: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the httpfs venv's Python with `args`, after `make httpfs-venv` has made the venv."""
    subprocess.run(["make", "--no-print-directory", "httpfs-venv"], cwd=REPOSITORY, check=True)
    return subprocess.run(
        [str(HTTPFS_PYTHON), *args],
        env={**environment, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """Run `python -m moto.server` on a free loopback port until the session ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto.server exited with status {process.returncode}")
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto.server did not answer on {endpoint}")
                time.sleep(0.1)
        yield MotoServer(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    return moto_server.new_bucket()
