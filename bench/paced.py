"""The sink benchmark's latency producer, in a process of its own: template events re-stamped
(event_id, occurred_at, received_at = now) and produced at a fixed rate.

Usage: python -m bench.paced BOOTSTRAP TEMPLATES RATE SECONDS
(``TEMPLATES`` is a JSON Lines file of events, sent again and again in order.)
Prints one JSON line: ``{"sent", "delivered", "seconds", "failed"}``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from schemas.base import format_utc
from streams.kafka import DeliveryReport, make_producer
from streams.simulate import timestamp_ms
from streams.topics import TOPIC_FOR_TYPE


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str]) -> None:
    """Templates re-stamped and produced at ``rate`` events/s for ``seconds``."""
    bootstrap, path, rate, seconds = argv[0], Path(argv[1]), int(argv[2]), float(argv[3])
    templates = []
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        occurred = _parse_utc(event["occurred_at"])
        deadline = event.get("deadline_at")
        lead = _parse_utc(deadline) - occurred if deadline else None
        templates.append((TOPIC_FOR_TYPE[event["type"]], event["learner_id"].encode(), event, lead))
    producer = make_producer(bootstrap)
    delivery = DeliveryReport()
    total = round(rate * seconds)
    sent = 0
    started = time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            topic, key, template, lead = templates[sent % len(templates)]
            now = datetime.now(UTC)
            stamp = format_utc(now)
            event = {**template, "event_id": str(uuid.uuid4()), "occurred_at": stamp,
                     "received_at": stamp}  # fmt: skip
            if lead is not None:
                event["deadline_at"] = format_utc(now + lead)
            while True:
                try:
                    producer.produce(topic, value=orjson.dumps(event), key=key,
                                     timestamp=timestamp_ms(now), on_delivery=delivery)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.01)
            sent += 1
        producer.poll(0)
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    elapsed = time.monotonic() - started
    left = producer.flush(60)
    print(json.dumps({"sent": sent, "delivered": delivery.delivered, "seconds": elapsed,
                      "failed": len(delivery.failed) + left}), flush=True)  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: python -m bench.paced BOOTSTRAP TEMPLATES RATE SECONDS")
    main(sys.argv[1:])
