"""Doctor checks of where the data go: the data folder, and the bucket of a lake on object storage.

The data folder contains `vscope.duckdb` in every case, and the lake unless VSCOPE_LAKE_URL
puts it in a bucket. For a bucket, the checks list the prefix, then use one small probe object
under `<prefix>/_doctor/` to test conditional PUTs and DuckDB's access. They delete the probe
when the key may delete objects, and leave it otherwise: the pipeline itself deletes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from vscope_pipeline.doctor.result import CheckResult
from vscope_pipeline.lake.location import LakeLocation, S3Connection
from vscope_pipeline.lake.rollup_store import CONFLICT_CODES, UNSUPPORTED_CODES
from vscope_pipeline.warehouse.duckdb_s3 import HttpfsUnavailableError, prepare_session
from vscope_pipeline.warehouse.lake_sql import duckdb_message

# Below this much free space in the data folder the check warns. An estimate of a safe margin,
# not a measured need: `status` shows how much the lake takes.
LOW_SPACE_BYTES = 2**30

PROBE_KEY = "_doctor/conditional-write-probe"
PROBE_BODY = b"vscope-pipeline doctor probe\n"
# An ETag that no stored object has, for the If-Match PUT that the store must reject.
STALE_ETAG = '"00000000000000000000000000000000"'

# S3 error codes of a rejected key or signature.
_KEY_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch"})

ONE_WRITER_FIX = (
    "keep one writer per rollup month: VSCOPE_WORKERS=1 and one backfill at a time, or use a "
    "store that honours If-Match and If-None-Match on PUT"
)


def check_data_folder(data_dir: Path) -> CheckResult:
    """Check that the data folder, or the folder to create it in, is writable and has space."""
    name = "data folder"
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return CheckResult.fail(
            name,
            f"{existing} is a file, so the data folder {data_dir} cannot be created",
            "set VSCOPE_DATA_DIR to a folder path",
        )
    # os.access reports a read-only file system too, even to root.
    if not os.access(existing, os.W_OK | os.X_OK):
        return CheckResult.fail(
            name,
            f"{existing} is not writable by this user",
            f"give this user write access to {existing}, or set VSCOPE_DATA_DIR to a writable "
            "folder",
        )
    state = "exists" if existing == data_dir else f"will be created in {existing}"
    free = shutil.disk_usage(existing).free
    detail = f"{data_dir} {state}, writable, {free / 2**30:.1f} GiB free"
    if free < LOW_SPACE_BYTES:
        return CheckResult.warn(
            name,
            f"{detail} (less than {LOW_SPACE_BYTES // 2**30} GiB)",
            "free some space or set VSCOPE_DATA_DIR to a larger disk before a backfill",
        )
    return CheckResult.ok(name, detail)


def check_bucket_lake(lake: LakeLocation, workers: int) -> list[CheckResult]:
    """Check the lake's bucket: the listing, then conditional PUTs and DuckDB on a probe object."""
    assert lake.s3 is not None
    client = lake.s3.client()
    bucket, _, prefix = lake.root.partition("/")
    listing = _check_listing(client, lake, bucket, prefix)
    if listing.status == "FAIL":
        skipped = (
            f"{listing.detail}. The bucket's other checks need the listing, so they did not run"
        )
        return [dataclasses.replace(listing, detail=skipped)]
    key = f"{prefix}/{PROBE_KEY}" if prefix else PROBE_KEY
    url = f"s3://{bucket}/{key}"
    results = [listing]
    try:
        with _probe_object(client, bucket, key, url, results):
            results.append(_check_conditional_writes(client, bucket, key, url, workers))
            results.append(_check_duckdb(lake.s3, url))
    except _ProbeFailed as error:
        results.append(error.result)
    return results


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _check_listing(client: Any, lake: LakeLocation, bucket: str, prefix: str) -> CheckResult:
    from botocore.exceptions import BotoCoreError, ClientError

    assert lake.s3 is not None
    name = "lake bucket"
    where = f"s3://{lake.root} at {lake.s3.endpoint}"
    try:
        response = client.list_objects_v2(
            Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1
        )
    except ClientError as error:
        code = _error_code(error)
        if code == "NoSuchBucket":
            return CheckResult.fail(
                name,
                f"bucket {bucket} not found at {lake.s3.endpoint}",
                "create the bucket (the pipeline creates none), or correct VSCOPE_LAKE_URL and "
                "VSCOPE_S3_ENDPOINT",
            )
        if code in _KEY_CODES:
            fix = "check VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY"
        elif code == "AccessDenied":
            fix = "allow the key ListBucket, GetObject and PutObject on the bucket"
        else:
            fix = "check VSCOPE_S3_ENDPOINT, VSCOPE_S3_REGION and VSCOPE_S3_URL_STYLE"
        return CheckResult.fail(name, f"listing {where} failed: {error}", fix)
    except BotoCoreError as error:
        return CheckResult.fail(
            name,
            f"listing {where} failed: {error}",
            "check VSCOPE_S3_ENDPOINT and that this machine reaches it (proxy, firewall)",
        )
    contents = "contains objects" if response.get("KeyCount") else "is empty"
    return CheckResult.ok(name, f"{where} listed, the prefix {contents}")


