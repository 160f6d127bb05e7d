"""The lag monitor: every consumer group's committed-offset lag, in the pipeline.metrics shape.

Services that cannot report for themselves (the Flink jobs: their Kafka sources commit offsets
to their consumer group on each checkpoint) are covered here, and every other group too, so that
`learnstream ps` and the dashboards show every part the same way. Every ``interval_s`` one
:class:`~schemas.derived.PipelineMetrics` record per group goes to ``pipeline.metrics``:

- ``service``: the group id without the ``learnstream-`` prefix (``flink-qos``,
  ``sink-clickhouse``); ``instance``: this monitor; ``group``: the group id;
- ``lag_by_partition``: end offset (read_committed: the last stable offset) minus the committed
  offset, for each partition the group has committed; ``lag``: their sum;
- ``in_per_s``: how fast the committed offsets advanced since the last sample;
- ``extra``: the group's state and member count, and the partitions it has no commit for.

``learnstream jobs run lag-monitor`` runs it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas import to_wire
from schemas.derived import PipelineMetrics
from streams.kafka import admin_client, make_producer
from streams.topics import PIPELINE_METRICS

log = logging.getLogger(__name__)

SERVICE_PREFIX = "learnstream-"


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    state: str
    members: int
    committed: dict[tuple[str, int], int]  # only partitions with a commit


def service_of(group: str) -> str:
    return group.removeprefix(SERVICE_PREFIX) or group


class LagMonitor:
    """Samples every consumer group (or those ``groups`` names) and publishes their lag."""

    def __init__(
        self,
        bootstrap_servers: str,
        interval_s: float = 10.0,
        groups: Iterable[str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.admin: AdminClient = admin_client(bootstrap_servers)
        self.producer = make_producer(bootstrap_servers)
        self.interval_s = interval_s
        self.only = set(groups) if groups is not None else None
        self.timeout = timeout_s
        self.instance = f"lag-monitor@{socket.gethostname()}-{os.getpid()}"
        self.stop_event = threading.Event()
        self._previous: dict[str, tuple[float, int]] = {}  # group -> (when, sum of committed)

    def groups(self) -> list[GroupOffsets]:
        listing = self.admin.list_consumer_groups(request_timeout=self.timeout).result()
        ids = sorted(
            g.group_id for g in listing.valid if self.only is None or g.group_id in self.only
        )
        if not ids:
            return []
        described = self.admin.describe_consumer_groups(ids, request_timeout=self.timeout)
        out = []
        for group in ids:
            try:
                info = described[group].result()
                offsets = self.admin.list_consumer_group_offsets(  # one group per request
                    [ConsumerGroupTopicPartitions(group)], request_timeout=self.timeout
                )[group].result()
            except Exception as exc:  # a group that vanished between the calls
                log.info("group %s: %s", group, exc)
                continue
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in offsets.topic_partitions or []
                if tp.offset >= 0
            }
            out.append(GroupOffsets(group, str(info.state.name), len(info.members), committed))
        return out

    def ends(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offset of each partition as a read_committed consumer sees it."""
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
        if not request:
            return {}
        futures = self.admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self.timeout
        )
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def sample(self) -> list[PipelineMetrics]:
        """One record per consumer group, as of now."""
        groups = self.groups()
        ends = self.ends({key for g in groups for key in g.committed})
        now, at = time.monotonic(), datetime.now(UTC)
        records = []
        for g in groups:
            lag = {
                f"{t}/{p}": max(0, ends[(t, p)] - offset)
                for (t, p), offset in sorted(g.committed.items())
                if (t, p) in ends
            }
            total = sum(g.committed.values())
            when, before = self._previous.get(g.group, (now, total))
            elapsed = now - when
            self._previous[g.group] = (now, total)
            records.append(
                PipelineMetrics(
                    service=service_of(g.group),
                    instance=self.instance,
                    group=g.group,
                    at=at,
                    interval_s=round(elapsed, 3),
                    in_per_s=round(max(0, total - before) / elapsed, 1) if elapsed > 0 else 0.0,
                    out_per_s=0.0,
                    lag=sum(lag.values()) if g.committed else None,
                    lag_by_partition=lag,
                    extra={"source": "committed offsets", "state": g.state, "members": g.members},
                )
            )
        return records

    def publish(self, records: list[PipelineMetrics]) -> None:
        for record in records:
            self.producer.produce(
                PIPELINE_METRICS.name, key=record.service.encode(), value=to_wire(record)
            )
        self.producer.flush(30)

    def run(self, rounds: int | None = None) -> None:
        """Sample and publish every ``interval_s`` until stopped (or for ``rounds`` rounds)."""
        done = 0
        while not self.stop_event.is_set() and (rounds is None or done < rounds):
            started = time.monotonic()
            try:
                self.publish(self.sample())
            except Exception as exc:  # Kafka away: say so, try again next round
                log.warning("lag sample failed: %s", exc)
            done += 1
            self.stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stop_event.set()
