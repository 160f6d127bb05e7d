"""Grafana dashboard JSON from the panel definitions, built with grafanalib.

Every target is a raw-SQL query for the official ``grafana-clickhouse-datasource`` plugin on
the provisioned datasource (uid ``clickhouse``, dashboards/provisioning/datasources): grafanalib's
``SqlTarget`` writes ``format`` as a string, the plugin wants its integer (0 time series,
1 table), so :class:`ClickHouseTarget` writes the target itself. Variables are ClickHouse query
variables on the same datasource, refreshed when the time range changes.

Panels flow left to right on the 24-column grid and wrap to a new row when the next one does
not fit; ids are positions in the dashboard. The output is deterministic (sorted keys, no
timestamps), so the committed files change only when a definition does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from dashboards.panels import GRID_COLUMNS, Dashboard, Panel, Variable

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
# The plugin version docker-compose.yml installs. A target without it, or with queryType "sql",
# is taken for a 3.x query and migrated by the plugin's frontend; 4.x names the query type.
PLUGIN_VERSION = "4.10.2"
QUERY_TYPES = {0: "timeseries", 1: "table"}
SCHEMA_VERSION = 39
MIN_INTERVAL = "1m"  # qos_1m and the live and VR tables hold minutes: no finer bucket
REFRESH_ON_TIME_RANGE_CHANGE = 2


@dataclass(frozen=True)
class ClickHouseTarget:
    """One query of a panel, as the plugin stores it."""

    raw_sql: str
    format: int
    ref_id: str = "A"

    def to_json_data(self) -> dict[str, Any]:
        return {
            "datasource": DATASOURCE,
            "editorType": "sql",
            "format": self.format,
            "pluginVersion": PLUGIN_VERSION,
            "queryType": QUERY_TYPES[self.format],
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


def layout(panels: tuple[Panel, ...]) -> list[g.GridPos]:
    """Grid positions: left to right, a new row when the next panel would pass column 24; a
    row is as tall as its tallest panel, so nothing overlaps."""
    positions: list[g.GridPos] = []
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        positions.append(g.GridPos(h=panel.height, w=panel.width, x=x, y=y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return positions


def _field_config(panel: Panel) -> dict[str, Any]:
    """What every kind shares: the unit and plain thresholds (grafanalib's defaults differ by
    kind, and its stat writes an empty string for the steps and no colour mode)."""
    steps = [{"color": "green", "value": None}]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.kind in ("stat", "bargauge"):
        defaults["color"] = {"mode": "thresholds"}
    return {"defaults": defaults}


def _grafana_panel(panel: Panel, panel_id: int, position: g.GridPos) -> dict[str, Any]:
    common: dict[str, Any] = {
        "title": panel.title,
        "description": panel.description,
        "dataSource": DATASOURCE,
        "targets": [ClickHouseTarget(panel.sql, panel.format)],
        "gridPos": position,
        "id": panel_id,
        "interval": MIN_INTERVAL,
        "extraJson": {"fieldConfig": _field_config(panel)},
    }
    built: g.Panel
    if panel.kind == "timeseries":
        built = g.TimeSeries(unit=panel.unit, **common)
    elif panel.kind == "table":
        built = g.Table(unit=panel.unit, **common)
    elif panel.kind == "stat":
        built = g.Stat(format=panel.unit, reduceCalc="lastNotNull", noValue="No data", **common)
    elif panel.kind == "barchart":
        built = g.BarChart(**common)
    else:
        built = g.BarGauge(format=panel.unit, **common)
    data: dict[str, Any] = json.loads(json.dumps(built.to_json_data(), cls=DashboardEncoder))
    if panel.kind == "bargauge":
        # grafanalib writes the Grafana 6 options; one bar per row of the table result.
        data["options"] = {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
            "showUnfilled": True,
        }
    return data


def _variable(variable: Variable) -> dict[str, Any]:
    current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return {
        "allValue": None,
        "current": current if variable.include_all else {},
        "datasource": DATASOURCE,
        "definition": variable.sql,
        "hide": 0,
        "includeAll": variable.include_all,
        "label": variable.label,
        "multi": variable.multi,
        "name": variable.name,
        "options": [],
        "query": variable.sql,
        "refresh": REFRESH_ON_TIME_RANGE_CHANGE,
        "regex": "",
        "skipUrlSync": False,
        "sort": 0,
        "type": "query",
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of ``dashboard``, as file provisioning loads it."""
    panels = [
        _grafana_panel(panel, i, position)
        for i, (panel, position) in enumerate(
            zip(dashboard.panels, layout(dashboard.panels), strict=True), start=1
        )
    ]
    built = g.Dashboard(
        title=dashboard.title,
        uid=dashboard.uid,
        description=dashboard.description,
        tags=list(dashboard.tags),
        timezone="utc",
        time=g.Time(dashboard.time_from, "now"),
        refresh="1m",
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        graphTooltip=1,  # a shared crosshair across the panels
        templating=g.Templating(list=[_variable(v) for v in dashboard.variables]),
        panels=[],
    )
    data: dict[str, Any] = json.loads(json.dumps(built.to_json_data(), cls=DashboardEncoder))
    data["panels"] = panels
    return data


def render(dashboard: Dashboard) -> str:
    """The file's text: sorted keys, two-space indent, a final newline."""
    return (
        json.dumps(dashboard_json(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
