"""The settlement sink's decisions by the money clock (no chain needed): backdating does not pay,
a completion after the deadline does not count, the deadline waits for the settle delay, the
exam metric, and what the sink refuses before anything is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.catalog import Course
from schemas.derived import CompletionScore, CourseCompleted
from schemas.events import Enrollment
from settlement.escrows import OnChain, TermsOnChain
from settlement.formula import to_ms
from sinks.settlement.book import Refused, checksummed, outcome, plan_deposit
from tests.chain_fixtures import course

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(hours=1)
COMPLETION = TermsOnChain(
    "0x" + "11" * 20, 8000, 2000, True, "completion", 600, 86_400, ((86_400, 10_000),)
)
EXAM = TermsOnChain("0x" + "11" * 20, 8000, 2000, True, "exam", 600, 86_400, ((86_400, 10_000),))
ESCROW = OnChain(
    b"\x01" * 32, b"\x02" * 32, "ETH", 10**18, "0x" + "22" * 20, 1, to_ms(T0), to_ms(DEADLINE)
)
DELAY_MS = 30_000


def score(received: datetime, bps: int, **exam: object) -> CompletionScore:
    return CompletionScore.model_validate(
        {
            "score_id": str(uuid.uuid4()),
            "enrollment_id": str(uuid.uuid4()),
            "learner_id": "l",
            "course_id": "c",
            "payment_model": "pay_by_completion",
            "score": bps / 10_000,
            "score_bps": bps,
            "watched_fraction": 0.5,
            "quiz_fraction": 0.5,
            "complete": False,
            "as_of": received - timedelta(days=20),  # event time far back: it never matters
            "received_at": received,
            "enrolled_received_at": T0,
            "deadline_at": DEADLINE,
            **exam,
        },
        strict=False,
    )


def completed(received: datetime) -> CourseCompleted:
    return CourseCompleted.model_validate(
        {
            "completion_id": str(uuid.uuid4()),
            "enrollment_id": str(uuid.uuid4()),
            "learner_id": "l",
            "course_id": "c",
            "payment_model": "pay_by_completion",
            "completed_at": T0 - timedelta(days=10),  # backdated event time: changes nothing
            "received_at": received,
            "enrolled_received_at": T0,
            "deadline_at": DEADLINE,
        },
        strict=False,
    )


def at(moment: datetime) -> int:
    return to_ms(moment)


def test_a_completion_received_by_the_deadline_settles_at_once() -> None:
    got = outcome(
        ESCROW,
        COMPLETION,
        completed(T0 + timedelta(minutes=5)),
        score(T0 + timedelta(minutes=5), 10_000),
        at(T0 + timedelta(minutes=6)),
        DELAY_MS,
    )
    assert got is not None and got.complete and got.completed_at_ms == at(T0 + timedelta(minutes=5))


def test_backdated_event_time_never_earns_an_earlier_tranche() -> None:
    # the completion's event time is ten days before the enrollment; its received_at is what
    # the tranche is measured by
    done = completed(T0 + timedelta(minutes=50))
    got = outcome(ESCROW, COMPLETION, done, None, at(T0 + timedelta(minutes=51)), DELAY_MS)
    assert got is not None and got.completed_at_ms == at(done.received_at)


def test_a_completion_received_after_the_deadline_does_not_count() -> None:
    late = completed(DEADLINE + timedelta(milliseconds=1))
    before = score(DEADLINE - timedelta(minutes=1), 4_000)
    # nothing happens until deadline + settle delay ...
    assert outcome(ESCROW, COMPLETION, late, before, at(DEADLINE) + DELAY_MS - 1, DELAY_MS) is None
    # ... then it settles by the score received by the deadline, as not completed
    got = outcome(ESCROW, COMPLETION, late, before, at(DEADLINE) + DELAY_MS, DELAY_MS)
    assert got is not None and (got.complete, got.score_bps) == (False, 4_000)
    # on the deadline to the millisecond, it counts
    edge = outcome(ESCROW, COMPLETION, completed(DEADLINE), before, at(DEADLINE), DELAY_MS)
    assert edge is not None and edge.complete


def test_a_score_received_after_the_deadline_is_no_score() -> None:
    got = outcome(
        ESCROW,
        COMPLETION,
        None,
        score(DEADLINE + timedelta(seconds=1), 9_000),
        at(DEADLINE) + DELAY_MS,
        DELAY_MS,
    )
    assert got is not None and (got.complete, got.score_bps) == (False, 0)


def test_the_exam_metric_settles_on_the_exam_pass() -> None:
    passed = score(
        T0 + timedelta(minutes=9),
        6_000,
        exam_bps=9_000,
        exam_passed=True,
        exam_passed_received_at=T0 + timedelta(minutes=8),
    )
    got = outcome(ESCROW, EXAM, None, passed, at(T0 + timedelta(minutes=10)), DELAY_MS)
    assert got is not None and (got.complete, got.score_bps) == (True, 9_000)
    assert got.completed_at_ms == at(T0 + timedelta(minutes=8))
    failed = score(T0 + timedelta(minutes=9), 6_000, exam_bps=3_000, exam_passed=False)
    assert outcome(ESCROW, EXAM, completed(T0), failed, at(T0), DELAY_MS) is None
    got = outcome(ESCROW, EXAM, completed(T0), failed, at(DEADLINE) + DELAY_MS, DELAY_MS)
    assert got is not None and (got.complete, got.score_bps) == (False, 3_000)


def enrollment(
    received: datetime | None, deadline: datetime, refund: str, amount: int
) -> Enrollment:
    return Enrollment.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "occurred_at": T0,
            "received_at": received,
            "learner_id": "l",
            "session_id": "s",
            "client": {
                "platform": "server",
                "app_version": "1",
                "device": "d",
                "network_type": "ethernet",
                "region": "r",
                "edge_node": "e",
            },
            "course_id": "c-escrow",
            "price": {"amount_minor": 1, "currency": "EUR"},
            "payment_model": "pay_by_completion",
            "escrow": {"deposit_wei": str(amount), "refund_address": refund},
            "deadline_at": deadline,
        },
        strict=False,
    )


def test_deposits_are_planned_by_the_money_clock_or_refused_with_a_reason() -> None:
    c: Course = course(deadline_days=1)
    good = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    plan = plan_deposit(enrollment(T0, T0 + timedelta(hours=2), good.lower(), 5), c)
    assert (plan.enrolled_ms, plan.refund_to) == (to_ms(T0), good)  # checksummed
    cases = {
        "beyond the course's cap": enrollment(T0, T0 + timedelta(days=1, seconds=1), good, 5),
        "is not after": enrollment(DEADLINE + timedelta(hours=1), DEADLINE, good, 5),
        "no received_at": enrollment(None, DEADLINE, good, 5),
        r"not in \(0, 2\^200\]": enrollment(T0, DEADLINE, good, 2**200 + 1),
        "zero address": enrollment(T0, DEADLINE, "0x" + "0" * 40, 5),
        "checksum": enrollment(T0, DEADLINE, good[:-1] + "c", 5),
    }
    for reason, e in cases.items():
        with pytest.raises(Refused, match=reason):
            plan_deposit(e, c)
    with pytest.raises(Refused, match="not in the catalogue"):
        plan_deposit(enrollment(T0, DEADLINE, good, 5), None)
    assert checksummed(good.upper().replace("0X", "0x"), "x") == good
