"""Event models: examples, the JSON Schema export, wire format, and the rules each type holds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import EVENT_TYPES, Course, Enrollment, format_utc, parse_event, to_wire
from schemas.base import readable
from schemas.export import EXAMPLES_DIR, JSON_DIR, render, schemas

EXAMPLE = {t: json.loads((EXAMPLES_DIR / f"{t}.json").read_text()) for t in EVENT_TYPES}


def variant(event_type: str, **changes: object) -> bytes:
    return json.dumps({**EXAMPLE[event_type], **changes}).encode()


def test_schemas_every_event_type_has_a_documented_example_that_validates() -> None:
    docs = (EXAMPLES_DIR.parent.parent / "docs" / "events.md").read_text()
    for event_type in EVENT_TYPES:
        event = parse_event(json.dumps(EXAMPLE[event_type]))
        assert event.type == event_type
        assert f"schemas/examples/{event_type}.json" in docs
    Course.model_validate_json((EXAMPLES_DIR / "course.json").read_text())


def test_schemas_json_export_is_current() -> None:
    expected = schemas()
    on_disk = {p.name for p in JSON_DIR.glob("*.json")}
    assert on_disk == set(expected), "stale: run `python -m schemas.export`"
    for name, schema in expected.items():
        assert (JSON_DIR / name).read_text() == render(schema), (
            f"{name} is stale: run `python -m schemas.export`"
        )


def test_schemas_wire_round_trip_is_utc_milliseconds_with_z() -> None:
    raw = variant("quiz_result", occurred_at="2026-11-28T11:00:00.123456+01:00")
    event = parse_event(raw)
    assert event.occurred_at == datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    wire = json.loads(to_wire(event))
    assert wire["occurred_at"] == "2026-11-28T10:00:00.123Z"
    assert parse_event(to_wire(event)) == parse_event(to_wire(parse_event(to_wire(event))))


def test_schemas_format_utc_converts_offsets() -> None:
    at = datetime(2026, 1, 1, 0, 0, 0, 5000, tzinfo=timezone(timedelta(hours=-5)))
    assert format_utc(at) == "2026-01-01T05:00:00.005Z"


@pytest.mark.parametrize(
    ("event_type", "changes", "message"),
    [
        ("quiz_result", {"occurred_at": "2026-11-28T10:00:00"}, "time zone"),
        ("quiz_result", {"schema_version": 2}, "schema_version 2 is not supported"),
        ("quiz_result", {"score": 11.0}, "exceeds max_score"),
        ("quiz_result", {"extra_field": 1}, "Extra inputs are not permitted"),
        ("quiz_result", {"learner_id": ""}, "at least 1 character"),
        ("quiz_result", {"attempt": "2"}, "valid integer"),
        ("course_viewed", {"lesson_id": None}, "page 'lesson' needs lesson_id"),
        ("video_playback", {"time_from": None}, "needs time_from and time_to"),
        ("video_playback", {"played_segments": [[30.0, 10.0]]}, "0 <= start <= end"),
        ("video_playback", {"progress": 1.5}, "less than or equal to 1"),
        ("playback_qos", {"video_start_failure": True}, "never started"),
        ("playback_qos", {"peak_bitrate_kbps": 100}, "peak_bitrate_kbps must be >="),
        (
            "playback_qos",
            {"client": {**EXAMPLE["playback_qos"]["client"], "network_type": "6g"}},
            "network_type",
        ),
        ("enrollment", {"escrow": None}, "pay_by_completion needs escrow"),
        ("enrollment", {"price": {"amount_minor": 49.5, "currency": "EUR"}}, "valid integer"),
        ("enrollment", {"price": {"amount_minor": 4900, "currency": "eur"}}, "pattern"),
    ],
)
def test_schemas_invalid_events_are_rejected_with_a_reason(
    event_type: str, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_event(variant(event_type, **changes))


ID_FIELDS = [
    ("quiz_result", ("learner_id",)),
    ("quiz_result", ("session_id",)),
    ("quiz_result", ("course_id",)),
    ("quiz_result", ("quiz_id",)),
    ("course_viewed", ("lesson_id",)),
    ("video_playback", ("video_id",)),
    ("playback_qos", ("playback_id",)),
    ("playback_qos", ("client", "region")),
    ("playback_qos", ("client", "edge_node")),
    ("live_qos", ("room_id",)),
]


@pytest.mark.parametrize(("event_type", "path"), ID_FIELDS)
@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\t", "\n", "\x7f", "\x85", "\u2028"])
def test_schemas_ids_refuse_control_characters_with_a_reason(
    event_type: str, path: tuple[str, ...], bad: str
) -> None:
    record = json.loads(variant(event_type))
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = f"ok{bad}id"
    with pytest.raises(ValidationError) as info:
        parse_event(json.dumps(record))
    [error] = info.value.errors()
    assert (
        readable(error)
        == f"ids must be printable: control character U+{ord(bad):04X} at position 2"
    )
    assert readable(error, with_input=False) == "ids must be printable: no control characters"
    assert ".".join(path) in ".".join(str(p) for p in error["loc"])


def test_schemas_ids_accept_any_printable_unicode() -> None:
    for value in ("learner-42", "Zoë Müller", "学习者-7", "a b", "x/y:z@w", "é" * 128):
        event = parse_event(variant("quiz_result", learner_id=value, course_id=value))
        assert event.learner_id == value
    with pytest.raises(ValidationError, match="at most 128 characters"):
        parse_event(variant("quiz_result", learner_id="a" * 129))


def test_schemas_wei_travels_as_a_string_and_accepts_integers() -> None:
    big = 10**30
    escrow = {**EXAMPLE["enrollment"]["escrow"], "deposit_wei": big}
    event = parse_event(variant("enrollment", escrow=escrow))
    assert isinstance(event, Enrollment) and event.escrow is not None
    assert event.escrow.deposit_wei == big
    assert json.loads(to_wire(event))["escrow"]["deposit_wei"] == str(big)
    assert event.enrollment_id == uuid.UUID(EXAMPLE["enrollment"]["event_id"])
    with pytest.raises(ValidationError):
        parse_event(variant("enrollment", escrow={**escrow, "deposit_wei": "-5"}))


def test_schemas_unknown_type_is_a_discriminator_error() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_event(variant("quiz_result", type="course_rated"))


@pytest.mark.parametrize("odd", [{"x": 1}, ["quiz_result"], 7, None, True])
def test_intake_any_json_type_value_is_an_unknown_type_never_a_crash(odd: object) -> None:
    # Found by the collector fuzz test: {"type": {...}} raised TypeError (a 500).
    from learnstream.settings import CollectorSettings
    from streams.intake import Intake, Rejected

    item = {**EXAMPLE["quiz_result"], "type": odd}
    result = Intake(CollectorSettings()).check(item, datetime.now(UTC))
    assert isinstance(result, Rejected) and result.reason == "unknown_type"
