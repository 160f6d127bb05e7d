"""What the escrow holds, rebuilt from the chain's own logs.

Topic retention (7 days) is shorter than a deadline, so the settlement sink never trusts the
topics for what is open: at start it reads every log of the contract from its deployment
block, and afterwards follows new blocks (:meth:`EscrowView.refresh`) that are at least
``confirmations`` deep, so that a reorganisation shallower than that never shows it a
deposit or a settlement that is then undone. (What is shallower is covered by the sender's
intents: the sink never sends for a key whose transaction is still in flight.) Terms are
read once per id with ``termsOf`` (they never change). Before sending,
:meth:`EscrowView.states` asks the contract itself (``statesOf``) in one call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from settlement.contract import ETH, STATES, escrow_at

log = logging.getLogger(__name__)
METRIC_NAMES = ("completion", "exam")


@dataclass
class OnChain:
    """One escrow as the chain holds it (amounts in the asset's base units, times in ms)."""

    key: bytes
    course_key: bytes
    asset: str  # "ETH" or the token's address
    amount: int
    refund_to: str
    terms_id: int
    enrolled_ms: int
    deadline_ms: int
    state: str = "open"  # open | settled | expired
    block: int = 0


def escrow_of(contract: Contract, key: bytes) -> OnChain:
    """One escrow as ``escrowOf`` returns it now (state ``none``: never deposited; the course
    key is not stored on-chain and comes from the ``Deposited`` log only)."""
    asset, terms_id, state, deadline, refund_to, enrolled, amount = contract.functions.escrowOf(
        key
    ).call()
    return OnChain(
        key=key,
        course_key=b"",
        asset="ETH" if int(asset, 16) == 0 else asset,
        amount=amount,
        refund_to=refund_to,
        terms_id=terms_id,
        enrolled_ms=enrolled,
        deadline_ms=deadline,
        state=STATES[state],
    )


@dataclass(frozen=True)
class TermsOnChain:
    creator: str
    creator_share_bps: int
    min_score_bps: int
    linear: bool
    metric: str
    grace_s: int
    max_deadline_s: int
    tranches: tuple[tuple[int, int], ...]


@dataclass
class EscrowView:
    """Escrows and course registrations of one CourseEscrow, from its logs."""

    w3: Web3
    address: str
    from_block: int
    confirmations: int = 0  # follow only blocks this deep: a shallow reorg never reaches it
    escrows: dict[bytes, OnChain] = field(default_factory=dict)
    course_terms: dict[bytes, int] = field(default_factory=dict)  # course key -> terms id
    terms_hashes: dict[int, bytes] = field(default_factory=dict)
    next_block: int = -1
    _terms: dict[int, TermsOnChain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.contract: Contract = escrow_at(self.w3, self.address)
        self.next_block = self.from_block
        ev = self.contract.events
        self._handlers = {
            ev.Deposited().topic: (ev.Deposited(), self._deposited),
            ev.Settled().topic: (ev.Settled(), self._closed("settled")),
            ev.Expired().topic: (ev.Expired(), self._closed("expired")),
            ev.CourseRegistered().topic: (ev.CourseRegistered(), self._registered),
        }

    # --- following the logs ----------------------------------------------------------------

    def refresh(self, chunk: int = 5_000) -> int:
        """Applies every log up to ``confirmations`` below the head; returns how many."""
        latest = self.w3.eth.block_number - self.confirmations
        applied = 0
        while self.next_block <= latest:
            end = min(self.next_block + chunk - 1, latest)
            entries = self.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": self.next_block,
                    "toBlock": end,
                    "topics": [list(self._handlers)],
                }
            )
            for entry in entries:
                event, apply = self._handlers[HexBytes(entry["topics"][0]).to_0x_hex()]
                apply(event.process_log(entry)["args"], int(entry["blockNumber"]))
                applied += 1
            self.next_block = end + 1
        return applied

    def _deposited(self, a: Any, block: int) -> None:
        asset = Web3.to_checksum_address(a["asset"])
        self.escrows[bytes(a["key"])] = OnChain(
            key=bytes(a["key"]),
            course_key=bytes(a["course"]),
            asset="ETH" if asset == ETH else asset,
            amount=int(a["amount"]),
            refund_to=a["refundTo"],
            terms_id=int(a["termsId"]),
            enrolled_ms=int(a["enrolledAtMs"]),
            deadline_ms=int(a["deadlineMs"]),
            block=block,
        )

    def _closed(self, state: str) -> Any:
        def apply(a: Any, block: int) -> None:
            escrow = self.escrows.get(bytes(a["key"]))
            if escrow is None:  # a log we have not seen the deposit of: read it
                self._load_one(bytes(a["key"]))
                escrow = self.escrows.get(bytes(a["key"]))
            if escrow is not None:
                escrow.state = state
                escrow.block = block

        return apply

    def _registered(self, a: Any, block: int) -> None:
        self.course_terms[bytes(a["course"])] = int(a["termsId"])
        self.terms_hashes[int(a["termsId"])] = bytes(a["termsHash"])

    def _load_one(self, key: bytes) -> None:
        escrow = escrow_of(self.contract, key)
        if escrow.state != "none":
            self.escrows[key] = escrow

    # --- reading the contract --------------------------------------------------------------

    def terms(self, terms_id: int) -> TermsOnChain:
        if terms_id not in self._terms:
            t = self.contract.functions.termsOf(terms_id).call()
            self._terms[terms_id] = TermsOnChain(
                creator=t[0],
                creator_share_bps=t[1],
                min_score_bps=t[2],
                linear=t[3],
                metric=METRIC_NAMES[t[4]],
                grace_s=t[5],
                max_deadline_s=t[6],
                tranches=tuple((w, b) for w, b in t[7]),
            )
        return self._terms[terms_id]

    def states(self, keys: list[bytes]) -> dict[bytes, str]:
        """Each escrow's state as the contract says now (``none`` when never deposited), read
        with ``statesOf`` in one call per 1,000 keys."""
        out: dict[bytes, str] = {}
        for start in range(0, len(keys), 1_000):
            part = keys[start : start + 1_000]
            states = self.contract.functions.statesOf(part).call(block_identifier="latest")
            out.update((key, STATES[state]) for key, state in zip(part, states, strict=True))
        return out

    def open_escrows(self) -> list[OnChain]:
        return [e for e in self.escrows.values() if e.state == "open"]
