"""xAPI statements -> VideoPlayback / QuizResult (schemas.xapi). No services needed."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import to_wire
from schemas.events import Client, QuizResult, VideoPlayback
from schemas.xapi import (
    XapiMappingError,
    default_client,
    iri_to_id,
    parse_duration_ms,
    parse_played_segments,
    statement_to_event,
    statements_from_body,
)

V = "https://w3id.org/xapi/video/verbs/"
ADL = "http://adlnet.gov/expapi/verbs/"
EXT = "https://w3id.org/xapi/video/extensions/"
ASSESSMENT = "http://adlnet.gov/expapi/activities/assessment"
STATEMENT_ID = "0b7f3c1e-6a1d-4d8e-9a57-2f1c3e4d5a02"
SESSION = "6e2fb550-c457-11e9-bb97-0800200c9a66"
CLIENT = Client(platform="android", app_version="5.2.1", device="Pixel 9", network_type="5g_sa")


def video_statement(verb: str, result_ext: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "id": STATEMENT_ID,
        "version": "1.0.3",
        "actor": {
            "objectType": "Agent",
            "account": {"homePage": "https://lms.example", "name": "learner-42"},
        },
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": "https://lms.example/videos/video-1",
            "definition": {"type": "https://w3id.org/xapi/video/activity-type/video"},
        },
        "context": {
            "registration": "2b1e6f3a-0000-4000-8000-000000000001",
            "contextActivities": {
                "parent": [{"id": "https://lms.example/courses/course-data-101"}],
                "category": [{"id": "https://w3id.org/xapi/video"}],
            },
            "extensions": {
                EXT + "length": 600,
                EXT + "session-id": SESSION,
                "https://example.com/unknown-context-ext": {"anything": [1, 2]},
            },
        },
        "timestamp": "2026-11-28T11:03:12.500+01:00",
    }
    if result_ext is not None:
        statement["result"] = {"extensions": result_ext}
    return statement


def quiz_statement(verb: str, score: dict[str, Any], **result: Any) -> dict[str, Any]:
    return {
        "id": "0b7f3c1e-6a1d-4d8e-9a57-2f1c3e4d5a04",
        "actor": {"mbox": "mailto:ada@example.com", "name": "Ada"},
        "verb": {"id": ADL + verb},
        "object": {
            "id": "https://lms.example/courses/course-data-101/quizzes/quiz-1",
            "definition": {"type": ASSESSMENT},
        },
        "result": {"score": score, **result},
        "context": {
            "registration": "sess-9f2c",
            "contextActivities": {
                "grouping": [{"id": "https://lms.example/courses/course-data-101"}]
            },
            "extensions": {"https://learnstream.dev/xapi/attempt": 2},
        },
        "timestamp": "2026-11-28T10:25:40Z",
    }


# --- video -----------------------------------------------------------------------------------


def test_xapi_initialized_statement_maps_to_video_playback_with_identity() -> None:
    event = statement_to_event(video_statement(ADL + "initialized"), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert event.verb == "initialized"
    assert event.event_id == uuid.UUID(STATEMENT_ID)
    assert event.learner_id == "learner-42"
    assert event.course_id == "course-data-101"
    assert event.video_id == "video-1"
    assert event.session_id == SESSION
    assert event.client == CLIENT
    assert event.occurred_at == datetime(2026, 11, 28, 10, 3, 12, 500_000, tzinfo=UTC)
    assert event.length == 600.0
    assert event.time is None and event.progress is None and event.played_segments == []


def test_xapi_played_statement_maps_to_video_playback_played() -> None:
    event = statement_to_event(video_statement(V + "played", {EXT + "time": 12.5}), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert (event.verb, event.time, event.time_from, event.time_to) == ("played", 12.5, None, None)


def test_xapi_paused_statement_maps_segments_and_progress() -> None:
    ext = {
        EXT + "time": 40.0,
        EXT + "progress": 0.0667,
        EXT + "played-segments": "0[.]10.5[,]20[.]40",
        "https://example.com/unknown-result-ext": "kept, ignored",
    }
    event = statement_to_event(video_statement(V + "paused", ext), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert event.verb == "paused"
    assert event.time == 40.0
    assert event.progress == 0.0667
    assert event.played_segments == [[0.0, 10.5], [20.0, 40.0]]


def test_xapi_seeked_statement_maps_to_video_playback_seek() -> None:
    ext = {EXT + "time-from": 40, EXT + "time-to": 95}
    event = statement_to_event(video_statement(V + "seeked", ext), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert event.verb == "seeked"
    assert (event.time_from, event.time_to, event.time) == (40.0, 95.0, 95.0)


def test_xapi_seeked_without_time_to_is_an_error() -> None:
    statement = video_statement(V + "seeked", {EXT + "time-from": 40})
    with pytest.raises(XapiMappingError, match="time-to"):
        statement_to_event(statement, CLIENT)


def test_xapi_time_from_on_other_verbs_is_ignored() -> None:
    ext = {EXT + "time": 10, EXT + "time-from": 1, EXT + "time-to": 2}
    event = statement_to_event(video_statement(V + "played", ext), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert (event.time_from, event.time_to) == (None, None)


def test_xapi_completed_video_statement_maps_to_video_completed() -> None:
    ext = {EXT + "time": 600, EXT + "progress": 1, EXT + "played-segments": "0[.]600"}
    event = statement_to_event(video_statement(ADL + "completed", ext), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert (event.verb, event.progress, event.played_segments) == ("completed", 1.0, [[0, 600]])


def test_xapi_terminated_statement_maps_to_video_terminated() -> None:
    event = statement_to_event(video_statement(ADL + "terminated", {EXT + "time": 33}), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert (event.verb, event.time) == ("terminated", 33.0)


@pytest.mark.parametrize("name", ["completed", "terminated", "initialized"])
def test_xapi_video_namespace_variants_are_accepted(name: str) -> None:
    event = statement_to_event(video_statement(V + name), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert event.verb == name


@pytest.mark.parametrize(("sent", "stored"), [(66.7, 0.667), (100, 1.0), (1, 1.0), (0.5, 0.5)])
def test_xapi_progress_over_one_is_read_as_percent(sent: float, stored: float) -> None:
    event = statement_to_event(video_statement(V + "paused", {EXT + "progress": sent}), CLIENT)
    assert isinstance(event, VideoPlayback)
    assert event.progress == pytest.approx(stored)


def test_xapi_progress_over_one_hundred_is_invalid() -> None:
    with pytest.raises(ValidationError, match="progress"):
        statement_to_event(video_statement(V + "paused", {EXT + "progress": 150}), CLIENT)


def test_xapi_played_segments_parsing() -> None:
    assert parse_played_segments("0[.]10.5[,]20[.]30") == [[0.0, 10.5], [20.0, 30.0]]
    assert parse_played_segments("") == []
    assert parse_played_segments("5[.]5") == [[5.0, 5.0]]
    assert parse_played_segments([[0, 1], [2, 3]]) == [[0.0, 1.0], [2.0, 3.0]]
    for bad in ("0[.]", "0-10", "0[.]10[,]", "a[.]b"):
        with pytest.raises(XapiMappingError, match="played-segments"):
            parse_played_segments(bad)


def test_xapi_missing_length_names_the_extension() -> None:
    statement = video_statement(V + "played")
    del statement["context"]["extensions"][EXT + "length"]
    with pytest.raises(XapiMappingError, match="length"):
        statement_to_event(statement, CLIENT)


def test_xapi_session_falls_back_to_registration_then_xapi() -> None:
    statement = video_statement(V + "played")
    del statement["context"]["extensions"][EXT + "session-id"]
    event = statement_to_event(statement, CLIENT)
    assert event.session_id == "2b1e6f3a-0000-4000-8000-000000000001"
    del statement["context"]["registration"]
    assert statement_to_event(statement, CLIENT).session_id == "xapi"


# --- quiz ------------------------------------------------------------------------------------


def test_xapi_passed_statement_maps_to_quiz_result_with_raw_and_max() -> None:
    statement = quiz_statement(
        "passed",
        {"raw": 8.5, "max": 10, "min": 0, "scaled": 0.85},
        success=True,
        duration="PT5M12S",
    )
    event = statement_to_event(statement, CLIENT)
    assert isinstance(event, QuizResult)
    assert event.learner_id == "ada@example.com"
    assert event.course_id == "course-data-101"
    assert event.quiz_id == "quiz-1"
    assert event.session_id == "sess-9f2c"
    assert (event.score, event.max_score, event.passed) == (8.5, 10.0, True)
    assert event.attempt == 2
    assert event.duration_ms == 312_000
    assert event.occurred_at == datetime(2026, 11, 28, 10, 25, 40, tzinfo=UTC)


def test_xapi_failed_statement_with_scaled_only_maps_to_quiz_result() -> None:
    statement = quiz_statement("failed", {"scaled": 0.4}, success=False)
    del statement["context"]["extensions"]
    event = statement_to_event(statement, CLIENT)
    assert isinstance(event, QuizResult)
    assert (event.score, event.max_score, event.passed) == (0.4, 1.0, False)
    assert event.attempt == 1
    assert event.duration_ms == 0


def test_xapi_passed_without_success_is_implied_by_verb() -> None:
    event = statement_to_event(quiz_statement("passed", {"raw": 7, "max": 10}), CLIENT)
    assert isinstance(event, QuizResult)
    assert event.passed is True


def test_xapi_verb_contradicting_success_is_an_error() -> None:
    with pytest.raises(XapiMappingError, match="contradicts"):
        statement_to_event(quiz_statement("failed", {"scaled": 0.9}, success=True), CLIENT)


def test_xapi_completed_assessment_needs_success() -> None:
    statement = quiz_statement("completed", {"raw": 3, "max": 4})
    with pytest.raises(XapiMappingError, match="success"):
        statement_to_event(statement, CLIENT)
    statement["result"]["success"] = True
    event = statement_to_event(statement, CLIENT)
    assert isinstance(event, QuizResult)
    assert (event.score, event.max_score, event.passed) == (3.0, 4.0, True)


def test_xapi_scored_verb_maps_to_quiz_result_on_any_object() -> None:
    statement = quiz_statement("scored", {"raw": 2, "max": 5, "min": 1}, success=False)
    statement["object"]["definition"] = {"type": "http://adlnet.gov/expapi/activities/module"}
    event = statement_to_event(statement, CLIENT)
    assert isinstance(event, QuizResult)
    assert (event.score, event.max_score) == (1.0, 4.0)  # min shifts both


def test_xapi_quiz_without_usable_score_is_an_error() -> None:
    with pytest.raises(XapiMappingError, match=r"raw and max, or scaled"):
        statement_to_event(quiz_statement("passed", {"raw": 8}, success=True), CLIENT)


def test_xapi_passed_on_non_assessment_object_is_an_error() -> None:
    statement = quiz_statement("passed", {"raw": 8, "max": 10}, success=True)
    statement["object"]["definition"]["type"] = "http://adlnet.gov/expapi/activities/lesson"
    with pytest.raises(XapiMappingError, match="assessment"):
        statement_to_event(statement, CLIENT)


def test_xapi_score_above_max_propagates_validation_error() -> None:
    with pytest.raises(ValidationError, match="exceeds max_score"):
        statement_to_event(quiz_statement("passed", {"raw": 11, "max": 10}), CLIENT)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("PT5M12S", 312_000),
        ("PT1.5S", 1_500),
        ("PT0,25S", 250),
        ("PT1H", 3_600_000),
        ("P1DT2H3M4.005S", 93_784_005),
        ("P1W", 604_800_000),
        ("PT0S", 0),
    ],
)
def test_xapi_duration_parsing(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["P", "PT", "5M", "PT5X", "P1Y", "P1M", "-PT5S", 312])
def test_xapi_bad_duration_is_an_error(text: object) -> None:
    with pytest.raises(XapiMappingError, match="duration"):
        parse_duration_ms(text)


# --- identity and errors ---------------------------------------------------------------------


def test_xapi_missing_actor_is_an_error() -> None:
    statement = video_statement(V + "played")
    del statement["actor"]
    with pytest.raises(XapiMappingError, match=r"statement\.actor is missing"):
        statement_to_event(statement, CLIENT)


def test_xapi_actor_without_identifier_is_an_error() -> None:
    statement = video_statement(V + "played")
    statement["actor"] = {"objectType": "Agent", "name": "nobody"}
    with pytest.raises(XapiMappingError, match=r"account\.name, mbox_sha1sum, mbox or openid"):
        statement_to_event(statement, CLIENT)


def test_xapi_learner_from_mbox_sha1sum() -> None:
    statement = video_statement(V + "played")
    statement["actor"] = {"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}
    event = statement_to_event(statement, CLIENT)
    assert event.learner_id == "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"


def test_xapi_unsupported_verb_is_an_error_naming_the_verb() -> None:
    statement = video_statement("http://adlnet.gov/expapi/verbs/experienced")
    with pytest.raises(XapiMappingError, match=r"'http://adlnet.gov/expapi/verbs/experienced' is"):
        statement_to_event(statement, CLIENT)


def test_xapi_missing_verb_is_an_error() -> None:
    statement = video_statement(V + "played")
    del statement["verb"]
    with pytest.raises(XapiMappingError, match=r"verb\.id is missing"):
        statement_to_event(statement, CLIENT)


def test_xapi_missing_course_is_an_error_naming_the_fields() -> None:
    statement = video_statement(V + "played")
    statement["context"]["contextActivities"] = {
        "category": [{"id": "https://w3id.org/xapi/video"}]
    }
    with pytest.raises(XapiMappingError, match=r"parent\[0\]\.id \(or grouping\[0\]\.id\)"):
        statement_to_event(statement, CLIENT)


def test_xapi_single_object_context_activity_is_accepted() -> None:
    statement = video_statement(V + "played")
    statement["context"]["contextActivities"]["parent"] = {"id": "https://lms.example/c/c-7/"}
    assert statement_to_event(statement, CLIENT).course_id == "c-7"


def test_xapi_deterministic_event_id_when_statement_id_missing() -> None:
    statement = video_statement(V + "played", {EXT + "time": 3})
    del statement["id"]
    first = statement_to_event(statement, CLIENT)
    reordered = dict(reversed(list(copy.deepcopy(statement).items())))
    second = statement_to_event(reordered, CLIENT)
    assert first.event_id == second.event_id
    assert first.event_id.version == 5
    statement["result"]["extensions"][EXT + "time"] = 4
    assert statement_to_event(statement, CLIENT).event_id != first.event_id


def test_xapi_bad_statement_id_is_an_error() -> None:
    statement = video_statement(V + "played")
    statement["id"] = "not-a-uuid"
    with pytest.raises(XapiMappingError, match=r"statement\.id must be a UUID"):
        statement_to_event(statement, CLIENT)


def test_xapi_naive_timestamp_is_an_error() -> None:
    statement = video_statement(V + "played")
    statement["timestamp"] = "2026-11-28T10:03:12.500"
    with pytest.raises(XapiMappingError, match="no time zone"):
        statement_to_event(statement, CLIENT)


def test_xapi_missing_timestamp_is_an_error() -> None:
    statement = video_statement(V + "played")
    del statement["timestamp"]
    with pytest.raises(XapiMappingError, match=r"statement\.timestamp is missing"):
        statement_to_event(statement, CLIENT)


def test_xapi_iri_to_id_uses_last_segment_or_whole_iri() -> None:
    assert iri_to_id("https://lms.example/courses/course-data-101") == "course-data-101"
    assert iri_to_id("https://lms.example/courses/course%20x/") == "course x"
    assert iri_to_id("https://lms.example/mod/quiz/view.php?id=42") == (
        "https://lms.example/mod/quiz/view.php?id=42"
    )
    assert iri_to_id("urn:uuid:1234") == "urn:uuid:1234"
    assert iri_to_id("https://lms.example/") == "https://lms.example/"


def test_xapi_statements_from_body_accepts_object_or_list() -> None:
    one = video_statement(V + "played")
    assert statements_from_body(one) == [one]
    assert statements_from_body([one, one]) == [one, one]
    assert statements_from_body("[]") == []
    with pytest.raises(XapiMappingError, match=r"statement \[1\] must be a JSON object"):
        statements_from_body([one, 3])
    with pytest.raises(XapiMappingError, match="not valid JSON"):
        statements_from_body(b"{nope")
    with pytest.raises(XapiMappingError, match="statement object or a list"):
        statements_from_body(42)


def test_xapi_default_client_and_wire_round_trip() -> None:
    client = default_client()
    assert (client.platform, client.app_version, client.device, client.network_type) == (
        "other",
        "xapi",
        "unknown",
        "unknown",
    )
    event = statement_to_event(
        video_statement(V + "seeked", {EXT + "time-from": 1, EXT + "time-to": 2}), client
    )
    wire = to_wire(event)
    assert b'"occurred_at":"2026-11-28T10:03:12.500Z"' in wire
    assert VideoPlayback.model_validate_json(wire) == event
