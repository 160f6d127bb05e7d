"""Live classes: `learnstream live` runs the aiortc live-class server."""

from __future__ import annotations

from typing import Annotated

import typer

from learnstream.errors import LearnstreamError
from learnstream.settings import get_settings


def live(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Run the live-class server: rooms over WebRTC, the browser page at /, signaling under
    /v1/rooms (OpenAPI at /docs), server-side QoS to live.qos every LIVE__QOS_INTERVAL_S.

    Participants use the collector's API keys; browsers use a browser client's key."""
    import uvicorn

    from learnstream.wiring import live_app

    settings = get_settings()
    if not settings.collector.api_keys:
        raise LearnstreamError(
            "no API keys configured: the live server uses the collector's keys; create one "
            "with `learnstream collector keygen <client>` and set LEARNSTREAM_COLLECTOR__API_KEYS"
        )
    uvicorn.run(
        live_app(settings),
        host=host or settings.live.host,
        port=port or settings.live.port,
        access_log=False,
        log_level="info",
    )
