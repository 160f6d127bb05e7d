"""The learner simulator: a course catalogue and deterministic learner journeys (pure, no I/O).

``build_catalog(cfg)`` makes the courses; ``Simulation(cfg, catalog)`` plans every learner's
journeys (browse, enroll, watch with pauses, seeks and re-watches, quizzes; complete or drop out)
and iterates the events, and with ``bad_fraction`` the bad payloads, in time order. Sending
lives in :mod:`streams.simulate_send`.

Determinism: every draw comes from a ``random.Random`` seeded from ``(seed, purpose)``, never the
global generator or the wall clock. Ids are UUIDv5 over ``(run_id, semantic key)``, so the same
seed, run id and start give byte-identical events, and another run id never reuses an id.

Time: each learner's journeys are drafted on a natural clock (media seconds, page dwell, quiz
time), then compressed into ``[start, start + duration]``: a learner's events are strictly
increasing in milliseconds, and a pay-by-completion journey ends before 0.8 x its deadline.
The number of journeys follows ``rate``: every learner makes one; more are added, round-robin,
until about ``rate x duration`` events exist (``rate = 0``: one journey each).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from eth_utils import to_checksum_address

from schemas import (
    Client,
    Course,
    CourseViewed,
    Enrollment,
    Escrow,
    Money,
    PayoutPolicy,
    PlaybackQos,
    Quiz,
    QuizResult,
    Radio,
    Video,
    VideoPlayback,
    to_wire,
)
from schemas.events import Envelope

SIM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "learnstream:simulator")

SimEvent = CourseViewed | VideoPlayback | PlaybackQos | QuizResult | Enrollment
BadKind = Literal["malformed_json", "unknown_type", "invalid"]
BAD_KINDS: tuple[BadKind, ...] = ("malformed_json", "unknown_type", "invalid")
Outcome = Literal["completed", "dropped_out", "browsed_only"]

# What the payment provider would convert: 3200 EUR per ETH, so one cent is 1e18 / 320000 wei.
WEI_PER_MINOR = 10**18 // 320_000


@dataclass(frozen=True)
class BadPayload:
    """Raw bytes the collector must reject, of one of the three counted kinds."""

    kind: BadKind
    raw: bytes
    learner_id: str
    occurred_at: datetime


SimItem = SimEvent | BadPayload

# -- the world: regions, edge nodes, networks, devices ------------------------------------------

# region -> (latency factor, weight, edge nodes); mec-* nodes are 5G multi-access edge nodes.
REGIONS: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "eu-west": (1.0, 0.35, ("edge-par-1", "edge-par-2", "mec-par-1")),
    "eu-central": (1.05, 0.2, ("edge-fra-1", "mec-fra-1")),
    "us-east": (1.1, 0.25, ("edge-iad-1", "edge-iad-2", "mec-iad-1")),
    "ap-south": (1.35, 0.12, ("edge-bom-1", "edge-sin-1")),
    "sa-east": (1.25, 0.08, ("edge-gru-1",)),
}
EDGE_IDS: tuple[str, ...] = tuple(e for _, _, edges in REGIONS.values() for e in edges)


@dataclass(frozen=True)
class NetProfile:
    """Medians of a network type's playback QoS (before region, edge and noise)."""

    startup_ms: float
    startup_sigma: float
    rtt_ms: float
    bitrate_kbps: float
    throughput_kbps: float
    rebuffers_per_min: float
    stall_ms: float
    start_failure: float
    switches_per_min: float


