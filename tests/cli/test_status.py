"""`vscope-pipeline status` on an empty folder, after an ingest, and with a deleted partition."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import IngestedLake
from vscope_pipeline.cli import main

SERVICE = "pcc-203-0-113-10"
REPOSITORY = Path(__file__).resolve().parents[2]


def _use_folders(monkeypatch: pytest.MonkeyPatch, data_dir: Path, dagster_home: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("OVH_", "VSCOPE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # Midnight UTC: yesterday's partitions are always due, so the freshness line is fixed.
    monkeypatch.setenv("VSCOPE_FRESHNESS_HOUR", "0")


def test_status_of_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, home = tmp_path / "data", tmp_path / "home"
    _use_folders(monkeypatch, data_dir, home)
    today = dt.datetime.now(dt.UTC).date()

    assert main(["status"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"data folder: {data_dir} (not created yet: check VSCOPE_DATA_DIR if you expected data "
        "there)",
        "no metric data yet: run `vscope-pipeline ingest --from YYYY-MM-DD --to YYYY-MM-DD` "
        "(add --simulator to try the simulator), or `make demo`",
        "",
        "inventory datacenters: none",
        "inventory hosts: none",
        "inventory vms: none",
        "inventory filers: none",
        f"last Dagster run: none in {home}",
        f"yesterday {today - dt.timedelta(days=1)}: LATE, 0/20 metrics loaded, due by "
        f"{today}T00:00:00+00:00 (VSCOPE_FRESHNESS_HOUR): run `vscope-pipeline ingest` for "
        "that day, or check the daily schedule",
        "lake size: 0 B, DuckDB file: missing",
    ]
    assert not data_dir.exists()
    assert not home.exists()


def test_status_after_ingest(
    ingested_lake: IngestedLake,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_folders(monkeypatch, ingested_lake.data_dir, ingested_lake.dagster_home)
    first, last = ingested_lake.first, ingested_lake.last

    assert main(["status", "--format", "json"]) == 0

    status = json.loads(capsys.readouterr().out)
    assert status["loaded"] is True
    assert len(status["metrics"]) == 20
    for entry in status["metrics"]:
        assert entry["service"] == SERVICE
        assert entry["days"] == 3
        assert entry["loaded"] == [f"{first}..{last}"]
        assert entry["gaps"] == []
    run = status["last_run"]
    assert run["status"] == "SUCCESS"
    assert run["job"] == "vscope_ingest"
    assert (run["first_day"], run["last_day"]) == (str(first), str(last))
    assert status["freshness"]["state"] == "fresh"
    assert status["freshness"]["metrics_loaded"] == 20
    assert status["inventory"]["vms"] == [str(last + dt.timedelta(days=1))]
    assert status["lake_bytes"] > 0
    assert status["duckdb_bytes"] == (ingested_lake.data_dir / "vscope.duckdb").stat().st_size


def test_status_reads_default_dagster_home(
    ingested_lake: IngestedLake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_folders(monkeypatch, ingested_lake.data_dir, ingested_lake.dagster_home)
    monkeypatch.delenv("DAGSTER_HOME")
    (tmp_path / ".dagster_home").symlink_to(ingested_lake.dagster_home)
    monkeypatch.chdir(tmp_path)

    assert main(["status", "--format", "json"]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["last_run"]["status"] == "SUCCESS"
    assert "DAGSTER_HOME" not in captured.err
    assert "DAGSTER_HOME" not in os.environ


def test_status_shows_deleted_partition_gap(
    ingested_lake: IngestedLake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(ingested_lake.data_dir, data_dir)
    first, last = ingested_lake.first, ingested_lake.last
    middle = first + dt.timedelta(days=1)
    shutil.rmtree(data_dir / "metrics" / "metric=vscope.vm.cpu.ready" / f"day={middle}")
    _use_folders(monkeypatch, data_dir, tmp_path / "home")

    assert main(["status"]) == 0

    lines = capsys.readouterr().out.splitlines()
    table = lines[2:6]
    assert [line.split("  ")[0] for line in table[:2]] == ["service", "-" * len(SERVICE)]
    assert [" ".join(line.split()) for line in table[2:]] == [
        f"{SERVICE} 19 metrics {first}..{last} none",
        f"{SERVICE} vscope.vm.cpu.ready {first}, {last} {middle}",
    ]
    assert lines[-2] == f"yesterday {last}: loaded (20/20 metrics)"


def test_status_with_unreadable_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage: [unclosed\n", encoding="utf-8")
    _use_folders(monkeypatch, tmp_path / "data", home)

    assert main(["status"]) == 0

    run_line = capsys.readouterr().out.splitlines()[7]
    assert run_line.startswith(f"last Dagster run: the instance in {home} cannot be read (")
    assert run_line.endswith("): check its dagster.yaml and, for PostgreSQL, that the server is up")


def test_status_creates_no_instance_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPOSITORY / "dagster.yaml", home / "dagster.yaml")
    _use_folders(monkeypatch, tmp_path / "data", home)

    assert main(["status"]) == 0

    assert capsys.readouterr().out.splitlines()[7] == f"last Dagster run: none in {home}"
    assert sorted(path.name for path in home.iterdir()) == ["dagster.yaml"]
