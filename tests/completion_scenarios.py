"""Scripted completion scenarios: the events of one learner in one course, and the outcome a
correct completion job must reach (score, and completion with its event time).

The course has two required videos (100 s and 200 s), one optional video and one required quiz
(pass at 0.6), with the default rule: score = 0.8 x watched share of the required videos' length
+ 0.2 x passed share of the required quizzes; complete when each required video is ≥ 90 % watched
and each required quiz passed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas import to_wire
from schemas.base import Money
from schemas.catalog import Course, Quiz, Video
from schemas.events import Client, Enrollment, QuizResult, VideoPlayback

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LENGTHS = {"v1": 100.0, "v2": 200.0, "v3": 50.0}


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


CLIENT = Client(platform="web", app_version="1.0", device="chrome", network_type="wifi")


@dataclass
class Scenario:
    name: str
    learner_id: str
    course_id: str
    records: list[bytes] = field(default_factory=list)  # in the order they are sent
    expected_score: float | None = None  # None: no output at all (no enrollment)
    expected_complete: bool = False
    expected_completed_at: datetime | None = None
    enrollment_id: str | None = None

    def _id(self, n: int) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.learner_id}/{self.course_id}/{n}")

    def enroll(self, at: datetime) -> bytes:
        event = Enrollment(
            event_id=self._id(0), occurred_at=at, learner_id=self.learner_id, session_id="s1",
            client=CLIENT, course_id=self.course_id, price=Money(amount_minor=4900, currency="EUR"),
            payment_model="one_time",
        )  # fmt: skip
        self.enrollment_id = str(event.event_id)
        return to_wire(event)

    def watch(self, n: int, at: datetime, video: str, segments: list[list[float]]) -> bytes:
        return to_wire(
            VideoPlayback(
                event_id=self._id(n),
                occurred_at=at,
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

    def quiz(self, n: int, at: datetime, score: float) -> bytes:
        return to_wire(
            QuizResult(
                event_id=self._id(n),
                occurred_at=at,
                learner_id=self.learner_id,
                session_id="s1",
                client=CLIENT,
                course_id=self.course_id,
                quiz_id="q1",
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
    """Every scenario for ``course_id``; ``tag`` keeps learner ids apart between runs."""
    out: list[Scenario] = []

    def new(name: str) -> Scenario:
        s = Scenario(name, f"learner-{name}-{tag}", course_id)
        out.append(s)
        return s

    # Overlapping segments count once: v1 [0,50] union [30,80] = 80 s of 100.
    s = new("overlap")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 50]]),
                 s.watch(2, minutes(2), "v1", [[30, 80]]), s.watch(3, minutes(5), "v2", [[0, 200]]),
                 s.quiz(4, minutes(9), 0.8)]  # fmt: skip
    s.expected_score = round(0.8 * 280 / 300 + 0.2, 6)

    # Seek forward leaves a gap, seeking back fills part of it: [0,40] [70,100] then [20,60].
    s = new("seek")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 40]]),
                 s.watch(2, minutes(2), "v1", [[0, 40], [70, 100]]),
                 s.watch(3, minutes(3), "v2", [[0, 190]]), s.quiz(4, minutes(6), 0.5),
                 s.watch(5, minutes(8), "v1", [[0, 40], [70, 100], [20, 60]]),
                 s.quiz(6, minutes(10), 0.7)]  # fmt: skip
    s.expected_score = round(0.8 * 280 / 300 + 0.2, 6)
    s.expected_complete = True
    s.expected_completed_at = minutes(10)  # v1 reaches 90 % at 8, the quiz passes at 10

    # Re-watching counts once, and an optional video counts for nothing.
    s = new("rewatch")
    rewatch = [s.watch(i, minutes(i), "v1", [[0, 100]]) for i in (1, 2, 3)]
    s.records = [s.enroll(minutes(0)), *rewatch,
                 s.watch(4, minutes(4), "v2", [[0, 100]]), s.watch(5, minutes(5), "v2", [[0, 100]]),
                 s.watch(6, minutes(6), "v3", [[0, 50]])]  # fmt: skip
    s.expected_score = round(0.8 * 200 / 300, 6)

    # Segments past the video's end are clipped to its length.
    s = new("pastend")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[90, 130]]),
                 s.watch(2, minutes(2), "v1", [[0, 95]]),
                 s.watch(3, minutes(4), "v2", [[150, 260]]),
                 s.watch(4, minutes(5), "v2", [[0, 160]]), s.quiz(5, minutes(7), 1.0)]  # fmt: skip
    s.expected_score = 1.0
    s.expected_complete = True
    s.expected_completed_at = minutes(7)

    # A full course, sent shuffled (the enrollment among the last): the same result as in order.
    s = new("shuffled")
    records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 30]]),
               s.watch(2, minutes(2), "v1", [[0, 100]]), s.watch(3, minutes(3), "v2", [[0, 120]]),
               s.watch(4, minutes(4), "v2", [[0, 200]]), s.quiz(5, minutes(5), 0.4),
               s.quiz(6, minutes(6), 0.9), s.watch(7, minutes(7), "v3", [[0, 10]])]  # fmt: skip
    random.Random(7).shuffle(records)
    s.records = records
    s.expected_score = 1.0
    s.expected_complete = True
    s.expected_completed_at = minutes(6)

    # One video reported three hours late (its event time is early; it arrives last).
    s = new("late")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(200), "v1", [[0, 100]]),
                 s.quiz(2, minutes(201), 0.9),
                 s.watch(3, minutes(20), "v2", [[0, 200]])]  # fmt: skip
    s.expected_score = 1.0
    s.expected_complete = True
    s.expected_completed_at = minutes(201)

    # Duplicates (the same event ids again) change nothing.
    s = new("duplicate")
    watched, quiz = s.watch(1, minutes(1), "v1", [[0, 50]]), s.quiz(2, minutes(2), 0.9)
    s.records = [s.enroll(minutes(0)), watched, quiz, watched, quiz, s.enroll(minutes(0))]
    s.expected_score = round(0.8 * 50 / 300 + 0.2, 6)

    # A dropout: a little of the first video, a failed quiz.
    s = new("dropout")
    s.records = [s.enroll(minutes(0)), s.watch(1, minutes(1), "v1", [[0, 30]]),
                 s.quiz(2, minutes(3), 0.3)]  # fmt: skip
    s.expected_score = round(0.8 * 30 / 300, 6)

    # Learning without an enrollment scores nothing: no output at all.
    s = new("noenroll")
    s.records = [s.watch(1, minutes(1), "v1", [[0, 100]]), s.watch(2, minutes(2), "v2", [[0, 200]]),
                 s.quiz(3, minutes(3), 1.0)]  # fmt: skip
    s.expected_score = None
    return out
