"""A learner's course journeys: browse, enroll (one-time, subscription or pay by completion),
study the videos and quizzes in order, and complete the course or drop out.

``Learner`` plans each journey out of the activities of ``LearnerActivities``; ``Journey`` records
how one ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas import Course, Enrollment, Escrow, Quiz, Video
from streams.simulate.activities import LearnerActivities

Outcome = Literal["completed", "dropped_out", "browsed_only"]

# What the payment provider would convert: 3200 EUR per ETH, so one cent is 1e18 / 320000 wei.
WEI_PER_MINOR = 10**18 // 320_000


@dataclass(frozen=True)
class Journey:
    """One learner's go at one course, and how it ended."""

    learner_id: str
    course_id: str
    outcome: Outcome
    payment_model: str | None = None
    enrollment_id: str | None = None


def _steps(course: Course) -> list[Video | Quiz]:
    """Videos in order, each quiz after the video that closes its part of the course."""
    after: dict[int, list[Quiz]] = {}
    for j, quiz in enumerate(course.quizzes):
        at = max(0, (j + 1) * len(course.videos) // len(course.quizzes) - 1)
        after.setdefault(at, []).append(quiz)
    steps: list[Video | Quiz] = []
    for i, video in enumerate(course.videos):
        steps += [video, *after.get(i, [])]
    return steps


class Learner(LearnerActivities):
    """Drafts one learner's events; the Simulation lays them out in time."""

    def journey(self) -> int:
        """Draft one course journey; returns the number of events (0: no course left)."""
        rng, catalog = self.rng, self.sim.catalog
        candidates = [c for c in catalog if c.course_id not in self.enrolled]
        if not candidates:
            return 0
        before = len(self.drafts)
        weights = [self.sim.popularity[c.course_id] for c in candidates]
        course = rng.choices(candidates, weights=weights)[0]
        self.new_session(gap=rng.uniform(600, 3600) if self.drafts else 0.0)
        others = [c for c in catalog if c.course_id != course.course_id]
        for other in rng.sample(others, min(len(others), rng.choice((0, 0, 1, 2)))):
            self.view(other, "overview", rng.uniform(1, 10))
        self.view(course, "overview", rng.uniform(1, 10))
        for page, p in (("syllabus", 0.7), ("reviews", 0.3)):
            if rng.random() < p:
                self.view(course, page, rng.uniform(1, 5))
        if rng.random() < self.cfg.browse_only_fraction:
            if rng.random() < 0.5:
                self.view(course, "pricing", rng.uniform(1, 5))
            self.sim.journeys.append(Journey(self.learner_id, course.course_id, "browsed_only"))
            return len(self.drafts) - before
        dropout = rng.random() < self.cfg.dropout_fraction
        self.view(course, "pricing", rng.uniform(1, 5))
        model = self._payment_model(course)
        pbc = model == "pay_by_completion"
        deposit = course.price.amount_minor * WEI_PER_MINOR
        escrow = Escrow(deposit_wei=deposit, refund_address=self.refund_address) if pbc else None
        enrollment_id = self.emit(
            Enrollment, rng.uniform(5, 60), course_id=course.course_id, price=course.price,
            payment_model=model, escrow=escrow,
        )  # fmt: skip
        enrolled_at = self.t
        self.enrolled.add(course.course_id)
        completed = self._study(course, dropout)
        if pbc:
            self.pbc_windows.append((enrolled_at, self.t))
        outcome: Outcome = "completed" if completed else "dropped_out"
        self.sim.journeys.append(
            Journey(self.learner_id, course.course_id, outcome, model, str(enrollment_id))
        )
        return len(self.drafts) - before

    def _payment_model(self, course: Course) -> str:
        models = list(course.payment_models)
        if (
            "pay_by_completion" in models
            and self.rng.random() < self.cfg.pay_by_completion_fraction
        ):
            return "pay_by_completion"
        others = [m for m in models if m != "pay_by_completion"] or models
        if "subscription" in others and self.rng.random() < 0.3:
            return "subscription"
        return "one_time" if "one_time" in others else others[0]

    def _study(self, course: Course, dropout: bool) -> bool:
        """Videos and quizzes in order. Dropouts quit at a required step (or before any)."""
        rng = self.rng
        steps = _steps(course)
        quit_at = -1
        if dropout:
            if rng.random() < 0.2:
                return False  # enrolled, never started
            quit_at = rng.choice([i for i, s in enumerate(steps) if s.required])
        watched: list[Video] = []
        for i, step in enumerate(steps):
            if i and rng.random() < 0.25:  # back another day
                self.new_session(gap=rng.uniform(600, 3600))
            if isinstance(step, Video):
                if i == quit_at:
                    self.watch(course, step, until=rng.uniform(0.1, 0.7))
                    return False
                if step.required:
                    self.watch(course, step, resume_break=rng.random() < 0.15)
                    watched.append(step)
                elif (r := rng.random()) < 0.5:
                    self.watch(course, step)
                elif r < 0.75:
                    self.watch(course, step, until=rng.uniform(0.2, 0.6))
                continue
            if watched and rng.random() < 0.2:
                self.review(course, rng.choice(watched))
            if i == quit_at:
                self.quiz(course, step, "fail")
                return False
            if step.required:
                self.quiz(course, step, "pass")
            elif rng.random() < 0.6:
                self.quiz(course, step, "once")
        return True
