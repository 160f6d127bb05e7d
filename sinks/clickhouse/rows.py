"""Kafka records → ClickHouse rows, one list of values per record, in :data:`COLUMNS` order.

The values are the Python types clickhouse-connect inserts: tz-aware UTC ``datetime``,
``uuid.UUID``, ``int``, ``float``, ``bool``, ``str``, ``None`` (Nullable columns) and lists of
tuples. A batch is inserted with ``client.insert(table, rows, column_names=COLUMNS[table])``;
``_inserted_at`` is filled by the server.

Learner ids never reach a row: ``learner_key`` is a keyed pseudonym made by the function passed
as ``pseudonymize`` (see :func:`pseudonymizer`). Only the ``dlq`` table keeps raw payloads.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import Course, DeadLetter, parse_event
from schemas.base import UtcDatetime
from schemas.events import (
    CourseViewed,
    Enrollment,
    Envelope,
    LiveQos,
    PlaybackQos,
    QuizResult,
    VideoPlayback,
)

TABLE_FOR_TOPIC: dict[str, str] = {
    "learner.views": "views",
    "learner.playback": "playback",
    "learner.qos": "playback_qos",
    "learner.quiz": "quiz_results",
    "learner.enrollments": "enrollments",
    "live.qos": "live_qos",
    "course.catalog": "course_catalog",
    "learner.dlq": "dlq",
    "qos.agg.1m": "qos_1m",
    "pipeline.metrics": "pipeline_metrics",
    # The recommendation app's progressive-validation reports have the same envelope
    # (service, instance, at, interval_s); read them with service = 'reco'.
    "reco.metrics": "pipeline_metrics",
}

# The event type each event table holds.
EVENT_TYPE_FOR_TABLE: dict[str, str] = {
    "views": "course_viewed",
    "playback": "video_playback",
    "playback_qos": "playback_qos",
    "quiz_results": "quiz_result",
    "enrollments": "enrollment",
    "live_qos": "live_qos",
}

_ENVELOPE = [
    "event_id",
    "course_id",
    "learner_key",
    "occurred_at",
    "received_at",
    "schema_version",
    "session_id",
    "platform",
    "app_version",
    "device",
    "network_type",
    "region",
    "edge_node",
]
_KAFKA = ["_topic", "_partition", "_offset"]

QOS_1M_FIELDS = [
    "window_start",
    "window_end",
    "course_id",
    "network_type",
    "region",
    "edge_node",
    "plays",
    "startup_p50_ms",
    "startup_p95_ms",
    "startup_time_sum_ms",
    "startups",
    "rebuffer_ms",
    "played_ms",
    "video_start_failures",
    "exits_before_start",
    "bitrate_kbps_sum",
    "bitrate_samples",
    "bitrate_switches",
    "late_events",
    "version",
]

COLUMNS: dict[str, list[str]] = {
    "views": [*_ENVELOPE, "page", "lesson_id", "dwell_ms", *_KAFKA],
    "playback": [
        *_ENVELOPE,
        "video_id",
        "verb",
        "time",
        "time_from",
        "time_to",
        "length",
        "played_segments",
        "progress",
        *_KAFKA,
    ],
    "playback_qos": [
        *_ENVELOPE,
        "video_id",
        "playback_id",
        "report",
        "startup_time_ms",
        "video_start_failure",
        "exit_before_video_start",
        "rebuffer_count",
        "rebuffer_ms",
        "played_ms",
        "avg_bitrate_kbps",
        "peak_bitrate_kbps",
        "bitrate_switches",
        "dropped_frames",
        "throughput_kbps",
        "rtt_ms",
        "rsrp_dbm",
        "rsrq_db",
        "sinr_db",
        "cmcd",
        *_KAFKA,
    ],
    "quiz_results": [
        *_ENVELOPE,
        "quiz_id",
        "score",
        "max_score",
        "passed",
        "attempt",
        "duration_ms",
        *_KAFKA,
    ],
    "enrollments": [
        *_ENVELOPE,
        "price_minor",
        "currency",
        "payment_model",
        "deposit_wei",
        "refund_address",
        "deadline_at",
        *_KAFKA,
    ],
    "live_qos": [
        *_ENVELOPE,
        "room_id",
        "peer_id",
        "source",
        "kind",
        "rtt_ms",
        "jitter_ms",
        "packets_received",
        "packets_lost",
        *_KAFKA,
    ],
    "course_catalog": [
        "course_id",
        "title",
        "category",
        "level",
        "creator_id",
        "creator_address",
        "price_minor",
        "currency",
        "payment_models",
        "videos",
        "quizzes",
        "video_weight",
        "quiz_weight",
        "required_watch_fraction",
        "creator_share_bps",
        "partial_payout",
        "min_score",
        "deadline_days",
        "grace_days",
        "updated_at",
        *_KAFKA,
    ],
    "dlq": [
        "dlq_id",
        "received_at",
        "reason",
        "detail",
        "raw",
        "endpoint",
        "client_id",
        "event_type",
        "event_id",
        *_KAFKA,
    ],
    "qos_1m": [*QOS_1M_FIELDS, *_KAFKA],
    "pipeline_metrics": ["service", "instance", "at", "interval_s", "payload", *_KAFKA],
}

Pseudonymize = Callable[[str], str]
Row = list[object]


class RowError(ValueError):
    """A Kafka record that cannot become a row; the message names topic, partition and offset.

    ``dlq_reason`` is the dead-letter reason for it (``malformed_json``, ``unknown_type`` or
    ``invalid``). The message carries no field values: they may hold a learner id.
    """

    def __init__(
        self, topic: str, partition: int, offset: int, reason: str, dlq_reason: str = "invalid"
    ) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.reason = reason
        self.dlq_reason = dlq_reason


class _Invalid(ValueError):
    """Raised inside a converter; :func:`convert` adds where the record came from."""


class _Malformed(_Invalid):
    """Not JSON at all."""


def pseudonymizer(secret: bytes) -> Pseudonymize:
    """The keyed pseudonym of a learner id: HMAC-SHA256 under ``secret``, as 64 hex digits.

    The same secret gives the same function (and its cache of recent ids). Without the secret a
    pseudonym cannot be linked back to a learner id; with it, a known id can be looked up.
    """
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("the pseudonym secret must be at least 16 bytes (32 random bytes is good)")
    return _pseudonymizer(secret)


@functools.lru_cache(maxsize=8)
def _pseudonymizer(secret: bytes) -> Pseudonymize:
    @functools.lru_cache(maxsize=1 << 16)
    def pseudonymize(learner_id: str) -> str:
        return hmac.new(secret, learner_id.encode("utf-8"), hashlib.sha256).hexdigest()

    return pseudonymize


def convert(
    topic: str, partition: int, offset: int, value: bytes | None, pseudonymize: Pseudonymize
) -> Row | None:
    """One Kafka record as the values of one row of ``TABLE_FOR_TOPIC[topic]``.

    Returns ``None`` for a record that produces no row: a ``ReplayMarker`` on ``learner.dlq``
    and a tombstone (``value`` None) on the compacted ``course.catalog``. Raises
    :class:`RowError` for anything else that cannot be converted: an unknown topic, malformed
    JSON, a schema-invalid record, an event of the wrong type for its topic, a number out of its
    column's range.
    """
    table = TABLE_FOR_TOPIC.get(topic)
    if table is None:
        raise RowError(topic, partition, offset, f"no ClickHouse table for topic {topic!r}")
    if not (0 <= partition < 2**16 and 0 <= offset < 2**63):
        raise RowError(topic, partition, offset, "partition or offset out of range")
    if value is None:
        if table == "course_catalog":
            return None
        raise RowError(topic, partition, offset, "empty record (no value)")
    try:
        row = _CONVERTERS[table](value, pseudonymize)
    except ValidationError as exc:
        message = f"invalid {table} record: {_errors(exc)}"
        raise RowError(topic, partition, offset, message, _dlq_reason(exc)) from exc
    except _Malformed as exc:
        raise RowError(topic, partition, offset, str(exc), "malformed_json") from exc
    except ValueError as exc:  # _Invalid, UnicodeDecodeError
        raise RowError(topic, partition, offset, f"invalid {table} record: {exc}") from exc
    if row is None:
        return None
    row += [topic, partition, offset]
    return row


def _dlq_reason(exc: ValidationError) -> str:
    kinds = {e["type"] for e in exc.errors(include_input=False, include_url=False)}
    if "json_invalid" in kinds:
        return "malformed_json"
    if kinds & {"union_tag_invalid", "union_tag_not_found"}:
        return "unknown_type"
    return "invalid"


def _errors(exc: ValidationError) -> str:
    # Locations and messages only: the input values may hold a learner id.
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(record)'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def _uint(value: int, bits: int, name: str) -> int:
    if not 0 <= value < 2**bits:
        raise _Invalid(f"{name} = {value} does not fit UInt{bits}")
    return value


def _opt_uint(value: int | None, bits: int, name: str) -> int | None:
    return None if value is None else _uint(value, bits, name)


def _int64(value: int, name: str) -> int:
    if not -(2**63) <= value < 2**63:
        raise _Invalid(f"{name} = {value} does not fit Int64")
    return value


def _time(value: datetime, name: str) -> datetime:
    # DateTime64(3) covers 1900..2299; the collector already bounds occurred_at much tighter.
    if not 1900 <= value.year <= 2299:
        raise _Invalid(f"{name} year {value.year} is outside 1900..2299")
    return value


def _event(value: bytes, table: str, pseudonymize: Pseudonymize) -> tuple[Envelope, Row]:
    event = parse_event(value)
    expected = EVENT_TYPE_FOR_TABLE[table]
    if event.type != expected:
        raise _Invalid(f"a {event.type} event on the topic of {expected} events")
    client = event.client
    occurred_at = _time(event.occurred_at, "occurred_at")
    # Events that did not come through the collector have no received_at: occurred_at stands in.
    received_at = _time(event.received_at, "received_at") if event.received_at else occurred_at
    return event, [
        event.event_id,
        event.course_id or "",
        pseudonymize(event.learner_id),
        occurred_at,
        received_at,
        event.schema_version,
        event.session_id,
        client.platform,
        client.app_version,
        client.device,
        client.network_type,
        client.region,
        client.edge_node,
    ]


def _views(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "views", pseudonymize)
    assert isinstance(event, CourseViewed)
    return [*row, event.page, event.lesson_id or "", _uint(event.dwell_ms, 32, "dwell_ms")]


def _playback(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "playback", pseudonymize)
    assert isinstance(event, VideoPlayback)
    return [
        *row,
        event.video_id,
        event.verb,
        event.time,
        event.time_from,
        event.time_to,
        event.length,
        [(start, end) for start, end in event.played_segments],
        event.progress,
    ]


def _playback_qos(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "playback_qos", pseudonymize)
    assert isinstance(event, PlaybackQos)
    radio = event.radio
    return [
        *row,
        event.video_id,
        event.playback_id,
        event.report,
        _opt_uint(event.startup_time_ms, 32, "startup_time_ms"),
        event.video_start_failure,
        event.exit_before_video_start,
        _uint(event.rebuffer_count, 64, "rebuffer_count"),
        _uint(event.rebuffer_ms, 64, "rebuffer_ms"),
        _uint(event.played_ms, 64, "played_ms"),
        _opt_uint(event.avg_bitrate_kbps, 64, "avg_bitrate_kbps"),
        _opt_uint(event.peak_bitrate_kbps, 64, "peak_bitrate_kbps"),
        _uint(event.bitrate_switches, 64, "bitrate_switches"),
        _uint(event.dropped_frames, 64, "dropped_frames"),
        _opt_uint(event.throughput_kbps, 64, "throughput_kbps"),
        event.rtt_ms,
        radio.rsrp_dbm if radio else None,
        radio.rsrq_db if radio else None,
        radio.sinr_db if radio else None,
        "" if event.cmcd is None else json.dumps(event.cmcd, separators=(",", ":")),
    ]


def _quiz_results(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "quiz_results", pseudonymize)
    assert isinstance(event, QuizResult)
    return [
        *row,
        event.quiz_id,
        event.score,
        event.max_score,
        event.passed,
        event.attempt,
        _uint(event.duration_ms, 64, "duration_ms"),
    ]


def _enrollments(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "enrollments", pseudonymize)
    assert isinstance(event, Enrollment)
    escrow = event.escrow
    return [
        *row,
        _int64(event.price.amount_minor, "price.amount_minor"),
        event.price.currency,
        event.payment_model,
        escrow.deposit_wei if escrow else 0,
        escrow.refund_address if escrow else "",
        _time(event.deadline_at, "deadline_at") if event.deadline_at else None,
    ]


def _live_qos(value: bytes, pseudonymize: Pseudonymize) -> Row:
    event, row = _event(value, "live_qos", pseudonymize)
    assert isinstance(event, LiveQos)
    return [
        *row,
        event.room_id,
        event.peer_id,
        event.source,
        event.kind,
        event.rtt_ms,
        event.jitter_ms,
        _opt_uint(event.packets_received, 64, "packets_received"),
        _opt_uint(event.packets_lost, 64, "packets_lost"),
    ]


def _course_catalog(value: bytes, pseudonymize: Pseudonymize) -> Row:
    course = Course.model_validate_json(value)
    return [
        course.course_id,
        course.title,
        course.category,
        course.level,
        course.creator_id,
        course.creator_address,
        _int64(course.price.amount_minor, "price.amount_minor"),
        course.price.currency,
        list(course.payment_models),
        [(v.video_id, v.title, v.length_s, v.required) for v in course.videos],
        [(q.quiz_id, q.title, q.required, q.pass_fraction) for q in course.quizzes],
        course.completion.video_weight,
        course.completion.quiz_weight,
        course.completion.required_watch_fraction,
        course.payout.creator_share_bps,
        course.payout.partial,
        course.payout.min_score,
        course.payout.deadline_days,
        course.payout.grace_days,
        _time(course.updated_at, "updated_at"),
    ]


def _dlq(value: bytes, pseudonymize: Pseudonymize) -> Row | None:
    try:
        probe = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Malformed(f"malformed JSON: {exc}") from None
    if isinstance(probe, dict) and probe.get("kind") == "replayed":
        return None  # a ReplayMarker: bookkeeping for `dlq replay`, not a dead letter
    letter = DeadLetter.model_validate_json(value)
    return [
        letter.dlq_id,
        _time(letter.received_at, "received_at"),
        letter.reason,
        letter.detail,
        letter.raw,
        letter.endpoint,
        letter.client_id,
        letter.event_type or "",
        letter.event_id or "",
    ]


UInt64 = Annotated[int, Field(ge=0, lt=2**64)]


class Qos1m(BaseModel):
    """One ``qos.agg.1m`` record: a JSON object with the ``qos_1m`` column names.

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


