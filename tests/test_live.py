"""The live-class server end to end: aiortc participants and headless Chromium in a real room,
their QoS through Kafka into ClickHouse, and every kind of bad input refused or dead-lettered."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from learnstream.stack import Stack
from live import client, qos
from live.rooms import LiveError
from live.server import _check_offer as check_offer
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.settings import ClickHouseSettings
from sinks.clickhouse.sink import ClickHouseSink
from sinks.settings import SinkSettings
from streams.kafka import read_to_end
from tests.collector_fixtures import BROWSER_KEY, SERVER_KEY, dead_letters, example
from tests.live_fixtures import Live, chromium, stop

pytestmark = pytest.mark.slow


def live_rows(bootstrap: str, room_id: str, topic: str = "live.qos") -> list[dict[str, Any]]:
    rows = [json.loads(r.value) for r in read_to_end(bootstrap, [topic])]
    return [r for r in rows if r.get("room_id") == room_id]


def into_clickhouse(stack: Stack, database: str, topics: list[str]) -> Any:
    """Run the ClickHouse sink over ``topics`` into a fresh migrated ``database``."""
    dsn = f"{stack.settings.clickhouse.dsn}/{database}"
    client_ = connect(dsn)
    migrate(client_)
    sink = ClickHouseSink(
        stack.settings.kafka.bootstrap_servers,
        SinkSettings(group_id=f"live-test-{uuid.uuid4().hex[:8]}", batch_max_s=0.2),
        ClickHouseSettings(dsn=dsn),
        lambda: connect(dsn),
        topics=topics,
    )
    sink.run(idle_exit_s=2.0)
    return client_


def new_room(live: Live, **body: Any) -> str:
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    response = live.request("POST", "/v1/rooms", {"room_id": room_id, **body})
    assert response.status_code == 201, response.text
    return room_id


# --- the conversions, without services --------------------------------------------------------


def test_qos_units_and_interval_figures() -> None:
    remote = SimpleNamespace(
        type="remote-inbound-rtp", roundTripTime=0.042, jitter=450, packetsReceived=990,
        packetsLost=10,
    )  # fmt: skip
    out = SimpleNamespace(type="outbound-rtp", bytesSent=1_000_000)
    m = qos.from_sender_stats("video", {"a": remote, "b": out}, 90_000, at=10.0)
    assert m.rtt_ms == pytest.approx(42.0)
    assert m.jitter_ms == pytest.approx(5.0)  # 450 / 90 kHz = 5 ms
    audio = qos.from_sender_stats("audio", {"a": remote}, qos.clock_rate("audio"), at=10.0)
    assert audio.jitter_ms == pytest.approx(450 / 48)
    later = qos.Measure("video", "inbound", 12.0, packets_received=1180, packets_lost=30,
                        bytes=1_250_000)  # fmt: skip
    figures = qos.interval_figures(m, later)
    assert figures["interval_s"] == pytest.approx(2.0)
    assert figures["bitrate_kbps"] == pytest.approx(250_000 * 8 / 1000 / 2)  # 1000 kbps
    assert figures["fraction_lost"] == pytest.approx(20 / 210)  # 190 received + 20 lost
    assert qos.interval_figures(None, later)["bitrate_kbps"] is None
    # a receiver report a client can forge or a wrapped timestamp: the figure is dropped, the
    # round goes on (jitter 0xFFFFFFFF RTP units is 13 hours; a negative RTT)
    absurd = SimpleNamespace(
        type="remote-inbound-rtp", roundTripTime=-3.0, jitter=0xFFFFFFFF, packetsReceived=1,
        packetsLost=0,
    )  # fmt: skip
    bad = qos.from_sender_stats("video", {"a": absurd}, 90_000, at=1.0)
    assert bad.rtt_ms is None and bad.jitter_ms is None
    # nothing new expected in the interval: the loss is unknown, not zero
    same = qos.Measure("video", "inbound", 14.0, packets_received=1180, packets_lost=30)
    assert qos.interval_figures(later, same)["fraction_lost"] is None


def test_offers_are_checked_for_what_the_role_does() -> None:
    two_videos = "v=0\r\nm=video 9 X 96\r\na=sendonly\r\nm=video 9 X 96\r\na=sendonly\r\n"
    with pytest.raises(LiveError, match="one audio and one video"):
        check_offer(two_videos, "teacher")
    with pytest.raises(LiveError, match="recvonly"):
        check_offer("v=0\r\nm=video 9 X 96\r\na=sendrecv\r\n", "learner")
    with pytest.raises(LiveError, match="audio or video"):
        check_offer("v=0\r\nm=application 9 X webrtc-datachannel\r\n", "learner")
    check_offer("v=0\r\nm=audio 9 X 111\r\na=recvonly\r\nm=video 9 X 96\r\na=inactive\r\n",
                "learner")  # fmt: skip


# --- aiortc participants ----------------------------------------------------------------------


def test_aiortc_class_media_quiz_and_server_qos_reach_kafka_and_clickhouse(
    live: Live, stack: Stack, ch_database: str
) -> None:
    room_id = new_room(live, course_id="course-live-101", title="Linear algebra, live")

    async def scenario() -> dict[str, Any]:
        teacher = await client.publish(live.url, SERVER_KEY, room_id, "teacher-7")
        learners = [
            await client.join(live.url, SERVER_KEY, room_id, "learner-a", "5g_sa", "eu-west"),
            await client.join(live.url, SERVER_KEY, room_id, "learner-b", "4g", "us-east"),
        ]
        try:
            for _ in range(100):  # media flows to both learners
                if all(p.frames.get("video", 0) >= 30 and p.frames.get("audio", 0) >= 30
                       for p in learners):  # fmt: skip
                    break
                await asyncio.sleep(0.1)
            frames = [dict(p.frames) for p in learners]
            await learners[0].send({"type": "chat", "text": "can you repeat the last step?"})
            chat = await learners[1].next_message("chat")
            await teacher.send({"type": "quiz", "quiz_id": "q-eigen", "question": "det(I)?",
                                "choices": ["0", "1", "2"], "answer": 1})  # fmt: skip
            asked = await learners[0].next_message("quiz")
            answer = {"type": "quiz_answer", "quiz_id": "q-eigen", "choice": 1,
                      "event_id": str(uuid.uuid4())}  # fmt: skip
            await learners[0].send(answer)
            ack = await learners[0].next_message("ack")
            told = await teacher.next_message("answer")
            await learners[0].send(answer)  # resent: the first verdict, nothing written again
            resent = await learners[0].next_message("ack")
            await learners[0].send({**answer, "event_id": str(uuid.uuid4()), "choice": 0})
            second = await learners[0].next_message("error")  # one attempt by default
            await asyncio.sleep(3.5)  # three QoS rounds
            described = live.request("GET", f"/v1/rooms/{room_id}").json()
            return {"room": described, "frames": frames, "chat": chat, "asked": asked,
                    "ack": ack, "told": told, "resent": resent, "second": second,
                    "peers": [teacher.peer_id] + [p.peer_id for p in learners]}  # fmt: skip
        finally:
            for p in [teacher, *learners]:
                await p.close()

    got = asyncio.run(scenario())
    for frames in got["frames"]:
        assert frames.get("video", 0) >= 30 and frames.get("audio", 0) >= 30, got["frames"]
    # the teacher's encoded frames were forwarded (no re-encoding per learner)
    assert got["room"]["forwarded_frames"] >= 60, got["room"]
    assert got["chat"]["text"] == "can you repeat the last step?"
    assert "answer" not in got["asked"]  # the key stays on the server
    assert got["ack"]["status"] == "accepted" and got["ack"]["correct"] is True
    assert got["resent"]["duplicate"] is True
    assert got["resent"]["event_id"] == got["ack"]["event_id"]
    assert "no attempts left" in got["second"]["detail"]
    assert got["told"] == {"type": "answer", "peer_id": got["peers"][1], "quiz_id": "q-eigen",
                           "correct": True}  # fmt: skip

    # the answer is a quiz_result in Kafka, through the collector's validation
    quiz = [json.loads(r.value) for r in read_to_end(live.bootstrap, ["learner.quiz"])]
    written = [q for q in quiz if q["event_id"] == got["ack"]["event_id"]]
    assert len(written) == 1  # the resend wrote nothing
    result = written[0]
    assert result["learner_id"] == "learner-a" and result["course_id"] == "course-live-101"
    assert (result["score"], result["max_score"], result["passed"], result["attempt"]) == (
        1.0, 1.0, True, 1,
    )  # fmt: skip
    assert result["client"]["network_type"] == "5g_sa"

    # server-side QoS for every peer and stream
    rows = live_rows(live.bootstrap, room_id)
    server = [r for r in rows if r["source"] == "server"]
    assert {r["peer_id"] for r in server} == set(got["peers"])
    assert {(r["role"], r["direction"], r["kind"]) for r in server} == {
        ("teacher", "outbound", "audio"), ("teacher", "outbound", "video"),
        ("learner", "inbound", "audio"), ("learner", "inbound", "video"),
    }  # fmt: skip
    learner_video = [r for r in server if r["role"] == "learner" and r["kind"] == "video"]
    assert all(r["rtt_ms"] is None or 0 < r["rtt_ms"] < 1000 for r in learner_video)
    assert any(r["rtt_ms"] and r["rtt_ms"] > 0 for r in learner_video)
    assert all(r["bitrate_kbps"] > 50 for r in learner_video)
    assert all(0 <= r["jitter_ms"] < 500 for r in server if r["jitter_ms"] is not None)
    assert all(0 <= r["score"] <= 100 for r in server)

    # the server's own health, in the shape every service publishes
    health = [json.loads(r.value) for r in read_to_end(live.bootstrap, ["pipeline.metrics"])]
    mine = [h for h in health if h["service"] == "live"]
    assert mine and max(h["extra"]["qos_rows"] for h in mine) > 0

    # … and in ClickHouse, with the client's network and region
    ch = into_clickhouse(stack, ch_database, ["live.qos", "learner.quiz"])
    stored = ch.query(
        "SELECT peer_id, role, kind, rtt_ms, bitrate_kbps, jitter_ms, score, network_type, region"
        " FROM live_qos FINAL WHERE room_id = {room:String} AND source = 'server'",
        parameters={"room": room_id},
    ).result_rows
    assert len(stored) == len(server)
    assert {(r[0], r[7], r[8]) for r in stored if r[1] == "learner"} == {
        (got["peers"][1], "5g_sa", "eu-west"), (got["peers"][2], "4g", "us-east"),
    }  # fmt: skip
    assert any(r[3] and r[3] > 0 for r in stored if r[1] == "learner")
    assert all(r[6] is not None and r[6] > 0 for r in stored)
    quiz_rows = ch.query(
        "SELECT count() FROM quiz_results WHERE event_id = {id:UUID}",
        parameters={"id": got["ack"]["event_id"]},
    ).first_row[0]
    assert quiz_rows == 1


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_4xx_and_bad_messages_are_dead_lettered(live: Live) -> None:
    offer = {"type": "offer", "learner_id": "x", "client": client.client_info()}
    room_id = new_room(live, course_id="course-live-101", max_participants=2)

    def refused(response: Any, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == code and body["detail"], body

    refused(live.request("POST", "/v1/rooms", {"room_id": "r"}, key="wrong"), 401, "unauthorized")
    refused(live.request("POST", "/v1/rooms", {}, key=None), 401, "unauthorized")
    refused(
        live.request("GET", "/v1/rooms", Origin="https://evil.test"), 403, "forbidden"
    )  # a server key from a browser
    refused(live.request("POST", f"/v1/rooms/{room_id}/publish", {**offer, "sdp": "hello"}),
            400, "bad_sdp")  # fmt: skip
    refused(live.request("POST", f"/v1/rooms/{room_id}/publish",
                         {**offer, "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video x\r\n"}),
            400, "bad_sdp")  # fmt: skip
    refused(live.request("POST", "/v1/rooms/nope/join", {**offer, "sdp": "v=0"}), 404,
            "unknown_room")  # fmt: skip
    refused(live.request("POST", f"/v1/rooms/{room_id}/join", {**offer, "sdp": "v=0"}), 409,
            "not_live")  # fmt: skip
    refused(live.request("POST", f"/v1/rooms/{room_id}/join", {"sdp": 1}), 422,
            "invalid_request")  # fmt: skip
    refused(live.request("POST", "/v1/rooms", {"room_id": room_id}), 409, "room_exists")
    # a browser key joins classes; it does not open, list or teach them without the token
    as_browser = {"key": BROWSER_KEY, "Origin": live.url}
    refused(live.request("POST", "/v1/rooms", {}, **as_browser), 403, "forbidden")
    refused(live.request("GET", "/v1/rooms", **as_browser), 403, "forbidden")
    assert "participants" not in live.request("GET", f"/v1/rooms/{room_id}", **as_browser).json()
    refused(live.request("POST", f"/v1/rooms/{room_id}/publish", {**offer, "sdp": "v=0"},
                         **as_browser), 403, "forbidden")  # fmt: skip
    big = live.request("POST", f"/v1/rooms/{room_id}/join", {**offer, "sdp": "v=0" + "x" * 90_000},
                       key="wrong")  # fmt: skip
    assert big.status_code == 413  # refused before the body is read, even without a key
    refused(live.request("POST", "/v1/rooms", {"max_participants": 10_000}), 400,
            "too_many_participants")  # fmt: skip

    # the refusals are documented in the OpenAPI document, like the collector's
    doc = live.request("GET", "/openapi.json", key=None).json()
    join = doc["paths"]["/v1/rooms/{room_id}/join"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "413", "422"} <= set(join["responses"])
    assert "Offer" in doc["components"]["schemas"]

    # a browser key may not pose as the live server (whose scores the store keeps)
    forged = {**example("live_qos"), "source": "server", "score": 100.0}
    posed = live.collector.post("/v1/events", forged, key=BROWSER_KEY, headers={"Origin": live.url})
    assert posed.status_code == 403 and "source 'server'" in posed.json()["detail"]

    marker = f"not json {uuid.uuid4().hex}"

    async def scenario() -> dict[str, Any]:
        teacher = await client.publish(live.url, SERVER_KEY, room_id, "teacher-8")
        sendrecv = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n"
        sends = live.request("POST", f"/v1/rooms/{room_id}/join", {**offer, "sdp": sendrecv})
        assert sends.status_code == 400 and "recvonly" in sends.text  # a learner never sends
        learner = await client.join(live.url, SERVER_KEY, room_id, "learner-c")
        try:
            with pytest.raises(RuntimeError, match=r"409.*room_full"):
                await client.join(live.url, SERVER_KEY, room_id, "learner-d")
            with pytest.raises(RuntimeError, match=r"409.*teacher_present"):
                await client.publish(live.url, SERVER_KEY, room_id, "teacher-9")
            await learner.send(marker)
            broken = await learner.next_message("error")
            await learner.send({"type": "quiz_answer", "quiz_id": "never-asked", "choice": 0})
            unknown = await learner.next_message("error")
            await learner.send({"type": "shout", "text": "hi"})
            shout = await learner.next_message("error")
            # leaving needs the participant's own token (or the room's creator)
            path = f"/v1/rooms/{room_id}/peers/{teacher.peer_id}"
            other = live.request("DELETE", path, key=BROWSER_KEY, Origin=live.url)
            assert other.status_code == 403, other.text
            own = live.request("DELETE", f"/v1/rooms/{room_id}/peers/{learner.peer_id}",
                               key=BROWSER_KEY, Origin=live.url,
                               **{"X-Peer-Token": learner.token})  # fmt: skip
            assert own.status_code == 204, own.text
            return {"broken": broken, "unknown": unknown, "shout": shout}
        finally:
            await learner.close()
            await teacher.close()

    got = asyncio.run(scenario())
    assert got["broken"]["reason"] == "malformed_json" and got["broken"]["dead_lettered"]
    assert got["unknown"]["reason"] == "invalid" and "never-asked" in got["unknown"]["detail"]
    assert got["shout"]["reason"] == "unknown_type"
    letters = [d for d in dead_letters(live.bootstrap) if d["endpoint"] == "live"]
    assert any(d["raw"] == marker and d["reason"] == "malformed_json" for d in letters)
    assert any("never-asked" in d["raw"] and d["reason"] == "invalid" for d in letters)

    created = []  # the server's room limit (4 in this module) gives 429
    for _ in range(5):
        response = live.request("POST", "/v1/rooms", {})
        if response.status_code != 201:
            refused(response, 429, "too_many_rooms")
            break
        created.append(response.json()["room_id"])
    else:
        raise AssertionError("the room limit was never reached")
    for made in created:
        assert live.request("DELETE", f"/v1/rooms/{made}").status_code == 204


# --- a real browser ---------------------------------------------------------------------------


def test_headless_chromium_learner_reports_its_own_stats_into_clickhouse(
    live: Live, stack: Stack, ch_database: str, tmp_path: Path
) -> None:
    room_id = new_room(live, course_id="course-live-101")

    async def scenario() -> None:
        teacher = await client.publish(live.url, SERVER_KEY, room_id, "teacher-10")
        browser = chromium(
            f"{live.url}/?room={room_id}&role=learner&learner_id=learner-chrome&key={BROWSER_KEY}"
            "&network_type=wifi&region=eu-north&autostart=1",
            tmp_path / "profile",
            tmp_path / "chromium.log",
        )
        try:
            for _ in range(120):
                rows = await asyncio.to_thread(live_rows, live.bootstrap, room_id)
                if sum(r["source"] == "browser" and r["kind"] == "video" for r in rows) >= 2:
                    return
                await asyncio.sleep(0.5)
            raise AssertionError(
                "no browser QoS after 60 s; chromium log tail:\n"
                + (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
            )
        finally:
            stop(browser)
            await teacher.close()

    asyncio.run(scenario())
    ch = into_clickhouse(stack, ch_database, ["live.qos"])
    rows = ch.query(
        "SELECT frames_per_second, frames_dropped, freeze_count, total_freezes_duration_ms,"
        " jitter_buffer_delay_ms, bitrate_kbps, role, network_type, region, score, band"
        " FROM live_qos FINAL WHERE room_id = {room:String} AND source = 'browser'"
        " AND kind = 'video'",
        parameters={"room": room_id},
    ).result_rows
    assert len(rows) >= 2
    for fps, dropped, freezes, frozen, jb_delay, kbps, role, net, region, score, band in rows:
        assert fps is not None and fps > 5, rows
        assert dropped is not None and freezes is not None and frozen is not None
        assert jb_delay is not None and jb_delay >= 0
        assert kbps is not None and kbps > 50
        assert (role, net, region) == ("learner", "wifi", "eu-north")
        assert score is not None and 0 < score <= 100 and band
