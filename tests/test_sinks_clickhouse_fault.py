"""The sink killed with SIGKILL twice mid-stream: no row twice, no row lost, views exact.

100,000+ simulated events go to Kafka in two halves (the second while the sink runs). The sink
runs as its own process and is SIGKILLed twice, each time while it is inserting. Afterwards,
without FINAL, every raw table's count() equals its distinct event ids and the number produced,
and every materialized view's totals equal a pandas computation over the distinct events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from learnstream.settings import Settings
from schemas import CourseViewed, Enrollment, PlaybackQos, QuizResult, VideoPlayback, to_wire
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from streams.catalog import publish_catalog
from streams.kafka import make_producer
from streams.simulate import BadPayload, SimEvent, Simulation, sim_config_from_args
from streams.topics import TOPIC_FOR_TYPE
from tests.conftest import ROOT
from tests.sink_fixtures import SinkEnv
from tests.sink_fixtures import sink_env as sink_env  # a fixture

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

TABLE = {
    "course_viewed": "views",
    "video_playback": "playback",
    "playback_qos": "playback_qos",
    "quiz_result": "quiz_results",
    "enrollment": "enrollments",
    "immersive_qos": "immersive_qos",
}


def produce(settings: Settings, events: list[SimEvent]) -> None:
    producer = make_producer(settings.kafka.bootstrap_servers)
    for event in events:
        while True:
            try:
                producer.produce(
                    TOPIC_FOR_TYPE[event.type],
                    key=event.learner_id.encode(),
                    value=to_wire(event),
                    timestamp=int(event.occurred_at.timestamp() * 1000),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def start_sink(settings: Settings, dsn: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LEARNSTREAM_CLICKHOUSE__DSN": dsn,
        "LEARNSTREAM_SINK__GROUP_ID": group,
        "LEARNSTREAM_SINK__BATCH_MAX_ROWS": "4000",
        "LEARNSTREAM_SINK__BATCH_MAX_S": "0.3",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "learnstream.cli", "sinks", "clickhouse"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def total_rows(client, tables: list[str]) -> int:  # type: ignore[no-untyped-def]
    return sum(int(client.query(f"SELECT count() FROM {t}").first_row[0]) for t in tables)


def wait_for(
    client,
    tables: list[str],
    at_least: int,
    proc: subprocess.Popen[bytes],  # type: ignore[no-untyped-def]
    log: Path,
    timeout: float = 300,
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        n = total_rows(client, tables)
        if n >= at_least:
            return n
        time.sleep(0.1)
    raise AssertionError(f"sink stalled below {at_least} rows: {log.read_text()[-3000:]}")


def test_sinks_clickhouse_sigkilled_twice_mid_stream_counts_every_event_exactly_once(
    sink_env: SinkEnv, tmp_path: Path
) -> None:
    env = sink_env.stack.settings
    cfg = sim_config_from_args(learners=2700, courses=20, rate=0, duration=3600, seed=2026)
    sim = Simulation(cfg)
    events = [item for item in sim if not isinstance(item, BadPayload)]
    assert len(events) >= 100_000, len(events)
    publish_catalog(make_producer(env.kafka.bootstrap_servers), sim.catalog)

    database = f"fault_{uuid.uuid4().hex[:8]}"
    server = connect(env.clickhouse.dsn)
    server.command(f"CREATE DATABASE {database}")
    dsn = f"{env.clickhouse.dsn}/{database}"
    client = connect(dsn)
    migrate(client)
    tables = sorted(TABLE.values())
    log = tmp_path / "sink.log"
    group = f"fault-{uuid.uuid4().hex[:6]}"

    half = len(events) // 2
    produce(env, events[:half])
    sink = start_sink(env, dsn, group, log)
    kills = []
    try:
        kills.append(wait_for(client, tables, len(events) // 5, sink, log))
        produce(env, events[half:])  # the second half streams in while the sink works
        sink.send_signal(signal.SIGKILL)
        sink.wait()
        sink = start_sink(env, dsn, group, log)
        kills.append(wait_for(client, tables, kills[0] + len(events) // 3, sink, log))
        sink.send_signal(signal.SIGKILL)
        sink.wait()
        sink = start_sink(env, dsn, group, log)
        wait_for(client, tables, len(events), sink, log)
        time.sleep(2)  # anything extra would show up now
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=60)
    assert len(kills) == 2 and all(0 < k < len(events) for k in kills), kills

    produced = pd.Series([e.type for e in events]).value_counts().to_dict()
    for event_type, table in TABLE.items():
        count, distinct = client.query(
            f"SELECT count(), uniqExact(event_id) FROM {table}"
        ).first_row
        assert (count, distinct) == (produced[event_type], produced[event_type]), table
    assert total_rows(client, tables) == len(events)
    check_views(client, events)


def frame(events: list[SimEvent], kind: type, **columns: str) -> pd.DataFrame:
    rows = [
        {
            "day": e.occurred_at.date(),
            "course_id": e.course_id,
            "learner": e.learner_id,
            **{k: getattr(e, v) for k, v in columns.items()},
        }
        for e in events
        if isinstance(e, kind)
    ]
    return pd.DataFrame(rows)


def check_views(client, events: list[SimEvent]) -> None:  # type: ignore[no-untyped-def]
    views = frame(events, CourseViewed)
    playback = frame(events, VideoPlayback)
    qos = frame(events, PlaybackQos, played_ms="played_ms", report="report")
    quiz = frame(
        events, QuizResult, quiz_id="quiz_id", passed="passed", score="score", max_score="max_score"
    )
    enrollments = frame(events, Enrollment, payment_model="payment_model")
    enrollments["price_minor"] = [e.price.amount_minor for e in events if isinstance(e, Enrollment)]
    enrollments["currency"] = [e.price.currency for e in events if isinstance(e, Enrollment)]
    enrollments["deposit_wei"] = [
        e.escrow.deposit_wei if e.escrow else 0 for e in events if isinstance(e, Enrollment)
    ]
    sessions = qos[qos["report"] == "session"]

    # engagement per course per day
    active = pd.concat([views, playback, sessions, quiz])[["day", "course_id", "learner"]]
    expected = (
        active.groupby(["day", "course_id"])["learner"]
        .nunique()
        .rename("active")
        .to_frame()
        .join(views.groupby(["day", "course_id"]).size().rename("views"), how="left")
        .join(sessions.groupby(["day", "course_id"])["played_ms"].sum().rename("watch"), how="left")
        .fillna(0)
        .astype("int64")
        .sort_index()
    )
    got = client.query_df(
        "SELECT day, course_id, uniqExactMerge(active_learners) AS active, "
        "countMerge(views) AS views, sumMerge(watch_ms) AS watch FROM engagement_daily "
        "GROUP BY day, course_id ORDER BY day, course_id"
    )
    got["day"] = pd.to_datetime(got["day"]).dt.date
    got = got.set_index(["day", "course_id"]).astype("int64").sort_index()
    assert got.to_dict("index") == expected.to_dict("index")

    # quiz performance per quiz
    quiz["fraction"] = quiz["score"] / quiz["max_score"]
    q_expected = (
        quiz.groupby(["course_id", "quiz_id"])
        .agg(
            attempts=("learner", "size"),
            passes=("passed", "sum"),
            learners=("learner", "nunique"),
            fraction=("fraction", "mean"),
        )
        .sort_index()
    )
    q_got = (
        client.query_df(
            "SELECT course_id, quiz_id, countMerge(attempts) AS attempts, "
            "sumMerge(passes) AS passes, uniqExactMerge(learners) AS learners, "
            "avgMerge(score_fraction) AS fraction "
            "FROM quiz_performance GROUP BY course_id, quiz_id ORDER BY course_id, quiz_id"
        )
        .set_index(["course_id", "quiz_id"])
        .sort_index()
    )
    for column in ("attempts", "passes", "learners"):
        assert q_got[column].astype("int64").tolist() == q_expected[column].astype("int64").tolist()
    assert (q_got["fraction"] - q_expected["fraction"]).abs().max() < 1e-9

    # enrollments and revenue per course and payment model (integers, exact)
    keys = ["course_id", "payment_model", "currency"]
    e_expected = (
        enrollments.groupby(keys)
        .agg(
            enrollments=("learner", "size"),
            revenue=("price_minor", "sum"),
            deposits=("deposit_wei", lambda s: sum(int(x) for x in s)),
        )
        .sort_index()
    )
    e_got = (
        client.query_df(
            "SELECT course_id, payment_model, currency, countMerge(enrollments) AS enrollments, "
            "sumMerge(revenue_minor) AS revenue, toString(sumMerge(deposits_wei)) AS deposits "
            "FROM enrollment_revenue_daily GROUP BY course_id, payment_model, currency "
            "ORDER BY course_id, payment_model, currency"
        )
        .set_index(keys)
        .sort_index()
    )
    assert e_got["enrollments"].astype("int64").tolist() == e_expected["enrollments"].tolist()
    assert e_got["revenue"].astype("int64").tolist() == e_expected["revenue"].tolist()
    assert [int(x) for x in e_got["deposits"]] == [int(x) for x in e_expected["deposits"]]
