"""The course catalogue (``course.catalog``, compacted, keyed by ``course_id``).

Later jobs read video lengths and required items (completion), prices and payout policies
(settlement), and creator payout addresses (the escrow contract) from here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, model_validator

from schemas.base import Address, Id, Money, Strict, Text, UtcDatetime

DEFAULT_SETTLE_DELAY_S = 30
"""The settlement sink's default wait after a deadline (for events still in flight), in seconds.

The catalogue does not know the sink's setting: validate with ``context={"settle_delay_s": n}``
to check a course's grace against another delay.
"""

MAX_DEADLINE_DAYS = 3650
DAY_S = 86_400


class Video(Strict):
    video_id: Id
    title: Text
    length_s: float = Field(gt=0, le=86_400)
    required: bool = True


class Quiz(Strict):
    quiz_id: Id
    title: Text
    required: bool = True
    pass_fraction: float = Field(0.6, gt=0, le=1, description="score / max_score to pass")


class CompletionRule(Strict):
    """How a completion score in [0, 1] is computed, and when a course counts as complete."""

    video_weight: float = Field(0.8, ge=0, le=1)
    quiz_weight: float = Field(0.2, ge=0, le=1)
    required_watch_fraction: float = Field(
        0.9, gt=0, le=1, description="Complete when every required video is watched this much"
    )

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> CompletionRule:
        if abs(self.video_weight + self.quiz_weight - 1.0) > 1e-9:
            raise ValueError("video_weight + quiz_weight must be 1")
        return self


class Tranche(Strict):
    """One step of the payout schedule: a completion received within ``within_s`` seconds of
    the enrollment (the collector's clock) earns ``bps`` of the deposit."""

    within_s: int = Field(
        ge=1,
        le=MAX_DEADLINE_DAYS * DAY_S,
        description="Seconds from enrollment to completion, both by the collector's received_at",
    )
    bps: int = Field(ge=0, le=10_000, description="Earned basis points of the deposit")


class PayoutPolicy(Strict):
    """How a pay-by-completion deposit ``D`` is split when it settles. All integers; shares in
    basis points (1 bps = 1/10,000). ``t`` = the completion's ``received_at`` - the enrollment's
    ``received_at`` (the collector's clock; ``occurred_at`` never moves money).

    - Completion received by the deadline: ``earned_bps = tranche_bps(t)``, the ``bps`` of the
      first of :meth:`effective_tranches` with ``t <= within_s``.
    - At the deadline without completion: ``earned_bps = s_bps`` if ``partial = "linear"`` and
      ``s_bps >= min_score_bps``, else 0 (``s_bps``: the metric's score in basis points).
    - On ``expire`` (the oracle never settled, after the deadline plus the grace): 0.
    - ``payable = D * earned_bps // 10000``; ``creator = payable * creator_share_bps // 10000``;
      ``platform = payable - creator``; ``learner = D - payable``. The three add up to ``D``,
      and every rounding favours the learner.

    The terms are pinned at deposit: a later catalogue edit never changes an open escrow.
    """

    creator_share_bps: int = Field(
        8000,
        ge=0,
        le=10_000,
        description="The creator's share of what is earned; the platform's is the rest",
    )
    partial: Literal["none", "linear"] = "linear"
    min_score: float = Field(0.2, ge=0, le=1)
    deadline_days: int = Field(30, ge=1, le=MAX_DEADLINE_DAYS)
    grace_days: int = Field(7, ge=0, le=365, description="After the deadline, expire() refunds")
    grace_s: int | None = Field(
        None, ge=1, le=365 * DAY_S, description="The grace in seconds; overrides grace_days"
    )
    # at least one tranche: checked in the validator below (with a message that says what to
    # do), declared for the JSON Schema here
    tranches: Annotated[list[Tranche], Field(json_schema_extra={"minItems": 1})] | None = Field(
        None,
        description="Earned bps by time to completion, strictly ascending in within_s, the last "
        "covering the deadline; default one tranche {within_s: deadline, bps: 10000}",
    )
    metric: Literal["completion", "exam"] = Field(
        "completion", description="The score that settles: the completion score, or an exam's"
    )
    exam_quiz_id: Id | None = Field(
        None, description="metric 'exam': the course's quiz whose best score is the metric"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PayoutPolicy:
        self._check_tranches()
        if self.metric == "exam" and self.exam_quiz_id is None:
            raise ValueError(
                "metric 'exam' needs exam_quiz_id: name the course's quiz whose best score "
                "settles the escrow"
            )
        if self.metric != "exam" and self.exam_quiz_id is not None:
            raise ValueError(
                f"exam_quiz_id {self.exam_quiz_id!r} is set but metric is {self.metric!r}: "
                "set metric to 'exam', or remove exam_quiz_id"
            )
        return self

    def _check_tranches(self) -> None:
        if self.tranches is None:
            return
        if not self.tranches:
            raise ValueError(
                "tranches is empty: give at least one {within_s, bps}, or leave tranches out "
                "for the default (one tranche {within_s: deadline, bps: 10000})"
            )
        for i in range(1, len(self.tranches)):
            before, this = self.tranches[i - 1].within_s, self.tranches[i].within_s
            if this <= before:
                raise ValueError(
                    f"tranches must be strictly ascending in within_s: tranche {i} has "
                    f"within_s={this} after within_s={before}; sort them and merge equal ones"
                )
        last, deadline = self.tranches[-1].within_s, self.deadline_seconds
        if last < deadline:
            raise ValueError(
                f"the last tranche must cover the deadline: its within_s={last} is less than "
                f"deadline_days * 86400 = {deadline} (deadline_days={self.deadline_days}); "
                f"raise it to at least {deadline}"
            )

    @property
    def deadline_seconds(self) -> int:
        """The longest deadline an enrollment may have, in seconds."""
        return self.deadline_days * DAY_S

    @property
    def grace_seconds(self) -> int:
        """After the deadline, how long until ``expire`` opens: ``grace_s``, else ``grace_days``."""
        return self.grace_s if self.grace_s is not None else self.grace_days * DAY_S

    @property
    def min_score_bps(self) -> int:
        """``min_score`` in basis points, rounded once, here."""
        return round(self.min_score * 10_000)

    def effective_tranches(self) -> list[Tranche]:
        """``tranches``, or the default: one tranche ``{within_s: deadline, bps: 10000}``."""
        if self.tranches is not None:
            return list(self.tranches)
        return [Tranche(within_s=self.deadline_seconds, bps=10_000)]


class Course(Strict):
    """A course as published by the platform."""

    type: Literal["course"] = "course"
    course_id: Id
    title: Text
    category: Id
    level: Literal["beginner", "intermediate", "advanced"]
    creator_id: Id
    creator_address: Address = Field(description="Where the escrow pays the creator")
    price: Money
    payment_models: list[Literal["one_time", "subscription", "pay_by_completion"]] = Field(
        min_length=1
    )
    videos: list[Video] = Field(min_length=1)
    quizzes: list[Quiz] = Field(default_factory=list)
    completion: CompletionRule = Field(default_factory=CompletionRule)
    payout: PayoutPolicy = Field(default_factory=PayoutPolicy)
    updated_at: UtcDatetime

    @model_validator(mode="after")
    def _unique_items(self) -> Course:
        for kind, ids in (
            ("video", [v.video_id for v in self.videos]),
            ("quiz", [q.quiz_id for q in self.quizzes]),
        ):
            if len(ids) != len(set(ids)):
                raise ValueError(f"duplicate {kind} ids in course {self.course_id}")
        if not any(v.required for v in self.videos):
            raise ValueError("a course needs at least one required video")
        return self

    @model_validator(mode="after")
    def _payout_fits_course(self, info: ValidationInfo) -> Course:
        """The exam is one of this course's quizzes, and ``expire`` never opens before
        settlement runs (grace > the sink's settle delay, from the validation context)."""
        payout, quiz_ids = self.payout, [q.quiz_id for q in self.quizzes]
        if payout.exam_quiz_id is not None and payout.exam_quiz_id not in quiz_ids:
            raise ValueError(
                f"payout.exam_quiz_id {payout.exam_quiz_id!r} is not a quiz of course "
                f"{self.course_id!r} (its quizzes: {quiz_ids}); name one of them"
            )
        context = info.context if isinstance(info.context, dict) else {}
        delay = context.get("settle_delay_s", DEFAULT_SETTLE_DELAY_S)
        if payout.grace_seconds <= delay:
            raise ValueError(
                f"course {self.course_id!r}: the payout grace of {payout.grace_seconds} s "
                "(grace_s, else grace_days * 86400) must exceed the settlement delay of "
                f"{delay} s, or expire() could refund before settlement runs; raise grace_s or "
                "grace_days"
            )
        return self
