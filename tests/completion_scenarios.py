"""Scripted completion scenarios: the events of one learner in one course, and the outcome a
correct completion job must reach per enrollment (score, and completion with its event time
and its received_at, the money clock).

The course has two required videos (100 s and 200 s), one optional video and one required quiz
(pass at 0.6), with the default rule: score = 0.8 x watched share of the required videos' length
+ 0.2 x passed share of the required quizzes; complete when each required video is ≥ 90 % watched
and each required quiz passed. Its exam twin (``<course>-exam``) adds an optional quiz "final"
(pass at 0.7) that its payout policy names as the exam.

Events carry ``received_at`` where a scenario is about the money clock; elsewhere they carry
none, and the job takes ``occurred_at`` in its place.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas import to_wire
from schemas.base import Money
from schemas.catalog import Course, Quiz, Video
from schemas.events import Client, Enrollment, Escrow, QuizResult, VideoPlayback

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LENGTHS = {"v1": 100.0, "v2": 200.0, "v3": 50.0}
EXAM = "final"
REFUND = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def course(course_id: str) -> Course:
    return Course(
        course_id=course_id,
        title="Scenario course",
        category="data",
        level="beginner",
        creator_id="creator-1",
        creator_address="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        price=Money(amount_minor=4900, currency="EUR"),
        payment_models=["one_time", "pay_by_completion"],
        videos=[
            Video(video_id="v1", title="One", length_s=100.0),
            Video(video_id="v2", title="Two", length_s=200.0),
            Video(video_id="v3", title="Bonus", length_s=50.0, required=False),
        ],
        quizzes=[Quiz(quiz_id="q1", title="Check", pass_fraction=0.6)],
        updated_at=T0 - timedelta(days=30),
    )


def exam_course_record(course_id: str) -> dict:
    """The ``course.catalog`` JSON of ``<course_id>-exam``: the scenario course plus an optional
    quiz that the payout policy names as the exam. Built as JSON, so that it does not depend on
    the catalogue model's version."""
    record = json.loads(to_wire(course(f"{course_id}-exam")))
    record["quizzes"].append(
        {"quiz_id": EXAM, "title": "Final exam", "required": False, "pass_fraction": 0.7}
    )
    record["payout"] = {**record.get("payout", {}), "metric": "exam", "exam_quiz_id": EXAM}
    return record


