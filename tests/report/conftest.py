"""Two days ingested from the simulator, shared by the report tests."""

from collections.abc import Iterator

import pytest
from report_support import ANCHOR, FIRST_DAY, LAST_DAY, STEP_SECONDS, IngestedDays

from tests.noon_ingest import ingest_at_noon


# Package scope: both test modules read the same two days, ingested once.
@pytest.fixture(scope="package")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestedDays]:
    """Ingest two days, one run a day at noon, from a 12-VM fleet whose inventory changes."""
    data_dir = tmp_path_factory.mktemp("report-data")
    with ingest_at_noon(
        data_dir, (FIRST_DAY, LAST_DAY), anchor=ANCHOR, vm_count=12, step_seconds=STEP_SECONDS
    ) as runs:
        assert all(outcome.success for outcome in runs.outcomes), runs.outcomes
        yield IngestedDays(data_dir, runs.instance, runs.outcomes)
