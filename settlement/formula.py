"""The payout formula of pay-by-completion, in Python (docs/settlement.md).

One definition, implemented twice: here and in ``settlement/contracts/Payout.sol``. A property
test (tests/test_settlement_formula.py) holds the two equal to the wei. All integers: money is
in the asset's base units, shares in basis points (1/10,000), times in milliseconds of the
collector's clock, the money clock. Nothing here rounds a float.

- ``earned_bps``: a completion received by the deadline (inclusive) earns the bps of the first
  tranche with ``t <= within_s`` (``t`` = completion's ``received_at`` - the enrollment's, never
  negative); otherwise, at the deadline, ``score_bps`` if the policy is linear and the score
  reaches ``min_score_bps``, else 0. ``expire`` earns 0.
- ``payable = D * earned // 10000``; ``creator = payable * share // 10000``;
  ``platform = payable - creator``; ``learner = D - payable``. The three add up to ``D`` and
  every rounding favours the learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BPS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tranche:
    within_s: int
    bps: int


@dataclass(frozen=True)
class Terms:
    """The part of a course's payout policy the formula reads, as pinned at deposit."""

    tranches: tuple[Tranche, ...]
    linear: bool
    min_score_bps: int
    creator_share_bps: int


@dataclass(frozen=True)
class Split:
    earned_bps: int
    creator: int
    platform: int
    learner: int

    @property
    def payable(self) -> int:
        return self.creator + self.platform


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (integer arithmetic, no float timestamp)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: money times are UTC and tz-aware")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def tranche_bps(tranches: Sequence[Tranche], t_ms: int) -> int:
    """The bps of the first tranche with ``t <= within_s``; 0 after the last."""
    for tranche in tranches:
        if t_ms <= tranche.within_s * 1000:
            return tranche.bps
    return 0


def counts(complete: bool, completed_at_ms: int, deadline_ms: int) -> bool:
    """A completion counts when it was received by the deadline (inclusive)."""
    return complete and completed_at_ms <= deadline_ms


def earned_bps(
    terms: Terms,
    *,
    enrolled_at_ms: int,
    deadline_ms: int,
    complete: bool,
    completed_at_ms: int,
    score_bps: int,
) -> int:
    if not 0 <= score_bps <= BPS:
        raise ValueError(f"score_bps {score_bps} is outside [0, {BPS}]")
    if counts(complete, completed_at_ms, deadline_ms):
        return tranche_bps(terms.tranches, max(0, completed_at_ms - enrolled_at_ms))
    if terms.linear and score_bps >= terms.min_score_bps:
        return score_bps
    return 0


def split(deposit: int, earned: int, creator_share_bps: int) -> Split:
    payable = deposit * earned // BPS
    creator = payable * creator_share_bps // BPS
    return Split(earned, creator, payable - creator, deposit - payable)


def payout(
    terms: Terms,
    deposit: int,
    *,
    enrolled_at_ms: int,
    deadline_ms: int,
    complete: bool,
    completed_at_ms: int,
    score_bps: int,
) -> Split:
    """What one settlement credits the creator, the platform and the learner."""
    earned = earned_bps(
        terms,
        enrolled_at_ms=enrolled_at_ms,
        deadline_ms=deadline_ms,
        complete=complete,
        completed_at_ms=completed_at_ms,
        score_bps=score_bps,
    )
    return split(deposit, earned, terms.creator_share_bps)


def expired(deposit: int) -> Split:
    """``expire``: the oracle never acted, the learner gets everything back."""
    return Split(0, 0, 0, deposit)


def metric_score(
    metric: str, *, score_bps: int, completed: bool, exam_bps: int | None, exam_passed: bool | None
) -> tuple[int, bool]:
    """``(s_bps, complete)`` under the policy's metric: the completion score and rule, or the
    exam's best score fraction and whether it was passed (no attempt: 0, not passed)."""
    if metric == "completion":
        return score_bps, completed
    if metric == "exam":
        return exam_bps or 0, bool(exam_passed)
    raise ValueError(f"unknown metric {metric!r}: 'completion' or 'exam'")