NETWORKS: dict[str, NetProfile] = {
    "ethernet": NetProfile(450, 0.30, 8, 6500, 120_000, 0.01, 400, 0.002, 0.2),
    "5g_sa": NetProfile(520, 0.30, 14, 5800, 180_000, 0.02, 500, 0.003, 0.4),
    "wifi": NetProfile(750, 0.40, 22, 4800, 60_000, 0.05, 700, 0.005, 0.6),
    "5g_nsa": NetProfile(850, 0.35, 28, 4300, 90_000, 0.06, 700, 0.006, 0.7),
    "4g": NetProfile(1500, 0.45, 55, 2600, 25_000, 0.18, 1100, 0.012, 1.2),
    "3g": NetProfile(3800, 0.50, 160, 750, 2_500, 0.80, 2500, 0.040, 2.0),
}
NETWORK_MIX: dict[str, dict[str, float]] = {
    "mobile": {"5g_sa": 0.2, "5g_nsa": 0.28, "4g": 0.3, "wifi": 0.19, "3g": 0.03},
    "fixed": {"wifi": 0.6, "ethernet": 0.35, "4g": 0.05},
    "tv": {"wifi": 0.5, "ethernet": 0.5},
}
# platform -> (weight, network mix, devices, app versions)
PLATFORMS: dict[str, tuple[float, str, tuple[str, ...], tuple[str, ...]]] = {
    "android": (0.35, "mobile", ("Pixel 9", "Galaxy S24", "Xiaomi 14"), ("5.2.1", "5.3.0")),
    "ios": (0.25, "mobile", ("iPhone 15", "iPhone 16 Pro", "iPad Air"), ("5.2.0", "5.3.0")),
    "web": (0.25, "fixed", ("Chrome 131", "Firefox 133", "Safari 18"), ("3.14.0",)),
    "desktop": (0.1, "fixed", ("Windows app", "macOS app"), ("2.8.0",)),
    "smart_tv": (0.05, "tv", ("Android TV", "Tizen"), ("1.9.2",)),
}
# Degraded edge nodes multiply startup time and rebuffering by these.
DEGRADED_STARTUP = 3.5
DEGRADED_REBUFFER = 6.0


@dataclass(frozen=True)
class Edge:
    edge_id: str
    region: str
    factor: float  # this node's startup/latency multiplier
    degraded: bool

    @property
    def mec(self) -> bool:
        return self.edge_id.startswith("mec-")


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    """One simulation run. ``start`` is tz-aware; fractions are in [0, 1]."""

    learners: int
    courses: int
    rate: float  # target events/s over the whole run; 0 = one journey per learner
    duration_s: float
    seed: int
    run_id: str
    start: datetime
    bad_fraction: float = 0.0  # of all payloads sent
    pay_by_completion_fraction: float = 0.4  # of enrollments
    dropout_fraction: float = 0.3  # of enrolled journeys
    browse_only_fraction: float = 0.1  # of journeys: view pages, never enroll
    deadline_s: float = 600.0  # pay-by-completion: deadline_at = enrollment + this
    degraded_edges: int | tuple[str, ...] = 1  # how many edge nodes (seeded pick), or which
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.learners < 1 or self.courses < 1:
            raise ValueError("learners and courses must be at least 1")
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"rate must be >= 0 events/s (0 = as fast as possible): {self.rate}")
        if not 0 < self.duration_s <= 30 * 86_400:
            raise ValueError(f"duration_s must be in (0, 30 days]: {self.duration_s}")
        if not self.run_id:
            raise ValueError("run_id must not be empty")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be a tz-aware datetime (UTC)")
        if not 0 <= self.bad_fraction < 1:
            raise ValueError(f"bad_fraction must be in [0, 1): {self.bad_fraction}")
        for name in ("pay_by_completion_fraction", "dropout_fraction", "browse_only_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]: {getattr(self, name)}")
        if self.browse_only_fraction >= 1:
            raise ValueError("browse_only_fraction must be < 1: somebody has to enroll")
        if self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0: {self.deadline_s}")
        if isinstance(self.degraded_edges, int):
            if not 0 <= self.degraded_edges <= len(EDGE_IDS):
                raise ValueError(f"degraded_edges must be in [0, {len(EDGE_IDS)}]")
        else:
            object.__setattr__(self, "degraded_edges", tuple(self.degraded_edges))
            unknown = sorted(set(self.degraded_edges) - set(EDGE_IDS))
            if unknown:
                raise ValueError(f"unknown edge nodes {unknown}; known: {list(EDGE_IDS)}")

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


def new_run_id() -> str:
    return uuid.uuid4().hex


