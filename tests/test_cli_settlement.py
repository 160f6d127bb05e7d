"""`learnstream settlement deploy` against a real anvil: deploys once, records the addresses,
and a second run deploys nothing; an unreachable chain exits 12 with a plain message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack
from schemas.errors import LearnstreamError
from settlement import contract
from settlement.settings import ChainSettings, SettlementSettings
from tests.test_unreachable import assert_plain, learnstream

pytestmark = pytest.mark.slow


def test_deploy_records_the_escrow_and_is_idempotent(tmp_path: Path) -> None:
    with throwaway_stack(tmp_path / "stack", ["anvil"]) as stack:
        env = {
            "LEARNSTREAM_CHAIN__PORT": str(stack.settings.chain.port),
            "LEARNSTREAM_SETTLEMENT__STATE_DIR": str(tmp_path / "settlement"),
        }
        first = learnstream("settlement", "deploy", **env)
        assert first.returncode == 0, first.stderr
        record = json.loads((tmp_path / "settlement" / "deployment-31337.json").read_text())
        assert f"escrow {record['escrow']} on chain 31337" in first.stdout
        assert record["stablecoin"] and record["stablecoin"] in first.stdout
        w3 = contract.connect(stack.settings.chain.rpc_url)
        escrow = contract.escrow_at(w3, record["escrow"])
        oracle_role = escrow.functions.ORACLE_ROLE().call()
        assert escrow.functions.hasRole(oracle_role, record["oracle"]).call()
        assert escrow.functions.assetAllowed(record["stablecoin"]).call()
        assert escrow.functions.treasury().call() == record["treasury"]
        assert contract.token_at(w3, record["stablecoin"]).functions.decimals().call() == 6

        again = learnstream("settlement", "deploy", **env)
        assert again.returncode == 0, again.stderr
        assert f"already deployed on chain 31337: escrow {record['escrow']}" in again.stdout
        assert json.loads((tmp_path / "settlement" / "deployment-31337.json").read_text()) == record

        forced = learnstream("settlement", "deploy", "--force", **env)
        assert forced.returncode == 0, forced.stderr
        assert (
            json.loads((tmp_path / "settlement" / "deployment-31337.json").read_text())["escrow"]
            != record["escrow"]
        )


def test_deploy_names_an_unreachable_chain(tmp_path: Path) -> None:
    port = free_port()
    result = learnstream(
        "settlement", "deploy",
        LEARNSTREAM_CHAIN__PORT=str(port), LEARNSTREAM_SETTLEMENT__STATE_DIR=str(tmp_path),
    )  # fmt: skip
    assert_plain(result, 12, f"http://127.0.0.1:{port}")


def test_the_public_dev_accounts_never_serve_another_chain() -> None:
    with pytest.raises(LearnstreamError, match="LEARNSTREAM_SETTLEMENT__ORACLE_KEY"):
        contract.Roles.from_settings(ChainSettings(chain_id=1), SettlementSettings())
    keys = {
        "admin_key": "0x" + "11" * 32,
        "oracle_key": "0x" + "22" * 32,
        "pauser_address": "0x" + "33" * 20,
        "treasury_address": "0x" + "44" * 20,
    }
    roles = contract.Roles.from_settings(ChainSettings(chain_id=1), SettlementSettings(**keys))
    assert roles.oracle.key.hex() == "22" * 32 and roles.treasury == "0x" + "44" * 20
    local = contract.Roles.from_settings(ChainSettings(), SettlementSettings())
    assert local.oracle.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
