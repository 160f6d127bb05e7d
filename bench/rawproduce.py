"""The baseline, in a process of its own: the same events straight into Kafka with the same
producer settings the collector uses (idempotent, acks=all), keyed by learner, event time as
the record timestamp. What the collector adds on top is HTTP, validation and the per-batch wait.

Usage: python -m bench.rawproduce BOOTSTRAP FILE
Prints one JSON line: {"events": n, "seconds": s}.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

import orjson

from streams.kafka import make_producer
from streams.topics import TOPIC_FOR_TYPE


def main() -> None:
    bootstrap, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        batches = [orjson.loads(line) for line in f if line.strip()]
    records = []
    for batch in batches:
        for event in batch:
            at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
            records.append(
                (
                    TOPIC_FOR_TYPE[event["type"]],
                    event["learner_id"].encode(),
                    orjson.dumps(event),
                    int(at.timestamp() * 1000),
                )
            )
    producer = make_producer(bootstrap)
    failed = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    started = time.perf_counter()
    for i, (topic, key, value, ts) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=ts, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:  # serve delivery callbacks now and then, not per record
            producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - started
    if left or failed:
        raise SystemExit(f"{left} unconfirmed, {len(failed)} failed")
    print(json.dumps({"events": len(records), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
