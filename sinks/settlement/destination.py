"""The settlement sink (``learnstream sinks settlement``): a destination on the shared sink
runner that turns the catalogue, pay-by-completion enrollments and completion records into
escrow transactions (docs/settlement.md).

- **Registrations and deposits** are sent as records arrive, each after the previous step is
  mined (a deposit needs its course registered; a settlement its deposit).
- **Settlements** are sent in batches on completion, and at deadline + settle delay by wall
  clock (``on_tick``), with the latest score received by the deadline.
- **Never twice, never reverting.** Every transaction goes through the one :class:`Sender`
  (intents and signed bytes stored before broadcast, a nonce ledger, the same bytes on retry,
  replacement when stuck). Intent ids are derived from what they cover, so a replayed record
  finds its intent instead of sending another. Escrows come from the chain's own logs
  (:class:`EscrowView`), and the contract's state is read in one batch right before each
  send: nothing is sent for an escrow that is already deposited, settled or expired.
- **Ignored.** A record for an enrollment already settled or expired changes no payout; it is
  counted (``status()['ignored']``) and logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from web3 import Web3
from web3.exceptions import Web3Exception

from schemas.derived import CompletionScore, CourseCompleted
from schemas.events import Enrollment
from settlement.contract import ETH, ChainError, course_key, enrollment_key, terms_of, token_at
from settlement.escrows import EscrowView
from settlement.sender import Sender
from sinks.runner import Batch, Destination, Partition, Record, Rejection, Written
from sinks.settlement.book import Book, DepositPlan, Outcome, Refused, plan_deposit
from streams.topics import COMPLETION_SCORES, COURSE_CATALOG, COURSE_COMPLETED, LEARNER_ENROLLMENTS

log = logging.getLogger(__name__)
MAX_UINT256 = 2**256 - 1
IN_FLIGHT = ("pending", "mined")


def _digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()[:40]


class SettlementDestination(Destination):
    name = "settlement-sink"

    def __init__(
        self,
        w3: Web3,
        sender: Sender,
        view: EscrowView,
        *,
        settle_delay_s: float,
        batch_size: int = 100,
        tick_interval_s: float = 1.0,
        mined_timeout_s: float = 120.0,
        names: Mapping[str, str] | None = None,
    ) -> None:
        """``names`` renames topics (catalogue name -> actual), for tests and prefixes."""
        rename = dict(names or {})
        self.catalog, self.enrollments, self.completed, self.scores = (
            rename.get(t.name, t.name)
            for t in (COURSE_CATALOG, LEARNER_ENROLLMENTS, COURSE_COMPLETED, COMPLETION_SCORES)
        )
        self.topics = (self.catalog, self.enrollments, self.completed, self.scores)
        self.read_whole = (self.catalog, self.completed, self.scores)
        self.w3 = w3
        self.sender = sender
        self.view = view
        self.book = Book(settle_delay_s=settle_delay_s)
        self.batch_size = batch_size
        self.tick_interval_s = tick_interval_s
        self.mined_timeout_s = mined_timeout_s
        self.blocked: dict[bytes, str] = {}  # keys whose transaction reverted: never resent
        self.counts = {"registered": 0, "deposited": 0, "settled": 0, "failed": 0}
        self._started = False
        self._last_poll = 0.0
        self._records: dict[bytes, Record] = {}  # the enrollment record of each waiting plan
        self._refused: list[Rejection] = []  # plans the chain would not take: to the DLQ
        self._allowed: dict[str, bool] = {}

    # --- the runner's hooks ----------------------------------------------------------------

    def load(self, records: Sequence[Record]) -> None:
        for record in records:
            refused = self._take(record)
            if refused is not None:  # read again at start: dead-lettered when it first came
                log.warning("%s[%d]@%d ignored: %s", record.topic, record.partition,
                            record.offset, refused.detail)  # fmt: skip
        self._start()

    def resume(self, partitions: Sequence[Partition]) -> Mapping[Partition, int | None]:
        # The chain is the state: committed offsets say where to read, and a record read again
        # finds its escrow already deposited or settled.
        return dict.fromkeys(partitions)

    def write_batch(self, batch: Batch) -> Written:
        self._start()
        written = Written()
        for record in batch.records:
            rejection = self._take(record)
            if rejection is not None:
                written.rejected.append(rejection)
        self._act(datetime.now(UTC))
        written.rejected.extend(self._refused)
        self._refused.clear()
        written.counts = {"escrow": len(batch.records) - len(written.rejected)}
        return written

    def on_tick(self, now: datetime) -> None:
        self._start()
        if time.monotonic() - self._last_poll >= self.sender.receipt_poll_s:
            self._poll()  # receipts, replacements, the chain's new logs: at the sender's pace
            self._last_poll = time.monotonic()
        self._act(now)

    def status(self) -> dict[str, Any]:
        in_flight = self.sender.intents(*IN_FLIGHT)
        return {
            **self.counts,
            "ignored": self.book.ignored,
            "open_escrows": len(self.view.open_escrows()),
            "waiting_deposit": len(self.book.to_deposit),
            "in_flight": len(in_flight),
            "blocked": len(self.blocked),
            "next_nonce": self.sender.next_nonce,
            "chain_block": self.view.next_block - 1,
        }

    def close(self) -> None:
        self.sender.close()

    # --- records ---------------------------------------------------------------------------

    def _take(self, record: Record) -> Rejection | None:
        if record.value is None:
            return None  # a tombstone of a compacted topic
        if record.topic == self.catalog:
            self.book.take_course(record.value)
        elif record.topic == self.enrollments:
            return self._take_enrollment(record)
        elif record.topic in (self.completed, self.scores):
            model = CourseCompleted if record.topic == self.completed else CompletionScore
            try:
                parsed = model.model_validate_json(record.value)
            except ValidationError as exc:
                return Rejection(record, "invalid", f"not a {model.__name__}: {exc}")
            take = self.book.take_completed if model is CourseCompleted else self.book.take_score
            self._ignore_if_closed(take(parsed, record.offset))
        return None

    def _ignore_if_closed(self, key: bytes) -> None:
        escrow = self.view.escrows.get(key)
        if escrow is not None and escrow.state != "open":
            self.book.ignored += 1
            log.info("escrow 0x%s is %s already: record ignored", key.hex(), escrow.state)

    def _take_enrollment(self, record: Record) -> Rejection | None:
        try:
            enrollment = Enrollment.model_validate_json(record.value)  # type: ignore[arg-type]
        except ValidationError as exc:
            return Rejection(record, "invalid", f"not an enrollment: {exc.errors()[0]['msg']}")
        if enrollment.payment_model != "pay_by_completion":
            return None
        key = enrollment_key(enrollment.event_id)
        if key in self.view.escrows:
            return None  # deposited already: a record read again (never refused twice)
        try:
            plan = plan_deposit(enrollment, self.book.courses.get(enrollment.course_id))
            if not self._asset_allowed(plan.asset):
                raise Refused(f"the escrow does not accept asset {plan.asset}")
        except Refused as exc:
            return Rejection(record, "invalid", f"settlement refused the enrollment: {exc}")
        self.book.to_deposit[plan.key] = plan
        self._records[plan.key] = record
        return None

    def _asset_allowed(self, asset: str) -> bool:
        if asset not in self._allowed:
            address = ETH if asset == "ETH" else asset
            self._allowed[asset] = bool(self.view.contract.functions.assetAllowed(address).call())
        return self._allowed[asset]

    # --- acting ----------------------------------------------------------------------------

    def _start(self) -> None:
        """Once: send again what a previous run signed and did not see mined, then read the
        chain's logs (the open escrows) before sending anything new."""
        if self._started:
            return
        self.sender.rebroadcast()
        for intent in self.sender.intents("failed"):  # held back, across restarts too
            self._hold(intent)
        self.view.refresh()
        self._started = True

    def _hold(self, intent: Any, detail: str = "") -> None:
        """A transaction that reverted: its escrows are held back (shown in ``status()`` and by
        `settlement show`), never resent blindly."""
        for key in intent.meta.get("keys", []):
            self.blocked[bytes.fromhex(key)] = intent.intent_id
        log.error("transaction %s of intent %s reverted%s: its escrows are held back (see "
                  "`learnstream settlement show`)", intent.tx_hash, intent.intent_id,
                  f" ({detail})" if detail else "")  # fmt: skip

    def _changes(self, changes: list[Any]) -> None:
        for change in changes:
            if change.event == "failed":
                self.counts["failed"] += 1
                self._hold(change.intent, change.detail)

    def _poll(self) -> None:
        self._changes(self.sender.poll())
        self.view.refresh()

    def _act(self, now: datetime) -> None:
        self._register()
        self._deposit()
        self._settle(now)

    def _in_flight(self, kind: str) -> set[bytes]:
        return {
            bytes.fromhex(k)
            for intent in self.sender.intents(*IN_FLIGHT)
            if intent.kind == kind
            for k in intent.meta.get("keys", [])
        }

    def _wait_mined(self, intent_ids: list[str]) -> None:
        deadline = time.monotonic() + self.mined_timeout_s
        while intent_ids:
            self._changes(self.sender.poll())
            intent_ids = [
                i
                for i in intent_ids
                if self.sender.get(i).status == "pending"  # type: ignore[union-attr]
            ]
            if not intent_ids:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not mined after {self.mined_timeout_s} s: {intent_ids}")
            time.sleep(min(0.2, self.sender.receipt_poll_s))
        self.view.refresh()

    def _register(self) -> None:
        """Registers (or re-registers, when its terms changed) every catalogue course that an
        enrollment waiting for its deposit needs."""
        needed = {p.course_id for p in self.book.to_deposit.values()}
        sent = []
        for course_id in sorted(needed):
            course = self.book.courses[course_id]
            terms = terms_of(course)
            digest = Web3.keccak(self._encode_terms(terms))
            ckey = course_key(course_id)
            functions = self.view.contract.functions  # at the latest block, not the deep view
            current = int(functions.courseTerms(ckey).call())
            if current and bytes(functions.termsHash(current).call()) == digest:
                continue
            data = self.view.contract.encode_abi("registerCourse", args=[ckey, terms])
            sent.append(self._send("register", data, {"course_id": course_id}))
            self.counts["registered"] += 1
        self._wait_mined(sent)

    @staticmethod
    def _encode_terms(terms: tuple[Any, ...]) -> bytes:
        from eth_abi import encode

        return encode(["(address,uint16,uint16,bool,uint8,uint32,uint32,(uint32,uint16)[])"],
                      [terms])  # fmt: skip

    def _deposit(self) -> None:
        """Deposits every waiting plan whose course is registered (at the latest block: the
        registration was just mined), in batches. A batch the chain would refuse is split
        until the refused enrollments are found; they go to the DLQ with the reason, and
        nothing else waits for them."""
        for key in [k for k in self.book.to_deposit if k in self.view.escrows]:
            del self.book.to_deposit[key]  # deposited (by us, earlier)
            self._records.pop(key, None)
        if not self.book.to_deposit:
            return
        flying = self._in_flight("deposit")
        plans = [p for k, p in self.book.to_deposit.items()
                 if k not in flying and k not in self.blocked]  # fmt: skip
        if not plans:
            return
        registered = {
            cid: bool(self.view.contract.functions.courseTerms(course_key(cid)).call())
            for cid in {p.course_id for p in plans}
        }
        plans = [p for p in plans if registered[p.course_id]]
        states = self.view.states([p.key for p in plans])
        plans = [p for p in plans if states[p.key] == "none"]  # others: on chain already
        sent: list[str] = []
        for start in range(0, len(plans), self.batch_size):
            self._deposit_chunk(plans[start : start + self.batch_size], sent)
        self._wait_mined(sent)

    def _deposit_chunk(self, chunk: list[DepositPlan], sent: list[str]) -> None:
        try:
            value = self._fund(chunk)
            data = self.view.contract.encode_abi("deposit", args=[[p.struct() for p in chunk]])
            sent.append(self._send("deposit", data, {"keys": [p.key.hex() for p in chunk]}, value))
            self.counts["deposited"] += len(chunk)
        except (ChainError, ValueError, Web3Exception) as exc:
            if len(chunk) > 1:
                half = len(chunk) // 2
                self._deposit_chunk(chunk[:half], sent)
                self._deposit_chunk(chunk[half:], sent)
                return
            self._refuse(chunk[0], f"the escrow would not take the deposit: {exc}")

    def _refuse(self, plan: DepositPlan, reason: str) -> None:
        self.book.to_deposit.pop(plan.key, None)
        record = self._records.pop(plan.key, None)
        log.error("enrollment %s not deposited: %s", plan.enrollment_id, reason)
        if record is not None:
            self._refused.append(Rejection(record, "invalid", reason))

    def _fund(self, plans: list[DepositPlan]) -> int:
        """The ether to send with a deposit batch, after checking the wallet holds it; token
        balances are checked and allowances raised as needed."""
        owner = self.sender.address
        eth = sum(p.amount for p in plans if p.asset == "ETH")
        if eth and eth > int(self.w3.eth.get_balance(owner)):
            raise ChainError(f"the escrow wallet {owner} holds less than the {eth} wei needed")
        tokens: dict[str, int] = {}
        for p in plans:
            if p.asset != "ETH":
                tokens[p.asset] = tokens.get(p.asset, 0) + p.amount
        for token, amount in tokens.items():
            coin = token_at(self.w3, token)
            held = int(coin.functions.balanceOf(owner).call())
            if held < amount:
                raise ChainError(f"the escrow wallet holds {held} of {token}, {amount} needed")
            if coin.functions.allowance(owner, self.view.contract.address).call() < amount:
                data = coin.encode_abi("approve", args=[self.view.contract.address, MAX_UINT256])
                self._wait_mined([self._send("approve", data, {"token": token}, to=token)])
        return eth

    def _settle(self, now: datetime) -> None:
        open_ = self.view.open_escrows()
        if not open_:
            return
        flying = self._in_flight("settle")
        candidates = [e for e in open_ if e.key not in flying and e.key not in self.blocked]
        terms = {e.terms_id: self.view.terms(e.terms_id) for e in candidates}
        due: list[Outcome] = self.book.due(candidates, terms, now)
        # Without a completion the contract settles only once its own clock passed the
        # deadline; wait until the latest block did (the transaction lands later still), so
        # that the gas estimate runs the settling path, not the cheaper skipping one.
        if any(not o.complete for o in due):
            chain_ms = int(self.w3.eth.get_block("latest")["timestamp"]) * 1000
            deadlines = {e.key: e.deadline_ms for e in candidates}
            due = [o for o in due if o.complete or chain_ms >= deadlines[o.key]]
        for start in range(0, len(due), self.batch_size):
            chunk = due[start : start + self.batch_size]
            states = self.view.states([o.key for o in chunk])
            chunk = [o for o in chunk if states[o.key] == "open"]
            if not chunk:
                continue
            data = self.view.contract.encode_abi("settle", args=[[o.struct() for o in chunk]])
            self._send("settle", data, {"keys": [o.key.hex() for o in chunk]})
            self.counts["settled"] += len(chunk)

    def _send(
        self, kind: str, data: str, meta: dict[str, Any], value: int = 0, to: str | None = None
    ) -> str:
        """Submits a call under an id derived from its bytes: the same decision replayed finds
        its intent and sends nothing. Only when that intent is final and its work still
        undone (say, a settlement the chain skipped as not yet due) does a new one go out."""
        base = f"{kind}:{_digest(f'{to or self.view.contract.address}:{value}:{data}')}"
        for n in range(1_000):
            intent_id = base if n == 0 else f"{base}:{n}"
            existing = self.sender.get(intent_id)
            if existing is None or not existing.done:
                self.sender.submit(intent_id, to or self.view.contract.address, data,
                                   value=value, meta=meta)  # fmt: skip
                return intent_id
        raise RuntimeError(f"{base} was sent 1,000 times: something is wrong")


__all__ = ["ETH", "SettlementDestination"]
