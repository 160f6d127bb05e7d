"""Learner events: a shared envelope and one class per event type, discriminated by ``type``."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from schemas.base import (
    SUPPORTED_SCHEMA_VERSIONS,
    Address,
    Id,
    Money,
    Strict,
    Text,
    UtcDatetime,
    Wei,
)

NetworkType = Literal["5g_sa", "5g_nsa", "4g", "3g", "wifi", "ethernet", "unknown"]
Platform = Literal["ios", "android", "web", "desktop", "smart_tv", "server", "other"]
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
ZERO_ADDRESS = "0x" + "0" * 40


class Client(Strict):
    """Who sent the event, from where, over which network."""

    platform: Platform
    app_version: Text
    device: Text = Field(description="Device model or user-agent family")
    network_type: NetworkType
    region: Id = Field("unknown", description="Client region, e.g. eu-west or a country code")
    edge_node: Id = Field("unknown", description="CDN/MEC edge node id that served the client")


class Envelope(Strict):
    """Fields every event carries. ``event_id`` is the identity everywhere."""

    event_id: uuid.UUID
    schema_version: int = Field(1, description="Major version; unknown versions are rejected")
    occurred_at: UtcDatetime = Field(description="Client clock, tz-aware; stored as UTC")
    received_at: UtcDatetime | None = Field(None, description="Set by the collector")
    learner_id: Id
    session_id: Id
    client: Client

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version {value} is not supported (supported: "
                f"{sorted(SUPPORTED_SCHEMA_VERSIONS)})"
            )
        return value


class CourseViewed(Envelope):
    """A learner viewed a course page or a lesson page."""

    type: Literal["course_viewed"] = "course_viewed"
    course_id: Id
    page: Literal["overview", "syllabus", "lesson", "pricing", "reviews", "other"]
    lesson_id: Id | None = None
    dwell_ms: int = Field(ge=0, le=86_400_000, description="Time on the page")

    @model_validator(mode="after")
    def _lesson_page_has_lesson(self) -> CourseViewed:
        if self.page == "lesson" and self.lesson_id is None:
            raise ValueError("page 'lesson' needs lesson_id")
        return self


Segment = Annotated[list[float], Field(min_length=2, max_length=2)]


class VideoPlayback(Envelope):
    """A video statement with xAPI Video Profile semantics (times in seconds)."""

    type: Literal["video_playback"] = "video_playback"
    course_id: Id
    video_id: Id
    verb: Literal["initialized", "played", "paused", "seeked", "completed", "terminated"]
    time: float | None = Field(None, ge=0, description="Playhead (xAPI result time)")
    time_from: float | None = Field(None, ge=0, description="Seek origin (seeked only)")
    time_to: float | None = Field(None, ge=0, description="Seek target (seeked only)")
    length: float = Field(gt=0, le=86_400, description="Video length in seconds")
    played_segments: list[Segment] = Field(
        default_factory=list,
        max_length=10_000,
        description="[[start, end], …] played so far (xAPI played-segments)",
    )
    progress: float | None = Field(None, ge=0, le=1, description="xAPI progress, 0..1")

    @model_validator(mode="after")
    def _verb_fields(self) -> VideoPlayback:
        if self.verb == "seeked" and (self.time_from is None or self.time_to is None):
            raise ValueError("verb 'seeked' needs time_from and time_to")
        if self.verb != "seeked" and (self.time_from is not None or self.time_to is not None):
            raise ValueError("time_from/time_to belong to verb 'seeked' only")
        for start, end in self.played_segments:
            if start < 0 or end < start:
                raise ValueError(f"played segment [{start}, {end}] must have 0 <= start <= end")
        return self


class Radio(Strict):
    """5G/4G radio measurements reported by the modem, when present."""

    rsrp_dbm: float | None = Field(None, ge=-156, le=-31)
    rsrq_db: float | None = Field(None, ge=-43, le=20)
    sinr_db: float | None = Field(None, ge=-23, le=40)


CmcdValue = str | int | float | bool


class PlaybackQos(Envelope):
    """Quality of experience of one playback session (industry QoE definitions).

    ``report = "session"`` is the player's summary of a playback session. ``report = "cmcd"``
    is a single CMCD (CTA-5004) sample mapped by the collector, which carries only what CMCD
    reports; the QoS aggregates count session reports.
    """

    type: Literal["playback_qos"] = "playback_qos"
    course_id: Id
    video_id: Id
    playback_id: Id = Field(description="The playback session this report summarises")
    report: Literal["session", "cmcd"] = "session"
    startup_time_ms: int | None = Field(None, ge=0, le=600_000)
    video_start_failure: bool = False
    exit_before_video_start: bool = False
    rebuffer_count: int = Field(0, ge=0)
    rebuffer_ms: int = Field(0, ge=0)
    played_ms: int = Field(0, ge=0)
    avg_bitrate_kbps: int | None = Field(None, ge=0)
    peak_bitrate_kbps: int | None = Field(None, ge=0)
    bitrate_switches: int = Field(0, ge=0)
    dropped_frames: int = Field(0, ge=0)
    throughput_kbps: int | None = Field(None, ge=0)
    rtt_ms: float | None = Field(None, ge=0)
    radio: Radio | None = None
    cmcd: dict[str, CmcdValue] | None = Field(
        None, description="CMCD keys as received, unknown ones included"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PlaybackQos:
        if self.video_start_failure and self.exit_before_video_start:
            raise ValueError("video_start_failure and exit_before_video_start exclude each other")
        never_started = self.video_start_failure or self.exit_before_video_start
        if never_started and (self.startup_time_ms is not None or self.played_ms):
            raise ValueError("a video that never started has no startup_time_ms or played_ms")
        if (
            self.avg_bitrate_kbps is not None
            and self.peak_bitrate_kbps is not None
            and self.peak_bitrate_kbps < self.avg_bitrate_kbps
        ):
            raise ValueError("peak_bitrate_kbps must be >= avg_bitrate_kbps")
        if self.rebuffer_ms and not self.rebuffer_count:
            raise ValueError("rebuffer_ms > 0 needs rebuffer_count > 0")
        return self


class QuizResult(Envelope):
    """A learner finished a quiz attempt."""

    type: Literal["quiz_result"] = "quiz_result"
    course_id: Id
    quiz_id: Id
    score: float = Field(ge=0)
    max_score: float = Field(gt=0)
    passed: bool
    attempt: int = Field(ge=1, le=1000)
    duration_ms: int = Field(ge=0)

    @model_validator(mode="after")
    def _score_in_range(self) -> QuizResult:
        if self.score > self.max_score:
            raise ValueError(f"score {self.score} exceeds max_score {self.max_score}")
        return self


class Escrow(Strict):
    """What a pay-by-completion enrollment deposits, in which asset, and where a refund goes.

    ``asset`` is ``"ETH"`` or the address of an ERC-20 token; ``deposit_wei`` is in that
    asset's base units (wei for ETH, the token's smallest unit otherwise: 6 decimals for a
    typical stablecoin). These are the terms pinned at deposit.
    """

    deposit_wei: Wei = Field(
        description="The deposit in the asset's base units (wei for ETH), as a string of digits"
    )
    refund_address: Address
    asset: Literal["ETH"] | Address = Field(
        "ETH", description='"ETH", or the address of the ERC-20 token deposited'
    )

    @field_validator("asset", mode="before")
    @classmethod
    def _known_asset(cls, value: object) -> object:
        if value == "ETH":
            return value
        if not isinstance(value, str) or not ADDRESS.fullmatch(value):
            raise ValueError(
                f'asset must be "ETH" or an ERC-20 token address (0x and 40 hex digits), '
                f"got {value!r:.80}"
            )
        if value == ZERO_ADDRESS:
            raise ValueError('asset 0x000…0 is not a token: use "ETH" for ether')
        return value


class Enrollment(Envelope):
    """A purchase. The enrollment's id is this event's ``event_id``."""

    type: Literal["enrollment"] = "enrollment"
    course_id: Id
    price: Money
    payment_model: Literal["one_time", "subscription", "pay_by_completion"]
    escrow: Escrow | None = None
    deadline_at: UtcDatetime | None = Field(
        None, description="Pay-by-completion: when it settles with the latest score"
    )

    @model_validator(mode="after")
    def _escrow_iff_pay_by_completion(self) -> Enrollment:
        pbc = self.payment_model == "pay_by_completion"
        if pbc and (self.escrow is None or self.deadline_at is None):
            raise ValueError("pay_by_completion needs escrow and deadline_at")
        if not pbc and (self.escrow is not None or self.deadline_at is not None):
            raise ValueError("escrow and deadline_at belong to pay_by_completion only")
        if pbc and self.deadline_at is not None and self.deadline_at <= self.occurred_at:
            raise ValueError("deadline_at must be after occurred_at")
        return self

    @property
    def enrollment_id(self) -> uuid.UUID:
        return self.event_id


class LiveQos(Envelope):
    """WebRTC quality of one participant's stream in a live class, over one interval.

    ``source = "server"`` rows come from the live server's ``getStats()`` (aiortc: RTT, jitter,
    loss, bitrate); ``source = "browser"`` rows from the browser's own ``getStats()``, which adds
    the frame figures. ``peer_id`` is the participant; the client's ``network_type`` and
    ``region`` are the ones the participant joined with. Durations are in milliseconds
    (browsers report seconds: the page converts). Cumulative counters (``packets_*``,
    ``frames_dropped``, ``freeze_count``, ``total_freezes_duration_ms``) are totals since the
    stream started, as ``getStats()`` gives them; ``freeze_ms`` and ``bitrate_kbps`` are this
    interval's. ``score`` is the quality score (``schemas.quality``) the live server puts on its
    own rows; the sink scores browser rows itself.
    """

    type: Literal["live_qos"] = "live_qos"
    course_id: Id | None = None
    room_id: Id
    peer_id: Id
    source: Literal["server", "browser"]
    kind: Literal["audio", "video"]
    role: Literal["teacher", "learner"] | None = None
    direction: Literal["inbound", "outbound"] | None = Field(
        None, description="inbound: what the participant receives; outbound: what it sends"
    )
    interval_s: float | None = Field(None, gt=0, le=3600, description="The reporting interval")
    rtt_ms: float | None = Field(None, ge=0, le=600_000)
    jitter_ms: float | None = Field(None, ge=0, le=600_000)
    packets_received: int | None = Field(None, ge=0)
    packets_lost: int | None = Field(None, ge=0)
    fraction_lost: float | None = Field(None, ge=0, le=1, description="Loss in this interval")
    bitrate_kbps: float | None = Field(None, ge=0, le=10_000_000)
    frames_per_second: float | None = Field(None, ge=0, le=1000)
    frames_dropped: int | None = Field(None, ge=0)
    freeze_count: int | None = Field(None, ge=0)
    total_freezes_duration_ms: float | None = Field(None, ge=0)
    freeze_ms: float | None = Field(None, ge=0, description="Frozen time within this interval")
    jitter_buffer_delay_ms: float | None = Field(
        None, ge=0, le=600_000, description="jitterBufferDelay per emitted frame"
    )
    quality_limitation_reason: Literal["none", "cpu", "bandwidth", "other"] | None = None
    score: float | None = Field(None, ge=0, le=100, description="Quality score, 0..100")

    @model_validator(mode="after")
    def _freeze_within_interval(self) -> LiveQos:
        frozen, interval = self.freeze_ms, self.interval_s
        if frozen is not None and interval is not None and frozen > interval * 1000 + 1:
            raise ValueError(
                f"freeze_ms {self.freeze_ms} exceeds the interval ({self.interval_s} s)"
            )
        return self


class ImmersiveQos(Envelope):
    """Comfort and smoothness of a VR lesson over one interval, as the headset reports it.

    Motion-to-photon latency above 20 ms is where comfort ends; frames the compositor had to
    reproject (re-show with a warped older image) or drop are the judder a learner feels.
    """

    type: Literal["immersive_qos"] = "immersive_qos"
    course_id: Id
    lesson_id: Id | None = None
    headset: Text = Field(description="Headset model, e.g. Quest 3")
    interval_s: float = Field(gt=0, le=3600)
    target_fps: float = Field(gt=0, le=1000, description="The display's refresh rate")
    frames_per_second: float = Field(ge=0, le=1000)
    motion_to_photon_ms: float = Field(ge=0, le=10_000, description="Mean over the interval")
    motion_to_photon_p95_ms: float | None = Field(None, ge=0, le=10_000)
    frames_dropped: int = Field(0, ge=0)
    frames_reprojected: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ImmersiveQos:
        p95 = self.motion_to_photon_p95_ms
        if p95 is not None and p95 < self.motion_to_photon_ms:
            raise ValueError("motion_to_photon_p95_ms must be >= motion_to_photon_ms")
        return self


Event = Annotated[
    CourseViewed | VideoPlayback | PlaybackQos | QuizResult | Enrollment | LiveQos | ImmersiveQos,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Envelope]] = {
    "course_viewed": CourseViewed,
    "video_playback": VideoPlayback,
    "playback_qos": PlaybackQos,
    "quiz_result": QuizResult,
    "enrollment": Enrollment,
    "live_qos": LiveQos,
    "immersive_qos": ImmersiveQos,
}
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
