"""CourseEscrow on a real anvil (automine, a snapshot per test): roles, settle-once, pull
payments, expiry, reentrancy, pause, and that every path pays out exactly the deposit."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from settlement import contract as c
from settlement import formula
from tests.chain_fixtures import Chain, course

pytestmark = pytest.mark.slow
ETHER = 10**18


def outcome(key: bytes, *, complete: bool, at_ms: int, score_bps: int) -> tuple:
    return (key, complete, at_ms, score_bps)


def settle(chain: Chain, *rows: tuple, account=None):  # type: ignore[no-untyped-def]
    return chain.send(account or chain.roles.oracle, chain.escrow.functions.settle(list(rows)))


def events(chain: Chain, receipt, name: str) -> list:  # type: ignore[no-untyped-def]
    return list(getattr(chain.escrow.events, name)().process_receipt(receipt, errors=DISCARD))


def credits(chain: Chain, asset: str) -> tuple[int, int, int]:
    return (
        chain.credit(asset, chain.creator.address),
        chain.credit(asset, chain.roles.treasury),
        chain.credit(asset, chain.learner.address),
    )


def test_only_the_oracle_settles(chain: Chain) -> None:
    chain.register(course())
    key = chain.deposit(course(), ETHER)
    for account in (chain.roles.admin, chain.stranger, chain.learner):
        with pytest.raises(c.ChainError, match="would revert"):
            settle(
                chain,
                outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_000),
                account=account,
            )
    assert chain.escrow.functions.escrowOf(key).call()[2] == 1  # still open
    settle(chain, outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_000))
    assert chain.escrow.functions.escrowOf(key).call()[2] == 2  # settled


def test_a_second_settle_pays_nothing(chain: Chain) -> None:
    chain.register(course())
    key = chain.deposit(course(), ETHER)
    row = outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_000)
    first = settle(chain, row)
    assert len(events(chain, first, "Settled")) == 1
    after_first = credits(chain, c.ETH)
    assert sum(after_first) == ETHER
    # again, alone and twice in one batch, with a different outcome: nothing moves
    second = settle(chain, outcome(key, complete=False, at_ms=0, score_bps=0), row)
    assert events(chain, second, "Settled") == []
    skipped = events(chain, second, "SettlementSkipped")
    assert [(e.args.key, e.args.reason) for e in skipped] == [(key, 1), (key, 1)]
    assert credits(chain, c.ETH) == after_first


def test_nobody_withdraws_another_ones_credit(chain: Chain) -> None:
    chain.register(course())
    key = chain.deposit(course(), ETHER)
    settle(chain, outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_000))
    creator_credit = chain.credit(c.ETH, chain.creator.address)
    assert creator_credit == ETHER * 8000 // 10_000
    with pytest.raises(c.ChainError, match="would revert"):
        chain.send(chain.stranger, chain.escrow.functions.withdraw(c.ETH))
    assert chain.credit(c.ETH, chain.creator.address) == creator_credit
    before = chain.balance(c.ETH, chain.creator.address)
    receipt = chain.send(chain.creator, chain.escrow.functions.withdraw(c.ETH))
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.balance(c.ETH, chain.creator.address) == before + creator_credit - gas
    assert chain.credit(c.ETH, chain.creator.address) == 0
    with pytest.raises(c.ChainError, match="would revert"):  # nothing left to take twice
        chain.send(chain.creator, chain.escrow.functions.withdraw(c.ETH))


def test_withdraw_for_pays_only_the_payee(chain: Chain) -> None:
    chain.register(course())
    key = chain.deposit(course(), ETHER)
    # no completion by the deadline, score below the minimum: all back to the learner
    chain.warp_to(chain.now_ms() // 1000 + 3_601)
    settle(chain, outcome(key, complete=False, at_ms=0, score_bps=100))
    assert chain.credit(c.ETH, chain.learner.address) == ETHER
    learner_before = chain.balance(c.ETH, chain.learner.address)
    caller_before = chain.balance(c.ETH, chain.stranger.address)
    receipt = chain.send(
        chain.stranger, chain.escrow.functions.withdrawFor(chain.learner.address, c.ETH)
    )
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.balance(c.ETH, chain.learner.address) == learner_before + ETHER
    assert chain.balance(c.ETH, chain.stranger.address) == caller_before - gas
    (withdrawn,) = events(chain, receipt, "Withdrawn")
    assert (withdrawn.args.payee, withdrawn.args.amount) == (chain.learner.address, ETHER)


def test_expiry_opens_only_after_deadline_plus_grace(chain: Chain) -> None:
    terms = course(grace_s=600)
    chain.register(terms)
    start_s = chain.now_ms() // 1000 + 10
    key = chain.deposit(terms, ETHER, enrolled_ms=start_s * 1000, deadline_ms=(start_s + 60) * 1000)
    opens_s = start_s + 60 + 600
    # explicit gas: estimation would run on the latest block's time, not the next one's
    chain.rpc("evm_setNextBlockTimestamp", opens_s - 1)  # one second early: reverts
    with pytest.raises(c.ChainError, match="reverted"):
        chain.send(chain.stranger, chain.escrow.functions.expire(key), gas=200_000)
    chain.rpc("evm_setNextBlockTimestamp", opens_s)  # the first second it may
    receipt = chain.send(chain.stranger, chain.escrow.functions.expire(key), gas=200_000)
    assert chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == opens_s
    (expired,) = events(chain, receipt, "Expired")
    assert expired.args.learnerAmount == ETHER
    assert chain.credit(c.ETH, chain.learner.address) == ETHER
    # an expired escrow neither expires nor settles again
    with pytest.raises(c.ChainError, match="would revert"):
        chain.send(chain.stranger, chain.escrow.functions.expire(key))
    again = settle(chain, outcome(key, complete=True, at_ms=0, score_bps=10_000))
    assert events(chain, again, "Settled") == []


def test_a_reentrant_payee_cannot_drain_the_escrow(chain: Chain) -> None:
    payee = c.deploy_contract(chain.w3, chain.stranger, "test/ReentrantPayee", chain.escrow.address)
    chain.register(course())
    # two escrows refund to the attacker, a third belongs to somebody else
    chain.warp_to(chain.now_ms() // 1000 + 1)
    start = chain.now_ms()
    mine = [
        chain.deposit(course(), ETHER, refund_to=payee.address, enrolled_ms=start) for _ in range(2)
    ]
    chain.deposit(course(), 5 * ETHER, enrolled_ms=start)
    chain.warp_to(start // 1000 + 3_601)
    settle(chain, *(outcome(k, complete=False, at_ms=0, score_bps=0) for k in mine))
    assert chain.credit(c.ETH, payee.address) == 2 * ETHER
    held = chain.balance(c.ETH, chain.escrow.address)
    for reenter_for in (False, True):
        chain.send(chain.stranger, payee.functions.setReenterFor(reenter_for))
        if reenter_for:
            with pytest.raises(c.ChainError, match="would revert"):  # nothing left
                chain.send(chain.stranger, payee.functions.pull())
            continue
        chain.send(chain.stranger, payee.functions.pull())
        assert payee.functions.reentries().call() >= 1  # it did try
    assert payee.functions.received().call() == 2 * ETHER
    assert chain.balance(c.ETH, chain.escrow.address) == held - 2 * ETHER
    assert chain.balance(c.ETH, chain.escrow.address) == 5 * ETHER


def test_pause_stops_deposits_and_settling_never_withdrawals_or_expiry(chain: Chain) -> None:
    terms = course(grace_s=60)
    chain.register(terms)
    start_s = chain.now_ms() // 1000 + 1
    settled = chain.deposit(
        terms, ETHER, enrolled_ms=start_s * 1000, deadline_ms=(start_s + 30) * 1000
    )
    open_ = chain.deposit(
        terms, ETHER, enrolled_ms=start_s * 1000, deadline_ms=(start_s + 30) * 1000
    )
    settle(chain, outcome(settled, complete=True, at_ms=start_s * 1000 + 5, score_bps=10_000))
    pauser = chain.pauser
    with pytest.raises(c.ChainError, match="would revert"):  # only the pauser pauses
        chain.send(chain.stranger, chain.escrow.functions.pause())
    chain.send(pauser, chain.escrow.functions.pause())
    with pytest.raises(c.ChainError, match="would revert"):
        chain.deposit(terms, ETHER)
    chain.warp_to(start_s + 31)
    with pytest.raises(c.ChainError, match="would revert"):
        settle(chain, outcome(open_, complete=False, at_ms=0, score_bps=0))
    # withdrawals and expiry go on
    chain.send(chain.creator, chain.escrow.functions.withdraw(c.ETH))
    chain.warp_to(start_s + 30 + 60)
    chain.send(chain.stranger, chain.escrow.functions.expire(open_))
    chain.send(chain.stranger, chain.escrow.functions.withdrawFor(chain.learner.address, c.ETH))
    chain.send(pauser, chain.escrow.functions.unpause())
    chain.deposit(terms, ETHER)


@pytest.mark.parametrize("asset_name", ["ETH", "stablecoin"])
def test_every_path_pays_out_exactly_the_deposit(chain: Chain, asset_name: str) -> None:
    asset = c.ETH if asset_name == "ETH" else chain.coin.address
    deposit = 10**18 + 7 if asset == c.ETH else 49_990_001  # 49.990001 tUSD: odd on purpose
    terms = course(
        tranches=[{"within_s": 600, "bps": 7_000}, {"within_s": 86_400, "bps": 10_000}],
        min_score=0.3,
        creator_share_bps=7_333,
        grace_s=120,
    )
    chain.register(terms)
    py = c.formula_terms(terms)
    start_s = chain.now_ms() // 1000 + 1
    enrolled, deadline = start_s * 1000, (start_s + 3_000) * 1000
    cases = {  # name: (complete, completed_at_ms, score_bps)
        "early finish, refund": (True, enrolled + 599_999, 10_000),
        "full": (True, enrolled + 1_000_000, 10_000),
        "on the deadline": (True, deadline, 10_000),
        "after the deadline: partial": (True, deadline + 1, 6_543),
        "partial": (False, 0, 4_321),
        "below the minimum": (False, 0, 2_999),
        "nothing": (False, 0, 0),
    }
    keys = {
        name: chain.deposit(terms, deposit, asset=asset, enrolled_ms=enrolled, deadline_ms=deadline)
        for name in [*cases, "expired"]
    }
    held = chain.balance(asset, chain.escrow.address)
    chain.warp_to(start_s + 3_001)
    receipt = settle(
        chain,
        *(outcome(keys[n], complete=f, at_ms=t, score_bps=s) for n, (f, t, s) in cases.items()),
    )
    by_key = {e.args.key: e.args for e in events(chain, receipt, "Settled")}
    assert len(by_key) == len(cases)
    for name, (complete, at_ms, score) in cases.items():
        got = by_key[keys[name]]
        want = formula.payout(
            py,
            deposit,
            enrolled_at_ms=enrolled,
            deadline_ms=deadline,
            complete=complete,
            completed_at_ms=at_ms,
            score_bps=score,
        )
        assert (got.earnedBps, got.creatorAmount, got.platformAmount, got.learnerAmount) == (
            want.earned_bps,
            want.creator,
            want.platform,
            want.learner,
        ), name
        assert got.creatorAmount + got.platformAmount + got.learnerAmount == deposit, name
    assert by_key[keys["early finish, refund"]].learnerAmount == deposit - deposit * 7_000 // 10_000
    assert by_key[keys["nothing"]].learnerAmount == deposit
    chain.warp_to(start_s + 3_000 + 121)
    chain.send(chain.stranger, chain.escrow.functions.expire(keys["expired"]))
    # every credit together is every deposit; withdrawing them all leaves nothing behind
    payees = (chain.creator.address, chain.roles.treasury, chain.learner.address)
    assert sum(chain.credit(asset, p) for p in payees) == held == deposit * (len(cases) + 1)
    for payee in payees:
        chain.send(chain.stranger, chain.escrow.functions.withdrawFor(payee, asset))
    assert chain.balance(asset, chain.escrow.address) == 0


def test_settling_without_completion_waits_for_the_deadline(chain: Chain) -> None:
    chain.register(course())
    key = chain.deposit(course(), ETHER)
    early = settle(chain, outcome(key, complete=False, at_ms=0, score_bps=5_000))
    assert [e.args.reason for e in events(chain, early, "SettlementSkipped")] == [2]
    bad = settle(chain, outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_001))
    assert [e.args.reason for e in events(chain, bad, "SettlementSkipped")] == [3]
    assert sum(credits(chain, c.ETH)) == 0


def test_deposits_refuse_what_they_cannot_honour(chain: Chain) -> None:
    terms = course(deadline_days=1)
    with pytest.raises(c.ChainError):  # the course is not registered yet
        chain.deposit(terms, ETHER)
    first = chain.register(terms)
    assert chain.register(terms) == first  # the same terms again: a no-op
    assert chain.register(course(creator_share_bps=5_000)) == first + 1  # new terms, new id
    now = chain.now_ms()
    with pytest.raises(c.ChainError):  # beyond the policy's deadline cap
        chain.deposit(terms, ETHER, enrolled_ms=now, deadline_ms=now + 86_400_000 + 1)
    with pytest.raises(c.ChainError):  # a token that is not allowed
        fee = c.deploy_contract(chain.w3, chain.roles.admin, "test/FeeOnTransferToken")
        chain.deposit(terms, 1_000, asset=fee.address)
    chain.send(chain.roles.admin, chain.escrow.functions.setAssetAllowed(fee.address, True))
    chain.send(chain.roles.oracle, fee.functions.mint(chain.roles.oracle.address, 1_000))
    chain.send(chain.roles.oracle, fee.functions.approve(chain.escrow.address, 1_000))
    row = (
        c.enrollment_key("00000000-0000-0000-0000-000000000001"),
        c.course_key(terms.course_id),
        fee.address,
        1_000,
        chain.learner.address,
        now,
        now + 60_000,
    )
    with pytest.raises(c.ChainError):  # fee-on-transfer: the escrow would hold less
        chain.send(chain.roles.oracle, chain.escrow.functions.deposit([row]))
    key = chain.deposit(terms, ETHER)
    with pytest.raises(c.ChainError):  # the same enrollment twice
        chain.deposit(terms, ETHER, key=key)
    eth_row = (
        c.enrollment_key("00000000-0000-0000-0000-000000000002"),
        c.course_key(terms.course_id),
        c.ETH,
        ETHER,
        chain.learner.address,
        now,
        now + 60_000,
    )
    with pytest.raises(c.ChainError):  # ether sent must equal the ether deposited
        chain.send(chain.roles.oracle, chain.escrow.functions.deposit([eth_row]), value=ETHER - 1)


def test_terms_are_pinned_at_deposit(chain: Chain) -> None:
    before = course(creator_share_bps=8_000)
    chain.register(before)
    key = chain.deposit(before, ETHER)
    chain.register(course(creator_share_bps=1_000))  # the catalogue changes afterwards
    settle(chain, outcome(key, complete=True, at_ms=chain.now_ms(), score_bps=10_000))
    assert chain.credit(c.ETH, chain.creator.address) == ETHER * 8_000 // 10_000


def test_bad_terms_are_refused(chain: Chain) -> None:
    good = c.terms_of(course())
    for bad in (
        (*good[:7], []),  # no tranches
        (*good[:7], [(100, 5000), (100, 10000)]),  # not ascending
        (*good[:7], [(100, 10000)]),  # does not cover the deadline
        (*good[:1], 10001, *good[2:]),  # share above 100 %
        (*good[:5], 0, *good[6:]),  # no grace
    ):
        with pytest.raises(c.ChainError, match="would revert"):
            chain.send(chain.roles.oracle, chain.escrow.functions.registerCourse(b"\x01" * 32, bad))
    with pytest.raises(ContractLogicError):
        chain.escrow.functions.registerCourse(b"\x01" * 32, good).call(
            {"from": chain.stranger.address}
        )
