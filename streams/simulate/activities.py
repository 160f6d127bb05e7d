"""What a learner does, drafted as events on the learner's own clock.

``LearnerActivities`` holds one learner's state (device, network, sessions, natural clock, the
video segments watched) and drafts the events of each activity: page views, video playback with
the xAPI Video Profile verbs and a QoS report per playback, and quiz attempts. The journeys that
string them together are planned in :mod:`streams.simulate.journeys`.

A few learners (``immersive_fraction``) take their lessons in a VR headset: they report an
``immersive_qos`` interval every minute of a lesson they play, from the headset (its own client,
on the learner's network). Their headset and its figures come from a random generator of their
own, so the other learners' events, and every learner's other draws, stay what they were.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from schemas import (
    Client,
    Course,
    CourseViewed,
    ImmersiveQos,
    PlaybackQos,
    Quiz,
    QuizResult,
    Video,
    VideoPlayback,
)
from schemas.events import Envelope
from streams.simulate.catalog import derived_address
from streams.simulate.config import (
    HEADSETS,
    IMMERSIVE_APP_VERSION,
    IMMERSIVE_INTERVAL_S,
    NETWORK_MIX,
    PLATFORMS,
    REGIONS,
    seeded_rng,
    weighted_choice,
)
from streams.simulate.qos import Start, sample_immersive_qos, sample_session_qos, sample_start

if TYPE_CHECKING:
    from streams.simulate.simulation import Simulation


@dataclass
class _Draft:
    t: float  # natural seconds on the learner's own clock
    cls: type[Envelope]
    fields: dict[str, Any]


def _covered(segments: list[list[int]]) -> int:
    return sum(end - start for start, end in segments)


def _add_segment(segments: list[list[int]], start: int, end: int) -> None:
    """Merge [start, end] (ms) into the sorted, disjoint union in place."""
    if end <= start:
        return
    merged: list[list[int]] = []
    for seg in sorted([*segments, [start, end]]):
        if merged and seg[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], seg[1])
        else:
            merged.append(list(seg))
    segments[:] = merged


# Seconds on a page, (low, high) of a uniform draw.
DWELL_S: dict[str, tuple[float, float]] = {
    "overview": (8, 90), "syllabus": (10, 60), "pricing": (5, 40), "reviews": (10, 120),
    "lesson": (3, 25),
}  # fmt: skip


class LearnerActivities:
    """One learner's state, and the events it drafts for each activity; ``Learner`` plans the
    journeys that string them together."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.cfg = sim.cfg
        self.index = index
        self.rng = rng = seeded_rng(sim.cfg, "learner", index)
        self.learner_id = "learner-" + sim.uid("learner", index).hex[:12]
        self.platform = weighted_choice(rng, {p: w for p, (w, *_) in PLATFORMS.items()})
        _, mix, devices, versions = PLATFORMS[self.platform]
        self.device, self.app_version = rng.choice(devices), rng.choice(versions)
        self.mix = NETWORK_MIX[mix]
        self.home_network = weighted_choice(rng, self.mix)
        self.region = weighted_choice(rng, {r: w for r, (_, w, _) in REGIONS.items()})
        self.skill = rng.uniform(0.45, 0.95)
        self.refund_address = derived_address(f"refund/{self.learner_id}")
        self.drafts: list[_Draft] = []
        self.t = 0.0
        self.seq = self.sessions = self.playbacks = 0
        self.enrolled: set[str] = set()
        self.segments: dict[tuple[str, str], list[list[int]]] = {}
        self.pbc_windows: list[tuple[float, float]] = []  # natural (enrolled, last event)
        # a VR headset (or None), from a generator of its own: the draws above stay the same
        self.vr_rng = vr = seeded_rng(sim.cfg, "headset", index)
        self.headset: str | None = None
        self.target_fps = 0.0
        if vr.random() < self.cfg.immersive_fraction:
            self.headset = weighted_choice(vr, {h: w for h, (w, *_) in HEADSETS.items()})
            self.target_fps = vr.choice(HEADSETS[self.headset][2])
        self.vr_played = 0.0  # seconds of the current playback since its last report

    # -- plumbing

    def emit(self, cls: type[Envelope], gap: float = 0.0, **fields: Any) -> uuid.UUID:
        self.t += max(0.0, gap)
        event_id = self.sim.uid("event", self.index, self.seq)
        self.seq += 1
        fields.update(event_id=event_id, learner_id=self.learner_id, session_id=self.session_id)
        fields.setdefault("client", self.client)
        self.drafts.append(_Draft(self.t, cls, fields))
        return event_id

    def new_session(self, gap: float = 0.0) -> None:
        rng = self.rng
        self.t += gap
        self.sessions += 1
        self.session_id = "sess-" + self.sim.uid("session", self.index, self.sessions).hex[:16]
        mobile = self.mix is NETWORK_MIX["mobile"]
        self.network = (
            weighted_choice(rng, self.mix) if mobile and rng.random() < 0.5 else self.home_network
        )
        edges = self.sim.edges_by_region[self.region]
        mec = [e for e in edges if e.mec]
        plain = [e for e in edges if not e.mec]
        use_mec = self.network.startswith("5g") and mec and rng.random() < 0.7
        self.edge = rng.choice(mec if use_mec else plain)
        self.client = Client(
            platform=self.platform,  # type: ignore[arg-type]
            app_version=self.app_version,
            device=self.device,
            network_type=self.network,  # type: ignore[arg-type]
            region=self.region,
            edge_node=self.edge.edge_id,
        )
        if self.headset is not None:  # the headset, on the learner's network
            self.headset_client = self.client.model_copy(
                update={
                    "platform": HEADSETS[self.headset][1],
                    "app_version": IMMERSIVE_APP_VERSION,
                    "device": self.headset,
                }
            )

    def view(self, course: Course, page: str, gap: float, lesson_id: str | None = None) -> None:
        dwell = self.rng.uniform(*DWELL_S[page])
        # Sent when the learner leaves the page, so the dwell is known.
        self.emit(
            CourseViewed,
            gap + dwell,
            course_id=course.course_id,
            page=page,
            lesson_id=lesson_id,
            dwell_ms=int(dwell * 1000),
        )

    # -- a journey
    # -- video (xAPI Video Profile verbs; times in seconds, kept in ms internally)

    def _vp(
        self, course: Course, video: Video, verb: str, pos: int, gap: float = 0.0, **extra: Any
    ) -> None:
        segs = self.segments[(course.course_id, video.video_id)]
        length_ms = round(video.length_s * 1000)
        self.emit(
            VideoPlayback,
            gap,
            course_id=course.course_id,
            video_id=video.video_id,
            verb=verb,
            time=pos / 1000,
            length=video.length_s,
            played_segments=[[s / 1000, e / 1000] for s, e in segs],
            progress=round(min(1.0, _covered(segs) / length_ms), 4),
            **extra,
        )

    def _play(self, course: Course, video: Video, seconds: float) -> None:
        """``seconds`` of playback on the learner's clock; in a headset, an ``immersive_qos``
        report at the end of every full interval of it."""
        if self.headset is None:
            self.t += seconds
            return
        while self.vr_played + seconds >= IMMERSIVE_INTERVAL_S:
            step = IMMERSIVE_INTERVAL_S - self.vr_played
            seconds -= step
            self.vr_played = 0.0
            figures = sample_immersive_qos(
                self.vr_rng,
                self.headset,
                self.target_fps,
                self.network,
                self.edge,
                IMMERSIVE_INTERVAL_S,
            )
            self.emit(
                ImmersiveQos,
                step,
                course_id=course.course_id,
                lesson_id=video.video_id,
                headset=self.headset,
                client=self.headset_client,
                **figures,
            )
        self.t += seconds
        self.vr_played += seconds

    def _start_playback(self, course: Course, video: Video, pos: int) -> tuple[str, Start]:
        """initialized, then played; failed starts are retried (up to three failures)."""
        rng = self.rng
        self.vr_played = 0.0  # a new playback: the headset's intervals start again
        for attempt in range(4):
            self.playbacks += 1
            playback_id = "pb-" + self.sim.uid("playback", self.index, self.playbacks).hex[:16]
            start = sample_start(rng, self.network, self.edge, allow_failure=attempt < 3)
            self._vp(course, video, "initialized", pos, gap=rng.uniform(0.3, 3))
            if start.failure is None:
                self._vp(course, video, "played", pos, gap=(start.startup_ms or 0) / 1000)
                return playback_id, start
            self._vp(course, video, "terminated", pos, gap=rng.uniform(2, 15))
            self._qos(course, video, playback_id, start, 0)
            self.t += rng.uniform(2, 20)
        raise AssertionError("unreachable: the last attempt cannot fail")

    def _qos(
        self, course: Course, video: Video, playback_id: str, start: Start, played_ms: int
    ) -> None:
        qos = sample_session_qos(self.rng, self.network, self.edge, start, played_ms)
        self.emit(
            PlaybackQos,
            self.rng.uniform(0.05, 0.5),
            course_id=course.course_id,
            video_id=video.video_id,
            playback_id=playback_id,
            **qos,
        )

    def watch(
        self, course: Course, video: Video, until: float | None = None, resume_break: bool = False
    ) -> None:
        """Watch from the start: to the end (skipping at most 5 %), or until ``until`` of it
        is covered (then quit). ``resume_break``: stop midway, resume in a later session."""
        rng = self.rng
        length = round(video.length_s * 1000)
        segs = self.segments.setdefault((course.course_id, video.video_id), [])
        skip_budget = 0.05 * length if until is None else 0.3 * length
        break_at = rng.uniform(0.3, 0.7) * length if resume_break else None
        pos = 0
        while True:
            self.view(course, "lesson", rng.uniform(1, 10), lesson_id=video.video_id)
            playback_id, start = self._start_playback(course, video, pos)
            played, stop = 0, ""
            while not stop:
                new = pos + int(rng.uniform(0.08, 0.3) * length)
                if until is not None:  # new coverage starts where the covered stretch ends
                    frontier = max([pos, *(e for s, e in segs if s <= pos <= e)])
                    new = min(new, frontier + max(1000, int(until * length) - _covered(segs)))
                if break_at is not None:
                    new = min(new, max(pos + 1000, int(break_at)))
                new = min(length, new)
                _add_segment(segs, pos, new)
                played += new - pos
                self._play(course, video, (new - pos) / 1000)
                pos = new
                if pos >= length:
                    stop = "end"
                elif until is not None and _covered(segs) >= until * length:
                    stop = "quit"
                elif break_at is not None and pos >= break_at:
                    stop, break_at = "break", None
                else:
                    pos, skip_budget = self._player_action(course, video, pos, skip_budget)
            if stop == "end":
                if _covered(segs) >= course.completion.required_watch_fraction * length:
                    self._vp(course, video, "completed", pos)
            else:
                self._vp(course, video, "paused", pos)
            self._vp(course, video, "terminated", pos, gap=rng.uniform(0.5, 20))
            self._qos(course, video, playback_id, start, played)
            if stop != "break":
                return
            self.new_session(gap=rng.uniform(600, 3600))

    def _player_action(
        self, course: Course, video: Video, pos: int, skip_budget: float
    ) -> tuple[int, float]:
        """Between chunks: pause and resume, skip ahead, go back (re-watch), or nothing."""
        rng = self.rng
        length = round(video.length_s * 1000)
        r = rng.random()
        if r < 0.4:
            self._vp(course, video, "paused", pos)
            self._vp(course, video, "played", pos, gap=rng.uniform(3, 90))
        elif r < 0.55:
            skip = int(min(rng.uniform(0.01, 0.04) * length, length - pos - 1, skip_budget))
            if skip >= 1000:
                self._vp(
                    course,
                    video,
                    "seeked",
                    pos + skip,
                    time_from=pos / 1000,
                    time_to=(pos + skip) / 1000,
                )
                return pos + skip, skip_budget - skip
        elif r < 0.75:
            back = int(min(pos, rng.uniform(0.03, 0.15) * length))
            if back >= 1000:
                self._vp(
                    course,
                    video,
                    "seeked",
                    pos - back,
                    time_from=pos / 1000,
                    time_to=(pos - back) / 1000,
                )
                return pos - back, skip_budget
        return pos, skip_budget

    def review(self, course: Course, video: Video) -> None:
        """Re-watch part of a video already seen: open it, seek, play a bit, leave."""
        rng = self.rng
        length = round(video.length_s * 1000)
        segs = self.segments[(course.course_id, video.video_id)]
        self.view(course, "lesson", rng.uniform(1, 10), lesson_id=video.video_id)
        playback_id, start = self._start_playback(course, video, 0)
        target = int(rng.uniform(0.1, 0.7) * length)
        self._vp(
            course,
            video,
            "seeked",
            target,
            gap=rng.uniform(0.5, 3),
            time_from=0.0,
            time_to=target / 1000,
        )
        end = min(length - 1, target + int(rng.uniform(0.05, 0.2) * length))
        _add_segment(segs, target, end)
        self._play(course, video, (end - target) / 1000)
        self._vp(course, video, "paused", end)
        self._vp(course, video, "terminated", end, gap=rng.uniform(0.5, 10))
        self._qos(course, video, playback_id, start, end - target)

    # -- quizzes

    def quiz(self, course: Course, quiz: Quiz, mode: Literal["pass", "fail", "once"]) -> None:
        """``pass``: retry until passed (passes by the third attempt); ``fail``: one or two
        failed attempts, then quit; ``once``: a single attempt, whatever the result."""
        rng = self.rng
        index = course.quizzes.index(quiz)
        max_score = 10.0 if index % 2 == 0 else 20.0
        pass_score = math.ceil(round(quiz.pass_fraction * max_score * 2, 6)) / 2
        fails = rng.choice((1, 2))
        for attempt in range(1, 1000):
            raw = rng.gauss(self.skill + 0.08 * (attempt - 1), 0.15) * max_score
            score = min(max_score, max(0.0, round(raw * 2) / 2))
            if mode == "pass" and attempt >= 3:
                score = max(score, pass_score)
            if mode == "fail":
                score = min(score, pass_score - 0.5)
            duration = rng.uniform(60, 600)
            self.t += duration
            passed = score >= pass_score
            self.emit(
                QuizResult,
                course_id=course.course_id,
                quiz_id=quiz.quiz_id,
                score=score,
                max_score=max_score,
                passed=passed,
                attempt=attempt,
                duration_ms=int(duration * 1000),
            )
            if (
                mode == "once"
                or (mode == "pass" and passed)
                or (mode == "fail" and attempt >= fails)
            ):
                return
            self.t += rng.uniform(30, 300)
