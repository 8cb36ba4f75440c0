"""BI readers in other processes while a Dagster run publishes a new warehouse.

Two reader processes query `vscope.duckdb` read-only in a tight loop, one holding a single
connection, one reconnecting every round, while the ingestion job writes a new day and
republishes the database with one more metric in its catalogue. Neither side blocks the other,
and every round reads a whole state: the old or the new catalogue, and each metric partition
either absent or with all its rows.
"""

import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from bi_reader import run_round

from vscope_pipeline.ingest import RunOutcome, ingest_range, last_complete_day
from vscope_pipeline.simulator.runner import running_simulator

pytestmark = pytest.mark.integration

READER = Path(__file__).with_name("bi_reader.py")
BUILTIN_METRIC_COUNT = 20
EXTRA_METRIC = "vscope.vm.mem.tps"
READER_TIMEOUT_S = 30


@dataclass
class Reader:
    """A reader process and the file where it appends one JSON line per round."""

    process: subprocess.Popen[str]
    rounds_file: Path

    def rounds(self) -> list[dict]:
        lines = self.rounds_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for_rounds(self, count: int) -> None:
        """Wait until the reader has finished `count` rounds in all."""
        deadline = time.monotonic() + READER_TIMEOUT_S
        while len(self.rounds()) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"reader stopped before round {count}: {self.stop()}")
            time.sleep(0.05)

    def stop(self) -> str:
        """Close the reader's stdin, wait for it to end and return its stderr."""
        _, err = self.process.communicate(timeout=READER_TIMEOUT_S)
        return err


def _start_reader(database: Path, mode: str, rounds_file: Path) -> Reader:
    process = subprocess.Popen(
        [sys.executable, str(READER), str(database), mode, str(rounds_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # Wait for the first round, so the connection is open before the run starts.
    if process.stdout.readline().strip() != "ready":
        raise AssertionError(f"{mode} reader ended before its first round: {process.stderr}")
    return Reader(process, rounds_file)


def _current_state(database: Path) -> dict:
    with duckdb.connect(str(database), read_only=True) as con:
        return run_round(con)


@dataclass(frozen=True)
class ConcurrentRun:
    """What the two runs and the two readers did. A state is a reader round (see bi_reader)."""

    runs: list[RunOutcome]
    before: dict
    after: dict
    rounds: dict[str, list[dict]]
    stderr: dict[str, str]
    exits: dict[str, int | None]
    second_day: dt.date
    data_dir: Path


@pytest.fixture(scope="module")
def concurrent_run(tmp_path_factory: pytest.TempPathFactory) -> ConcurrentRun:
    """Ingest one day, then run the next day's ingestion while two readers query."""
    data_dir = tmp_path_factory.mktemp("data")
    database = data_dir / "vscope.duckdb"
    second_day = last_complete_day()
    first_day = second_day - dt.timedelta(days=1)
    with (
        running_simulator(vm_count=12) as simulator,
        pytest.MonkeyPatch.context() as monkeypatch,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))
        first = ingest_range(first_day, first_day, instance=instance, days_per_run=1)
        before = _current_state(database)

        readers = {
            mode: _start_reader(database, mode, data_dir.parent / f"{mode}.jsonl")
            for mode in ("hold", "reconnect")
        }
        try:
            # The new run adds a metric to the catalogue, so the two database files differ.
            monkeypatch.setenv("VSCOPE_EXTRA_METRICS", f"{EXTRA_METRIC}:MB")
            second = ingest_range(second_day, second_day, instance=instance, days_per_run=1)
            after = _current_state(database)
            # Two more rounds each, so that the last one started after the publication.
            for reader in readers.values():
                reader.wait_for_rounds(len(reader.rounds()) + 2)
        finally:
            stderr = {mode: reader.stop() for mode, reader in readers.items()}
        exits = {mode: reader.process.returncode for mode, reader in readers.items()}
    return ConcurrentRun(
        runs=first + second,
        before=before,
        after=after,
        rounds={mode: reader.rounds() for mode, reader in readers.items()},
        stderr=stderr,
        exits=exits,
        second_day=second_day,
        data_dir=data_dir,
    )


def test_both_runs_and_both_readers_succeed(concurrent_run):
    assert [outcome.success for outcome in concurrent_run.runs] == [True, True]
    assert concurrent_run.exits == {"hold": 0, "reconnect": 0}
    assert concurrent_run.stderr == {"hold": "", "reconnect": ""}
    assert all(len(rounds) >= 2 for rounds in concurrent_run.rounds.values())


def test_states_before_and_after(concurrent_run):
    before, after = concurrent_run.before, concurrent_run.after
    assert before["metrics"] == BUILTIN_METRIC_COUNT
    assert after["metrics"] == BUILTIN_METRIC_COUNT + 1
    second_day = concurrent_run.second_day.isoformat()
    new_partitions = {key for key in after["partitions"] if key.endswith(second_day)}
    assert len(new_partitions) == BUILTIN_METRIC_COUNT + 1
    assert f"{EXTRA_METRIC}/{second_day}" in new_partitions
    assert set(before["partitions"]) == set(after["partitions"]) - new_partitions


def test_held_connection_keeps_the_old_database(concurrent_run):
    rounds = concurrent_run.rounds["hold"]
    assert {round_["metrics"] for round_ in rounds} == {BUILTIN_METRIC_COUNT}
    # The metric points are a view over the lake: the old file still reads the new partitions.
    assert rounds[-1]["partitions"] == concurrent_run.after["partitions"]


def test_new_connections_switch_once_to_the_new_database(concurrent_run):
    seen = [round_["metrics"] for round_ in concurrent_run.rounds["reconnect"]]
    switch = seen.index(BUILTIN_METRIC_COUNT + 1)
    assert set(seen[:switch]) == {BUILTIN_METRIC_COUNT}
    assert set(seen[switch:]) == {BUILTIN_METRIC_COUNT + 1}


def test_every_partition_seen_whole(concurrent_run):
    final = concurrent_run.after["partitions"]
    for mode, rounds in concurrent_run.rounds.items():
        for round_ in rounds:
            partial = {
                key: points for key, points in round_["partitions"].items() if points != final[key]
            }
            assert partial == {}, f"{mode} reader saw partial partitions"


def test_no_build_file_left(concurrent_run):
    names = sorted(path.name for path in concurrent_run.data_dir.iterdir())
    assert names == ["inventory", "metrics", "rollups", "vscope.duckdb"]
