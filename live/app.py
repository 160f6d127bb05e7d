"""The live server's HTTP API (FastAPI): rooms, SDP offer/answer, the browser page.

Every request but the page, its script, ``/v1/config`` and ``/healthz`` carries an API key of
the collector's (``X-API-Key`` or ``Authorization: Bearer``). Refusals are JSON
``{"error": code, "detail": what to do}`` with their status: 400 malformed SDP or room id,
401 no or unknown key, 403 a server key from a browser or another client's room, 404 unknown
room or participant, 409 full room, a second teacher or a class not live yet, 413 an SDP over the
limit, 422 a body that is not the documented JSON, 429 too many rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from aiortc import RTCSessionDescription
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from live.rooms import LiveError, Role
from live.server import LiveServer
from live.settings import LiveSettings
from schemas import Client
from schemas.base import Id, Text
from streams.collector.auth import key_from_headers
from streams.collector.core import now_utc, publish_metrics
from streams.collector.settings import CollectorSettings
from streams.delivery import AsyncProducer

STATIC = Path(__file__).resolve().parent / "static"
ERROR = {"description": "Refused", "content": {"application/json": {"example": {
    "error": "room_full", "detail": "room 'r1' is full (30 participants)"}}}}  # fmt: skip
REFUSALS: dict[int | str, dict[str, Any]] = {
    s: ERROR for s in (400, 401, 403, 404, 409, 411, 413, 429)
}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRoom(Body):
    room_id: Id | None = Field(None, description="Default: a random id")
    course_id: Id | None = Field(None, description="Needed for in-class quizzes")
    title: str = Field("", max_length=200)
    max_participants: int | None = Field(
        None, ge=2, description="At most the server's limit; the teacher counts"
    )


class Offer(Body):
    """A participant's SDP offer and who it is."""

    type: Literal["offer"]
    sdp: str = Field(description="The complete offer (every ICE candidate gathered)")
    learner_id: Id = Field(description="The participant's id (the teacher's for a teacher)")
    session_id: Id | None = None
    client: Client = Field(description="Platform, device, network type and region")
    display_name: Text | None = None
    teacher_token: str | None = Field(
        None,
        max_length=128,
        description="Publishing with a browser key: the room's teacher token (from its creation)",
    )


class Answer(BaseModel):
    type: Literal["answer"]
    sdp: str
    peer_id: str
    peer_token: str = Field(description="Send as X-Peer-Token to leave (DELETE …/peers/{peer})")
    room_id: str
    role: Role
    qos_interval_s: float


def _client_id(request: Request) -> str:
    """The API client of a request (401/403 otherwise)."""
    server: LiveServer = request.app.state.server
    return server.authenticate(key_from_headers(request.headers), request.headers.get("origin"))


