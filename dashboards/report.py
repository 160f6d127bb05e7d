"""The offline report: every panel of every dashboard, run on ClickHouse, in one HTML file.

Where no Grafana runs (the local demo, a laptop on a train) the same panels are still there to
look at. :func:`run_report` runs each panel's query as the plugin would with "All" selected for
every variable (``dashboards.macros``, every value bound); :func:`render_html` writes one
self-contained page: charts are inline SVG drawn at build time (``dashboards.charts``), styles
are inline, and nothing is loaded from anywhere. A panel whose query fails is shown with its
error and listed in :attr:`Report.failed`; the page is written all the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import pandas as pd

from dashboards.charts import draw
from dashboards.errors import DashboardError
from dashboards.macros import QueryContext, Selection, expand
from dashboards.panels import Dashboard, Panel

# Grafana's relative ranges as the dashboards write them: now-6h, now-30d, …
_RELATIVE = re.compile(r"^now-(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Bucket widths a report picks from: about a hundred buckets across the range.
_INTERVALS = (10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
BUCKETS = 100


def relative_start(time_from: str, end: datetime) -> datetime:
    """The start of Grafana's ``now-<n><unit>`` range ending at ``end``."""
    match = _RELATIVE.match(time_from)
    if not match:
        raise DashboardError(f"time range {time_from!r}: expected now-<n>m|h|d|w")
    return end - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def interval_for(start: datetime, end: datetime) -> int:
    """The bucket width in seconds for about :data:`BUCKETS` buckets between start and end."""
    wanted = (end - start).total_seconds() / BUCKETS
    return next((i for i in _INTERVALS if i >= wanted), _INTERVALS[-1])


@dataclass(frozen=True)
class PanelResult:
    """A panel and what its query gave: rows, or the error that stopped it."""

    panel: Panel
    rows: pd.DataFrame | None
    error: str | None = None


@dataclass(frozen=True)
class DashboardResult:
    dashboard: Dashboard
    start: datetime
    end: datetime
    panels: tuple[PanelResult, ...]


@dataclass(frozen=True)
class Report:
    made_at: datetime
    dashboards: tuple[DashboardResult, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[str]:
        """The keys of the panels whose query failed."""
        return [p.panel.key for d in self.dashboards for p in d.panels if p.error is not None]


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:500]


def _options(client: Any, dashboard: Dashboard, context: QueryContext) -> dict[str, Selection]:
    """Every variable's options, all selected; a variable whose query fails has none (the
    panels that name its values then fail and say so)."""
    chosen = {}
    for variable in dashboard.variables:
        try:
            rows = client.query(*expand(variable.sql, context)).result_rows
        except Exception:  # shown through the panels that use it
            rows = []
        chosen[variable.name] = Selection(tuple(str(row[0]) for row in rows), all=True)
    return chosen


def run_dashboard(
    client: Any, dashboard: Dashboard, start: datetime, end: datetime
) -> DashboardResult:
    """Run every panel's query between ``start`` and ``end`` with every variable on "All"."""
    interval = interval_for(start, end)
    bare = QueryContext(start, end, interval)
    context = QueryContext(start, end, interval, _options(client, dashboard, bare))
    results = []
    for panel in dashboard.panels:
        try:
            sql, parameters = expand(panel.sql, context)
            rows = client.query_df(sql, parameters=parameters)
        except Exception as exc:  # one failed panel does not stop the report
            results.append(PanelResult(panel, None, _first_line(exc)))
        else:
            results.append(PanelResult(panel, rows))
    return DashboardResult(dashboard, start, end, tuple(results))