class _ProbeFailed(Exception):
    """The probe object could not be written, so the checks that read it did not run."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.detail)
        self.result = result


@contextmanager
def _probe_object(
    client: Any, bucket: str, key: str, url: str, results: list[CheckResult]
) -> Iterator[None]:
    """Write the probe object, run the block, then delete the probe if the key may."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY)
    except (ClientError, BotoCoreError) as error:
        raise _ProbeFailed(
            CheckResult.fail(
                "lake write",
                f"PUT {url} failed: {error}",
                "allow the key PutObject on the bucket, which every partition write needs",
            )
        ) from error
    try:
        yield
    finally:
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except ClientError as error:
            results.append(
                CheckResult.ok(
                    "probe object",
                    f"left at {url}, because the key may not delete objects "
                    f"({_error_code(error)}). The pipeline needs no DeleteObject right.",
                )
            )
        except BotoCoreError as error:
            results.append(
                CheckResult.warn(
                    "probe object",
                    f"deleting {url} failed: {error}",
                    "delete the object by hand, or leave it: no view or check reads it",
                )
            )


def _check_conditional_writes(
    client: Any, bucket: str, key: str, url: str, workers: int
) -> CheckResult:
    """Check that the store rejects a create over an existing object and a stale If-Match."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = "conditional writes"
    try:
        create = _conditional_put(client, bucket, key, IfNoneMatch="*")
        replace = _conditional_put(client, bucket, key, IfMatch=STALE_ETAG)
    except (ClientError, BotoCoreError) as error:
        return CheckResult.fail(
            name,
            f"conditional PUT {url} failed: {error}",
            "allow the key PutObject on the bucket, and check VSCOPE_S3_ENDPOINT",
        )
    if create == replace == "rejected":
        return CheckResult.ok(
            name,
            f"the store rejected PUT {url} with If-None-Match: * over the object, and with a stale "
            "If-Match, so concurrent runs keep each other's rollup days",
        )
    detail = (
        f"the store {create} If-None-Match: * and {replace} If-Match on PUT {url}, so two writers "
        "of one rollup month can drop each other's day"
    )
    # With several worker processes, one run already writes days of a month in parallel.
    if workers > 1:
        return CheckResult.fail(name, f"{detail} (VSCOPE_WORKERS={workers})", ONE_WRITER_FIX)
    return CheckResult.warn(name, detail, ONE_WRITER_FIX)


def _conditional_put(client: Any, bucket: str, key: str, **condition: str) -> str:
    """Send a PUT of the probe whose condition fails; return how the store handled it."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY, **condition)
    except ClientError as error:
        code = _error_code(error)
        if code in CONFLICT_CODES:
            return "rejected"
        if code in UNSUPPORTED_CODES:
            return "does not implement"
        raise
    return "ignored"


def _check_duckdb(connection: S3Connection, url: str) -> CheckResult:
    """Read the probe object through DuckDB's httpfs, with the secret that the warehouse uses."""
    name = "DuckDB over the bucket"
    with duckdb.connect() as con:
        try:
            prepare_session(con, connection)
        except HttpfsUnavailableError as error:
            return CheckResult.fail(
                name,
                str(error),
                "make DuckDB's httpfs extension available as the message says; until then "
                "runs store their partitions but fail at the warehouse, `sql` cannot query the "
                "metric views, and `report` cannot read the bucket",
            )
        try:
            row = con.execute("SELECT content FROM read_blob(?)", [url]).fetchone()
        except duckdb.Error as error:
            return CheckResult.fail(
                name,
                f"DuckDB {duckdb.__version__} failed to read {url}: {duckdb_message(error)}",
                "check VSCOPE_S3_ENDPOINT, VSCOPE_S3_REGION and VSCOPE_S3_URL_STYLE",
            )
    if row is None or bytes(row[0]) != PROBE_BODY:
        return CheckResult.fail(name, f"DuckDB read other bytes than were written to {url}")
    return CheckResult.ok(name, f"DuckDB {duckdb.__version__} read {url} through httpfs")
