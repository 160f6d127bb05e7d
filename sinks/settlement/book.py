"""What the settlement sink knows and decides, without touching the chain.

The book holds the catalogue, the latest completion record and score per enrollment, and the
enrollments waiting for their deposit. Given an escrow as the chain holds it, it says whether
it settles now and with what (:func:`outcome`): on a completion received by the deadline, at
once; otherwise at deadline + settle delay, with the latest score received by the deadline.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from eth_utils import to_checksum_address
from pydantic import ValidationError

from schemas.catalog import Course
from schemas.derived import CompletionScore, CourseCompleted
from schemas.events import Enrollment
from settlement.contract import asset_address, course_key, enrollment_key
from settlement.escrows import OnChain, TermsOnChain
from settlement.formula import to_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One settlement the oracle sends: the contract's ``Outcome`` struct."""

    key: bytes
    complete: bool
    completed_at_ms: int
    score_bps: int

    def struct(self) -> tuple[bytes, bool, int, int]:
        return (self.key, self.complete, self.completed_at_ms, self.score_bps)


@dataclass(frozen=True)
class DepositPlan:
    """One deposit the oracle sends: the contract's ``DepositInput`` struct."""

    key: bytes
    enrollment_id: str
    course_id: str
    asset: str  # "ETH" or a token address
    amount: int
    refund_to: str
    enrolled_ms: int
    deadline_ms: int

    def struct(self) -> tuple[bytes, bytes, str, int, str, int, int]:
        return (
            self.key, course_key(self.course_id), asset_address(self.asset), self.amount,
            self.refund_to, self.enrolled_ms, self.deadline_ms,
        )  # fmt: skip


class Refused(ValueError):
    """An enrollment the escrow cannot take (dead-lettered with this reason)."""


MAX_DEPOSIT = 2**200  # the contract's bound: deposit * 10,000 never overflows


def checksummed(address: str, field_name: str) -> str:
    """An address in EIP-55 form. All-lower or all-upper hex carries no checksum and is
    accepted; mixed case must be a valid checksum (a typo would send money elsewhere)."""
    body = address[2:]
    if body.lower() == body or body.upper() == body:
        return to_checksum_address(address)
    if to_checksum_address(address) != address:
        raise Refused(f"{field_name} {address} has a wrong EIP-55 checksum: a typo?")
    return address


def plan_deposit(enrollment: Enrollment, course: Course | None) -> DepositPlan:
    """The deposit of a pay-by-completion enrollment, or :class:`Refused` saying why not."""
    if enrollment.escrow is None or enrollment.deadline_at is None:
        raise Refused("not a pay-by-completion enrollment")
    if course is None:
        raise Refused(f"course {enrollment.course_id!r} is not in the catalogue")
    if "pay_by_completion" not in course.payment_models:
        raise Refused(f"course {course.course_id!r} does not offer pay_by_completion")
    if enrollment.received_at is None:
        raise Refused("no received_at: enrollments move money and must come through the collector")
    enrolled_ms, deadline_ms = to_ms(enrollment.received_at), to_ms(enrollment.deadline_at)
    cap_ms = course.payout.deadline_seconds * 1000
    if deadline_ms <= enrolled_ms:
        raise Refused(
            f"deadline_at {enrollment.deadline_at.isoformat()} is not after the enrollment was "
            f"received ({enrollment.received_at.isoformat()})"
        )
    if deadline_ms - enrolled_ms > cap_ms:
        raise Refused(
            f"deadline_at {enrollment.deadline_at.isoformat()} is beyond the course's cap of "
            f"{course.payout.deadline_days} days after the enrollment was received "
            f"({enrollment.received_at.isoformat()})"
        )
    if not 0 < enrollment.escrow.deposit_wei <= MAX_DEPOSIT:
        raise Refused(f"the deposit {enrollment.escrow.deposit_wei} is not in (0, 2^200]")
    refund_to = checksummed(enrollment.escrow.refund_address, "refund_address")
    if int(refund_to, 16) == 0:
        raise Refused("refund_address is the zero address: refunds would be burnt")
    return DepositPlan(
        key=enrollment_key(enrollment.event_id),
        enrollment_id=str(enrollment.event_id),
        course_id=course.course_id,
        asset=enrollment.escrow.asset,
        amount=enrollment.escrow.deposit_wei,
        refund_to=refund_to,
        enrolled_ms=enrolled_ms,
        deadline_ms=deadline_ms,
    )


