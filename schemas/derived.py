"""Records the pipeline derives: QoS minutes (``qos.agg.1m``) and the health report every
service publishes (``pipeline.metrics``, also the shape of ``reco.metrics``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.base import Id, UtcDatetime

UInt64 = Annotated[int, Field(ge=0, lt=2**64)]


class Qos1m(BaseModel):
    """One ``qos.agg.1m`` record (written by the Flink QoS job): a JSON object with the
    ``qos_1m`` column names.

    Unknown fields are ignored (additive changes keep working); missing ones are errors.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    window_start: UtcDatetime
    window_end: UtcDatetime
    course_id: str
    network_type: str = Field(min_length=1)
    region: str = Field(min_length=1)
    edge_node: str = Field(min_length=1)
    plays: UInt64
    startup_p50_ms: float | None  # None: no session of the minute started
    startup_p95_ms: float | None
    startup_time_sum_ms: UInt64
    startups: UInt64
    rebuffer_ms: UInt64
    played_ms: UInt64
    video_start_failures: UInt64
    exits_before_start: UInt64
    bitrate_kbps_sum: UInt64
    bitrate_samples: UInt64
    bitrate_switches: UInt64
    late_events: UInt64
    version: UInt64


# "topic/partition", as in lag_by_partition
_TOPIC_PARTITION = re.compile(r"^[A-Za-z0-9._-]{1,249}/\d{1,5}$")


class PipelineMetrics(BaseModel):
    """One service instance's health report, every ``interval_s`` (10 s by default).

    The one shape every service publishes to ``pipeline.metrics`` (and the recommendation app to
    ``reco.metrics``); ``learnstream ps`` and the dashboards read it. A service that cannot
    report for itself (a Flink job) is reported by the lag monitor from its consumer group's
    committed offsets. Figures of one kind of service only go under ``extra``.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    service: Id = Field(description="What runs: collector, sink-clickhouse, flink-qos, reco, …")
    instance: Id = Field(description="Which copy of it: host:port, host-pid, …")
    group: str | None = Field(None, description="Its Kafka consumer group, if it consumes")
    at: UtcDatetime
    interval_s: float = Field(ge=0, description="Seconds the rates are measured over")
    in_per_s: float = Field(ge=0, description="Records (or requests' events) taken in per second")
    out_per_s: float = Field(ge=0, description="Rows, records or transactions written per second")
    lag: int | None = Field(
        None, ge=0, description="Records behind the ends of its input topics, in all"
    )
    lag_by_partition: dict[str, int] = Field(
        default_factory=dict, description='{"topic/partition": records behind}'
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Service-specific figures")

    @field_validator("lag_by_partition")
    @classmethod
    def _partitions(cls, value: dict[str, int]) -> dict[str, int]:
        for where, behind in value.items():
            if not _TOPIC_PARTITION.match(where) or behind < 0:
                raise ValueError(f"{where!r}: {behind}: keys are topic/partition, lags >= 0")
        return value


class RecoReport(BaseModel):
    """One ``reco.metrics`` record: the recommendation models' progressive-validation metrics
    (each event scored before it is learned), every ``metrics_interval_s``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    service: Id
    instance: Id
    at: UtcDatetime
    interval_s: float = Field(ge=0)
    updates: int = Field(ge=0, description="Events learned since the models began")
    updates_per_s: float = Field(ge=0)
    courses: int = Field(ge=0, description="Courses the models can recommend")
    models: dict[str, dict[str, Any]] = Field(
        description="{model: {n, mae, rmse, recall_at_10, ndcg_at_10, …}}"
    )


# A derived or event id as the jobs write it: a lowercase UUID string.
UuidText = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Bps = Annotated[int, Field(ge=0, le=10_000)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class CompletionScore(BaseModel):
    """One ``completion.scores`` record (written by the Flink completion job), keyed by
    ``enrollment_id``; the topic is compacted, so its last record per enrollment is the current
    score (for a pay-by-completion enrollment: the score by its deadline).

    Times: ``as_of`` is event time (the newest ``occurred_at`` counted); ``received_at``,
    ``enrolled_received_at`` and ``deadline_at`` are the money clock (the collector's).
    ``score_bps`` = floor(score x 10000 + 1e-6), made once by the job. ``exam_*`` are None
    unless the course's payout policy names an exam. Unknown fields are ignored.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    score_id: UuidText = Field(description="UUIDv5 of the enrollment id and the figures")
    enrollment_id: UuidText = Field(description="The enrollment event's event_id")
    learner_id: Id
    course_id: Id
    payment_model: str
    score: Fraction = Field(description="6 decimals")
    score_bps: Bps
    watched_fraction: Fraction
    quiz_fraction: Fraction
    complete: bool
    exam_bps: Bps | None = Field(None, description="Best score fraction of the exam, in bps")
    exam_passed: bool | None = None
    exam_passed_received_at: UtcDatetime | None = Field(
        None, description="received_at of the first counted attempt that passed the exam"
    )
    as_of: UtcDatetime
    received_at: UtcDatetime = Field(description="received_at of the latest counted event")
    enrolled_received_at: UtcDatetime
    deadline_at: UtcDatetime | None = Field(None, description="Pay by completion only")


class CourseCompleted(BaseModel):
    """One ``course.completed`` record: at most one per enrollment, keyed by ``enrollment_id``
    (compacted). ``completed_at`` is event time; ``received_at`` is the collector's time of the
    event that made the completion rule true (the money clock). Unknown fields are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    completion_id: UuidText = Field(description="UUIDv5 of the enrollment id")
    enrollment_id: UuidText
    learner_id: Id
    course_id: Id
    payment_model: str
    completed_at: UtcDatetime
    received_at: UtcDatetime
    enrolled_received_at: UtcDatetime
    deadline_at: UtcDatetime | None = Field(None, description="Pay by completion only")
