"""The simulation: plan every learner's journeys, lay them out in time, iterate the events.

``Simulation`` (and ``generate``) also mixes in the bad payloads, a ``bad_fraction`` of all
payloads of the three kinds in ``BAD_KINDS``, each dressed like the valid event it precedes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas import (
    Course,
    CourseViewed,
    Enrollment,
    ImmersiveQos,
    PlaybackQos,
    QuizResult,
    VideoPlayback,
    to_wire,
)
from streams.simulate.catalog import build_catalog
from streams.simulate.config import Edge, SimConfig, ms_ceil, seeded_rng, topology
from streams.simulate.journeys import Journey, Learner

SIM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "learnstream:simulator")

SimEvent = CourseViewed | VideoPlayback | PlaybackQos | QuizResult | Enrollment | ImmersiveQos
BadKind = Literal["malformed_json", "unknown_type", "invalid"]
BAD_KINDS: tuple[BadKind, ...] = ("malformed_json", "unknown_type", "invalid")


@dataclass(frozen=True)
class BadPayload:
    """Raw bytes the collector must reject, of one of the three counted kinds."""

    kind: BadKind
    raw: bytes
    learner_id: str
    occurred_at: datetime


SimItem = SimEvent | BadPayload


class Simulation:
    """A planned run. Iterating yields every item in time order (deterministically, again on
    every iteration); ``journeys`` tells how each learner's journeys ended."""

    def __init__(self, cfg: SimConfig, catalog: Iterable[Course] | None = None) -> None:
        self.cfg = cfg
        self.catalog = list(catalog) if catalog is not None else build_catalog(cfg)
        if not self.catalog:
            raise ValueError("the simulation needs at least one course")
        self.topology = topology(cfg)
        self.edges_by_region: dict[str, list[Edge]] = {}
        for edge in self.topology.values():
            self.edges_by_region.setdefault(edge.region, []).append(edge)
        self.popularity = {c.course_id: 1 / (k + 1) ** 0.7 for k, c in enumerate(self.catalog)}
        self.journeys: list[Journey] = []
        self._base = ms_ceil(cfg.start)
        self._span_ms = int(
            (cfg.start + timedelta(seconds=cfg.duration_s) - self._base) / timedelta(milliseconds=1)
        )
        self._deadline = timedelta(milliseconds=round(cfg.deadline_s * 1000))
        self._learners = [Learner(self, k) for k in range(cfg.learners)]
        self._plan()
        self._schedule = sorted(
            s for k, learner in enumerate(self._learners) for s in self._layout(k, learner)
        )
        self._bad_slots = self._plan_bad(len(self._schedule))

    def uid(self, *key: object) -> uuid.UUID:
        return uuid.uuid5(SIM_NAMESPACE, "/".join([self.cfg.run_id, *map(str, key)]))

    @property
    def learner_ids(self) -> list[str]:
        return [learner.learner_id for learner in self._learners]

    @property
    def degraded_edges(self) -> list[str]:
        return sorted(e.edge_id for e in self.topology.values() if e.degraded)

    @property
    def valid_count(self) -> int:
        return len(self._schedule)

    @property
    def bad_count(self) -> int:
        return sum(self._bad_slots.values())

    def __len__(self) -> int:
        return self.valid_count + self.bad_count

    def enrollments_by_model(self) -> dict[str, int]:
        return dict(Counter(j.payment_model for j in self.journeys if j.payment_model))

    def journey_outcomes(self) -> dict[str, int]:
        return dict(Counter(j.outcome for j in self.journeys))

    def learner_outcomes(self) -> dict[str, int]:
        """Per learner: completed (a course), else dropped_out (of one), else browsed_only."""
        best: dict[str, str] = {}
        rank = {"completed": 2, "dropped_out": 1, "browsed_only": 0}
        for j in self.journeys:
            if rank[j.outcome] >= rank[best.get(j.learner_id, "browsed_only")]:
                best[j.learner_id] = j.outcome
        return dict(Counter(best.values()))

    def _plan(self) -> None:
        """One journey per learner, then more, round-robin, up to about rate x duration."""
        budget = round(self.cfg.rate * self.cfg.duration_s)
        total = sum(learner.journey() for learner in self._learners)
        for _ in range(4 * len(self.catalog)):
            if total >= budget:
                return
            added = 0
            for learner in self._learners:
                if total >= budget:
                    return
                n = learner.journey()
                total, added = total + n, added + n
            if not added:
                return

    def _layout(self, k: int, learner: Learner) -> list[tuple[int, int, int]]:
        """Compress a learner's natural clock into the run: (ms offset, learner, draft)."""
        drafts, rng = learner.drafts, learner.rng
        n, t0 = len(drafts), drafts[0].t
        step = 1 if 2 * n <= self._span_ms else 0  # keep a learner's events strictly ordered
        avail = self._span_ms - step * n
        natural_ms = (drafts[-1].t - t0) * 1000
        scale = min(1.0, avail * rng.uniform(0.55, 1.0) / natural_ms) if natural_ms > 0 else 0.0
        for enrolled, last in learner.pbc_windows:
            if last > enrolled:  # finish well before the deadline settles the enrollment
                scale = min(scale, 0.8 * self._deadline.total_seconds() / (last - enrolled))
        offset = rng.uniform(0, max(0.0, avail - natural_ms * scale))
        out, prev = [], -step
        for i, draft in enumerate(drafts):
            t = max(int(offset + (draft.t - t0) * 1000 * scale), prev + step)
            out.append((t, k, i))
            prev = t
        return out

    def _plan_bad(self, slots: int) -> dict[int, int]:
        """How many bad payloads go before each valid event: a fraction F of all payloads."""
        if not self.cfg.bad_fraction:
            return {}
        rng, out = seeded_rng(self.cfg, "bad-slots"), {}
        for slot in range(slots):
            n = 0
            while rng.random() < self.cfg.bad_fraction:
                n += 1
            if n:
                out[slot] = n
        return out

    def event_at(self, t_ms: int, k: int, i: int) -> SimEvent:
        draft = self._learners[k].drafts[i]
        at = self._base + timedelta(milliseconds=t_ms)
        fields = dict(draft.fields, occurred_at=at)
        if draft.cls is Enrollment and fields["payment_model"] == "pay_by_completion":
            base = max(at, self.cfg.end) if self.cfg.deadline_from_end else at
            fields["deadline_at"] = base + self._deadline
        return draft.cls(**fields)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[SimItem]:
        rng = seeded_rng(self.cfg, "bad-content")
        n_bad = 0
        for slot, (t_ms, k, i) in enumerate(self._schedule):
            event = self.event_at(t_ms, k, i)
            for _ in range(self._bad_slots.get(slot, 0)):
                yield self._bad(n_bad, event, rng)
                n_bad += 1
            yield event

    def _bad(self, n: int, event: SimEvent, rng: random.Random) -> BadPayload:
        """Bad payload number n, dressed like ``event`` (same learner, client and time)."""
        kind = BAD_KINDS[n % len(BAD_KINDS)]
        variant = n // len(BAD_KINDS)
        wire = json.loads(to_wire(event))
        envelope = {
            k: wire[k]
            for k in ("schema_version", "occurred_at", "learner_id", "session_id", "client")
        }
        envelope["event_id"] = str(self.uid("bad", n))
        course_id = wire["course_id"]
        if kind == "malformed_json":
            text = json.dumps({**envelope, "type": "course_viewed", "course_id": course_id})
            raw = [
                text[: rng.randint(10, len(text) - 2)],  # truncated
                repr({**envelope, "type": "quiz_result"}),  # Python, not JSON
                text[:-1] + ", }",  # trailing comma
                f"type=course_viewed&learner_id={wire['learner_id']}",  # form-encoded
            ][variant % 4].encode()
            return BadPayload(kind, raw, event.learner_id, event.occurred_at)
        if kind == "unknown_type":
            body: dict[str, Any] = {
                **envelope,
                "course_id": course_id,
                "rating": rng.randint(1, 5),
                "type": ("course_rated", "course_shared", "note_taken")[variant % 3],
            }
        else:
            body = [
                {
                    **envelope,
                    "type": "quiz_result",
                    "course_id": course_id,
                    "quiz_id": "quiz-1",
                    "score": 12.5,
                    "max_score": 10.0,
                    "passed": True,
                    "attempt": 1,
                    "duration_ms": 90_000,
                },  # score > max_score
                {
                    **envelope,
                    "occurred_at": envelope["occurred_at"].removesuffix("Z"),
                    "type": "course_viewed",
                    "course_id": course_id,
                    "page": "overview",
                    "dwell_ms": 4000,
                },  # naive timestamp
                {
                    **envelope,
                    "type": "enrollment",
                    "course_id": course_id,
                    "price": {"amount_minor": 4900, "currency": self.cfg.currency},
                    "payment_model": "pay_by_completion",
                },  # no escrow, no deadline
                {
                    **envelope,
                    "type": "video_playback",
                    "course_id": course_id,
                    "video_id": "video-1",
                    "verb": "seeked",
                    "time": 10.0,
                    "length": 600.0,
                },
                {
                    **envelope,
                    "type": "course_viewed",
                    "course_id": course_id,
                    "page": "overview",
                    "dwell_ms": -5,
                },  # negative dwell
            ][variant % 5]
        raw = json.dumps(body, separators=(",", ":")).encode()
        return BadPayload(kind, raw, event.learner_id, event.occurred_at)


def generate(cfg: SimConfig, catalog: Iterable[Course] | None = None) -> Iterator[SimItem]:
    """Every item of the run, in time order: events (pydantic models) and bad payloads."""
    return iter(Simulation(cfg, catalog))
