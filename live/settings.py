"""The live-class server's settings (the ``live`` section)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.settings import SECTION


class LiveSettings(BaseModel):
    """Where the live server listens, how many rooms and people it holds, how often it measures.

    Participants authenticate with the collector's API keys (``collector.api_keys``); a key
    used from a browser page must belong to one of ``collector.browser_clients``.
    """

    model_config = SECTION

    host: str = Field("127.0.0.1")
    port: int = Field(8090, ge=1, le=65535)
    max_rooms: int = Field(50, ge=1, description="Rooms open at once")
    max_participants: int = Field(
        30, ge=2, description="Per room, the teacher included (a room may set fewer)"
    )
    room_idle_s: float = Field(
        3600, gt=0, description="A room nobody has been in for this long is closed"
    )
    max_messages_per_s: float = Field(
        10, gt=0, description="Data-channel messages a participant may send per second"
    )
    qos_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often getStats() becomes live_qos events"
    )
    browser_qos_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often the served page sends its own getStats()"
    )
    collector_url: str = Field(
        "http://127.0.0.1:8080",
        description="Where the served page sends its live_qos (the collector, as browsers see it)",
    )
    forward_encoded: bool = Field(
        True,
        description="Forward the teacher's encoded frames to learners (false: decode once and "
        "re-encode for every learner with aiortc's MediaRelay)",
    )
    metrics_interval_s: float = Field(10.0, gt=0, description="pipeline.metrics period")
    max_sdp_bytes: int = Field(64 * 1024, ge=1024, description="Largest SDP offer accepted")
    max_message_bytes: int = Field(16 * 1024, ge=256, description="Largest data-channel message")
    delivery_timeout_s: float = Field(30, gt=0, description="Wait this long for Kafka to confirm")
    ice_timeout_s: float = Field(
        30, gt=0, description="A participant not connected by then is dropped"
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
