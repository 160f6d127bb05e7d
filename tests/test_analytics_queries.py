"""Every ready query in docs/analytics.md runs against a migrated database with data in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from schemas import format_utc
from sinks.clickhouse import migrate
from tests.conftest import ROOT
from tests.test_sinks_migrations import dead_letter, example, insert_records, qos_window
from tests.test_sinks_settlement_tables import seed_settlements

DOC = ROOT / "docs" / "analytics.md"
QUERY = re.compile(r"^<!-- query: ([a-z0-9_]+) -->\n```sql\n(.*?)\n```$", re.M | re.S)
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")

# Example values for the parameters the queries declare, by name.
EXAMPLE_VALUES: dict[str, Any] = {
    "hours": 6,
    "days": 60,
    "minutes": 60,
    "inactive_days": 14,
    "limit": 20,
    "min_plays": 1,
    "min_attempts": 1,
    "min_samples": 1,
    "course_id": "",
    "room_id": "",
}


def doc_queries() -> list[tuple[str, str]]:
    return QUERY.findall(DOC.read_text(encoding="utf-8"))


def test_analytics_doc_has_at_least_12_named_queries_and_no_unnamed_sql() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = [name for name, _ in doc_queries()]
    assert len(names) >= 12
    assert len(names) == len(set(names)), "query names must be unique"
    assert text.count("```sql") == len(names), "every sql block needs a <!-- query: … --> line"


def test_analytics_doc_shows_exactly_the_packaged_ready_queries() -> None:
    """`learnstream sql --ready` runs the queries shipped in sinks/clickhouse/ready/; the doc
    shows each of them, to the character."""
    from sinks.clickhouse.queries import ready_queries

    assert dict(doc_queries()) == ready_queries()


def test_analytics_queries_never_read_raw_dead_letters() -> None:
    for name, sql in doc_queries():
        assert not re.search(r"\bdlq\b(?!_)", sql), f"{name} reads the dlq table"
        assert "learner_id" not in sql, name


def _seed(ch: Client) -> None:
    now = datetime.now(UTC)
    recent, earlier, gone = (
        now - timedelta(hours=1),
        now - timedelta(hours=2),
        now - timedelta(days=30),
    )
    insert_records(ch, "course.catalog", [example("course")])

    def learner(name: str, at: datetime, payment: str) -> list[tuple[str, dict[str, Any]]]:
        extra: dict[str, Any] = {}
        if payment != "pay_by_completion":
            extra = {"payment_model": payment, "escrow": None, "deadline_at": None}
        return [
            ("learner.views", example("course_viewed", at=at, learner_id=name)),
            ("learner.enrollments", example("enrollment", at=at, learner_id=name, **extra)),
        ]

    def play(name: str, at: datetime, video: str, verb: str, progress: float) -> tuple[str, Any]:
        record = example(
            "video_playback",
            at=at,
            learner_id=name,
            video_id=video,
            verb=verb,
            time=None,
            time_from=None,
            time_to=None,
            progress=progress,
        )
        return "learner.playback", record

    never_started = {"startup_time_ms": None, "played_ms": 0, "rebuffer_ms": 0}
    never_started |= {"rebuffer_count": 0, "avg_bitrate_kbps": None, "peak_bitrate_kbps": None}
    records = [
        *learner("learner-1", recent, "pay_by_completion"),
        *learner("learner-2", gone, "one_time"),
        *learner("learner-3", earlier, "subscription"),
        play("learner-1", recent, "video-1", "completed", 1.0),
        play("learner-1", recent, "video-2", "played", 0.95),
        play("learner-2", gone, "video-1", "played", 0.05),
        play("learner-3", earlier, "video-1", "played", 0.5),
        ("learner.quiz", example("quiz_result", at=recent, learner_id="learner-1")),
        (
            "learner.quiz",
            example("quiz_result", at=earlier, learner_id="learner-3", score=3.0, passed=False),
        ),
        ("learner.qos", example("playback_qos", at=recent, learner_id="learner-1")),
        (
            "learner.qos",
            example(
                "playback_qos",
                at=recent,
                learner_id="learner-3",
                client={"network_type": "4g"},
                video_start_failure=True,
                **never_started,
            ),
        ),
        (
            "learner.qos",
            example(
                "playback_qos",
                at=earlier,
                learner_id="learner-3",
                client={"network_type": "wifi", "platform": "web"},
                exit_before_video_start=True,
                **never_started,
            ),
        ),
        ("live.qos", example("live_qos", at=recent, learner_id="learner-1")),
        ("live.qos", example("live_qos", at=recent, learner_id="learner-3", source="server")),
        ("immersive.qos", example("immersive_qos", at=recent, learner_id="learner-1")),
        ("qos.agg.1m", qos_window(now - timedelta(minutes=10))),
        ("qos.agg.1m", qos_window(now - timedelta(minutes=10), version=2, plays=12)),
        ("qos.agg.1m", qos_window(now - timedelta(minutes=5), network_type="4g", edge_node="e2")),
        ("learner.dlq", dead_letter()),
        ("learner.dlq", dead_letter(reason="unknown_type", event_type="nope")),
        (
            "pipeline.metrics",
            {
                "service": "sink-clickhouse",
                "instance": "host-1",
                "at": format_utc(now - timedelta(seconds=5)),
                "group": "learnstream-sink-clickhouse",
                "interval_s": 10,
                "in_per_s": 10.0,
                "out_per_s": 10.0,
                "lag": 3,
                "lag_by_partition": {"learner.views/0": 3},
                "extra": {"totals": {"rows": 100}},
            },
        ),
    ]
    for topic, record in records:
        insert_records(ch, topic, [record])
    seed_settlements(ch)  # receipts, completions (the settlement queries' own tests check figures)


@pytest.fixture(scope="module")
def queries() -> list[tuple[str, str]]:
    return doc_queries()


def test_analytics_every_doc_query_runs_against_a_migrated_database(
    ch: Client, queries: list[tuple[str, str]]
) -> None:
    migrate(ch)
    _seed(ch)
    empty = []
    for name, sql in queries:
        declared = {param: kind for param, kind in PARAM.findall(sql)}
        unknown = sorted(set(declared) - set(EXAMPLE_VALUES))
        assert not unknown, f"{name}: no example value for parameters {unknown}"
        result = ch.query(sql, parameters={p: EXAMPLE_VALUES[p] for p in declared})
        if not result.result_rows:
            empty.append(name)
    # the seed data touches every table, so every question has an answer
    assert empty == []


def test_analytics_at_risk_learners_finds_the_inactive_learner_below_the_median(
    ch: Client, queries: list[tuple[str, str]]
) -> None:
    migrate(ch)
    _seed(ch)
    sql = dict(queries)["at_risk_learners"]
    rows = ch.query(sql, parameters={"inactive_days": 14, "limit": 10}).named_results()
    [row] = list(rows)
    assert row["progress"] == pytest.approx(0.025)
    assert row["course_median"] == pytest.approx(0.25)
    assert row["days_inactive"] == 30
    funnel = ch.query(dict(queries)["completion_funnel"], parameters={"days": 60}).first_row
    # viewed 3, enrolled 3, watched 3 (all played video-1), completed: learner-1 only
    assert funnel[1:5] == (3, 3, 3, 1)
