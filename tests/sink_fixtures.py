"""Helpers for the ClickHouse sink tests: a Kafka + ClickHouse stack, databases, expectations."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from clickhouse_connect.driver.client import Client

from learnstream.settings import ClickHouseSettings, KafkaSettings, Settings, SinkSettings
from learnstream.stack import Stack
from schemas import parse_event
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.rows import TABLE_FOR_TOPIC
from streams.kafka import read_to_end
from tests.conftest import stack_settings

EVENT_TABLES = {
    t: table
    for t, table in TABLE_FOR_TOPIC.items()
    if t.startswith(("learner.", "live.")) and t != "learner.dlq"
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

    def settings(self, database: str, **sink: object) -> Settings:
        options = {
            "group_id": f"sink-test-{uuid.uuid4().hex[:8]}",
            "batch_max_rows": 2000,
            "batch_max_s": 0.2,
            "metrics_interval_s": 1.0,
            **sink,
        }
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            kafka=KafkaSettings(bootstrap_servers=self.bootstrap),
            clickhouse=ClickHouseSettings(dsn=f"{self.server_dsn}/{database}"),
            sink=SinkSettings(**options),  # type: ignore[arg-type]
        )

    def factory(self, database: str) -> Callable[[], Client]:
        return lambda: connect(f"{self.server_dsn}/{database}")


@pytest.fixture(scope="module")
def sink_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkEnv]:
    """Kafka and ClickHouse of this module's own, so that its topics hold only its records."""
    settings = stack_settings(tmp_path_factory.mktemp("sinkstack"), ["kafka", "clickhouse"])
    stack = Stack(settings)
    stack.up()
    try:
        yield SinkEnv(stack, settings.kafka.bootstrap_servers, settings.clickhouse.dsn)
    finally:
        stack.down()


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
