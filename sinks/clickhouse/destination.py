"""ClickHouse as a destination of the sink runner: every topic of the table registry into its
table, with an exactly-once effect.

- **Resume:** each partition resumes after ClickHouse's own maximum ``_offset`` for it. Rows are
  inserted in offset order per partition, so whatever reached ClickHouse is a prefix and
  resuming after it is exact: a crash between insert and commit never inserts a row twice, and
  the materialized views never see a row twice.
- **One event_id, one row, across requests.** A client that retries (its acknowledgement was
  lost) sends the same ``event_id`` again in a new request, which lands under a new offset. Before
  inserting into an event table, the destination drops the ids the batch repeats and the ids the
  table already received within the dedup horizon (``event_id IN …`` through the bloom-filter
  index, ``_inserted_at`` through a minmax index). So every raw table and every view counts an
  ``event_id`` once, without ``FINAL``, across collector and sink restarts. ReplacingMergeTree on
  the same key stays as the backstop for copies further apart than the horizon.
- **Steps:** records are converted as they join the batch (``prepare``, while the runner fetches
  the next ones), and the batch is inserted table by table; a retry after an outage continues
  with the tables not yet inserted (``batch.state``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.rows import Row, RowError, pseudonymizer
from sinks.clickhouse.settings import ClickHouseSettings
from sinks.clickhouse.tables import BY_TABLE, COLUMNS, TABLE_FOR_TOPIC, convert
from sinks.runner import Batch, Destination, Partition, Record, Rejection, Written

SERVICE = "sink-clickhouse"


def max_offsets(client: Client, table: str, topic: str) -> dict[int, int]:
    """ClickHouse's own ``max(_offset)`` per partition of ``topic`` in ``table``."""
    result = client.query(
        f"SELECT _partition, max(_offset) FROM `{table}` WHERE _topic = {{topic:String}} "  # noqa: S608 (a registry name)
        "GROUP BY _partition",
        parameters={"topic": topic},
    )
    return {int(p): int(o) for p, o in result.result_rows}


class ClickHouseDestination(Destination):
    """Writes each record of its topics as one row of the table the registry names."""

    name = SERVICE

    def __init__(
        self,
        settings: ClickHouseSettings,
        client_factory: Callable[[], Client],
        topics: Sequence[str] | None = None,
    ) -> None:
        self.client = client_factory()
        self.topics = list(topics or sorted(TABLE_FOR_TOPIC))
        unknown = sorted(set(self.topics) - set(TABLE_FOR_TOPIC))
        if unknown:
            raise ValueError(f"no table for topics {unknown}; known: {sorted(TABLE_FOR_TOPIC)}")
        self.pseudonymize = pseudonymizer(settings.pseudonym_secret.get_secret_value().encode())
        # the server's clock fills _inserted_at, so the horizon is measured by it too
        self.horizon_s = int(settings.dedup_horizon_h * 3600)
        self.insert_ms: list[float] = []
        self.dedup_ms: list[float] = []  # the pre-insert lookup of event ids, per table insert
        self.repeats = 0  # event ids dropped as copies of ids already stored

    def resume(self, partitions: Sequence[Partition]) -> Mapping[Partition, int | None]:
        out: dict[Partition, int | None] = {}
        for topic in sorted({t for t, _ in partitions}):
            stored = max_offsets(self.client, TABLE_FOR_TOPIC[topic], topic)
            for t, p in partitions:
                if t == topic:
                    out[(t, p)] = stored[p] + 1 if p in stored else None
        return out

    def prepare(self, batch: Batch, records: Sequence[Record]) -> None:
        """Convert records to rows as they join the batch, while the runner fetches the next
        ones; ``write_batch`` then only inserts."""
        if batch.state.get("prepared", 0) + len(records) != len(batch.records):
            return  # the batch changed under us (a revoke): write_batch converts it whole
        rows, rejected = (
            batch.state.setdefault("rows", defaultdict(list)),
            batch.state.setdefault("rejected", []),
        )
        self._convert(records, rows, rejected)
        batch.state["prepared"] = len(batch.records)

    def write_batch(self, batch: Batch) -> Written:
        if batch.state.get("prepared") != len(batch.records):
            batch.state.clear()
            rows: dict[str, list[Row]] = defaultdict(list)
            rejected: list[Rejection] = []
            self._convert(batch.records, rows, rejected)
            batch.state.update(rows=rows, rejected=rejected, prepared=len(batch.records))
        done: dict[str, int] = batch.state.setdefault("done", {})
        for table, table_rows in batch.state["rows"].items():
            if table not in done:
                done[table] = self._insert(table, table_rows)
        return Written(rejected=batch.state["rejected"], counts=dict(done))

    def _convert(
        self, records: Sequence[Record], rows: dict[str, list[Row]], rejected: list[Rejection]
    ) -> None:
        for record in records:
            try:
                row = convert(
                    record.topic, record.partition, record.offset, record.value, self.pseudonymize
                )
            except RowError as exc:
                rejected.append(Rejection(record, exc.dlq_reason, str(exc)))  # type: ignore[arg-type]
                continue
            if row is not None:
                rows[TABLE_FOR_TOPIC[record.topic]].append(row)

    def _insert(self, table: str, rows: list[Row]) -> int:
        """Insert the rows that are new (see the module docstring); returns how many."""
        if BY_TABLE[table].has_event_id:
            rows = self._new_events(table, rows)
        if rows:
            started = time.perf_counter()
            self.client.insert(table, rows, column_names=COLUMNS[table])
            self.insert_ms.append((time.perf_counter() - started) * 1000)
        return len(rows)

    def _new_events(self, table: str, rows: list[Row]) -> list[Row]:
        """``rows`` without repeated event ids: the first of each id in the batch, and none the
        table received within the horizon. event_id is the first column of every event table."""
        first: dict[Any, Row] = {}
        for row in rows:
            first.setdefault(row[0], row)
        started = time.perf_counter()
        # Binding the ids costs clickhouse-connect about 4 µs each on the client (it formats
        # every value in Python); see BENCHMARKS.md for what the lookup costs the sink.
        held = self.client.query(
            f"SELECT DISTINCT event_id FROM `{table}` "  # noqa: S608 (a registry name)
            "WHERE event_id IN {ids:Array(UUID)} "
            "AND _inserted_at >= now64(3) - toIntervalSecond({horizon_s:UInt32})",
            parameters={"ids": list(first), "horizon_s": self.horizon_s},
        ).result_rows
        self.dedup_ms.append((time.perf_counter() - started) * 1000)
        for (event_id,) in held:
            first.pop(event_id, None)
        self.repeats += len(rows) - len(first)
        return list(first.values())

    def status(self) -> dict[str, Any]:
        insert_ms, self.insert_ms = sorted(self.insert_ms), []
        dedup_ms, self.dedup_ms = sorted(self.dedup_ms), []
        return {
            "batch_insert_ms": _percentiles(insert_ms),
            "dedup_lookup_ms": _percentiles(dedup_ms),
            "repeats_dropped": self.repeats,
        }

    def close(self) -> None:
        self.client.close()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(values[-1], 1), "n": len(values)}
