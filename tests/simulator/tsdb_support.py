"""An in-memory SeriesSource with hand-written points, for the OpenTSDB simulator tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from vscope_pipeline.simulator.series import Tags

_StoredSeries = tuple[dict[str, str], npt.NDArray[np.int64], npt.NDArray[np.float64]]

# 2024-01-01T00:00:00Z, a whole day, hour and minute: bucket alignment is easy to follow.
T0_S = 1_704_067_200
T0_MS = T0_S * 1000


class MemorySeriesSource:
    """Series stored as given: `add(metric, tags, timestamps_ms, values)`."""

    def __init__(self) -> None:
        self._series: dict[str, list[_StoredSeries]] = {}

    def add(
        self,
        metric: str,
        tags: Mapping[str, str],
        timestamps_ms: Sequence[int],
        values: Sequence[float],
    ) -> MemorySeriesSource:
        """Store one series; timestamps must be ascending. Return self, for chaining."""
        ts = np.array(timestamps_ms, np.int64)
        if len(ts) != len(values) or np.any(np.diff(ts) <= 0):
            raise ValueError(f"series {metric} {dict(tags)} needs ascending, paired points")
        self._series.setdefault(metric, []).append((dict(tags), ts, np.array(values, np.float64)))
        return self

    def metric_names(self) -> frozenset[str]:
        return frozenset(self._series)

    def series_tags(self, metric: str) -> Sequence[Tags]:
        return [tags for tags, _, _ in self._series.get(metric, [])]

    def points(
        self, metric: str, tags: Tags, start_ms: int, end_ms: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        for stored_tags, ts, values in self._series.get(metric, []):
            if stored_tags == dict(tags):
                inside = (ts >= start_ms) & (ts <= end_ms)
                return ts[inside], values[inside]
        return np.empty(0, np.int64), np.empty(0, np.float64)


def seconds(*offsets: int) -> list[int]:
    """Return epoch milliseconds at T0 plus each offset in seconds."""
    return [T0_MS + offset * 1000 for offset in offsets]
