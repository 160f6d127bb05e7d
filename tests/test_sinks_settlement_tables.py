"""The settlement tables (migration 0005): completion_scores, course_completed and settlements,
filled by the ClickHouse sink; reconciliations, written by `settlement reconcile`; and the ready
queries over them, against the session's embedded ClickHouse server (a fresh database per test).

Records are built through their models (schemas.derived, schemas.settlement) and serialized as
their producers do (``model_dump_json``). Most tests convert and insert them as the sink does
(``convert``); one runs the sink itself against Kafka.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from eth_utils import keccak
from pydantic import BaseModel

from learnstream.stack import Stack
from schemas.derived import CompletionScore, CourseCompleted
from schemas.settlement import SettlementReceipt, receipt_id
from settlement.indexer import Indexer
from sinks.clickhouse import COLUMNS, TABLE_FOR_TOPIC, convert, migrate
from sinks.clickhouse.queries import ready_query
from sinks.clickhouse.reconciliations import recent_reconciliations, write_reconciliation
from streams.kafka import make_producer, produce_all
from tests.sink_fixtures import SinkEnv
from tests.test_sinks_migrations import PSEUDONYMIZE, SECRET

CHAIN = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TOKEN = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"  # the 6-decimal test stablecoin
CREATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
LEARNER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
ETH = 10**18
USDC = 10**6
TOPICS = {"completion.scores", "course.completed", "settlement.receipts"}


def key_of(enrollment_id: str) -> str:
    """The enrollment's on-chain key, computed here independently of the sink."""
    return "0x" + keccak(uuid.UUID(enrollment_id).bytes).hex()


def bytes32(text: str) -> str:
    return "0x" + keccak(text=text).hex()


# --- records ----------------------------------------------------------------------------------


def score(enrollment_id: str, received_at: datetime, **changes: Any) -> CompletionScore:
    fields: dict[str, Any] = {
        "score_id": str(uuid.uuid4()),
        "enrollment_id": enrollment_id,
        "learner_id": "learner-42",
        "course_id": "course-data-101",
        "payment_model": "pay_by_completion",
        "score": 0.5,
        "score_bps": 5000,
        "watched_fraction": 0.5,
        "quiz_fraction": 0.5,
        "complete": False,
        "as_of": received_at - timedelta(seconds=5),
        "received_at": received_at,
        "enrolled_received_at": received_at - timedelta(days=2),
        "deadline_at": received_at + timedelta(days=28),
    }
    return CompletionScore(**(fields | changes))


def completed(enrollment_id: str, received_at: datetime, **changes: Any) -> CourseCompleted:
    fields: dict[str, Any] = {
        "completion_id": str(uuid.uuid4()),
        "enrollment_id": enrollment_id,
        "learner_id": "learner-42",
        "course_id": "course-data-101",
        "payment_model": "pay_by_completion",
        "completed_at": received_at - timedelta(seconds=1),
        "received_at": received_at,
        "enrolled_received_at": received_at - timedelta(days=2),
        "deadline_at": received_at + timedelta(days=28),
    }
    return CourseCompleted(**(fields | changes))


