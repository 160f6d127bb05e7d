"""Completion scoring per enrollment: what the job's keyed state holds, how events change it,
and the rule.

Pure Python with no Flink import, so that the Flink job (``jobs/flink/completion.py``), tests and
reports share one implementation. See ``docs/jobs.md`` (Completion) for the formulas.

**Enrollments and the money clock.** The state is kept per (learner, course) and holds every
enrollment of that learner in that course. An event belongs to the latest enrollment whose
``received_at`` is not after the event's ``received_at``: the collector's clock, because a client
may backdate ``occurred_at`` by up to 30 days. Events received before any enrollment belong to
none, and a re-enrollment starts from nothing. A pay-by-completion enrollment counts only what
was received by its ``deadline_at``. An event that did not come through the collector has no
``received_at``; its ``occurred_at`` stands in, as in the ClickHouse sink.

**Order and repetition never change the result.** Everything the state keeps is a set that only
grows: the enrollments, and the reports (a played range of a video, or a quiz score fraction),
each with every ``received_at`` it was reported at and the earliest ``occurred_at`` reported
then. Enrollment i's reports are those received in ``[enrollment_i, enrollment_i+1)`` (and by
its deadline), and every figure is a function of those sets, so any order and any repetition of
the same events gives the same state.

**What the state keeps.** Per enrollment: its id, times, payment model, deadline, the last score
emitted and whether its completion was emitted. Per report: one entry per distinct (video,
played range, received_at) and (quiz, score fraction, received_at), a range being one of the
merged ranges of one playback event. That grows with the learner's reports in the course (never
with repetition: a repeated event adds nothing), not with time. Nothing can be dropped exactly,
because an enrollment that arrives late (another topic) may still split a window.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# Derived record ids: UUIDv5 over the ids they derive from (docs/architecture.md, Wire format).
NAMESPACE = uuid.UUID("3f0b6a52-6c1e-5d8c-9a57-1c2d6e4b8f10")
EPS = 1e-9
PAY_BY_COMPLETION = "pay_by_completion"

Times = dict[int, int]  # received_at (ms) -> the earliest occurred_at (ms) reported then


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


def to_bps(fraction: float) -> int:
    """Basis points of a fraction in [0, 1], made once from its 6-decimal value:
    ``floor(x * 10000 + 1e-6)`` (0.29 -> 2900 although 0.29 * 10000 = 2899.9999...)."""
    return min(10_000, max(0, math.floor(round(fraction, 6) * 10_000 + 1e-6)))


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
    """What completion means for one course (from its ``course.catalog`` record), and the
    exam its payout policy names, if any."""

    course_id: str
    videos: tuple[VideoRule, ...]
    quizzes: tuple[QuizRule, ...]
    video_weight: float = 0.8
    quiz_weight: float = 0.2
    required_watch_fraction: float = 0.9
    exam_quiz_id: str | None = None  # payout.metric == "exam": the quiz whose score settles

    @classmethod
    def from_catalog(cls, record: dict[str, Any]) -> CourseRule:
        """From a ``course.catalog`` JSON object (schemas.catalog.Course on the wire)."""
        rule = record.get("completion") or {}
        payout = record.get("payout") or {}
        exam = payout.get("exam_quiz_id") if payout.get("metric") == "exam" else None
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
            exam_quiz_id=str(exam) if exam else None,
        )

    def exam_pass_fraction(self) -> float | None:
        """The exam's pass fraction; None when there is no exam or the course lacks that quiz
        (the catalogue refuses such a policy; here nothing can pass it)."""
        return next((q.pass_fraction for q in self.quizzes if q.quiz_id == self.exam_quiz_id), None)


@dataclass(frozen=True)
class Enrolled:
    """One enrollment: its id is its enrollment event's ``event_id``."""

    enrollment_id: str
    received_ms: int
    occurred_ms: int
    payment_model: str
    deadline_ms: int | None  # pay by completion only


