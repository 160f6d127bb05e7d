"""Validation at the way in: one event in, accepted (with its topic) or rejected (with a reason).

The collector and ``learnstream dlq replay`` share this path, so a replayed dead letter passes
exactly the checks a fresh event passes. Bad input falls into three counted kinds
(docs/architecture.md, Bad input and the DLQ): ``malformed_json``, ``unknown_type`` and
``invalid``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import EVENT_ADAPTER, EVENT_TYPES, Event, format_utc
from schemas.base import readable
from schemas.dlq import DeadLetter, Reason
from streams.collector.settings import CollectorSettings
from streams.topics import TOPIC_FOR_TYPE

MAX_ERRORS_SHOWN = 8


@dataclass(frozen=True)
class Accepted:
    event: Event
    topic: str

    @property
    def key(self) -> bytes:
        return self.event.learner_id.encode()


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str
    raw: bytes
    event_type: str | None = None
    event_id: str | None = None

    def dead_letter(self, endpoint: str, client_id: str, received_at: datetime) -> DeadLetter:
        try:
            raw = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            raw = self.raw.decode("latin-1")
        return DeadLetter(
            dlq_id=uuid.uuid4(),
            reason=self.reason,
            detail=self.detail[:8192],
            raw=raw,
            endpoint=endpoint,
            client_id=client_id,
            received_at=received_at,
            event_type=self.event_type,
            event_id=self.event_id,
        )


def describe(error: ValidationError) -> str:
    """A validation error as one line a client developer can act on."""
    parts = []
    for item in error.errors()[:MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p) for p in item["loc"][1:] if p != "function-after") or "event"
        parts.append(f"{loc}: {readable(item)}")
    more = error.error_count() - MAX_ERRORS_SHOWN
    if more > 0:
        parts.append(f"… and {more} more")
    return "; ".join(parts)


def _claimed(item: dict[str, Any], field: str) -> str | None:
    value = item.get(field)
    return value[:128] if isinstance(value, str) and value else None


class Intake:
    """Checks one event against its model and the collector's time window."""

    def __init__(
        self, settings: CollectorSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.max_past = timedelta(days=settings.max_past_days)
        self.max_future = timedelta(seconds=settings.max_future_s)
        self.clock = clock

    def check(
        self, item: object, received_at: datetime, raw: bytes | None = None
    ) -> Accepted | Rejected:
        """Validate one parsed JSON value. ``raw`` is kept for the DLQ (default: re-encoded)."""
        if not isinstance(item, dict):
            return Rejected("invalid", "an event must be a JSON object", raw or orjson.dumps(item))
        event_type, event_id = _claimed(item, "type"), _claimed(item, "event_id")
        claimed_type = item.get("type")
        if not isinstance(claimed_type, str) or claimed_type not in EVENT_TYPES:
            if "type" not in item:
                detail = "missing 'type'"
            else:
                shown = str(item["type"])[:64]
                detail = f"unknown event type {shown!r}; known: {sorted(EVENT_TYPES)}"
            return Rejected("unknown_type", detail, raw or orjson.dumps(item), event_type, event_id)
        # received_at goes in before validation: one validation, and no model copy after it.
        stamped = {**item, "received_at": format_utc(received_at)}
        try:
            event = EVENT_ADAPTER.validate_json(orjson.dumps(stamped))
        except ValidationError as exc:
            raw = raw or orjson.dumps(item)
            return Rejected("invalid", describe(exc), raw, event_type, event_id)
        return self._window(event, received_at, raw, stamped=True, item=item)

    def check_event(
        self, event: Event, received_at: datetime, raw: bytes | None = None
    ) -> Accepted | Rejected:
        """The checks beyond the model, for events built in Python (xAPI, CMCD, replays)."""
        return self._window(event, received_at, raw, stamped=False)

    def _window(
        self,
        event: Event,
        received_at: datetime,
        raw: bytes | None,
        stamped: bool,
        item: dict[str, Any] | None = None,
    ) -> Accepted | Rejected:
        """The ``occurred_at`` window; stamps ``received_at`` when it is not yet."""
        if event.occurred_at < received_at - self.max_past:
            detail = (
                f"occurred_at {format_utc(event.occurred_at)} is more than "
                f"{self.max_past.days} days before the collector's clock "
                f"({format_utc(received_at)}); see LEARNSTREAM_COLLECTOR__MAX_PAST_DAYS"
            )
        elif event.occurred_at > received_at + self.max_future:
            detail = (
                f"occurred_at {format_utc(event.occurred_at)} is more than "
                f"{self.max_future.total_seconds():.0f} s ahead of the collector's clock "
                f"({format_utc(received_at)}): check the client clock "
                "(LEARNSTREAM_COLLECTOR__MAX_FUTURE_S)"
            )
        else:
            if not stamped:
                event = event.model_copy(update={"received_at": received_at})
            return Accepted(event, TOPIC_FOR_TYPE[event.type])
        if raw is None:
            raw = (
                orjson.dumps(item)
                if item is not None
                else event.__pydantic_serializer__.to_json(event)
            )
        return Rejected("invalid", detail, raw, event.type, str(event.event_id))


def parse_json(body: bytes) -> Any:
    """Parse a request body; raises ValueError with a position for malformed JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc}") from exc
