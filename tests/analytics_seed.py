"""Rows in every analytics table, for the tests that run queries over them.

Used by tests/test_analytics_queries.py (every ready query of docs/analytics.md) and
tests/test_dashboards.py (every panel and variable query): three learners of
course-data-101 (one inactive for 30 days, one on 4G/Wi-Fi whose videos failed to start),
playback, quizzes, QoS windows, live and VR rows, dead letters, service and lag-monitor
health, a reco.metrics report, the settlement receipts of ``seed_settlements``, learner-1's
completion, and one reconciliation run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas import format_utc
from sinks.clickhouse.reconciliations import write_reconciliation
from tests.test_sinks_migrations import dead_letter, example, insert_records, qos_window
from tests.test_sinks_settlement_tables import (
    CHAIN,
    CONTRACT,
    completed,
    feed,
    score,
    seed_settlements,
)


def reco_report(at: datetime) -> dict[str, Any]:
    """A reco.metrics record: progressive-validation metrics of two models."""
    figures = {"n": 500, "mae": 0.8, "rmse": 1.1, "ranked": 120}
    return {
        "service": "reco",
        "instance": "host-1",
        "at": format_utc(at),
        "interval_s": 10.0,
        "updates": 500,
        "updates_per_s": 50.0,
        "courses": 3,
        "models": {
            "biased_mf": figures | {"recall_at_10": 0.31, "ndcg_at_10": 0.18},
            "popularity": figures | {"recall_at_10": 0.22, "ndcg_at_10": 0.12},
        },
    }


def reconciliation(at: datetime) -> dict[str, Any]:
    """One clean run of `settlement reconcile`."""
    return {
        "run_id": str(uuid.uuid4()),
        "started_at": at,
        "finished_at": at + timedelta(seconds=3),
        "chain_id": CHAIN,
        "contract": CONTRACT,
        "matched": 7,
        "missing_on_chain": 0,
        "missing_off_chain": 0,
        "amount_mismatches": 0,
        "metric_mismatches": 0,
        "reorged_blocks": 0,
        "ok": True,
    }


def seed_analytics(ch: Client) -> None:
    """Rows in every table the ready queries and the dashboards read (see the module)."""
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
        (
            "pipeline.metrics",
            {
                "service": "lag-monitor",
                "instance": "host-1",
                "at": format_utc(now - timedelta(seconds=8)),
                "group": "learnstream-flink-qos",
                "interval_s": 10,
                "in_per_s": 0.0,
                "out_per_s": 0.0,
                "lag": 40,
                "lag_by_partition": {"learner.qos/0": 40},
            },
        ),
        ("reco.metrics", reco_report(now - timedelta(seconds=20))),
    ]
    for topic, record in records:
        insert_records(ch, topic, [record])
    seed_settlements(ch)  # receipts, completions (the settlement queries' own tests check figures)
    # learner-1 (paid by completion) completed the course: the funnel's last stage
    [enrollment] = [
        r for t, r in records if t == "learner.enrollments" and r["learner_id"] == "learner-1"
    ]
    ids = {"learner_id": "learner-1", "course_id": "course-data-101"}
    feed(ch, "completion.scores", [score(enrollment["event_id"], recent, score=1.0, **ids)])
    feed(ch, "course.completed", [completed(enrollment["event_id"], recent, **ids)])
    write_reconciliation(ch, reconciliation(now - timedelta(minutes=10)))