@dataclass(frozen=True)
class Cut:
    """Which reports count: received in ``[lo, hi)`` (``hi`` None: no end) and, when
    ``until_occurred`` is set, occurred by then."""

    lo: int
    hi: int | None = None
    until_occurred: int | None = None

    def admits(self, received: int, occurred: int) -> bool:
        return (
            received >= self.lo
            and (self.hi is None or received < self.hi)
            and (self.until_occurred is None or occurred <= self.until_occurred)
        )

    def any(self, times: Times) -> bool:
        return any(self.admits(r, o) for r, o in times.items())

    def until_received(self, received: int) -> Cut:
        hi = received + 1 if self.hi is None else min(self.hi, received + 1)
        return replace(self, hi=hi)


@dataclass(frozen=True)
class Figures:
    score: float
    watched_fraction: float
    quiz_fraction: float
    complete: bool
    exam_bps: int | None = None  # None: the payout policy names no exam
    exam_passed: bool | None = None

    @property
    def score_bps(self) -> int:
        return to_bps(self.score)


def first_true(values: list[int], holds: Callable[[int], bool]) -> int | None:
    """The first of the sorted ``values`` for which the monotone ``holds`` is true (it holds for
    the last one), found by binary search; None when ``values`` is empty."""
    if not values:
        return None
    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(values[mid]):
            hi = mid
        else:
            lo = mid + 1
    return values[lo]


def _note(times: Times, received: int, occurred: int) -> bool:
    if received in times and times[received] <= occurred:
        return False
    times[received] = occurred
    return True


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


