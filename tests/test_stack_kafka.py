"""The real Kafka broker of the stack, with our client and with Kafka's own tools."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from learnstream.stack import Stack
from learnstream.stack.services import kafka_tool_command
from streams.admin import admin_client, ensure_topics
from streams.kafka import PRODUCER_DEFAULTS, make_consumer, make_producer, produce_all
from streams.topics import CATALOGUE, TopicSpec, specs
from tests.conftest import unique_topic

MESSAGES = 10_000
KEYS = 97


@pytest.fixture(scope="module")
def keyed_topic(stack: Stack) -> str:
    """A topic holding 10,000 keyed messages, produced idempotently with acks=all."""
    bootstrap = stack.settings.kafka.bootstrap_servers
    topic = unique_topic("roundtrip")
    ensure_topics(bootstrap, [TopicSpec(topic, 6, 1, {})])
    records = [(f"learner-{i % KEYS}", f"{i % KEYS}:{i}") for i in range(MESSAGES)]
    report = produce_all(make_producer(bootstrap), topic, records)
    assert report.delivered == MESSAGES
    assert report.failed == []
    return topic


def test_producer_helper_is_idempotent_with_acks_all() -> None:
    assert PRODUCER_DEFAULTS["enable.idempotence"] is True
    assert PRODUCER_DEFAULTS["acks"] == "all"


def test_kafka_10k_keyed_messages_are_all_consumed_in_order_per_key(
    stack: Stack, keyed_topic: str
) -> None:
    consumer = make_consumer(stack.settings.kafka.bootstrap_servers, unique_topic("group"))
    consumer.subscribe([keyed_topic])
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    deadline = time.monotonic() + 90
    received = 0
    try:
        while received < MESSAGES and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                assert msg.error() is None, msg.error()
                key = msg.key().decode()
                seq = int(msg.value().decode().split(":")[1])
                by_key[key].append(seq)
                partitions_of_key[key].add(msg.partition())
                received += 1
        # nothing more than what was produced
        assert consumer.consume(num_messages=10, timeout=1.0) == []
    finally:
        consumer.close()
    assert received == MESSAGES
    assert len(by_key) == KEYS
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"{key} out of order"
        assert len(set(seqs)) == len(seqs), f"{key} duplicated"
        assert len(partitions_of_key[key]) == 1, f"{key} spread over partitions"
    assert sum(len(s) for s in by_key.values()) == MESSAGES


def test_kafka_console_consumer_from_the_same_jars_reads_the_messages(
    stack: Stack, keyed_topic: str
) -> None:
    settings = stack.settings
    cmd = kafka_tool_command(
        settings,
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server",
        settings.kafka.bootstrap_servers,
        "--topic",
        keyed_topic,
        "--from-beginning",
        "--max-messages",
        str(MESSAGES),
        "--timeout-ms",
        "60000",
        "--property",
        "print.key=true",
        "--property",
        "key.separator=|",
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == MESSAGES
    seen: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        key, value = line.split("|")
        learner, seq = value.split(":")
        assert key == f"learner-{learner}"
        seen[key].append(int(seq))
    assert sum(len(v) for v in seen.values()) == MESSAGES
    assert all(v == sorted(v) for v in seen.values())


def test_stack_up_creates_the_topic_catalogue(stack: Stack) -> None:
    settings = stack.settings
    admin = admin_client(settings.kafka.bootstrap_servers)
    metadata = admin.list_topics(timeout=10)
    expected = {spec.name: spec for spec in specs(settings.topics)}
    assert {t.name for t in CATALOGUE} == set(expected)
    for name, spec in expected.items():
        assert name in metadata.topics, name
        assert len(metadata.topics[name].partitions) == spec.partitions
    compacted = ["course.catalog", "completion.scores", "course.completed"]
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in [*compacted, "learner.dlq"]]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for name in compacted:  # read whole at start, keyed by course / by enrollment id
        assert configs[name]["cleanup.policy"].value == "compact", name
    assert configs["learner.dlq"]["retention.ms"].value == str(settings.topics.dlq_retention_ms)


def test_ensure_topics_is_idempotent(stack: Stack) -> None:
    outcome = ensure_topics(stack.settings.kafka.bootstrap_servers, specs(stack.settings.topics))
    assert set(outcome.values()) == {"exists"}


def test_topic_overrides_apply_and_unknown_topics_are_refused() -> None:
    from learnstream.settings import TopicSettings

    topics = TopicSettings(overrides={"learner.qos": {"partitions": 12, "retention.ms": 1000}})
    qos = next(s for s in specs(topics) if s.name == "learner.qos")
    assert qos.partitions == 12
    assert qos.configs["retention.ms"] == "1000"
    with pytest.raises(ValueError, match=r"unknown topics \['learner\.nope'\]"):
        specs(TopicSettings(overrides={"learner.nope": {"partitions": 1}}))
