"""How many learners one live-server process holds: learners join one room step by step until
the mean frame rate they receive drops below 20 fps (the teacher sends 30 fps at 640x480).

The server runs as its own process (``learnstream live``, with Kafka for its QoS rows). The
teacher and the learners run in this process: the teacher encodes its synthetic camera once,
and the learners count frames by their RTP marker bits without decoding, so what they cost is
receiving, not a decoder per learner. The baseline is the teacher's own 30 fps: every figure
is a ratio to what was sent. CPU is the server process's user + system time from /proc.

Both ways of relaying run, one after the other: forwarding the teacher's encoded frames (the
default) and re-encoding for every learner with aiortc's MediaRelay
(``LEARNSTREAM_LIVE__FORWARD_ENCODED=false``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from learnstream.stack.collector import start_live
from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack
from live import client

KEY = "lsk_bench_live"
SOURCE_FPS = 30.0
FLOOR_FPS = 20.0
STEPS = (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100)


@dataclass
class Step:
    learners: int
    mean_fps: float
    min_fps: float
    server_cores: float


@dataclass
class LiveBench:
    size: tuple[int, int]
    measure_s: float
    forward: bool = True
    idle_cores: float = 0.0  # the server with the teacher publishing and no learner
    steps: list[Step] = field(default_factory=list)

    @property
    def sustained(self) -> int:
        held = [s.learners for s in self.steps if s.mean_fps >= FLOOR_FPS]
        return max(held, default=0)

    def render(self) -> str:
        how = "forwarding encoded frames" if self.forward else "re-encoding per learner"
        lines = [
            f"live server, {how}: one room, teacher at {self.size[0]}x{self.size[1]} "
            f"{SOURCE_FPS:.0f} fps, learners added until the mean received frame rate < "
            f"{FLOOR_FPS:.0f} fps",
            f"  server with the teacher only: {self.idle_cores:.3f} cores",
            "  learners  mean fps  min fps  ratio to sent  server cores  cores per learner",
        ]
        for s in self.steps:
            per = (s.server_cores - self.idle_cores) / s.learners
            lines.append(
                f"  {s.learners:8d}  {s.mean_fps:8.1f}  {s.min_fps:7.1f}  "
                f"{s.mean_fps / SOURCE_FPS:13.3f}  {s.server_cores:12.3f}  {per:17.3f}"
            )
        lines.append(f"  sustained: {self.sustained} learners at >= {FLOOR_FPS:.0f} fps (goal 20)")
        return "\n".join(lines)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    learners: list[client.Peer], pid: int, seconds: float
) -> tuple[list[float], float]:
    frames0 = [p.frames.get("video", 0) for p in learners]
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    cores = (_cpu_seconds(pid) - cpu0) / elapsed
    fps = [(p.frames.get("video", 0) - f) / elapsed for p, f in zip(learners, frames0, strict=True)]
    return fps, cores


async def _run(url: str, pid: int, result: LiveBench, max_learners: int) -> None:
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{url}/v1/rooms", json={"room_id": "bench"}, headers={"X-API-Key": KEY}
        )
        created.raise_for_status()
    teacher = await client.publish(url, KEY, "bench", "teacher", size=result.size)
    learners: list[client.Peer] = []
    try:
        await asyncio.sleep(2)
        _, result.idle_cores = await _measure([], pid, result.measure_s)
        for target in (s for s in STEPS if s <= max_learners):
            while len(learners) < target:
                learners.append(
                    await client.join(url, KEY, "bench", f"learner-{len(learners)}", decode=False)
                )
            await asyncio.sleep(2)  # let the new senders settle
            fps, cores = await _measure(learners, pid, result.measure_s)
            step = Step(target, sum(fps) / len(fps), min(fps), cores)
            result.steps.append(step)
            print(f"  {target} learners: {step.mean_fps:.1f} fps, {cores:.2f} cores", flush=True)
            if step.mean_fps < FLOOR_FPS:
                break
    finally:
        for peer in [*learners, teacher]:
            await peer.close()


def run(
    measure_s: float = 5.0, size: tuple[int, int] = client.DEFAULT_SIZE, max_learners: int = 100
) -> str:
    """Both modes, re-encoding first; the report of each and the ratio of learners held."""
    reencode = run_mode(False, measure_s, size, max_learners)
    forward = run_mode(True, measure_s, size, max_learners)
    ratio = forward.sustained / max(1, reencode.sustained)
    capped = " (the most tried: raise --live-max)" if forward.sustained >= max_learners else ""
    return "\n".join([
        reencode.render(),
        forward.render(),
        f"  learners held, forwarding / re-encoding: {ratio:.1f}x{capped}",
    ])  # fmt: skip


def run_mode(
    forward: bool, measure_s: float, size: tuple[int, int], max_learners: int
) -> LiveBench:
    result = LiveBench(size, measure_s, forward)
    with (
        tempfile.TemporaryDirectory(prefix="bench-live-") as folder,
        throwaway_stack(Path(folder), ["kafka"]) as stack,
    ):
        port = free_port()
        env = {
            "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka.bootstrap_servers,
            "LEARNSTREAM_LIVE__MAX_PARTICIPANTS": str(max_learners + 1),
            "LEARNSTREAM_LIVE__FORWARD_ENCODED": "true" if forward else "false",
        }
        process = start_live(port, {"bench": KEY}, Path(folder) / "live.log", env)
        try:
            asyncio.run(_run(f"http://127.0.0.1:{port}", process.pid, result, max_learners))
        finally:
            process.terminate()
            process.wait(timeout=30)
    return result
