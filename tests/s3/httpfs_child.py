"""Build the warehouse from a lake in a bucket and query it, in the DuckDB-with-httpfs venv.

Run by tests/s3/test_s3_pipeline.py with `.venv-httpfs/bin/python`, whose DuckDB has the httpfs
extension from the `duckdb-extension-httpfs` package, and with the S3 settings in the
environment. Prints one JSON object: the query results, the view SQL, and the count of secrets
that duckdb_secrets() lists in a new session on the published file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys

import duckdb

from vscope_pipeline.catalog import build_catalog
from vscope_pipeline.cli import main as command
from vscope_pipeline.report.build import write_report
from vscope_pipeline.settings import lake_location, load_lake
from vscope_pipeline.warehouse.build import build_warehouse
from vscope_pipeline.warehouse.duckdb_s3 import open_warehouse


def main() -> None:
    queries = json.loads(sys.argv[1])
    first, last = (dt.date.fromisoformat(text) for text in sys.argv[2:4])
    data_dir, bucket = load_lake()
    assert bucket is not None
    summary = build_warehouse(data_dir, build_catalog(()), lake=lake_location(data_dir, bucket))
    results = {}
    with open_warehouse(summary.path, bucket.connection) as con:
        # DuckDB 1.5.5 fails some aggregates over hive-partitioned views in this optimizer
        # (an internal "index 7 within vector of size 7" error); 2.0.1 does not.
        con.execute("SET disabled_optimizers = 'statistics_propagation'")
        for name, sql in queries.items():
            results[name] = [list(row) for row in con.execute(sql).fetchall()]
    # `vscope-pipeline sql` creates the session's secret from the settings by itself.
    sql_output = io.StringIO()
    with contextlib.redirect_stdout(sql_output):
        sql_status = command(
            ["sql", "SELECT count(*) AS points FROM metric_points", "--format", "csv"]
        )
    report = write_report(summary.path, first, last, data_dir / "report.html", s3=bucket.connection)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        rows = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
        views = [sql for (sql,) in rows]
        secrets = con.execute("SELECT count(*) FROM duckdb_secrets()").fetchone()
    print(
        json.dumps(
            {
                "duckdb": duckdb.__version__,
                "row_counts": summary.row_counts,
                "results": results,
                "views": views,
                "secrets_in_new_session": secrets[0] if secrets else None,
                "sql_command": [sql_status, sql_output.getvalue()],
                "report_bytes": report.path.stat().st_size,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
