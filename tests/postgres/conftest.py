"""The PostgreSQL server shared by the instance storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_server import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start one server for the session; each test makes its own database on it."""
    with running_postgres() as server:
        yield server