def sim_config_from_args(
    *,
    learners: int,
    courses: int,
    rate: float,
    duration: float,
    seed: int,
    run_id: str | None = None,
    start: datetime | None = None,
    degraded_edges: int | str | Sequence[str] | None = None,
    now: datetime | None = None,
    **overrides: Any,
) -> SimConfig:
    """The CLI's SimConfig. ``start`` defaults to now, or ``now - duration`` when ``rate`` is 0
    (sent as fast as possible, so timestamps lie in the past). ``degraded_edges`` takes a count
    or comma-separated edge ids; ``overrides`` are other SimConfig fields (bad_fraction, …)."""
    if start is None:
        now = now or datetime.now(UTC)
        start = now - timedelta(seconds=duration) if rate == 0 else now
    if isinstance(degraded_edges, str):
        text = degraded_edges.strip()
        degraded_edges = (
            int(text) if text.isdigit() else tuple(e.strip() for e in text.split(",") if e.strip())
        )
    if degraded_edges is not None:
        overrides["degraded_edges"] = (
            degraded_edges if isinstance(degraded_edges, int) else tuple(degraded_edges)
        )
    return SimConfig(
        learners=learners,
        courses=courses,
        rate=rate,
        duration_s=duration,
        seed=seed,
        run_id=run_id or new_run_id(),
        start=start,
        **overrides,
    )


def _rng(cfg: SimConfig, *purpose: object) -> random.Random:
    # A str seed is hashed with SHA-512: stable across processes (unlike hash()).
    seed = "/".join(["learnstream-sim", str(cfg.seed), *map(str, purpose)])
    return random.Random(seed)  # noqa: S311 - a simulation, not cryptography


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def topology(cfg: SimConfig) -> dict[str, Edge]:
    """Every edge node with its factor and whether it is degraded in this run."""
    rng = _rng(cfg, "topology")
    factors = {e: round(rng.uniform(0.9, 1.15), 3) for e in EDGE_IDS}
    if isinstance(cfg.degraded_edges, int):
        degraded = set(rng.sample(EDGE_IDS, cfg.degraded_edges))
    else:
        degraded = set(cfg.degraded_edges)
    return {
        e: Edge(e, region, factors[e], e in degraded)
        for region, (_, _, edges) in REGIONS.items()
        for e in edges
    }


# -- addresses: EIP-55 checksummed, derived from a hash ------------------------------------------


def derived_address(key: str) -> str:
    """A stable, valid (checksummed) address for a simulated creator or learner."""
    return to_checksum_address(
        "0x" + hashlib.sha256(f"learnstream-sim/{key}".encode()).hexdigest()[:40]
    )


# -- the catalogue -------------------------------------------------------------------------------

CATEGORIES: dict[str, tuple[str, ...]] = {
    "data": ("Data Analysis with pandas", "SQL for Analysts", "Statistics Essentials"),
    "ml": ("Machine Learning Foundations", "Deep Learning in Practice", "Online Learning"),
    "web": ("Modern JavaScript", "Web APIs with FastAPI", "CSS Layout"),
    "cloud": ("Kubernetes Basics", "Streaming with Kafka", "Cloud Cost Control"),
    "security": ("Web Security Basics", "Applied Cryptography"),
    "design": ("UX Research", "Typography for Screens"),
    "business": ("Product Management", "Negotiation"),
}
LESSONS = (
    "Introduction",
    "Core ideas",
    "Hands-on",
    "Deep dive",
    "Case study",
    "Pitfalls",
    "Putting it together",
    "Wrap-up",
)
PRICES_MINOR = (1900, 2900, 4900, 7900, 9900, 14900)


def _ms_ceil(at: datetime) -> datetime:
    """``at`` in UTC, rounded up to the millisecond (the wire keeps milliseconds)."""
    at = at.astimezone(UTC)
    return at + timedelta(microseconds=-at.microsecond % 1000)


def build_catalog(cfg: SimConfig) -> list[Course]:
    """``cfg.courses`` courses. Course k depends only on (seed, k), so ids and contents are the
    same for every run with this seed; ids carry a tag of the seed so that seeds never collide."""
    tag = hashlib.sha256(f"learnstream-sim/seed/{cfg.seed}".encode()).hexdigest()[:6]
    updated_at = _ms_ceil(cfg.start)
    return [
        _course(_rng(cfg, "course", k), tag, k, cfg.currency, updated_at)
        for k in range(cfg.courses)
    ]


