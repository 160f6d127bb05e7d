"""confluent-kafka producer and consumer helpers with the project's delivery guarantees."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.errors import KafkaUnreachable

log = logging.getLogger(__name__)
_librdkafka = logging.getLogger("streams.kafka.librdkafka")


class _LibrdkafkaLog(logging.Logger):
    """Where librdkafka's own log lines go (instead of stderr): Python logging, one level down.

    librdkafka reports every broker it cannot reach, once a second, as an error, for example
    "Connect to ipv4#127.0.0.1:9092 failed: Connection refused" after a stack has stopped. The
    project's own code says plainly what is down; librdkafka's lines are kept for diagnosis at
    INFO (its errors and warnings) and DEBUG (the rest), so they stay off the console at the
    default level and appear in a service's log.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        _librdkafka.log(
            logging.INFO if level >= logging.WARNING else logging.DEBUG, msg, *args, **kwargs
        )


LIBRDKAFKA_LOG = _LibrdkafkaLog("librdkafka")

# Idempotent, acks=all: a record acknowledged by the broker is written once, in order per key.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "delivery.timeout.ms": 120_000,
}

# Offsets are committed by the application after its work succeeded, never automatically.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "partition.assignment.strategy": "cooperative-sticky",
}


class DeliveryError(RuntimeError):
    """The broker did not confirm one or more records."""


@dataclass
class DeliveryReport:
    """Counts of confirmed and failed deliveries, filled in by the delivery callback."""

    delivered: int = 0
    failed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
            else:
                self.failed.append(
                    f"{msg.topic()}[{msg.partition()}] key={msg.key()!r}: {err.str()}"
                )


def client_config(bootstrap_servers: str, **settings: Any) -> dict[str, Any]:
    """A librdkafka configuration whose log lines go through Python logging."""
    return {"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG, **settings}


def make_producer(bootstrap_servers: str, **overrides: Any) -> Producer:
    return Producer(client_config(bootstrap_servers, **{**PRODUCER_DEFAULTS, **overrides}))


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    config = {"group.id": group_id, **CONSUMER_DEFAULTS, **overrides}
    return Consumer(client_config(bootstrap_servers, **config))


def admin_client(bootstrap_servers: str, **overrides: Any) -> AdminClient:
    return AdminClient(client_config(bootstrap_servers, **overrides))


def require_kafka(bootstrap_servers: str, timeout: float = 5.0) -> None:
    """Raise :class:`KafkaUnreachable` unless a broker of ``bootstrap_servers`` answers."""
    try:
        metadata = admin_client(bootstrap_servers).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnreachable(bootstrap_servers, "no broker answered") from exc
    if not metadata.brokers:
        raise KafkaUnreachable(bootstrap_servers, "no broker answered")


def produce_all(
    producer: Producer,
    topic: str,
    records: list[tuple[bytes | str, bytes | str]],
    timeout: float = 60.0,
) -> DeliveryReport:
    """Produce (key, value) records and wait until the broker confirmed every one of them.

    Raises DeliveryError naming the failed records when any was not confirmed.
    """
    report = DeliveryReport()
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:  # local queue full: serve callbacks until there is room
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining or report.failed:
        raise DeliveryError(
            f"{remaining} record(s) unconfirmed after {timeout}s and {len(report.failed)} "
            f"failed; first failures: {report.failed[:5]}"
        )
    return report


@dataclass(frozen=True)
class ReadRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def read_to_end(
    bootstrap_servers: str,
    topics: list[str],
    timeout: float = 30.0,
    since: dict[tuple[str, int], int] | None = None,
) -> list[ReadRecord]:
    """Every committed record of ``topics`` up to their ends as of now (no group offsets used);
    from ``since[(topic, partition)]`` where given, else from the start."""
    consumer = make_consumer(bootstrap_servers, f"learnstream-reader-{uuid.uuid4().hex[:8]}")
    out: list[ReadRecord] = []
    try:
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            for partition in metadata.partitions:
                tp = TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout)
                low = max(low, (since or {}).get((topic, partition), low))
                if high > low:
                    ends[(topic, partition)] = high
                    assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout * 4
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                where = (msg.topic(), msg.partition())
                out.append(
                    ReadRecord(
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        msg.timestamp()[1],
                    )
                )
                if msg.offset() + 1 >= ends.get(where, 0):
                    ends.pop(where, None)
            # A transaction's commit marker takes an offset no record has: the position tells.
            if ends:
                positions = consumer.position([TopicPartition(t, p) for t, p in ends])
                for tp in positions:
                    if tp.offset >= ends[(tp.topic, tp.partition)]:
                        ends.pop((tp.topic, tp.partition))
        if ends:
            raise TimeoutError(f"could not read to the end of {sorted(ends)}")
    finally:
        consumer.close()
    return out


def end_offsets(
    bootstrap_servers: str, topics: list[str], timeout: float = 30.0
) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics`` now."""
    consumer = make_consumer(bootstrap_servers, f"learnstream-reader-{uuid.uuid4().hex[:8]}")
    try:
        out: dict[tuple[str, int], int] = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
                out[(topic, partition)] = high
        return out
    finally:
        consumer.close()
