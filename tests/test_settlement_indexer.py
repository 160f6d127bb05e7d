"""The receipts indexer on a real anvil and Kafka: every log once, only behind the
confirmation depth, nothing twice after a crash between publish and save, nothing wrong after
a shallow reorganisation, and a deeper one detected."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from learnstream.stack import Stack
from schemas.settlement import SettlementReceipt, receipt_id
from settlement import contract as c
from settlement.indexer import Indexer
from streams.admin import ensure_topics
from streams.kafka import end_offsets, read_to_end
from streams.topics import TopicSpec
from tests.chain_fixtures import Chain, course

pytestmark = pytest.mark.slow
ETHER = 10**18


@pytest.fixture
def topic(stack: Stack) -> str:
    name = f"test.receipts.{uuid.uuid4().hex[:8]}"
    bootstrap = stack.settings.kafka.bootstrap_servers
    ensure_topics(bootstrap, [TopicSpec(name, 3, 1, {})])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until every partition has a leader
        try:
            if len(end_offsets(bootstrap, [name])) == 3:
                return name
        except KafkaException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"topic {name} has no leaders after 30 s")


def indexer(chain: Chain, stack: Stack, topic: str, state: Path, depth: int) -> Indexer:
    return Indexer(
        chain.w3, chain.escrow.address, stack.settings.kafka.bootstrap_servers, topic, state,
        confirmations=depth, start_block=0, batch_blocks=3,
    )  # fmt: skip


def published(stack: Stack, topic: str) -> list[SettlementReceipt]:
    records = read_to_end(stack.settings.kafka.bootstrap_servers, [topic])
    return [SettlementReceipt.model_validate_json(r.value) for r in records]


def mine(chain: Chain, blocks: int) -> None:
    for _ in range(blocks):
        chain.rpc("evm_mine")


def activity(chain: Chain) -> dict[str, bytes]:
    """Register, deposit in ETH and tUSD, settle one of each, withdraw the creator's ether."""
    terms = course()
    chain.register(terms)
    eth = chain.deposit(terms, ETHER)
    coin = chain.deposit(terms, 12_345_678, asset=chain.coin.address)
    now = chain.now_ms()
    chain.send(chain.roles.oracle, chain.escrow.functions.settle(
        [(eth, True, now, 10_000), (coin, True, now, 10_000)]))  # fmt: skip
    chain.send(chain.creator, chain.escrow.functions.withdraw(c.ETH))
    return {"eth": eth, "coin": coin}


def chain_logs(chain: Chain) -> set[uuid.UUID]:
    entries = chain.w3.eth.get_logs({"address": chain.escrow.address, "fromBlock": 0})
    return {receipt_id(e["transactionHash"].to_0x_hex(), e["logIndex"]) for e in entries}


