"""Helpers for the ClickHouse sink tests: a Kafka + ClickHouse stack, databases, expectations."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from clickhouse_connect.driver.client import Client

from learnstream.settings import ClickHouseSettings, SinkSettings
from learnstream.stack import Stack
from learnstream.stack.testing import throwaway_stack
from schemas import parse_event
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import TABLE_FOR_TOPIC
from streams.kafka import read_to_end

EVENT_TABLES = {
    t: table
    for t, table in TABLE_FOR_TOPIC.items()
    if t.startswith(("learner.", "live.", "immersive.")) and t != "learner.dlq"
}


@dataclass
class SinkEnv:
    stack: Stack
    bootstrap: str
    server_dsn: str

    def database(self) -> tuple[str, Client]:
        """A fresh, migrated database and a client bound to it."""
        name = f"sink_{uuid.uuid4().hex[:10]}"
        admin = connect(self.server_dsn)
        admin.command(f"CREATE DATABASE {name}")
        admin.close()
        client = connect(f"{self.server_dsn}/{name}")
        migrate(client)
        return name, client

    def sink(
        self, database: str, topics: list[str] | None = None, **sink: object
    ) -> ClickHouseSink:
        """A ClickHouse sink writing into ``database`` (``topics``, default all), in a fresh
        consumer group unless ``group_id`` says otherwise, with small fast batches."""
        options = {
            "group_id": f"sink-test-{uuid.uuid4().hex[:8]}",
            "batch_max_rows": 2000,
            "batch_max_s": 0.2,
            "metrics_interval_s": 1.0,
            **sink,
        }
        return ClickHouseSink(
            self.bootstrap,
            SinkSettings(**options),  # type: ignore[arg-type]
            ClickHouseSettings(dsn=f"{self.server_dsn}/{database}"),
            self.factory(database),
            topics=topics,
        )

    def factory(self, database: str) -> Callable[[], Client]:
        return lambda: connect(f"{self.server_dsn}/{database}")


@pytest.fixture(scope="module")
def sink_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkEnv]:
    """Kafka and ClickHouse of this module's own, so that its topics hold only its records."""
    folder = tmp_path_factory.mktemp("sinkstack")
    with throwaway_stack(folder, ["kafka", "clickhouse"]) as stack:
        settings = stack.settings
        yield SinkEnv(stack, settings.kafka.bootstrap_servers, settings.clickhouse.dsn)


def event_ids_in_kafka(bootstrap: str) -> dict[str, set[str]]:
    """{table: distinct event ids} of every valid event record in the topics right now."""
    out: dict[str, set[str]] = defaultdict(set)
    for record in read_to_end(bootstrap, sorted(EVENT_TABLES)):
        try:
            out[EVENT_TABLES[record.topic]].add(str(parse_event(record.value).event_id))
        except ValueError:  # not an event (the DLQ tests send some on purpose)
            continue
    return out


def counts(client: Client, tables: list[str]) -> dict[str, tuple[int, int]]:
    """{table: (count(), uniqExact(event_id))}, without FINAL."""
    out = {}
    for table in tables:
        row = client.query(f"SELECT count(), uniqExact(event_id) FROM {table}").first_row
        out[table] = (int(row[0]), int(row[1]))
    return out
