"""The live-class server: signaling, the relay of the teacher's tracks, and the QoS loop.

Signaling is one HTTP exchange per participant: the client posts its SDP offer (aiortc gathers
every candidate before it answers, so no trickle is needed) and gets the answer. The teacher's
offer sends audio and video; a learner's offer receives them and gets the room's relayed
tracks. Both open a data channel (``class``) for chat and quizzes (``live.classroom``).

Everything the server writes to Kafka (quiz results from the data channel, ``live_qos`` rows)
goes through the collector's intake and writer, so it is validated the same way, dead-lettered
with a reason when it is bad, and confirmed by Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from pydantic import ValidationError

from live import forward, qos
from live.classroom import Classroom
from live.rooms import LiveError, Participant, Role, Room, Rooms
from live.settings import LiveSettings
from schemas import Client
from streams.collector.auth import KeyRing
from streams.collector.core import Ingest, now_utc
from streams.collector.settings import CollectorSettings
from streams.delivery import AsyncProducer
from streams.intake import Accepted, Intake, Rejected

log = logging.getLogger(__name__)
ENDPOINT = "live"


class LiveServer:
    """The rooms of one process and everything that happens in them."""

    def __init__(
        self,
        settings: LiveSettings,
        collector: CollectorSettings,
        producer: AsyncProducer,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.settings = settings
        self.keys = KeyRing(collector.api_keys)
        self.browser_clients = set(collector.browser_clients)
        self.rooms = Rooms(settings.max_rooms, settings.max_participants)
        self.intake = Intake(collector, clock)
        self.ingest = Ingest(producer, settings.delivery_timeout_s)
        self.clock = clock
        self.classroom = Classroom(self)
        self.qos_rows = 0
        self.tasks: set[asyncio.Task[None]] = set()

    # -- requests ------------------------------------------------------------------------------

    def authenticate(self, key: str | None, origin: str | None) -> str:
        client_id = self.keys.client_for(key)
        if client_id is None:
            raise LiveError(401, "unauthorized", "missing or unknown API key: send it as X-API-Key")
        if origin and client_id not in self.browser_clients:
            raise LiveError(
                403, "forbidden", f"the key of client {client_id!r} is not allowed from browsers"
            )
        return client_id

    async def connect(
        self,
        room: Room,
        role: Role,
        offer: RTCSessionDescription,
        learner_id: str,
        session_id: str | None,
        client: Client,
        client_id: str,
    ) -> tuple[Participant, RTCSessionDescription]:
        """Answer a participant's offer: the teacher publishes, a learner receives."""
        self.rooms.admit(room, role)
        _check_offer(offer.sdp, role)
        if role == "teacher":
            room.relay = MediaRelay()  # a fresh relay per class: nothing of an earlier one stays
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer_id = f"{role[0]}-{secrets.token_hex(6)}"
        who = Participant(peer_id, role, learner_id, session_id or peer_id, client, client_id, pc)
        # Claim the place before the first await, so two racing joins cannot both take the last.
        if role == "teacher":
            room.teacher = who
        else:
            room.learners[peer_id] = who

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            who.channel = channel
            channel.on("message", lambda m: self.classroom.received(room, who, m))

        forwarding = self.settings.forward_encoded

        @pc.on("track")
        def on_track(track: Any) -> None:
            if role == "teacher" and track.kind in ("audio", "video"):
                room.tracks[track.kind] = track
                _count_bytes(pc, who, track, room)
                if forwarding:
                    forward.receive_encoded(pc, track, room)
                # Read the teacher's track from the start, learners or not: aiortc queues what
                # a track receives without bound until someone reads it.
                self._spawn(_drain(room.relay.subscribe(track, buffered=False)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.leave(room, who)
            elif pc.connectionState == "connected" and role == "learner":
                room.keyframes.request()  # start decoding now, not at the next keyframe

        try:
            try:
                await pc.setRemoteDescription(offer)
            except Exception as exc:  # aiortc's parser raises ValueError, AssertionError, …
                detail = str(exc) or type(exc).__name__
                raise LiveError(
                    400, "bad_sdp", f"the SDP offer could not be used: {detail}"
                ) from exc
            if role == "learner":
                if forwarding:
                    forward.match_teacher_codecs(room, pc)
                for kind, track in room.tracks.items():
                    if any(t.kind == kind for t in pc.getTransceivers()):
                        # encoded frames must not be dropped; decoded ones may (latest wins)
                        pc.addTrack(room.relay.subscribe(track, buffered=forwarding))
                if forwarding:
                    forward.pass_keyframe_requests(pc, room.keyframes)
            await pc.setLocalDescription(await pc.createAnswer())
            if room.closed or (role == "learner" and room.teacher is None):
                raise LiveError(409, "not_live", f"room {room.room_id!r} ended while joining")
        except BaseException:
            await self.leave(room, who)
            raise
        asyncio.get_running_loop().call_later(
            self.settings.ice_timeout_s, self._drop_if_unconnected, room, who
        )
        return who, pc.localDescription

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task the server keeps until it ends (and whose errors are logged)."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live server task failed", exc_info=task.exception())

    def _drop_if_unconnected(self, room: Room, who: Participant) -> None:
        if who.pc.connectionState != "connected":
            log.info("%s in %s never connected: dropped", who.peer_id, room.room_id)
            self._spawn(self.leave(room, who))

    async def leave(self, room: Room, who: Participant) -> None:
        """A participant leaves (or is dropped). When the teacher leaves, the class ends."""
        if room.teacher is who:
            room.teacher = None
            room.tracks.clear()
            room.keyframes.receiver = room.keyframes.ssrc = None
            for learner in list(room.learners.values()):
                await self.leave(room, learner)
        room.learners.pop(who.peer_id, None)
        await who.pc.close()

    async def close_room(self, room_id: str) -> None:
        """End a class. The room leaves the registry first, so nobody joins it meanwhile."""
        room = self.rooms.get(room_id)
        room.closed = True
        self.rooms.remove(room_id)
        if room.teacher is not None:
            await self.leave(room, room.teacher)
        for learner in list(room.learners.values()):
            await self.leave(room, learner)

    async def close_idle_rooms(self) -> None:
        """Close rooms nobody has been in for ``room_idle_s``."""
        now = time.monotonic()
        for room in list(self.rooms.rooms.values()):
            if room.participants:
                room.idle_since = None
            elif room.idle_since is None:
                room.idle_since = now
            elif now - room.idle_since >= self.settings.room_idle_s:
                log.info("room %s idle for %.0f s: closed", room.room_id, now - room.idle_since)
                await self.close_room(room.room_id)

    async def shutdown(self) -> None:
        for room_id in list(self.rooms.rooms):
            await self.close_room(room_id)
        await self.classroom.drain()  # answers in flight reach Kafka before the producer closes
        for task in list(self.tasks):
            task.cancel()

    def health(self) -> dict[str, int]:
        rooms = self.rooms.rooms.values()
        return {
            "rooms": len(rooms),
            "participants": sum(len(r.participants) for r in rooms),
            "qos_rows": self.qos_rows,
        }

    # -- writing -------------------------------------------------------------------------------

    async def write(self, checked: list[Accepted | Rejected], client_id: str) -> dict[str, Any]:
        outcome = await self.ingest.write(checked, ENDPOINT, client_id, self.clock())
        return {"status": outcome.status, **outcome.body}

    # -- QoS -----------------------------------------------------------------------------------

    async def measure(self, room: Room, who: Participant) -> list[qos.Measure]:
        measures = []
        for transceiver in who.pc.getTransceivers():
            kind = transceiver.kind
            rate = qos.clock_rate(kind, (getattr(transceiver, "_codecs", None) or [None])[0])
            if who.role == "learner" and transceiver.sender.track is not None:
                stats = await transceiver.sender.getStats()
                measures.append(qos.from_sender_stats(kind, stats, rate))
            elif who.role == "teacher" and kind in room.tracks:
                stream = _media_stream(transceiver.receiver, who.media_ssrc.get(kind))
                got = who.received_bytes.get(kind)
                measures.append(qos.from_stream_statistics(kind, stream, rate, got))
        return measures

    async def sample(self) -> int:
        """One round of server-side QoS: a row per connected participant and stream, written
        through the intake. Returns how many rows Kafka confirmed."""
        at = self.clock()
        checked: list[Accepted | Rejected] = []
        for room in list(self.rooms.rooms.values()):
            for who in room.participants:
                if who.pc.connectionState != "connected":
                    continue
                ident = qos.Who(
                    room.room_id,
                    room.course_id,
                    who.peer_id,
                    who.role,
                    who.learner_id,
                    who.session_id,
                    who.client,
                )
                for current in await self.measure(room, who):
                    key = (current.kind, current.direction)
                    previous = who.measures.get(key)
                    who.measures[key] = current
                    if previous is None:
                        continue  # the first measure only starts the interval
                    try:
                        row = qos.event(ident, previous, current, at)
                    except ValidationError as exc:  # figures a client's reports made absurd
                        log.warning("QoS row of %s not written: %s", who.peer_id, exc)
                        continue
                    checked.append(self.intake.check_event(row, at))
        if not checked:
            return 0
        outcome = await self.ingest.write(checked, f"{ENDPOINT}:qos", "live-server", at)
        written = int(outcome.body["accepted"])
        self.qos_rows += written
        return written

    async def qos_loop(self) -> None:
        interval = self.settings.qos_interval_s
        while True:
            started = time.monotonic()
            try:
                await self.sample()
                await self.close_idle_rooms()
            except Exception:  # keep measuring: one bad round must not end QoS for the process
                log.exception("live QoS round failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def _check_offer(sdp: str, role: Role) -> None:
    """Refuse an offer that is not SDP, or that does not do what the role does: a teacher sends
    at most one audio and one video stream, a learner only receives."""
    if not sdp.startswith("v=0"):
        raise LiveError(400, "bad_sdp", "sdp must be an SDP offer (starting with v=0)")
    sections = [s for s in re.split(r"\r?\n(?=m=)", sdp)[1:] if s[2:7] in ("audio", "video")]
    kinds = [s[2:7] for s in sections]
    if not kinds:
        raise LiveError(400, "bad_sdp", f"a {role}'s offer must have an audio or video section")
    if role == "teacher" and (kinds.count("audio") > 1 or kinds.count("video") > 1):
        raise LiveError(400, "bad_sdp", "a teacher sends one audio and one video stream at most")
    if role == "learner":
        for section in sections:
            directions = re.findall(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", section, re.M)
            if directions[:1] not in (["recvonly"], ["inactive"]):
                raise LiveError(
                    400,
                    "bad_sdp",
                    "a learner's audio and video sections must be recvonly: learners receive the "
                    "class, they do not send media",
                )


def _media_stream(receiver: Any, ssrc: int | None) -> Any:
    """aiortc's statistics of the teacher's media stream (``inbound-rtp`` holds one entry per
    receiver, which the RTX stream overwrites once it starts)."""
    streams = receiver._RTCRtpReceiver__remote_streams
    return None if ssrc is None else streams.get(ssrc)


async def _drain(track: Any) -> None:
    """Read a relayed track and drop what it gives, until it ends."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


def _count_bytes(pc: RTCPeerConnection, who: Participant, track: Any, room: Room) -> None:
    """Count the payload bytes of the teacher's stream of ``track``'s kind: aiortc's
    ``inbound-rtp`` stats carry no byte count, and the bitrate is read from their delta. The
    receiver's packet handler is wrapped on this one instance (aiortc routes every RTP packet
    through it). The video's receiver and SSRC are where keyframe requests go."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind != track.kind or getattr(receiver, "_learnstream_counted", False):
            continue
        handle: Callable[..., Awaitable[None]] = receiver._handle_rtp_packet
        kind: str = track.kind

        rtx = receiver._RTCRtpReceiver__rtx_ssrc  # {rtx ssrc: media ssrc}, filled at receive()

        async def counting(
            packet: Any,
            arrival_time_ms: int,
            _h: Any = handle,
            _k: str = kind,
            _rtx: dict[int, int] = rtx,
        ) -> None:
            if packet.ssrc not in _rtx:  # retransmissions and padding are not the stream
                who.received_bytes[_k] = who.received_bytes.get(_k, 0) + len(packet.payload)
                who.media_ssrc[_k] = packet.ssrc
                if _k == "video":
                    room.keyframes.ssrc = packet.ssrc
            await _h(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counting  # type: ignore[method-assign]
        receiver._learnstream_counted = True  # type: ignore[attr-defined]
        who.received_bytes.setdefault(kind, 0)
        if kind == "video":
            room.keyframes.receiver = receiver