@dataclass
class Chain:
    """Receipts as the indexer makes them: one transaction per log, blocks in order."""

    block: int = 100
    made: list[SettlementReceipt] = field(default_factory=list)

    def log(self, kind: str, at: datetime, **fields: Any) -> SettlementReceipt:
        self.block += 1
        tx_hash = bytes32(f"tx-{self.block}-{uuid.uuid4()}")
        receipt = SettlementReceipt(
            receipt_id=receipt_id(tx_hash, 0),
            kind=kind,  # type: ignore[arg-type]
            chain_id=CHAIN,
            contract=CONTRACT,
            tx_hash=tx_hash,
            block_number=self.block,
            block_hash=bytes32(f"block-{self.block}-{uuid.uuid4()}"),
            block_time=at.replace(microsecond=0),
            log_index=0,
            **fields,
        )
        self.made.append(receipt)
        return receipt

    def deposit(
        self, enrollment_id: str, asset: str, amount: int, at: datetime, deadline: datetime
    ) -> SettlementReceipt:
        return self.log(
            "deposited",
            at,
            enrollment_key=key_of(enrollment_id),
            course_key=bytes32("course"),
            terms_id=1,
            refund_to=LEARNER,
            asset=asset,
            decimals=18 if asset == "ETH" else 6,
            amount=amount,
            enrolled_at=at.replace(microsecond=0),
            deadline_at=deadline,
        )

    def settle(
        self,
        enrollment_id: str,
        asset: str,
        at: datetime,
        creator: int,
        platform: int,
        learner: int,
        counted: bool = True,
        metric: str = "completion",
    ) -> SettlementReceipt:
        return self.log(
            "settled",
            at,
            enrollment_key=key_of(enrollment_id),
            asset=asset,
            decimals=18 if asset == "ETH" else 6,
            creator_amount=creator,
            platform_amount=platform,
            learner_amount=learner,
            counted=counted,
            metric=metric,
            score_bps=10_000 if counted else 2000,
            earned_bps=10_000 if counted else 0,
        )


def feed(ch: Client, topic: str, records: list[BaseModel | None], partition: int = 0) -> None:
    """Convert records as the sink does and insert them, at offsets after the table's last."""
    table = TABLE_FOR_TOPIC[topic]
    start = ch.query(
        f"SELECT max(_offset) + 1, count() FROM {table} WHERE _topic = {{t:String}}",
        parameters={"t": topic},
    ).first_row
    offset = int(start[0]) if start[1] else 0
    rows = []
    for i, record in enumerate(records):
        value = None if record is None else record.model_dump_json().encode()
        row = convert(topic, partition, offset + i, value, PSEUDONYMIZE)
        if row is not None:
            rows.append(row)
    if rows:
        ch.insert(table, rows, column_names=COLUMNS[table])


@pytest.fixture
def migrated(ch: Client) -> Client:
    migrate(ch)
    return ch


# --- the registry and the sink ----------------------------------------------------------------


def test_sinks_settlement_the_sink_reads_the_three_topics_into_their_tables() -> None:
    assert {t: TABLE_FOR_TOPIC[t] for t in TOPICS} == {
        "completion.scores": "completion_scores",
        "course.completed": "course_completed",
        "settlement.receipts": "settlements",
    }
    # compacted completion topics: a tombstone stores nothing; a receipt always has a value
    assert convert("completion.scores", 0, 0, None, PSEUDONYMIZE) is None
    assert convert("course.completed", 0, 0, None, PSEUDONYMIZE) is None


def test_sinks_settlement_completion_rows_carry_the_enrollment_key_and_no_learner_id(
    migrated: Client,
) -> None:
    ch = migrated
    enrollment = str(uuid.uuid4())
    now = datetime.now(UTC).replace(microsecond=123000)
    first = score(enrollment, now)
    exam = score(
        enrollment,
        now,
        score=0.873412,
        score_bps=8734,
        complete=True,
        exam_bps=9000,
        exam_passed=True,
        exam_passed_received_at=now,
    )
    done = completed(enrollment, now)
    feed(ch, "completion.scores", [first, exam])
    feed(ch, "course.completed", [done])

    stored = list(ch.query("SELECT * FROM completion_scores FINAL").named_results())
    assert len(stored) == 1  # the later record of the enrollment wins
    row = stored[0]
    assert row["score_id"] == uuid.UUID(exam.score_id)
    assert row["enrollment_id"] == uuid.UUID(enrollment)
    assert row["enrollment_key"] == key_of(enrollment)
    assert row["learner_key"] == PSEUDONYMIZE("learner-42")
    assert (row["score"], row["score_bps"], row["complete"]) == (0.873412, 8734, True)
    assert (row["exam_bps"], row["exam_passed"]) == (9000, True)
    assert row["exam_passed_received_at"] == now and row["received_at"] == now
    assert row["deadline_at"] == now + timedelta(days=28)
    assert row["_topic"] == "completion.scores" and row["_offset"] == 1

    [back] = list(ch.query("SELECT * FROM course_completed FINAL").named_results())
    assert back["completion_id"] == uuid.UUID(done.completion_id)
    assert back["enrollment_key"] == key_of(enrollment)
    assert back["received_at"] == now and back["completed_at"] == now - timedelta(seconds=1)
    for table in ("completion_scores", "course_completed"):
        dump = json.dumps(ch.query(f"SELECT * FROM {table}").result_rows, default=str)
        assert "learner-42" not in dump, table
        assert SECRET.decode() not in dump


