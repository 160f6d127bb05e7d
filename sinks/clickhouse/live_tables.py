"""The live-class and immersive tables of the registry: ``live_qos`` (``live.qos``) and
``immersive_qos`` (``immersive.qos``).

Declared here as data, the event type's own columns only, and made into raw event tables by
``tables.py`` (``event_table``: the envelope's columns first); this module imports nothing of the
registry. A column is a ``settlement_tables.ColumnSpec`` ``(name, source, check)``: ``source``
is the record's attribute path (a str) or a function of the record. Migrations
``0001_raw_tables.sql`` and ``0006_live_and_immersive.sql`` create the tables.

The quality score (``schemas.quality``): a ``server`` row keeps the score the live server put
on it; a ``browser`` row is always scored here, whatever score it carries (a browser's own
figure is not trusted), and so is a server row without one. ``band`` is the score's band.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from schemas import quality
from sinks.clickhouse import rows
from sinks.clickhouse.settlement_tables import ColumnSpec
from streams.topics import IMMERSIVE_QOS, LIVE_QOS, Topic


class EventSpec(NamedTuple):
    name: str
    topic: Topic
    columns: tuple[ColumnSpec, ...]  # after the envelope's


def live_score(event: Any) -> float:
    """The score stored for a ``live_qos`` event: the live server's own on its rows, else
    ``schemas.quality.of_event`` (a few microseconds, so the band column scores again rather
    than sharing state with the score column)."""
    if event.source == "server" and event.score is not None:
        return float(event.score)
    return quality.of_event(event).score


def _opt(name: str) -> ColumnSpec:
    """An optional enum: '' when absent."""
    return ColumnSpec(name, lambda e: getattr(e, name) or "")


def _plain(*names: str, check: rows.Check | None = None) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(name, name, check) for name in names)


OPT_U64 = rows.opt_uint(64)
U64 = rows.uint(64)

LIVE_QOS_SPEC = EventSpec(
    "live_qos",
    LIVE_QOS,
    (
        *_plain("room_id", "peer_id", "source", "kind"),
        _opt("role"),
        _opt("direction"),
        *_plain("interval_s", "rtt_ms", "jitter_ms"),
        *_plain("packets_received", "packets_lost", check=OPT_U64),
        *_plain("fraction_lost", "bitrate_kbps", "frames_per_second"),
        *_plain("frames_dropped", "freeze_count", check=OPT_U64),
        *_plain("total_freezes_duration_ms", "freeze_ms", "jitter_buffer_delay_ms"),
        _opt("quality_limitation_reason"),
        ColumnSpec("score", live_score),
        ColumnSpec("band", lambda e: quality.band(live_score(e))),
    ),
)

IMMERSIVE_QOS_SPEC = EventSpec(
    "immersive_qos",
    IMMERSIVE_QOS,
    (
        ColumnSpec("lesson_id", lambda e: e.lesson_id or ""),
        *_plain("headset", "interval_s", "target_fps", "frames_per_second"),
        *_plain("motion_to_photon_ms", "motion_to_photon_p95_ms"),
        *_plain("frames_dropped", "frames_reprojected", check=U64),
    ),
)

SPECS: tuple[EventSpec, ...] = (LIVE_QOS_SPEC, IMMERSIVE_QOS_SPEC)
