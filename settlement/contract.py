"""The CourseEscrow contract from Python: artifacts, on-chain keys, pinned terms, accounts and
deployment.

The settlement sink, the receipts indexer, the finance tools and the tests all go through
here, so the mapping from the catalogue and the enrollment ids to what the chain stores is
written once.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from schemas.catalog import Course
from schemas.errors import ChainUnreachable, LearnstreamError
from settlement import formula
from settlement.settings import ChainSettings, SettlementSettings

ETH = "0x0000000000000000000000000000000000000000"
METRICS = {"completion": 0, "exam": 1}
STATES = ("none", "open", "settled", "expired")
UINT32_MAX = 2**32 - 1
LOCAL_CHAIN_ID = 31337  # anvil's (and Hardhat's): the only chain the dev accounts may serve


class ChainError(LearnstreamError):
    """A transaction reverted, or the chain holds something other than expected."""


class NotDeployed(LearnstreamError):
    """No escrow address is configured and no deployment is recorded for this chain."""


@functools.cache
def artifact(name: str) -> dict[str, Any]:
    """A committed build artifact: ``CourseEscrow``, ``TestStablecoin``, ``test/…``."""
    path = resources.files("settlement") / "artifacts" / f"{name}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def enrollment_key(enrollment_id: uuid.UUID | str) -> bytes:
    """The on-chain key of an enrollment: keccak256 of its UUID's 16 bytes."""
    return keccak(uuid.UUID(str(enrollment_id)).bytes)


def course_key(course_id: str) -> bytes:
    """The on-chain key of a course: keccak256 of its id's UTF-8 bytes."""
    return keccak(text=course_id)


def asset_address(asset: str) -> str:
    """``"ETH"`` is the zero address on-chain; a token is its checksummed address."""
    return ETH if asset == "ETH" else to_checksum_address(asset)


def terms_of(course: Course) -> tuple[Any, ...]:
    """The ``Terms`` struct that ``registerCourse`` pins for ``course``'s payout policy."""
    policy = course.payout
    tranches = policy.effective_tranches()
    max_deadline_s = policy.deadline_days * 86_400
    for name, value in (("grace", policy.grace_seconds), ("last tranche", tranches[-1].within_s)):
        if value > UINT32_MAX:
            raise ValueError(f"course {course.course_id}: {name} {value} s exceeds 2^32 - 1 s")
    return (
        to_checksum_address(course.creator_address),
        policy.creator_share_bps,
        policy.min_score_bps,
        policy.partial == "linear",
        METRICS[policy.metric],
        policy.grace_seconds,
        max_deadline_s,
        [(t.within_s, t.bps) for t in tranches],
    )


def formula_terms(course: Course) -> formula.Terms:
    """The same terms for the Python formula."""
    policy = course.payout
    return formula.Terms(
        tranches=tuple(formula.Tranche(t.within_s, t.bps) for t in policy.effective_tranches()),
        linear=policy.partial == "linear",
        min_score_bps=policy.min_score_bps,
        creator_share_bps=policy.creator_share_bps,
    )


# --- accounts --------------------------------------------------------------------------------


def dev_account(chain: ChainSettings, index: int) -> LocalAccount:
    """Account ``index`` of the chain's mnemonic (anvil's development accounts locally)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(
        chain.mnemonic.get_secret_value(), account_path=f"m/44'/60'/0'/0/{index}"
    )


@dataclass(frozen=True)
class Roles:
    admin: LocalAccount
    oracle: LocalAccount
    pauser: str
    treasury: str

    @classmethod
    def from_settings(cls, chain: ChainSettings, settlement: SettlementSettings) -> Roles:
        """The roles' accounts; on a chain other than the local one (31337) every key and
        address must be set: anvil's development mnemonic is public."""
        local = chain.chain_id == LOCAL_CHAIN_ID
        missing = [
            f"LEARNSTREAM_SETTLEMENT__{name.upper()}"
            for name in ("admin_key", "oracle_key", "pauser_address", "treasury_address")
            if getattr(settlement, name) is None
        ]
        if missing and not local:
            raise LearnstreamError(
                f"chain {chain.chain_id} is not the local chain: set {', '.join(missing)} (the "
                "development mnemonic's accounts are public and must never hold real money)"
            )

        def key(secret: Any, index: int) -> LocalAccount:
            if secret is not None:
                return Account.from_key(secret.get_secret_value())
            return dev_account(chain, index)

        return cls(
            admin=key(settlement.admin_key, 0),
            oracle=key(settlement.oracle_key, 1),
            pauser=settlement.pauser_address or dev_account(chain, 2).address,
            treasury=settlement.treasury_address or dev_account(chain, 3).address,
        )


# --- sending (deployment, administration, tests) ----------------------------------------------


def connect(rpc_url: str, timeout: float = 30.0) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    if not w3.is_connected():
        raise ChainUnreachable(rpc_url, "no JSON-RPC answer")
    return w3


def transact(
    w3: Web3, account: LocalAccount, call: Any, *, value: int = 0, gas: int | None = None
) -> TxReceipt:
    """Signs and sends one transaction (a contract call or a deployment), waits for its
    receipt, and raises :class:`ChainError` with the revert reason when it fails.

    One at a time with the node's pending nonce: fine for deployment, administration and
    tests. The settlement sink has its own sender with a nonce ledger.
    """
    params: dict[str, Any] = {
        "from": account.address,
        "value": value,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
    }
    try:
        params["gas"] = gas or call.estimate_gas(params) * 6 // 5
        tx = call.build_transaction(params)
    except Exception as exc:  # web3 raises several types for a revert in estimation
        raise ChainError(f"{_describe(call)} would revert: {revert_reason(exc)}") from exc
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise ChainError(f"{_describe(call)} reverted in tx {tx_hash.to_0x_hex()}")
    return receipt


