"""The sink contract: Kafka → a destination, with an exactly-once effect.

A destination (ClickHouse tables, the escrow contract, …) implements a few hooks of
:class:`Destination`; :class:`SinkRunner` does the rest, the same way for every destination:

- **Read whole at start.** Topics a destination names in ``read_whole`` (compacted ones such as
  ``course.catalog``) are read to their end, committed records only, and handed to ``load``
  before anything else.
- **Resume.** On every assignment the destination says where each partition resumes, from its
  own state (``resume``); the group's committed offset wins when it is further (records that
  wrote nothing). Records the destination already holds are never handed over again, so a crash
  between a write and its commit does not write twice.
- **Batches** are bounded by records and by time. ``prepare`` sees records as they join a batch
  (per-record work overlaps the fetching of the next ones); ``write_batch`` writes the batch; the
  offsets are committed only after it (and ``flush``) succeeded and the batch's dead letters are
  in the DLQ.
- **Outages.** A write that raises is retried with exponential backoff, with the partitions
  paused, so memory holds one batch however long the destination is away. A retry hands over the
  same :class:`Batch`; a destination that writes in steps keeps what it finished in
  ``batch.state`` and resumes there.
- **Dead letters.** Records the destination rejects go to ``learner.dlq`` with their reason;
  the rest of the batch is written.
- **Timer.** ``on_tick(now)`` is called every ``tick_interval_s`` even when no record arrives
  (deadlines by wall clock).
- **Metrics.** Every ``metrics_interval_s`` a ``pipeline.metrics`` record
  (:class:`~schemas.derived.PipelineMetrics`): records in and written per second, lag per
  partition, and the destination's own ``status()`` under ``extra``.

In the spirit of quix-streams' ``BatchingSink`` (the contract apart from the loop) and bytewax's
resume state; written here because neither runs on confluent-kafka with per-destination resume.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from schemas import to_wire
from schemas.derived import PipelineMetrics
from schemas.dlq import DeadLetter, Reason
from sinks.settings import SinkSettings
from streams.kafka import make_consumer, make_producer, read_to_end
from streams.topics import LEARNER_DLQ, PIPELINE_METRICS

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (topic, partition)


class Record(NamedTuple):
    """One Kafka record (a named tuple: the runner makes one for every record it reads)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone of a compacted topic
    timestamp_ms: int = 0


@dataclass(frozen=True)
class Rejection:
    """A record the destination cannot take, and why (goes to the DLQ)."""

    record: Record
    reason: Reason
    detail: str


@dataclass
class Written:
    """What ``write_batch`` did: rejected records, and how much it wrote per target."""

    rejected: list[Rejection] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Batch:
    """Records waiting to be written, in offset order per partition, and the next offset of
    each partition they cover. ``state`` is the destination's scratch space for this batch."""

    records: list[Record] = field(default_factory=list)
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    state: dict[str, Any] = field(default_factory=dict)

    def extend(self, records: list[Record]) -> dict[Partition, int]:
        """Add records (in offset order per partition); returns the next offset of each
        partition they cover."""
        if records and not self.next_offsets:
            self.started = time.monotonic()  # the time bound counts from the first record
        ends = {(r.topic, r.partition): r.offset + 1 for r in records}
        self.next_offsets.update(ends)
        self.records.extend(records)
        return ends

    def drop_partitions(self, gone: Iterable[Partition]) -> None:
        """Forget records of revoked partitions: not written, not committed, nothing lost."""
        gone = set(gone)
        if gone:
            for key in gone:
                self.next_offsets.pop(key, None)
            self.records = [r for r in self.records if (r.topic, r.partition) not in gone]
            self.state.clear()


