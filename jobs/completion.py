"""Completion scoring: what one enrollment's state holds, how events change it, and the rule.

Pure Python with no Flink import, so that the Flink job (``jobs/flink/completion.py``), tests and
reports share one implementation. See ``docs/jobs.md`` (Completion) for the formulas.

Order and repetition never change the result. Everything the state keeps is a set that only
grows (played segments, quiz attempts, enrollments), and every figure is a function of those
sets: the union of segments, the best attempt, the earliest enrollment. Applying the same events
in any order, any number of times, gives the same state.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Derived record ids: UUIDv5 over the ids they derive from (docs/architecture.md, Wire format).
NAMESPACE = uuid.UUID("3f0b6a52-6c1e-5d8c-9a57-1c2d6e4b8f10")
EPS = 1e-9


def merge(segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of closed intervals as sorted, disjoint intervals (touching ones join)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(segments):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def covered(segments: list[tuple[float, float]], length: float) -> float:
    """Seconds of ``[0, length]`` covered by the union of ``segments``."""
    clipped = [(max(0.0, s), min(length, e)) for s, e in segments if e > 0 and s < length]
    return sum(e - s for s, e in merge([(s, e) for s, e in clipped if e > s]))


def ms_to_iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def iso_to_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(frozen=True)
class VideoRule:
    video_id: str
    length_s: float
    required: bool


@dataclass(frozen=True)
class QuizRule:
    quiz_id: str
    required: bool
    pass_fraction: float


@dataclass(frozen=True)
class CourseRule:
    """What completion means for one course (from its ``course.catalog`` record)."""

    course_id: str
    videos: tuple[VideoRule, ...]
    quizzes: tuple[QuizRule, ...]
    video_weight: float = 0.8
    quiz_weight: float = 0.2
    required_watch_fraction: float = 0.9

    @classmethod
    def from_catalog(cls, record: dict[str, Any]) -> CourseRule:
        """From a ``course.catalog`` JSON object (schemas.catalog.Course on the wire)."""
        rule = record.get("completion") or {}
        return cls(
            course_id=record["course_id"],
            videos=tuple(
                VideoRule(v["video_id"], float(v["length_s"]), bool(v.get("required", True)))
                for v in record["videos"]
            ),
            quizzes=tuple(
                QuizRule(
                    q["quiz_id"], bool(q.get("required", True)), float(q.get("pass_fraction", 0.6))
                )
                for q in record.get("quizzes", [])
            ),
            video_weight=float(rule.get("video_weight", 0.8)),
            quiz_weight=float(rule.get("quiz_weight", 0.2)),
            required_watch_fraction=float(rule.get("required_watch_fraction", 0.9)),
        )


@dataclass(frozen=True)
class Figures:
    score: float
    watched_fraction: float
    quiz_fraction: float
    complete: bool


@dataclass
class EnrollmentState:
    """Everything known about one learner in one course (the job's keyed state).

    ``segments``: per video, each distinct played segment with the earliest event time that
    reported it. ``attempts``: per quiz, each distinct (score fraction) with its earliest event
    time. ``enrollments``: enrollment id → (event time, payment model); the earliest one is the
    enrollment (docs/architecture.md, Enrollments and money: at most one active enrollment per
    learner and course).
    """

    learner_id: str = ""
    course_id: str = ""
    segments: dict[str, dict[tuple[float, float], int]] = field(default_factory=dict)
    attempts: dict[str, dict[float, int]] = field(default_factory=dict)
    enrollments: dict[str, tuple[int, str]] = field(default_factory=dict)
    emitted_score: float | None = None
    completed: bool = False

    # -- applying events (each is idempotent and commutative) ----------------------------------

    def apply(self, event: dict[str, Any]) -> bool:
        """Fold one learner event (a wire-format dict) into the state. Returns whether the
        state changed: most playback events repeat segments already known (players report
        everything played so far), and those change nothing."""
        kind = event.get("type")
        t = iso_to_ms(event["occurred_at"])
        self.learner_id = self.learner_id or event["learner_id"]
        self.course_id = self.course_id or event["course_id"]
        changed = False
        if kind == "video_playback":
            known = self.segments.setdefault(event["video_id"], {})
            for start, end in event.get("played_segments") or []:
                seg = (float(start), float(end))
                if seg[1] > seg[0] and (seg not in known or t < known[seg]):
                    known[seg] = t
                    changed = True
        elif kind == "quiz_result":
            fraction = round(float(event["score"]) / float(event["max_score"]), 9)
            tried = self.attempts.setdefault(event["quiz_id"], {})
            if fraction not in tried or t < tried[fraction]:
                tried[fraction] = t
                changed = True
        elif kind == "enrollment":
            eid = str(event["event_id"])
            if eid not in self.enrollments or t < self.enrollments[eid][0]:
                self.enrollments[eid] = (t, str(event.get("payment_model", "")))
                changed = True
        return changed

    @property
    def newest_ms(self) -> int:
        """The newest event time the state holds (a function of the state, not of arrival)."""
        return max(
            [t for segs in self.segments.values() for t in segs.values()]
            + [t for tries in self.attempts.values() for t in tries.values()]
            + [t for t, _ in self.enrollments.values()],
            default=0,
        )

    @property
    def enrollment(self) -> tuple[str, int, str] | None:
        """(id, event time, payment model) of the enrollment, the earliest by (time, id)."""
        if not self.enrollments:
            return None
        eid, (t, model) = min(self.enrollments.items(), key=lambda kv: (kv[1][0], kv[0]))
        return eid, t, model

    # -- the rule ----------------------------------------------------------------------------

    def figures(self, course: CourseRule, until_ms: int | None = None) -> Figures:
        """Score and completion from what was reported up to ``until_ms`` (all when None)."""
        watched_s = 0.0
        required_s = 0.0
        all_watched = True
        for video in course.videos:
            if not video.required:
                continue
            segs = [
                s for s, t in self.segments.get(video.video_id, {}).items()
                if until_ms is None or t <= until_ms
            ]  # fmt: skip
            seen = covered(segs, video.length_s)
            watched_s += seen
            required_s += video.length_s
            if seen < course.required_watch_fraction * video.length_s - EPS:
                all_watched = False
        required_quizzes = [q for q in course.quizzes if q.required]
        passed = 0
        for quiz in required_quizzes:
            best = max(
                (f for f, t in self.attempts.get(quiz.quiz_id, {}).items()
                 if until_ms is None or t <= until_ms),
                default=None,
            )  # fmt: skip
            if best is not None and best >= quiz.pass_fraction - EPS:
                passed += 1
        watched = watched_s / required_s if required_s else 1.0
        quiz = passed / len(required_quizzes) if required_quizzes else 1.0
        score = course.video_weight * watched + course.quiz_weight * quiz
        return Figures(
            score=round(min(1.0, max(0.0, score)), 6),
            watched_fraction=round(watched, 6),
            quiz_fraction=round(quiz, 6),
            complete=all_watched and passed == len(required_quizzes),
        )

    def completed_at_ms(self, course: CourseRule) -> int:
        """The earliest event time at which what was reported meets the rule (not before the
        enrollment). The rule is monotone in time, so a binary search over event times works."""
        times = sorted(
            {t for segs in self.segments.values() for t in segs.values()}
            | {t for tries in self.attempts.values() for t in tries.values()}
        )
        lo, hi = 0, len(times) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.figures(course, times[mid]).complete:
                hi = mid
            else:
                lo = mid + 1
        enrolled = self.enrollment
        at = times[lo] if times else self.newest_ms
        return max(at, enrolled[1]) if enrolled else at

    # -- outputs -----------------------------------------------------------------------------

    def outputs(self, course: CourseRule, step: float) -> list[tuple[str, str, str]]:
        """What to emit now, as (kind, enrollment id, JSON): a ``completion.scores`` record when
        the score moved at least ``step`` since the last one (or completion was reached), and
        the one ``course.completed`` record of the enrollment."""
        enrolled = self.enrollment
        if enrolled is None:
            return []
        enrollment_id, _, payment_model = enrolled
        figures = self.figures(course)
        out: list[tuple[str, str, str]] = []
        newly_complete = figures.complete and not self.completed
        moved = self.emitted_score is None or (
            abs(figures.score - self.emitted_score) >= step - EPS
            and figures.score != self.emitted_score
        )
        if moved or newly_complete:
            record = {
                "score_id": str(
                    uuid.uuid5(NAMESPACE, f"completion.scores:{enrollment_id}:{figures.score:.6f}")
                ),
                "enrollment_id": enrollment_id,
                "learner_id": self.learner_id,
                "course_id": self.course_id,
                "score": figures.score,
                "watched_fraction": figures.watched_fraction,
                "quiz_fraction": figures.quiz_fraction,
                "complete": figures.complete,
                "as_of": ms_to_iso(self.newest_ms),
            }
            out.append(("score", enrollment_id, json.dumps(record, separators=(",", ":"))))
            self.emitted_score = figures.score
        if newly_complete:
            at_ms = self.completed_at_ms(course)
            record = {
                "completion_id": str(uuid.uuid5(NAMESPACE, f"course.completed:{enrollment_id}")),
                "enrollment_id": enrollment_id,
                "learner_id": self.learner_id,
                "course_id": self.course_id,
                "payment_model": payment_model,
                "completed_at": ms_to_iso(at_ms),
            }
            out.append(("completed", enrollment_id, json.dumps(record, separators=(",", ":"))))
            self.completed = True
        return out
