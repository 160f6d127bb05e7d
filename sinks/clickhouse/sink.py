"""Kafka → ClickHouse with an exactly-once effect.

- **Batches** are bounded by rows and by time, inserted per table (Native, columnar).
- **Offsets** are committed to Kafka only after every insert of the batch succeeded.
- **Resume:** on every assignment, each partition resumes from ClickHouse's own maximum
  ``_offset`` for it (+1), or from the group's committed offset when that is further (records
  that produced no row). A crash between insert and commit therefore never inserts a row
  twice, and the materialized views never see a row twice. Rows are inserted in offset order
  per partition, so whatever reached ClickHouse is a prefix and resuming after it is exact.
- **Failures:** an insert that fails is retried with backoff while the partitions stay paused,
  so memory holds one batch whatever the outage. A record that cannot be converted goes to the
  DLQ with its reason and the rest of the batch lands.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from learnstream.settings import Settings
from schemas import to_wire
from schemas.dlq import DeadLetter
from sinks.clickhouse.rows import COLUMNS, TABLE_FOR_TOPIC, RowError, convert, pseudonymizer
from streams.kafka import make_producer
from streams.topics import LEARNER_DLQ, PIPELINE_METRICS

log = logging.getLogger(__name__)

SERVICE = "sink-clickhouse"


@dataclass
class Batch:
    """Rows waiting for insert, per table, and the next offset per partition they cover."""

    rows: dict[str, list[list[object]]] = field(default_factory=lambda: defaultdict(list))
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    count: int = 0

    def drop_partitions(self, gone: Iterable[tuple[str, int]]) -> None:
        """Forget rows of revoked partitions: not inserted, not committed, so nothing is lost."""
        gone = set(gone)
        if not gone:
            return
        for key in gone:
            self.next_offsets.pop(key, None)
        for table, rows in self.rows.items():
            t, p = COLUMNS[table].index("_topic"), COLUMNS[table].index("_partition")
            self.rows[table] = [r for r in rows if (r[t], r[p]) not in gone]
        self.count = sum(len(rows) for rows in self.rows.values())


@dataclass
class Stats:
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead: int = 0
    batches: int = 0
    insert_ms: list[float] = field(default_factory=list)


def max_offsets(client: Client, table: str, topic: str) -> dict[int, int]:
    """ClickHouse's own ``max(_offset)`` per partition of ``topic`` in ``table``."""
    result = client.query(
        f"SELECT _partition, max(_offset) FROM {table} WHERE _topic = {{topic:String}} "  # noqa: S608 (table from a static map)
        "GROUP BY _partition",
        parameters={"topic": topic},
    )
    return {int(p): int(o) for p, o in result.result_rows}


