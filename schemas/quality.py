"""The quality score of a live-class participant over one interval (DESIGN.md, "Live classes").

One pure function, on the ground floor so that the live server scores its own ``live_qos`` rows
and the ClickHouse sink scores browser rows with the same code.

- Network and audio: the simplified E-model (ITU-T G.107) as LiveKit's connection-quality
  scorer uses it. Effective latency ``L = rtt/2 + 2·jitter + 10`` ms;
  ``R = 93.2 - (L/40 if L < 160 else (L - 120)/10) - 2.5·loss%``, clamped to [0, 100] as G.107
  clamps it (unclamped, 60 % loss gives R < 0 and a MOS that rises again);
  ``MOS = 1 + 0.035·R + 7·10⁻⁶·R·(R - 60)·(100 - R)``.
- Video, where frame figures exist: ``V = 100 * (1 - freeze_ratio) * min(1, fps / 24)``.
- ``score = min(R, V)`` (``R`` alone without frame figures). Bands: ≥ 80 excellent, ≥ 60 good,
  ≥ 40 fair, below poor.

What is not known counts as perfect: no RTT (aiortc has none on inbound streams) adds no delay,
no loss figure no loss. The score is about what was measured, and a row says which figures it had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Band = Literal["excellent", "good", "fair", "poor"]
FULL_FPS = 24.0


@dataclass(frozen=True)
class Quality:
    """R (0..100), its MOS (1..4.5), the video factor (None without frame figures), the score
    and its band."""

    r: float
    mos: float
    video: float | None
    score: float
    band: Band


def effective_latency_ms(rtt_ms: float | None, jitter_ms: float | None) -> float:
    return (rtt_ms or 0.0) / 2 + 2 * (jitter_ms or 0.0) + 10


def r_factor(rtt_ms: float | None, jitter_ms: float | None, loss: float | None) -> float:
    """R of the simplified E-model, clamped to [0, 100]; ``loss`` is a fraction (0..1)."""
    latency = effective_latency_ms(rtt_ms, jitter_ms)
    delay = latency / 40 if latency < 160 else (latency - 120) / 10
    r = 93.2 - delay - 2.5 * (100 * (loss or 0.0))
    return min(100.0, max(0.0, r))


def mos(r: float) -> float:
    """The mean opinion score of an R value (G.107, Annex B)."""
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def video_factor(fps: float, freeze_ms: float, interval_s: float) -> float:
    """100 * (1 - freeze ratio) * min(1, fps / 24)."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    freeze_ratio = min(1.0, max(0.0, freeze_ms / (interval_s * 1000)))
    return 100 * (1 - freeze_ratio) * min(1.0, max(0.0, fps) / FULL_FPS)


def band(score: float) -> Band:
    if score >= 80:
        return "excellent"
    if score >= 60:
        return "good"
    if score >= 40:
        return "fair"
    return "poor"


def quality(
    rtt_ms: float | None,
    jitter_ms: float | None,
    loss: float | None,
    fps: float | None = None,
    freeze_ms: float | None = None,
    interval_s: float | None = None,
) -> Quality:
    """The score from what is known. Frame figures count when ``fps`` and ``interval_s`` are
    given (``freeze_ms`` defaults to no freeze)."""
    r = r_factor(rtt_ms, jitter_ms, loss)
    video = None
    if fps is not None and interval_s is not None:
        video = video_factor(fps, freeze_ms or 0.0, interval_s)
    score = r if video is None else min(r, video)
    return Quality(r=r, mos=mos(r), video=video, score=score, band=band(score))


def of_event(event: object) -> Quality:
    """The quality of a ``live_qos`` event (any object with its field names)."""
    return quality(
        getattr(event, "rtt_ms", None),
        getattr(event, "jitter_ms", None),
        getattr(event, "fraction_lost", None),
        getattr(event, "frames_per_second", None),
        getattr(event, "freeze_ms", None),
        getattr(event, "interval_s", None),
    )
