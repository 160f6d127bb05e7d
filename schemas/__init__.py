"""Learner event models (pydantic v2): envelope, one class per event type, JSON Schema export.

``Event`` is the discriminated union over every type; ``parse_event`` validates one event from
its JSON bytes (the wire format) and ``to_wire`` serialises one back.
"""

from __future__ import annotations

from schemas.base import SCHEMA_VERSION, Money, format_utc
from schemas.catalog import CompletionRule, Course, PayoutPolicy, Quiz, Video
from schemas.dlq import DeadLetter, ReplayMarker
from schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    Client,
    CourseViewed,
    Enrollment,
    Envelope,
    Escrow,
    Event,
    ImmersiveQos,
    LiveQos,
    PlaybackQos,
    QuizResult,
    Radio,
    VideoPlayback,
)


def parse_event(data: bytes | str) -> Event:
    """Validate one event from JSON. Raises pydantic.ValidationError."""
    return EVENT_ADAPTER.validate_json(data)


def to_wire(event: Envelope | Course | DeadLetter | ReplayMarker) -> bytes:
    """One record's Kafka value: compact JSON, UTC timestamps with ``Z``, unset optionals kept."""
    return event.__pydantic_serializer__.to_json(event)


__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Client",
    "CompletionRule",
    "Course",
    "CourseViewed",
    "DeadLetter",
    "Enrollment",
    "Envelope",
    "Escrow",
    "Event",
    "ImmersiveQos",
    "LiveQos",
    "Money",
    "PayoutPolicy",
    "PlaybackQos",
    "Quiz",
    "QuizResult",
    "Radio",
    "ReplayMarker",
    "Video",
    "VideoPlayback",
    "format_utc",
    "parse_event",
    "to_wire",
]
