"""The payout formula twice, Solidity (``CourseEscrow.quote``, the code ``settle`` runs) and
Python (``settlement.formula``), held equal to the wei over random inputs (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from settlement import formula
from tests.chain_fixtures import Chain

pytestmark = pytest.mark.slow
UINT48 = 2**48 - 1

deposits = st.one_of(
    st.sampled_from([0, 1, 2, 9_999, 10_000, 10_001, 2**128 - 1, 2**128, 2**128 + 1]),
    st.integers(1, 10**6 * 10**6),  # a 6-decimal stablecoin, up to a million units
    st.integers(1, 10**4 * 10**18),  # ether (18 decimals), up to 10,000
    st.integers(0, 2**200),  # the contract's MAX_DEPOSIT
)
bps = st.one_of(st.sampled_from([0, 1, 4_999, 5_000, 9_999, 10_000]), st.integers(0, 10_000))


@st.composite
def cases(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 5))
    withins = sorted(draw(st.sets(st.integers(1, 2**32 - 1), min_size=n, max_size=n)))
    tranches = [formula.Tranche(w, draw(bps)) for w in withins]
    enrolled = draw(st.integers(0, UINT48 // 2))
    deadline = draw(st.integers(enrolled + 1, UINT48))
    # completion times on every edge: tranche boundaries and the deadline, one ms either side
    edges = [enrolled + t.within_s * 1000 for t in tranches] + [deadline, enrolled]
    edge = draw(st.sampled_from(edges))
    completed = draw(
        st.one_of(
            st.sampled_from([edge - 1, edge, edge + 1]),
            st.integers(0, UINT48),  # anywhere, before the enrollment included (backdating)
        )
    )
    metric = draw(st.sampled_from(["completion", "exam"]))
    score, complete = formula.metric_score(
        metric,
        score_bps=draw(bps),
        completed=draw(st.booleans()),
        exam_bps=draw(st.one_of(st.none(), bps)),
        exam_passed=draw(st.one_of(st.none(), st.booleans())),
    )
    return {
        "terms": formula.Terms(tuple(tranches), draw(st.booleans()), draw(bps), draw(bps)),
        "deposit": draw(deposits),
        "enrolled_at_ms": enrolled,
        "deadline_ms": deadline,
        "complete": complete,
        "completed_at_ms": min(max(completed, 0), UINT48),
        "score_bps": score,
    }


def on_chain(chain: Chain, case: dict) -> formula.Split:
    t: formula.Terms = case["terms"]
    struct = (
        [(x.within_s, x.bps) for x in t.tranches],
        t.linear,
        t.min_score_bps,
        t.creator_share_bps,
        case["deposit"],
        case["enrolled_at_ms"],
        case["deadline_ms"],
        case["complete"],
        case["completed_at_ms"],
        case["score_bps"],
    )
    earned, creator, platform, learner = chain.escrow.functions.quote(struct).call()
    return formula.Split(earned, creator, platform, learner)


def in_python(case: dict) -> formula.Split:
    return formula.payout(
        case["terms"],
        case["deposit"],
        **{
            k: case[k]
            for k in ("enrolled_at_ms", "deadline_ms", "complete", "completed_at_ms", "score_bps")
        },
    )


EDGE = formula.Terms(
    (formula.Tranche(60, 7_000), formula.Tranche(3_600, 10_000)), True, 2_000, 8_000
)


def edge_case(completed_at_ms: int, complete: bool = True, score_bps: int = 10_000) -> dict:
    return {
        "terms": EDGE,
        "deposit": 2**128,
        "enrolled_at_ms": 1_000,
        "deadline_ms": 3_601_000,
        "complete": complete,
        "completed_at_ms": completed_at_ms,
        "score_bps": score_bps,
    }


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=cases())
@example(case=edge_case(61_000))  # exactly on the first tranche's edge: 7,000
@example(case=edge_case(61_001))  # one ms later: 10,000
@example(case=edge_case(3_601_000))  # exactly on the deadline: counts
@example(case=edge_case(3_601_001))  # one ms after: partial by the score
@example(case=edge_case(0))  # "completed" before the enrollment: t = 0
@example(case=edge_case(3_601_001, score_bps=1_999))  # below the minimum: nothing
@example(case=edge_case(3_601_001, score_bps=2_000))  # on the minimum: linear
def test_solidity_and_python_agree_to_the_wei(deployed: Chain, case: dict) -> None:
    got, want = on_chain(deployed, case), in_python(case)
    assert got == want
    assert got.creator + got.platform + got.learner == case["deposit"]
    assert got.learner >= case["deposit"] - case["deposit"] * got.earned_bps // 10_000


def test_the_edges_pay_what_the_design_says() -> None:
    d = 2**128
    assert in_python(edge_case(61_000)).earned_bps == 7_000
    assert in_python(edge_case(61_001)).earned_bps == 10_000
    assert in_python(edge_case(3_601_000)).earned_bps == 10_000
    assert in_python(edge_case(3_601_001, score_bps=4_321)).earned_bps == 4_321
    assert in_python(edge_case(3_601_001, score_bps=1_999)).earned_bps == 0
    split = in_python(edge_case(61_000))
    assert split.learner == d - d * 7_000 // 10_000 and split.payable == d * 7_000 // 10_000
    assert split.creator == split.payable * 8_000 // 10_000
    assert formula.expired(d) == formula.Split(0, 0, 0, d)


def test_metric_selects_the_score_and_the_rule() -> None:
    kw = {"score_bps": 9_000, "completed": True, "exam_bps": 4_000, "exam_passed": False}
    assert formula.metric_score("completion", **kw) == (9_000, True)
    assert formula.metric_score("exam", **kw) == (4_000, False)
    assert formula.metric_score(
        "exam", score_bps=1, completed=True, exam_bps=None, exam_passed=None
    ) == (0, False)
    with pytest.raises(ValueError, match="unknown metric"):
        formula.metric_score("minutes", **kw)
    with pytest.raises(ValueError, match="outside"):
        formula.earned_bps(
            EDGE,
            enrolled_at_ms=0,
            deadline_ms=1,
            complete=False,
            completed_at_ms=0,
            score_bps=10_001,
        )
