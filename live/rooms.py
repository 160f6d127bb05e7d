"""Rooms and participants, with the limits the server enforces.

A room has at most one teacher (who publishes audio and video) and learners up to the room's
limit (the teacher counts). The teacher's tracks go to every learner through one aiortc
``MediaRelay`` per room. Every refusal is a :class:`LiveError` with the HTTP status and a
message a person can act on.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiortc.contrib.media import MediaRelay

from schemas import Client

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection

    from live.qos import Measure

Role = Literal["teacher", "learner"]
ROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
KEYFRAME_MIN_GAP_S = 0.5


class LiveError(Exception):
    """A refused request: its HTTP status, a short code and what to do about it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Quiz:
    """An in-class question the teacher asked; the answer key stays on the server."""

    quiz_id: str
    choices: int
    answer: int
    max_score: float
    max_attempts: int
    asked_at: float = field(default_factory=time.monotonic)


class Keyframes:
    """Keyframe requests to the teacher's video, at most one per ``KEYFRAME_MIN_GAP_S``."""

    def __init__(self) -> None:
        self.receiver: Any = None
        self.ssrc: int | None = None
        self.last = 0.0
        self.tasks: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        now = time.monotonic()
        if self.receiver is None or self.ssrc is None or now - self.last < KEYFRAME_MIN_GAP_S:
            return
        self.last = now
        task = asyncio.ensure_future(self.receiver._send_rtcp_pli(self.ssrc))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


@dataclass(eq=False)
class Participant:
    peer_id: str
    role: Role
    learner_id: str
    session_id: str
    client: Client
    client_id: str  # the API client whose key joined
    pc: RTCPeerConnection
    channel: RTCDataChannel | None = None
    measures: dict[tuple[str, str], Measure] = field(default_factory=dict)
    received_bytes: dict[str, int] = field(default_factory=dict)  # by kind, teacher only
    media_ssrc: dict[str, int] = field(default_factory=dict)  # by kind, teacher only
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # to leave with
    messages: list[float] = field(default_factory=list)  # data-channel arrival times
    joined_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Room:
    room_id: str
    course_id: str | None
    title: str
    max_participants: int
    created_by: str
    teacher: Participant | None = None
    learners: dict[str, Participant] = field(default_factory=dict)
    relay: MediaRelay = field(default_factory=MediaRelay)
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)  # the teacher's, by kind
    quizzes: dict[str, Quiz] = field(default_factory=dict)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (learner, quiz)
    keyframes: Keyframes = field(default_factory=Keyframes)  # to the teacher's video
    forwarded_frames: int = 0  # the teacher's encoded frames handed on (forwarding only)
    teacher_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    closed: bool = False
    idle_since: float | None = None
    answers: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)
    answering: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    created_at: float = field(default_factory=time.monotonic)

    @property
    def participants(self) -> list[Participant]:
        return ([self.teacher] if self.teacher else []) + list(self.learners.values())

    def describe(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "course_id": self.course_id,
            "title": self.title,
            "max_participants": self.max_participants,
            "teacher": None if self.teacher is None else self.teacher.peer_id,
            "publishing": sorted(self.tracks),
            "learners": len(self.learners),
            "forwarded_frames": self.forwarded_frames,
            "participants": [
                {
                    "peer_id": p.peer_id,
                    "role": p.role,
                    "state": p.pc.connectionState,
                    "network_type": p.client.network_type,
                    "region": p.client.region,
                }
                for p in self.participants
            ],
        }


class Rooms:
    """Every open room, within the server's limits."""

    def __init__(self, max_rooms: int, max_participants: int) -> None:
        self.max_rooms = max_rooms
        self.max_participants = max_participants
        self.rooms: dict[str, Room] = {}

    def create(
        self,
        room_id: str | None,
        course_id: str | None,
        title: str,
        max_participants: int | None,
        client_id: str,
    ) -> Room:
        if room_id is None:
            room_id = "room-" + secrets.token_hex(6)
        elif not ROOM_ID.match(room_id):
            raise LiveError(
                400, "bad_room_id", "room_id: 1-128 letters, digits and _.:- (starting alnum)"
            )
        if room_id in self.rooms:
            raise LiveError(409, "room_exists", f"room {room_id!r} already exists")
        if len(self.rooms) >= self.max_rooms:
            raise LiveError(
                429,
                "too_many_rooms",
                f"this server holds at most {self.max_rooms} rooms "
                "(LEARNSTREAM_LIVE__MAX_ROOMS); close one first",
            )
        limit = self.max_participants
        if max_participants is not None:
            if max_participants > limit:
                raise LiveError(
                    400,
                    "too_many_participants",
                    f"max_participants {max_participants} is above the server's limit {limit} "
                    "(LEARNSTREAM_LIVE__MAX_PARTICIPANTS)",
                )
            limit = max_participants
        room = Room(room_id, course_id, title, limit, client_id)
        self.rooms[room_id] = room
        return room

    def get(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise LiveError(404, "unknown_room", f"no room {room_id!r}: create it first")
        return room

    def admit(self, room: Room, role: Role) -> None:
        """Refuse a participant the room has no place for."""
        if role == "teacher" and room.teacher is not None:
            raise LiveError(
                409, "teacher_present", f"room {room.room_id!r} already has a teacher publishing"
            )
        if role == "learner" and not room.tracks:
            raise LiveError(
                409,
                "not_live",
                f"room {room.room_id!r} has no teacher publishing yet: join once the class is live",
            )
        if len(room.participants) >= room.max_participants:
            raise LiveError(
                409,
                "room_full",
                f"room {room.room_id!r} is full ({room.max_participants} participants)",
            )

    def remove(self, room_id: str) -> Room | None:
        return self.rooms.pop(room_id, None)