def catalog_records(course_id: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of both scenario courses on ``course.catalog``."""
    plain = json.loads(to_wire(course(course_id)))
    return [
        (r["course_id"].encode(), json.dumps(r).encode())
        for r in (plain, exam_course_record(course_id))
    ]


CLIENT = Client(platform="web", app_version="1.0", device="chrome", network_type="wifi")


@dataclass
class Expected:
    """What one enrollment must end with."""

    score: float
    complete: bool = False
    completed_at: datetime | None = None  # event time
    completed_received_at: datetime | None = None  # the money clock
    exam_bps: int | None = None
    exam_passed: bool | None = None


@dataclass
class Scenario:
    name: str
    learner_id: str
    course_id: str
    records: list[bytes] = field(default_factory=list)  # in the order they are sent
    expected: dict[str, Expected] = field(default_factory=dict)  # per enrollment; {}: no output
    enrollment_id: str | None = None  # the latest enrollment made

    def _id(self, n: int) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.learner_id}/{self.course_id}/{n}")

    def expect(self, score: float, **more: object) -> None:
        """The outcome of the latest enrollment made."""
        assert self.enrollment_id is not None
        self.expected[self.enrollment_id] = Expected(score, **more)  # type: ignore[arg-type]

    def enroll(
        self,
        at: datetime,
        n: int = 0,
        received: datetime | None = None,
        deadline: datetime | None = None,
    ) -> bytes:
        pbc = deadline is not None
        event = Enrollment(
            event_id=self._id(n), occurred_at=at, received_at=received,
            learner_id=self.learner_id, session_id="s1", client=CLIENT, course_id=self.course_id,
            price=Money(amount_minor=4900, currency="EUR"),
            payment_model="pay_by_completion" if pbc else "one_time",
            escrow=Escrow(deposit_wei="10000000000000000", refund_address=REFUND) if pbc else None,
            deadline_at=deadline,
        )  # fmt: skip
        self.enrollment_id = str(event.event_id)
        return to_wire(event)

    def watch(
        self,
        n: int,
        at: datetime,
        video: str,
        segments: list[list[float]],
        received: datetime | None = None,
    ) -> bytes:
        return to_wire(
            VideoPlayback(
                event_id=self._id(n),
                occurred_at=at,
                received_at=received,
                learner_id=self.learner_id,
                session_id="s1",
                client=CLIENT,
                course_id=self.course_id,
                video_id=video,
                verb="paused",
                time=segments[-1][1],
                length=LENGTHS[video],
                played_segments=segments,
            )
        )

    def quiz(
        self,
        n: int,
        at: datetime,
        score: float,
        received: datetime | None = None,
        quiz_id: str = "q1",
    ) -> bytes:
        return to_wire(
            QuizResult(
                event_id=self._id(n),
                occurred_at=at,
                received_at=received,
                learner_id=self.learner_id,
                session_id="s1",
                client=CLIENT,
                course_id=self.course_id,
                quiz_id=quiz_id,
                score=score,
                max_score=1.0,
                passed=score >= 0.6,
                attempt=n,
                duration_ms=60_000,
            )
        )


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def scenarios(course_id: str, tag: str) -> list[Scenario]:
    """Every scenario for ``course_id`` (and its exam twin); ``tag`` keeps learner ids apart
    between runs."""
    out: list[Scenario] = []

    def new(name: str, course: str = course_id) -> Scenario:
        s = Scenario(name, f"learner-{name}-{tag}", course)
        out.append(s)
        return s

    # Overlapping segments count once: v1 [0,50] union [30,80] = 80 s of 100.
    s = new("overlap")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 50]]),
                 s.watch(2, minutes(2), "v1", [[30, 80]]), s.watch(3, minutes(5), "v2", [[0, 200]]),
                 s.quiz(4, minutes(9), 0.8)]  # fmt: skip
    s.expect(round(0.8 * 280 / 300 + 0.2, 6))

    # Seek forward leaves a gap, seeking back fills part of it: [0,40] [70,100] then [20,60].
    s = new("seek")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 40]]),
                 s.watch(2, minutes(2), "v1", [[0, 40], [70, 100]]),
                 s.watch(3, minutes(3), "v2", [[0, 190]]), s.quiz(4, minutes(6), 0.5),
                 s.watch(5, minutes(8), "v1", [[0, 40], [70, 100], [20, 60]]),
                 s.quiz(6, minutes(10), 0.7)]  # fmt: skip
    # v1 reaches 90 % at 8, the quiz passes at 10
    s.expect(round(0.8 * 280 / 300 + 0.2, 6), complete=True, completed_at=minutes(10),
             completed_received_at=minutes(10))  # fmt: skip

    # Re-watching counts once, and an optional video counts for nothing.
    s = new("rewatch")
    rewatch = [s.watch(i, minutes(i), "v1", [[0, 100]]) for i in (1, 2, 3)]
    s.records = [s.enroll(minutes(0)), *rewatch,
                 s.watch(4, minutes(4), "v2", [[0, 100]]), s.watch(5, minutes(5), "v2", [[0, 100]]),
                 s.watch(6, minutes(6), "v3", [[0, 50]])]  # fmt: skip
    s.expect(round(0.8 * 200 / 300, 6))

    # Segments past the video's end are clipped to its length.
    s = new("pastend")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[90, 130]]),
                 s.watch(2, minutes(2), "v1", [[0, 95]]),
                 s.watch(3, minutes(4), "v2", [[150, 260]]),
                 s.watch(4, minutes(5), "v2", [[0, 160]]), s.quiz(5, minutes(7), 1.0)]  # fmt: skip
    s.expect(1.0, complete=True, completed_at=minutes(7), completed_received_at=minutes(7))

    # A full course, sent shuffled (the enrollment among the last): the same result as in order.
    s = new("shuffled")
    records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 30]]),
               s.watch(2, minutes(2), "v1", [[0, 100]]), s.watch(3, minutes(3), "v2", [[0, 120]]),
               s.watch(4, minutes(4), "v2", [[0, 200]]), s.quiz(5, minutes(5), 0.4),
               s.quiz(6, minutes(6), 0.9), s.watch(7, minutes(7), "v3", [[0, 10]])]  # fmt: skip
    random.Random(7).shuffle(records)
    s.records = records
    s.expect(1.0, complete=True, completed_at=minutes(6), completed_received_at=minutes(6))

    # One video reported three hours late (its event time is early; it arrives last).
    s = new("late")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(200), "v1", [[0, 100]]),
                 s.quiz(2, minutes(201), 0.9),
                 s.watch(3, minutes(20), "v2", [[0, 200]])]  # fmt: skip
    s.expect(1.0, complete=True, completed_at=minutes(201), completed_received_at=minutes(201))

    # Duplicates (the same event ids again) change nothing.
    s = new("duplicate")
    watched, quiz = s.watch(1, minutes(1), "v1", [[0, 50]]), s.quiz(2, minutes(2), 0.9)
    s.records = [s.enroll(minutes(0)), watched, quiz, watched, quiz, s.enroll(minutes(0))]
    s.expect(round(0.8 * 50 / 300 + 0.2, 6))

    # A dropout: a little of the first video, a failed quiz.
    s = new("dropout")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 30]]),
                 s.quiz(2, minutes(3), 0.3)]  # fmt: skip
    s.expect(round(0.8 * 30 / 300, 6))

    # Learning without an enrollment scores nothing: no output at all.
    s = new("noenroll")
    s.records = [s.watch(1, minutes(1), "v1", [[0, 100]]), s.watch(2, minutes(2), "v2", [[0, 200]]),
                 s.quiz(3, minutes(3), 1.0)]  # fmt: skip

    # -- enrollments and the money clock (received_at) ------------------------------------------

    # A re-enrollment starts from nothing: the first enrollment completes; the second one,
    # received later, only has what was received after it.
    s = new("reenroll")
    first = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 100]]),
             s.watch(2, minutes(2), "v2", [[0, 200]]), s.quiz(3, minutes(3), 0.9)]  # fmt: skip
    s.expect(1.0, complete=True, completed_at=minutes(3), completed_received_at=minutes(3))
    second = [s.enroll(minutes(60), n=100), s.watch(101, minutes(61), "v1", [[0, 50]])]
    s.expect(round(0.8 * 50 / 300, 6))
    s.records = [*second[1:], *first, second[0]]  # the second enrollment arrives last

    # Events received before the first enrollment belong to no enrollment.
    s = new("early")
    s.records = [s.watch(1, minutes(-5), "v1", [[0, 100]]), s.quiz(2, minutes(-4), 1.0),
                 s.enroll(minutes(0)), s.watch(3, minutes(1), "v2", [[0, 100]])]  # fmt: skip
    s.expect(round(0.8 * 100 / 300, 6))

    # Backdated occurred_at (an hour before the enrollment), received after it: it counts. The
    # event time of completion is not before the enrollment; its received_at is the quiz's.
    s = new("backdated")
    s.records = [
        s.enroll(minutes(0), received=minutes(0)),
        s.watch(1, minutes(-60), "v1", [[0, 100]], received=minutes(1)),
        s.watch(2, minutes(-59), "v2", [[0, 200]], received=minutes(2)),
        s.quiz(3, minutes(-58), 0.9, received=minutes(3)),
    ]
    s.expect(1.0, complete=True, completed_at=minutes(0), completed_received_at=minutes(3))

    # Pay by completion, deadline at 30: what is received at 30 counts, what is received
    # after it (even with an earlier occurred_at) changes nothing.
    s = new("deadline")
    s.records = [
        s.enroll(minutes(0), received=minutes(0), deadline=minutes(30)),
        s.watch(1, minutes(1), "v1", [[0, 100]], received=minutes(1)),
        s.watch(2, minutes(2), "v2", [[0, 100]], received=minutes(2)),
        s.watch(3, minutes(29), "v2", [[0, 200]], received=minutes(30)),
        s.quiz(4, minutes(20), 0.9, received=minutes(31)),
        s.watch(5, minutes(32), "v3", [[0, 50]], received=minutes(32)),
    ]
    s.expect(0.8)

    # Out of order: received v1 at 11, v2 at 12, the quiz at 13, sent quiz, v2, enrollment, v1.
    # Completion is received at 13 (the quiz made the rule true), in event time at 3 (v1).
    s = new("outoforder")
    enroll = s.enroll(minutes(0), received=minutes(10))
    v1 = s.watch(1, minutes(3), "v1", [[0, 100]], received=minutes(11))
    v2 = s.watch(2, minutes(1), "v2", [[0, 200]], received=minutes(12))
    q1 = s.quiz(3, minutes(2), 0.9, received=minutes(13))
    s.records = [q1, v2, enroll, v1]
    s.expect(1.0, complete=True, completed_at=minutes(3), completed_received_at=minutes(13))

    # The exam a payout policy names: its best score fraction, and whether it passed (0.7).
    s = new("exam", f"{course_id}-exam")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 100]]),
                 s.quiz(2, minutes(2), 0.29, quiz_id=EXAM),
                 s.quiz(3, minutes(3), 0.75, quiz_id=EXAM),
                 s.quiz(4, minutes(4), 0.5, quiz_id=EXAM)]  # fmt: skip
    s.expect(round(0.8 * 100 / 300, 6), exam_bps=7500, exam_passed=True)
    return out
