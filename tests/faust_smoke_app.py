"""A minimal faust-streaming worker: proves Faust (aiokafka) works against the Kafka 4 broker.

Run by tests/test_faust.py as ``faust -A tests.faust_smoke_app worker``; configured by env:
SMOKE_BOOTSTRAP, SMOKE_TOPIC, SMOKE_OUT (a file it appends each value to), SMOKE_DATADIR.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    f"learnstream-smoke-{os.environ['SMOKE_TOPIC']}",
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    datadir=os.environ["SMOKE_DATADIR"],
    topic_replication_factor=1,
    topic_partitions=3,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["SMOKE_TOPIC"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions=3)


@app.agent(source)
async def record(stream: faust.Stream) -> None:
    async for key, value in stream.items():
        counts[key.decode()] += 1
        with open(os.environ["SMOKE_OUT"], "a", encoding="utf-8") as out:
            out.write(f"{key.decode()}|{value.decode()}|{counts[key.decode()]}\n")
