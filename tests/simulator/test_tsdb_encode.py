"""JSON encoding of responses: Java double text, dps objects and arrays, NaN and null."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from vscope_pipeline.simulator.tsdb_encode import encode_dps, java_double_text

T0_MS = 1_704_067_200_000


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5.0, "5.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.25, "0.25"),
        (0.001, "0.001"),
        (1234567.5, "1234567.5"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.0, "1.2345678E7"),
        (9.349986906415408e11, "9.349986906415408E11"),
        (1e-4, "1.0E-4"),
        (-2.5e-5, "-2.5E-5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
    ],
)
def test_java_double_text(value: float, text: str) -> None:
    assert java_double_text(value) == text


def ts(*offsets_s: float) -> np.ndarray:
    return np.array([T0_MS + int(offset * 1000) for offset in offsets_s], np.int64)


def values(*numbers: float) -> np.ndarray:
    return np.array(numbers, np.float64)


def test_dps_object_and_arrays() -> None:
    stamps, numbers = ts(0, 60), values(1.5, 2e7)
    (as_object,) = encode_dps([stamps], [numbers], [False], ms_resolution=False, arrays=False)
    (as_arrays,) = encode_dps([stamps], [numbers], [False], ms_resolution=False, arrays=True)
    assert as_object == b'{"1704067200":1.5,"1704067260":2.0E7}'
    assert as_arrays == b"[[1704067200,1.5],[1704067260,2.0E7]]"


def test_dps_nan_as_string_or_null() -> None:
    stamps, numbers = ts(0, 10), values(math.nan, 1.0)
    texts = encode_dps(
        [stamps, stamps], [numbers, numbers], [False, True], ms_resolution=False, arrays=False
    )
    assert texts == [
        b'{"1704067200":"NaN","1704067210":1.0}',
        b'{"1704067200":null,"1704067210":1.0}',
    ]


def test_dps_sub_second_points_repeat_keys() -> None:
    stamps, numbers = ts(0.25, 0.75), values(1.0, 2.0)
    (seconds_text,) = encode_dps([stamps], [numbers], [False], ms_resolution=False, arrays=False)
    (ms_text,) = encode_dps([stamps], [numbers], [False], ms_resolution=True, arrays=False)
    # OpenTSDB writes one key per point, so a parser keeps only one of the two.
    assert seconds_text == b'{"1704067200":1.0,"1704067200":2.0}'
    assert ms_text == b'{"1704067200250":1.0,"1704067200750":2.0}'


def test_dps_of_several_objects_with_an_empty_one() -> None:
    empty = np.empty(0, np.int64)
    texts = encode_dps(
        [ts(0), empty, ts(10, 20)],
        [values(1.0), np.empty(0), values(2.0, 3.0)],
        [False, False, False],
        ms_resolution=False,
        arrays=False,
    )
    assert texts == [
        b'{"1704067200":1.0}',
        b"{}",
        b'{"1704067210":2.0,"1704067220":3.0}',
    ]


def test_dps_keys_of_different_widths() -> None:
    stamps = np.array([999_999_000, 1_000_000_000], np.int64)
    (text,) = encode_dps([stamps], [values(1.0, 2.0)], [False], ms_resolution=False, arrays=True)
    assert text == b"[[999999,1.0],[1000000,2.0]]"


def test_dps_round_trip_many_values() -> None:
    rng = np.random.default_rng(7)
    numbers = np.concatenate((rng.random(500) * 100, rng.random(20) * 1e-4, rng.random(20) * 1e9))
    stamps = T0_MS + np.arange(len(numbers), dtype=np.int64) * 60_000
    (text,) = encode_dps([stamps], [numbers], [False], ms_resolution=False, arrays=False)
    decoded = orjson.loads(text)
    assert list(decoded.values()) == numbers.tolist()
    assert list(decoded) == [str(stamp // 1000) for stamp in stamps.tolist()]
