"""Start a throwaway PostgreSQL server on 127.0.0.1 for the instance storage tests.

The server comes from the Debian package (`apt-get install -y postgresql`, which CI runs when
the binaries are missing). PostgreSQL refuses to run as root, so under root the server runs as
the package's `postgres` user, with its data folder in a fresh temporary folder.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

INSTALL_HINT = (
    "install the Debian package with `apt-get install -y postgresql` (CI's .ci/run does this "
    "when the binaries are missing)"
)
# Seconds pg_ctl waits for the server to start or stop.
PG_CTL_TIMEOUT_SECONDS = 30
SERVER_USER = "postgres"
ROLE = "vscope"
DATABASE = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    """A running test server and the role and database created on it."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def environment(self) -> dict[str, str]:
        """Return the DAGSTER_PG_* variables that dagster.postgres.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )


def find_server_bin() -> Path:
    """Return the folder of initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, or PATH."""
    folders = sorted(
        (Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    for folder in reversed(folders):
        if (folder / "pg_ctl").exists():
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or "
        f"on PATH: {INSTALL_HINT}",
        pytrace=False,
    )


def _as_server_user() -> list[str]:
    """Return the command prefix that drops root for the server, or nothing when not root."""
    if os.geteuid() != 0:
        return []
    try:
        subprocess.run(["id", "-u", SERVER_USER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.fail(
            f"PostgreSQL refuses to run as root and the user {SERVER_USER!r} does not exist: "
            f"{INSTALL_HINT}, which creates it",
            pytrace=False,
        )
    return ["runuser", "-u", SERVER_USER, "--"]


def _free_port() -> int:
    # The port is free when this returns. Another process could take it before the server
    # binds, and pg_ctl then reports a failed start.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], step: str, log_file: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log_file.read_text(errors="replace") if log_file and log_file.exists() else ""
        pytest.fail(
            f"{step} failed (exit {result.returncode}): {result.stdout}{result.stderr}{server_log}",
            pytrace=False,
        )


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Run a PostgreSQL server on 127.0.0.1 with a password role and an empty database.

    The server stops (fast mode: open sessions are cut) and its folder is deleted on exit.
    """
    server_bin = find_server_bin()
    prefix = _as_server_user()
    # Under /tmp rather than pytest's tmp_path, whose root-only parent folder the server user
    # could not enter.
    root = Path(tempfile.mkdtemp(prefix="vscope-pg-"))
    data_dir, log_file, password_file = root / "data", root / "server.log", root / "password"
    password = secrets.token_urlsafe(18)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    if prefix:
        for path in (root, password_file):
            shutil.chown(path, user=SERVER_USER, group=SERVER_USER)
    port = _free_port()
    started = False
    try:
        _run(
            [
                *prefix,
                str(server_bin / "initdb"),
                f"--pgdata={data_dir}",
                f"--username={ROLE}",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ],
            "initdb",
        )
        password_file.unlink()
        # fsync off: the data folder is deleted at the end, so durability buys nothing here.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c fsync=off"
        )
        _run(
            [
                *prefix,
                str(server_bin / "pg_ctl"),
                "start",
                f"--pgdata={data_dir}",
                f"--log={log_file}",
                "--wait",
                f"--timeout={PG_CTL_TIMEOUT_SECONDS}",
                f"--options={options}",
            ],
            "pg_ctl start",
            log_file,
        )
        started = True
        server = PostgresServer("127.0.0.1", port, ROLE, password, DATABASE)
        admin = server.connect(database="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        admin.close()
        yield server
    finally:
        if started:
            _run(
                [
                    *prefix,
                    str(server_bin / "pg_ctl"),
                    "stop",
                    f"--pgdata={data_dir}",
                    "--mode=fast",
                    "--wait",
                    f"--timeout={PG_CTL_TIMEOUT_SECONDS}",
                ],
                "pg_ctl stop",
                log_file,
            )
        shutil.rmtree(root, ignore_errors=True)
