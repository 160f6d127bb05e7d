"""The catalogue's payout policy (tranches, metric, grace) and the escrow's asset: the rules the
settlement contract relies on, held at the door of the catalogue and of the enrollment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Course, Enrollment, PayoutPolicy, parse_event, to_wire
from schemas.catalog import DEFAULT_SETTLE_DELAY_S, Tranche
from schemas.events import Escrow
from schemas.export import EXAMPLES_DIR
from streams.simulate import SimConfig, build_catalog

COURSE: dict[str, Any] = json.loads((EXAMPLES_DIR / "course.json").read_text())
ENROLLMENT: dict[str, Any] = json.loads((EXAMPLES_DIR / "enrollment.json").read_text())
DEADLINE_S = 30 * 86_400
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REFUND = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def course(context: dict[str, Any] | None = None, **payout: Any) -> Course:
    """The documented course with its payout policy replaced by ``payout``."""
    return Course.model_validate_json(json.dumps({**COURSE, "payout": payout}), context=context)


def error_of(**payout: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        course(**payout)
    return str(caught.value)


# -- defaults: existing records stay valid --------------------------------------------------------


def test_catalog_policy_defaults_keep_a_policy_without_the_new_fields_valid() -> None:
    policy = course(creator_share_bps=8000, deadline_days=30, grace_days=7).payout
    assert (policy.tranches, policy.metric, policy.exam_quiz_id, policy.grace_s) == (
        None,
        "completion",
        None,
        None,
    )
    assert policy.grace_seconds == 7 * 86_400


def test_catalog_policy_effective_tranches_default_is_one_full_tranche_at_the_deadline() -> None:
    assert PayoutPolicy(deadline_days=10).effective_tranches() == [
        Tranche(within_s=10 * 86_400, bps=10_000)
    ]
    given = [Tranche(within_s=60, bps=8000), Tranche(within_s=DEADLINE_S, bps=10_000)]
    assert PayoutPolicy(tranches=given).effective_tranches() == given


def test_catalog_policy_min_score_bps_is_rounded_once() -> None:
    assert PayoutPolicy(min_score=0.2).min_score_bps == 2000
    assert PayoutPolicy(min_score=0.33333).min_score_bps == 3333
    assert PayoutPolicy(min_score=0.12345).min_score_bps == 1234  # 1234.5 rounds to even
    assert PayoutPolicy(min_score=0.56789).min_score_bps == 5679
    assert PayoutPolicy(min_score=1.0).min_score_bps == 10_000


# -- tranches ---------------------------------------------------------------------------------


def test_catalog_policy_valid_tranches_with_an_early_finish_refund() -> None:
    tranches = [{"within_s": 3600, "bps": 8000}, {"within_s": DEADLINE_S, "bps": 10_000}]
    policy = course(tranches=tranches).payout
    assert [(t.within_s, t.bps) for t in policy.effective_tranches()] == [
        (3600, 8000),
        (DEADLINE_S, 10_000),
    ]
    # the last tranche may reach beyond the deadline
    assert course(tranches=[{"within_s": DEADLINE_S + 1, "bps": 0}]).payout.tranches


@pytest.mark.parametrize(
    ("tranches", "expected"),
    [
        ([], "tranches is empty"),
        (
            [{"within_s": 600, "bps": 9000}, {"within_s": 600, "bps": 10_000}],
            "strictly ascending in within_s: tranche 1 has within_s=600 after within_s=600",
        ),
        (
            [{"within_s": DEADLINE_S, "bps": 9000}, {"within_s": 60, "bps": 10_000}],
            f"tranche 1 has within_s=60 after within_s={DEADLINE_S}",
        ),
        (
            [{"within_s": 60, "bps": 9000}, {"within_s": DEADLINE_S - 1, "bps": 10_000}],
            f"within_s={DEADLINE_S - 1} is less than deadline_days * 86400 = {DEADLINE_S}",
        ),
        ([{"within_s": DEADLINE_S, "bps": 10_001}], "tranches.0.bps"),
        ([{"within_s": DEADLINE_S, "bps": -1}], "tranches.0.bps"),
        ([{"within_s": 0, "bps": 100}, {"within_s": DEADLINE_S, "bps": 1}], "tranches.0.within_s"),
        ([{"within_s": DEADLINE_S, "bps": 5000, "extra": 1}], "tranches.0.extra"),
    ],
)
def test_catalog_policy_invalid_tranches_are_rejected_with_the_reason(
    tranches: list[dict[str, Any]], expected: str
) -> None:
    assert expected in error_of(tranches=tranches)


def test_catalog_policy_last_tranche_is_checked_against_this_policys_deadline() -> None:
    tranches = [{"within_s": 5 * 86_400, "bps": 10_000}]
    assert course(tranches=tranches, deadline_days=5).payout.tranches
    assert "raise it to at least 518400" in error_of(tranches=tranches, deadline_days=6)


def test_catalog_policy_exported_json_schema_documents_the_tranche_rules() -> None:
    schema = json.loads((EXAMPLES_DIR.parent / "json" / "course.json").read_text())
    policy = schema["$defs"]["PayoutPolicy"]["properties"]
    array = next(s for s in policy["tranches"]["anyOf"] if s.get("type") == "array")
    assert array["minItems"] == 1
    tranche = schema["$defs"]["Tranche"]["properties"]
    assert (tranche["bps"]["minimum"], tranche["bps"]["maximum"]) == (0, 10_000)
    assert tranche["within_s"]["minimum"] == 1


# -- metric -----------------------------------------------------------------------------------


def test_catalog_policy_exam_metric_names_one_of_the_courses_quizzes() -> None:
    policy = course(metric="exam", exam_quiz_id="quiz-1").payout
    assert (policy.metric, policy.exam_quiz_id) == ("exam", "quiz-1")


def test_catalog_policy_exam_metric_without_a_quiz_id_is_rejected() -> None:
    assert "metric 'exam' needs exam_quiz_id" in error_of(metric="exam")


def test_catalog_policy_exam_quiz_id_without_the_exam_metric_is_rejected() -> None:
    message = error_of(exam_quiz_id="quiz-1")
    assert "exam_quiz_id 'quiz-1' is set but metric is 'completion'" in message


def test_catalog_policy_exam_quiz_must_be_a_quiz_of_the_course() -> None:
    message = error_of(metric="exam", exam_quiz_id="quiz-9")
    assert "exam_quiz_id 'quiz-9' is not a quiz of course 'course-data-101'" in message
    assert "['quiz-1']" in message
    no_quizzes = {**COURSE, "quizzes": [], "payout": {"metric": "exam", "exam_quiz_id": "quiz-1"}}
    with pytest.raises(ValidationError, match="is not a quiz of course"):
        Course.model_validate_json(json.dumps(no_quizzes))


def test_catalog_policy_unknown_metric_is_rejected() -> None:
    assert "payout.metric" in error_of(metric="attendance")


# -- grace ------------------------------------------------------------------------------------


def test_catalog_policy_grace_s_overrides_grace_days() -> None:
    assert PayoutPolicy(grace_days=7, grace_s=90).grace_seconds == 90
    assert PayoutPolicy(grace_days=2).grace_seconds == 2 * 86_400
    assert "payout.grace_s" in error_of(grace_s=0)


def test_catalog_policy_grace_must_exceed_the_default_settle_delay_without_context() -> None:
    assert DEFAULT_SETTLE_DELAY_S == 30
    assert course(grace_s=DEFAULT_SETTLE_DELAY_S + 1).payout.grace_seconds == 31
    message = error_of(grace_s=DEFAULT_SETTLE_DELAY_S)
    assert "course 'course-data-101': the payout grace of 30 s" in message
    assert "must exceed the settlement delay of 30 s" in message
    assert "raise grace_s or grace_days" in message


def test_catalog_policy_zero_grace_days_is_now_an_error() -> None:
    assert "the payout grace of 0 s" in error_of(grace_days=0)
    assert course(grace_days=0, grace_s=120).payout.grace_seconds == 120


def test_catalog_policy_grace_is_checked_against_the_settle_delay_in_the_context() -> None:
    assert course({"settle_delay_s": 60}, grace_s=61).payout.grace_s == 61
    with pytest.raises(ValidationError, match="must exceed the settlement delay of 600 s"):
        course({"settle_delay_s": 600}, grace_s=120)
    # a context without the setting falls back to the default
    with pytest.raises(ValidationError, match="settlement delay of 30 s"):
        course({"other": 1}, grace_s=30)
    assert course({"other": 1}, grace_s=31).payout.grace_s == 31
    # from JSON, too
    raw = json.dumps({**COURSE, "payout": {"grace_s": 100}})
    with pytest.raises(ValidationError, match="settlement delay of 100 s"):
        Course.model_validate_json(raw, context={"settle_delay_s": 100})


# -- the escrow's asset -----------------------------------------------------------------------


def escrow_event(**escrow: Any) -> Enrollment:
    event = parse_event(json.dumps({**ENROLLMENT, "escrow": {**ENROLLMENT["escrow"], **escrow}}))
    assert isinstance(event, Enrollment)
    return event


def test_catalog_escrow_asset_defaults_to_eth_and_accepts_a_token_address() -> None:
    assert Escrow(deposit_wei=1, refund_address=REFUND).asset == "ETH"
    without = {k: v for k, v in ENROLLMENT["escrow"].items() if k != "asset"}
    old = parse_event(json.dumps({**ENROLLMENT, "escrow": without}))
    assert isinstance(old, Enrollment) and old.escrow is not None and old.escrow.asset == "ETH"
    token = escrow_event(asset=TOKEN, deposit_wei="49000000")
    assert token.escrow is not None
    assert (token.escrow.asset, token.escrow.deposit_wei) == (TOKEN, 49_000_000)


@pytest.mark.parametrize(
    ("asset", "expected"),
    [
        ("eth", 'asset must be "ETH" or an ERC-20 token address'),
        ("USDC", "got 'USDC'"),
        ("0x5FbDB2315678afecb367f032d93F642f64180a", "0x and 40 hex digits"),
        (12, "got 12"),
        (None, "got None"),
        ("0x" + "0" * 40, 'is not a token: use "ETH" for ether'),
    ],
)
def test_catalog_escrow_asset_rejects_junk_with_the_reason(asset: object, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        escrow_event(asset=asset)
    assert expected in str(caught.value)
    assert "escrow.asset" in str(caught.value)


# -- the simulator's catalogue uses the new fields ----------------------------------------------


def test_simulator_catalogue_policies_show_every_settlement_path() -> None:
    cfg = SimConfig(
        learners=1,
        courses=8,
        rate=0,
        duration_s=600,
        seed=7,
        run_id="r",
        start=datetime(2026, 11, 28, tzinfo=UTC),
        deadline_s=300,
    )
    catalog = build_catalog(cfg)
    for c in catalog:
        # valid against a settle delay of a minute too, and from the wire
        assert Course.model_validate_json(to_wire(c), context={"settle_delay_s": 60}) == c
        assert c.payout.grace_s is not None and c.payout.grace_seconds <= 300
        assert c.payout.deadline_days * 86_400 >= cfg.deadline_s
    early = [c for c in catalog if c.payout.tranches]
    assert early and len(early) < len(catalog)
    for c in early:
        first, last = c.payout.effective_tranches()
        assert first.bps < last.bps == 10_000  # an early finish refunds the learner
        assert first.within_s == 150 < cfg.deadline_s
    exams = [c for c in catalog if c.payout.metric == "exam"]
    assert len(exams) == 1
    assert exams[0].payout.exam_quiz_id in {q.quiz_id for q in exams[0].quizzes}
    first_with_quiz = next(c for c in catalog if c.quizzes)
    assert exams[0] is first_with_quiz
