"""A client retry counts once everywhere: the same events posted again, in new requests, across a
collector restart and a sink restart, are one row in every raw table and one count in every
view, without FINAL.

Clients retry whenever an acknowledgement is lost, so this is normal traffic: each copy passes
the collector (a new request, a new received_at) and lands in Kafka under a new offset. The
ClickHouse sink stores an event_id once within its dedup horizon (docs/architecture.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from learnstream.settings import ClickHouseSettings, SinkSettings
from learnstream.stack import Stack
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import EVENT_TABLES, TABLE_FOR_TOPIC
from streams.topics import TOPIC_FOR_TYPE
from tests.collector_fixtures import Collector, example, start_collector, stop_collector

pytestmark = pytest.mark.slow

PLAYED_MS = 61_000


def batch(course_id: str) -> list[dict[str, Any]]:
    """One event of every type, for one course of this test only."""
    events = [
        example("course_viewed", course_id=course_id),
        example("video_playback", course_id=course_id),
        example("playback_qos", course_id=course_id, played_ms=PLAYED_MS),
        example("quiz_result", course_id=course_id),
        example("enrollment", course_id=course_id),
        example("live_qos", course_id=course_id, room_id=f"room-{course_id}"),
        example("immersive_qos", course_id=course_id),
    ]
    assert {e["type"] for e in events} == set(TOPIC_FOR_TYPE)
    return events


@pytest.fixture
def collector_log(tmp_path: Path) -> Path:
    return tmp_path / "collector.log"


@pytest.fixture
def database(stack: Stack) -> Iterator[tuple[str, Client]]:
    name = f"retries_{uuid.uuid4().hex[:10]}"
    admin = connect(stack.settings.clickhouse.dsn)
    admin.command(f"CREATE DATABASE {name}")
    client = connect(f"{stack.settings.clickhouse.dsn}/{name}")
    migrate(client)
    try:
        yield f"{stack.settings.clickhouse.dsn}/{name}", client
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name}")


def sink(stack: Stack, dsn: str, group: str) -> ClickHouseSink:
    topics = sorted({t for t, table in TABLE_FOR_TOPIC.items() if table in EVENT_TABLES})
    return ClickHouseSink(
        stack.settings.kafka.bootstrap_servers,
        SinkSettings(group_id=group, batch_max_s=0.2),
        ClickHouseSettings(dsn=dsn),
        lambda: connect(dsn),
        topics=topics,
    )


def post(collector: Collector, events: list[dict[str, Any]]) -> None:
    reply = collector.post("/v1/events", events)
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == len(events)


def counted(client: Client, course_id: str, ids: list[str]) -> dict[str, object]:
    """Rows per raw table and every view's totals for the course, without FINAL."""
    out: dict[str, object] = {}
    for table in EVENT_TABLES:
        out[table] = client.query(
            f"SELECT count(), uniqExact(event_id) FROM {table} "
            "WHERE course_id = {c:String} AND event_id IN {ids:Array(UUID)}",
            parameters={"c": course_id, "ids": ids},
        ).first_row
    views = {
        "engagement_daily": "SELECT countMerge(views), sumMerge(watch_ms), "
        "uniqExactMerge(active_learners) FROM engagement_daily WHERE course_id = {c:String}",
        "quiz_performance": "SELECT countMerge(attempts), sumMerge(passes), "
        "uniqExactMerge(learners) FROM quiz_performance WHERE course_id = {c:String}",
        "enrollment_revenue_daily": "SELECT countMerge(enrollments), sumMerge(revenue_minor), "
        "sumMerge(deposits_wei), uniqExactMerge(learners) FROM enrollment_revenue_daily "
        "WHERE course_id = {c:String}",
        "live_qos_room_1m": "SELECT countMerge(samples) FROM live_qos_room_1m "
        "WHERE room_id = concat('room-', {c:String})",
        "immersive_qos_course_1m": "SELECT countMerge(intervals) FROM immersive_qos_course_1m "
        "WHERE course_id = {c:String}",
    }
    for view, sql in views.items():
        out[view] = client.query(sql, parameters={"c": course_id}).first_row
    return out


def test_retries_across_requests_a_collector_restart_and_a_sink_restart_count_once(
    stack: Stack, database: tuple[str, Client], collector_log: Path
) -> None:
    dsn, client = database
    bootstrap = stack.settings.kafka.bootstrap_servers
    course_id = f"course-retry-{uuid.uuid4().hex[:8]}"
    events = batch(course_id)
    ids = [e["event_id"] for e in events]
    enrollment = next(e for e in events if e["type"] == "enrollment")
    quiz = next(e for e in events if e["type"] == "quiz_result")
    once = {
        **{table: (1, 1) for table in EVENT_TABLES},
        "engagement_daily": (1, PLAYED_MS, 1),
        "quiz_performance": (1, int(quiz["passed"]), 1),
        "enrollment_revenue_daily": (
            1,
            enrollment["price"]["amount_minor"],
            int(enrollment["escrow"]["deposit_wei"]),
            1,
        ),
        "live_qos_room_1m": (1,),
        "immersive_qos_course_1m": (1,),
    }
    group = f"retries-{uuid.uuid4().hex[:8]}"

    # Two requests with the same events (the first acknowledgement was lost).
    collector = start_collector({}, bootstrap, collector_log)
    try:
        post(collector, events)
        post(collector, events)
    finally:
        stop_collector(collector)
    sink(stack, dsn, group).run(idle_exit_s=2.0)
    assert counted(client, course_id, ids) == once

    # Across a collector restart, and into a restarted sink (same group, nothing in memory).
    collector = start_collector({}, bootstrap, collector_log)
    try:
        post(collector, events)
    finally:
        stop_collector(collector)
    restarted = sink(stack, dsn, group)
    restarted.run(idle_exit_s=2.0)
    assert counted(client, course_id, ids) == once
    assert restarted.destination.repeats == len(events)  # type: ignore[attr-defined]

    # A sink that lost its offsets (a new group) re-reads every copy: nothing is added.
    sink(stack, dsn, f"{group}-lost").run(idle_exit_s=2.0)
    assert counted(client, course_id, ids) == once