def test_every_log_is_published_once_behind_the_depth(
    chain: Chain, stack: Stack, topic: str, tmp_path: Path
) -> None:
    keys = activity(chain)
    idx = indexer(chain, stack, topic, tmp_path, depth=3)
    idx.step()
    before = {r.receipt_id for r in published(stack, topic)}
    assert before < chain_logs(chain)  # the last three blocks are not published yet
    head = chain.w3.eth.block_number
    assert all(r.block_number <= head - 3 for r in published(stack, topic))
    mine(chain, 3)
    idx.step()
    got = published(stack, topic)
    assert {r.receipt_id for r in got} == chain_logs(chain)
    assert len(got) == len(chain_logs(chain))  # once each
    assert idx.step() == 0
    settled = {r.enrollment_key: r for r in got if r.kind == "settled"}
    eth, coin = settled["0x" + keys["eth"].hex()], settled["0x" + keys["coin"].hex()]
    assert (eth.asset, eth.decimals, eth.creator_amount) == ("ETH", 18, ETHER * 8_000 // 10_000)
    assert (coin.asset, coin.decimals) == (chain.coin.address, 6)
    assert coin.creator_amount + coin.platform_amount + coin.learner_amount == 12_345_678
    deposits = [r for r in got if r.kind == "deposited"]
    assert {r.amount for r in deposits} == {ETHER, 12_345_678}
    assert all(r.refund_to == chain.learner.address and r.deadline_at for r in deposits)
    (withdrawn,) = [r for r in got if r.kind == "withdrawn"]
    assert (withdrawn.payee, withdrawn.amount) == (chain.creator.address, ETHER * 8_000 // 10_000)
    for r in got:  # every block hash is the canonical one
        assert r.block_hash == chain.w3.eth.get_block(r.block_number)["hash"].to_0x_hex()


def test_a_crash_between_publish_and_save_publishes_nothing_twice(
    chain: Chain, stack: Stack, topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    activity(chain)
    mine(chain, 2)
    first = indexer(chain, stack, topic, tmp_path, depth=2)
    saves = {"n": 0}
    real_save = Indexer._save

    def crash_on_second_save(self: Indexer) -> None:
        saves["n"] += 1
        if saves["n"] == 2:
            raise KeyboardInterrupt("killed after publishing, before saving")
        real_save(self)

    monkeypatch.setattr(Indexer, "_save", crash_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        first.step()
    first.close()
    monkeypatch.setattr(Indexer, "_save", real_save)
    partial = published(stack, topic)
    assert partial  # the crashed run did publish
    second = indexer(chain, stack, topic, tmp_path, depth=2)
    second.step()
    got = [r.receipt_id for r in published(stack, topic)]
    assert len(got) == len(set(got)) == len(chain_logs(chain))


def test_a_shallow_reorg_publishes_nothing_wrong(
    chain: Chain, stack: Stack, topic: str, tmp_path: Path
) -> None:
    terms = course()
    chain.register(terms)
    mine(chain, 4)
    idx = indexer(chain, stack, topic, tmp_path, depth=4)
    idx.step()
    doomed = chain.deposit(terms, ETHER)  # this block is reorganised away below
    mine(chain, 1)
    idx.step()  # within the depth: not published yet
    assert not [r for r in published(stack, topic) if r.kind == "deposited"]
    chain.rpc("anvil_reorg", 3, [])  # shallower than the depth of 4
    mine(chain, 6)
    idx.step()
    got = published(stack, topic)
    for r in got:
        assert r.block_hash == chain.w3.eth.get_block(r.block_number)["hash"].to_0x_hex()
    on_chain = chain.escrow.functions.escrowOf(doomed).call()[2]
    deposited = [r for r in got if r.kind == "deposited"]
    # published exactly when (and as) the canonical chain has it
    assert len(deposited) == (1 if on_chain else 0)
    assert {r.receipt_id for r in got} == chain_logs(chain)
    assert idx.state.reorgs == []


def test_a_deeper_reorg_is_detected_and_reindexed(
    chain: Chain, stack: Stack, topic: str, tmp_path: Path
) -> None:
    terms = course()
    chain.register(terms)
    chain.deposit(terms, ETHER)
    mine(chain, 1)
    idx = indexer(chain, stack, topic, tmp_path, depth=1)
    idx.step()
    assert any(r.kind == "deposited" for r in published(stack, topic))
    chain.rpc("anvil_reorg", 3, [])  # deeper than the depth of 1: published blocks change
    mine(chain, 2)
    idx.step()
    assert idx.state.reorgs, "a published block that changed must be reported"
    saved = json.loads(idx.path.read_text())
    assert (
        saved["reorgs"]
        and saved["reorgs"][0]["published_hash"] != saved["reorgs"][0]["canonical_hash"]
    )
    # what is canonical now is published, with its new block hash
    canonical = {
        r.receipt_id: r.block_hash
        for r in published(stack, topic)
        if r.block_hash == chain.w3.eth.get_block(r.block_number)["hash"].to_0x_hex()
    }
    assert set(canonical) == chain_logs(chain)
