"""Rollup views after a simulator ingestion, compared with the raw points they summarise."""

import duckdb
import pytest

from vscope_pipeline.lake.layout import ROLLUP_GRAINS, rollup_grain_dir

pytestmark = pytest.mark.integration

METRIC = "vscope.vm.cpu.usage.perc"


def _query(ingested, sql, params=()):
    database = ingested.data_dir / "vscope.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _daily(ingested):
    return _query(
        ingested,
        """
        SELECT entity, samples, avg, min, max, p95 FROM metric_daily
        WHERE metric = ? AND day = ? ORDER BY entity
        """,
        (METRIC, ingested.day),
    )


def _rollup_files(ingested):
    return sorted(
        path.relative_to(ingested.data_dir).as_posix()
        for grain in ROLLUP_GRAINS
        for path in rollup_grain_dir(ingested.data_dir, grain).rglob("*")
        if path.is_file() and f"metric={METRIC}/" in path.as_posix()
    )


def test_daily_matches_points(ingested):
    expected = _query(
        ingested,
        """
        SELECT entity, count(*), avg(value), min(value), max(value),
               quantile_cont(value, 0.95)
        FROM metric_points WHERE metric = ? AND day = ? GROUP BY entity ORDER BY entity
        """,
        (METRIC, ingested.day),
    )
    daily = _daily(ingested)

    assert len(daily) == len(expected) > 0
    for got, want in zip(daily, expected, strict=True):
        assert got[:2] == want[:2]
        assert got[2:] == pytest.approx(want[2:])


def test_hourly_has_24_buckets_per_full_day(ingested):
    rows = _query(
        ingested,
        """
        WITH spans AS (
            SELECT entity FROM metric_points WHERE metric = ? AND day = ?
            GROUP BY entity
            HAVING count(DISTINCT epoch_ms(ts) // 3600000) = 24
        )
        SELECT h.entity, count(*), sum(h.samples), min(h.bucket) = ?::TIMESTAMPTZ
        FROM metric_hourly AS h JOIN spans USING (entity)
        WHERE h.metric = ? AND h.day = ? GROUP BY h.entity
        """,
        (METRIC, ingested.day, f"{ingested.day} 00:00:00+00", METRIC, ingested.day),
    )
    samples = dict(
        _query(
            ingested,
            "SELECT entity, samples FROM metric_daily WHERE metric = ? AND day = ?",
            (METRIC, ingested.day),
        )
    )

    assert len(rows) > 0
    for entity, buckets, hourly_samples, starts_at_midnight in rows:
        assert buckets == 24, entity
        assert hourly_samples == samples[entity]
        assert starts_at_midnight


def test_rerun_keeps_one_file_and_same_values(ingested):
    before = _daily(ingested)

    outcomes = ingested.ingest_again()

    assert [outcome.success for outcome in outcomes] == [True]
    month = f"{ingested.day:%Y-%m}"
    # One month file per grain, and the lock file that serialises the writers of that month.
    assert _rollup_files(ingested) == [
        f"rollups/grain=day/metric={METRIC}/month={month}/.rollup.lock",
        f"rollups/grain=day/metric={METRIC}/month={month}/data.parquet",
        f"rollups/grain=hour/metric={METRIC}/month={month}/.rollup.lock",
        f"rollups/grain=hour/metric={METRIC}/month={month}/data.parquet",
    ]
    assert _daily(ingested) == before
