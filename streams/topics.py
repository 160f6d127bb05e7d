"""The topic catalogue: every topic, what it carries (its model), and how it is created.

Adding an event type takes its model in ``schemas/``, one line here and, to store it, one entry
in the ClickHouse table registry (``sinks/clickhouse/tables.py``) with its migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pydantic import BaseModel, Field

from schemas import Course, DeadLetter
from schemas.derived import CompletionScore, CourseCompleted, PipelineMetrics, Qos1m, RecoReport
from schemas.events import (
    CourseViewed,
    Enrollment,
    ImmersiveQos,
    LiveQos,
    PlaybackQos,
    QuizResult,
    VideoPlayback,
)
from schemas.settings import SECTION
from schemas.settlement import SettlementReceipt

DAY_MS = 24 * 60 * 60 * 1000


class TopicSettings(BaseModel):
    """Defaults for the topic catalogue; per-topic overrides by name."""

    model_config = SECTION

    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * DAY_MS, ge=-1, description="-1 keeps records forever.")
    dlq_retention_ms: int = Field(7 * DAY_MS, ge=-1)
    derived_retention_ms: int = Field(7 * DAY_MS, ge=-1)
    overrides: dict[str, dict[str, int | str]] = Field(
        default_factory=dict,
        description='JSON, e.g. {"learner.qos": {"partitions": 12, "retention.ms": 86400000}}',
    )


class Kind(Enum):
    EVENTS = "events"  # client events, keyed by learner_id
    CATALOG = "catalog"  # compacted, keyed by course_id
    DLQ = "dlq"
    DERIVED = "derived"  # written by jobs and sinks


@dataclass(frozen=True)
class Topic:
    """A topic of the catalogue. ``model`` is the pydantic model of its records (None where a
    later issue defines it); an events topic carries exactly one event type."""

    name: str
    kind: Kind
    carries: str
    model: type[BaseModel] | None = None
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def event_type(self) -> str | None:
        """The ``type`` of the events on an events topic."""
        if self.kind is not Kind.EVENTS or self.model is None:
            return None
        default = self.model.model_fields["type"].default
        return str(default)


COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}

LEARNER_VIEWS = Topic("learner.views", Kind.EVENTS, "course_viewed", CourseViewed)
LEARNER_PLAYBACK = Topic("learner.playback", Kind.EVENTS, "video_playback", VideoPlayback)
LEARNER_QOS = Topic("learner.qos", Kind.EVENTS, "playback_qos", PlaybackQos)
LEARNER_QUIZ = Topic("learner.quiz", Kind.EVENTS, "quiz_result", QuizResult)
LEARNER_ENROLLMENTS = Topic("learner.enrollments", Kind.EVENTS, "enrollment", Enrollment)
LIVE_QOS = Topic("live.qos", Kind.EVENTS, "live_qos (source = server | browser)", LiveQos)
IMMERSIVE_QOS = Topic("immersive.qos", Kind.EVENTS, "immersive_qos (VR lessons)", ImmersiveQos)
COURSE_CATALOG = Topic(
    "course.catalog",
    Kind.CATALOG,
    "courses: title, category, level, creator payout address, price, payout policy, videos",
    Course,
    COMPACTED,
)
LEARNER_DLQ = Topic("learner.dlq", Kind.DLQ, "invalid input with its reason", DeadLetter)
QOS_AGG_1M = Topic("qos.agg.1m", Kind.DERIVED, "Flink QoS 1-minute windows", Qos1m)
# Compacted, keyed by enrollment id: the last record per enrollment is what settlement reads.
COMPLETION_SCORES = Topic(
    "completion.scores",
    Kind.DERIVED,
    "completion score per enrollment, keyed by enrollment id, compacted",
    CompletionScore,
    COMPACTED,
)
COURSE_COMPLETED = Topic(
    "course.completed",
    Kind.DERIVED,
    "completions, one per enrollment, keyed by enrollment id, compacted",
    CourseCompleted,
    COMPACTED,
)
RECO_METRICS = Topic("reco.metrics", Kind.DERIVED, "progressive-validation metrics", RecoReport)
# Every log of the escrow: the finance ledger, kept forever (the settlements table is rebuilt
# from it, and reconcile reads it whole).
SETTLEMENT_RECEIPTS = Topic(
    "settlement.receipts",
    Kind.DERIVED,
    "every log of the escrow contract, kept forever",
    SettlementReceipt,
    {"retention.ms": "-1"},
)
PIPELINE_METRICS = Topic(
    "pipeline.metrics", Kind.DERIVED, "throughput and lag, every 10 s", PipelineMetrics
)

CATALOGUE: tuple[Topic, ...] = (
    LEARNER_VIEWS,
    LEARNER_PLAYBACK,
    LEARNER_QOS,
    LEARNER_QUIZ,
    LEARNER_ENROLLMENTS,
    LIVE_QOS,
    IMMERSIVE_QOS,
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

# Where each event type goes. Every record from a client is keyed by learner_id.
TOPIC_FOR_TYPE: dict[str, str] = {
    t.event_type: t.name for t in CATALOGUE if t.event_type is not None
}


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
        configs = {}
        if topic.kind in retention:
            configs["retention.ms"] = str(retention[topic.kind])
        configs.update(topic.configs)  # a topic's own configs win (settlement.receipts: forever)
        override = {k: str(v) for k, v in settings.overrides.get(topic.name, {}).items()}
        partitions = int(override.pop("partitions", settings.partitions))
        replication = int(override.pop("replication_factor", settings.replication_factor))
        configs.update(override)
        out.append(TopicSpec(topic.name, partitions, replication, configs))
    return out