class ClickHouseSink:
    """One consumer group member writing the configured topics to their tables."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[], Client],
        topics: list[str] | None = None,
        ignore_committed: bool = False,
    ) -> None:
        self.settings = settings
        self.client = client_factory()
        self.topics = topics or sorted(TABLE_FOR_TOPIC)
        unknown = sorted(set(self.topics) - set(TABLE_FOR_TOPIC))
        if unknown:
            raise ValueError(f"no table for topics {unknown}; known: {sorted(TABLE_FOR_TOPIC)}")
        self.ignore_committed = ignore_committed
        self.pseudonymize = pseudonymizer(
            settings.clickhouse.pseudonym_secret.get_secret_value().encode()
        )
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": settings.sink.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "max.poll.interval.ms": 600_000,
            }
        )
        self.producer = make_producer(settings.kafka.bootstrap_servers)
        self.batch = Batch()
        self.stats = Stats()
        self.assigned: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}
        self.starts: dict[tuple[str, int], int] = {}  # where each assignment began
        self.stop_event = threading.Event()
        self._last_metrics = time.monotonic()
        self._metrics_rows: dict[str, int] = {}

    # -- assignment: resume from ClickHouse -------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = (
            {}
            if self.ignore_committed
            else {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=30)
            }
        )
        by_topic: dict[str, dict[int, int]] = {}
        for tp in partitions:
            if tp.topic not in by_topic:
                by_topic[tp.topic] = self._retry(
                    lambda t=tp.topic: max_offsets(self.client, TABLE_FOR_TOPIC[t], t),
                    f"reading max(_offset) of {tp.topic}",
                    in_callback=True,
                )
            stored = by_topic[tp.topic].get(tp.partition)
            resume = stored + 1 if stored is not None else OFFSET_BEGINNING
            kafka = committed.get((tp.topic, tp.partition), -1)
            if kafka >= 0 and (resume == OFFSET_BEGINNING or kafka > resume):
                resume = kafka
            tp.offset = resume
            self.assigned.add((tp.topic, tp.partition))
            self.starts[(tp.topic, tp.partition)] = resume
            log.info(
                "assigned %s[%d] from offset %s (ClickHouse max %s, committed %s)",
                tp.topic,
                tp.partition,
                resume,
                stored,
                kafka,
            )
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        self.batch.drop_partitions(gone)
        self.assigned -= set(gone)
        consumer.incremental_unassign(partitions)

    # -- the loop --------------------------------------------------------------------------------

    def run(self, idle_exit_s: float | None = None) -> Stats:
        """Consume until stopped (or until idle for ``idle_exit_s``, after a final flush)."""
        self.consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        idle_since: float | None = None  # counted from the first assignment on
        try:
            while not self.stop_event.is_set():
                messages = self.consumer.consume(num_messages=5000, timeout=0.2)
                for msg in messages:
                    if msg.error():
                        raise KafkaException(msg.error())
                    self._add(msg.topic(), msg.partition(), msg.offset(), msg.value())
                # its own pipeline.metrics records do not count as work, or it never idles
                busy = any(m.topic() != PIPELINE_METRICS.name for m in messages)
                if busy or (idle_since is None and self.assigned):
                    idle_since = time.monotonic()
                if self._due():
                    flush_started = time.monotonic()
                    self.flush()
                    if idle_since is not None:  # time spent flushing is not idle time
                        idle_since += time.monotonic() - flush_started
                self._publish_metrics()
                idle = idle_since is not None and time.monotonic() - idle_since > (idle_exit_s or 0)
                if idle_exit_s is not None and idle and self._caught_up():
                    self.flush()
                    break
            self.flush()
        finally:
            self.consumer.close()
            self.producer.flush(30)
        return self.stats

    def _caught_up(self) -> bool:
        """True when every assigned partition has been read to its high watermark."""
        for topic, partition in self.assigned:
            tp = TopicPartition(topic, partition)
            try:  # cached: the watermarks of the last fetch response, no broker round trip
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                return False
            if high < 0:  # nothing fetched from it yet: the idle time is all we know
                continue
            start = self.starts.get((topic, partition), OFFSET_BEGINNING)
            # librdkafka's position also steps over transaction markers; it is unset until a
            # record of the partition was consumed, hence the other two.
            position = max(
                self.consumer.position([tp])[0].offset,
                self.positions.get((topic, partition), -1),
                start if start >= 0 else low,
            )
            if position < high:
                return False
        return True

    def stop(self) -> None:
        self.stop_event.set()

    def _add(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        if not self.batch.next_offsets:
            self.batch.started = time.monotonic()  # batch_max_s counts from its first record
        self.batch.next_offsets[(topic, partition)] = offset + 1
        self.positions[(topic, partition)] = offset + 1
        if value is None:  # a compaction tombstone: nothing to store
            return
        try:
            row = convert(topic, partition, offset, value, self.pseudonymize)
        except RowError as exc:
            letter = _dead_letter(topic, partition, offset, value, str(exc), exc.dlq_reason)
            self.batch.dead.append(letter)
            return
        if row is not None:
            self.batch.rows[TABLE_FOR_TOPIC[topic]].append(row)
            self.batch.count += 1

    def _due(self) -> bool:
        if not self.batch.next_offsets:
            return False
        full = self.batch.count >= self.settings.sink.batch_max_rows
        return full or time.monotonic() - self.batch.started >= self.settings.sink.batch_max_s

    def flush(self) -> None:
        """Insert every table's rows, write dead letters, then commit the offsets."""
        batch = self.batch
        if not batch.next_offsets:
            self.batch = Batch()
            return
        # No pause here: a normal flush is short, librdkafka's queue limits bound what it
        # prefetches meanwhile, and pausing would discard that prefetch. _retry pauses.
        for table, rows in batch.rows.items():
            if rows:
                self._insert(table, rows)
        if batch.dead:
            self._write_dead(batch.dead)
        offsets = [
            TopicPartition(t, p, o)
            for (t, p), o in batch.next_offsets.items()
            if (t, p) in self.assigned
        ]
        if offsets:
            self._retry(lambda: self._commit(offsets), "committing offsets")
        self.stats.batches += 1
        self.stats.dead += len(batch.dead)
        self.batch = Batch()

    def _commit(self, offsets: list[TopicPartition]) -> None:
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def _insert(self, table: str, rows: list[list[object]]) -> None:
        started = time.perf_counter()
        self._retry(
            lambda: self.client.insert(table, rows, column_names=COLUMNS[table]),
            f"inserting {len(rows)} rows into {table}",
        )
        self.stats.insert_ms.append((time.perf_counter() - started) * 1000)
        self.stats.rows[table] += len(rows)

    def _write_dead(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            self.producer.produce(LEARNER_DLQ.name, key=SERVICE.encode(), value=to_wire(letter))
        left = self.producer.flush(60)
        if left:
            raise RuntimeError(f"{left} dead letters not confirmed by Kafka")

    def _retry(self, action: Callable[[], Any], what: str, in_callback: bool = False) -> Any:
        """Retry with exponential backoff until it works or the sink is stopped.

        While it waits, the assigned partitions are paused (back-pressure: memory stays at one
        batch however long ClickHouse is away) and the consumer keeps polling to stay in the
        group; inside a rebalance callback it only sleeps.
        """
        delay = 0.2
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return action()
                except Exception as exc:  # ClickHouse or Kafka unavailable: wait, never drop
                    if self.stop_event.is_set():
                        raise
                    log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                if in_callback:
                    time.sleep(delay)
                else:
                    if not paused:
                        paused = [TopicPartition(t, p) for t, p in self.assigned]
                        self.consumer.pause(paused)
                    self._keep_alive(delay)
                delay = min(delay * 2, self.settings.sink.retry_max_s)
        finally:
            if paused:
                self.consumer.resume(paused)

    def _keep_alive(self, seconds: float) -> None:
        """Poll (paused) for ``seconds``; a record that still arrives is rewound, not lost."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop_event.is_set():
            msg = self.consumer.poll(0.1)
            if msg is not None and not msg.error():
                self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))

    # -- pipeline.metrics ------------------------------------------------------------------------

    def _publish_metrics(self) -> None:
        interval = self.settings.sink.metrics_interval_s
        now = time.monotonic()
        if now - self._last_metrics < interval:
            return
        elapsed, self._last_metrics = now - self._last_metrics, now
        lag = {}
        for (topic, partition), position in self.positions.items():
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=2, cached=True
                )
            except KafkaException:
                continue
            lag[f"{topic}/{partition}"] = max(0, high - position)
        insert_ms = sorted(self.stats.insert_ms)
        self.stats.insert_ms = []
        per_table = {t: n - self._metrics_rows.get(t, 0) for t, n in self.stats.rows.items()}
        self._metrics_rows = dict(self.stats.rows)
        record = {
            "service": SERVICE,
            "instance": socket.gethostname(),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "interval_s": round(elapsed, 3),
            "totals": {
                "rows": sum(self.stats.rows.values()),
                "dead": self.stats.dead,
                "batches": self.stats.batches,
            },
            "per_s": {t: round(n / elapsed, 1) for t, n in per_table.items()},
            "lag": lag,
            "batch_insert_ms": _percentiles(insert_ms),
        }
        self.producer.produce(
            PIPELINE_METRICS.name, key=SERVICE.encode(), value=orjson.dumps(record)
        )
        self.producer.poll(0)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(values[-1], 1), "n": len(values)}


def _dead_letter(
    topic: str, partition: int, offset: int, value: bytes, detail: str, reason: Any
) -> DeadLetter:
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError:
        raw = value.decode("latin-1")
    return DeadLetter(
        dlq_id=uuid.uuid5(uuid.NAMESPACE_URL, f"sink-clickhouse/{topic}/{partition}/{offset}"),
        reason=reason,
        detail=detail[:8192],
        raw=raw,
        endpoint="sink:clickhouse",
        client_id=SERVICE,
        received_at=datetime.now(UTC),
    )


def truncate_all(client: Client) -> list[str]:
    """Empty every table the sink fills (raw tables and aggregate targets) for a rebuild.

    The migrations table stays, and so do the views: refilled from the start of every topic, the
    tables end up as they were, because each record is inserted exactly once again.
    """
    names = [
        str(row[0])
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"
        ).result_rows
    ]
    for name in names:
        client.command(f"TRUNCATE TABLE `{name.replace('`', '')}`")  # a name from system.tables
    return names
