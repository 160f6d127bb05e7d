"""The topic catalogue of DESIGN.md, in code, and the admin call that creates it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from learnstream.settings import TopicSettings


class Kind(Enum):
    EVENTS = "events"  # client events, keyed by learner_id
    CATALOG = "catalog"  # compacted, keyed by course_id
    DLQ = "dlq"
    DERIVED = "derived"  # written by jobs and sinks


@dataclass(frozen=True)
class Topic:
    name: str
    kind: Kind
    carries: str
    configs: dict[str, str] = field(default_factory=dict)


LEARNER_VIEWS = Topic("learner.views", Kind.EVENTS, "course_viewed")
LEARNER_PLAYBACK = Topic("learner.playback", Kind.EVENTS, "video_playback")
LEARNER_QOS = Topic("learner.qos", Kind.EVENTS, "playback_qos")
LEARNER_QUIZ = Topic("learner.quiz", Kind.EVENTS, "quiz_result")
LEARNER_ENROLLMENTS = Topic("learner.enrollments", Kind.EVENTS, "enrollment")
LIVE_QOS = Topic("live.qos", Kind.EVENTS, "live_qos (source = server | browser)")
COURSE_CATALOG = Topic(
    "course.catalog",
    Kind.CATALOG,
    "courses: title, category, level, creator payout address, price, payout policy, videos",
    {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
)
LEARNER_DLQ = Topic("learner.dlq", Kind.DLQ, "invalid input with its reason")
QOS_AGG_1M = Topic("qos.agg.1m", Kind.DERIVED, "Flink QoS 1-minute windows")
COMPLETION_SCORES = Topic("completion.scores", Kind.DERIVED, "completion score per enrollment")
COURSE_COMPLETED = Topic("course.completed", Kind.DERIVED, "completions, keyed per enrollment")
RECO_METRICS = Topic("reco.metrics", Kind.DERIVED, "progressive-validation metrics")
SETTLEMENT_RECEIPTS = Topic("settlement.receipts", Kind.DERIVED, "settlement transactions")
PIPELINE_METRICS = Topic("pipeline.metrics", Kind.DERIVED, "throughput and lag, every 10 s")

CATALOGUE: tuple[Topic, ...] = (
    LEARNER_VIEWS,
    LEARNER_PLAYBACK,
    LEARNER_QOS,
    LEARNER_QUIZ,
    LEARNER_ENROLLMENTS,
    LIVE_QOS,
    COURSE_CATALOG,
    LEARNER_DLQ,
    QOS_AGG_1M,
    COMPLETION_SCORES,
    COURSE_COMPLETED,
    RECO_METRICS,
    SETTLEMENT_RECEIPTS,
    PIPELINE_METRICS,
)

BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOGUE}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it is created: name, partitions, replication and configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def specs(settings: TopicSettings) -> list[TopicSpec]:
    """The catalogue with the configured defaults and per-topic overrides applied."""
    retention = {
        Kind.EVENTS: settings.retention_ms,
        Kind.DLQ: settings.dlq_retention_ms,
        Kind.DERIVED: settings.derived_retention_ms,
    }
    unknown = sorted(set(settings.overrides) - set(BY_NAME))
    if unknown:
        raise ValueError(
            f"LEARNSTREAM_TOPICS__OVERRIDES names unknown topics {unknown}; "
            f"known: {sorted(BY_NAME)}"
        )
    out = []
    for topic in CATALOGUE:
        configs = dict(topic.configs)
        if topic.kind in retention:
            configs["retention.ms"] = str(retention[topic.kind])
        override = {k: str(v) for k, v in settings.overrides.get(topic.name, {}).items()}
        partitions = int(override.pop("partitions", settings.partitions))
        replication = int(override.pop("replication_factor", settings.replication_factor))
        configs.update(override)
        out.append(TopicSpec(topic.name, partitions, replication, configs))
    return out


# Where each event type goes. Every record from a client is keyed by learner_id.
TOPIC_FOR_TYPE: dict[str, str] = {
    "course_viewed": LEARNER_VIEWS.name,
    "video_playback": LEARNER_PLAYBACK.name,
    "playback_qos": LEARNER_QOS.name,
    "quiz_result": LEARNER_QUIZ.name,
    "enrollment": LEARNER_ENROLLMENTS.name,
    "live_qos": LIVE_QOS.name,
}
