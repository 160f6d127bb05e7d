"""The chain (``chain``: the JSON-RPC node every client uses, and the local anvil) and the
settlement service (``settlement``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from schemas.base import Address
from schemas.settings import SECTION, WorkPath

# anvil's well-known development mnemonic: its accounts are public, funded only on local chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class ChainSettings(BaseModel):
    """The EVM node: RPC address, and how the local anvil runs."""

    model_config = SECTION

    rpc_url: str = Field("http://127.0.0.1:8545")
    host: str = Field("127.0.0.1")
    port: int = Field(8545, ge=1, le=65535)
    chain_id: int = Field(31337, ge=1)
    mnemonic: SecretStr = Field(SecretStr(DEV_MNEMONIC))
    accounts: int = Field(10, ge=1)
    state_interval_s: int = Field(
        5, ge=1, description="anvil saves its --state file this often and on a clean exit."
    )
    block_time_s: float | None = Field(
        1.0, gt=0, description="The local anvil mines a block this often, so that confirmations "
        "and deadlines behave as on a real chain; empty: a block per transaction (automine).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _default_rpc(self) -> ChainSettings:
        if "rpc_url" not in self.model_fields_set:
            self.rpc_url = f"http://{self.host}:{self.port}"
        return self


class SettlementSettings(BaseModel):
    """The settlement service: who signs, where the escrow is, where its state lives.

    Keys left empty are derived from the chain's mnemonic (anvil's public development accounts:
    0 admin, 1 oracle, 2 pauser, 3 treasury). In production set the keys and addresses
    explicitly; the mnemonic is then never used.
    """

    model_config = SECTION

    state_dir: WorkPath = Field(
        Path(".stack/settlement"),
        description="The deployment record, and the settlement sink's intents and nonce ledger.",
    )
    admin_key: SecretStr | None = Field(None, description="Deploys and administers the escrow.")
    oracle_key: SecretStr | None = Field(
        None, description="The settlement service's one sender: registers, deposits, settles."
    )
    pauser_address: Address | None = Field(None, description="May pause deposits and settling.")
    treasury_address: Address | None = Field(None, description="Credited the platform's share.")
    escrow_address: Address | None = Field(
        None, description="A deployed CourseEscrow; empty: the deployment record in state_dir."
    )
    confirmations: int = Field(
        2, ge=0, description="Blocks on top of a transaction's block before the sender treats it "
        "as final (confirmed, or failed when it reverted).",
    )  # fmt: skip
    stuck_after_s: float = Field(
        30.0, gt=0, description="A transaction not mined this long after it was sent is "
        "replaced: same nonce, both fees raised by fee_bump_pct.",
    )  # fmt: skip
    fee_bump_pct: float = Field(
        12.5, ge=12.5, le=1000, description="How much a replacement raises both EIP-1559 fees, "
        "in percent (at least 12.5: nodes refuse smaller bumps).",
    )  # fmt: skip
    max_fee_gwei: float = Field(
        500.0, gt=0, description="No transaction of the sender offers a maxFeePerGas above "
        "this; a stuck one at the cap is sent again unchanged (and logged).",
    )  # fmt: skip
    receipt_poll_s: float = Field(
        1.0, gt=0, description="How often the sender looks for receipts while it waits."
    )
    settle_delay_s: float = Field(
        30.0, ge=0, description="After a deadline, wait this long for events still in flight "
        "before settling by the latest score; every course's grace must exceed it.",
    )  # fmt: skip
    batch_size: int = Field(
        100, ge=1, le=1000, description="Deposits or settlements per transaction."
    )
    group_id: str = Field("learnstream-sink-settlement", description="The sink's consumer group.")
    batch_max_s: float = Field(
        0.5, gt=0, description="The sink acts on records at least this often."
    )
    deployment_block: int | None = Field(
        None, ge=0, description="Where the escrow's logs start; empty: the deployment record's."
    )
    index_batch_blocks: int = Field(
        2_000, ge=1, description="The receipts indexer reads logs in ranges this long."
    )
    index_poll_s: float = Field(1.0, gt=0, description="How often the indexer looks for blocks.")
