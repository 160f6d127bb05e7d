"""The settlement sender on a real anvil: one transaction per intent, consecutive nonces, the
same bytes after a crash, replacement of a stuck transaction, confirmations, a shallow
reorganisation, reverts, and what a restart finds on the chain."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from web3 import Web3

from learnstream.stack.procs import free_port
from schemas.errors import ChainUnreachable
from settlement import contract as c
from settlement.intents import (
    IntentConflict,
    NonceConflict,
    StoreLocked,
    StoreMismatch,
    TransactionFailed,
)
from settlement.sender import Sender, bump
from settlement.settings import SettlementSettings
from tests.chain_fixtures import Chain, automine_off, course, mine, reorg

pytestmark = pytest.mark.slow
ETHER = 10**18


def sender(chain: Chain, state: Path, **kwargs: Any) -> Sender:
    kwargs = {"confirmations": 2, "stuck_after_s": 0.3, "receipt_poll_s": 0.05, **kwargs}
    return Sender(chain.w3, chain.roles.oracle, state, **kwargs)


def register_call(chain: Chain) -> tuple[str, str]:
    args = [c.course_key("c-escrow"), c.terms_of(course())]
    return chain.escrow.address, chain.escrow.encode_abi("registerCourse", args=args)


def deposit_call(chain: Chain, course_id: str = "c-escrow") -> tuple[str, str, bytes]:
    key = c.enrollment_key(uuid.uuid4())
    now = chain.now_ms()
    row = (key, c.course_key(course_id), c.ETH, ETHER, chain.learner.address, now, now + 3_600_000)
    return chain.escrow.address, chain.escrow.encode_abi("deposit", args=[[row]]), key


def events(changes: list[Any]) -> list[tuple[str, str]]:
    return [(ch.event, ch.intent.intent_id) for ch in changes]


def oracle_txs(chain: Chain, nonce: int, since: int) -> list[str]:
    """Hashes of the oracle's transactions with ``nonce`` in the canonical chain."""
    found = []
    for number in range(since, chain.w3.eth.block_number + 1):
        for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == chain.roles.oracle.address and tx["nonce"] == nonce:
                found.append(tx["hash"].to_0x_hex())
    return found


def pool_hashes(chain: Chain) -> set[str]:
    content = chain.rpc("txpool_content")["pending"]
    return {tx["hash"] for by_nonce in content.values() for tx in by_nonce.values()}


def test_one_transaction_per_intent_and_consecutive_nonces(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path)
    first = s.next_nonce
    assert first == chain.w3.eth.get_transaction_count(chain.roles.oracle.address, "pending")
    to, data = register_call(chain)
    reg = s.submit("register:c-escrow", to, data, meta={"course": "c-escrow"})
    again = s.submit("register:c-escrow", to, data, meta={"course": "ignored"})
    assert (again.tx_hash, again.nonce, again.attempts) == (reg.tx_hash, reg.nonce, reg.attempts)
    assert again.meta == {"course": "c-escrow"} and again.kind == "register"
    deposits = []
    for n in range(2):
        to, data, key = deposit_call(chain)
        deposits.append(s.submit(f"deposit:{n}", to, data, ETHER, {"keys": [key.hex()]}))
    assert [i.nonce for i in (reg, *deposits)] == [first, first + 1, first + 2]
    assert s.next_nonce == first + 3
    for intent in (reg, *deposits):
        assert chain.w3.eth.get_transaction(intent.tx_hash)["nonce"] == intent.nonce
    with pytest.raises(IntentConflict, match="deposit:0"):  # an id names one call
        s.submit("deposit:0", *deposit_call(chain)[:2], ETHER)
    assert chain.w3.eth.get_transaction_count(chain.roles.oracle.address) == first + 3
    mine(chain, 2)
    changes = s.poll()
    assert sorted(ch.event for ch in changes) == ["confirmed"] * 3 + ["mined"] * 3
    assert [i.status for i in s.intents()] == ["confirmed"] * 3
    assert s.poll() == []
    assert s.get("deposit:1") is not None and s.get("deposit:1").meta["keys"]  # type: ignore[union-attr]
    s.close()


def test_mined_is_not_confirmed_until_the_depth(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path, confirmations=3)
    intent = s.submit("register:c-escrow", *register_call(chain))
    assert events(s.poll()) == [("mined", "register:c-escrow")]
    got = s.get(intent.intent_id)
    assert got is not None and got.status == "mined" and got.receipt_status == 1
    mine(chain, 2)
    assert s.poll() == []
    assert s.get(intent.intent_id).status == "mined"  # type: ignore[union-attr]
    mine(chain)
    assert events(s.poll()) == [("confirmed", "register:c-escrow")]
    assert s.poll() == []
    s.close()


