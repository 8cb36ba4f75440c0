"""Partition objects on S3: written in one step, and a killed upload keeps the old object."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.s3.conftest import REPOSITORY, MotoServer
from vscope_pipeline.lake.writer import write_partition

FOLDER = "vscope/metrics/metric=vscope.vm.cpu.usage/day=2026-11-01"


def _table(values: np.ndarray) -> pa.Table:
    return pa.table({"entity": [f"vm-{i % 50}" for i in range(len(values))], "value": values})


def test_write_replaces_object(moto_server: MotoServer, bucket: str) -> None:
    lake = moto_server.lake(bucket)
    folder = f"{bucket}/{FOLDER}"
    write_partition(_table(np.arange(3.0)), folder, filesystem=lake.filesystem)
    new_table = _table(np.arange(5.0))

    written = write_partition(new_table, folder, filesystem=lake.filesystem)

    assert written.path == f"{folder}/data.parquet"
    assert written.rows == 5
    assert moto_server.keys(bucket).keys() == {f"{FOLDER}/data.parquet"}
    stored = pq.read_table(written.path, filesystem=lake.filesystem)
    assert stored.equals(new_table)
    assert written.bytes_written == lake.filesystem.get_file_info(written.path).size


# Writes a partition of about 6.5 MB (random doubles do not compress), more than the 5 MB
# first part of pyarrow's S3 uploads, so that the upload is a multipart one. The process kills
# itself once the Parquet bytes are written but before the output stream is closed, which is
# when the upload would complete.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from tests.s3.conftest import MotoServer
    from tests.s3.test_s3_writer import _table
    from vscope_pipeline.lake import writer

    endpoint, bucket, folder = sys.argv[1:]
    lake = MotoServer(endpoint).lake(bucket)
    original = writer._write_parquet
    def write_then_die(table, sink):
        original(table, sink)
        sink.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    writer._write_parquet = write_then_die
    values = np.random.default_rng(7).random(800_000)
    writer.write_partition(_table(values), f"{bucket}/{folder}", filesystem=lake.filesystem)
    """
)


def test_killed_upload_keeps_old_object(moto_server: MotoServer, bucket: str) -> None:
    lake = moto_server.lake(bucket)
    old_table = _table(np.arange(3.0))
    write_partition(old_table, f"{bucket}/{FOLDER}", filesystem=lake.filesystem)
    old_etag = moto_server.keys(bucket)[f"{FOLDER}/data.parquet"]

    child = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, moto_server.endpoint, bucket, FOLDER],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert child.returncode == -9, child.stderr
    assert moto_server.keys(bucket) == {f"{FOLDER}/data.parquet": old_etag}
    stored = pq.read_table(f"{bucket}/{FOLDER}/data.parquet", filesystem=lake.filesystem)
    assert stored.equals(old_table)
    # The parts already sent stay in an upload that was never completed, invisible to readers.
    uploads = moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [f"{FOLDER}/data.parquet"]