def run_report(
    client: Any,
    dashboards: Sequence[Dashboard],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Report:
    """Every dashboard's panels from ``start`` (default: each dashboard's own ``time_from``)
    to ``end`` (default: now). ``client`` is a clickhouse-connect client."""
    made_at = datetime.now(UTC)
    end = end or made_at
    done = []
    for dashboard in dashboards:
        begin = start or relative_start(dashboard.time_from, end)
        done.append(run_dashboard(client, dashboard, begin, end))
    return Report(made_at, tuple(done))


# --- the page ------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  background: #f4f5f7; color: #1f2328; }
header, main, nav { max-width: 1340px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 28px 0 4px; border-bottom: 2px solid #3d71d9; padding-bottom: 4px; }
h3 { font-size: 1rem; margin: 0 0 2px; }
.meta, .note, .how { color: #57606a; font-size: 0.85rem; margin: 2px 0 8px; }
nav > ol { columns: 3; font-size: 0.9rem; }
nav > ol > li { break-inside: avoid; margin-bottom: 6px; }
nav a, h2 a { color: #1f5fbf; text-decoration: none; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.panel { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px;
  box-sizing: border-box; overflow-x: auto; }
.panel svg { display: block; max-width: 100%; height: auto; }
.empty { color: #8c959f; font-style: italic; padding: 24px 0; text-align: center; }
.error { color: #a40e26; background: #ffebe9; border: 1px solid #ff8182; border-radius: 4px;
  padding: 8px; font-family: ui-monospace, monospace; font-size: 0.8rem; white-space: pre-wrap; }
.stats { display: flex; gap: 24px; flex-wrap: wrap; padding: 12px 0; }
.stat-value { font-size: 2.4rem; font-weight: 600; color: #1a7f37; }
.stat-name { color: #57606a; font-size: 0.8rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.8rem; width: 100%; }
th, td { border-bottom: 1px solid #eaeef2; padding: 3px 6px; text-align: left; }
th { background: #f6f8fa; }
td.num { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
"""


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _panel_html(result: PanelResult) -> str:
    panel = result.panel
    if result.error is not None:
        body = f'<div class="error">query failed: {escape(result.error)}</div>'
        state, rows = "error", 0
    else:
        assert result.rows is not None
        rows = len(result.rows)
        drawn = draw(panel, result.rows)
        state = "drawn" if drawn else "empty"
        body = drawn or '<p class="empty">no data in this range</p>'
    basis = f"calc({panel.width / 24 * 100:.3f}% - 12px)"
    return (
        f'<section class="panel" id="{escape(panel.key)}" data-kind="{panel.kind}" '
        f'data-state="{state}" data-rows="{rows}" style="flex: 0 0 {basis}; min-width: 300px">'
        f"<h3>{escape(panel.title)}</h3>"
        f'<p class="how">{escape(panel.description)}</p>{body}</section>'
    )


def _dashboard_html(result: DashboardResult) -> str:
    dashboard = result.dashboard
    panels = "".join(_panel_html(p) for p in result.panels)
    return (
        f'<h2 id="{escape(dashboard.uid)}">{escape(dashboard.title)}</h2>'
        f'<p class="meta">{escape(dashboard.description)} Range: {_when(result.start)} → '
        f"{_when(result.end)}.</p>"
        f'<div class="grid">{panels}</div>'
    )


def _contents(report: Report) -> str:
    items = []
    for result in report.dashboards:
        dashboard = result.dashboard
        panels = "".join(
            f'<li><a href="#{escape(p.panel.key)}">{escape(p.panel.title)}</a></li>'
            for p in result.panels
        )
        items.append(
            f'<li><a href="#{escape(dashboard.uid)}">{escape(dashboard.title)}</a>'
            f"<ol>{panels}</ol></li>"
        )
    return f"<nav><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _ranges(report: Report) -> str:
    spans = {(d.start, d.end) for d in report.dashboards}
    if len(spans) == 1:
        [(start, end)] = spans
        return f"{_when(start)} → {_when(end)}, for every dashboard"
    latest = _when(max(end for _, end in spans))
    return f"each dashboard's own range (under its title), up to {latest}"


def render_html(report: Report) -> str:
    """One self-contained HTML page: a header, the contents, then every dashboard's panels."""
    failed = report.failed
    failures = (
        f'<p class="error">{len(failed)} panel(s) failed: {escape(", ".join(failed))}</p>'
        if failed
        else ""
    )
    panels = sum(len(d.panels) for d in report.dashboards)
    header = (
        "<header><h1>learnstream dashboards</h1>"
        f'<p class="meta">Made {_when(report.made_at)} over {escape(_ranges(report))}; '
        f'{len(report.dashboards)} dashboards, {panels} panels; every variable on "All".</p>'
        f"{failures}</header>"
    )
    body = "".join(_dashboard_html(d) for d in report.dashboards)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>learnstream dashboards, {_when(report.made_at)}</title>"
        f"<style>{_CSS}</style></head><body>{header}{_contents(report)}<main>{body}</main>"
        "</body></html>\n"
    )
