"""The five dashboards, one module each: pipeline ops, playback QoS, live classes and immersive
sessions, learning, finance. :data:`DASHBOARDS` is what `learnstream dashboards build` writes."""

from __future__ import annotations

from dashboards.definitions import finance, learning, live, ops, playback
from dashboards.panels import Dashboard

DASHBOARDS: tuple[Dashboard, ...] = (
    ops.DASHBOARD,
    playback.DASHBOARD,
    live.DASHBOARD,
    learning.DASHBOARD,
    finance.DASHBOARD,
)
