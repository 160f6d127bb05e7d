"""xAPI statements and CMCD data through the running collector into the event topics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas import format_utc, parse_event
from schemas.events import PlaybackQos, QuizResult, VideoPlayback
from tests.collector_fixtures import Collector, dead_letters, records_by_event_id
from tests.test_schemas_xapi import EXT, V, quiz_statement, video_statement


def fresh(statement: dict) -> dict:
    statement["id"] = str(uuid.uuid4())
    statement["timestamp"] = format_utc(datetime.now(UTC) - timedelta(seconds=5))
    return statement


def test_collector_xapi_statements_land_as_internal_events(collector: Collector) -> None:
    seek = fresh(video_statement(V + "seeked", {EXT + "time-from": 40, EXT + "time-to": 95}))
    quiz = fresh(quiz_statement("passed", {"raw": 8, "max": 10}, success=True, duration="PT5M12S"))
    reply = collector.post(
        "/v1/xapi/statements",
        [seek, quiz],
        headers={
            "X-Network-Type": "5g_sa",
            "X-Client-Platform": "android",
            "X-Edge-Node": "mec-par-3",
        },
    )
    assert reply.status_code == 200, reply.text
    found = records_by_event_id(collector.bootstrap, ["learner.playback", "learner.quiz"])
    video = parse_event(found[seek["id"]][0].value)
    assert isinstance(video, VideoPlayback)
    assert (video.verb, video.time_from, video.time_to, video.length) == ("seeked", 40, 95, 600)
    assert (video.learner_id, video.course_id, video.video_id) == (
        "learner-42",
        "course-data-101",
        "video-1",
    )
    assert video.client.network_type == "5g_sa" and video.client.edge_node == "mec-par-3"
    result = parse_event(found[quiz["id"]][0].value)
    assert isinstance(result, QuizResult)
    assert (result.score, result.max_score, result.passed, result.attempt, result.duration_ms) == (
        8,
        10,
        True,
        2,
        312_000,
    )
    assert found[quiz["id"]][0].key == b"ada@example.com"


def test_collector_xapi_unsupported_statement_is_rejected_into_the_dlq(
    collector: Collector,
) -> None:
    odd = fresh(video_statement("http://adlnet.gov/expapi/verbs/shared"))
    reply = collector.post("/v1/xapi/statements", odd)
    assert reply.status_code == 422
    assert reply.json()["results"][0]["reason"] == "invalid"
    letters = [d for d in dead_letters(collector.bootstrap) if odd["id"] in d["raw"]]
    assert [(d["reason"], d["endpoint"]) for d in letters] == [("invalid", "/v1/xapi/statements")]


def test_collector_cmcd_query_and_headers_map_to_playback_qos(collector: Collector) -> None:
    sid = str(uuid.uuid4())
    query = (
        f'br=3200,bs,cid="course-data-101/video-1",mtp=25400,ot=v,sf=d,sid="{sid}",su,'
        "tb=6000,com.example-foo=7"
    )
    reply = collector.post(
        "/v1/cmcd", content=b"", params={"CMCD": query, "learner_id": "learner-77"}
    )
    assert reply.status_code == 200, reply.text
    sid2 = str(uuid.uuid4())
    headers = {
        "CMCD-Request": "mtp=12000",
        "CMCD-Object": "br=1800,ot=v",
        "CMCD-Session": f'cid="course-data-101/video-2",sid="{sid2}"',
        "CMCD-Status": "bs",
        "X-Network-Type": "4g",
    }
    reply2 = collector.post(
        "/v1/cmcd", content=b"", headers=headers, params={"learner_id": "learner-78"}
    )
    assert reply2.status_code == 200, reply2.text
    ids = [reply.json()["results"][0]["event_id"], reply2.json()["results"][0]["event_id"]]
    found = records_by_event_id(collector.bootstrap, ["learner.qos"])
    first, second = (parse_event(found[i][0].value) for i in ids)
    assert isinstance(first, PlaybackQos) and isinstance(second, PlaybackQos)
    assert first.report == "cmcd" and first.playback_id == sid
    assert (first.avg_bitrate_kbps, first.peak_bitrate_kbps, first.throughput_kbps) == (
        3200,
        6000,
        25400,
    )
    assert first.rebuffer_count == 1 and first.learner_id == "learner-77"
    assert first.cmcd is not None and first.cmcd["com.example-foo"] == 7  # unknown key kept
    assert (second.video_id, second.avg_bitrate_kbps, second.client.network_type) == (
        "video-2",
        1800,
        "4g",
    )


def test_collector_cmcd_without_learner_is_rejected_with_the_fix(collector: Collector) -> None:
    reply = collector.post(
        "/v1/cmcd", content=b"", params={"CMCD": f'br=1,cid="c/v",sid="{uuid.uuid4()}"'}
    )
    assert reply.status_code == 422
    assert "learner" in reply.json()["results"][0]["detail"]
