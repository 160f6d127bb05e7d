"""The collector against the real broker: acknowledgements, bad input and the DLQ, auth, CORS."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from schemas import EVENT_TYPES, Enrollment, format_utc, parse_event, xapi
from streams.collector.app import create_app
from streams.collector.auth import hash_key
from streams.collector.settings import CollectorSettings
from streams.delivery import AsyncProducer, Record
from streams.kafka import read_to_end
from streams.topics import TOPIC_FOR_TYPE
from tests.collector_fixtures import (
    BROWSER_KEY,
    BROWSER_ORIGIN,
    Collector,
    dead_letters,
    example,
    records_by_event_id,
    start_collector,
    stop_collector,
)

EVENT_TOPICS = sorted(set(TOPIC_FOR_TYPE.values()))


def test_collector_batch_is_written_once_each_keyed_by_learner_with_event_time(
    collector: Collector,
) -> None:
    batch = [example(t) for t in EVENT_TYPES for _ in range(3)]
    reply = collector.post("/v1/events", batch)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["accepted"] == len(batch) and body["rejected"] == 0
    assert [r["status"] for r in body["results"]] == ["accepted"] * len(batch)

    found = records_by_event_id(collector.bootstrap, EVENT_TOPICS)
    for event in batch:
        records = found[event["event_id"]]
        assert len(records) == 1, event["event_id"]
        record = records[0]
        assert record.topic == TOPIC_FOR_TYPE[event["type"]]
        assert record.key == event["learner_id"].encode()
        stored = parse_event(record.value)
        assert record.timestamp_ms == int(stored.occurred_at.timestamp() * 1000)
        assert stored.received_at is not None
        assert abs((stored.received_at - datetime.now(UTC)).total_seconds()) < 60


def test_collector_single_event_object_is_accepted(collector: Collector) -> None:
    event = example("course_viewed")
    reply = collector.post("/v1/events", event)
    assert reply.status_code == 200
    assert reply.json()["results"][0]["event_id"] == event["event_id"]


def test_collector_mixed_batch_reports_each_event_and_writes_duplicates_once(
    collector: Collector,
) -> None:
    good = example("quiz_result")
    invalid = example("quiz_result", score=99.0)
    unknown = {"type": "course_rated", "event_id": str(uuid.uuid4()), "stars": 5}
    reply = collector.post("/v1/events", [good, good, invalid, unknown])
    assert reply.status_code == 207
    results = reply.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [
        ("accepted", None),
        ("duplicate", None),
        ("rejected", "invalid"),
        ("rejected", "unknown_type"),
    ]
    assert "score 99.0 exceeds max_score 10.0" in results[2]["detail"]
    assert "course_rated" in results[3]["detail"]
    found = records_by_event_id(collector.bootstrap, EVENT_TOPICS)
    assert len(found[good["event_id"]]) == 1
    assert invalid["event_id"] not in found


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("malformed_json", 400, "malformed_json"),
        ("unknown_type", 422, "unknown_type"),
        ("invalid", 422, "invalid"),
        ("naive_time", 422, "invalid"),
        ("future", 422, "invalid"),
        ("bad_version", 422, "invalid"),
    ],
)
def test_collector_bad_input_gets_its_4xx_and_exactly_one_dead_letter(
    collector: Collector, case: str, status: int, reason: str
) -> None:
    token = uuid.uuid4().hex
    if case == "malformed_json":
        reply = collector.post(
            "/v1/events", content=f'[{{"type": "quiz_result", "x": {token}'.encode()
        )
    else:
        event = {
            "unknown_type": {"type": "course_rated", "event_id": token},
            "invalid": example("quiz_result", learner_id=token, attempt=0),
            "naive_time": example(
                "quiz_result", learner_id=token, occurred_at="2026-11-28T10:00:00"
            ),
            "future": example(
                "quiz_result",
                learner_id=token,
                occurred_at=format_utc(datetime.now(UTC) + timedelta(hours=1)),
            ),
            "bad_version": example("quiz_result", learner_id=token, schema_version=2),
        }[case]
        reply = collector.post("/v1/events", event)
    assert reply.status_code == status, reply.text
    letters = [d for d in dead_letters(collector.bootstrap) if token in d["raw"]]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["reason"] == reason
    assert letter["client_id"] == "server-app"
    assert letter["endpoint"] == "/v1/events"
    assert letter["detail"]
    assert letter["received_at"].endswith("Z")
    if case == "bad_version":
        assert "schema_version 2 is not supported" in letter["detail"]
    if case == "future":
        assert "ahead of the collector's clock" in letter["detail"]


def test_collector_control_character_in_an_id_is_invalid_counted_and_dead_lettered(
    collector: Collector,
) -> None:
    token = uuid.uuid4().hex
    good = example("course_viewed", learner_id=f"learner-{token}")
    bad = example("course_viewed", learner_id=f"learner-{token}\x00x")
    before = httpx.get(f"{collector.url}/healthz").json()["counters"]["invalid"]
    reply = collector.post("/v1/events", [good, bad])
    assert reply.status_code == 207, reply.text
    results = reply.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [
        ("accepted", None),
        ("rejected", "invalid"),
    ]
    assert "learner_id: ids must be printable: control character U+0000" in results[1]["detail"]
    after = httpx.get(f"{collector.url}/healthz").json()["counters"]["invalid"]
    assert after == before + 1
    letters = [d for d in dead_letters(collector.bootstrap) if d.get("event_id") == bad["event_id"]]
    assert len(letters) == 1 and letters[0]["reason"] == "invalid"
    assert json.loads(letters[0]["raw"])["learner_id"] == bad["learner_id"]  # kept verbatim
    found = records_by_event_id(collector.bootstrap, EVENT_TOPICS)
    assert len(found[good["event_id"]]) == 1 and bad["event_id"] not in found


def test_collector_publishes_its_health_in_the_shared_pipeline_metrics_shape(
    stack, tmp_path: Path
) -> None:
    from schemas.derived import PipelineMetrics

    bootstrap = stack.settings.kafka.bootstrap_servers
    running = start_collector(
        {"LEARNSTREAM_COLLECTOR__METRICS_INTERVAL_S": "0.5"}, bootstrap, tmp_path / "c.log"
    )
    port = running.url.rsplit(":", 1)[1]
    try:
        assert running.post("/v1/events", [example("course_viewed")] * 1).status_code == 200
        time.sleep(2)
    finally:
        stop_collector(running)
    mine = [
        PipelineMetrics.model_validate_json(r.value)
        for r in read_to_end(bootstrap, ["pipeline.metrics"])
        if json.loads(r.value).get("instance", "").endswith(f":{port}")
    ]
    assert mine and all(m.service == "collector" and m.lag is None for m in mine)
    assert sum(m.in_per_s * m.interval_s for m in mine) == pytest.approx(1)
    assert mine[-1].extra["totals"]["accepted"] == 1


def test_collector_request_faults_get_their_codes_and_no_dead_letter(
    collector: Collector,
) -> None:
    token = uuid.uuid4().hex
    event = example("course_viewed", learner_id=token)
    assert collector.post("/v1/events", event, key="wrong").status_code == 401
    assert collector.post("/v1/events", event, key=None).status_code == 401
    typed = collector.post("/v1/events", event, headers={"Content-Type": "text/plain"})
    assert typed.status_code == 415
    too_many = collector.post("/v1/events", [event] * 501)
    assert too_many.status_code == 413
    huge = collector.post("/v1/events", content=b"[" + b" " * (1024 * 1024) + b"]")
    assert huge.status_code == 413
    assert collector.post("/v1/events", []).status_code == 400
    assert not [d for d in dead_letters(collector.bootstrap) if token in d["raw"]]
    counters = httpx.get(collector.url + "/healthz").json()["counters"]
    assert counters["unauthorized"] >= 2 and counters["too_large"] >= 2
    metrics = httpx.get(collector.url + "/metrics").text
    assert 'learnstream_collector_events_total{outcome="unsupported_media_type"}' in metrics


def test_collector_browser_key_works_from_its_origin_and_server_keys_do_not(
    collector: Collector,
) -> None:
    preflight = httpx.options(
        collector.url + "/v1/events",
        headers={
            "Origin": BROWSER_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    event = example("course_viewed")
    ok = collector.post("/v1/events", event, key=BROWSER_KEY, headers={"Origin": BROWSER_ORIGIN})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    server = collector.post(
        "/v1/events", example("course_viewed"), headers={"Origin": BROWSER_ORIGIN}
    )
    assert server.status_code == 403


def forbidden_count(collector: Collector) -> int:
    return int(httpx.get(collector.url + "/healthz").json()["counters"]["forbidden"])


def test_collector_enrollment_from_a_browser_key_is_403_counted_and_nothing_is_written(
    collector: Collector,
) -> None:
    token = uuid.uuid4().hex
    viewed = example("course_viewed", learner_id=token)
    enrollment = example("enrollment", learner_id=token)
    before = forbidden_count(collector)
    mixed = collector.post(
        "/v1/events", [viewed, enrollment], key=BROWSER_KEY, headers={"Origin": BROWSER_ORIGIN}
    )
    assert mixed.status_code == 403, mixed.text
    body = mixed.json()
    assert body["error"] == "forbidden"
    assert "accepted only from server clients" in body["detail"]
    assert "'web-player' is a browser client" in body["detail"]
    # the same key without an Origin (a script holding a browser key): the same answer
    alone = collector.post("/v1/events", enrollment, key=BROWSER_KEY)
    assert alone.status_code == 403
    # an invalid enrollment is still an enrollment: refused before validation
    broken = collector.post("/v1/events", {**enrollment, "price": "free"}, key=BROWSER_KEY)
    assert broken.status_code == 403
    assert forbidden_count(collector) == before + 3
    metrics = httpx.get(collector.url + "/metrics").text
    assert f'learnstream_collector_events_total{{outcome="forbidden"}} {before + 3}' in metrics
    found = records_by_event_id(collector.bootstrap, EVENT_TOPICS)
    assert viewed["event_id"] not in found and enrollment["event_id"] not in found
    assert not [d for d in dead_letters(collector.bootstrap) if token in d["raw"]]


def test_collector_enrollment_from_a_server_key_is_accepted(collector: Collector) -> None:
    enrollment = example("enrollment")
    reply = collector.post("/v1/events", [enrollment, example("course_viewed")])
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == 2
    records = records_by_event_id(collector.bootstrap, EVENT_TOPICS)[enrollment["event_id"]]
    stored = parse_event(records[0].value)
    assert stored.type == "enrollment" and stored.escrow is not None
    assert stored.escrow.asset == "ETH"


def test_collector_browser_key_still_sends_every_other_event_type(collector: Collector) -> None:
    batch = [example(t) for t in EVENT_TYPES if t != "enrollment"]
    reply = collector.post("/v1/events", batch, key=BROWSER_KEY, headers={"Origin": BROWSER_ORIGIN})
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == len(batch)


def test_collector_xapi_enrollment_from_a_browser_key_would_be_403_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """xAPI maps no statement to an enrollment today; if a mapping ever does, the rule holds."""

    class Recording(AsyncProducer):
        def __init__(self) -> None:
            self.sent: list[Record] = []

        async def send(self, records: Sequence[Record], timeout: float) -> list[str | None]:
            self.sent += records
            return [None] * len(records)

        def close(self) -> None:
            pass

    enrollment = parse_event(json.dumps(example("enrollment")))
    assert isinstance(enrollment, Enrollment)
    monkeypatch.setattr(xapi, "statement_to_event", lambda statement, client: enrollment)
    settings = CollectorSettings(
        api_keys={"web-player": hash_key(BROWSER_KEY), "server-app": hash_key("server")},
        browser_clients=["web-player"],
    )
    producer = Recording()
    app = create_app(settings, "127.0.0.1:1", producer=producer)
    statement = {"actor": {}, "verb": {}, "object": {}}

    async def post(key: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
            return await client.post(
                "/v1/xapi/statements", json=statement, headers={"X-API-Key": key}
            )

    browser = asyncio.run(post(BROWSER_KEY))
    assert browser.status_code == 403 and "server clients" in browser.json()["detail"]
    assert producer.sent == []
    server = asyncio.run(post("server"))
    assert server.status_code == 200, server.text
    assert [r.topic for r in producer.sent] == [TOPIC_FOR_TYPE["enrollment"]]
    assert app.state.handler.ingest.counters.snapshot()["forbidden"] == 1


def test_collector_schemas_and_openapi_are_served(collector: Collector) -> None:
    schemas = httpx.get(collector.url + "/v1/schemas").json()
    assert {f"{t}.json" for t in EVENT_TYPES} <= set(schemas)
    doc = httpx.get(collector.url + "/openapi.json").json()
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] == 500
    assert set(doc["paths"]["/v1/events"]["post"]["responses"]) >= {
        "200",
        "207",
        "400",
        "401",
        "403",
        "413",
        "415",
        "422",
    }


def test_collector_answers_503_when_kafka_cannot_confirm(tmp_path: Path) -> None:
    from learnstream.stack.procs import free_port

    dead = start_collector(
        {"LEARNSTREAM_COLLECTOR__DELIVERY_TIMEOUT_S": "2"},
        f"127.0.0.1:{free_port()}",
        tmp_path / "c.log",
    )
    try:
        reply = dead.post("/v1/events", example("course_viewed"))
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.json()["results"][0]["status"] == "failed"
    finally:
        stop_collector(dead)


def test_collector_dead_letter_replayed_after_the_fix_arrives_exactly_once(
    collector: Collector, stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams import dlq
    from streams.collector.settings import CollectorSettings

    old = example("course_viewed", occurred_at=format_utc(datetime.now(UTC) - timedelta(days=40)))
    reply = collector.post("/v1/events", old)
    assert reply.status_code == 422
    assert "more than 30 days before" in reply.json()["results"][0]["detail"]

    def replay(max_past_days: float) -> dlq.ReplayResult:
        settings = CollectorSettings(max_past_days=max_past_days)
        contents = dlq.read_all(collector.bootstrap)
        chosen = [x for x in contents.letters if x.record.event_id == old["event_id"]]
        assert len(chosen) == 1
        [result] = dlq.Replayer(collector.bootstrap, settings).replay(chosen, contents)
        return result

    assert replay(30).outcome == "still_rejected"
    assert records_by_event_id(collector.bootstrap, ["learner.views"]).get(old["event_id"]) is None
    fixed = replay(60)  # the fix: the window now reaches 60 days back
    assert fixed.outcome == "replayed"
    assert fixed.event_ids == (old["event_id"],)
    assert replay(60).outcome == "already_replayed"
    found = records_by_event_id(collector.bootstrap, ["learner.views"])[old["event_id"]]
    assert len(found) == 1
    stored = parse_event(found[0].value)
    assert stored.received_at is not None and stored.received_at < datetime.now(UTC)


def test_cli_dlq_list_and_show(collector: Collector, stack) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    token = uuid.uuid4().hex
    collector.post("/v1/events", {"type": "nope", "event_id": token})
    env = {**os.environ, "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": collector.bootstrap}
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "learnstream.cli",
            "dlq",
            "list",
            "--json",
            "--reason",
            "unknown_type",
            "--since",
            "10m",
            "--limit",
            "1000",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [r for r in rows if r["event_id"] == token]
    assert len(mine) == 1 and mine[0]["replayed"] is False
    shown = subprocess.run(
        [sys.executable, "-m", "learnstream.cli", "dlq", "show", mine[0]["dlq_id"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert token in json.loads(shown.stdout)["raw"]
