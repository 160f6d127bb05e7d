"""Forwarding the teacher's encoded frames to learners, instead of decoding and re-encoding.

aiortc's ``MediaRelay`` hands decoded frames to every learner's sender, so each learner costs a
VP8 encode (about 0.1 core per learner at 640x480, 30 fps, on these machines: 14 learners per
process). Forwarding sends the teacher's own encoded frames on to every learner: the server
then only repacketizes and encrypts, and one process holds several times as many learners.
aiortc has no public API for it, so three hooks do it, all on objects of one peer connection
(aiortc is pinned, and ``tests/test_live.py`` fails if the hooks stop working):

- the teacher's receiver: complete encoded frames (after the jitter buffer and depacketization)
  go to its track as ``av.Packet`` instead of to the decoder thread. aiortc's sender packs an
  ``av.Packet`` without encoding (``RTCRtpSender._next_encoded_frame``);
- a learner's sender: a keyframe request from the learner (PLI or FIR) is passed on to the
  teacher, since the server has no encoder to make one; a learner also asks for one when it
  connects, so it can start decoding at once;
- a learner's codecs: only the teacher's codec is offered back, so the frames can be sent as
  they are. A learner that cannot receive it is refused with 409.

Dropping an encoded frame breaks decoding until the next keyframe, so relayed tracks are
buffered (``MediaRelay.subscribe(..., buffered=True)``).
"""

from __future__ import annotations

import fractions
import queue
from typing import Any

import av

from live.rooms import Keyframes, LiveError, Room


class _EncodedFrames:
    """Stands in for an ``RTCRtpReceiver``'s decoder queue. ``put`` runs on the event loop (the
    receiver's packet handler): a complete frame goes straight to the track as an ``av.Packet``.
    The decoder thread only waits in ``get`` for the stop signal (``None``), then ends the
    track as it always does."""

    def __init__(self, track: Any, room: Room) -> None:
        self.track = track
        self.room = room
        self.stopped: queue.Queue[None] = queue.Queue()

    def put(self, item: Any) -> None:
        if item is None:
            self.stopped.put(None)
            return
        codec, frame = item
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        self.track._queue.put_nowait(packet)
        self.room.forwarded_frames += 1

    def get(self) -> None:
        return self.stopped.get()


def receive_encoded(pc: Any, track: Any, room: Room) -> None:
    """Make the teacher's ``track`` carry encoded frames. Called from the ``track`` event, which
    aiortc emits before the receiver starts its decoder thread."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track:
            _require(receiver, "_RTCRtpReceiver__decoder_queue")
            receiver._RTCRtpReceiver__decoder_queue = _EncodedFrames(track, room)


def pass_keyframe_requests(pc: Any, keyframes: Keyframes) -> None:
    """A learner's keyframe requests (PLI, FIR) go to the teacher."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            _require(transceiver.sender, "_send_keyframe")
            transceiver.sender._send_keyframe = keyframes.request


def _require(obj: Any, name: str) -> None:
    """Fail loudly, not silently, when an aiortc upgrade renames what a hook replaces."""
    if not hasattr(obj, name):
        raise RuntimeError(
            f"{type(obj).__name__} has no {name}: live/forward.py needs aiortc 1.16 "
            "(or set LEARNSTREAM_LIVE__FORWARD_ENCODED=false)"
        )


def match_teacher_codecs(room: Room, pc: Any) -> None:
    """Keep, on each of a learner's transceivers, only the codec the teacher sends (and its
    RTX), so that the teacher's frames can be forwarded as they are."""
    teacher = room.teacher
    if teacher is None:
        return
    sent = {
        t.kind: t._codecs[0]
        for t in teacher.pc.getTransceivers()
        if t._codecs and t.kind in room.tracks
    }
    for transceiver in pc.getTransceivers():
        codec = sent.get(transceiver.kind)
        if codec is None:
            continue
        mime = codec.mimeType.lower()
        same = [c for c in transceiver._codecs if c.mimeType.lower() == mime]
        if not same:
            offered = sorted({c.mimeType for c in transceiver._codecs})
            raise LiveError(
                409,
                "codec",
                f"the teacher sends {codec.mimeType} and this offer receives only {offered}",
            )
        base = same[0].payloadType
        rtx = [
            c
            for c in transceiver._codecs
            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == base
        ]
        transceiver._codecs = [same[0], *rtx]