def outcome(
    escrow: OnChain,
    terms: TermsOnChain,
    completed: CourseCompleted | None,
    score: CompletionScore | None,
    now_ms: int,
    settle_delay_ms: int,
) -> Outcome | None:
    """How ``escrow`` settles now, or None while it waits (docs/settlement.md).

    Only what was received by the deadline counts: a completion or a score received later is
    treated as absent."""
    deadline = escrow.deadline_ms
    if score is not None and to_ms(score.received_at) > deadline:
        score = None
    if terms.metric == "exam":
        passed_at = score.exam_passed_received_at if score is not None else None
        complete = bool(score and score.exam_passed and passed_at and to_ms(passed_at) <= deadline)
        at_ms = to_ms(passed_at) if complete and passed_at is not None else 0
        s_bps = (score.exam_bps or 0) if score is not None else 0
    else:
        complete = completed is not None and to_ms(completed.received_at) <= deadline
        at_ms = to_ms(completed.received_at) if completed is not None and complete else 0
        s_bps = score.score_bps if score is not None else (10_000 if complete else 0)
    if complete:
        return Outcome(escrow.key, True, at_ms, s_bps)
    if now_ms >= deadline + settle_delay_ms:
        return Outcome(escrow.key, False, 0, s_bps)
    return None


@dataclass
class Book:
    """The stream's side: catalogue, completions, scores, enrollments to deposit."""

    settle_delay_s: float
    courses: dict[str, Course] = field(default_factory=dict)
    completed: dict[bytes, CourseCompleted] = field(default_factory=dict)  # by enrollment key
    scores: dict[bytes, CompletionScore] = field(default_factory=dict)
    to_deposit: dict[bytes, DepositPlan] = field(default_factory=dict)
    ignored: int = 0  # records for enrollments already settled: no payout changes
    offsets: dict[tuple[str, bytes], int] = field(default_factory=dict)

    def take_course(self, value: bytes) -> str | None:
        """A catalogue record; returns the course id, or None when it is not valid (with the
        settle delay as context: a grace shorter than it is refused)."""
        try:
            course = Course.model_validate_json(
                value, context={"settle_delay_s": self.settle_delay_s}
            )
        except ValidationError as exc:
            log.error("catalogue record refused by settlement: %s", exc.errors()[0]["msg"])
            return None
        self.courses[course.course_id] = course
        return course.course_id

    def _newer(self, kind: str, key: bytes, offset: int) -> bool:
        """The last record of a compacted topic is the current one: a key's records share a
        partition, so a higher offset is newer (a record read again changes nothing)."""
        if offset <= self.offsets.get((kind, key), -1):
            return False
        self.offsets[(kind, key)] = offset
        return True

    def take_completed(self, record: CourseCompleted, offset: int) -> bytes:
        key = enrollment_key(uuid.UUID(record.enrollment_id))
        if self._newer("completed", key, offset):
            self.completed[key] = record
        return key

    def take_score(self, record: CompletionScore, offset: int) -> bytes:
        key = enrollment_key(uuid.UUID(record.enrollment_id))
        if self._newer("score", key, offset):
            self.scores[key] = record
        return key

    def due(
        self, escrows: list[OnChain], terms_of: dict[int, TermsOnChain], now: datetime
    ) -> list[Outcome]:
        """Every open escrow that settles now."""
        now_ms, delay_ms = to_ms(now), int(self.settle_delay_s * 1000)
        out = []
        for escrow in escrows:
            got = outcome(
                escrow, terms_of[escrow.terms_id], self.completed.get(escrow.key),
                self.scores.get(escrow.key), now_ms, delay_ms,
            )  # fmt: skip
            if got is not None:
                out.append(got)
        return out
