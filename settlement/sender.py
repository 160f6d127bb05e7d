"""The settlement service's one sender: every transaction of the oracle account goes through
here, so that no crash, retry or restart sends a different transaction for the same intent, or
skips or repeats a nonce.

    sender = Sender.from_settings(w3, settings.chain, settings.settlement)  # reads the chain
    sender.rebroadcast()                      # after a restart: the stored bytes, unchanged
    sender.submit("deposit:<batch hash>", escrow.address,
                  escrow.encode_abi("deposit", args=[rows]), value=total, meta={"keys": keys})
    for change in sender.poll():              # from the sink's on_tick; never blocks long
        ...                                   # change.event, change.intent.status

- **Intents.** The caller names each intent, for ever (derive the id from the content).
  :meth:`Sender.submit` of a known id returns the stored intent and sends nothing; a new one
  gets the ledger's next nonce, is signed, and is committed to the store
  (:mod:`settlement.intents`, which also holds the records and errors) before broadcast.
- **Retries send the same bytes**: :meth:`Sender.rebroadcast`, and after a reorganisation.
  Only a stuck transaction (next in line and not mined ``stuck_after_s`` after it was sent) is
  replaced: same nonce and call, both fees raised by ``fee_bump_pct`` (>= 12.5 %). Every
  attempt's hash is kept; whichever is mined counts.
- **Final.** ``mined`` when an attempt is in a canonical block; ``confirmed`` (``failed`` if
  its receipt's status is 0) with ``confirmations`` blocks on top. A mined intent whose block
  leaves the chain goes back to ``pending`` and is sent again. A reorganisation deeper than
  that, after an intent is final, is for the receipts indexer to detect.
- **Restarts.** Opening reads the chain before anything is sent: receipts of open intents,
  and the account's nonce. A nonce used by a transaction this sender never signed raises
  :class:`NonceConflict`: two senders on one key is a deployment fault.

One sender per process, and one process per oracle key and chain: the store is locked, and a
:class:`Sender` is not thread-safe: use it from the thread that opened it (SQLite enforces
that), e.g. the sink runner's loop.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3 import exceptions as web3x

from schemas.errors import ChainUnreachable
from settlement import intents
from settlement.contract import ChainError, Roles, revert_reason
from settlement.intents import Attempt, Change, Intent, IntentStore
from settlement.settings import ChainSettings, SettlementSettings

log = logging.getLogger(__name__)

MIN_BUMP_PCT = 12.5
GAS_MARGIN = Fraction(6, 5)
# what nodes answer when they already have the transaction, or its nonce is already mined
_ALREADY = ("already known", "already imported", "alreadyknown", "known transaction",
            "nonce too low", "oldnonce")  # fmt: skip

P = ParamSpec("P")
R = TypeVar("R")


def _reachable(
    method: Callable[Concatenate[Sender, P], R],
) -> Callable[Concatenate[Sender, P], R]:
    """A node that does not answer raises :class:`ChainUnreachable`."""

    @functools.wraps(method)
    def wrapper(self: Sender, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (requests.ConnectionError, requests.Timeout, web3x.ProviderConnectionError) as exc:
            raise ChainUnreachable(self.rpc_url, type(exc).__name__) from exc

    return wrapper


def bump(fee: int, pct: float) -> int:
    """``fee`` raised by ``pct`` percent, rounded up, and by at least 1 wei."""
    return max(math.ceil(fee * (1 + Fraction(str(pct)) / 100)), fee + 1)


class Sender:
    """The one sender of one account on one chain. See the module's docstring."""

    @_reachable
    def __init__(
        self, w3: Web3, account: LocalAccount, state_dir: Path, *, confirmations: int = 2,
        stuck_after_s: float = 30.0, fee_bump_pct: float = MIN_BUMP_PCT,
        max_fee_gwei: float = 500.0, receipt_poll_s: float = 1.0, resync_nonce: bool = False,
    ) -> None:  # fmt: skip
        if fee_bump_pct < MIN_BUMP_PCT:
            raise ValueError(f"fee_bump_pct {fee_bump_pct} < {MIN_BUMP_PCT}: nodes refuse it")
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.confirmations = confirmations
        self.stuck_after_s = stuck_after_s
        self.fee_bump_pct = fee_bump_pct
        self.max_fee_per_gas = int(Fraction(str(max_fee_gwei)) * 10**9)
        self.receipt_poll_s = receipt_poll_s
        self.chain_id = int(w3.eth.chain_id)
        self.path = Path(state_dir) / f"sender-{self.chain_id}-{self.address}.sqlite"
        self.store = IntentStore(self.path)
        try:
            self._open(resync_nonce)
        except BaseException:
            self.store.close()
            raise

    @classmethod
    def from_settings(
        cls, w3: Web3, chain: ChainSettings, settlement: SettlementSettings, **kwargs: Any
    ) -> Sender:
        """The oracle's sender, with the settlement settings' depth, timings and fees."""
        return cls(
            w3,
            Roles.from_settings(chain, settlement).oracle,
            settlement.state_dir,
            confirmations=settlement.confirmations,
            stuck_after_s=settlement.stuck_after_s,
            fee_bump_pct=settlement.fee_bump_pct,
            max_fee_gwei=settlement.max_fee_gwei,
            receipt_poll_s=settlement.receipt_poll_s,
            **kwargs,
        )

    @property
    def rpc_url(self) -> str:
        """The node's address without credentials, path or query."""
        uri = str(getattr(self.w3.provider, "endpoint_uri", "") or "the configured node")
        parts = urlsplit(uri)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else uri

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------------

    def get(self, intent_id: str) -> Intent | None:
        return self.store.get(intent_id)

    def intents(self, *statuses: str) -> list[Intent]:
        """Stored intents in nonce order (all, or those with one of ``statuses``)."""
        return self.store.list(*statuses)

    @property
    def next_nonce(self) -> int:
        """The nonce the next new intent gets."""
        nonce = self.store.next_nonce()
        assert nonce is not None  # set when the sender opens
        return nonce

    # --- sending ------------------------------------------------------------------------------

    @_reachable
    def submit(
        self, intent_id: str, to: str, data: bytes | str, value: int = 0,
        meta: dict[str, Any] | None = None, gas: int | None = None, *, kind: str | None = None,
    ) -> Intent:  # fmt: skip
        """Sends the call once for ``intent_id``, and returns the stored intent.

        A known ``intent_id`` returns what is stored and sends nothing (a different call under
        it raises :class:`IntentConflict`). Else: gas is estimated (x1.2) unless given; a
        revert in estimation raises :class:`ChainError` and stores nothing. Pass ``gas`` when
        the call depends on transactions not yet mined. ``kind`` defaults to the id's prefix
        before ``:``; ``meta`` (JSON) is stored for the caller to read back.
        """
        to = to_checksum_address(to)
        data = HexBytes(data).to_0x_hex()
        meta = json.loads(json.dumps(meta or {}))
        existing = self.store.get(intent_id)
        if existing is not None:
            if (existing.to, existing.data, existing.value) != (to, data, value):
                raise intents.IntentConflict.of(existing)
            return existing
        if gas is None:
            gas = self._estimate(intent_id, to, data, value)
        max_fee, tip = self._fees()
        with self.store.transaction():
            nonce = self.next_nonce
            attempt = self._sign(nonce, to, data, value, gas, max_fee, tip, n=0)
            self.store.insert(
                intent_id=intent_id, kind=kind or intent_id.split(":", 1)[0], nonce=nonce,
                to=to, data=data, value=value, gas=gas, meta=meta, attempt=attempt,
            )  # fmt: skip
        intent = self._load(intent_id)
        log.info("intent %s: nonce %d, tx %s", intent_id, nonce, attempt.tx_hash)
        self._broadcast(intent, attempt)
        return self._load(intent_id)

    @_reachable
    def rebroadcast(self) -> list[Change]:
        """Sends every pending intent's current attempt again, the same bytes, in nonce order
        (after a restart, before anything new)."""
        changes = []
        for intent in self.store.list("pending"):
            changes.append(self._send(intent, intent.current, "sent again"))
        return changes

    @_reachable
    def poll(self) -> list[Change]:
        """One look at the chain for every open intent; returns what changed. Sends only what
        must be sent: never-broadcast attempts, mined bytes whose block left the chain, and a
        replacement of the next-in-line intent once it is stuck. Raises
        :class:`NonceConflict` when a nonce was used by somebody else."""
        return self._sync(send=True)

    def wait(self, intent_id: str, timeout: float = 120.0, *, check: bool = True) -> Intent:
        """Polls until the intent is final; a ``failed`` one raises :class:`TransactionFailed`
        unless ``check`` is false. For tools and tests: the sink drives :meth:`poll`."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            intent = self._load(intent_id)
            if intent.status == "failed" and check:
                raise intents.TransactionFailed.of(intent, self._revert_hint(intent))
            if intent.done:
                return intent
            if time.monotonic() >= deadline:
                raise intents.SendTimeout.of(intent, timeout)
            time.sleep(self.receipt_poll_s)

    # --- opening ------------------------------------------------------------------------------

    def _open(self, resync_nonce: bool) -> None:
        genesis = self._block_hash(0)
        stored = self.store.get_meta("genesis")
        if stored is None:
            with self.store.transaction():
                self.store.set_meta("chain_id", str(self.chain_id))
                self.store.set_meta("address", self.address)
                self.store.set_meta("genesis", str(genesis))
        elif stored != genesis:
            # anvil restarted from its --state keeps accounts and recent blocks but makes a new
            # block 0: the same chain if our account's nonce still covers every final intent
            final = self.store.list("confirmed", "failed")
            if final and self._count("latest") <= final[-1].nonce:
                raise intents.StoreMismatch.genesis(self.path, stored, genesis, self.rpc_url)
            log.warning("sender %s: the node's block 0 changed (%s -> %s) but the chain holds "
                        "this store's transactions (a node restarted from saved state): going "
                        "on", self.address, stored, genesis)  # fmt: skip
            self.store.set_meta("genesis", str(genesis))
        latest = self._count("latest")
        pending = self._count("pending")
        if self.store.next_nonce() is None:
            self.store.set_next_nonce(pending)
            log.info("sender %s: nonce ledger starts at %d", self.address, pending)
        final = self.store.list("confirmed", "failed")
        if final and final[-1].nonce >= latest:
            raise intents.ChainRewound.of(final[-1], latest, self.address, self.path)
        self._sync(send=False)
        ledger = self.next_nonce
        if ledger < latest:
            if not resync_nonce:
                raise intents.NonceConflict.ahead(ledger, latest, self.address, self.chain_id)
            log.warning("sender %s: ledger moved from %d to %d", self.address, ledger, latest)
            self.store.set_next_nonce(latest)
        elif pending > ledger:
            log.warning(
                "sender %s: the node's pool holds transactions at nonces %d..%d that this "
                "sender did not sign: is another process sending with the oracle key?",
                self.address, ledger, pending - 1,
            )  # fmt: skip

    # --- following the chain ------------------------------------------------------------------

    def _sync(self, send: bool) -> list[Change]:
        open_intents = self.store.list("pending", "mined")
        if not open_intents:
            return []
        latest = self._count("latest")  # before the receipts: see _consumed
        head = self._head()
        changes: list[Change] = []
        for intent in open_intents:
            changes += self._follow(intent, latest, head, send)
        return changes

    def _follow(self, intent: Intent, latest: int, head: int, send: bool) -> list[Change]:
        changes: list[Change] = []
        if (
            intent.status == "mined"
            and intent.block_number is not None
            and (self._block_hash(intent.block_number) == intent.block_hash)
        ):
            block = intent.block_number
        else:
            found = self._receipt_of(intent)
            if found is None and intent.status == "pending" and intent.nonce < latest:
                found = self._consumed(intent)
            if found is None:
                if intent.status == "mined":
                    log.warning("intent %s: block %s left the chain; sending tx %s again",
                                intent.intent_id, intent.block_number, intent.tx_hash)  # fmt: skip
                    was = f"was in block {intent.block_number}"
                    self.store.set_status(intent.intent_id, "pending")
                    intent = self._load(intent.intent_id)
                    changes.append(Change("reorged", intent, was))
                    if send:
                        changes.append(self._send(intent, intent.current, "after a reorg"))
                elif send:
                    changes += self._nudge(intent, latest)
                return changes
            self.store.set_mined(intent.intent_id, found)
            block = found["block_number"]
            intent = self._load(intent.intent_id)
            changes.append(Change("mined", intent, f"tx {intent.tx_hash} in block {block}"))
            if found["status"] != 1:
                log.error("intent %s: tx %s REVERTED in block %d", intent.intent_id,
                          intent.tx_hash, block)  # fmt: skip
        if head - block >= self.confirmations:
            final = "confirmed" if intent.receipt_status == 1 else "failed"
            self.store.set_status(intent.intent_id, final)
            intent = self._load(intent.intent_id)
            if final == "failed":
                log.error("%s", intents.TransactionFailed.of(intent, self._revert_hint(intent)))
            changes.append(Change(final, intent, f"{head - block} blocks on top"))
        return changes

    def _nudge(self, intent: Intent, latest: int) -> list[Change]:
        """A pending intent not on the chain: send it if it never was; replace it when it is
        next in line and stuck."""
        current = intent.current
        if current.broadcast_at is None:
            return [self._send(intent, current, "first broadcast")]
        stuck = time.time() - current.broadcast_at >= self.stuck_after_s
        if stuck and intent.nonce == latest:
            return [self._replace(intent)]
        return []

    def _consumed(self, intent: Intent) -> dict[str, Any] | None:
        """The intent's nonce is below the account's count, and no attempt of it has a
        receipt: look once more (a block may have come or gone), then it was somebody else."""
        latest = self._count("latest")
        found = self._receipt_of(intent)
        if found is not None or intent.nonce >= latest:
            return found
        raise intents.NonceConflict.taken(intent, self.address, self.chain_id)

    def _replace(self, intent: Intent) -> Change:
        """The same nonce and call, both fees raised by at least ``fee_bump_pct`` (and to the
        market's), committed as a new attempt before it is broadcast."""
        old_fee = max(a.max_fee_per_gas for a in intent.attempts)
        old_tip = max(a.max_priority_fee_per_gas for a in intent.attempts)
        need_fee, need_tip = bump(old_fee, self.fee_bump_pct), bump(old_tip, self.fee_bump_pct)
        market_fee, market_tip = self._fees()
        tip = max(need_tip, market_tip)
        fee = min(max(need_fee, market_fee, tip), self.max_fee_per_gas)
        tip = min(tip, fee)
        if fee < need_fee or tip < need_tip:
            log.warning("intent %s: stuck at the fee cap (%d wei); sending tx %s again",
                        intent.intent_id, self.max_fee_per_gas, intent.tx_hash)  # fmt: skip
            return self._send(intent, intent.current, "stuck at the fee cap")
        attempt = self._sign(intent.nonce, intent.to, intent.data, intent.value, intent.gas,
                             fee, tip, n=len(intent.attempts))  # fmt: skip
        self.store.add_attempt(intent.intent_id, attempt)
        log.warning(
            "intent %s: nonce %d stuck; %s replaced by %s (fees %d/%d wei)",
            intent.intent_id,
            intent.nonce,
            intent.tx_hash,
            attempt.tx_hash,
            fee,
            tip,
        )
        intent = self._load(intent.intent_id)
        sent = self._send(intent, attempt, f"replaces {intent.attempts[-2].tx_hash}")
        return sent if sent.event == "rejected" else Change("replaced", sent.intent, sent.detail)

    # --- the node -----------------------------------------------------------------------------

    def _send(self, intent: Intent, attempt: Attempt, why: str) -> Change:
        """Broadcasts, reporting a refusal as a ``rejected`` change instead of raising."""
        try:
            self._broadcast(intent, attempt)
        except intents.BroadcastRejected as exc:
            log.error("%s", exc)
            return Change("rejected", self._load(intent.intent_id), str(exc))
        return Change("broadcast", self._load(intent.intent_id), f"tx {attempt.tx_hash}: {why}")

    def _broadcast(self, intent: Intent, attempt: Attempt) -> None:
        try:
            self.w3.eth.send_raw_transaction(attempt.raw_tx)
        except web3x.Web3RPCError as exc:
            message = intents.rpc_message(exc)
            lowered = message.lower()
            if any(text in lowered for text in _ALREADY):
                log.debug("tx %s: %s (already there)", attempt.tx_hash, message)
            elif "underpriced" in lowered:  # a pricier tx with this nonce is in the pool
                log.warning("intent %s: tx %s refused as %r; a replacement follows when stuck",
                            intent.intent_id, attempt.tx_hash, message)  # fmt: skip
            else:
                hint = f" Fund {self.address}." if "insufficient funds" in lowered else ""
                raise intents.BroadcastRejected.of(intent, attempt.tx_hash, message, hint) from exc
        self.store.mark_broadcast(attempt.tx_hash, time.time())

    def _sign(self, nonce: int, to: str, data: str, value: int, gas: int, max_fee: int,
              tip: int, n: int) -> Attempt:  # fmt: skip
        signed = self.account.sign_transaction(
            {"type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to, "data": data,
             "value": value, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
        )  # fmt: skip
        return Attempt(
            tx_hash=signed.hash.to_0x_hex(),
            n=n,
            raw_tx=signed.raw_transaction.to_0x_hex(),
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
            signed_at=time.time(),
            broadcast_at=None,
        )

    def _estimate(self, intent_id: str, to: str, data: str, value: int) -> int:
        call = {"from": self.address, "to": to, "data": data, "value": value}
        try:
            estimate = self.w3.eth.estimate_gas(call)  # type: ignore[arg-type]
        except (web3x.ContractLogicError, web3x.Web3RPCError, web3x.Web3ValueError) as exc:
            raise ChainError(
                f"intent {intent_id} would revert: {revert_reason(exc)}. Nothing was stored or "
                "sent. (If it depends on transactions not mined yet, pass gas explicitly.)"
            ) from exc
        return math.ceil(estimate * GAS_MARGIN)

    def _fees(self) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)``: the node's tip, twice the base fee plus
        the tip, within the cap."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:
            raise ChainError(f"chain {self.chain_id} has no base fee: EIP-1559 is required")
        tip = int(self.w3.eth.max_priority_fee)
        fee = 2 * int(base) + tip
        if fee > self.max_fee_per_gas:
            log.warning("market fee %d wei > cap %d wei: capped", fee, self.max_fee_per_gas)
            fee = self.max_fee_per_gas
        return fee, min(tip, fee)

    def _receipt_of(self, intent: Intent) -> dict[str, Any] | None:
        """The receipt of whichever attempt is in a canonical block, if any."""
        for attempt in reversed(intent.attempts):
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(attempt.tx_hash))
            except (web3x.TransactionNotFound, web3x.TransactionIndexingInProgress):
                continue
            if receipt.get("blockHash") is None:
                continue
            block_hash = HexBytes(receipt["blockHash"]).to_0x_hex()
            if self._block_hash(receipt["blockNumber"]) != block_hash:
                continue  # a stale receipt of a block that left the chain
            return {
                "tx_hash": attempt.tx_hash,
                "block_number": int(receipt["blockNumber"]),
                "block_hash": block_hash,
                "status": int(receipt["status"]),
                "gas_used": int(receipt["gasUsed"]),
            }
        return None

    def _block_hash(self, number: int) -> str | None:
        try:
            return HexBytes(self.w3.eth.get_block(number)["hash"]).to_0x_hex()
        except web3x.BlockNotFound:
            return None

    def _head(self) -> int:
        return int(self.w3.eth.block_number)

    def _count(self, block: str) -> int:
        return int(self.w3.eth.get_transaction_count(self.address, block))  # type: ignore[arg-type]

    def _load(self, intent_id: str) -> Intent:
        intent = self.store.get(intent_id)
        if intent is None:
            raise intents.UnknownIntent(f"no intent {intent_id!r} in {self.path}")
        return intent

    def _revert_hint(self, intent: Intent) -> str:
        """The revert replayed on the block before (a hint: earlier transactions of the same
        block are not replayed)."""
        call = {"from": self.address, "to": intent.to, "data": intent.data, "value": intent.value}
        try:
            self.w3.eth.call(call, (intent.block_number or 1) - 1)  # type: ignore[arg-type]
        except Exception as exc:
            return f"replayed on the block before: {revert_reason(exc)}"
        return "the call succeeds when replayed on the block before"
