"""Let a DuckDB session read the lake in a bucket: the httpfs extension and an S3 secret.

The secret is TEMPORARY: it lives in the session's memory only, and this module never writes it
into the DuckDB file, a view or a table. So `vscope.duckdb` can be shared without the S3 keys.
Every session that reads the views creates its own secret: the warehouse build, its checks,
`vscope-pipeline sql` and a BI tool. Its values are bound as parameters, so they appear in no
SQL text either.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from vscope_pipeline.lake.location import S3Connection
from vscope_pipeline.warehouse.lake_sql import duckdb_message

log = logging.getLogger(__name__)

# The name of the session's secret. Its scope is every s3:// URL.
SECRET_NAME = "vscope_lake"

# The PyPI package `duckdb-extension-httpfs` ships DuckDB's signed httpfs binary for one DuckDB
# version, for machines that cannot download extensions from extensions.duckdb.org.
HTTPFS_WHEEL = "duckdb_extension_httpfs"

# The last resort downloads httpfs from DuckDB's default repository, extensions.duckdb.org.
INSTALL_HTTPFS = "INSTALL httpfs"


# Appended to "vscope.duckdb does not exist yet" for a lake in a bucket, where an ingest that
# stored every partition still fails at the warehouse without httpfs.
MISSING_WAREHOUSE_HINT = (
    "With the lake in a bucket, ingest builds it only where DuckDB can load its httpfs "
    "extension: `vscope-pipeline doctor` checks that."
)


class HttpfsUnavailableError(RuntimeError):
    """DuckDB's httpfs extension could not be loaded, so the bucket cannot be read."""


def httpfs_wheel_file() -> Path | None:
    """Return the httpfs binary of the `duckdb-extension-httpfs` package for this DuckDB."""
    spec = importlib.util.find_spec(HTTPFS_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    return path if path.is_file() else None


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs: installed already, else from the offline package, else downloaded.

    Raises HttpfsUnavailableError, with the three errors, when every way fails.
    """
    errors = []
    try:
        con.execute("LOAD httpfs")
        return
    except duckdb.Error as error:
        errors.append(f"LOAD httpfs: {duckdb_message(error)}")
    wheel_file = httpfs_wheel_file()
    if wheel_file is not None:
        try:
            # LOAD takes no parameters; the path comes from the installed package, not a user.
            con.execute(f"LOAD '{str(wheel_file).replace(chr(39), chr(39) * 2)}'")
            return
        except duckdb.Error as error:
            errors.append(f"LOAD {wheel_file}: {duckdb_message(error)}")
    else:
        errors.append(f"no duckdb-extension-httpfs package for DuckDB {duckdb.__version__}")
    try:
        con.execute(INSTALL_HTTPFS)
        con.execute("LOAD httpfs")
        return
    except duckdb.Error as error:
        errors.append(f"INSTALL httpfs: {duckdb_message(error)}")
    version = f"v{duckdb.__version__}"
    platform = _platform(con)
    raise HttpfsUnavailableError(
        f"failed to load DuckDB's httpfs extension, which reading the lake in a bucket needs "
        f"(DuckDB {duckdb.__version__}): {'; '.join(errors)}. Either let this machine reach "
        "http://extensions.duckdb.org once, so that `INSTALL httpfs` stores the extension in "
        f"~/.duckdb/extensions/{version}/{platform}/, or copy httpfs.duckdb_extension into that "
        f"folder of this user from a machine where DuckDB {duckdb.__version__} on {platform} "
        "has installed it."
    )


def create_s3_secret(con: duckdb.DuckDBPyConnection, connection: S3Connection) -> None:
    """Create the session's TEMPORARY S3 secret from `connection`, values bound as parameters."""
    con.execute(
        f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ("
        "TYPE s3, KEY_ID $key_id, SECRET $secret, ENDPOINT $endpoint, REGION $region, "
        "URL_STYLE $url_style, USE_SSL $use_ssl)",
        {
            "key_id": connection.access_key_id,
            "secret": connection.secret_access_key.reveal(),
            "endpoint": connection.host,
            "region": connection.region,
            "url_style": connection.url_style,
            "use_ssl": connection.scheme == "https",
        },
    )


def prepare_session(con: duckdb.DuckDBPyConnection, connection: S3Connection | None) -> None:
    """Make `con` able to read the lake: nothing for a local lake, httpfs and a secret for S3."""
    if connection is None:
        return
    load_httpfs(con)
    create_s3_secret(con, connection)


@contextmanager
def open_warehouse(
    database: str | Path, connection: S3Connection | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open `database` read-only in a session that can read the lake (see `prepare_session`)."""
    with duckdb.connect(str(database), read_only=True) as con:
        prepare_session(con, connection)
        yield con


def _platform(con: duckdb.DuckDBPyConnection) -> str:
    """Return DuckDB's platform name, such as linux_amd64, which names the extension folder."""
    try:
        row = con.execute("PRAGMA platform").fetchone()
    except duckdb.Error:
        return "<platform>"
    return str(row[0]) if row else "<platform>"
