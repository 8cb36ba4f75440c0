"""The freshness check of yesterday's metric partitions, evaluated by Dagster on an instance."""

import datetime as dt

import dagster as dg
import pytest

from vscope_pipeline.defs.freshness import FRESHNESS_CHECKS
from vscope_pipeline.defs.metric_assets import METRIC_ASSETS, metric_asset_key
from vscope_pipeline.defs.resources import build_resources
from vscope_pipeline.settings import SettingsError, load_freshness_hour

CHECK_JOB = dg.define_asset_job(
    "freshness_only", selection=dg.AssetSelection.checks(*FRESHNESS_CHECKS)
)
DEFS = dg.Definitions(
    assets=METRIC_ASSETS,
    asset_checks=FRESHNESS_CHECKS,
    jobs=[CHECK_JOB],
    resources=build_resources(),
)
KINDS = ("vm", "host", "filer")


def _evaluate(days_ago: list[int]) -> dict[str, tuple[bool, str]]:
    """Record materialisations `days_ago` days back for every metric asset, then run the check."""
    today = dt.datetime.now(dt.UTC).date()
    with dg.DagsterInstance.ephemeral() as instance:
        for kind in KINDS:
            for days in days_ago:
                partition = (today - dt.timedelta(days=days)).isoformat()
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(metric_asset_key(kind), partition=partition)
                )
        result = DEFS.resolve_job_def("freshness_only").execute_in_process(instance=instance)
        assert result.success
        return {
            evaluation.asset_key.path[-1]: (evaluation.passed, evaluation.severity.value)
            for evaluation in result.get_asset_check_evaluations()
        }


def test_recent_partitions_pass():
    # Yesterday is due after today's deadline hour, the day before until then.
    assert _evaluate([1, 2]) == {f"{kind}_metric_points": (True, "WARN") for kind in KINDS}


def test_old_partitions_warn():
    assert _evaluate([3, 4]) == {f"{kind}_metric_points": (False, "WARN") for kind in KINDS}


@pytest.mark.parametrize(("text", "hour"), [(None, 6), ("0", 0), (" 23 ", 23)])
def test_freshness_hour_setting(text, hour):
    environ = {} if text is None else {"VSCOPE_FRESHNESS_HOUR": text}
    assert load_freshness_hour(environ) == hour


@pytest.mark.parametrize("text", ["24", "-1", "6am", "6.5"])
def test_freshness_hour_rejected(text):
    with pytest.raises(SettingsError) as raised:
        load_freshness_hour({"VSCOPE_FRESHNESS_HOUR": text})
    assert str(raised.value) == (
        "invalid configuration (1 problem):\n"
        f"  - VSCOPE_FRESHNESS_HOUR {text!r} is not an hour: use a whole number from 0 to 23 "
        "(UTC), e.g. 6"
    )
