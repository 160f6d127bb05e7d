"""The demo's live class: the live server, an aiortc teacher and three learners on different
networks, a quiz on the data channel, and afterwards each participant's quality from ClickHouse.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from learnstream.errors import LearnstreamError
from learnstream.settings import Settings

COURSE = "course-live-demo"
LEARNERS = (("learner-live-1", "5g_sa", "eu-west"), ("learner-live-2", "4g", "eu-west"),
            ("learner-live-3", "wifi", "us-east"))  # fmt: skip
CLASS_S = 8.0


@dataclass
class LiveClass:
    room_id: str
    answers: list[dict[str, object]]
    frames: list[int]


def run_class(settings: Settings, key: str, echo: Callable[[str], None]) -> LiveClass:
    """Start the live server, hold a short class, stop the server."""
    from learnstream.stack.collector import CollectorStartError, start_live

    log = settings.stack.state_dir / "logs" / "live.log"
    env = {"LEARNSTREAM_LIVE__QOS_INTERVAL_S": "2"}
    try:
        process = start_live(settings.live.port, {"demo": key}, log, env)
    except CollectorStartError as exc:
        raise LearnstreamError(str(exc)) from exc
    url = f"http://{settings.live.host}:{settings.live.port}"
    echo(f"live server: {url} (log {log})")
    try:
        return asyncio.run(_class(url, key, echo))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _class(url: str, key: str, echo: Callable[[str], None]) -> LiveClass:
    from live import client

    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{url}/v1/rooms",
            json={"course_id": COURSE, "title": "Demo class"},
            headers={"X-API-Key": key},
        )
        created.raise_for_status()
        room_id = created.json()["room_id"]
    teacher = await client.publish(url, key, room_id, "teacher-live-demo")
    learners = [await client.join(url, key, room_id, who, net, region)
                for who, net, region in LEARNERS]  # fmt: skip
    try:
        echo(f"live class {room_id}: a teacher and {len(learners)} learners, {CLASS_S:.0f} s")
        await asyncio.sleep(CLASS_S / 2)
        await teacher.send({"type": "quiz", "quiz_id": "q-demo-1", "question": "2 + 2?",
                            "choices": ["3", "4", "5"], "answer": 1})  # fmt: skip
        answers = []
        for learner, choice in zip(learners, (1, 1, 2), strict=True):
            await learner.next_message("quiz")
            await learner.send({"type": "quiz_answer", "quiz_id": "q-demo-1", "choice": choice})
            answers.append(await learner.next_message("ack"))
        await asyncio.sleep(CLASS_S / 2)
        return LiveClass(room_id, answers, [p.frames.get("video", 0) for p in learners])
    finally:
        for peer in [*learners, teacher]:
            await peer.close()


def summary(settings: Settings, live: LiveClass, echo: Callable[[str], None]) -> None:
    """What the class looked like: the answers, and each participant's quality from ClickHouse,
    server-side beside browser-side (here: aiortc learners, so server rows)."""
    from sinks.clickhouse.client import query_df

    right = sum(1 for a in live.answers if a.get("correct"))
    echo(
        f"live class: frames received by each learner {live.frames}; quiz answers "
        f"{len(live.answers)} ({right} right), written to learner.quiz as quiz_result"
    )
    frame = query_df(
        """
        SELECT role, kind, network_type, region, count() AS rows,
               round(avg(rtt_ms), 2) AS rtt_ms, round(avg(jitter_ms), 2) AS jitter_ms,
               round(avg(bitrate_kbps)) AS kbps, round(avg(score), 1) AS score,
               anyLast(band) AS band
        FROM live_qos FINAL
        WHERE room_id = {room:String}
        GROUP BY role, kind, network_type, region
        ORDER BY role DESC, kind, network_type
        """,
        {"room": live.room_id},
        dsn=settings.clickhouse.dsn,
    )
    echo("live class quality per participant (server-side `live_qos`, score 0..100):")
    echo(frame.to_string(index=False) if len(frame) else "  (no rows yet)")
    if not len(frame):
        raise LearnstreamError(
            f"demo: no live_qos rows in ClickHouse for room {live.room_id}: "
            + json.dumps(live.answers)[:300]
        )
