"""Modes of lake and warehouse files: private by default, group-readable on request.

Each test runs under umask 0, the loosest, so the modes seen are the ones the pipeline
requests. No mode ever lets other users read, write or list anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS
from vscope_pipeline.lake.staging import (
    GROUP_READABLE_MODES,
    PRIVATE_MODES,
    FileModes,
    file_modes,
)
from vscope_pipeline.lake.writer import write_partition
from vscope_pipeline.settings import SettingsError, load_settings
from vscope_pipeline.warehouse.build import build_warehouse

KEYS = {
    "OVH_APPLICATION_KEY": "AKmodesTest00001",
    "OVH_APPLICATION_SECRET": "modes-test-application-secret-01",
    "OVH_CONSUMER_KEY": "modes-test-consumer-key-00000001",
}
SHARE_HELP = (
    "expected true or false (default false). true creates files with mode 0o640 and folders "
    "with 0o750, so that the group of the data folder can read them; false keeps them private "
    "(0o600 and 0o700)"
)
MODES = [
    pytest.param(PRIVATE_MODES, 0o600, 0o700, id="private"),
    pytest.param(GROUP_READABLE_MODES, 0o640, 0o750, id="group"),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_modes_values() -> None:
    assert (PRIVATE_MODES.file, PRIVATE_MODES.folder) == (0o600, 0o700)
    assert (GROUP_READABLE_MODES.file, GROUP_READABLE_MODES.folder) == (0o640, 0o750)
    assert file_modes(False) is PRIVATE_MODES
    assert file_modes(True) is GROUP_READABLE_MODES


@pytest.mark.parametrize(("modes", "file_mode", "folder_mode"), MODES)
def test_partition_modes(
    tmp_path: Path, modes: FileModes, file_mode: int, folder_mode: int
) -> None:
    folder = tmp_path / "lake" / "metric=m" / "day=2026-11-18"

    write_partition(pa.table({"value": [1.0]}), folder, modes=modes)

    assert _mode(folder / "data.parquet") == file_mode
    for created in (tmp_path / "lake", tmp_path / "lake" / "metric=m", folder):
        assert _mode(created) == folder_mode, created


@pytest.mark.parametrize(("modes", "file_mode", "folder_mode"), MODES)
def test_replaced_partition_takes_modes(
    tmp_path: Path, modes: FileModes, file_mode: int, folder_mode: int
) -> None:
    write_partition(pa.table({"value": [1.0]}), tmp_path, modes=PRIVATE_MODES)
    os.chmod(tmp_path / "data.parquet", 0o666)

    write_partition(pa.table({"value": [2.0]}), tmp_path, modes=modes)

    assert _mode(tmp_path / "data.parquet") == file_mode
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.parquet"]


@pytest.mark.parametrize(("modes", "file_mode", "folder_mode"), MODES)
def test_warehouse_modes(
    tmp_path: Path, modes: FileModes, file_mode: int, folder_mode: int
) -> None:
    data_dir = tmp_path / "data"

    summary = build_warehouse(data_dir, BUILTIN_METRICS, modes=modes)

    assert _mode(summary.path) == file_mode
    assert _mode(data_dir) == folder_mode
    # The staging folder is removed once the database file is published.
    assert sorted(path.name for path in data_dir.iterdir()) == ["vscope.duckdb"]


def test_existing_folder_keeps_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)

    write_partition(pa.table({"value": [1.0]}), tmp_path / "new", modes=GROUP_READABLE_MODES)

    assert _mode(tmp_path) == 0o700
    assert _mode(tmp_path / "new") == 0o750


@pytest.mark.parametrize("modes", [PRIVATE_MODES, GROUP_READABLE_MODES])
def test_nothing_open_to_others(tmp_path: Path, modes: FileModes) -> None:
    data_dir = tmp_path / "data"
    write_partition(pa.table({"value": [1.0]}), data_dir / "metrics" / "day=1", modes=modes)
    build_warehouse(data_dir, BUILTIN_METRICS, modes=modes)

    created = [data_dir, *data_dir.rglob("*")]
    assert len(created) == 5
    for path in created:
        assert _mode(path) & stat.S_IRWXO == 0, path
        assert _mode(path) & stat.S_IWGRP == 0, path


def test_defaults_are_private(tmp_path: Path) -> None:
    write_partition(pa.table({"value": [1.0]}), tmp_path / "lake")
    summary = build_warehouse(tmp_path / "data", BUILTIN_METRICS)

    assert _mode(tmp_path / "lake" / "data.parquet") == 0o600
    assert _mode(tmp_path / "lake") == 0o700
    assert _mode(summary.path) == 0o600


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), (" True ", True), ("false", False), ("False", False)],
)
def test_share_setting_parsed(text: str, expected: bool) -> None:
    settings = load_settings({**KEYS, "VSCOPE_SHARE_WITH_GROUP": text})

    assert settings.share_with_group is expected
    assert settings.file_modes == (GROUP_READABLE_MODES if expected else PRIVATE_MODES)


@pytest.mark.parametrize("text", [None, "", "  "])
def test_share_setting_default(text: str | None) -> None:
    environ = dict(KEYS) if text is None else {**KEYS, "VSCOPE_SHARE_WITH_GROUP": text}

    settings = load_settings(environ)

    assert settings.share_with_group is False
    assert settings.file_modes == PRIVATE_MODES


@pytest.mark.parametrize("text", ["yes", "1", "group", "0o640"])
def test_share_setting_invalid(text: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**KEYS, "VSCOPE_SHARE_WITH_GROUP": text})

    assert raised.value.problems == [f"VSCOPE_SHARE_WITH_GROUP {text!r} is invalid: {SHARE_HELP}"]
