"""Server-side QoS: each participant's aiortc ``getStats()`` as ``live_qos`` events.

aiortc's statistics are thin (DESIGN.md, "Live classes"), so each row says what the server can
know about one stream of one participant:

- a **learner** receives the teacher's tracks from the server, so the server is the sender:
  ``outbound-rtp`` gives the bytes sent (the bitrate is their delta over the interval) and the
  learner's receiver reports (``remote-inbound-rtp``) give the round-trip time, the jitter and
  the loss the learner sees. Direction ``inbound``: what the participant receives.
- the **teacher** sends to the server, so the server is the receiver: aiortc's statistics of
  the teacher's media SSRC give the packets received and lost and the jitter (read per SSRC:
  ``inbound-rtp`` keeps one entry per receiver, which the RTX stream overwrites), and the bytes
  come from a counter on the receiver (aiortc's inbound stats carry none). aiortc measures no
  round-trip time on a stream it only receives, so teacher rows have none. Direction
  ``outbound``.

Jitter arrives in RTP clock units (divided by the codec's clock rate: 90 kHz for video, 48 kHz
for Opus) and RTT in seconds; rows carry milliseconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schemas import Client, LiveQos
from schemas.quality import quality

VIDEO_CLOCK_HZ = 90_000
MAX_DELAY_MS = 600_000.0  # the LiveQos model's bound on rtt_ms and jitter_ms
AUDIO_CLOCK_HZ = {"opus": 48_000, "pcmu": 8_000, "pcma": 8_000, "g722": 8_000}

Direction = Literal["inbound", "outbound"]


def clock_rate(kind: str, codec: Any | None = None) -> int:
    """The RTP clock rate of a stream: the negotiated codec's, else the usual one of its kind."""
    rate = getattr(codec, "clockRate", None)
    if isinstance(rate, int) and rate > 0:
        return rate
    if kind == "video":
        return VIDEO_CLOCK_HZ
    mime = str(getattr(codec, "mimeType", "audio/opus")).split("/")[-1].lower()
    return AUDIO_CLOCK_HZ.get(mime, 48_000)


@dataclass(frozen=True)
class Measure:
    """One stream's cumulative figures at one moment (``at``: monotonic seconds)."""

    kind: Literal["audio", "video"]
    direction: Direction
    at: float
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packets_received: int | None = None
    packets_lost: int | None = None
    bytes: int | None = None


def from_sender_stats(kind: str, stats: Any, rate: int, at: float | None = None) -> Measure:
    """A learner's stream from the server's sender stats (``outbound-rtp`` and, once the
    learner has sent a receiver report, ``remote-inbound-rtp``)."""
    out = remote = None
    for item in stats.values():
        if item.type == "outbound-rtp":
            out = item
        elif item.type == "remote-inbound-rtp":
            remote = item
    rtt = getattr(remote, "roundTripTime", None)
    return Measure(
        kind=kind,  # type: ignore[arg-type]
        direction="inbound",
        at=time.monotonic() if at is None else at,
        rtt_ms=None if rtt is None else _plausible(rtt * 1000),
        jitter_ms=None if remote is None else _plausible(remote.jitter * 1000 / rate),
        packets_received=None if remote is None else max(0, remote.packetsReceived),
        packets_lost=None if remote is None else max(0, remote.packetsLost),
        bytes=None if out is None else out.bytesSent,
    )


def from_stream_statistics(
    kind: str, stream: Any, rate: int, received_bytes: int | None, at: float | None = None
) -> Measure:
    """The teacher's stream from aiortc's statistics of its media SSRC (what ``inbound-rtp``
    reports, read per SSRC: the RTX stream has its own)."""
    return Measure(
        kind=kind,  # type: ignore[arg-type]
        direction="outbound",
        at=time.monotonic() if at is None else at,
        jitter_ms=None if stream is None else _plausible(stream.jitter * 1000 / rate),
        packets_received=None if stream is None else stream.packets_received,
        packets_lost=None if stream is None else max(0, stream.packets_lost),
        bytes=received_bytes,
    )


def _plausible(ms: float | None) -> float | None:
    """A delay in ms, or None where a peer's report made it absurd (negative, or above the
    model's 10 minutes: a wrapped RTP timestamp, a forged receiver report)."""
    return ms if ms is not None and 0 <= ms <= MAX_DELAY_MS else None


def interval_figures(previous: Measure | None, current: Measure) -> dict[str, float | None]:
    """What happened between two measures: the interval, the loss fraction and the bitrate
    (None where either end lacks the figure, or on the first measure)."""
    if previous is None:
        return {"interval_s": None, "fraction_lost": None, "bitrate_kbps": None}
    interval = current.at - previous.at
    fraction = bitrate = None
    if interval > 0 and current.bytes is not None and previous.bytes is not None:
        bitrate = max(0, current.bytes - previous.bytes) * 8 / 1000 / interval
    counts = (
        current.packets_received,
        current.packets_lost,
        previous.packets_received,
        previous.packets_lost,
    )
    if None not in counts:
        received = counts[0] - counts[2]  # type: ignore[operator]
        lost = max(0, counts[1] - counts[3])  # type: ignore[operator]
        expected = received + lost
        # nothing expected (no new receiver report, or a restarted counter): loss unknown
        fraction = lost / expected if expected > 0 and received >= 0 else None
    return {
        "interval_s": interval if interval > 0 else None,
        "fraction_lost": None if fraction is None else min(1.0, fraction),
        "bitrate_kbps": bitrate,
    }


@dataclass(frozen=True)
class Who:
    """The participant a row is about, as it joined."""

    room_id: str
    course_id: str | None
    peer_id: str
    role: Literal["teacher", "learner"]
    learner_id: str
    session_id: str
    client: Client


def event(
    who: Who,
    previous: Measure | None,
    current: Measure,
    occurred_at: datetime,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> LiveQos:
    """One ``source=server`` row, scored with the project's quality function."""
    figures = interval_figures(previous, current)
    scored = quality(
        current.rtt_ms, current.jitter_ms, figures["fraction_lost"]
    )  # server rows have no frame figures: the network score
    return LiveQos(
        event_id=new_id(),
        occurred_at=occurred_at,
        learner_id=who.learner_id,
        session_id=who.session_id,
        client=who.client,
        course_id=who.course_id,
        room_id=who.room_id,
        peer_id=who.peer_id,
        source="server",
        kind=current.kind,
        role=who.role,
        direction=current.direction,
        rtt_ms=current.rtt_ms,
        jitter_ms=current.jitter_ms,
        packets_received=current.packets_received,
        packets_lost=current.packets_lost,
        score=round(scored.score, 3),
        **figures,
    )
