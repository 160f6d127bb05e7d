"""Dead-letter records: invalid input kept with its reason, for inspection and replay."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from schemas.base import Id, Strict, UtcDatetime

# The three counted kinds of bad input (docs/architecture.md, Bad input and the DLQ), plus the
# replay marker.
Reason = Literal["malformed_json", "unknown_type", "invalid"]


class DeadLetter(Strict):
    """One rejected input. ``raw`` is the payload exactly as received (UTF-8, or latin-1 for
    bytes that were not UTF-8) and may hold learner ids: the ``dlq`` table keeps it briefly."""

    kind: Literal["dead_letter"] = "dead_letter"
    dlq_id: uuid.UUID
    reason: Reason
    detail: str = Field(max_length=8192, description="What was wrong, for a person to act on")
    raw: str = Field(min_length=0, max_length=2 * 1024 * 1024)
    endpoint: Id = Field(description="Where it came in: /v1/events, /v1/xapi/statements, …")
    client_id: Id
    received_at: UtcDatetime
    event_type: str | None = Field(None, min_length=0, description="The type it claimed, if any")
    event_id: str | None = Field(None, min_length=0, description="The event_id it claimed, if any")


class ReplayMarker(Strict):
    """Written to the DLQ topic after a dead letter was replayed into its event topic, so that
    a second replay never writes it again."""

    kind: Literal["replayed"] = "replayed"
    dlq_id: uuid.UUID
    event_id: uuid.UUID
    topic: Id
    replayed_at: UtcDatetime
