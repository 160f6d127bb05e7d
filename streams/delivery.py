"""Awaiting Kafka's confirmation from asyncio code, one wake-up per batch.

librdkafka calls delivery callbacks from ``poll()``; a background thread polls. Each batch
counts its outstanding records in the callback and wakes the awaiting coroutine once, when the
last one is confirmed (or failed), so the collector answers 2xx only after Kafka has the data.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.kafka import make_producer


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None = None


class _Batch:
    __slots__ = ("errors", "future", "lock", "loop", "remaining", "settled")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.remaining = size
        self.errors: list[str | None] = [None] * size
        self.settled = [False] * size
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.lock = threading.Lock()

    def callback(self, index: int) -> Any:
        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self.errors[index] = err.str()
            self.settled[index] = True
            with self.lock:
                self.remaining -= 1
                last = self.remaining == 0
            if last:
                self.loop.call_soon_threadsafe(self._resolve)

        return done

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class AsyncProducer:
    """An idempotent, acks=all producer whose batches can be awaited."""

    def __init__(self, bootstrap_servers: str, **overrides: Any) -> None:
        self.producer: Producer = make_producer(bootstrap_servers, **overrides)
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self.producer.poll(0.05)

    async def send(self, records: Sequence[Record], timeout: float) -> list[str | None]:
        """Produce ``records``; return one error (or None) per record once all are settled.

        A record not confirmed within ``timeout`` counts as failed.
        """
        if not records:
            return []
        batch = _Batch(len(records), asyncio.get_running_loop())
        for index, record in enumerate(records):
            while True:
                try:
                    self.producer.produce(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        timestamp=record.timestamp_ms or 0,
                        on_delivery=batch.callback(index),
                    )
                    break
                except BufferError:  # local queue full: back-pressure, let deliveries drain
                    await asyncio.sleep(0.005)
        try:
            await asyncio.wait_for(asyncio.shield(batch.future), timeout)
        except TimeoutError:
            late = f"not confirmed by Kafka within {timeout:.0f}s"
            return [e if ok else late for e, ok in zip(batch.errors, batch.settled, strict=True)]
        return batch.errors

    def close(self, timeout: float = 30.0) -> int:
        """Flush outstanding records and stop polling; returns how many were left unconfirmed."""
        left = self.producer.flush(timeout)
        self._running = False
        self._poller.join(timeout=5)
        return int(left)
