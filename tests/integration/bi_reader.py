"""A BI tool stand-in: query the warehouse read-only in a loop until stdin closes.

    python bi_reader.py DATABASE hold|reconnect ROUNDS_FILE

`hold` keeps one connection open for the whole loop, as a dashboard with a connection pool does.
`reconnect` opens a new connection for every round, as a tool without a pool does. Each round
appends one JSON line to ROUNDS_FILE: the number of metrics in `metric_catalog` (a table, so it
shows which database file the connection reads) and the rows per metric partition read through
the `metric_points` view. The reader prints "ready" on stdout once its first round has run. Any
error ends the loop with exit status 1 and the error on stderr.
"""

import json
import sys
import threading

import duckdb

ROUND_SQL = """
SELECT
    (SELECT count(*) FROM metric_catalog) AS metrics,
    (SELECT list(struct_pack(metric := metric, day := day::VARCHAR, points := points))
     FROM (SELECT metric, day, count(*) AS points FROM metric_points GROUP BY ALL)) AS partitions
"""


def run_round(con: duckdb.DuckDBPyConnection) -> dict:
    metrics, partitions = con.execute(ROUND_SQL).fetchone()
    counts = {f"{part['metric']}/{part['day']}": part["points"] for part in partitions or []}
    return {"metrics": metrics, "partitions": counts}


def main(database: str, mode: str, rounds_file: str) -> int:
    stop = threading.Event()
    # Closing stdin is the signal to stop. A thread watches it, so the loop never waits on it.
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    pooled = duckdb.connect(database, read_only=True) if mode == "hold" else None
    rounds = 0
    # Line-buffered, so the test reads every finished round while the loop goes on.
    with open(rounds_file, "w", buffering=1) as out:
        while not stop.is_set():
            if pooled is not None:
                result = run_round(pooled)
            else:
                with duckdb.connect(database, read_only=True) as con:
                    result = run_round(con)
            out.write(json.dumps(result) + "\n")
            rounds += 1
            if rounds == 1:
                print("ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
