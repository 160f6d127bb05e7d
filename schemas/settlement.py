"""Settlement records: ``settlement.receipts``, one per log of the escrow contract, published
by the receipts indexer once its block is behind the confirmation depth."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.base import Address, UtcDatetime, Wei

Bytes32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
Asset = Literal["ETH"] | Address

# One namespace for every id the settlement derives (UUIDv5, so a replay derives the same ids).
NAMESPACE = uuid.UUID("b7e4c1f0-5a2d-5c3e-8f61-2d9a0e7b4c55")

ReceiptKind = Literal[
    "course_registered",
    "deposited",
    "settled",
    "settlement_skipped",
    "expired",
    "withdrawn",
    "treasury_changed",
    "asset_allowed",
    "paused",
    "unpaused",
    "role_granted",
    "role_revoked",
    "role_admin_changed",
]
SkipReason = Literal["not_open", "not_due", "bad_score"]


def receipt_id(tx_hash: str, log_index: int) -> uuid.UUID:
    """A receipt's id: UUIDv5 of its transaction hash and log index."""
    return uuid.uuid5(NAMESPACE, f"{tx_hash.lower()}:{log_index}")


class SettlementReceipt(BaseModel):
    """One contract log, decoded. Money fields are in the asset's base units (``decimals``
    says how many make a unit); a field a kind does not carry is null."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    type: Literal["settlement_receipt"] = "settlement_receipt"
    receipt_id: uuid.UUID
    kind: ReceiptKind
    chain_id: int = Field(ge=1)
    contract: Address
    tx_hash: Bytes32
    block_number: int = Field(ge=0)
    block_hash: Bytes32
    block_time: UtcDatetime
    log_index: int = Field(ge=0)
    enrollment_key: Bytes32 | None = None
    course_key: Bytes32 | None = None
    terms_id: int | None = None
    payee: Address | None = Field(None, description="withdrawn: who was paid")
    refund_to: Address | None = Field(None, description="deposited: the learner's address")
    creator: Address | None = Field(None, description="course_registered: the creator")
    asset: Asset | None = None
    decimals: int | None = Field(None, ge=0, le=77)
    amount: Wei | None = Field(None, description="deposited, expired (refund), withdrawn")
    creator_amount: Wei | None = None
    platform_amount: Wei | None = None
    learner_amount: Wei | None = None
    earned_bps: int | None = Field(None, ge=0, le=10_000)
    score_bps: int | None = Field(None, ge=0, le=65_535)
    metric: Literal["completion", "exam"] | None = None
    counted: bool | None = Field(None, description="settled: a completion by the deadline")
    reason: SkipReason | None = None
    enrolled_at: UtcDatetime | None = None
    deadline_at: UtcDatetime | None = None
    detail: str | None = Field(None, description="administrative logs: what changed")
