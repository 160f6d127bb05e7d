"""The course catalogue (``course.catalog``, compacted, keyed by ``course_id``).

Later jobs read video lengths and required items (completion), prices and payout policies
(settlement), and creator payout addresses (the escrow contract) from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Address, Id, Money, Strict, Text, UtcDatetime


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


class PayoutPolicy(Strict):
    """How a pay-by-completion deposit is split when it settles.

    On completion the creator receives ``creator_share_bps`` of the deposit and the platform
    the rest. At the deadline without completion, ``partial = "linear"`` pays the creator
    ``creator_share_bps * score`` when the score reaches ``min_score``; the learner is refunded
    the remainder. Shares are basis points (1/100 of a percent): integers, never floats.
    """

    creator_share_bps: int = Field(8000, ge=0, le=10_000)
    partial: Literal["none", "linear"] = "linear"
    min_score: float = Field(0.2, ge=0, le=1)
    deadline_days: int = Field(30, ge=1, le=3650)
    grace_days: int = Field(7, ge=0, le=365, description="After the deadline, expire() refunds")


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
