"""A panel's rows drawn for the offline report: inline SVG, a big number, or an HTML table.

Charts are Vega-Lite specs built with altair and rendered to SVG here, at build time, by
vl-convert (Vega running in an embedded engine): the report holds no JavaScript and loads
nothing, so it opens anywhere with no network. The rows follow the panels' conventions
(``dashboards.panels``): a time series has its ``DateTime`` column ``time`` as x, its String
columns name the series and every other column is a number; a bar chart's String columns name
the bars. Every text that goes into the HTML is escaped here.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any

import altair as alt
import pandas as pd
import vl_convert

from dashboards.panels import Panel

TABLE_ROWS = 50
CHART_HEIGHT = 190
PAGE_WIDTH = 1300  # the width a 24-column panel takes in the report's layout
_VL_VERSION = alt.SCHEMA_VERSION.rsplit(".", 1)[0].replace(".", "_")  # v6.4.1 -> v6_4
# d3-format specifiers for Grafana's units; the unit's name goes in the axis title otherwise
_AXIS_FORMAT = {"percentunit": ".2~%"}
_UNIT_SUFFIX = {"ms": " ms", "s": " s", "Kbits": " kb/s", "cps": "/s"}


def chart_width(panel: Panel) -> int:
    """Pixels for the plot area of a panel as wide as ``panel.width`` of 24 columns."""
    return max(240, int(panel.width / 24 * PAGE_WIDTH) - 110)


def columns(df: pd.DataFrame) -> tuple[str | None, list[str], list[str]]:
    """The time column (the first DateTime one), the label columns and the number columns."""
    time = next((c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])), None)
    numbers = [
        c
        for c in df.columns
        if c != time
        and pd.api.types.is_numeric_dtype(df[c])
        and not pd.api.types.is_bool_dtype(df[c])
    ]
    labels = [c for c in df.columns if c != time and c not in numbers]
    return time, labels, numbers


def _label(df: pd.DataFrame, labels: list[str]) -> pd.Series:
    return df[labels].astype(str).agg(" / ".join, axis=1)


def _utc(value: Any) -> str:
    moment = pd.Timestamp(value)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def long_form(df: pd.DataFrame, time: str) -> list[dict[str, Any]]:
    """One row per (time, series) with its value: the series is the label columns joined, with
    the number column's name when there are several. Rows without a value are left out."""
    _, labels, numbers = columns(df)
    label = _label(df, labels) if labels else None
    out: list[dict[str, Any]] = []
    for number in numbers:
        values = pd.to_numeric(df[number], errors="coerce").astype(float)
        for i, value in enumerate(values):
            if math.isnan(value) or math.isinf(value):
                continue
            parts = [label.iloc[i]] if label is not None else []
            if len(numbers) > 1 or not parts:
                parts.append(str(number))
            row: dict[str, Any] = {"series": " / ".join(parts), "value": value}
            row["x"] = _utc(df[time].iloc[i])
            out.append(row)
    return out


def _y_axis(panel: Panel) -> alt.Axis:
    options: dict[str, Any] = {"grid": True, "title": None}
    if panel.unit in _AXIS_FORMAT:
        options["format"] = _AXIS_FORMAT[panel.unit]
    elif panel.unit not in ("short", "none"):
        options["title"] = panel.unit
    return alt.Axis(**options)


