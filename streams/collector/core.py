"""From checked items to Kafka: dead letters, duplicates, delivery, status code, counters."""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import to_wire
from schemas.derived import PipelineMetrics
from streams.delivery import AsyncProducer, Record
from streams.intake import Accepted, Rejected
from streams.topics import LEARNER_DLQ, PIPELINE_METRICS

log = logging.getLogger(__name__)

# Outcomes counted per event (or per request, for request-level faults).
OUTCOMES = (
    "accepted",
    "duplicate",
    "malformed_json",
    "unknown_type",
    "invalid",
    "unauthorized",
    "forbidden",
    "too_large",
    "unsupported_media_type",
    "delivery_failed",
)
# The outcomes that count events (the others count whole requests).
EVENT_OUTCOMES = ("accepted", "duplicate", "malformed_json", "unknown_type", "invalid")


@dataclass
class Counters:
    """What the collector has seen since it started, by outcome."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = field(default_factory=time.monotonic)

    def add(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n

    def snapshot(self) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in OUTCOMES}


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]


def now_utc() -> datetime:
    return datetime.now(UTC)


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Ingest:
    """Writes what the intake decided, and answers only after Kafka confirmed all of it."""

    def __init__(self, producer: AsyncProducer, delivery_timeout_s: float) -> None:
        self.producer = producer
        self.timeout = delivery_timeout_s
        self.counters = Counters()

    async def write(
        self,
        checked: Sequence[Accepted | Rejected],
        endpoint: str,
        client_id: str,
        received_at: datetime,
    ) -> Outcome:
        results: list[dict[str, Any]] = []
        records: list[Record] = []
        owners: list[int] = []  # which result each record belongs to
        seen: set[str] = set()
        for index, item in enumerate(checked):
            if isinstance(item, Accepted):
                event_id = str(item.event.event_id)
                if event_id in seen:
                    results.append(
                        _result(
                            index,
                            event_id,
                            "duplicate",
                            None,
                            "event_id repeated in this batch; written once",
                        )
                    )
                    continue
                seen.add(event_id)
                results.append(_result(index, event_id, "accepted"))
                records.append(
                    Record(
                        item.topic, item.key, to_wire(item.event), millis(item.event.occurred_at)
                    )
                )
            else:
                results.append(_result(index, item.event_id, "rejected", item.reason, item.detail))
                letter = item.dead_letter(endpoint, client_id, received_at)
                records.append(
                    Record(
                        LEARNER_DLQ.name, client_id.encode(), to_wire(letter), millis(received_at)
                    )
                )
            owners.append(index)

        errors = await self.producer.send(records, self.timeout)
        failed = 0
        for owner, error in zip(owners, errors, strict=True):
            if error is not None:
                failed += 1
                results[owner].update(status="failed", reason="delivery_failed", detail=error)
        tally = collections.Counter(r["reason"] or r["status"] for r in results)
        for outcome, n in tally.items():
            self.counters.add(outcome, n)
        body = {
            "accepted": tally["accepted"],
            "duplicates": tally["duplicate"],
            "rejected": sum(1 for r in results if r["status"] == "rejected"),
            "results": results,
        }
        if failed:
            log.error("%s: %d of %d records not confirmed by Kafka", endpoint, failed, len(records))
            body["error"] = "Kafka did not confirm every record; retry the request"
            return Outcome(503, body)
        if body["rejected"] == 0:
            return Outcome(200, body)
        return Outcome(207 if body["accepted"] + body["duplicates"] else 422, body)

    async def dead_letter(
        self, rejected: Rejected, endpoint: str, client_id: str, received_at: datetime
    ) -> bool:
        """Write one request-level dead letter (malformed JSON). True once Kafka confirmed it."""
        letter = rejected.dead_letter(endpoint, client_id, received_at)
        record = Record(LEARNER_DLQ.name, client_id.encode(), to_wire(letter), millis(received_at))
        errors = await self.producer.send([record], self.timeout)
        self.counters.add(rejected.reason if errors[0] is None else "delivery_failed")
        return errors[0] is None


def _result(
    index: int,
    event_id: str | None,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": event_id,
        "status": status,
        "reason": reason,
        "detail": detail,
    }


async def publish_metrics(
    ingest: Ingest,
    producer: AsyncProducer,
    interval_s: float,
    port: int,
    service: str = "collector",
    extra: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Every ``interval_s``, the health of a service that writes through an :class:`Ingest`
    (the collector, the live server) to ``pipeline.metrics`` (the shared
    :class:`~schemas.derived.PipelineMetrics` shape): events taken in and written per second,
    and every outcome's total and rate under ``extra``, with what ``extra()`` adds."""
    instance = f"{socket.gethostname()}:{port}"
    previous = ingest.counters.snapshot()
    while True:
        await asyncio.sleep(interval_s)
        current = ingest.counters.snapshot()
        delta = {k: current[k] - previous[k] for k in current}
        previous = current
        per_event = sum(delta[k] for k in EVENT_OUTCOMES)
        record = PipelineMetrics(
            service=service,
            instance=instance,
            at=now_utc(),
            interval_s=interval_s,
            in_per_s=round(per_event / interval_s, 3),
            out_per_s=round(delta["accepted"] / interval_s, 3),
            extra={
                "totals": current,
                "per_s": {k: round(v / interval_s, 3) for k, v in delta.items()},
                **(extra() if extra is not None else {}),
            },
        )
        errors = await producer.send(
            [Record(PIPELINE_METRICS.name, service.encode(), to_wire(record))], 30
        )
        if errors[0] is not None:
            log.warning("pipeline.metrics not written: %s", errors[0])
