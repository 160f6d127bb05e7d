"""A real anvil with automine for the escrow's tests, the escrow deployed on it, and
``evm_snapshot``/``evm_revert`` so that every test starts from the same chain."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from learnstream.stack.testing import throwaway_stack
from schemas.catalog import Course
from settlement import contract as c


@dataclass
class Chain:
    """The deployed escrow and the accounts that play each part."""

    w3: Web3
    escrow: Contract
    coin: Contract
    roles: c.Roles
    learner: LocalAccount
    creator: LocalAccount
    stranger: LocalAccount
    pauser: LocalAccount

    def rpc(self, method: str, *params: Any) -> Any:
        reply = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def now_ms(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"]) * 1000

    def warp_to(self, seconds: int) -> None:
        """The next block gets this timestamp (and is mined now)."""
        self.rpc("evm_setNextBlockTimestamp", seconds)
        self.rpc("evm_mine")

    def send(self, account: LocalAccount, call: Any, value: int = 0, gas: int | None = None) -> Any:
        return c.transact(self.w3, account, call, value=value, gas=gas)

    def register(self, course: Course) -> int:
        self.send(
            self.roles.oracle,
            self.escrow.functions.registerCourse(
                c.course_key(course.course_id), c.terms_of(course)
            ),
        )
        return int(self.escrow.functions.courseTerms(c.course_key(course.course_id)).call())

    def deposit(
        self,
        course: Course,
        amount: int,
        *,
        asset: str = c.ETH,
        refund_to: str | None = None,
        enrolled_ms: int | None = None,
        deadline_ms: int | None = None,
        key: bytes | None = None,
    ) -> bytes:
        key = key or c.enrollment_key(uuid.uuid4())
        enrolled_ms = enrolled_ms if enrolled_ms is not None else self.now_ms()
        deadline_ms = deadline_ms or enrolled_ms + 3_600_000
        row = (
            key, c.course_key(course.course_id), asset, amount,
            refund_to or self.learner.address, enrolled_ms, deadline_ms,
        )  # fmt: skip
        if asset != c.ETH:
            coin = c.token_at(self.w3, asset)
            self.send(self.roles.oracle, coin.functions.mint(self.roles.oracle.address, amount))
            self.send(self.roles.oracle, coin.functions.approve(self.escrow.address, amount))
        value = amount if asset == c.ETH else 0
        self.send(self.roles.oracle, self.escrow.functions.deposit([row]), value=value)
        return key

    def credit(self, asset: str, payee: str) -> int:
        return int(self.escrow.functions.creditOf(asset, payee).call())

    def balance(self, asset: str, holder: str) -> int:
        if asset == c.ETH:
            return int(self.w3.eth.get_balance(holder))
        return int(c.token_at(self.w3, asset).functions.balanceOf(holder).call())


def course(**payout: Any) -> Course:
    """A course whose creator is anvil's account 4 (see :func:`chain`)."""
    policy = {"deadline_days": 1, "grace_s": 600, **payout}
    return Course.model_validate(
        {
            "course_id": "c-escrow",
            "title": "Escrow",
            "category": "test",
            "level": "beginner",
            "creator_id": "creator-1",
            "creator_address": "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
            "price": {"amount_minor": 1000, "currency": "USD"},
            "payment_models": ["pay_by_completion"],
            "videos": [{"video_id": "v1", "title": "one", "length_s": 60}],
            "quizzes": [{"quiz_id": "q1", "title": "exam"}],
            "payout": policy,
            "updated_at": datetime(2026, 12, 1, tzinfo=UTC),
        }
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """anvil (automine) on free ports with the escrow and the test stablecoin deployed."""
    state: Path = tmp_path_factory.mktemp("chain")
    with throwaway_stack(state / "stack", ["anvil"]) as stack:
        settings = stack.settings
        w3 = c.connect(settings.chain.rpc_url)
        roles = c.Roles.from_settings(settings.chain, settings.settlement)
        record = c.deploy(w3, roles, state / "settlement")
        assert record.stablecoin is not None
        yield Chain(
            w3=w3,
            escrow=c.escrow_at(w3, record.escrow),
            coin=c.token_at(w3, record.stablecoin),
            roles=roles,
            learner=c.dev_account(settings.chain, 5),
            creator=c.dev_account(settings.chain, 4),
            stranger=c.dev_account(settings.chain, 6),
            pauser=c.dev_account(settings.chain, 2),
        )


@pytest.fixture
def chain(deployed: Chain) -> Iterator[Chain]:
    """The deployed chain, reverted to its state before the test afterwards."""
    snapshot = deployed.rpc("evm_snapshot")
    try:
        yield deployed
    finally:
        deployed.rpc("evm_revert", snapshot)


# --- mining control (added for the sender's tests; the fixtures above are unchanged) ---------


def mine(chain: Chain, blocks: int = 1) -> int:
    """Mines ``blocks`` blocks now; returns the new head."""
    for _ in range(blocks):
        chain.rpc("evm_mine")
    return int(chain.w3.eth.block_number)


def reorg(chain: Chain, depth: int, txs: list[tuple[str, int]] | None = None) -> None:
    """Replaces the last ``depth`` blocks with as many new ones (the head's number stays).

    anvil 1.7.1 takes positional params ``[depth, [[raw tx hex, block offset], ...]]`` (a map
    ``{depth, tx_block_pairs}`` is refused); offset 0 is the first new block. Transactions of
    the dropped blocks are gone, not back in the pool."""
    chain.rpc("anvil_reorg", depth, [list(pair) for pair in txs or []])


@contextlib.contextmanager
def automine_off(chain: Chain) -> Iterator[Chain]:
    """Automine off: blocks come only from :func:`mine`. Afterwards the pool is emptied and
    automine is back on (``evm_revert`` restores neither)."""
    chain.rpc("evm_setAutomine", False)
    try:
        yield chain
    finally:
        chain.rpc("anvil_dropAllTransactions")
        chain.rpc("evm_setAutomine", True)
