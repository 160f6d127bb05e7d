"""The chain: the JSON-RPC node every client uses, and the local anvil (the ``chain`` section)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator

from schemas.settings import SECTION

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

    @model_validator(mode="after")
    def _default_rpc(self) -> ChainSettings:
        if "rpc_url" not in self.model_fields_set:
            self.rpc_url = f"http://{self.host}:{self.port}"
        return self