def test_sinks_settlement_latest_score_wins_even_with_the_same_received_at(
    migrated: Client,
) -> None:
    """One request's events share a received_at, so the job can send two scores with the same
    one: the later record (offset) is the current score, as compaction keeps it."""
    ch = migrated
    enrollment, other = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    feed(
        ch,
        "completion.scores",
        [
            score(enrollment, now, score=0.6, score_bps=6000),
            score(other, now, score=0.1, score_bps=1000),
            score(enrollment, now, score=0.4, score_bps=4000),  # written last: it wins
        ],
    )
    final = "SELECT enrollment_id, score_bps FROM completion_scores FINAL ORDER BY score_bps"
    expected = [(uuid.UUID(other), 1000), (uuid.UUID(enrollment), 4000)]
    assert ch.query(final).result_rows == expected
    ch.command("OPTIMIZE TABLE completion_scores FINAL")
    assert ch.query(final.replace(" FINAL", "")).result_rows == expected


def test_sinks_settlement_receipts_keep_every_field_and_huge_amounts(migrated: Client) -> None:
    ch = migrated
    chain = Chain()
    now = datetime.now(UTC)
    enrollment = str(uuid.uuid4())
    huge = chain.deposit(enrollment, "ETH", 2**200, now, now + timedelta(days=30))
    token = chain.settle(enrollment, TOKEN, now, 80 * USDC, 20 * USDC, 0)
    admin = chain.log("paused", now, detail=f"by {CREATOR}")
    feed(ch, "settlement.receipts", [huge, token, admin])

    rows = {r["receipt_id"]: r for r in ch.query("SELECT * FROM settlements FINAL").named_results()}
    assert set(rows) == {huge.receipt_id, token.receipt_id, admin.receipt_id}
    for receipt in (huge, token, admin):
        row = rows[receipt.receipt_id]
        wire = SettlementReceipt.model_validate_json(receipt.model_dump_json())  # ms times
        for name, value in wire.model_dump(exclude={"type"}).items():
            assert row[name] == value, name
    assert rows[huge.receipt_id]["amount"] == 2**200
    assert rows[huge.receipt_id]["enrollment_key"] == key_of(enrollment)
    assert (rows[token.receipt_id]["asset"], rows[token.receipt_id]["decimals"]) == (TOKEN, 6)
    assert rows[token.receipt_id]["creator_amount"] == 80 * USDC
    assert rows[admin.receipt_id]["asset"] is None and rows[admin.receipt_id]["amount"] is None
    types = dict(
        ch.query(
            "SELECT name, type FROM system.columns "
            "WHERE database = currentDatabase() AND table = 'settlements'"
        ).result_rows
    )
    assert types["amount"] == "Nullable(UInt256)"
    assert types["block_time"] == "DateTime64(3, 'UTC')"
    assert types["kind"] == "LowCardinality(String)"


def test_sinks_settlement_a_receipt_published_again_after_a_deep_reorg_replaces_the_old_row(
    migrated: Client,
) -> None:
    ch = migrated
    chain = Chain()
    now = datetime.now(UTC)
    original = chain.settle(str(uuid.uuid4()), "ETH", now, 7 * ETH, 1 * ETH, 2 * ETH)
    # the same log, mined again on the new canonical chain: another block, an earlier height
    again = original.model_copy(
        update={"block_hash": bytes32("reorg"), "block_number": original.block_number - 3}
    )
    other = chain.log("unpaused", now, detail="by admin")
    feed(ch, "settlement.receipts", [original, other, again])

    query = "SELECT receipt_id, block_hash, block_number FROM settlements FINAL ORDER BY block_hash"
    expected = sorted(
        [
            (again.receipt_id, again.block_hash, again.block_number),
            (other.receipt_id, other.block_hash, other.block_number),
        ],
        key=lambda r: r[1],
    )
    assert ch.query(query).result_rows == expected
    ch.command("OPTIMIZE TABLE settlements FINAL")
    assert ch.query(query.replace(" FINAL", "")).result_rows == expected
    # where the sink resumes never moves backwards
    assert ch.query("SELECT max(_offset) FROM settlements").first_row == (2,)


