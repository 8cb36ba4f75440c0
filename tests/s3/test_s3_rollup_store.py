"""Rollup month objects on S3: conditional writes keep every day when writers race."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.s3.conftest import REPOSITORY, MotoServer
from vscope_pipeline.lake import rollup_store
from vscope_pipeline.lake.rollup_store import RollupConflictError, write_rollup_day
from vscope_pipeline.lake.schema import ROLLUP_FILE_SCHEMA

METRIC = "vscope.vm.cpu.usage"
MONTH_KEY = "vscope/rollups/grain=day/metric=vscope.vm.cpu.usage/month=2026-11/data.parquet"


def _rollups(day: dt.date, entities: list[str]) -> pa.Table:
    bucket = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    count = len(entities)
    return pa.table(
        {
            "entity_kind": ["vm"] * count,
            "service_name": ["pcc-1"] * count,
            "datacenter": ["dc1"] * count,
            "entity": entities,
            "nic": [None] * count,
            "bucket": [bucket] * count,
            "samples": [10] * count,
            "avg": [float(day.day)] * count,
            "min": [0.0] * count,
            "max": [100.0] * count,
            "p95": [90.0] * count,
            "day": [day] * count,
        },
        schema=ROLLUP_FILE_SCHEMA,
    )


def _stored_days(moto_server: MotoServer, bucket: str) -> list[int]:
    body = moto_server.client().get_object(Bucket=bucket, Key=MONTH_KEY)["Body"].read()
    days = pq.read_table(pa.BufferReader(body)).column("day").to_pylist()
    return sorted({day.day for day in days})


def _competing_put(moto_server: MotoServer, bucket: str, day: dt.date, times: int):
    """Return a botocore hook that stores `day` in the month object before the next PUTs.

    Each competing write stores other rows, because rewriting the same bytes keeps the ETag.
    """
    remaining = [times]

    def before_put(params, **_kwargs):
        if remaining[0] == 0:
            return
        remaining[0] -= 1
        entity = f"vm-{100 + remaining[0]}"
        write_rollup_day(moto_server.lake(bucket), "day", METRIC, day, _rollups(day, [entity]))

    return before_put


def _hook_puts(monkeypatch: pytest.MonkeyPatch, hook) -> None:
    """Call `hook` before each PUT of the writer under test, not of the competing writer."""
    clients: list = []

    def first_client_hooked(connection):
        client = connection.client()
        if not clients:
            client.meta.events.register("before-call.s3.PutObject", hook)
            clients.append(client)
        return client

    monkeypatch.setattr(rollup_store, "_client", first_client_hooked)


def test_conflict_is_retried_and_keeps_both_days(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = moto_server.lake(bucket)
    write_rollup_day(
        lake, "day", METRIC, dt.date(2026, 11, 1), _rollups(dt.date(2026, 11, 1), ["vm-1"])
    )
    hook = _competing_put(moto_server, bucket, dt.date(2026, 11, 2), times=1)
    _hook_puts(monkeypatch, hook)

    written = write_rollup_day(
        lake, "day", METRIC, dt.date(2026, 11, 3), _rollups(dt.date(2026, 11, 3), ["vm-1", "vm-2"])
    )

    assert written.attempts == 2
    assert written.rows == 4
    assert written.path == f"s3://{bucket}/{MONTH_KEY}"
    assert _stored_days(moto_server, bucket) == [1, 2, 3]


def test_endless_conflicts_raise_naming_object(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = moto_server.lake(bucket)
    day = dt.date(2026, 11, 5)
    monkeypatch.setattr(rollup_store, "CONDITIONAL_WRITE_ATTEMPTS", 3)
    hook = _competing_put(moto_server, bucket, dt.date(2026, 11, 6), times=100)
    _hook_puts(monkeypatch, hook)

    with pytest.raises(RollupConflictError) as raised:
        write_rollup_day(lake, "day", METRIC, day, _rollups(day, ["vm-1"]))

    assert str(raised.value) == (
        f"failed to write the rollup object s3://{bucket}/{MONTH_KEY}: other writers changed "
        "it before each of 3 conditional writes. Run the day 2026-11-05 again once the other "
        "runs that write this month have finished."
    )
    assert _stored_days(moto_server, bucket) == [6]


# Writes the days given on the command line into one month, each PUT delayed so that the two
# processes' read-modify-write steps overlap, and prints the attempts of each write.
_WRITER = textwrap.dedent(
    """
    import datetime as dt, json, sys, time
    from tests.s3.conftest import MotoServer
    from tests.s3.test_s3_rollup_store import METRIC, _rollups
    from vscope_pipeline.lake import rollup_store
    from vscope_pipeline.lake.rollup_store import write_rollup_day

    endpoint, bucket, start_at, days = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    lake = MotoServer(endpoint).lake(bucket)
    client = rollup_store._client(lake.s3)
    client.meta.events.register("before-call.s3.PutObject", lambda **kwargs: time.sleep(0.05))
    time.sleep(max(0.0, start_at - time.time()))
    attempts = []
    for text in days:
        day = dt.date.fromisoformat(text)
        written = write_rollup_day(lake, "day", METRIC, day, _rollups(day, ["vm-1"]))
        attempts.append(written.attempts)
    print(json.dumps(attempts))
    """
)


def test_two_processes_keep_every_day(moto_server: MotoServer, bucket: str) -> None:
    days = [dt.date(2026, 11, day) for day in range(1, 21)]
    start_at = time.time() + 3
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                moto_server.endpoint,
                bucket,
                str(start_at),
                *(day.isoformat() for day in days[offset::2]),
            ],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 1)
    ]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0]
    attempts = [count for output in outputs for count in json.loads(output)]
    assert len(attempts) == 20
    # Each write after the first lost one conditional PUT at least once, then kept its day.
    retries = sum(count - 1 for count in attempts)
    assert retries > 0, attempts
    assert _stored_days(moto_server, bucket) == list(range(1, 21))
