"""Creating topics with confluent-kafka's admin client."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from streams.kafka import admin_client
from streams.topics import TopicSpec


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic."""


def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> dict[str, str]:
    """Create the topics that do not exist yet. Returns {topic: "created" | "exists"}."""
    specs = list(specs)
    admin = admin_client(bootstrap_servers)
    existing = set(admin.list_topics(timeout=timeout).topics)
    outcome = {spec.name: "exists" for spec in specs if spec.name in existing}
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=s.configs,
        )
        for s in specs
        if s.name not in existing
    ]
    if not new:
        return outcome
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() == "TOPIC_ALREADY_EXISTS":  # created concurrently: fine
                outcome[name] = "exists"
                continue
            raise TopicCreationError(f"creating topic {name!r} failed: {error.str()}") from exc
        outcome[name] = "created"
    return outcome
