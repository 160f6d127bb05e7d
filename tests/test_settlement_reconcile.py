"""`settlement reconcile` and `settlement show` on a real anvil, Kafka and ClickHouse: a clean
period reconciles; a missing receipt, a changed amount, a receipt the chain does not have, a
settlement the completion records contradict and an overdue escrow are each reported, and the
run is recorded in `reconciliations`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from learnstream.stack import Stack
from settlement import contract as c
from settlement.indexer import Indexer, LogDecoder
from sinks.clickhouse import COLUMNS, convert, migrate
from sinks.clickhouse.client import connect
from sinks.clickhouse.reconciliations import recent_reconciliations
from sinks.settlement.reconcile import Reconciler
from sinks.settlement.trail import trail
from streams.admin import ensure_topics
from streams.topics import TopicSpec
from tests.chain_fixtures import Chain, course
from tests.test_sinks_migrations import PSEUDONYMIZE
from tests.test_sinks_settlement_tables import completed, score

pytestmark = pytest.mark.slow
ETHER = 10**18


@pytest.fixture
def db(stack: Stack) -> Client:
    name = f"rec_{uuid.uuid4().hex[:10]}"
    admin = connect(stack.settings.clickhouse.dsn)
    admin.command(f"CREATE DATABASE {name}")
    client = connect(f"{stack.settings.clickhouse.dsn}/{name}")
    migrate(client)
    return client


def insert(client: Client, topic: str, table: str, records: list, offset: int = 0) -> None:
    rows = [
        convert(topic, 0, offset + i, r.model_dump_json().encode(), PSEUDONYMIZE)
        for i, r in enumerate(records)
    ]
    client.insert(table, rows, column_names=COLUMNS[table])


def scenario(chain: Chain) -> dict[str, bytes]:
    """One escrow completed in time, one settled at its deadline by its score, one left open
    past its deadline (the oracle never acted)."""
    terms = course()
    chain.register(terms)
    start_s = chain.now_ms() // 1000 + 1
    ids = {name: uuid.uuid4() for name in ("done", "partial", "forgotten")}
    for enrollment_id in ids.values():
        chain.deposit(
            terms,
            ETHER,
            key=c.enrollment_key(enrollment_id),
            enrolled_ms=start_s * 1000,
            deadline_ms=(start_s + 30) * 1000,
        )
    chain.send(
        chain.roles.oracle,
        chain.escrow.functions.settle(
            [(c.enrollment_key(ids["done"]), True, start_s * 1000 + 5_000, 10_000)]
        ),
    )
    chain.warp_to(start_s + 31)
    chain.send(
        chain.roles.oracle,
        chain.escrow.functions.settle([(c.enrollment_key(ids["partial"]), False, 0, 4_000)]),
    )
    chain.warp_to(start_s + 30 + 600)  # well past every deadline + settle delay
    for _ in range(3):
        chain.rpc("evm_mine")
    return {"start_s": start_s, **ids}  # type: ignore[dict-item]


def test_reconcile_finds_every_kind_of_discrepancy(
    chain: Chain, stack: Stack, db: Client, tmp_path: Path
) -> None:
    found = scenario(chain)
    start_s = found.pop("start_s")
    ids = {k: str(v) for k, v in found.items()}
    bootstrap = stack.settings.kafka.bootstrap_servers
    topic = f"test.receipts.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [TopicSpec(topic, 1, 1, {})])
    indexer = Indexer(
        chain.w3, chain.escrow.address, bootstrap, topic, tmp_path, confirmations=1, start_block=0
    )
    indexer.step()
    decoder = LogDecoder(chain.w3, chain.escrow)
    receipts = [
        decoder.decode(e)
        for e in chain.w3.eth.get_logs(
            {
                "address": chain.escrow.address,
                "fromBlock": 0,
                "toBlock": chain.w3.eth.block_number - 1,
            }
        )
    ]
    insert(db, "settlement.receipts", "settlements", receipts)
    at = datetime.fromtimestamp(start_s, UTC)
    insert(
        db,
        "course.completed",
        "course_completed",
        [completed(ids["done"], at + timedelta(seconds=5))],
    )
    insert(
        db,
        "completion.scores",
        "completion_scores",
        [
            score(
                ids["done"], at + timedelta(seconds=5), score=1.0, score_bps=10_000, complete=True
            ),
            score(ids["partial"], at + timedelta(seconds=9), score=0.4, score_bps=4_000),
        ],
    )

    def reconcile() -> object:
        return Reconciler(
            chain.w3, chain.escrow.address, 0, 1, bootstrap, topic, db, tmp_path, settle_delay_s=5
        ).run()

    report = reconcile()
    # the forgotten escrow is overdue: the only discrepancy
    assert report.counts["missing_on_chain"] == 1, report.render()
    assert report.counts["matched"] == len(receipts)
    assert "forgotten" not in report.render() and c.enrollment_key(ids["forgotten"]).hex() in (
        report.render()
    )
    expire = chain.escrow.functions.expire(c.enrollment_key(ids["forgotten"]))
    chain.send(chain.stranger, expire)
    chain.rpc("evm_mine")
    indexer.step()
    new = [
        decoder.decode(e)
        for e in chain.w3.eth.get_logs(
            {
                "address": chain.escrow.address,
                "fromBlock": receipts[-1].block_number + 1,
                "toBlock": chain.w3.eth.block_number - 1,
            }
        )
    ]
    insert(db, "settlement.receipts", "settlements", new, offset=len(receipts))
    clean = reconcile()
    assert clean.ok, clean.render()

    # now break things, one of each kind
    settled = next(r for r in receipts if r.kind == "settled" and r.counted)
    tampered = settled.model_copy(update={"creator_amount": settled.creator_amount + 1})
    ghost = settled.model_copy(update={"receipt_id": uuid.uuid4(), "tx_hash": "0x" + "ab" * 32})
    insert(db, "settlement.receipts", "settlements", [tampered, ghost], offset=100)
    wrong_score = score(ids["partial"], at + timedelta(seconds=9), score=0.5, score_bps=5_000)
    insert(db, "completion.scores", "completion_scores", [wrong_score], offset=10)
    report = reconcile()
    assert not report.ok
    assert report.counts["amount_mismatches"] >= 1  # the tampered amount
    assert report.counts["missing_on_chain"] >= 1  # the ghost receipt
    assert report.counts["metric_mismatches"] >= 1  # settled at 4,000 bps, records say 5,000
    runs = recent_reconciliations(db, 5)
    assert [r["ok"] for r in runs[:3]] == [False, True, False]

    # the whole trail of one enrollment
    roles = chain.roles
    shown = trail(
        uuid.UUID(ids["done"]),
        chain.w3,
        chain.escrow.address,
        0,
        db,
        tmp_path,
        roles.oracle.address,
        roles.treasury,
    )
    assert shown["escrow"]["state"] == "settled" and shown["escrow"]["amount"] == ETHER
    assert [log["kind"] for log in shown["logs"]] == ["deposited", "settled"]
    # the creator's credit: the completed escrow's share and the partial one's
    partial = ETHER * 4_000 // 10_000
    assert shown["credits"]["creator"] == ETHER * 8_000 // 10_000 + partial * 8_000 // 10_000
    assert shown["completion"] and shown["scores"][0]["score_bps"] == 10_000