@functools.cache
def _errors_by_selector() -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for name in ("CourseEscrow", "TestStablecoin"):
        for item in artifact(name)["abi"]:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4].hex()
                out[selector] = (item["name"], types)
    return out


def revert_reason(exc: BaseException) -> str:
    """A revert as a person reads it: the custom error's name and arguments when the data
    carries one of the escrow's (or the token's) errors, else web3's own message."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        found = _errors_by_selector().get(data[2:10])
        if found is not None:
            name, types = found
            try:
                args = abi_decode(types, bytes.fromhex(data[10:]))
            except Exception:  # a selector clash: show the name alone
                return name
            shown = ", ".join(a.hex() if isinstance(a, bytes) else str(a) for a in args)
            return f"{name}({shown})"
    return str(exc)


def _describe(call: Any) -> str:
    return getattr(call, "fn_name", None) or "deployment"


def deploy_contract(w3: Web3, account: LocalAccount, name: str, *args: Any) -> Contract:
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = transact(w3, account, factory.constructor(*args))
    return w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])


def escrow_at(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(
        address=to_checksum_address(address), abi=artifact("CourseEscrow")["abi"]
    )


def token_at(w3: Web3, address: str) -> Contract:
    return w3.eth.contract(
        address=to_checksum_address(address), abi=artifact("TestStablecoin")["abi"]
    )


# --- deployment record -----------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """Where the escrow (and, locally, the test stablecoin) lives on one chain."""

    chain_id: int
    escrow: str
    stablecoin: str | None
    block: int  # the head before deployment: the escrow's logs start after it
    deployed_at: str
    admin: str
    oracle: str
    pauser: str
    treasury: str

    @staticmethod
    def path(state_dir: Path, chain_id: int) -> Path:
        return state_dir / f"deployment-{chain_id}.json"

    def save(self, state_dir: Path) -> Path:
        path = self.path(state_dir, self.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, state_dir: Path, chain_id: int) -> Deployment | None:
        path = cls.path(state_dir, chain_id)
        return cls(**json.loads(path.read_text())) if path.exists() else None


def deploy(w3: Web3, roles: Roles, state_dir: Path, *, stablecoin: bool = True) -> Deployment:
    """Deploys CourseEscrow (and the 6-decimal test stablecoin, allowed as an asset), and
    records the addresses in ``state_dir``. The deployer is the admin."""
    admin = roles.admin
    start = int(w3.eth.block_number)  # the escrow's logs begin after this block
    escrow = deploy_contract(
        w3, admin, "CourseEscrow", admin.address, roles.oracle.address, roles.pauser,
        roles.treasury,
    )  # fmt: skip
    coin = None
    if stablecoin:
        coin = deploy_contract(w3, admin, "TestStablecoin")
        transact(w3, admin, escrow.functions.setAssetAllowed(coin.address, True))
    record = Deployment(
        chain_id=w3.eth.chain_id,
        escrow=escrow.address,
        stablecoin=coin.address if coin is not None else None,
        block=start,
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        admin=admin.address,
        oracle=roles.oracle.address,
        pauser=roles.pauser,
        treasury=roles.treasury,
    )
    record.save(state_dir)
    return record


def escrow_address(w3: Web3, settlement: SettlementSettings) -> str:
    """The configured escrow, else the one recorded for this chain; checks code is there."""
    address = settlement.escrow_address
    if address is None:
        record = Deployment.load(settlement.state_dir, w3.eth.chain_id)
        if record is None:
            raise NotDeployed(
                f"no CourseEscrow recorded for chain {w3.eth.chain_id} in "
                f"{settlement.state_dir}: run `learnstream settlement deploy`, or set "
                "LEARNSTREAM_SETTLEMENT__ESCROW_ADDRESS"
            )
        address = record.escrow
    if not w3.eth.get_code(to_checksum_address(address)):
        raise NotDeployed(
            f"no contract at {address} on chain {w3.eth.chain_id} (a fresh chain?): run "
            "`learnstream settlement deploy` again"
        )
    return to_checksum_address(address)


def logs_start(w3: Web3, settlement: SettlementSettings) -> int:
    """The block the escrow's logs start from: the setting, else the deployment record's."""
    if settlement.deployment_block is not None:
        return settlement.deployment_block
    record = Deployment.load(settlement.state_dir, int(w3.eth.chain_id))
    return record.block if record is not None else 0


def void_stale_state(state_dir: Path, chain_id: int) -> Path | None:
    """Moves the sender's store and the indexer's state of ``chain_id`` aside (into
    ``void-<time>/``) when the chain they belong to is gone (a fresh local chain): their
    intents and progress refer to transactions that no longer exist. Returns the folder."""
    stale = [
        *state_dir.glob(f"sender-{chain_id}-*.sqlite*"),
        *state_dir.glob(f"indexer-{chain_id}-*.json"),
    ]
    if not stale:
        return None
    folder = state_dir / f"void-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.replace(folder / path.name)
    return folder
