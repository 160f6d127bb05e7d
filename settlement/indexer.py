"""The receipts indexer (``learnstream settlement index``): every log of the escrow contract,
decoded, published once to ``settlement.receipts`` when its block is behind the confirmation
depth.

- **Behind the depth.** Only blocks at least ``confirmations`` below the head are read, so a
  reorganisation shallower than the depth never reaches what is published.
- **Keyed by block hash.** Each range's logs must all come from the canonical block at their
  height (checked against ``eth_getBlockByNumber``), or the range is read again.
- **Once.** Progress (the next block, the hashes of published blocks, and the topic's end
  offsets at that moment) is saved in the state folder after each publish. After a crash
  between publish and save, the records published since the saved offsets are read back and
  not published again. Ids are UUIDv5 of (tx hash, log index).
- **Deeper reorganisations** are detected: a published block whose hash is no longer the
  canonical one at its height. The indexer logs it, records it in its state (``reconcile``
  reports it), and indexes the new canonical blocks from that height again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from schemas.settlement import SettlementReceipt, receipt_id
from settlement.contract import ETH, METRICS, artifact, escrow_at
from streams.kafka import end_offsets, produce_all, read_to_end

log = logging.getLogger(__name__)

KINDS = {
    "CourseRegistered": "course_registered",
    "Deposited": "deposited",
    "Settled": "settled",
    "SettlementSkipped": "settlement_skipped",
    "Expired": "expired",
    "Withdrawn": "withdrawn",
    "TreasuryChanged": "treasury_changed",
    "AssetAllowed": "asset_allowed",
    "Paused": "paused",
    "Unpaused": "unpaused",
    "RoleGranted": "role_granted",
    "RoleRevoked": "role_revoked",
    "RoleAdminChanged": "role_admin_changed",
}
SKIP_REASONS = {1: "not_open", 2: "not_due", 3: "bad_score"}
METRIC_NAMES = {v: k for k, v in METRICS.items()}


@dataclass(frozen=True)
class Reorg:
    """A published block that is no longer canonical: deeper than the confirmation depth."""

    number: int
    published_hash: str
    canonical_hash: str
    detected_at: str


@dataclass
class IndexerState:
    next_block: int
    published: list[tuple[int, str]] = field(default_factory=list)  # (number, hash), ascending
    offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> end offset
    reorgs: list[Reorg] = field(default_factory=list)

    def dump(self) -> str:
        return json.dumps(
            {
                "next_block": self.next_block,
                "published": self.published,
                "offsets": self.offsets,
                "reorgs": [r.__dict__ for r in self.reorgs],
            },
            indent=1,
        )

    @classmethod
    def parse(cls, text: str) -> IndexerState:
        raw = json.loads(text)
        return cls(
            next_block=raw["next_block"],
            published=[(n, h) for n, h in raw["published"]],
            offsets=raw["offsets"],
            reorgs=[Reorg(**r) for r in raw["reorgs"]],
        )


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


class LogDecoder:
    """The escrow's raw logs as :class:`SettlementReceipt` (the indexer's and the reconcile
    tool's one reading of them)."""

    def __init__(self, w3: Web3, escrow: Contract) -> None:
        self.w3 = w3
        self.escrow = escrow
        self.chain_id = int(w3.eth.chain_id)
        self._events = {
            _hex(self.w3.keccak(text=_signature(item))): getattr(self.escrow.events, item["name"])()
            for item in artifact("CourseEscrow")["abi"]
            if item["type"] == "event"
        }
        self._decimals: dict[str, int] = {ETH: 18}
        self._block_times: dict[int, int] = {}

    def forget_blocks(self) -> None:
        self._block_times.clear()

    def _block_time(self, number: int) -> datetime:
        if number not in self._block_times:
            self._block_times[number] = int(self.w3.eth.get_block(number)["timestamp"])
        return datetime.fromtimestamp(self._block_times[number], UTC)

    def _asset(self, address: str) -> tuple[str, int]:
        address = to_checksum_address(address)
        if address not in self._decimals:
            token = self.w3.eth.contract(address=address, abi=artifact("TestStablecoin")["abi"])
            self._decimals[address] = int(token.functions.decimals().call())
        return ("ETH" if address == ETH else address), self._decimals[address]

    def decode(self, entry: Any) -> SettlementReceipt | None:
        """One raw log as a receipt (None for a log this ABI does not know)."""
        event = self._events.get(_hex(entry["topics"][0]))
        if event is None:
            log.warning("unknown log topic %s in tx %s", _hex(entry["topics"][0]),
                        _hex(entry["transactionHash"]))  # fmt: skip
            return None
        decoded = event.process_log(entry)
        args = decoded["args"]
        tx_hash, index = _hex(entry["transactionHash"]), int(entry["logIndex"])
        fields: dict[str, Any] = {
            "receipt_id": receipt_id(tx_hash, index),
            "kind": KINDS[decoded["event"]],
            "chain_id": self.chain_id,
            "contract": self.escrow.address,
            "tx_hash": tx_hash,
            "block_number": int(entry["blockNumber"]),
            "block_hash": _hex(entry["blockHash"]),
            "block_time": self._block_time(int(entry["blockNumber"])),
            "log_index": index,
        }
        fields.update(self._fields(decoded["event"], args))
        return SettlementReceipt.model_validate(fields, strict=False)

    def _fields(self, name: str, a: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "key" in a:
            out["enrollment_key"] = _hex(a["key"])
        if "asset" in a and name != "AssetAllowed":
            out["asset"], out["decimals"] = self._asset(a["asset"])
        if name == "CourseRegistered":
            out.update(course_key=_hex(a["course"]), terms_id=a["termsId"], creator=a["creator"],
                       detail=f"creator share {a['creatorShareBps']} bps, terms "
                              f"{_hex(a['termsHash'])}")  # fmt: skip
        elif name == "Deposited":
            out.update(course_key=_hex(a["course"]), terms_id=a["termsId"], amount=a["amount"],
                       refund_to=a["refundTo"], enrolled_at=_ms(a["enrolledAtMs"]),
                       deadline_at=_ms(a["deadlineMs"]))  # fmt: skip
        elif name == "Settled":
            out.update(metric=METRIC_NAMES[a["metric"]], counted=a["counted"],
                       score_bps=a["scoreBps"], earned_bps=a["earnedBps"],
                       creator_amount=a["creatorAmount"], platform_amount=a["platformAmount"],
                       learner_amount=a["learnerAmount"])  # fmt: skip
        elif name == "SettlementSkipped":
            out["reason"] = SKIP_REASONS.get(a["reason"], "not_open")
        elif name == "Expired":
            out.update(amount=a["learnerAmount"], learner_amount=a["learnerAmount"])
        elif name == "Withdrawn":
            out.update(payee=a["payee"], amount=a["amount"])
        elif name == "TreasuryChanged":
            out["detail"] = f"{a['previous']} -> {a['current']}"
        elif name == "AssetAllowed":
            out["detail"] = f"{a['asset']} allowed={a['allowed']}"
        elif name in ("Paused", "Unpaused"):
            out["detail"] = f"by {a['account']}"
        elif name.startswith("Role"):
            out["detail"] = ", ".join(f"{k}={_hex(v) if isinstance(v, bytes) else v}"
                                      for k, v in a.items())  # fmt: skip
        return out


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"


class Indexer:
    """Reads the escrow's logs behind the confirmation depth and publishes each once."""

    def __init__(
        self,
        w3: Web3,
        escrow_address: str,
        bootstrap: str,
        topic: str,
        state_dir: Path,
        *,
        confirmations: int,
        start_block: int,
        batch_blocks: int = 2_000,
        reorg_window: int = 256,
        producer: Producer | None = None,
    ) -> None:
        self.w3 = w3
        self.escrow: Contract = escrow_at(w3, escrow_address)
        self.bootstrap = bootstrap
        self.topic = topic
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.reorg_window = reorg_window
        self.chain_id = w3.eth.chain_id
        self.path = state_dir / f"indexer-{self.chain_id}-{self.escrow.address.lower()}.json"
        self.producer = producer or Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        self.decoder = LogDecoder(w3, self.escrow)
        self.state = self._load(start_block)
        self._seen = self._published_since_save()

    # --- state -----------------------------------------------------------------------------

    def _load(self, start_block: int) -> IndexerState:
        if self.path.exists():
            return IndexerState.parse(self.path.read_text())
        return IndexerState(next_block=start_block)

    def _save(self) -> None:
        self.state.offsets = {
            f"{t}/{p}": o for (t, p), o in end_offsets(self.bootstrap, [self.topic]).items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.state.dump())
        tmp.replace(self.path)

    def _published_since_save(self) -> set[tuple[str, str]]:
        """(receipt id, block hash) of what was published after the last save (a crash
        between publish and save), so that it is not published again."""
        since = {
            (key.rsplit("/", 1)[0], int(key.rsplit("/", 1)[1])): offset
            for key, offset in self.state.offsets.items()
        }
        seen: set[tuple[str, str]] = set()
        for record in read_to_end(self.bootstrap, [self.topic], since=since):
            if record.value is None:
                continue
            raw = json.loads(record.value)
            if raw.get("contract", "").lower() == self.escrow.address.lower():
                seen.add((raw["receipt_id"], raw["block_hash"]))
        return seen

    @staticmethod
    def key_of(receipt: SettlementReceipt) -> str:
        return receipt.enrollment_key or receipt.payee or receipt.course_key or receipt.contract

    # --- one pass --------------------------------------------------------------------------

    def check_reorgs(self, head: int) -> list[Reorg]:
        """Published blocks (within the window) whose hash is no longer canonical; rewinds to
        the lowest so that the new canonical blocks are indexed."""
        found: list[Reorg] = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for number, published in self.state.published:
            if number < head - self.confirmations - self.reorg_window:
                continue
            canonical = _hex(self.w3.eth.get_block(number)["hash"])
            if canonical != published:
                found.append(Reorg(number, published, canonical, now))
        if found:
            lowest = min(r.number for r in found)
            for reorg in found:
                log.error(
                    "reorganisation deeper than %d confirmations: block %d was %s, is now %s",
                    self.confirmations, reorg.number, reorg.published_hash,
                    reorg.canonical_hash,
                )  # fmt: skip
            self.state.reorgs.extend(found)
            self.state.published = [(n, h) for n, h in self.state.published if n < lowest]
            self.state.next_block = min(self.state.next_block, lowest)
            self.decoder.forget_blocks()
            self._save()
        return found

    def step(self) -> int:
        """Index every block now behind the depth; returns how many receipts were published."""
        head = self.w3.eth.block_number
        self.check_reorgs(head)
        safe = head - self.confirmations
        published = 0
        while self.state.next_block <= safe:
            start = self.state.next_block
            end = min(start + self.batch_blocks - 1, safe)
            receipts, blocks = self._read_range(start, end)
            fresh = [r for r in receipts if (str(r.receipt_id), r.block_hash) not in self._seen]
            if fresh:
                produce_all(self.producer, self.topic,
                            [(self.key_of(r), r.model_dump_json()) for r in fresh])  # fmt: skip
            self._seen.update((str(r.receipt_id), r.block_hash) for r in fresh)
            published += len(fresh)
            self.state.published.extend(sorted(blocks.items()))
            self.state.published = self.state.published[-4 * self.reorg_window :]
            self.state.next_block = end + 1
            self._save()
        return published

    def _read_range(self, start: int, end: int) -> tuple[list[SettlementReceipt], dict[int, str]]:
        for _attempt in range(5):
            entries = self.w3.eth.get_logs(
                {"address": self.escrow.address, "fromBlock": start, "toBlock": end}
            )
            blocks: dict[int, str] = {}
            consistent = True
            for entry in entries:
                number, block_hash = int(entry["blockNumber"]), _hex(entry["blockHash"])
                if blocks.setdefault(number, block_hash) != block_hash:
                    consistent = False
            for number, block_hash in blocks.items():
                if _hex(self.w3.eth.get_block(number)["hash"]) != block_hash:
                    consistent = False
            if consistent:
                receipts = [r for e in entries if (r := self.decoder.decode(e)) is not None]
                return receipts, blocks
            log.warning("blocks %d-%d changed while reading them; reading again", start, end)
            self.decoder.forget_blocks()
            time.sleep(0.5)
        raise RuntimeError(f"blocks {start}-{end} kept changing while being read")

    def run(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Index until ``stop`` is set."""
        while not stop.is_set():
            count = self.step()
            if count:
                log.info("published %d receipts through block %d", count,
                         self.state.next_block - 1)  # fmt: skip
            stop.wait(poll_s)

    def close(self) -> None:
        self.producer.flush(30)
