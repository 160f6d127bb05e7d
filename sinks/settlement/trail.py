"""One enrollment's whole money trail (``learnstream settlement show ENROLLMENT``): the
enrollment, its scores and completion, the escrow on-chain with its pinned terms, every log
and transaction that touched it, the payees' outstanding credits, and the settlement
service's intents for it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from hexbytes import HexBytes
from web3 import Web3

from settlement.contract import ETH, enrollment_key, escrow_at
from settlement.escrows import EscrowView, escrow_of
from settlement.indexer import LogDecoder

ENROLLMENT_SQL = """
SELECT event_id, course_id, learner_key, occurred_at, received_at, payment_model, price_minor,
    currency, deposit_wei, refund_address, deadline_at
FROM enrollments FINAL WHERE event_id = {id:UUID}
"""
SCORE_SQL = """
SELECT score, score_bps, complete, exam_bps, exam_passed, exam_passed_received_at, as_of,
    received_at, deadline_at
FROM completion_scores FINAL WHERE enrollment_id = {id:UUID}
"""
COMPLETED_SQL = """
SELECT completed_at, received_at, enrolled_received_at, deadline_at
FROM course_completed FINAL WHERE enrollment_id = {id:UUID}
"""
SETTLEMENTS_SQL = """
SELECT kind, tx_hash, block_number, block_time, asset, decimals, amount, creator_amount,
    platform_amount, learner_amount, earned_bps, score_bps, metric, counted, reason
FROM settlements FINAL WHERE enrollment_key = {key:String} ORDER BY block_number, log_index
"""


def _rows(client: Client, sql: str, **params: Any) -> list[dict[str, Any]]:
    return list(client.query(sql, parameters=params).named_results())


def _intents(state_dir: Path, chain_id: int, oracle: str, key_hex: str) -> list[dict[str, Any]]:
    """The sender's intents covering the escrow, read from its store without locking it (the
    running sink owns it)."""
    path = state_dir / f"sender-{chain_id}-{oracle}.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT intent_id, status, nonce, tx_hash, receipt_status, block_number "
            "FROM intents WHERE meta LIKE ? ORDER BY nonce",
            (f"%{key_hex}%",),
        ).fetchall()
    finally:
        db.close()
    names = ("intent_id", "status", "nonce", "tx_hash", "receipt_status", "block_number")
    return [dict(zip(names, row, strict=True)) for row in rows]


def trail(
    enrollment_id: uuid.UUID,
    w3: Web3,
    escrow_address: str,
    start_block: int,
    clickhouse: Client | None,
    state_dir: Path,
    oracle: str,
    treasury: str,
) -> dict[str, Any]:
    key = enrollment_key(enrollment_id)
    key_hex = key.hex()
    escrow = escrow_at(w3, escrow_address)
    out: dict[str, Any] = {"enrollment_id": str(enrollment_id), "enrollment_key": "0x" + key_hex}
    if clickhouse is not None:
        out["enrollment"] = _rows(clickhouse, ENROLLMENT_SQL, id=enrollment_id)
        out["scores"] = _rows(clickhouse, SCORE_SQL, id=enrollment_id)
        out["completion"] = _rows(clickhouse, COMPLETED_SQL, id=enrollment_id)
        out["settlements_table"] = _rows(clickhouse, SETTLEMENTS_SQL, key="0x" + key_hex)
    held = escrow_of(escrow, key)
    asset = ETH if held.asset == "ETH" else held.asset
    out["escrow"] = {
        "state": held.state,
        "asset": held.asset,
        "amount": held.amount,
        "refund_to": held.refund_to,
        "terms_id": held.terms_id,
        "enrolled_at_ms": held.enrolled_ms,
        "deadline_ms": held.deadline_ms,
    }
    refund_to = held.refund_to
    if held.state != "none":
        view = EscrowView(w3, escrow_address, start_block)
        out["terms"] = view.terms(held.terms_id).__dict__
        creator = out["terms"]["creator"]
        out["credits"] = {
            role: escrow.functions.creditOf(asset, who).call()
            for role, who in (("creator", creator), ("platform", treasury), ("learner", refund_to))
        }
    decoder = LogDecoder(w3, escrow)
    logs = w3.eth.get_logs(
        {"address": escrow.address, "fromBlock": start_block, "topics": [None, HexBytes(key)]}
    )
    out["logs"] = [
        r.model_dump(mode="json", exclude_none=True)
        for entry in logs
        if (r := decoder.decode(entry)) is not None
    ]
    out["intents"] = _intents(state_dir, int(w3.eth.chain_id), oracle, key_hex)
    return out


__all__ = ["ETH", "trail"]
