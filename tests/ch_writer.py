"""A second process writing to the stack's ClickHouse while the test process reads.

Usage: python -m tests.ch_writer DSN DATABASE BATCHES ROWS_PER_BATCH
Inserts alternate between Native (``client.insert``) and Arrow (``client.insert_arrow``).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import clickhouse_connect
import pyarrow as pa


def main() -> None:
    dsn, database, batches, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = clickhouse_connect.get_client(dsn=dsn, database=database, tz_mode="aware")
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    for batch in range(batches):
        ids = range(batch * rows, (batch + 1) * rows)
        if batch % 2 == 0:
            client.insert(
                "events",
                [[i, f"learner-{i % 13}", at, i * 10] for i in ids],
                column_names=["id", "learner", "at", "amount_minor"],
            )
        else:
            table = pa.table(
                {
                    "id": pa.array(ids, pa.uint64()),
                    "learner": pa.array([f"learner-{i % 13}" for i in ids]),
                    "at": pa.array([at] * rows, pa.timestamp("ms", tz="UTC")),
                    "amount_minor": pa.array([i * 10 for i in ids], pa.int64()),
                }
            )
            client.insert_arrow("events", table)
        time.sleep(0.05)
    client.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
