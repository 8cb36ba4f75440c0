"""The contract between the simulated time-series store and the simulated OpenTSDB server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Tags = Mapping[str, str]


class SeriesSource(Protocol):
    """Stored time series, as OpenTSDB's storage would hold them.

    A series is identified by its metric and its full tag set. Timestamps are epoch
    milliseconds (int64, ascending, no duplicates); values are float64 and never NaN.
    """

    def metric_names(self) -> frozenset[str]:
        """Return every metric that has at least one series."""
        ...

    def series_tags(self, metric: str) -> Sequence[Tags]:
        """Return the tag sets of every series stored under `metric`, in a stable order."""
        ...

    def points(
        self, metric: str, tags: Tags, start_ms: int, end_ms: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Return the points of one series with `start_ms <= ts <= end_ms`."""
        ...