def _qos_1m(value: bytes, pseudonymize: Pseudonymize) -> Row:
    window = Qos1m.model_validate_json(value)
    _time(window.window_start, "window_start")
    return [getattr(window, name) for name in QOS_1M_FIELDS]


class PipelineMetrics(BaseModel):
    """The fields of a ``pipeline.metrics`` record that become columns; the rest stays payload."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    service: str = Field(min_length=1)
    instance: str = Field(min_length=1)
    at: UtcDatetime
    interval_s: float = Field(0.0, ge=0)


def _pipeline_metrics(value: bytes, pseudonymize: Pseudonymize) -> Row:
    report = PipelineMetrics.model_validate_json(value)
    return [
        report.service,
        report.instance,
        _time(report.at, "at"),
        report.interval_s,
        value.decode("utf-8"),
    ]


_CONVERTERS: dict[str, Callable[[bytes, Pseudonymize], Row | None]] = {
    "views": _views,
    "playback": _playback,
    "playback_qos": _playback_qos,
    "quiz_results": _quiz_results,
    "enrollments": _enrollments,
    "live_qos": _live_qos,
    "course_catalog": _course_catalog,
    "dlq": _dlq,
    "qos_1m": _qos_1m,
    "pipeline_metrics": _pipeline_metrics,
}