Caller = Annotated[str, Depends(_client_id)]


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(
    settings: LiveSettings,
    collector: CollectorSettings,
    bootstrap_servers: str,
    producer: AsyncProducer | None = None,
    clock: Callable[[], datetime] = now_utc,
    qos_loop: bool = True,
) -> FastAPI:
    """The live server. It owns ``producer`` when it creates it (closed on shutdown)."""
    owned = producer is None
    kafka = producer or AsyncProducer(bootstrap_servers)
    server = LiveServer(settings, collector, kafka, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(
                publish_metrics(
                    server.ingest,
                    kafka,
                    settings.metrics_interval_s,
                    settings.port,
                    service="live",
                    extra=server.health,
                )
            )
        ]
        if qos_loop:
            tasks.append(asyncio.create_task(server.qos_loop()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await server.shutdown()
            if owned:
                await asyncio.to_thread(kafka.close)

    app = FastAPI(
        title="learnstream live classes",
        version="1",
        description="WebRTC live classes (aiortc): create a room, publish as the teacher, join "
        "as a learner with an SDP offer, get the answer. Send the API key as `X-API-Key`.",
        lifespan=lifespan,
    )
    app.state.server = server
    cap = settings.max_sdp_bytes + 16 * 1024  # the offer and who sends it

    @app.middleware("http")
    async def capped(request: Request, call_next: Any) -> Response:
        """Refuse a body over the cap before anything reads it (FastAPI parses the body before
        the key is checked)."""
        if request.method in ("POST", "PUT", "PATCH"):
            declared = request.headers.get("content-length")
            if declared is None:
                return _json(411, {"error": "length_required", "detail": "send Content-Length"})
            if not declared.isdigit() or int(declared) > cap:
                return _json(413, {"error": "too_large", "detail": f"body over {cap} bytes"})
        return await call_next(request)

    @app.exception_handler(LiveError)
    async def refused(_: Request, exc: LiveError) -> Response:
        return _json(exc.status, {"error": exc.code, "detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        parts = []
        for item in exc.errors()[:8]:
            where = ".".join(str(p) for p in item["loc"][1:]) or "body"
            parts.append(f"{where}: {item['msg']}")
        return _json(422, {"error": "invalid_request", "detail": "; ".join(parts)})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/live.js", include_in_schema=False)
    async def script() -> FileResponse:
        return FileResponse(STATIC / "live.js", media_type="text/javascript")

    @app.get("/v1/config")
    async def config() -> dict[str, Any]:
        """What the served page needs: where to send its QoS, and how often."""
        return {
            "collector_url": settings.collector_url,
            "browser_qos_interval_s": settings.browser_qos_interval_s,
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: rooms, participants, QoS rows written and every outcome's count."""
        return {"status": "ok", **server.health(), "counters": server.ingest.counters.snapshot()}

    def server_client(caller: str, what: str) -> None:
        if caller in server.browser_clients:
            raise LiveError(403, "forbidden", f"{what} with a server key, not a browser key")

    @app.post("/v1/rooms", status_code=201, responses=REFUSALS)
    async def create_room(body: NewRoom, caller: Caller) -> dict[str, Any]:
        """Open a room (within the server's room and participant limits); server keys only.
        The answer holds the room's `teacher_token`: give it to the teacher's page, which
        publishes with a browser key."""
        server_client(caller, "rooms are opened by the platform's server")
        room = server.rooms.create(
            body.room_id, body.course_id, body.title, body.max_participants, caller
        )
        return {**room.describe(), "teacher_token": room.teacher_token}

    @app.get("/v1/rooms", responses=REFUSALS)
    async def list_rooms(caller: Caller) -> list[dict[str, Any]]:
        """Every room, with its participants; server keys only."""
        server_client(caller, "rooms are listed")
        return [room.describe() for room in server.rooms.rooms.values()]

    @app.get("/v1/rooms/{room_id}", responses=REFUSALS)
    async def get_room(room_id: str, caller: Caller) -> dict[str, Any]:
        """One room; a browser key sees the room, not who is in it."""
        described = server.rooms.get(room_id).describe()
        if caller in server.browser_clients:
            del described["participants"]
        return described

    @app.delete("/v1/rooms/{room_id}", status_code=204, responses=REFUSALS)
    async def close_room(room_id: str, caller: Caller) -> Response:
        """End the class: every participant is disconnected. Only the client that created it."""
        room = server.rooms.get(room_id)
        if room.created_by != caller:
            raise LiveError(403, "forbidden", f"room {room_id!r} was created by another client")
        await server.close_room(room_id)
        return Response(status_code=204)

    async def connect(room_id: str, role: Role, offer: Offer, caller: str) -> Answer:
        if len(offer.sdp.encode()) > settings.max_sdp_bytes:
            raise LiveError(413, "too_large", f"sdp larger than {settings.max_sdp_bytes} bytes")
        room = server.rooms.get(room_id)
        if (
            role == "teacher"
            and caller in server.browser_clients
            and not hmac.compare_digest(offer.teacher_token or "", room.teacher_token)
        ):
            raise LiveError(
                403,
                "forbidden",
                "publishing with a browser key needs the room's teacher_token (from the answer "
                "that created the room)",
            )
        who, answer = await server.connect(
            room,
            role,
            RTCSessionDescription(sdp=offer.sdp, type=offer.type),
            offer.learner_id,
            offer.session_id,
            offer.client,
            caller,
        )
        return Answer(
            type="answer",
            sdp=answer.sdp,
            peer_id=who.peer_id,
            peer_token=who.token,
            room_id=room.room_id,
            role=role,
            qos_interval_s=settings.browser_qos_interval_s,
        )

    @app.post("/v1/rooms/{room_id}/publish", responses=REFUSALS)
    async def publish(room_id: str, offer: Offer, caller: Caller) -> Answer:
        """The teacher's offer (sending audio and/or video, with a data channel)."""
        return await connect(room_id, "teacher", offer, caller)

    @app.post("/v1/rooms/{room_id}/join", responses=REFUSALS)
    async def join(room_id: str, offer: Offer, caller: Caller) -> Answer:
        """A learner's offer (receiving audio and/or video, with a data channel)."""
        return await connect(room_id, "learner", offer, caller)

    @app.delete("/v1/rooms/{room_id}/peers/{peer_id}", status_code=204, responses=REFUSALS)
    async def leave(room_id: str, peer_id: str, request: Request, caller: Caller) -> Response:
        """A participant leaves, with its `X-Peer-Token`; the room's creator may remove anyone."""
        room = server.rooms.get(room_id)
        who = next((p for p in room.participants if p.peer_id == peer_id), None)
        if who is None:
            raise LiveError(404, "unknown_peer", f"no participant {peer_id!r} in {room_id!r}")
        token = request.headers.get("x-peer-token", "")
        if not hmac.compare_digest(token, who.token) and caller != room.created_by:
            raise LiveError(
                403, "forbidden", "a participant leaves with its own X-Peer-Token (from its answer)"
            )
        await server.leave(room, who)
        return Response(status_code=204)

    return app
