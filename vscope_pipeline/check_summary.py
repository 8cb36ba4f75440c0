"""Summarise the Dagster asset checks of a run in one line, for the terminal."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class CheckSummary:
    """Check results of one run: passed count, and the failed checks by severity.

    `warnings` and `errors` map a check name to the sorted asset names it failed on.
    """

    passed: int
    warnings: dict[str, list[str]]
    errors: dict[str, list[str]]

    def describe(self) -> str:
        """Return `checks: N passed, M warnings: name (assets), ...; K errors: ...`."""
        parts = [f"checks: {self.passed} passed"]
        for label, failed in (("warning", self.warnings), ("error", self.errors)):
            if failed:
                count = sum(len(assets) for assets in failed.values())
                listed = ", ".join(
                    f"{name} ({', '.join(assets)})" for name, assets in failed.items()
                )
                parts.append(f"{count} {label}{'s' if count > 1 else ''}: {listed}")
        return "; ".join(parts)


def summarize_checks(instance: dg.DagsterInstance, run_id: str) -> CheckSummary:
    """Return a summary of the asset check evaluations of `run_id`, from the event log."""
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    passed = 0
    failed: dict[dg.AssetCheckSeverity, dict[str, list[str]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.passed:
            passed += 1
        else:
            asset = evaluation.asset_key.path[-1]
            failed[evaluation.severity][evaluation.check_name].append(asset)
    return CheckSummary(
        passed=passed,
        warnings=_sorted(failed[dg.AssetCheckSeverity.WARN]),
        errors=_sorted(failed[dg.AssetCheckSeverity.ERROR]),
    )


def _sorted(failed: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(assets) for name, assets in sorted(failed.items())}
