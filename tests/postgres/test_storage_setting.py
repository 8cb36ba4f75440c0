"""VSCOPE_DAGSTER_STORAGE: which instance file lands in DAGSTER_HOME, and its errors."""

from __future__ import annotations

import logging
import socket

import pytest
from pg_server import PostgresServer

from vscope_pipeline import ingest
from vscope_pipeline.ingest import (
    INSTANCE_FILES,
    DagsterStorageUnreachableError,
    ensure_dagster_home,
    instance_storage_kind,
)
from vscope_pipeline.secrets import Secret
from vscope_pipeline.settings import (
    DagsterStorage,
    PostgresConnection,
    SettingsError,
    load_dagster_storage,
)

POSTGRES_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Point DAGSTER_HOME at a folder that does not exist yet, with no storage variable set."""
    for name in ("VSCOPE_DAGSTER_STORAGE", *POSTGRES_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    return folder


def _use_server(monkeypatch: pytest.MonkeyPatch, server: PostgresServer) -> None:
    monkeypatch.setenv("VSCOPE_DAGSTER_STORAGE", "postgres")
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_storage_defaults_to_sqlite():
    assert load_dagster_storage({}) == DagsterStorage("sqlite")
    assert load_dagster_storage({"VSCOPE_DAGSTER_STORAGE": " SQLite "}) == DagsterStorage("sqlite")


def test_storage_reads_postgres_variables():
    storage = load_dagster_storage(
        {
            "VSCOPE_DAGSTER_STORAGE": "postgres",
            "DAGSTER_PG_HOST": "db.example.internal",
            "DAGSTER_PG_PORT": "5433",
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": "dagster",
        }
    )

    assert storage == DagsterStorage(
        "postgres",
        PostgresConnection("db.example.internal", 5433, "dagster", Secret(""), "dagster"),
    )
    assert storage.postgres is not None
    assert storage.postgres.describe() == "dagster@db.example.internal:5433/dagster"


def test_storage_rejects_unknown_value():
    with pytest.raises(SettingsError) as caught:
        load_dagster_storage({"VSCOPE_DAGSTER_STORAGE": "mysql"})

    assert caught.value.problems == [
        "VSCOPE_DAGSTER_STORAGE 'mysql' is invalid: expected sqlite (the default, files under "
        "DAGSTER_HOME) or postgres (a PostgreSQL database named by the DAGSTER_PG_* variables)"
    ]


def test_postgres_lists_each_missing_variable():
    with pytest.raises(SettingsError) as caught:
        load_dagster_storage({"VSCOPE_DAGSTER_STORAGE": "postgres", "DAGSTER_PG_HOST": " "})

    suffix = "while VSCOPE_DAGSTER_STORAGE=postgres: set it to"
    assert caught.value.problems == [
        f"DAGSTER_PG_HOST is empty {suffix} the server's host name or address",
        f"DAGSTER_PG_PORT is missing {suffix} the server's TCP port, usually 5432",
        f"DAGSTER_PG_USER is missing {suffix} the role Dagster connects as",
        f"DAGSTER_PG_PASSWORD is missing {suffix} that role's password, or an empty value "
        "when the server asks none",
        f"DAGSTER_PG_DB is missing {suffix} the database that holds Dagster's tables",
    ]


@pytest.mark.parametrize("port", ["0", "65536", "54x"])
def test_postgres_rejects_bad_port(port):
    environ = {name: "x" for name in POSTGRES_VARIABLES}
    environ.update(VSCOPE_DAGSTER_STORAGE="postgres", DAGSTER_PG_PORT=port)

    with pytest.raises(SettingsError) as caught:
        load_dagster_storage(environ)

    assert caught.value.problems == [
        f"DAGSTER_PG_PORT {port!r} is not a TCP port: use a whole number from 1 to 65535, "
        "usually 5432"
    ]


def test_home_gets_sqlite_file_by_default(home, tmp_path):
    assert ensure_dagster_home(tmp_path / "unused") == home

    assert (home / "dagster.yaml").read_text() == INSTANCE_FILES["sqlite"].read_text()
    assert instance_storage_kind(home / "dagster.yaml") == "sqlite"
    assert instance_storage_kind(INSTANCE_FILES["postgres"]) == "postgres"


def test_missing_variables_create_no_home(home, tmp_path, monkeypatch):
    monkeypatch.setenv("VSCOPE_DAGSTER_STORAGE", "postgres")

    with pytest.raises(SettingsError, match="DAGSTER_PG_HOST is missing"):
        ensure_dagster_home(tmp_path / "unused")

    assert not home.exists()


def test_refused_connection_names_settings(home, tmp_path, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("VSCOPE_DAGSTER_STORAGE", "postgres")
    for name, value in (
        PostgresServer("127.0.0.1", port, "vscope", "s3cret-pw", "dagster").environment().items()
    ):
        monkeypatch.setenv(name, value)

    with pytest.raises(DagsterStorageUnreachableError) as caught:
        ensure_dagster_home(tmp_path / "unused")

    assert str(caught.value) == (
        f"VSCOPE_DAGSTER_STORAGE=postgres, but the PostgreSQL database "
        f"vscope@127.0.0.1:{port}/dagster cannot be reached. Start the server, or fix "
        "DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD or DAGSTER_PG_DB. "
        f'The driver reported: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused Is the server running on that host and accepting TCP/IP connections?"
    )
    assert isinstance(caught.value, SettingsError)
    assert not home.exists()


def test_wrong_password_is_not_shown(home, tmp_path, monkeypatch, postgres_server):
    wrong = "wrong-password-" + postgres_server.password
    _use_server(monkeypatch, postgres_server)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", wrong)

    with pytest.raises(DagsterStorageUnreachableError) as caught:
        ensure_dagster_home(tmp_path / "unused")

    message = str(caught.value)
    assert message.endswith(
        f'The driver reported: connection to server at "127.0.0.1", port {postgres_server.port} '
        'failed: FATAL: password authentication failed for user "vscope"'
    )
    assert wrong not in message
    assert postgres_server.password not in message


def test_switch_to_postgres_keeps_previous_file(
    home, tmp_path, monkeypatch, postgres_server, caplog
):
    ensure_dagster_home(tmp_path / "unused")
    _use_server(monkeypatch, postgres_server)

    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ingest"):
        ensure_dagster_home(tmp_path / "unused")

    assert (home / "dagster.yaml").read_text() == INSTANCE_FILES["postgres"].read_text()
    assert (home / "dagster.yaml.previous").read_text() == INSTANCE_FILES["sqlite"].read_text()
    assert caplog.messages == [
        f"VSCOPE_DAGSTER_STORAGE=postgres: replaced the sqlite instance file "
        f"{home / 'dagster.yaml'} (old text in dagster.yaml.previous). The run history of the "
        "sqlite storage stays where it was but no longer shows"
    ]


def test_edited_file_of_same_storage_is_kept(home, tmp_path, monkeypatch, postgres_server):
    home.mkdir()
    edited = (
        INSTANCE_FILES["postgres"]
        .read_text()
        .replace("max_concurrent_runs: 2", "max_concurrent_runs: 4")
    )
    (home / "dagster.yaml").write_text(edited)
    _use_server(monkeypatch, postgres_server)

    ensure_dagster_home(tmp_path / "unused")

    assert (home / "dagster.yaml").read_text() == edited
    assert not (home / "dagster.yaml.previous").exists()


def test_unknown_storage_file_is_kept(home, tmp_path, caplog):
    home.mkdir()
    custom = "run_storage:\n  module: my_storage\n  class: MyRunStorage\n"
    (home / "dagster.yaml").write_text(custom)

    with caplog.at_level(logging.WARNING, logger="vscope_pipeline.ingest"):
        ensure_dagster_home(tmp_path / "unused")

    assert (home / "dagster.yaml").read_text() == custom
    assert caplog.messages == [
        f"{home / 'dagster.yaml'} sets a storage other than sqlite or postgres, or cannot be "
        "read: kept as is, so VSCOPE_DAGSTER_STORAGE=sqlite does not apply to it"
    ]


def test_missing_postgres_file_is_an_error(home, tmp_path, monkeypatch, postgres_server):
    missing = tmp_path / "checkout" / "dagster.postgres.yaml"
    monkeypatch.setitem(ingest.INSTANCE_FILES, "postgres", missing)
    _use_server(monkeypatch, postgres_server)

    with pytest.raises(SettingsError) as caught:
        ensure_dagster_home(tmp_path / "unused")

    assert caught.value.problems == [
        f"VSCOPE_DAGSTER_STORAGE=postgres needs the instance file {missing}, which is missing: "
        f"run from a checkout of the repository, or copy that file from it to "
        f"{home / 'dagster.yaml'}"
    ]
    # The folder is made before the copy, so it exists, but without a SQLite instance file.
    assert not (home / "dagster.yaml").exists()
