"""A smoke test of a running stack: a keyed produce/consume round trip, ClickHouse and the chain."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from settlement.chain import chain_id
from sinks.clickhouse.client import connect
from streams.admin import ensure_topics
from streams.kafka import admin_client, make_consumer, make_producer, produce_all
from streams.topics import TopicSpec

if TYPE_CHECKING:
    from learnstream.settings import Settings


class SmokeError(RuntimeError):
    """The stack answered, but not as it should."""


@dataclass(frozen=True)
class SmokeResult:
    produced: int
    consumed: int
    kafka_s: float
    clickhouse_version: str
    chain_id: int


def kafka_round_trip(bootstrap: str, messages: int = 1000, keys: int = 50) -> tuple[int, float]:
    """Produce keyed messages to a fresh topic, read them back, check order per key."""
    started = time.monotonic()
    topic = f"learnstream.smoke.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [TopicSpec(topic, 3, 1, {})])
    try:
        records = [(f"k{i % keys}", str(i)) for i in range(messages)]
        produce_all(make_producer(bootstrap), topic, records)
        consumer = make_consumer(bootstrap, f"smoke-{uuid.uuid4().hex[:8]}")
        consumer.subscribe([topic])
        seen: dict[str, list[int]] = defaultdict(list)
        count = 0
        deadline = time.monotonic() + 60
        try:
            while count < messages and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=500, timeout=1.0):
                    if msg.error():
                        raise SmokeError(f"consume error: {msg.error()}")
                    seen[msg.key().decode()].append(int(msg.value()))
                    count += 1
        finally:
            consumer.close()
        if count != messages:
            raise SmokeError(f"produced {messages} messages to {topic} but consumed {count}")
        for key, values in seen.items():
            if values != sorted(values):
                raise SmokeError(f"messages of key {key} arrived out of order: {values[:10]}…")
    finally:
        admin_client(bootstrap).delete_topics([topic], operation_timeout=30)
    return count, time.monotonic() - started


def clickhouse_version(dsn: str) -> str:
    client = connect(dsn)
    try:
        return str(client.query("SELECT version() AS v").first_row[0])
    finally:
        client.close()


def run(settings: Settings, messages: int = 1000) -> SmokeResult:
    consumed, seconds = kafka_round_trip(settings.kafka.bootstrap_servers, messages)
    return SmokeResult(
        produced=messages,
        consumed=consumed,
        kafka_s=seconds,
        clickhouse_version=clickhouse_version(settings.clickhouse.dsn),
        chain_id=chain_id(settings.chain.rpc_url),
    )