def _course(rng: random.Random, tag: str, k: int, currency: str, updated_at: datetime) -> Course:
    category = rng.choice(sorted(CATEGORIES))
    n_videos = rng.randint(2, 5)
    videos = [
        Video(
            video_id=f"video-{i + 1}",
            title=f"{i + 1}. {LESSONS[i % len(LESSONS)]}",
            length_s=round(rng.uniform(90, 900), 1),
            required=not (i == n_videos - 1 and n_videos >= 3 and rng.random() < 0.4),
        )
        for i in range(n_videos)
    ]
    quizzes = [
        Quiz(
            quiz_id=f"quiz-{j + 1}",
            title=f"Check-in {j + 1}",
            required=rng.random() < 0.85,
            pass_fraction=rng.choice((0.6, 0.7)),
        )
        for j in range(rng.choice((0, 1, 1, 2)))
    ]
    creator_id = f"creator-{tag}-{k // 2:03d}"
    models = ["one_time", "subscription", "pay_by_completion"]
    if rng.random() >= 0.3:
        models.remove("subscription")
    return Course(
        course_id=f"course-{tag}-{k + 1:03d}",
        title=rng.choice(CATEGORIES[category]),
        category=category,
        level=rng.choice(("beginner", "intermediate", "advanced")),
        creator_id=creator_id,
        creator_address=derived_address(f"creator/{creator_id}"),
        price=Money(amount_minor=rng.choice(PRICES_MINOR), currency=currency),
        payment_models=models,  # type: ignore[arg-type]
        videos=videos,
        quizzes=quizzes,
        payout=PayoutPolicy(
            creator_share_bps=rng.choice((7000, 8000, 8500)),
            partial="linear" if rng.random() < 0.8 else "none",
        ),
        updated_at=updated_at,
    )


# -- playback QoS --------------------------------------------------------------------------------

StartFailure = Literal["video_start_failure", "exit_before_video_start"]


@dataclass(frozen=True)
class Start:
    """How a playback attempt started: its startup time, or how it failed to."""

    startup_ms: int | None
    failure: StartFailure | None = None


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def sample_start(rng: random.Random, network: str, edge: Edge, allow_failure: bool = True) -> Start:
    """Startup time by network, region and edge; start failures and exits before start."""
    net = NETWORKS[network]
    median = net.startup_ms * REGIONS[edge.region][0] * edge.factor
    if edge.degraded:
        median *= DEGRADED_STARTUP
    startup = min(120_000, int(rng.lognormvariate(math.log(median), net.startup_sigma)))
    if allow_failure:
        if rng.random() < net.start_failure * (5 if edge.degraded else 1):
            return Start(None, "video_start_failure")
        # Learners give up on slow starts: the longer the wait, the likelier.
        if rng.random() < 0.003 + max(0.0, min(0.7, (startup - 4000) / 12_000)):
            return Start(None, "exit_before_video_start")
    return Start(startup)


def sample_session_qos(
    rng: random.Random, network: str, edge: Edge, start: Start, played_ms: int
) -> dict[str, Any]:
    """The PlaybackQos fields (beyond the envelope) of one playback session."""
    net = NETWORKS[network]
    region = REGIONS[edge.region][0]
    worse = 1.6 if edge.degraded else 1.0
    rtt = (
        net.rtt_ms
        * region
        * edge.factor
        * rng.lognormvariate(0, 0.25)
        * (2.5 if edge.degraded else 1)
    )
    radio = None
    if network.startswith("5g"):
        sa = network == "5g_sa"
        radio = Radio(
            rsrp_dbm=round(min(-44.0, max(-140.0, rng.gauss(-88 if sa else -95, 7))), 1),
            rsrq_db=round(min(-3.0, max(-20.0, rng.gauss(-10 if sa else -11.5, 2.5))), 1),
            sinr_db=round(min(35.0, max(-20.0, rng.gauss(18 if sa else 13, 5))), 1),
        )
    qos: dict[str, Any] = {
        "report": "session",
        "startup_time_ms": start.startup_ms,
        "video_start_failure": start.failure == "video_start_failure",
        "exit_before_video_start": start.failure == "exit_before_video_start",
        "throughput_kbps": int(net.throughput_kbps * rng.lognormvariate(0, 0.35) / worse),
        "rtt_ms": round(rtt, 1),
        "radio": radio,
    }
    if start.failure is not None or played_ms <= 0:
        return qos
    minutes = played_ms / 60_000
    rebuffer_rate = net.rebuffers_per_min * region * edge.factor
    if edge.degraded:
        rebuffer_rate *= DEGRADED_REBUFFER
    count = _poisson(rng, rebuffer_rate * minutes)
    stall = net.stall_ms * (2 if edge.degraded else 1)
    avg = max(100, int(net.bitrate_kbps * rng.lognormvariate(0, 0.2) / worse))
    qos.update(
        played_ms=played_ms,
        rebuffer_count=count,
        rebuffer_ms=sum(int(rng.lognormvariate(math.log(stall), 0.5)) + 1 for _ in range(count)),
        avg_bitrate_kbps=avg,
        peak_bitrate_kbps=int(avg * rng.uniform(1.05, 1.6)),
        bitrate_switches=_poisson(rng, net.switches_per_min * minutes * worse),
        dropped_frames=_poisson(rng, minutes * 4 * worse),
    )
    return qos