# --- the ready queries ------------------------------------------------------------------------


@dataclass
class Fixture:
    day_settled: datetime  # settlements, expiry
    day_paid: datetime  # withdrawals, a day later
    enrollments: dict[str, str]


def seed_settlements(ch: Client) -> Fixture:
    """Seven escrows, in ETH and in the 6-decimal token, on two days.

    - e1 ETH 2^200 and e4 token 50: open (e4 past its deadline); e1 also has a skipped settle
    - e2 ETH 1: settled, completion received 30 s before (creator 0.56, platform 0.14, learner 0.3)
    - e3 token 100: settled, completion received 90 s before (80 / 20 / 0); its receipt is
      published a second time after a reorg, which must not count twice
    - e5 token 30: expired (learner 30)
    - e6 ETH 2: settled without a counted completion (learner 2), a completion received late
    - e7 ETH 1: settled, completion received 45 s before (0.8 / 0.2 / 0)
    - a day later: withdrawals of 0.56 ETH and of 80 token
    """
    now = datetime.now(UTC)
    settled_at = now - timedelta(days=1, hours=1)
    paid_at = now - timedelta(hours=1)
    deposited_at = now - timedelta(days=5)
    e = {name: str(uuid.uuid4()) for name in ("e1", "e2", "e3", "e4", "e5", "e6", "e7")}
    future, past = now + timedelta(days=20), now - timedelta(days=2)
    chain = Chain()
    chain.log(
        "course_registered",
        deposited_at,
        course_key=bytes32("course"),
        terms_id=1,
        creator=CREATOR,
        detail="creator share 8000 bps",
    )
    chain.deposit(e["e1"], "ETH", 2**200, deposited_at, future)
    chain.deposit(e["e2"], "ETH", 1 * ETH, deposited_at, future)
    chain.deposit(e["e3"], TOKEN, 100 * USDC, deposited_at, future)
    chain.deposit(e["e4"], TOKEN, 50 * USDC, deposited_at, past)
    chain.deposit(e["e5"], TOKEN, 30 * USDC, deposited_at, past)
    chain.deposit(e["e6"], "ETH", 2 * ETH, deposited_at, past)
    chain.deposit(e["e7"], "ETH", 1 * ETH, deposited_at, future)
    chain.log("settlement_skipped", settled_at, enrollment_key=key_of(e["e1"]), reason="not_due")
    chain.settle(e["e2"], "ETH", settled_at, 56 * ETH // 100, 14 * ETH // 100, 3 * ETH // 10)
    e3 = chain.settle(e["e3"], TOKEN, settled_at, 80 * USDC, 20 * USDC, 0)
    chain.settle(e["e6"], "ETH", settled_at, 0, 0, 2 * ETH, counted=False)
    e7 = chain.settle(e["e7"], "ETH", settled_at, 8 * ETH // 10, 2 * ETH // 10, 0)
    chain.log(
        "expired",
        settled_at,
        enrollment_key=key_of(e["e5"]),
        asset=TOKEN,
        decimals=6,
        amount=30 * USDC,
        learner_amount=30 * USDC,
    )
    chain.log("withdrawn", paid_at, payee=CREATOR, asset="ETH", decimals=18, amount=56 * ETH // 100)
    chain.log("withdrawn", paid_at, payee=CREATOR, asset=TOKEN, decimals=6, amount=80 * USDC)
    reorged = e3.model_copy(update={"block_hash": bytes32("reorg")})
    feed(ch, "settlement.receipts", [*chain.made, reorged])
    feed(
        ch,
        "course.completed",
        [
            completed(e["e1"], now),  # completed, not settled yet
            completed(e["e2"], settled_at.replace(microsecond=0) - timedelta(seconds=30)),
            completed(e["e3"], e3.block_time - timedelta(seconds=90)),
            completed(e["e6"], settled_at + timedelta(days=3)),  # after its deadline: not counted
            completed(e["e7"], e7.block_time - timedelta(seconds=45)),
        ],
    )
    return Fixture(settled_at, paid_at, e)


def test_sinks_settlement_open_escrow_by_asset(migrated: Client) -> None:
    seed_settlements(migrated)
    rows = migrated.query(ready_query("open_escrow_by_asset")).named_results()
    assert list(rows) == [
        {
            "chain_id": CHAIN,
            "asset": TOKEN,
            "decimals": 6,
            "open_escrows": 1,
            "open_amount": 50 * USDC,
            "past_deadline": 1,
        },
        {
            "chain_id": CHAIN,
            "asset": "ETH",
            "decimals": 18,
            "open_escrows": 1,
            "open_amount": 2**200,
            "past_deadline": 0,
        },
    ]


def test_sinks_settlement_payouts_and_refunds_by_asset_per_day(migrated: Client) -> None:
    seeded = seed_settlements(migrated)
    sql = ready_query("payouts_and_refunds_by_asset")
    rows = list(migrated.query(sql, parameters={"days": 7}).named_results())

    def expect(day: datetime, asset: str, **figures: int) -> dict[str, Any]:
        names = ("settled", "settled_creator", "settled_platform", "settled_learner", "expired")
        zero = dict.fromkeys([*names, "expired_learner", "withdrawals", "withdrawn"], 0)
        decimals = 18 if asset == "ETH" else 6
        key = {"day": day.date(), "chain_id": CHAIN, "asset": asset, "asset_decimals": decimals}
        return key | zero | figures

    settled, paid = seeded.day_settled, seeded.day_paid
    assert rows == [  # by day, then asset ('0x…' sorts before 'ETH')
        expect(settled, TOKEN, settled=1, settled_creator=80 * USDC,
               settled_platform=20 * USDC, expired=1, expired_learner=30 * USDC),
        expect(settled, "ETH", settled=3, settled_creator=(56 + 80) * ETH // 100,
               settled_platform=(14 + 20) * ETH // 100, settled_learner=23 * ETH // 10),
        expect(paid, TOKEN, withdrawals=1, withdrawn=80 * USDC),
        expect(paid, "ETH", withdrawals=1, withdrawn=56 * ETH // 100),
    ]  # fmt: skip
    assert migrated.query(sql, parameters={"days": 0}).result_rows == []


def test_sinks_settlement_latency_from_completion_to_settlement(migrated: Client) -> None:
    seeded = seed_settlements(migrated)
    sql = ready_query("settlement_latency")
    rows = list(migrated.query(sql, parameters={"days": 7}).named_results())
    # e2 30 s, e7 45 s, e3 90 s (once, despite its second publication); e6 (not counted) and
    # e1 (not settled) have no latency. quantileExact takes the value at floor(level x n).
    assert rows == [
        {
            "day": seeded.day_settled.date(),
            "settlements": 3,
            "p50_s": 45.0,
            "p90_s": 90.0,
            "p99_s": 90.0,
            "max_s": 90.0,
        },
    ]


# --- reconciliations --------------------------------------------------------------------------


def test_sinks_settlement_reconciliations_round_trip(migrated: Client) -> None:
    start = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
    first = {
        "run_id": uuid.uuid4(),
        "started_at": start,
        "finished_at": start + timedelta(seconds=2),
        "period_from": None,
        "period_to": None,
        "chain_id": CHAIN,
        "contract": CONTRACT,
        "matched": 10,
        "missing_on_chain": 0,
        "missing_off_chain": 0,
        "amount_mismatches": 0,
        "metric_mismatches": 0,
        "reorged_blocks": 0,
        "ok": True,
        "details": [],
    }
    discrepancy = {
        "enrollment_key": key_of(str(uuid.uuid4())),
        "kind": "amount_mismatch",
        "on_chain": str(2**200),
        "off_chain": "0",
    }
    second = first | {
        "run_id": str(uuid.uuid4()),
        "started_at": start + timedelta(hours=1),
        "finished_at": start + timedelta(hours=1, seconds=3),
        "period_from": start - timedelta(days=1),
        "period_to": start,
        "matched": 9,
        "amount_mismatches": 1,
        "reorged_blocks": 2**40,
        "ok": False,
        "details": [discrepancy],
    }
    write_reconciliation(migrated, first)
    write_reconciliation(migrated, second)

    runs = recent_reconciliations(migrated, limit=5)
    assert [r["run_id"] for r in runs] == [uuid.UUID(second["run_id"]), first["run_id"]]
    newest = runs[0]
    assert newest["details"] == [discrepancy]
    assert newest["period_from"] == start - timedelta(days=1) and newest["period_to"] == start
    assert (newest["matched"], newest["amount_mismatches"], newest["ok"]) == (9, 1, False)
    assert newest["reorged_blocks"] == 2**40
    assert runs[1]["period_from"] is None and runs[1]["details"] == []
    assert runs[1]["started_at"] == start
    assert len(recent_reconciliations(migrated, limit=1)) == 1

    with pytest.raises(ValueError, match="tz-aware"):
        write_reconciliation(migrated, first | {"started_at": start.replace(tzinfo=None)})
    with pytest.raises(ValueError, match="matched"):
        write_reconciliation(migrated, first | {"matched": -1})
    with pytest.raises(ValueError, match="unknown"):
        write_reconciliation(migrated, first | {"ok": True, "sql": "DROP TABLE x"})
    assert migrated.query("SELECT count() FROM reconciliations").first_row == (2,)


# --- the sink itself --------------------------------------------------------------------------


@pytest.mark.slow
def test_sinks_settlement_the_sink_fills_the_tables_from_kafka(
    stack: Stack, bootstrap: str
) -> None:
    env = SinkEnv(stack, bootstrap, stack.settings.clickhouse.dsn)
    database, client = env.database()
    enrollment = str(uuid.uuid4())
    now = datetime.now(UTC)
    chain = Chain()
    deposit = chain.deposit(enrollment, TOKEN, 25 * USDC, now, now + timedelta(days=3))
    settled = chain.settle(enrollment, TOKEN, now, 20 * USDC, 5 * USDC, 0)
    again = settled.model_copy(update={"block_hash": bytes32("reorg")})
    producer = make_producer(bootstrap)
    produce_all(
        producer,
        "completion.scores",
        [
            (enrollment, score(enrollment, now).model_dump_json()),
            (enrollment, score(enrollment, now, score_bps=10_000, score=1.0).model_dump_json()),
        ],
    )
    produce_all(
        producer, "course.completed", [(enrollment, completed(enrollment, now).model_dump_json())]
    )
    receipts = [(Indexer.key_of(r), r.model_dump_json()) for r in (deposit, settled, again)]
    produce_all(producer, "settlement.receipts", receipts)
    try:
        sink = env.sink(database, topics=sorted(TOPICS))
        sink.run(idle_exit_s=2.0)
        mine = {"k": key_of(enrollment)}
        assert client.query(
            "SELECT score_bps FROM completion_scores FINAL WHERE enrollment_key = {k:String}",
            parameters=mine,
        ).result_rows == [(10_000,)]
        assert client.query(
            "SELECT count() FROM course_completed FINAL WHERE enrollment_key = {k:String}",
            parameters=mine,
        ).first_row == (1,)
        stored = client.query(
            "SELECT kind, block_hash, amount, creator_amount FROM settlements FINAL "
            "WHERE enrollment_key = {k:String} ORDER BY kind",
            parameters=mine,
        ).result_rows
        assert stored == [
            ("deposited", deposit.block_hash, 25 * USDC, None),
            ("settled", again.block_hash, None, 20 * USDC),
        ]
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()
