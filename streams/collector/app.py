"""The collector's HTTP API (FastAPI): events, xAPI statements, CMCD, health, schemas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from pydantic import ValidationError

from schemas import Client
from schemas.export import schemas as json_schemas
from streams.collector.auth import KeyRing, key_from_headers
from streams.collector.core import Ingest, Outcome, now_utc, publish_metrics
from streams.collector.openapi import install_openapi
from streams.collector.settings import CollectorSettings
from streams.delivery import AsyncProducer
from streams.intake import Accepted, Intake, Rejected, describe, parse_json

JSON = "application/json"
CMCD_HEADERS = ("cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session")


class RequestFault(Exception):
    """A fault of the whole request (401, 403, 413, 415, 400), answered without a DLQ record."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def _answer(outcome: Outcome) -> Response:
    headers = {"Retry-After": "1"} if outcome.status == 503 else None
    return _json(outcome.status, outcome.body, headers)


def client_from_headers(request: Request) -> Client:
    """The sending client's description, from ``X-Client-*`` headers (for xAPI and CMCD)."""
    h = request.headers
    return Client(
        platform=h.get("x-client-platform", "other"),  # type: ignore[arg-type]
        app_version=h.get("x-client-app-version", "unknown")[:512] or "unknown",
        device=(h.get("x-client-device") or h.get("user-agent") or "unknown")[:512],
        network_type=h.get("x-network-type", "unknown"),  # type: ignore[arg-type]
        region=h.get("x-region", "unknown")[:128] or "unknown",
        edge_node=h.get("x-edge-node", "unknown")[:128] or "unknown",
    )