class Destination(ABC):
    """Where a sink writes. Implement :meth:`resume` and :meth:`write_batch`; the other hooks
    have defaults that do nothing."""

    name: str = "sink"  # the service name in pipeline.metrics and in dead letters
    topics: Sequence[str] = ()
    read_whole: Sequence[str] = ()
    tick_interval_s: float = 1.0

    def load(self, records: Sequence[Record]) -> None:  # noqa: B027 (an optional hook)
        """The ``read_whole`` topics as they are at start, before any other record."""

    @abstractmethod
    def resume(self, partitions: Sequence[Partition]) -> Mapping[Partition, int | None]:
        """The next offset to read of each partition by the destination's own state (None:
        nothing of it is held)."""

    def prepare(self, batch: Batch, records: Sequence[Record]) -> None:  # noqa: B027 (optional)
        """Per-record work for ``records``, which just joined ``batch`` (conversion, say), done
        while the next records are fetched instead of at flush; results go in ``batch.state``.
        A batch whose partitions were revoked loses its state: ``write_batch`` must then be
        able to do the work itself."""

    @abstractmethod
    def write_batch(self, batch: Batch) -> Written:
        """Write the batch, or raise to have it retried (with the same ``batch``)."""

    def on_tick(self, now: datetime) -> None:  # noqa: B027 (an optional hook)
        """Called every ``tick_interval_s``, records or not."""

    def flush(self) -> None:  # noqa: B027 (an optional hook)
        """Make everything written so far durable; called before every commit."""

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Release what the destination holds; called once, at the end."""

    def status(self) -> dict[str, Any]:
        """Destination-specific figures for the ``extra`` of pipeline.metrics (JSON values)."""
        return {}


@dataclass
class Stats:
    records: int = 0
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # written, per target
    dead: int = 0
    batches: int = 0


class SinkRunner:
    """One consumer-group member feeding one destination."""

    def __init__(
        self,
        destination: Destination,
        bootstrap_servers: str,
        settings: SinkSettings,
        ignore_committed: bool = False,
    ) -> None:
        self.destination = destination
        self.bootstrap_servers = bootstrap_servers
        self.settings = settings
        self.ignore_committed = ignore_committed
        self.consumer = make_consumer(
            bootstrap_servers, settings.group_id, **{"max.poll.interval.ms": 600_000}
        )
        self.producer = make_producer(bootstrap_servers)
        self.batch = Batch()
        self.stats = Stats()
        self.assigned: set[Partition] = set()
        self.positions: dict[Partition, int] = {}
        self.starts: dict[Partition, int] = {}  # where each assignment began
        self.stop_event = threading.Event()
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        self._last_tick = time.monotonic()
        self._last_metrics = time.monotonic()
        self._reported = (0, 0)  # records and rows at the last metrics record

    # -- assignment: resume from the destination ---------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        committed = (
            {}
            if self.ignore_committed
            else {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=30)
            }
        )
        keys = [(tp.topic, tp.partition) for tp in partitions]
        held = self._retry(
            lambda: self.destination.resume(keys), "reading where to resume", in_callback=True
        )
        for tp in partitions:
            key = (tp.topic, tp.partition)
            stored = held.get(key)
            resume = stored if stored is not None else OFFSET_BEGINNING
            kafka = committed.get(key, -1)
            if kafka >= 0 and (resume == OFFSET_BEGINNING or kafka > resume):
                resume = kafka
            tp.offset = resume
            self.assigned.add(key)
            self.starts[key] = resume
            log.info(
                "assigned %s[%d] from offset %s (destination %s, committed %s)",
                tp.topic, tp.partition, resume, stored, kafka,
            )  # fmt: skip
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        self.batch.drop_partitions(gone)
        self.assigned -= set(gone)
        consumer.incremental_unassign(partitions)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, idle_exit_s: float | None = None) -> Stats:
        """Consume until stopped (or until idle for ``idle_exit_s``, after a final flush)."""
        dest = self.destination
        try:
            if dest.read_whole:
                dest.load(self._read_whole())
            self.consumer.subscribe(
                list(dest.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            idle_since: float | None = None  # counted from the first assignment on
            while not self.stop_event.is_set():
                room = self.settings.batch_max_rows - len(self.batch.records)
                messages = self.consumer.consume(num_messages=max(1, min(5000, room)), timeout=0.2)
                self._take(messages)
                # its own pipeline.metrics records do not count as work, or it never idles
                busy = any(m.topic() != PIPELINE_METRICS.name for m in messages)
                if busy or (idle_since is None and self.assigned):
                    idle_since = time.monotonic()
                if self._due():
                    flush_started = time.monotonic()
                    self.flush()
                    if idle_since is not None:  # time spent flushing is not idle time
                        idle_since += time.monotonic() - flush_started
                self._tick()
                self._publish_metrics()
                idle = idle_since is not None and time.monotonic() - idle_since > (idle_exit_s or 0)
                if idle_exit_s is not None and idle and self._caught_up():
                    break
            self.flush()
        finally:
            self.consumer.close()
            self.producer.flush(30)
            dest.close()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    def _read_whole(self) -> list[Record]:
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms)
            for r in read_to_end(self.bootstrap_servers, list(self.destination.read_whole))
        ]

    def _take(self, messages: list[Any]) -> None:
        for msg in messages:
            if msg.error():
                raise KafkaException(msg.error())
        records = [
            Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
            for m in messages
        ]
        self.positions.update(self.batch.extend(records))
        self.stats.records += len(records)
        if records:
            self.destination.prepare(self.batch, records)

    def _due(self) -> bool:
        if not self.batch.next_offsets:
            return False
        full = len(self.batch.records) >= self.settings.batch_max_rows
        return full or time.monotonic() - self.batch.started >= self.settings.batch_max_s

    def _tick(self) -> None:
        if time.monotonic() - self._last_tick >= self.destination.tick_interval_s:
            self._last_tick = time.monotonic()
            self._retry(lambda: self.destination.on_tick(datetime.now(UTC)), "on_tick")

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

    # -- flush: write, dead letters, commit --------------------------------------------------------

    def flush(self) -> None:
        """Write the batch, then its dead letters, then commit its offsets."""
        batch = self.batch
        if not batch.next_offsets:
            self.batch = Batch()
            return
        # No pause here: a normal flush is short, librdkafka's queue limits bound what it
        # prefetches meanwhile, and pausing would discard that prefetch. _retry pauses.
        written = self._retry(
            lambda: self.destination.write_batch(batch),
            f"writing {len(batch.records)} records",
        )
        if written.rejected:
            self._retry(lambda: self._write_dead(written.rejected), "writing dead letters")
        self._retry(self.destination.flush, "flushing")
        offsets = [
            TopicPartition(t, p, o)
            for (t, p), o in batch.next_offsets.items()
            if (t, p) in self.assigned
        ]
        if offsets:
            self._retry(lambda: self._commit(offsets), "committing offsets")
        for target, n in written.counts.items():
            self.stats.rows[target] += n
        self.stats.batches += 1
        self.stats.dead += len(written.rejected)
        self.batch = Batch()

    def _commit(self, offsets: list[TopicPartition]) -> None:
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def _write_dead(self, rejected: list[Rejection]) -> None:
        for rejection in rejected:
            letter = dead_letter(self.destination.name, rejection)
            self.producer.produce(
                LEARNER_DLQ.name, key=self.destination.name.encode(), value=to_wire(letter)
            )
        left = self.producer.flush(60)
        if left:
            raise RuntimeError(f"{left} dead letters not confirmed by Kafka")

    def _retry(self, action: Callable[[], Any], what: str, in_callback: bool = False) -> Any:
        """Retry with exponential backoff until it works or the sink is stopped.

        While it waits, the assigned partitions are paused (back-pressure: memory stays at one
        batch however long the destination is away) and the consumer keeps polling to stay in
        the group; inside a rebalance callback it only sleeps.
        """
        delay = 0.2
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return action()
                except Exception as exc:  # the destination or Kafka unavailable: wait, never drop
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
                delay = min(delay * 2, self.settings.retry_max_s)
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

    # -- pipeline.metrics --------------------------------------------------------------------------

    def metrics(self, elapsed: float) -> PipelineMetrics:
        """This interval's health record."""
        lag = {}
        for (topic, partition), position in self.positions.items():
            if (topic, partition) not in self.assigned:
                continue
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=2, cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                lag[f"{topic}/{partition}"] = max(0, high - position)
        rows = sum(self.stats.rows.values())
        records_then, rows_then = self._reported
        self._reported = (self.stats.records, rows)
        totals = {"records": self.stats.records, "rows": rows, "dead": self.stats.dead,
                  "batches": self.stats.batches}  # fmt: skip
        return PipelineMetrics(
            service=self.destination.name,
            instance=self.instance,
            group=self.settings.group_id,
            at=datetime.now(UTC),
            interval_s=round(elapsed, 3),
            in_per_s=round((self.stats.records - records_then) / elapsed, 1),
            out_per_s=round((rows - rows_then) / elapsed, 1),
            lag=sum(lag.values()),
            lag_by_partition=lag,
            extra={"totals": totals, **self.destination.status()},
        )

    def _publish_metrics(self) -> None:
        now = time.monotonic()
        if now - self._last_metrics < self.settings.metrics_interval_s:
            return
        elapsed, self._last_metrics = now - self._last_metrics, now
        record = self.metrics(elapsed)
        self.producer.produce(
            PIPELINE_METRICS.name, key=self.destination.name.encode(), value=to_wire(record)
        )
        self.producer.poll(0)


def dead_letter(sink: str, rejection: Rejection) -> DeadLetter:
    """The dead letter of a rejected record; its id is derived from where the record is, so a
    crash that writes it twice leaves one (the ``dlq`` table replaces by ``dlq_id``)."""
    record = rejection.record
    value = record.value or b""
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError:
        raw = value.decode("latin-1")
    where = f"{record.topic}/{record.partition}/{record.offset}"
    return DeadLetter(
        dlq_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{sink}/{where}"),
        reason=rejection.reason,
        detail=rejection.detail[:8192],
        raw=raw,
        endpoint=f"sink:{sink.removeprefix('sink-')}",
        client_id=sink,
        received_at=datetime.now(UTC),
    )