def _svg(chart: alt.TopLevelMixin) -> str:
    svg: str = vl_convert.vegalite_to_svg(chart.to_dict(), vl_version=_VL_VERSION)
    # inline SVG in HTML needs no namespace declarations; the page then names no URL at all
    return svg.replace(' xmlns="http://www.w3.org/2000/svg"', "").replace(
        ' xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


def _legend(rows: list[dict[str, Any]]) -> alt.Legend | None:
    series = {r["series"] for r in rows}
    return (
        alt.Legend(orient="bottom", columns=3, labelLimit=360, title=None)
        if len(series) > 1
        else None
    )


def time_series_svg(panel: Panel, df: pd.DataFrame) -> str | None:
    """A line per series over ``time``; None when no row has a value."""
    time, _, _ = columns(df)
    rows = long_form(df, time) if time is not None else []
    if not rows:
        return None
    single = len({r["x"] for r in rows}) == 1  # one bucket: a line needs points to be seen
    chart = (
        alt.Chart(alt.InlineData(values=rows))
        .mark_line(point=alt.OverlayMarkDef(size=30 if single else 12), strokeWidth=2)
        .encode(
            x=alt.X("x:T", scale=alt.Scale(type="utc"), title=None),
            y=alt.Y("value:Q", axis=_y_axis(panel)),
            color=alt.Color("series:N", legend=_legend(rows)),
        )
        .properties(width=chart_width(panel), height=CHART_HEIGHT)
    )
    return _svg(chart)


def bar_svg(panel: Panel, df: pd.DataFrame) -> str | None:
    """Horizontal bars, one per row named by its String columns (grouped, a colour per number
    column, when there are several); a single unnamed row shows its numbers as the bars. None
    when no row has a value."""
    _, labels, numbers = columns(df)
    names = _label(df, labels) if labels else None
    rows = []
    for number in numbers:
        values = pd.to_numeric(df[number], errors="coerce").astype(float)
        for i, value in enumerate(values):
            if math.isnan(value) or math.isinf(value):
                continue
            if names is not None:
                bar = names.iloc[i]
            else:
                bar = str(number) if len(df) == 1 else f"{number} {i + 1}"
            rows.append({"bar": bar, "measure": str(number), "value": value})
    if not rows:
        return None
    grouped = names is not None and len(numbers) > 1
    encoding: dict[str, Any] = {
        "y": alt.Y("bar:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
        "x": alt.X("value:Q", axis=_y_axis(panel)),
    }
    if grouped:
        encoding["yOffset"] = alt.YOffset("measure:N")
        encoding["color"] = alt.Color("measure:N", legend=alt.Legend(orient="bottom", title=None))
    bars = len({r["bar"] for r in rows}) * (len(numbers) if grouped else 1)
    chart = (
        alt.Chart(alt.InlineData(values=rows))
        .mark_bar()
        .encode(**encoding)
        .properties(width=chart_width(panel) - 120, height=max(40, 20 * bars))
    )
    return _svg(chart)


def format_value(value: Any, unit: str) -> str:
    """A number as Grafana's unit shows it (percent, ms, …); anything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    text = f"{value:,}" if isinstance(value, int) or float(value).is_integer() else f"{value:,.3g}"
    if isinstance(value, float) and not value.is_integer() and abs(value) >= 1000:
        text = f"{value:,.0f}"
    return text + _UNIT_SUFFIX.get(unit, "")


def _cell(value: Any) -> str:
    """A table cell as it came (ids and exact sums keep every digit), floats to 6 digits."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return format_value(value, "none")


def stat_html(panel: Panel, df: pd.DataFrame) -> str:
    """The first row's values as big numbers, each named when there are several."""
    row = df.iloc[0]
    items = []
    for name in df.columns:
        value = row[name]
        value = value.item() if hasattr(value, "item") else value
        caption = f'<div class="stat-name">{escape(str(name))}</div>' if len(df.columns) > 1 else ""
        items.append(
            f'<div class="stat"><div class="stat-value">{escape(format_value(value, panel.unit))}'
            f"</div>{caption}</div>"
        )
    return f'<div class="stats">{"".join(items)}</div>'


def table_html(df: pd.DataFrame, limit: int = TABLE_ROWS) -> str:
    """The rows as an HTML table, the first ``limit`` of them, saying how many are left out."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.head(limit).iterrows():
        cells = []
        for value in row:
            value = value.item() if hasattr(value, "item") else value
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            css = ' class="num"' if numeric else ""
            cells.append(f"<td{css}>{escape(_cell(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = len(df) - limit
    note = f'<p class="note">{more} more rows not shown.</p>' if more > 0 else ""
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def draw(panel: Panel, df: pd.DataFrame) -> str | None:
    """The panel drawn as its kind says; None when there is nothing to draw."""
    if df.empty or len(df.columns) == 0:
        return None
    if panel.kind == "timeseries":
        return time_series_svg(panel, df)
    if panel.kind in ("barchart", "bargauge"):
        return bar_svg(panel, df)
    if panel.kind == "stat":
        return stat_html(panel, df)
    return table_html(df)
