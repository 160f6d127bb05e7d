"""Finance reconciliation (``learnstream settlement reconcile``): the chain's logs against
``settlement.receipts``, the ``settlements`` table and the completion records.

The chain is the source of truth. For every log of the escrow in the period (behind the
confirmation depth):

- **matched**: the topic and ClickHouse hold it, with the same block, amounts and metric;
- **missing off-chain**: the topic or ClickHouse lacks it (the indexer or a sink is behind);
- **missing on-chain**: a receipt the topic or ClickHouse holds is not on the canonical chain,
  or an escrow is still open well past its deadline + settle delay (the oracle did not act);
- **amount mismatches**: a field differs between the log and a record; a settlement whose
  amounts are not the formula's for its deposit and pinned terms; an asset whose contract
  balance is not deposits minus withdrawals;
- **metric mismatches**: a settlement whose outcome (completion counted, earned bps) is not what
  the completion records say it should have been;
- **reorganised blocks**: published block hashes that are no longer canonical (including those
  the indexer recorded).

Each run is written to ``reconciliations``; any discrepancy makes the command exit non-zero.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from web3 import Web3

from schemas.derived import CompletionScore, CourseCompleted
from schemas.settlement import SettlementReceipt
from settlement import formula
from settlement.contract import ETH, escrow_at, token_at
from settlement.escrows import EscrowView, OnChain
from settlement.indexer import IndexerState, LogDecoder
from sinks.clickhouse.reconciliations import COUNTS, write_reconciliation
from sinks.settlement.book import outcome
from streams.kafka import read_to_end

COMPARED = (
    "kind",
    "tx_hash",
    "block_number",
    "block_hash",
    "log_index",
    "enrollment_key",
    "asset",
    "amount",
    "creator_amount",
    "platform_amount",
    "learner_amount",
    "earned_bps",
    "score_bps",
    "metric",
    "counted",
)
MONEY = {"amount", "creator_amount", "platform_amount", "learner_amount", "asset"}
SETTLED_SQL = """
SELECT * FROM settlements FINAL
WHERE contract = {contract:String} AND chain_id = {chain_id:UInt64}
"""
COMPLETED_SQL = "SELECT * FROM course_completed FINAL WHERE enrollment_key IN {keys:Array(String)}"
SCORES_SQL = "SELECT * FROM completion_scores FINAL WHERE enrollment_key IN {keys:Array(String)}"


@dataclass
class Report:
    """One reconciliation: counts by outcome and every discrepancy, for a person to act on."""

    chain_id: int
    contract: str
    period_from: datetime | None
    period_to: datetime | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: Counter[str] = field(default_factory=Counter)
    details: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome_: str, what: str, **facts: Any) -> None:
        self.counts[outcome_] += 1
        self.details.append({"outcome": outcome_, "what": what, **facts})

    @property
    def ok(self) -> bool:
        return not any(v for k, v in self.counts.items() if k != "matched")

    def row(self) -> dict[str, Any]:
        return {
            "run_id": uuid.uuid4(),
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC),
            "period_from": self.period_from,
            "period_to": self.period_to,
            "chain_id": self.chain_id,
            "contract": self.contract,
            **{k: self.counts[k] for k in COUNTS},
            "ok": self.ok,
            "details": self.details,
        }

    def render(self) -> str:
        head = ", ".join(f"{k} {self.counts[k]}" for k in COUNTS)
        lines = [f"reconcile {self.contract} on chain {self.chain_id}: {head}"]
        lines += [f"  {d['outcome']}: {d['what']}" for d in self.details[:50]]
        if len(self.details) > 50:
            lines.append(f"  … and {len(self.details) - 50} more (all in reconciliations.details)")
        lines.append("ok: no discrepancy" if self.ok else "NOT OK: discrepancies above")
        return "\n".join(lines)


def _in(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def _wire(receipt: SettlementReceipt) -> dict[str, Any]:
    return receipt.model_dump(mode="json")


class Reconciler:
    def __init__(
        self,
        w3: Web3,
        escrow_address: str,
        start_block: int,
        confirmations: int,
        bootstrap: str,
        receipts_topic: str,
        clickhouse: Client,
        state_dir: Path,
        settle_delay_s: float,
        overdue_s: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.escrow = escrow_at(w3, escrow_address)
        self.start_block = start_block
        self.confirmations = confirmations
        self.bootstrap = bootstrap
        self.topic = receipts_topic
        self.ch = clickhouse
        self.state_dir = state_dir
        self.settle_delay_ms = int(settle_delay_s * 1000)
        self.overdue_ms = int(overdue_s * 1000)

    def run(self, start: datetime | None = None, end: datetime | None = None) -> Report:
        chain_id = int(self.w3.eth.chain_id)
        report = Report(chain_id, self.escrow.address, start, end)
        safe = int(self.w3.eth.block_number) - self.confirmations
        decoder = LogDecoder(self.w3, self.escrow)
        entries = self.w3.eth.get_logs(
            {"address": self.escrow.address, "fromBlock": self.start_block, "toBlock": safe}
        )
        every = [r for e in entries if (r := decoder.decode(e)) is not None]
        on_chain = {str(r.receipt_id): r for r in every if _in(r.block_time, start, end)}
        in_topic = self._against_records(
            report, on_chain, self._topic(), "settlement.receipts", start, end
        )
        in_table = self._against_records(
            report, on_chain, self._clickhouse(), "the settlements table", start, end
        )
        report.counts["matched"] = len(in_topic & in_table)
        self._reorgs(report, chain_id, start, end)
        view = EscrowView(self.w3, self.escrow.address, self.start_block)
        view.refresh()
        self._settlements(report, on_chain, view)
        self._overdue(report, view, start, end)
        self._balances(report, every, safe)
        write_reconciliation(self.ch, report.row())
        return report

    # --- the records against the chain ---------------------------------------------------------

    def _topic(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for record in read_to_end(self.bootstrap, [self.topic]):
            if record.value is None:
                continue
            raw = json.loads(record.value)
            if raw.get("contract", "").lower() == self.escrow.address.lower():
                receipt = SettlementReceipt.model_validate(raw, strict=False)
                out[str(receipt.receipt_id)] = _wire(receipt)  # the last one published wins
        return out

    def _clickhouse(self) -> dict[str, dict[str, Any]]:
        result = self.ch.query(
            SETTLED_SQL,
            parameters={"contract": self.escrow.address, "chain_id": self.w3.eth.chain_id},
        )
        out = {}
        for row in result.named_results():
            fields = {k: v for k, v in row.items() if not k.startswith("_")}
            receipt = SettlementReceipt.model_validate(fields, strict=False)
            out[str(receipt.receipt_id)] = _wire(receipt)
        return out

    def _against_records(
        self,
        report: Report,
        on_chain: dict[str, SettlementReceipt],
        records: dict[str, dict[str, Any]],
        where: str,
        start: datetime | None,
        end: datetime | None,
    ) -> set[str]:
        """Compares; returns the ids that ``records`` holds exactly as the chain does."""
        same: set[str] = set()
        for rid, receipt in on_chain.items():
            record = records.get(rid)
            if record is None:
                report.add(
                    "missing_off_chain",
                    f"{receipt.kind} log {receipt.tx_hash}#{receipt.log_index} is not in {where}",
                    receipt_id=rid,
                )
                continue
            want = _wire(receipt)
            differs = [k for k in COMPARED if record.get(k) != want.get(k)]
            if not differs:
                same.add(rid)
                continue
            kind = "amount_mismatches" if MONEY & set(differs) else "metric_mismatches"
            if {"block_hash", "block_number"} & set(differs) and not MONEY & set(differs):
                kind = "reorged_blocks"
            report.add(
                kind,
                f"{where} differs from the chain in {differs} for "
                f"{receipt.kind} {receipt.tx_hash}#{receipt.log_index}",
                receipt_id=rid,
                chain={k: want.get(k) for k in differs},
                record={k: record.get(k) for k in differs},
            )
        for rid, record in records.items():
            at = datetime.fromisoformat(record["block_time"].replace("Z", "+00:00"))
            if rid in on_chain or not _in(at, start, end):
                continue
            if record["block_number"] > int(self.w3.eth.block_number) - self.confirmations:
                continue  # not behind the depth yet
            report.add(
                "missing_on_chain",
                f"{where} holds {record['kind']} "
                f"{record['tx_hash']}#{record['log_index']} in block "
                f"{record['block_number']} ({record['block_hash']}), which the chain "
                "does not have",
                receipt_id=rid,
            )
        return same

    def _reorgs(
        self, report: Report, chain_id: int, start: datetime | None, end: datetime | None
    ) -> None:
        """The deep reorganisations the indexer recorded, detected within the period."""
        path = self.state_dir / f"indexer-{chain_id}-{self.escrow.address.lower()}.json"
        if path.exists():
            for reorg in IndexerState.parse(path.read_text()).reorgs:
                if not _in(datetime.fromisoformat(reorg.detected_at), start, end):
                    continue
                report.add(
                    "reorged_blocks",
                    f"block {reorg.number} was {reorg.published_hash} "
                    f"when published, is {reorg.canonical_hash} (detected "
                    f"{reorg.detected_at}, deeper than the confirmation depth)",
                )

    # --- the chain against the completion records and the formula -----------------------------

    def _settlements(
        self, report: Report, on_chain: dict[str, SettlementReceipt], view: EscrowView
    ) -> None:
        settled = [r for r in on_chain.values() if r.kind == "settled"]
        keys = sorted({r.enrollment_key for r in settled if r.enrollment_key})
        completed = self._by_key(COMPLETED_SQL, CourseCompleted, "completion_id", keys)
        scores = self._by_key(SCORES_SQL, CompletionScore, "score_id", keys)
        for r in settled:
            escrow = (
                view.escrows.get(bytes.fromhex(r.enrollment_key[2:])) if r.enrollment_key else None
            )
            if escrow is None:
                report.add("missing_on_chain", f"settled {r.enrollment_key} has no deposit log")
                continue
            terms = view.terms(escrow.terms_id)
            self._formula(report, r, escrow, terms)
            expected = outcome(
                escrow,
                terms,
                completed.get(r.enrollment_key),
                scores.get(r.enrollment_key),
                2**62,
                self.settle_delay_ms,
            )
            if expected is None:
                continue
            got = (bool(r.counted), r.score_bps if not r.counted else None)
            want = (expected.complete, expected.score_bps if not expected.complete else None)
            if got != want:
                report.add(
                    "metric_mismatches",
                    f"{r.enrollment_key} settled as "
                    f"counted={r.counted} score={r.score_bps} bps, the completion "
                    f"records say counted={expected.complete} score="
                    f"{expected.score_bps} bps",
                    tx=r.tx_hash,
                )

    def _by_key(self, sql: str, model: Any, id_field: str, keys: list[str]) -> dict[str, Any]:
        """The completion table's rows for ``keys`` as records, by enrollment key (the table
        holds the learner's pseudonym, not the id the model wants: a placeholder stands in)."""
        if not keys:
            return {}
        return {
            row["enrollment_key"]: model.model_validate(
                {
                    **row,
                    "enrollment_id": str(row["enrollment_id"]),
                    id_field: str(row[id_field]),
                    "learner_id": "x",
                },
                strict=False,
            )
            for row in self.ch.query(sql, parameters={"keys": keys}).named_results()
        }

    @staticmethod
    def _formula(report: Report, r: SettlementReceipt, escrow: OnChain, terms: Any) -> None:
        t = formula.Terms(
            tuple(formula.Tranche(w, b) for w, b in terms.tranches),
            terms.linear,
            terms.min_score_bps,
            terms.creator_share_bps,
        )
        split = formula.split(escrow.amount, r.earned_bps or 0, t.creator_share_bps)
        got = (r.creator_amount, r.platform_amount, r.learner_amount)
        if got != (split.creator, split.platform, split.learner):
            report.add(
                "amount_mismatches",
                f"settled {r.enrollment_key} paid {got}, the formula "
                f"gives {(split.creator, split.platform, split.learner)} for a deposit "
                f"of {escrow.amount}",
                tx=r.tx_hash,
            )

    def _overdue(
        self, report: Report, view: EscrowView, start: datetime | None, end: datetime | None
    ) -> None:
        chain_ms = int(self.w3.eth.get_block("latest")["timestamp"]) * 1000
        for escrow in view.open_escrows():
            due_ms = escrow.deadline_ms + self.settle_delay_ms + self.overdue_ms
            deadline = datetime.fromtimestamp(escrow.deadline_ms / 1000, UTC)
            if chain_ms > due_ms and _in(deadline, start, end):
                report.add(
                    "missing_on_chain",
                    f"escrow 0x{escrow.key.hex()} is still open "
                    f"{(chain_ms - escrow.deadline_ms) // 1000} s after its deadline "
                    f"({deadline.isoformat()}): the oracle has not settled it",
                )

    def _balances(self, report: Report, every: list[SettlementReceipt], safe: int) -> None:
        held: dict[str, int] = defaultdict(int)
        for r in every:
            if r.kind == "deposited" and r.asset and r.amount is not None:
                held[r.asset] += r.amount
            elif r.kind == "withdrawn" and r.asset and r.amount is not None:
                held[r.asset] -= r.amount
        holder = self.escrow.address
        for asset, amount in held.items():  # at the block the logs were read to
            if asset == "ETH":
                balance = int(self.w3.eth.get_balance(holder, block_identifier=safe))
            else:
                coin = token_at(self.w3, asset)
                balance = int(coin.functions.balanceOf(holder).call(block_identifier=safe))
            if balance != amount:
                report.add(
                    "amount_mismatches",
                    f"the escrow holds {balance} {asset} base units "
                    f"at block {safe}; deposits minus withdrawals are {amount}",
                )


__all__ = ["ETH", "Reconciler", "Report"]
