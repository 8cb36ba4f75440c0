"""A bounded soak: a 30-day backfill without faults, then twice with seeded random faults.

Every backfill runs on a fresh simulator, Dagster instance and data folder. The lakes must
hold the same files with the same contents, and the counts of injected faults must match the
retries that the runs recorded.
"""

import datetime as dt
from dataclasses import dataclass

import pytest
from soak_run import (
    BackfillResult,
    SoakConfig,
    differing_files,
    lake_files,
    run_backfills,
)

from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.simulator.chaos import INVENTORY_TASK, ApiChaos, FaultKind

# Three backfills take about 1.5 min on 2 idle cores, and longer on a busy machine.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]


@dataclass
class Soak:
    config: SoakConfig
    clean: BackfillResult
    chaos: list[BackfillResult]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Soak:
    # Fixed once, so that the three backfills cover the same days even across midnight UTC.
    config = SoakConfig(anchor_day=last_complete_day() + dt.timedelta(days=1))
    jobs = [
        (tmp_path_factory.mktemp("clean"), False),
        (tmp_path_factory.mktemp("chaos1"), True),
        (tmp_path_factory.mktemp("chaos2"), True),
    ]
    clean, *chaos = run_backfills(config, jobs)
    return Soak(config, clean, chaos)


def test_every_run_succeeds(soak: Soak) -> None:
    for result in (soak.clean, *soak.chaos):
        assert [outcome.error for outcome in result.outcomes] == [None] * 5
        assert result.succeeded


def test_same_lake_files(soak: Soak) -> None:
    reference = lake_files(soak.clean.data_dir)
    parquet = [name for name in reference if name.endswith(".parquet")]
    # 20 metrics for 30 days, 4 inventory kinds snapshotted on one day, and 2 rollup grains.
    assert len([name for name in parquet if name.startswith("metrics/")]) == 20 * 30
    assert len([name for name in parquet if name.startswith("inventory/")]) == 4
    rollup_grains = {name.split("/")[1] for name in parquet if name.startswith("rollups/")}
    assert rollup_grains == {"grain=hour", "grain=day"}
    for result in soak.chaos:
        assert lake_files(result.data_dir) == reference


def test_same_parquet_contents(soak: Soak) -> None:
    for result in soak.chaos:
        assert list(differing_files(soak.clean.data_dir, result.data_dir)) == []


def test_faults_injected(soak: Soak) -> None:
    for result in soak.chaos:
        assert sum(result.tsdb_injected.values()) > 0
        assert set(result.tsdb_injected) == set(FaultKind)
        assert sum(result.api_injected.values()) > 0
        assert result.api_left_queued == 0


def test_retries_match_faults(soak: Soak) -> None:
    planned = ApiChaos(soak.config.seed, soak.config.rates).plan
    inventory_faults = sum(
        1
        for run in range(len(soak.clean.outcomes))
        for fault in planned(run)
        if fault.route.task == INVENTORY_TASK
    )
    for result in soak.chaos:
        tsdb_failures = sum(
            count for kind, count in result.tsdb_injected.items() if kind != FaultKind.DELAY
        )
        assert result.metric_retries == tsdb_failures
        assert result.metric_requests == result.tsdb_requests
        assert result.tsdb_requests == soak.clean.tsdb_requests + tsdb_failures
        assert result.inventory_retries == inventory_faults
        assert result.inventory_requests == soak.clean.inventory_requests + inventory_faults
        assert result.api_requests == soak.clean.api_requests + sum(result.api_injected.values())


def test_clean_run_has_no_retries(soak: Soak) -> None:
    assert soak.clean.metric_retries == 0
    assert soak.clean.inventory_retries == 0
    assert set(soak.clean.tsdb_by_status) == {200}
    assert set(soak.clean.api_by_status) == {200}


def test_same_seed_same_faults(soak: Soak) -> None:
    first, second = soak.chaos
    assert first.tsdb_injected == second.tsdb_injected
    assert first.api_injected == second.api_injected
    assert first.tsdb_by_status == second.tsdb_by_status
    assert first.metric_retries == second.metric_retries


def test_fault_bound_below_attempt_limit(soak: Soak) -> None:
    # Faults stop before the attempt limit, so every query ends with its real response.
    assert soak.config.rates.max_consecutive < RetryPolicy().max_attempts_on_500
