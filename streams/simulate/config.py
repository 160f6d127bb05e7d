"""A simulation run's configuration and the world it runs in.

``SimConfig`` (and ``sim_config_from_args``, what the CLI builds), the simulated world (regions,
edge nodes, network profiles, platforms and devices; ``topology`` picks the degraded edge nodes of
a run), and the helpers every part of the simulator shares: ``seeded_rng`` (a ``random.Random``
seeded from ``(seed, purpose)``), ``weighted_choice`` and ``ms_ceil``.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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

# Immersive (VR) lessons. headset -> (weight, platform, refresh rates, the motion-to-photon ms
# of rendering on the headset itself). Lessons are rendered on the edge node and streamed (split
# rendering), so the network adds its own share, IMMERSIVE_NETWORK_MS, scaled like playback RTT.
HEADSETS: dict[str, tuple[float, str, tuple[float, ...], float]] = {
    "Quest 3": (0.6, "android", (72.0, 90.0, 120.0), 11.5),
    "Pico 4": (0.25, "android", (72.0, 90.0), 13.0),
    "Vision Pro": (0.15, "other", (90.0,), 10.5),
}
IMMERSIVE_NETWORK_MS: dict[str, float] = {
    "ethernet": 2.0, "5g_sa": 2.5, "5g_nsa": 4.5, "wifi": 5.5, "4g": 10.0, "3g": 26.0,
}  # fmt: skip
IMMERSIVE_APP_VERSION = "1.4.2"
IMMERSIVE_INTERVAL_S = 60.0  # a headset reports once a minute of a lesson


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
    immersive_fraction: float = 0.06  # of learners: they take their lessons in a VR headset
    deadline_s: float = 600.0  # pay-by-completion: deadline_at = enrollment + this
    # ... or the run's end + this: a backdated run (rate 0) is sent now, and the platform's
    # server sets deadlines from when it sends; the money clock is the collector's.
    deadline_from_end: bool = False
    grace_s: int = 120  # the catalogue's payout grace (must exceed the settlement delay)
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
        for name in (
            "pay_by_completion_fraction",
            "dropout_fraction",
            "browse_only_fraction",
            "immersive_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]: {getattr(self, name)}")
        if self.browse_only_fraction >= 1:
            raise ValueError("browse_only_fraction must be < 1: somebody has to enroll")
        if not 0 < self.deadline_s <= 3650 * 86_400:
            raise ValueError(f"deadline_s must be in (0, 3650 days]: {self.deadline_s}")
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


def seeded_rng(cfg: SimConfig, *purpose: object) -> random.Random:
    # A str seed is hashed with SHA-512: stable across processes (unlike hash()).
    seed = "/".join(["learnstream-sim", str(cfg.seed), *map(str, purpose)])
    return random.Random(seed)  # noqa: S311 - a simulation, not cryptography


def weighted_choice(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def topology(cfg: SimConfig) -> dict[str, Edge]:
    """Every edge node with its factor and whether it is degraded in this run."""
    rng = seeded_rng(cfg, "topology")
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


def ms_ceil(at: datetime) -> datetime:
    """``at`` in UTC, rounded up to the millisecond (the wire keeps milliseconds)."""
    at = at.astimezone(UTC)
    return at + timedelta(microseconds=-at.microsecond % 1000)