def test_a_crash_before_broadcast_sends_the_same_bytes_after_restart(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sender(chain, tmp_path)
    nonce = s.next_nonce

    def crash(raw: Any) -> Any:
        raise RuntimeError("killed between the commit and the broadcast")

    monkeypatch.setattr(chain.w3.eth, "send_raw_transaction", crash)
    with pytest.raises(RuntimeError, match="killed"):
        s.submit("register:c-escrow", *register_call(chain))
    monkeypatch.undo()
    stored = s.get("register:c-escrow")
    assert stored is not None and stored.current.broadcast_at is None
    assert chain.rpc("eth_getTransactionByHash", stored.tx_hash) is None  # never sent
    with pytest.raises(StoreLocked):  # one sender per store
        sender(chain, tmp_path)
    s.close()  # the process dies

    restarted = sender(chain, tmp_path)
    assert restarted.next_nonce == nonce + 1
    assert restarted.get("register:c-escrow").status == "pending"  # type: ignore[union-attr]
    (sent,) = restarted.rebroadcast()
    assert (sent.event, sent.intent.tx_hash) == ("broadcast", stored.tx_hash)
    assert chain.rpc("eth_getRawTransactionByHash", stored.tx_hash) == stored.current.raw_tx
    mine(chain, 2)
    final = restarted.wait("register:c-escrow", timeout=10)
    assert (final.status, final.tx_hash, final.nonce) == ("confirmed", stored.tx_hash, nonce)
    assert len(final.attempts) == 1
    restarted.close()


@pytest.mark.parametrize("why", ["dropped", "in_pool", "underpriced"])
def test_a_stuck_transaction_is_replaced(chain: Chain, tmp_path: Path, why: str) -> None:
    with automine_off(chain):
        s = sender(chain, tmp_path)
        start = chain.w3.eth.block_number
        first = s.submit("register:c-escrow", *register_call(chain))
        old = first.current
        if why == "dropped":
            chain.rpc("anvil_dropTransaction", first.tx_hash)
            assert first.tx_hash not in pool_hashes(chain)
        elif why == "underpriced":  # the next block's base fee is above what the tx may pay
            chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(old.max_fee_per_gas * 21 // 20))
            mine(chain)
            assert chain.w3.eth.get_block("latest")["transactions"] == []
        assert s.poll() == []  # not stuck yet
        time.sleep(0.35)
        (replaced,) = s.poll()
        assert replaced.event == "replaced"
        intent = replaced.intent
        new = intent.current
        assert new.tx_hash != old.tx_hash and intent.nonce == first.nonce
        assert intent.hashes == (old.tx_hash, new.tx_hash)
        assert new.max_fee_per_gas >= old.max_fee_per_gas * 1.125
        assert new.max_priority_fee_per_gas >= old.max_priority_fee_per_gas * 1.125
        assert new.tx_hash in pool_hashes(chain) and old.tx_hash not in pool_hashes(chain)
        assert s.poll() == []  # the replacement is not stuck
        mine(chain)
        assert events(s.poll()) == [("mined", "register:c-escrow")]
        mine(chain, 2)
        assert events(s.poll()) == [("confirmed", "register:c-escrow")]
        final = s.get("register:c-escrow")
        assert final is not None and final.tx_hash == new.tx_hash
        assert oracle_txs(chain, first.nonce, start) == [new.tx_hash]
        s.close()


def test_bump_rounds_up_and_always_raises() -> None:
    assert bump(8, 12.5) == 9 and bump(9, 12.5) == 11 and bump(0, 12.5) == 1
    assert bump(10**9, 12.5) == 1_125_000_000
    with pytest.raises(ValidationError):
        SettlementSettings(fee_bump_pct=10)


@pytest.mark.parametrize("included", [False, True])
def test_a_shallow_reorg_resends_the_same_bytes_and_confirms_once(
    chain: Chain, tmp_path: Path, included: bool
) -> None:
    s = sender(chain, tmp_path, confirmations=3)
    start = chain.w3.eth.block_number
    intent = s.submit("register:c-escrow", *register_call(chain))
    mine(chain)
    seen = s.poll()
    mined = s.get(intent.intent_id)
    assert mined is not None and mined.status == "mined"
    # the tx's block and the one on top are replaced: with the same tx in the new chain or not
    reorg(chain, 2, [(intent.current.raw_tx, 1)] if included else [])
    after = s.poll()
    seen += after
    if included:  # found in its new block: nothing to send
        assert events(after) == [("mined", intent.intent_id)]
    else:  # gone: the same bytes again (automine puts them in the next block)
        assert [ch.event for ch in after] == ["reorged", "broadcast"]
        assert after[1].intent.tx_hash == intent.tx_hash
        seen += s.poll()
    moved = s.get(intent.intent_id)
    assert moved is not None and moved.status == "mined" and moved.block_hash != mined.block_hash
    mine(chain, 3)
    seen += s.poll() + s.poll()
    assert [ch.event for ch in seen].count("confirmed") == 1
    final = s.get(intent.intent_id)
    assert final is not None and final.status == "confirmed" and final.hashes == (intent.tx_hash,)
    assert oracle_txs(chain, intent.nonce, start) == [intent.tx_hash]
    s.close()


def test_a_reverted_transaction_is_failed_and_reported(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path)
    nonce = s.next_nonce
    to, data, _ = deposit_call(chain, "never-registered")
    with pytest.raises(c.ChainError, match="would revert: UnknownCourse"):
        s.submit("deposit:x", to, data, ETHER)
    assert s.get("deposit:x") is None and s.next_nonce == nonce  # nothing stored or sent
    intent = s.submit("deposit:x", to, data, ETHER, gas=300_000)  # explicit gas: mined anyway
    assert events(s.poll()) == [("mined", "deposit:x")]
    assert s.get("deposit:x").receipt_status == 0  # type: ignore[union-attr]
    mine(chain, 2)
    (failed,) = s.poll()
    assert (failed.event, failed.intent.status, failed.intent.receipt_status) == (
        "failed",
        "failed",
        0,
    )
    with pytest.raises(TransactionFailed, match=r"deposit:x .*FAILED.*UnknownCourse"):
        s.wait("deposit:x", timeout=5)
    assert s.wait("deposit:x", timeout=5, check=False).tx_hash == intent.tx_hash
    s.close()


def test_a_restart_continues_from_the_chain(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path)
    nonce = s.next_nonce
    s.submit("register:c-escrow", *register_call(chain))
    s.submit("deposit:0", *deposit_call(chain)[:2], ETHER)
    s.close()  # neither was seen mined
    restarted = sender(chain, tmp_path)
    assert [i.status for i in restarted.intents()] == ["mined", "mined"]  # read at opening
    assert restarted.next_nonce == nonce + 2
    assert restarted.submit("deposit:1", *deposit_call(chain)[:2], ETHER).nonce == nonce + 2
    restarted.close()


def test_a_nonce_used_outside_the_sender_is_a_loud_error(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path)
    ledger = s.next_nonce
    s.close()
    c.transact(chain.w3, chain.roles.oracle, chain.escrow.functions.registerCourse(
        c.course_key("c-escrow"), c.terms_of(course())))  # fmt: skip
    with pytest.raises(NonceConflict, match=rf"nonces {ledger}\.\.{ledger} .*deployment fault"):
        sender(chain, tmp_path)
    resynced = sender(chain, tmp_path, resync_nonce=True)  # the operator says it was theirs
    assert resynced.next_nonce == ledger + 1
    resynced.close()


def test_an_intent_whose_nonce_somebody_else_used(chain: Chain, tmp_path: Path) -> None:
    with automine_off(chain):
        s = sender(chain, tmp_path)
        intent = s.submit("register:c-escrow", *register_call(chain))
        chain.rpc("anvil_dropTransaction", intent.tx_hash)
        # another process signs its own transaction with the same key and nonce
        other = chain.roles.oracle.sign_transaction({
            "type": 2, "chainId": chain.w3.eth.chain_id, "nonce": intent.nonce,
            "to": chain.stranger.address, "value": 1, "gas": 21_000,
            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
        })  # fmt: skip
        chain.w3.eth.send_raw_transaction(other.raw_transaction)
        mine(chain)
        message = rf"nonce {intent.nonce} of {chain.roles.oracle.address} .* NOT executed"
        with pytest.raises(NonceConflict, match=message):
            s.poll()
        s.close()
        with pytest.raises(NonceConflict, match=message):  # and at every start
            sender(chain, tmp_path)


def test_the_store_belongs_to_one_chain(chain: Chain, tmp_path: Path) -> None:
    s = sender(chain, tmp_path, confirmations=0)
    path = s.path
    assert path.name == f"sender-31337-{chain.roles.oracle.address}.sqlite"
    s.wait(s.submit("register:c-escrow", *register_call(chain)).intent_id, 30)
    s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.execute("UPDATE meta SET value = '0xdead' WHERE key = 'genesis'")
    # another block 0, but the chain holds our transactions (anvil restarted from its state
    # file makes a new block 0): the same chain, the store goes on
    again = sender(chain, tmp_path, confirmations=0)
    assert again.get("register:c-escrow").status == "confirmed"  # type: ignore[union-attr]
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'genesis'").fetchone()[0] != "0xdead"
        # a chain without our transactions: a fresh chain, the store's intents are void
        db.execute("UPDATE meta SET value = '0xdead' WHERE key = 'genesis'")
        db.execute("UPDATE intents SET nonce = nonce + 1000000")
    with pytest.raises(StoreMismatch, match="fresh local chain"):
        sender(chain, tmp_path, confirmations=0)


def test_an_unreachable_node(tmp_path: Path, deployed: Chain) -> None:
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ChainUnreachable, match="LEARNSTREAM_CHAIN__RPC_URL"):
        Sender(w3, deployed.roles.oracle, tmp_path)