@dataclass
class EnrollmentState:
    """Everything known about one learner in one course (the job's keyed state).

    ``segments``: per video, each distinct played range with the times it was reported at.
    ``attempts``: per quiz, each distinct score fraction with the times it was reported at.
    ``enrollments``: enrollment id → ``Enrolled``. ``emitted``: per enrollment, the last
    (score, exam_bps, exam_passed) emitted; ``completed``: enrollments whose completion was.
    """

    learner_id: str = ""
    course_id: str = ""
    segments: dict[str, dict[tuple[float, float], Times]] = field(default_factory=dict)
    attempts: dict[str, dict[float, Times]] = field(default_factory=dict)
    enrollments: dict[str, Enrolled] = field(default_factory=dict)
    emitted: dict[str, tuple[float, int | None, bool | None]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)

    # -- applying events (each is idempotent and commutative) ----------------------------------

    def apply(self, event: dict[str, Any]) -> bool:
        """Fold one learner event (a wire-format dict) into the state. Returns whether the
        state changed (a repeated event changes nothing)."""
        kind = event.get("type")
        occurred = iso_to_ms(event["occurred_at"])
        received = iso_to_ms(event.get("received_at") or event["occurred_at"])
        self.learner_id = self.learner_id or event["learner_id"]
        self.course_id = self.course_id or event["course_id"]
        changed = False
        if kind == "video_playback":
            known = self.segments.setdefault(event["video_id"], {})
            played = [(float(s), float(e)) for s, e in event.get("played_segments") or []]
            for seg in merge([(s, e) for s, e in played if e > s]):
                changed |= _note(known.setdefault(seg, {}), received, occurred)
        elif kind == "quiz_result":
            fraction = round(float(event["score"]) / float(event["max_score"]), 9)
            tried = self.attempts.setdefault(event["quiz_id"], {})
            changed = _note(tried.setdefault(fraction, {}), received, occurred)
        elif kind == "enrollment":
            model = str(event.get("payment_model", ""))
            deadline = event.get("deadline_at") if model == PAY_BY_COMPLETION else None
            new = Enrolled(
                str(event["event_id"]),
                received,
                occurred,
                model,
                iso_to_ms(deadline) if deadline else None,
            )
            old = self.enrollments.get(new.enrollment_id)
            if old is None or _order(new) < _order(old):  # the same id twice: the least wins
                self.enrollments[new.enrollment_id] = new
                changed = True
        return changed

    # -- enrollments and what counts for each ---------------------------------------------------

    def windows(self) -> list[tuple[Enrolled, Cut]]:
        """Each enrollment with the reports that count for it: received from its own
        ``received_at`` up to the next enrollment's, and by its deadline."""
        ordered = sorted(self.enrollments.values(), key=lambda e: (e.received_ms, e.enrollment_id))
        out = []
        for i, enrolled in enumerate(ordered):
            hi = ordered[i + 1].received_ms if i + 1 < len(ordered) else None
            if enrolled.deadline_ms is not None:
                end = enrolled.deadline_ms + 1  # received_at <= deadline_at counts
                hi = end if hi is None else min(hi, end)
            out.append((enrolled, Cut(enrolled.received_ms, hi)))
        return out

    def reports(self, cut: Cut) -> Iterator[tuple[int, int]]:
        """(received, occurred) of every report the cut admits."""
        for kinds in (self.segments, self.attempts):
            for items in kinds.values():
                for times in items.values():
                    yield from ((r, o) for r, o in times.items() if cut.admits(r, o))

    # -- the rule ----------------------------------------------------------------------------

    def figures(self, course: CourseRule, cut: Cut | None = None) -> Figures:
        """Score and completion from the reports the cut admits (every report when None)."""
        cut = cut or Cut(-(2**62))
        watched_s = 0.0
        required_s = 0.0
        all_watched = True
        for video in course.videos:
            if not video.required:
                continue
            segs = [
                s for s, times in self.segments.get(video.video_id, {}).items() if cut.any(times)
            ]
            seen = covered(segs, video.length_s)
            watched_s += seen
            required_s += video.length_s
            if seen < course.required_watch_fraction * video.length_s - EPS:
                all_watched = False
        required_quizzes = [q for q in course.quizzes if q.required]
        passed = 0
        for quiz in required_quizzes:
            best = self.best(quiz.quiz_id, cut)
            if best is not None and best >= quiz.pass_fraction - EPS:
                passed += 1
        watched = watched_s / required_s if required_s else 1.0
        quiz = passed / len(required_quizzes) if required_quizzes else 1.0
        score = course.video_weight * watched + course.quiz_weight * quiz
        exam_bps, exam_passed = None, None
        if course.exam_quiz_id:
            best, pass_fraction = self.best(course.exam_quiz_id, cut), course.exam_pass_fraction()
            exam_bps = to_bps(best or 0.0)
            exam_passed = (
                best is not None and pass_fraction is not None and best >= pass_fraction - EPS
            )
        return Figures(
            score=round(min(1.0, max(0.0, score)), 6),
            watched_fraction=round(watched, 6),
            quiz_fraction=round(quiz, 6),
            complete=all_watched and passed == len(required_quizzes),
            exam_bps=exam_bps,
            exam_passed=exam_passed,
        )

    def best(self, quiz_id: str, cut: Cut) -> float | None:
        """The best score fraction of the quiz among the attempts the cut admits."""
        tried = self.attempts.get(quiz_id, {})
        return max((f for f, times in tried.items() if cut.any(times)), default=None)

    def completion_times(self, course: CourseRule, enrolled: Enrolled, cut: Cut) -> tuple[int, int]:
        """(event time, received_at) of the completion of an enrollment whose reports meet the
        rule. ``received_at``: of the report that made the rule true, the first prefix by
        ``received_at`` that meets it. Event time: the earliest ``occurred_at`` by which the
        reports meet it, not before the enrollment. The rule is monotone in both, so a binary
        search over the distinct times works."""
        seen = list(self.reports(cut))
        received = first_true(
            sorted({r for r, _ in seen}),
            lambda r: self.figures(course, cut.until_received(r)).complete,
        )
        occurred = first_true(
            sorted({o for _, o in seen}),
            lambda o: self.figures(course, replace(cut, until_occurred=o)).complete,
        )
        return (
            max(occurred if occurred is not None else enrolled.occurred_ms, enrolled.occurred_ms),
            max(received if received is not None else enrolled.received_ms, enrolled.received_ms),
        )

    def exam_passed_received_ms(self, course: CourseRule, cut: Cut) -> int | None:
        """``received_at`` of the first admitted attempt that passed the exam."""
        pass_fraction = course.exam_pass_fraction()
        if pass_fraction is None:
            return None
        tried = self.attempts.get(course.exam_quiz_id or "", {})
        return min(
            (r for f, times in tried.items() if f >= pass_fraction - EPS
             for r, o in times.items() if cut.admits(r, o)),
            default=None,
        )  # fmt: skip

    # -- outputs -----------------------------------------------------------------------------

    def outputs(self, course: CourseRule, step: float) -> list[tuple[str, str, str]]:
        """What to emit now, as (kind, enrollment id, JSON), for every enrollment: a
        ``completion.scores`` record when its score moved at least ``step`` since its last one
        (any change for a pay-by-completion enrollment, whose score moves money), when its exam
        figures changed, or when it reached completion; and its one ``course.completed``."""
        out: list[tuple[str, str, str]] = []
        for enrolled, cut in self.windows():
            out += self._outputs(course, step, enrolled, cut)
        return out

    def _outputs(
        self, course: CourseRule, step: float, enrolled: Enrolled, cut: Cut
    ) -> list[tuple[str, str, str]]:
        eid = enrolled.enrollment_id
        figures = self.figures(course, cut)
        signature = (figures.score, figures.exam_bps, figures.exam_passed)
        last = self.emitted.get(eid)
        step = 0.0 if enrolled.deadline_ms is not None else step
        newly_complete = figures.complete and eid not in self.completed
        moved = (
            last is None
            or last[1:] != signature[1:]
            or (figures.score != last[0] and abs(figures.score - last[0]) >= step - EPS)
        )
        common = {
            "enrollment_id": eid,
            "learner_id": self.learner_id,
            "course_id": self.course_id,
            "payment_model": enrolled.payment_model,
        }
        clock = {
            "enrolled_received_at": ms_to_iso(enrolled.received_ms),
            "deadline_at": None
            if enrolled.deadline_ms is None
            else ms_to_iso(enrolled.deadline_ms),
        }
        out: list[tuple[str, str, str]] = []
        if moved or newly_complete:
            seen = list(self.reports(cut))
            exam = "" if figures.exam_bps is None else f":{figures.exam_bps}:{figures.exam_passed}"
            passed_ms = self.exam_passed_received_ms(course, cut) if figures.exam_passed else None
            record = {
                "score_id": str(
                    uuid.uuid5(NAMESPACE, f"completion.scores:{eid}:{figures.score:.6f}{exam}")
                ),
                **common,
                "score": figures.score,
                "score_bps": figures.score_bps,
                "watched_fraction": figures.watched_fraction,
                "quiz_fraction": figures.quiz_fraction,
                "complete": figures.complete,
                "exam_bps": figures.exam_bps,
                "exam_passed": figures.exam_passed,
                "exam_passed_received_at": None if passed_ms is None else ms_to_iso(passed_ms),
                "as_of": ms_to_iso(max([o for _, o in seen] + [enrolled.occurred_ms])),
                "received_at": ms_to_iso(max([r for r, _ in seen] + [enrolled.received_ms])),
                **clock,
            }
            out.append(("score", eid, _dumps(record)))
            self.emitted[eid] = signature
        if newly_complete:
            at_ms, received_ms = self.completion_times(course, enrolled, cut)
            record = {
                "completion_id": str(uuid.uuid5(NAMESPACE, f"course.completed:{eid}")),
                **common,
                "completed_at": ms_to_iso(at_ms),
                "received_at": ms_to_iso(received_ms),
                **clock,
            }
            out.append(("completed", eid, _dumps(record)))
            self.completed.add(eid)
        return out


def _order(e: Enrolled) -> tuple[int, int, str, int]:
    return (
        e.received_ms,
        e.occurred_ms,
        e.payment_model,
        -1 if e.deadline_ms is None else e.deadline_ms,
    )
