"""ClickHouse schema of the sink: migrations, raw tables, row conversion and materialized views,
against the session's embedded ClickHouse server (a fresh database per test)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from schemas import LiveQos, format_utc, quality
from sinks.clickhouse import (
    COLUMNS,
    MIGRATIONS_DIR,
    TABLE_FOR_TOPIC,
    ChecksumMismatchError,
    MigrationError,
    RowError,
    alter_ttl,
    convert,
    migrate,
    pending,
    pseudonymizer,
    split_statements,
)
from sinks.clickhouse.queries import ready_query
from tests.conftest import ROOT

EXAMPLES = ROOT / "schemas" / "examples"
SECRET = b"tests-only-secret-0123456789abcd"
PSEUDONYMIZE = pseudonymizer(SECRET)
RAW_LEARNER = "learner-42"  # the learner id of every example

TOPIC_FOR_EXAMPLE = {
    "course_viewed": "learner.views",
    "video_playback": "learner.playback",
    "playback_qos": "learner.qos",
    "quiz_result": "learner.quiz",
    "enrollment": "learner.enrollments",
    "live_qos": "live.qos",
    "immersive_qos": "immersive.qos",
    "course": "course.catalog",
}
RAW_TABLES = [
    "views", "playback", "playback_qos", "quiz_results", "enrollments", "live_qos", "immersive_qos",
]  # fmt: skip
MIGRATIONS = [
    "0001_raw_tables",
    "0002_materialized_views",
    "0003_qos_1m_nullable_quantiles",
    "0004_metrics_contract_and_dedup_index",
    "0005_settlement",
    "0006_live_and_immersive",
]


# --- helpers (test_analytics_queries imports them) ------------------------------------------


def example(name: str, at: datetime | None = None, **changes: Any) -> dict[str, Any]:
    """A schemas/examples record with a fresh event_id and occurred_at (``at``, default now).

    ``changes`` replace top-level fields; a dict value is merged into a dict field (``client``).
    """
    record: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    if "event_id" in record:
        at = at or datetime.now(UTC)
        record["event_id"] = str(uuid.uuid4())
        record["occurred_at"] = format_utc(at)
        record["received_at"] = format_utc(at + timedelta(milliseconds=40))
        if record.get("deadline_at"):
            record["deadline_at"] = format_utc(at + timedelta(days=30))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key] = {**record[key], **value}
        else:
            record[key] = value
    return record


def qos_window(at: datetime, **changes: Any) -> dict[str, Any]:
    """A qos.agg.1m record (the Flink QoS job's output) for the minute starting at ``at``."""
    start = at.replace(second=0, microsecond=0)
    record: dict[str, Any] = {
        "window_start": format_utc(start),
        "window_end": format_utc(start + timedelta(minutes=1)),
        "course_id": "course-data-101",
        "network_type": "5g_sa",
        "region": "eu-west",
        "edge_node": "mec-par-3",
        "plays": 10,
        "startup_p50_ms": 600.0,
        "startup_p95_ms": 1400.0,
        "startup_time_sum_ms": 6400,
        "startups": 9,
        "rebuffer_ms": 1200,
        "played_ms": 540000,
        "video_start_failures": 1,
        "exits_before_start": 0,
        "bitrate_kbps_sum": 36000,
        "bitrate_samples": 9,
        "bitrate_switches": 14,
        "late_events": 0,
        "version": 1,
    }
    record.update(changes)
    return record


def dead_letter(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "dead_letter",
        "dlq_id": str(uuid.uuid4()),
        "reason": "invalid",
        "detail": "client.network_type: Input should be '5g_sa', …",
        "raw": json.dumps({"type": "course_viewed", "learner_id": RAW_LEARNER}),
        "endpoint": "/v1/events",
        "client_id": "web-app",
        "received_at": format_utc(datetime.now(UTC)),
        "event_type": "course_viewed",
        "event_id": None,
    }
    record.update(changes)
    return record


def insert_records(
    ch: Client, topic: str, records: Iterable[dict[str, Any]], partition: int = 0
) -> list[list[object]]:
    """Convert records as the sink does and insert them; offsets continue from the table's max."""
    table = TABLE_FOR_TOPIC[topic]
    start = ch.query(
        f"SELECT count() FROM {table} WHERE _topic = {{t:String}}", parameters={"t": topic}
    ).first_row[0]
    rows = []
    for offset, record in enumerate(records, start):
        row = convert(topic, partition, offset, json.dumps(record).encode(), PSEUDONYMIZE)
        if row is not None:
            rows.append(row)
    if rows:
        ch.insert(table, rows, column_names=COLUMNS[table])
    return rows


def _plain(value: object) -> object:
    """Named tuples read back as dicts; the rows that went in held plain tuples."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [tuple(item.values()) for item in value]
    return value


@pytest.fixture
def migrated(ch: Client) -> Client:
    assert migrate(ch) == MIGRATIONS
    return ch


# --- migrations -----------------------------------------------------------------------------


def test_sinks_clickhouse_migrate_from_empty_applies_in_order_and_rerun_is_noop(ch: Client) -> None:
    assert pending(ch) == MIGRATIONS
    assert migrate(ch) == MIGRATIONS
    recorded = ch.query(
        "SELECT version, name, length(checksum) FROM schema_migrations ORDER BY version"
    ).result_rows
    assert recorded == [(i + 1, name, 64) for i, name in enumerate(MIGRATIONS)]

    assert pending(ch) == []
    assert migrate(ch) == []
    assert ch.query("SELECT count() FROM schema_migrations").first_row == (len(MIGRATIONS),)
    tables = {
        r[0]
        for r in ch.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert set(RAW_TABLES) | {"course_catalog", "dlq", "qos_1m", "pipeline_metrics"} <= tables
    assert {"engagement_daily", "quiz_performance", "enrollment_revenue_daily"} <= tables
    assert {"live_qos_room_1m", "immersive_qos_course_1m"} <= tables
    assert {"completion_scores", "course_completed", "settlements", "reconciliations"} <= tables


def test_sinks_clickhouse_migrate_detects_a_changed_applied_migration(
    ch: Client, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    assert migrate(ch, directory=directory) == MIGRATIONS

    # a new numbered file is applied next, and only it
    (directory / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra (x UInt8, note String) ENGINE = MergeTree ORDER BY x;\n"
        "INSERT INTO extra VALUES (1, 'a;b -- not a comment');\n"
    )
    assert pending(ch, directory=directory) == ["0099_extra"]
    assert migrate(ch, directory=directory) == ["0099_extra"]
    assert ch.query("SELECT note FROM extra").result_rows == [("a;b -- not a comment",)]

    first = directory / "0001_raw_tables.sql"
    first.write_text(first.read_text() + "\n-- an edit after it was applied\n")
    with pytest.raises(ChecksumMismatchError, match="0001_raw_tables"):
        pending(ch, directory=directory)
    with pytest.raises(ChecksumMismatchError, match="new numbered migration"):
        migrate(ch, directory=directory)


def test_sinks_clickhouse_migrate_refuses_a_database_newer_than_the_code(
    ch: Client, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(ch, directory=directory)
    (directory / "0002_materialized_views.sql").unlink()
    with pytest.raises(MigrationError, match="older than the database"):
        migrate(ch, directory=directory)


@pytest.mark.parametrize("days", [0, -1, True, "7", 7.0, "7 DAY; DROP TABLE views"])
def test_sinks_clickhouse_migrate_ttl_days_must_be_positive_ints(ch: Client, days: Any) -> None:
    with pytest.raises(MigrationError, match="raw_ttl_days must be an int"):
        migrate(ch, raw_ttl_days=days)
    assert pending(ch) == MIGRATIONS


def test_sinks_clickhouse_split_statements_ignores_semicolons_in_literals_and_comments() -> None:
    sql = """
    -- header; not a statement
    CREATE TABLE a (s String DEFAULT 'x;y', `odd;name` UInt8) ENGINE = Memory;
    /* a block; comment */
    SELECT 'it''s; quoted', "col;umn", 'back\\'slash;' FROM a  -- trailing; comment
    ;
    ;
    # hash comment; too
    SELECT 1
    """
    assert split_statements(sql) == [
        "CREATE TABLE a (s String DEFAULT 'x;y', `odd;name` UInt8) ENGINE = Memory",
        "SELECT 'it''s; quoted', \"col;umn\", 'back\\'slash;' FROM a",
        "SELECT 1",
    ]
    with pytest.raises(MigrationError, match="unterminated"):
        split_statements("SELECT 'open")


def test_sinks_clickhouse_tables_have_the_required_keys_and_ttls(ch: Client) -> None:
    migrate(ch, raw_ttl_days=30, dlq_ttl_days=3)
    tables = {
        name: (engine, sorting, partition, full)
        for name, engine, sorting, partition, full in ch.query(
            "SELECT name, engine, sorting_key, partition_key, engine_full FROM system.tables "
            "WHERE database = currentDatabase()"
        ).result_rows
    }
    for table in RAW_TABLES:
        engine, sorting, partition, full = tables[table]
        assert engine == "ReplacingMergeTree", table
        assert sorting == "course_id, learner_key, occurred_at, event_id", table
        assert partition == "toYYYYMM(occurred_at)", table
        assert "TTL toDateTime(occurred_at) + toIntervalDay(30)" in full, table
    assert tables["course_catalog"][:3] == ("ReplacingMergeTree", "course_id", "")
    assert "ReplacingMergeTree(updated_at)" in tables["course_catalog"][3]
    assert tables["dlq"][1] == "received_at, dlq_id"
    assert "TTL toDateTime(received_at) + toIntervalDay(3)" in tables["dlq"][3]
    assert tables["qos_1m"][1] == "window_start, course_id, network_type, region, edge_node"
    assert "ReplacingMergeTree(version)" in tables["qos_1m"][3]
    for target in [
        "engagement_daily", "quiz_performance", "enrollment_revenue_daily", "live_qos_room_1m",
        "immersive_qos_course_1m",
    ]:  # fmt: skip
        assert tables[target][0] == "AggregatingMergeTree"
    # settlement (0005): the record published last wins, and no time partition keeps a
    # re-published receipt or a later score apart from the row it replaces
    for table in ["completion_scores", "course_completed"]:
        assert tables[table][1:3] == ("course_id, enrollment_id", ""), table
        assert "ReplacingMergeTree(_offset)" in tables[table][3], table
    assert tables["settlements"][1:3] == ("receipt_id", "")
    assert "ReplacingMergeTree(_offset)" in tables["settlements"][3]
    assert tables["reconciliations"][:2] == ("MergeTree", "started_at")
    assert not any("TTL" in tables[t][3] for t in ["completion_scores", "settlements"])

    alter_ttl(ch, raw_ttl_days=400, dlq_ttl_days=2)
    full = dict(
        ch.query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name IN ('views', 'dlq')"
        ).result_rows
    )
    assert "toIntervalDay(400)" in full["views"]
    assert "toIntervalDay(2)" in full["dlq"]


def test_sinks_clickhouse_every_raw_row_column_is_typed_as_designed(migrated: Client) -> None:
    types = dict(
        migrated.query(
            "SELECT concat(table, '.', name), type FROM system.columns "
            "WHERE database = currentDatabase()"
        ).result_rows
    )
    for table in RAW_TABLES:
        assert types[f"{table}.event_id"] == "UUID"
        assert types[f"{table}.occurred_at"] == "DateTime64(3, 'UTC')"
        assert types[f"{table}.received_at"] == "DateTime64(3, 'UTC')"
        assert types[f"{table}.learner_key"] == "String"
        assert types[f"{table}.network_type"] == "LowCardinality(String)"
        assert types[f"{table}._topic"] == "LowCardinality(String)"
        assert types[f"{table}._partition"] == "UInt16"
        assert types[f"{table}._offset"] == "UInt64"
        assert f"{table}.learner_id" not in types
    assert types["enrollments.price_minor"] == "Int64"
    assert types["enrollments.deposit_wei"] == "UInt256"
    assert types["playback.played_segments"] == "Array(Tuple(Float64, Float64))"
    # live classes and immersive lessons (migration 0006)
    assert types["live_qos.score"] == "Nullable(Float64)"
    assert types["live_qos.band"] == "LowCardinality(String)"
    assert types["live_qos.frames_dropped"] == "Nullable(UInt64)"
    assert types["immersive_qos.motion_to_photon_ms"] == "Float64"
    assert types["immersive_qos.motion_to_photon_p95_ms"] == "Nullable(Float64)"
    # a minute in which nothing started has no startup quantiles (migration 0003)
    assert types["qos_1m.startup_p50_ms"] == "Nullable(Float64)"
    for table in ["completion_scores", "course_completed"]:
        assert types[f"{table}.enrollment_id"] == "UUID"
        assert types[f"{table}.enrollment_key"] == "String"
        assert types[f"{table}.learner_key"] == "String"
        assert types[f"{table}.received_at"] == "DateTime64(3, 'UTC')"
        assert f"{table}.learner_id" not in types
    assert types["completion_scores.score_bps"] == "UInt16"
    assert types["completion_scores.exam_bps"] == "Nullable(UInt16)"
    assert types["settlements.amount"] == "Nullable(UInt256)"
    assert types["settlements.asset"] == "LowCardinality(Nullable(String))"
    assert types["settlements.decimals"] == "Nullable(UInt8)"
    assert types["settlements.block_time"] == "DateTime64(3, 'UTC')"
    # every COLUMNS entry exists, in a table of that name
    for table, columns in COLUMNS.items():
        assert [c for c in columns if f"{table}.{c}" not in types] == [], table


# --- rows -----------------------------------------------------------------------------------


def test_sinks_clickhouse_pseudonymizer_is_keyed_hmac_hex() -> None:
    first = pseudonymizer(SECRET)
    assert first is pseudonymizer(SECRET)
    key = first(RAW_LEARNER)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == first(RAW_LEARNER) != first("learner-43")
    assert pseudonymizer(b"another-secret-0123456789abcdef0")(RAW_LEARNER) != key
    with pytest.raises(ValueError, match="16 bytes"):
        pseudonymizer(b"short")


@pytest.mark.parametrize("name", sorted(TOPIC_FOR_EXAMPLE))
def test_sinks_clickhouse_example_inserts_and_reads_back_without_the_learner_id(
    migrated: Client, name: str
) -> None:
    topic = TOPIC_FOR_EXAMPLE[name]
    table = TABLE_FOR_TOPIC[topic]
    record = example(name)
    [row] = insert_records(migrated, topic, [record], partition=3)
    stored = migrated.query(f"SELECT * FROM {table}").named_results()
    [back] = list(stored)
    assert [_plain(back[c]) for c in COLUMNS[table]] == row
    assert back["_topic"] == topic and back["_partition"] == 3 and back["_offset"] == 0
    assert not any(RAW_LEARNER in repr(value) for value in back.values())
    if "event_id" in record:
        assert back["event_id"] == uuid.UUID(record["event_id"])
        assert back["learner_key"] == PSEUDONYMIZE(RAW_LEARNER)
        assert back["occurred_at"].tzinfo is not None
        assert format_utc(back["occurred_at"]) == record["occurred_at"]
    if name == "enrollment":
        assert back["deposit_wei"] == 15_000_000_000_000_000
        assert back["price_minor"] == 4900 and back["currency"] == "EUR"
    if name == "video_playback":
        assert back["played_segments"] == [(0.0, 40.0)]


def test_sinks_clickhouse_derived_and_dlq_records_insert(migrated: Client) -> None:
    now = datetime.now(UTC)
    insert_records(migrated, "qos.agg.1m", [qos_window(now)])
    letter = dead_letter()
    marker = {
        "kind": "replayed",
        "dlq_id": letter["dlq_id"],
        "event_id": str(uuid.uuid4()),
        "topic": "learner.views",
        "replayed_at": format_utc(now),
    }
    rows = insert_records(migrated, "learner.dlq", [letter, marker])
    assert len(rows) == 1  # the replay marker makes no row
    metrics = {
        "service": "sink-clickhouse",
        "instance": "host-1",
        "at": format_utc(now),
        "group": "learnstream-sink-clickhouse",
        "interval_s": 10,
        "in_per_s": 100.0,
        "out_per_s": 99.0,
        "lag": 7,
        "lag_by_partition": {"learner.views/0": 7},
        "extra": {"per_s": {"rows": 100.0}},
    }
    insert_records(migrated, "pipeline.metrics", [metrics])

    assert migrated.query("SELECT plays, version FROM qos_1m").result_rows == [(10, 1)]
    raw, reason = migrated.query("SELECT raw, reason FROM dlq").first_row
    assert raw == letter["raw"] and reason == "invalid"  # the dlq keeps the payload verbatim
    payload = migrated.query(
        "SELECT JSONExtractFloat(payload, 'extra', 'per_s', 'rows') FROM pipeline_metrics"
    ).first_row
    assert payload == (100.0,)
    columns = migrated.query(
        "SELECT consumer_group, in_per_s, out_per_s, lag FROM pipeline_metrics"
    ).first_row
    assert columns == ("learnstream-sink-clickhouse", 100.0, 99.0, 7)

    reco = {"service": "reco", "instance": "host-1-7", "at": format_utc(now), "interval_s": 10,
            "updates": 5, "updates_per_s": 0.5, "courses": 4,
            "models": {"biased_mf": {"mae": 0.75, "recall_at_10": 0.3}}}  # fmt: skip
    insert_records(migrated, "reco.metrics", [reco])
    mae = migrated.query(
        "SELECT JSONExtractFloat(payload, 'models', 'biased_mf', 'mae') FROM pipeline_metrics "
        "WHERE service = 'reco' AND _topic = 'reco.metrics'"
    ).first_row
    assert mae == (0.75,)


def test_sinks_clickhouse_convert_rejects_what_it_cannot_store() -> None:
    def rejected(topic: str, value: bytes | None, dlq_reason: str = "invalid") -> str:
        with pytest.raises(RowError) as info:
            convert(topic, 2, 77, value, PSEUDONYMIZE)
        assert info.value.topic == topic and info.value.offset == 77
        assert info.value.dlq_reason == dlq_reason
        assert f"{topic}[2]@77" in str(info.value)
        assert RAW_LEARNER not in str(info.value)
        return str(info.value)

    quiz = json.dumps(example("quiz_result")).encode()
    assert "a quiz_result event on the topic of course_viewed" in rejected("learner.views", quiz)
    assert "invalid views record" in rejected("learner.views", b"{not json", "malformed_json")
    assert "malformed JSON" in rejected("learner.dlq", b"\xff", "malformed_json")
    unknown = json.dumps({**example("course_viewed"), "type": "course_liked"}).encode()
    rejected("learner.views", unknown, "unknown_type")
    bad = example("course_viewed", dwell_ms=-1)
    assert "dwell_ms" in rejected("learner.views", json.dumps(bad).encode())
    assert "no ClickHouse table" in rejected("no.such.topic", quiz)
    assert "empty record" in rejected("learner.views", None)
    missing = qos_window(datetime.now(UTC))
    del missing["plays"]
    assert "plays" in rejected("qos.agg.1m", json.dumps(missing).encode())
    assert "version" in rejected(
        "qos.agg.1m", json.dumps(qos_window(datetime.now(UTC), version=True)).encode()
    )
    huge = example("playback_qos", played_ms=2**64)
    assert "UInt64" in rejected("learner.qos", json.dumps(huge).encode())
    assert convert("course.catalog", 0, 1, None, PSEUDONYMIZE) is None  # a compaction tombstone


def test_sinks_clickhouse_convert_keeps_cmcd_keys_as_json() -> None:
    cmcd = {"br": 3200, "ot": "v", "su": True, "x-vendor": 1.5}
    record = example("playback_qos", report="cmcd", cmcd=cmcd)
    row = convert("learner.qos", 0, 0, json.dumps(record).encode(), PSEUDONYMIZE)
    assert row is not None
    assert json.loads(str(row[COLUMNS["playback_qos"].index("cmcd")])) == cmcd


def test_sinks_clickhouse_same_event_under_two_offsets_is_deduplicated_by_the_sorting_key(
    migrated: Client,
) -> None:
    record = example("course_viewed")
    insert_records(migrated, "learner.views", [record])
    insert_records(migrated, "learner.views", [record])  # resent: a new offset, same event
    assert migrated.query("SELECT count() FROM views").first_row == (2,)
    assert migrated.query("SELECT count(), max(_offset) FROM views FINAL").first_row == (1, 1)
    migrated.command("OPTIMIZE TABLE views FINAL")
    assert migrated.query("SELECT count(), max(_offset) FROM views").first_row == (1, 1)


# --- materialized views ---------------------------------------------------------------------


def test_sinks_clickhouse_materialized_views_match_a_hand_computation(migrated: Client) -> None:
    ch = migrated
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    course = "course-data-101"

    insert_records(
        ch,
        "learner.views",
        [
            example("course_viewed", at=today, learner_id="a"),
            example("course_viewed", at=today, learner_id="a"),
            example("course_viewed", at=today, learner_id="b"),
            example("course_viewed", at=yesterday, learner_id="a"),
        ],
    )
    insert_records(ch, "learner.playback", [example("video_playback", at=today, learner_id="c")])
    insert_records(
        ch,
        "learner.qos",
        [
            example("playback_qos", at=today, learner_id="b", played_ms=60_000),
            example("playback_qos", at=today, learner_id="d", played_ms=30_000),
            # a CMCD sample is no session: it counts neither watch time nor a learner
            example("playback_qos", at=today, learner_id="e", report="cmcd", played_ms=999),
        ],
    )
    insert_records(
        ch,
        "learner.quiz",
        [
            example("quiz_result", at=today, learner_id="a", score=8.0, passed=True, attempt=1),
            example("quiz_result", at=today, learner_id="b", score=4.0, passed=False, attempt=1),
            example("quiz_result", at=today, learner_id="b", score=7.0, passed=True, attempt=2),
        ],
    )
    one_time = {"payment_model": "one_time", "escrow": None, "deadline_at": None}
    insert_records(
        ch,
        "learner.enrollments",
        [
            example("enrollment", at=today, learner_id="a"),
            example("enrollment", at=today, learner_id="b"),
            example("enrollment", at=today, learner_id="c", **one_time),
            example(
                "enrollment",
                at=today,
                learner_id="d",
                price={"amount_minor": 1999, "currency": "USD"},
                **one_time,
            ),
        ],
    )
    insert_records(ch, "learner.dlq", [dead_letter(), dead_letter(reason="malformed_json")])

    engagement = ch.query(
        "SELECT day, uniqExactMerge(active_learners), countMerge(views), sumMerge(watch_ms) "
        "FROM engagement_daily WHERE course_id = {c:String} GROUP BY day ORDER BY day",
        parameters={"c": course},
    ).result_rows
    # today: viewers a, b; playback c; sessions b, d; quizzes a, b -> a, b, c, d
    assert engagement == [
        (yesterday.date(), 1, 1, 0),
        (today.date(), 4, 3, 90_000),
    ]
    quiz = ch.query(
        "SELECT quiz_id, countMerge(attempts), sumMerge(passes), avgMerge(score_fraction), "
        "uniqExactMerge(learners) FROM quiz_performance GROUP BY quiz_id"
    ).result_rows
    [(quiz_id, attempts, passes, score, learners)] = quiz
    assert (quiz_id, attempts, passes, learners) == ("quiz-1", 3, 2, 2)
    assert score == pytest.approx((0.8 + 0.4 + 0.7) / 3)

    revenue = ch.query(
        "SELECT payment_model, currency, countMerge(enrollments), sumMerge(revenue_minor), "
        "sumMerge(deposits_wei), uniqExactMerge(learners) FROM enrollment_revenue_daily "
        "GROUP BY payment_model, currency ORDER BY payment_model, currency"
    ).result_rows
    assert revenue == [
        ("one_time", "EUR", 1, 4900, 0, 1),
        ("one_time", "USD", 1, 1999, 0, 1),
        ("pay_by_completion", "EUR", 2, 9800, 2 * 15_000_000_000_000_000, 2),
    ]
    dlq = ch.query(
        "SELECT reason, countMerge(records) FROM dlq_reasons_hourly GROUP BY reason ORDER BY reason"
    ).result_rows
    assert dlq == [("invalid", 1), ("malformed_json", 1)]


def _by_key(ch: Client, sql: str, **parameters: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{the first two columns: the row as a dict} of a query."""
    result = ch.query(sql, parameters=parameters)
    return {tuple(row[:2]): dict(zip(result.column_names, row, strict=True))
            for row in result.result_rows}  # fmt: skip


def test_sinks_clickhouse_live_qos_score_is_the_servers_own_or_schemas_quality(
    migrated: Client,
) -> None:
    own = example("live_qos", source="server", score=71.5)
    unscored = example("live_qos", source="server", frames_per_second=None, freeze_ms=None)
    # a browser's own score is not trusted: the sink scores browser rows itself
    browser = example("live_qos", score=99.5, rtt_ms=180.0, jitter_ms=12.0, fraction_lost=0.03,
                      frames_per_second=15.0, freeze_ms=1000.0, interval_s=5.0)  # fmt: skip
    insert_records(migrated, "live.qos", [own, unscored, browser])
    stored = {
        str(event_id): (score, band)
        for event_id, score, band in migrated.query(
            "SELECT event_id, score, band FROM live_qos"
        ).result_rows
    }

    def scored(record: dict[str, Any]) -> tuple[float, str]:
        q = quality.of_event(LiveQos.model_validate_json(json.dumps(record)))
        return q.score, q.band

    assert stored[own["event_id"]] == (71.5, "good")
    assert stored[unscored["event_id"]] == scored(unscored)
    assert stored[browser["event_id"]] == scored(browser)
    # by hand: L = 90 + 24 + 10 = 124 ms, R = 93.2 - 3.1 - 7.5 = 82.6; V = 100 x 0.8 x 15/24 = 50
    assert scored(browser) == (pytest.approx(50.0), "fair")


def test_sinks_clickhouse_live_qos_room_1m_matches_a_hand_computation(migrated: Client) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    room = "room-hand"

    def row(at_s: int, **changes: Any) -> dict[str, Any]:
        return example("live_qos", at=minute + timedelta(seconds=at_s), room_id=room, **changes)

    insert_records(
        migrated,
        "live.qos",
        [
            # browser: R = 92.35, V = 100: 92.35 (excellent)
            row(5, rtt_ms=40.0, jitter_ms=2.0, fraction_lost=0.0, bitrate_kbps=800.0,
                frames_per_second=30.0, freeze_ms=0.0),
            # browser: R = 87.0, V = 100 x (1 - 1500/5000) x 12/24 = 35 (poor); another
            # participant, network and region (the view's key; the query below merges them)
            row(20, rtt_ms=60.0, jitter_ms=4.0, fraction_lost=0.02, bitrate_kbps=1200.0,
                frames_per_second=12.0, freeze_ms=1500.0, peer_id="peer-b2",
                client={"network_type": "4g", "region": "us-east"}),
            # the server's own score; aiortc has no RTT on this stream and no frame figures
            row(30, source="server", score=64.0, rtt_ms=None, jitter_ms=5.0,
                frames_per_second=None, freeze_ms=None),
            row(70, rtt_ms=40.0, jitter_ms=2.0, fraction_lost=0.0),  # the next minute
        ],
    )  # fmt: skip
    got = _by_key(
        migrated,
        "SELECT minute, source, countMerge(samples) AS samples, avgMerge(rtt_ms_avg) AS rtt, "
        "quantileMerge(0.95)(rtt_ms_p95) AS rtt_p95, avgMerge(jitter_ms_avg) AS jitter, "
        "avgMerge(fraction_lost_avg) AS loss, avgMerge(bitrate_kbps_avg) AS bitrate, "
        "avgMerge(fps_avg) AS fps, sumMerge(freeze_ms_sum) AS frozen, "
        "avgMerge(score_avg) AS score, minMerge(score_min) AS low, sumMerge(poor) AS poor "
        "FROM live_qos_room_1m WHERE room_id = {r:String} GROUP BY minute, source",
        r=room,
    )
    browser = got[(minute, "browser")]
    assert browser["samples"] == 2 and browser["poor"] == 1
    assert browser["rtt"] == pytest.approx(50.0)
    assert browser["rtt_p95"] == pytest.approx(59.0)  # 40 + 0.95 x (60 - 40), interpolated
    assert (browser["jitter"], browser["loss"]) == (pytest.approx(3.0), pytest.approx(0.01))
    assert (browser["bitrate"], browser["fps"]) == (pytest.approx(1000.0), pytest.approx(21.0))
    assert browser["frozen"] == pytest.approx(1500.0)
    assert browser["score"] == pytest.approx((92.35 + 35.0) / 2)
    assert browser["low"] == pytest.approx(35.0)
    server = got[(minute, "server")]
    assert (server["samples"], server["rtt"], server["frozen"]) == (1, None, None)
    assert (server["score"], server["low"], server["poor"]) == (64.0, 64.0, 0)
    assert got[(minute + timedelta(minutes=1), "browser")]["samples"] == 1

    # the ready query puts the server beside the browsers, minute by minute
    ready = _by_key(migrated, ready_query("live_quality_by_room"), hours=1, room_id=room)[
        (room, minute)
    ]
    assert (ready["server_score"], ready["server_poor_share"]) == (64.0, 0.0)
    assert (ready["browser_samples"], ready["browser_poor_share"]) == (2, 0.5)
    assert ready["browser_score"] == pytest.approx(63.7, abs=0.051)
    assert ready["browser_frozen_s"] == pytest.approx(1.5)
    worst = migrated.query(
        ready_query("live_worst_participants"),
        parameters={"hours": 1, "min_samples": 1, "limit": 1},
    ).named_results()
    assert [(w["peer_id"], w["network_type"], w["region"], w["mean_score"]) for w in worst] == [
        ("peer-b2", "4g", "us-east", 35.0)
    ]


def test_sinks_clickhouse_immersive_qos_course_1m_matches_a_hand_computation(
    migrated: Client,
) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    course = "course-vr-hand"

    def interval(
        at_s: int, mtp: float, fps: float, dropped: int, reprojected: int, **changes: Any
    ) -> dict[str, Any]:
        return example("immersive_qos", at=minute + timedelta(seconds=at_s), course_id=course,
                       motion_to_photon_ms=mtp, motion_to_photon_p95_ms=mtp + 3,
                       frames_per_second=fps, frames_dropped=dropped,
                       frames_reprojected=reprojected, **changes)  # fmt: skip

    pico = {"headset": "Pico 4", "client": {"network_type": "wifi", "device": "Pico 4"}}
    insert_records(
        migrated,
        "immersive.qos",
        [
            interval(0, 12.0, 90.0, 0, 1),
            interval(10, 14.0, 88.0, 2, 5),
            interval(20, 22.0, 70.0, 10, 40),  # over 20 ms
            interval(30, 25.0, 60.0, 4, 9, **pico),  # another headset and network: another key
        ],
    )
    [(stored,)] = migrated.query("SELECT count() FROM immersive_qos").result_rows
    assert stored == 4
    got = _by_key(
        migrated,
        "SELECT headset, network_type, countMerge(intervals) AS n, avgMerge(fps_avg) AS fps, "
        "avgMerge(motion_to_photon_ms_avg) AS mtp, "
        "quantileMerge(0.95)(motion_to_photon_ms_p95) AS mtp_p95, sumMerge(over_20ms) AS over, "
        "sumMerge(frames_dropped) AS dropped, sumMerge(frames_reprojected) AS reprojected "
        "FROM immersive_qos_course_1m WHERE course_id = {c:String} "
        "GROUP BY headset, network_type",
        c=course,
    )
    quest = got[("Quest 3", "5g_sa")]
    assert (quest["n"], quest["over"], quest["dropped"], quest["reprojected"]) == (3, 1, 12, 46)
    assert quest["fps"] == pytest.approx(248 / 3)
    assert quest["mtp"] == pytest.approx(16.0)
    assert quest["mtp_p95"] == pytest.approx(21.2)  # 14 + 0.9 x (22 - 14), interpolated
    pico_row = got[("Pico 4", "wifi")]
    assert (pico_row["n"], pico_row["over"], pico_row["mtp"]) == (1, 1, 25.0)

    # the ready query, per course and minute over both keys
    ready = _by_key(
        migrated, ready_query("immersive_comfort_by_course"), hours=1, course_id=course
    )[(course, minute)]
    assert (ready["interval_count"], ready["share_over_20ms"]) == (4, 0.5)
    assert ready["mean_motion_to_photon_ms"] == pytest.approx(18.2)  # (12 + 14 + 22 + 25) / 4
    assert (ready["dropped_frames"], ready["reprojected_frames"]) == (16, 55)