class CollectorApp:
    """Request handling, separated from route wiring so that tests can reach its parts."""

    def __init__(
        self, settings: CollectorSettings, producer: AsyncProducer, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.keys = KeyRing(self.settings.api_keys)
        self.browser_clients = set(self.settings.browser_clients)
        self.intake = Intake(self.settings, clock)
        self.ingest = Ingest(producer, self.settings.delivery_timeout_s)
        self.clock = clock

    # -- request-level checks ------------------------------------------------------------------

    def authenticate(self, request: Request) -> str:
        client_id = self.keys.client_for(key_from_headers(request.headers))
        if client_id is None:
            raise RequestFault(
                401, "unauthorized", "missing or unknown API key: send it as X-API-Key"
            )
        if request.headers.get("origin") and client_id not in self.browser_clients:
            raise RequestFault(
                403, "forbidden", f"the key of client {client_id!r} is not allowed from browsers"
            )
        return client_id

    def refuse_browser_enrollments(self, client_id: str, types: Iterable[object]) -> None:
        """Enrollments move money: a browser client's key may not send them. The whole request
        is refused (nothing of it is written, no dead letter), as for the other 403."""
        if client_id in self.browser_clients and "enrollment" in types:
            raise RequestFault(
                403,
                "forbidden",
                "enrollments move money and are accepted only from server clients; client "
                f"{client_id!r} is a browser client: send enrollments from your server with a "
                "server key (nothing in this request was accepted)",
            )

    def refuse_browser_server_rows(self, client_id: str, items: Iterable[object]) -> None:
        """``live_qos`` rows with ``source = "server"`` are the live server's, whose quality
        score the store keeps as it is: a browser client's key may send only its own
        (``source = "browser"``, scored by the sink). Refused whole, like enrollments."""
        if client_id not in self.browser_clients:
            return
        for item in items:
            if isinstance(item, dict) and (item.get("type"), item.get("source")) == (
                "live_qos",
                "server",
            ):
                raise RequestFault(
                    403,
                    "forbidden",
                    "live_qos with source 'server' comes from the live server only; client "
                    f"{client_id!r} is a browser client: send source 'browser' (nothing in "
                    "this request was accepted)",
                )

    async def read_json_body(self, request: Request) -> bytes:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != JSON:
            raise RequestFault(
                415,
                "unsupported_media_type",
                f"Content-Type must be {JSON}, got {content_type or 'none'!r}",
            )
        return await self.read_body(request)

    async def read_body(self, request: Request) -> bytes:
        cap = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            raise RequestFault(413, "too_large", f"body larger than {cap} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise RequestFault(413, "too_large", f"body larger than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def items(self, parsed: Any) -> list[Any]:
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items:
            raise RequestFault(400, "invalid", "empty batch: send one event or a non-empty array")
        if len(items) > self.settings.max_batch_events:
            raise RequestFault(
                413,
                "too_large",
                f"batch of {len(items)} events; the limit is {self.settings.max_batch_events}",
            )
        return items

    async def malformed(
        self, body: bytes, error: str, endpoint: str, client_id: str, received_at: datetime
    ) -> Response:
        rejected = Rejected("malformed_json", error, body)
        if not await self.ingest.dead_letter(rejected, endpoint, client_id, received_at):
            return _json(
                503, {"error": "could not record the rejected body; retry"}, {"Retry-After": "1"}
            )
        return _json(400, {"error": "malformed_json", "detail": error})

    # -- endpoints ------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        client_id = self.authenticate(request)
        body = await self.read_json_body(request)
        received_at = self.clock()
        try:
            parsed = parse_json(body)
        except ValueError as exc:
            return await self.malformed(body, str(exc), "/v1/events", client_id, received_at)
        items = self.items(parsed)
        self.refuse_browser_enrollments(
            client_id, (item.get("type") for item in items if isinstance(item, dict))
        )
        self.refuse_browser_server_rows(client_id, items)
        single = not isinstance(parsed, list)
        checked = [self.intake.check(item, received_at, body if single else None) for item in items]
        return _answer(await self.ingest.write(checked, "/v1/events", client_id, received_at))

    async def xapi(self, request: Request) -> Response:
        from schemas.xapi import XapiMappingError, statement_to_event

        client_id = self.authenticate(request)
        body = await self.read_json_body(request)
        received_at = self.clock()
        endpoint = "/v1/xapi/statements"
        try:
            parsed = parse_json(body)
        except ValueError as exc:
            return await self.malformed(body, str(exc), endpoint, client_id, received_at)
        checked: list[Accepted | Rejected] = []
        client: Client | None = None
        for statement in self.items(parsed):
            raw = orjson.dumps(statement)
            try:
                if not isinstance(statement, dict):
                    raise XapiMappingError("a statement must be a JSON object")
                client = client or client_from_headers(request)
                event = statement_to_event(statement, client)
            except ValidationError as exc:
                checked.append(Rejected("invalid", describe(exc), raw))
                continue
            except XapiMappingError as exc:
                checked.append(Rejected("invalid", f"xAPI statement: {exc}", raw))
                continue
            except (TypeError, AttributeError, KeyError, IndexError) as exc:
                # a statement shaped unlike xAPI (say, an actor that is a list): bad input, not
                # a server fault
                detail = f"xAPI statement has an unexpected structure: {exc!r}"[:500]
                checked.append(Rejected("invalid", detail, raw))
                continue
            checked.append(self.intake.check_event(event, received_at, raw))
        # xAPI maps no statement to an enrollment today; this keeps the rule if one ever does
        self.refuse_browser_enrollments(
            client_id, (item.event.type for item in checked if isinstance(item, Accepted))
        )
        return _answer(await self.ingest.write(checked, endpoint, client_id, received_at))

    async def cmcd(self, request: Request) -> Response:
        from schemas.cmcd import CmcdError, cmcd_from_headers, cmcd_to_event, parse_cmcd

        client_id = self.authenticate(request)
        await self.read_body(request)  # CMCD travels in the query or headers; drain the body
        received_at = self.clock()
        query = request.query_params
        header_lines = [f"{h}: {request.headers[h]}" for h in CMCD_HEADERS if h in request.headers]
        raw = "\n".join([f"?{request.url.query}", *header_lines]).encode()
        overrides = {
            k: query[k]
            for k in ("learner_id", "course_id", "video_id", "session_id")
            if query.get(k)
        }
        try:
            if "CMCD" in query:
                data = parse_cmcd(query["CMCD"])
            elif header_lines:
                data = cmcd_from_headers(request.headers)
            else:
                raise CmcdError("no CMCD data: send the CMCD query parameter or CMCD-* headers")
            event = cmcd_to_event(
                data, client_from_headers(request), received_at, overrides=overrides
            )
            checked = self.intake.check_event(event, received_at, raw)
        except ValidationError as exc:
            checked = Rejected("invalid", describe(exc), raw)
        except CmcdError as exc:
            checked = Rejected("invalid", f"CMCD: {exc}", raw)
        except (TypeError, AttributeError, KeyError, IndexError) as exc:
            checked = Rejected(
                "invalid", f"CMCD data has an unexpected structure: {exc!r}"[:500], raw
            )
        return _answer(await self.ingest.write([checked], "/v1/cmcd", client_id, received_at))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "counters": self.ingest.counters.snapshot()}

    def metrics(self) -> str:
        lines = [
            "# HELP learnstream_collector_events_total Events and requests by outcome.",
            "# TYPE learnstream_collector_events_total counter",
        ]
        for outcome, n in self.ingest.counters.snapshot().items():
            lines.append(f'learnstream_collector_events_total{{outcome="{outcome}"}} {n}')
        return "\n".join(lines) + "\n"


def create_app(
    settings: CollectorSettings,
    bootstrap_servers: str,
    producer: AsyncProducer | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> FastAPI:
    """The collector app. It owns ``producer`` when it creates it (closed on shutdown)."""
    owned = producer is None
    kafka = producer or AsyncProducer(bootstrap_servers)
    handler = CollectorApp(settings, kafka, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(
            publish_metrics(handler.ingest, kafka, settings.metrics_interval_s, settings.port)
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if owned:
                await asyncio.to_thread(kafka.close)

    app = FastAPI(
        title="learnstream collector",
        version="1",
        description="Learner events in: validated, keyed by learner_id, written to Kafka, "
        "acknowledged per event. Send the API key as `X-API-Key`.",
        lifespan=lifespan,
    )
    app.state.handler = handler
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization", *CMCD_HEADERS],
        )

    async def guarded(call: Any, request: Request) -> Response:
        try:
            return await call(request)
        except RequestFault as fault:
            handler.ingest.counters.add(fault.outcome)
            return _json(fault.status, {"error": fault.outcome, "detail": str(fault)})

    @app.post("/v1/events", openapi_extra={"x-learnstream-body": "events"})
    async def post_events(request: Request) -> Response:
        """One event (a JSON object) or a batch (a JSON array of up to 500 events, 1 MiB).
        Enrollments only with a server client's key: from a browser client's key, a request
        holding any enrollment is refused whole (403)."""
        return await guarded(handler.events, request)

    @app.post("/v1/xapi/statements", openapi_extra={"x-learnstream-body": "xapi"})
    async def post_xapi(request: Request) -> Response:
        """xAPI statements (one or an array): Video Profile verbs and quiz results."""
        return await guarded(handler.xapi, request)

    @app.post("/v1/cmcd", openapi_extra={"x-learnstream-body": "cmcd"})
    async def post_cmcd(request: Request) -> Response:
        """CMCD (CTA-5004) data from a player, in the `CMCD` query parameter or CMCD-* headers."""
        return await guarded(handler.cmcd, request)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, with the counters of every outcome."""
        return handler.health()

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Counters in the Prometheus text format."""
        return Response(handler.metrics(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/schemas")
    async def get_schemas() -> dict[str, Any]:
        """The JSON Schema of every event type, keyed by file name."""
        return json_schemas()

    install_openapi(app)
    return app
