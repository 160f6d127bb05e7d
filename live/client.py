"""aiortc participants of a live class: a teacher with a synthetic camera and a learner that
counts what it receives. The tests, the benchmark and the demo use them; a real class uses the
browser page (``live/static``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
import orjson
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)

DEFAULT_SIZE = (640, 480)


class SyntheticCamera(VideoStreamTrack):
    """A moving test pattern at 30 fps (aiortc paces ``recv``). A handful of frames is made
    once and cycled, so the camera itself costs next to nothing."""

    def __init__(self, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1]) -> None:
        super().__init__()
        ys, xs = np.mgrid[0:height, 0:width]
        self.frames = []
        for step in range(30):
            shift = step * 8
            img = np.stack(
                [(xs + shift) % 256, (ys + 2 * shift) % 256, ((xs + ys) // 2 + shift) % 256],
                axis=-1,
            ).astype(np.uint8)
            rgb = av.VideoFrame.from_ndarray(img, format="rgb24")
            self.frames.append(rgb.reformat(format="yuv420p").to_ndarray())
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        out = av.VideoFrame.from_ndarray(frame, format="yuv420p")
        out.pts, out.time_base = pts, time_base
        return out


@dataclass
class Peer:
    """One connected participant."""

    pc: RTCPeerConnection
    peer_id: str
    room_id: str
    channel: Any
    token: str = ""
    messages: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    frames: dict[str, int] = field(default_factory=dict)  # received, by kind
    first_frame_at: dict[str, float] = field(default_factory=dict)
    consumers: list[asyncio.Task[None]] = field(default_factory=list)

    async def send(self, message: dict[str, Any] | str) -> None:
        await wait_open(self.channel)
        self.channel.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def next_message(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next data-channel message of type ``kind`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            message = await asyncio.wait_for(self.messages.get(), max(0.01, left))
            if message.get("type") == kind:
                return message

    def fps(self, kind: str = "video") -> float:
        start = self.first_frame_at.get(kind)
        if start is None:
            return 0.0
        return self.frames.get(kind, 0) / max(1e-6, time.monotonic() - start)

    async def close(self) -> None:
        for task in self.consumers:
            task.cancel()
        await self.pc.close()


async def wait_open(channel: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while channel.readyState != "open":
        if time.monotonic() > deadline:
            raise TimeoutError(f"data channel still {channel.readyState} after {timeout} s")
        await asyncio.sleep(0.02)


def client_info(network_type: str = "wifi", region: str = "eu-west") -> dict[str, str]:
    return {
        "platform": "desktop",
        "app_version": "aiortc",
        "device": "aiortc",
        "network_type": network_type,
        "region": region,
    }


async def _connect(
    session: aiohttp.ClientSession,
    url: str,
    pc: RTCPeerConnection,
    body: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    await pc.setLocalDescription(await pc.createOffer())
    payload = {"type": "offer", "sdp": pc.localDescription.sdp, **body}
    async with session.post(url, json=payload, headers={"X-API-Key": key}) as response:
        answer = await response.json()
    if response.status != 200:
        await pc.close()
        raise RuntimeError(f"{url}: {response.status} {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return answer


def _wire(pc: RTCPeerConnection, peer: Peer) -> None:
    @peer.channel.on("message")
    def on_message(message: str | bytes) -> None:
        with contextlib.suppress(ValueError):
            peer.messages.put_nowait(orjson.loads(message))

    del on_message


async def publish(
    base_url: str,
    key: str,
    room_id: str,
    learner_id: str = "teacher-1",
    network_type: str = "wifi",
    region: str = "eu-west",
    size: tuple[int, int] = DEFAULT_SIZE,
) -> Peer:
    """Publish a synthetic camera and a silent microphone as the room's teacher."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("class")
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(SyntheticCamera(*size))
    body = {"learner_id": learner_id, "client": client_info(network_type, region)}
    async with aiohttp.ClientSession() as session:
        answer = await _connect(session, f"{base_url}/v1/rooms/{room_id}/publish", pc, body, key)
    peer = Peer(pc, answer["peer_id"], room_id, channel, answer["peer_token"])
    _wire(pc, peer)
    return peer


async def join(
    base_url: str,
    key: str,
    room_id: str,
    learner_id: str,
    network_type: str = "wifi",
    region: str = "eu-west",
    decode: bool = True,
) -> Peer:
    """Join as a learner, receiving audio and video. With ``decode`` the tracks are read
    (decoded) and frames counted; without, frames are counted from RTP marker bits and the
    packets dropped before decoding (the benchmark's learners cost the server, not the
    machine)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("class")
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    peer = Peer(pc, "", room_id, channel)
    _wire(pc, peer)

    @pc.on("track")
    def on_track(track: Any) -> None:
        if decode:
            peer.consumers.append(asyncio.ensure_future(_consume(peer, track)))

    if not decode:
        for transceiver in pc.getTransceivers():
            _count_marker_bits(peer, transceiver)
    body = {"learner_id": learner_id, "client": client_info(network_type, region)}
    async with aiohttp.ClientSession() as session:
        answer = await _connect(session, f"{base_url}/v1/rooms/{room_id}/join", pc, body, key)
    peer.peer_id, peer.token = answer["peer_id"], answer["peer_token"]
    del on_track
    return peer


async def _consume(peer: Peer, track: Any) -> None:
    kind = track.kind
    with contextlib.suppress(Exception):
        while True:
            await track.recv()
            peer.first_frame_at.setdefault(kind, time.monotonic())
            peer.frames[kind] = peer.frames.get(kind, 0) + 1


def _count_marker_bits(peer: Peer, transceiver: Any) -> None:
    """Count video frames by their last packet (the RTP marker bit) and hand nothing on to the
    decoder: aiortc routes every RTP packet through the receiver's ``_handle_rtp_packet``."""
    kind = transceiver.kind

    async def count(packet: Any, arrival_time_ms: int) -> None:
        if packet.marker or kind == "audio":
            peer.first_frame_at.setdefault(kind, time.monotonic())
            peer.frames[kind] = peer.frames.get(kind, 0) + 1

    transceiver.receiver._handle_rtp_packet = count