# -- one learner's journeys ----------------------------------------------------------------------


@dataclass(frozen=True)
class Journey:
    """One learner's go at one course, and how it ended."""

    learner_id: str
    course_id: str
    outcome: Outcome
    payment_model: str | None = None
    enrollment_id: str | None = None


@dataclass
class _Draft:
    t: float  # natural seconds on the learner's own clock
    cls: type[Envelope]
    fields: dict[str, Any]


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


class _Learner:
    """Drafts one learner's events; the Simulation lays them out in time."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.cfg = sim.cfg
        self.index = index
        self.rng = rng = _rng(sim.cfg, "learner", index)
        self.learner_id = "learner-" + sim.uid("learner", index).hex[:12]
        self.platform = _weighted(rng, {p: w for p, (w, *_) in PLATFORMS.items()})
        _, mix, devices, versions = PLATFORMS[self.platform]
        self.device, self.app_version = rng.choice(devices), rng.choice(versions)
        self.mix = NETWORK_MIX[mix]
        self.home_network = _weighted(rng, self.mix)
        self.region = _weighted(rng, {r: w for r, (_, w, _) in REGIONS.items()})
        self.skill = rng.uniform(0.45, 0.95)
        self.refund_address = derived_address(f"refund/{self.learner_id}")
        self.drafts: list[_Draft] = []
        self.t = 0.0
        self.seq = self.sessions = self.playbacks = 0
        self.enrolled: set[str] = set()
        self.segments: dict[tuple[str, str], list[list[int]]] = {}
        self.pbc_windows: list[tuple[float, float]] = []  # natural (enrolled, last event)

    # -- plumbing

    def emit(self, cls: type[Envelope], gap: float = 0.0, **fields: Any) -> uuid.UUID:
        self.t += max(0.0, gap)
        event_id = self.sim.uid("event", self.index, self.seq)
        self.seq += 1
        fields.update(
            event_id=event_id,
            learner_id=self.learner_id,
            session_id=self.session_id,
            client=self.client,
        )
        self.drafts.append(_Draft(self.t, cls, fields))
        return event_id

    def new_session(self, gap: float = 0.0) -> None:
        rng = self.rng
        self.t += gap
        self.sessions += 1
        self.session_id = "sess-" + self.sim.uid("session", self.index, self.sessions).hex[:16]
        mobile = self.mix is NETWORK_MIX["mobile"]
        self.network = (
            _weighted(rng, self.mix) if mobile and rng.random() < 0.5 else self.home_network
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

    def _start_playback(self, course: Course, video: Video, pos: int) -> tuple[str, Start]:
        """initialized, then played; failed starts are retried (up to three failures)."""
        rng = self.rng
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
                self.t += (new - pos) / 1000
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
        self.t += (end - target) / 1000
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


# -- the simulation: plan, lay out in time, iterate ------------------------------------------------


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
        self._base = _ms_ceil(cfg.start)
        self._span_ms = int(
            (cfg.start + timedelta(seconds=cfg.duration_s) - self._base) / timedelta(milliseconds=1)
        )
        self._deadline = timedelta(milliseconds=round(cfg.deadline_s * 1000))
        self._learners = [_Learner(self, k) for k in range(cfg.learners)]
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

    def _layout(self, k: int, learner: _Learner) -> list[tuple[int, int, int]]:
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
        rng, out = _rng(self.cfg, "bad-slots"), {}
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
            fields["deadline_at"] = at + self._deadline
        return draft.cls(**fields)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[SimItem]:
        rng = _rng(self.cfg, "bad-content")
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


__all__ = [
    "BAD_KINDS", "EDGE_IDS", "NETWORKS", "REGIONS", "BadPayload", "Edge", "Journey", "SimConfig",
    "SimEvent", "SimItem", "Simulation", "Start", "build_catalog",
    "derived_address", "generate", "new_run_id", "sample_session_qos",
    "sample_start", "sim_config_from_args", "topology",
]  # fmt: skip
