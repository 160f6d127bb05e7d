"""The dead-letter topic: read, filter, and replay through validation again.

A replay runs each selected dead letter through the same checks as the collector (with the
settings in force now, so a fixed cause lets it through), writes what passes to its event topic
and, in the same Kafka transaction, a :class:`~schemas.dlq.ReplayMarker` to the DLQ topic. A
later replay skips marked letters, so a replayed event arrives in its topic exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from schemas import to_wire
from schemas.dlq import DeadLetter, ReplayMarker
from streams.collector.settings import CollectorSettings
from streams.intake import Accepted, Intake, Rejected, describe
from streams.kafka import make_producer, read_to_end
from streams.topics import LEARNER_DLQ

REPLAY_TRANSACTIONAL_ID = "learnstream-dlq-replay"


@dataclass(frozen=True)
class Letter:
    record: DeadLetter
    partition: int
    offset: int


@dataclass
class DlqContents:
    letters: list[Letter] = field(default_factory=list)
    replayed: dict[uuid.UUID, ReplayMarker] = field(default_factory=dict)
    unreadable: int = 0


def read_all(
    bootstrap_servers: str, topic: str = LEARNER_DLQ.name, timeout: float = 30.0
) -> DlqContents:
    """Every committed record of the DLQ topic up to its current end."""
    out = DlqContents()
    for record in read_to_end(bootstrap_servers, [topic], timeout):
        _add(out, record.value, record.partition, record.offset)
    return out


def _add(out: DlqContents, value: bytes, partition: int, offset: int) -> None:
    try:
        kind = orjson.loads(value).get("kind")
        if kind == "replayed":
            marker = ReplayMarker.model_validate_json(value)
            out.replayed[marker.dlq_id] = marker
        else:
            out.letters.append(Letter(DeadLetter.model_validate_json(value), partition, offset))
    except (ValueError, AttributeError, ValidationError):
        out.unreadable += 1


def select(
    letters: Iterable[Letter],
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    client_id: str | None = None,
    ids: Iterable[str] = (),
) -> list[Letter]:
    wanted = {str(i) for i in ids}
    return [
        letter
        for letter in letters
        if (reason is None or letter.record.reason == reason)
        and (since is None or letter.record.received_at >= since)
        and (until is None or letter.record.received_at < until)
        and (client_id is None or letter.record.client_id == client_id)
        and (not wanted or str(letter.record.dlq_id) in wanted)
    ]


@dataclass(frozen=True)
class ReplayResult:
    dlq_id: uuid.UUID
    outcome: str  # replayed | still_rejected | already_replayed | would_replay
    detail: str = ""
    event_ids: tuple[str, ...] = ()


class Replayer:
    """Re-validates dead letters and writes what now passes, transactionally."""

    def __init__(self, bootstrap_servers: str, collector: CollectorSettings) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.intake = Intake(collector)

    def check(self, letter: DeadLetter) -> list[Accepted | Rejected]:
        raw = letter.raw.encode()
        if letter.endpoint == "/v1/cmcd":
            return [self._check_cmcd(letter)]
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [Rejected("malformed_json", f"malformed JSON: {exc}", raw)]
        items = parsed if isinstance(parsed, list) else [parsed]
        if letter.endpoint == "/v1/xapi/statements":
            return [self._check_xapi(item, letter) for item in items]
        return [self.intake.check(item, letter.received_at) for item in items]

    def _check_xapi(self, statement: object, letter: DeadLetter) -> Accepted | Rejected:
        from schemas.xapi import XapiMappingError, default_client, statement_to_event

        raw = orjson.dumps(statement)
        try:
            if not isinstance(statement, dict):
                raise XapiMappingError("a statement must be a JSON object")
            event = statement_to_event(statement, default_client())
        except ValidationError as exc:
            return Rejected("invalid", describe(exc), raw)
        except XapiMappingError as exc:
            return Rejected("invalid", f"xAPI statement: {exc}", raw)
        return self.intake.check_event(event, letter.received_at, raw)

    def _check_cmcd(self, letter: DeadLetter) -> Accepted | Rejected:
        from schemas.cmcd import CmcdError, cmcd_from_headers, cmcd_to_event, parse_cmcd
        from schemas.xapi import default_client

        lines = letter.raw.splitlines()
        query = dict(parse_qsl(lines[0].lstrip("?"))) if lines else {}
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        overrides = {k: v for k, v in query.items() if k != "CMCD"}
        try:
            data = parse_cmcd(query["CMCD"]) if "CMCD" in query else cmcd_from_headers(headers)
            event = cmcd_to_event(data, default_client(), letter.received_at, overrides=overrides)
        except ValidationError as exc:
            return Rejected("invalid", describe(exc), letter.raw.encode())
        except CmcdError as exc:
            return Rejected("invalid", f"CMCD: {exc}", letter.raw.encode())
        return self.intake.check_event(event, letter.received_at, letter.raw.encode())

    def replay(
        self, selected: list[Letter], contents: DlqContents, dry_run: bool = False
    ) -> list[ReplayResult]:
        results: list[ReplayResult] = []
        writes: list[tuple[Letter, list[Accepted]]] = []
        for letter in selected:
            dlq_id = letter.record.dlq_id
            if dlq_id in contents.replayed:
                results.append(
                    ReplayResult(
                        dlq_id, "already_replayed", f"into {contents.replayed[dlq_id].topic}"
                    )
                )
                continue
            checked = self.check(letter.record)
            rejected = [c for c in checked if isinstance(c, Rejected)]
            if rejected:
                results.append(
                    ReplayResult(
                        dlq_id, "still_rejected", f"{rejected[0].reason}: {rejected[0].detail}"
                    )
                )
                continue
            accepted = [c for c in checked if isinstance(c, Accepted)]
            if not accepted:
                results.append(ReplayResult(dlq_id, "still_rejected", "no event in the payload"))
                continue
            ids = tuple(str(a.event.event_id) for a in accepted)
            if dry_run:
                results.append(ReplayResult(dlq_id, "would_replay", "", ids))
            else:
                writes.append((letter, accepted))
                results.append(ReplayResult(dlq_id, "replayed", "", ids))
        if writes:
            self._write(writes)
        return results

    def _write(self, writes: list[tuple[Letter, list[Accepted]]]) -> None:
        producer = make_producer(
            self.bootstrap_servers,
            **{
                "transactional.id": REPLAY_TRANSACTIONAL_ID,
                # >= delivery.timeout.ms (librdkafka) and <= the broker's 15-minute maximum
                "transaction.timeout.ms": 300_000,
            },
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        try:
            for letter, accepted in writes:
                for item in accepted:
                    producer.produce(
                        item.topic,
                        key=item.key,
                        value=to_wire(item.event),
                        timestamp=int(item.event.occurred_at.timestamp() * 1000),
                    )
                marker = ReplayMarker(
                    dlq_id=letter.record.dlq_id,
                    event_id=accepted[0].event.event_id,
                    topic=accepted[0].topic,
                    replayed_at=datetime.now(letter.record.received_at.tzinfo),
                )
                producer.produce(
                    LEARNER_DLQ.name, key=letter.record.client_id.encode(), value=to_wire(marker)
                )
                producer.poll(0)
            producer.commit_transaction(60)
        except BaseException:
            producer.abort_transaction(30)
            raise
