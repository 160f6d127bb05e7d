"""confluent-kafka producer and consumer helpers with the project's delivery guarantees."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

log = logging.getLogger(__name__)

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


def make_producer(bootstrap_servers: str, **overrides: Any) -> Producer:
    config = {"bootstrap.servers": bootstrap_servers, **PRODUCER_DEFAULTS, **overrides}
    return Producer(config)


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    config = {"bootstrap.servers": bootstrap_servers, "group.id": group_id, **CONSUMER_DEFAULTS}
    config.update(overrides)
    return Consumer(config)


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
