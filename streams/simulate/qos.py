"""Playback quality of service: how a playback attempt starts (``sample_start``) and the session
report it ends with (``sample_session_qos``), by network type, region and edge node; and the
comfort of an immersive (VR) lesson over one interval (``sample_immersive_qos``)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from schemas import Radio
from streams.simulate.config import (
    DEGRADED_REBUFFER,
    DEGRADED_STARTUP,
    HEADSETS,
    IMMERSIVE_NETWORK_MS,
    NETWORKS,
    REGIONS,
    Edge,
)

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


def sample_immersive_qos(
    rng: random.Random,
    headset: str,
    target_fps: float,
    network: str,
    edge: Edge,
    interval_s: float,
) -> dict[str, Any]:
    """The ImmersiveQos figures of one interval of a VR lesson. Motion-to-photon latency is the
    headset's own plus the network's share (split rendering on the edge node), so 5G SA stays
    well under the 20 ms comfort limit, while Wi-Fi and 4G often cross it; the compositor
    reprojects (and at worst drops) more frames at higher refresh rates and latencies."""
    local_ms = HEADSETS[headset][3]
    net_ms = IMMERSIVE_NETWORK_MS[network] * REGIONS[edge.region][0] * edge.factor
    if edge.degraded:
        net_ms *= 3
    mtp = (local_ms + net_ms) * rng.lognormvariate(0, 0.15)
    frames = target_fps * interval_s
    miss = 0.004 * (target_fps / 72) ** 2 * (1 + net_ms / 5) * rng.lognormvariate(0, 0.7)
    reprojected = min(int(frames), _poisson(rng, frames * min(0.4, miss)))
    dropped = min(int(frames) - reprojected, _poisson(rng, reprojected * 0.15))
    return {
        "interval_s": interval_s,
        "target_fps": target_fps,
        "frames_per_second": round(target_fps * (1 - (reprojected + dropped) / frames), 1),
        "motion_to_photon_ms": round(mtp, 1),
        "motion_to_photon_p95_ms": round(mtp * rng.uniform(1.15, 1.6), 1),
        "frames_dropped": dropped,
        "frames_reprojected": reprojected,
    }
