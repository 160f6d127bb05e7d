"""One definition per panel: what it asks ClickHouse, how it is drawn, how to read it.

A :class:`Panel` is the single source for the Grafana JSON (``dashboards.grafana``) and for the
offline report, so the two cannot drift. Its SQL is written for the official
``grafana-clickhouse-datasource`` plugin: the plugin's macros (``$__timeFilter(col)``,
``$__timeInterval(col)``, ``$__conditionalAll(cond, $var)``, …) and template variables as
``${name:singlequote}`` inside ``IN (…)``; ``dashboards.macros`` expands the same SQL with every
value bound, for tests and the report.

Conventions the panels keep (tests/test_dashboards.py checks them against ClickHouse):
- a time-series panel returns a ``DateTime`` column named ``time`` first; series are split only
  on String columns, every other column is a number;
- money is summed per asset; exact sums of UInt256 base units are shown as strings, and a panel
  that converts to Float64 for drawing says so in its description.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Literal, get_args

from dashboards.errors import DashboardError

Kind = Literal["timeseries", "barchart", "table", "stat", "bargauge"]
KINDS: tuple[str, ...] = get_args(Kind)

# The plugin's query formats (an integer in the target; grafanalib would write a string).
FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1

GRID_COLUMNS = 24
_KEY = re.compile(r"^[a-z]+\.[a-z0-9_]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_UID = re.compile(r"^[a-z0-9-]{1,40}$")


def _sql(text: str) -> str:
    return textwrap.dedent(text).strip()


def _one_line(text: str, what: str) -> None:
    if not text.strip() or "\n" in text:
        raise DashboardError(f"{what}: the description must be one non-empty line")


@dataclass(frozen=True)
class Panel:
    """One panel. ``key`` is a stable id, ``<dashboard>.<name>`` (e.g. ``ops.events_per_s``);
    ``unit`` is a Grafana unit id (``ms``, ``percentunit``, ``cps``, ``short``, …); ``width`` and
    ``height`` are grid units (24 columns across)."""

    key: str
    title: str
    kind: Kind
    sql: str
    unit: str
    description: str
    width: int = 12
    height: int = 8

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise DashboardError(f"panel key {self.key!r}: use <dashboard>.<name>, lowercase")
        if self.kind not in KINDS:
            raise DashboardError(f"{self.key}: kind {self.kind!r} is not one of {KINDS}")
        if not 1 <= self.width <= GRID_COLUMNS or self.height < 1:
            raise DashboardError(f"{self.key}: width 1..{GRID_COLUMNS} and height >= 1 please")
        if not self.title.strip() or not self.unit:
            raise DashboardError(f"{self.key}: a title and a unit please")
        _one_line(self.description, self.key)
        object.__setattr__(self, "sql", _sql(self.sql))

    @property
    def format(self) -> int:
        """The plugin's query format: time series for time-series panels, else table."""
        return FORMAT_TIME_SERIES if self.kind == "timeseries" else FORMAT_TABLE


@dataclass(frozen=True)
class Variable:
    """A template variable filled from ClickHouse: the query's first column is the value, an
    optional second column the text shown. Multi-value with "All" by default; panels use it as
    ``$__conditionalAll(col IN (${name:singlequote}), $name)``."""

    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DashboardError(f"variable name {self.name!r}: lowercase, digits and _ only")
        object.__setattr__(self, "sql", _sql(self.sql))


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: its panels in reading order (laid out left to right, top to bottom), and
    the time range it opens with (Grafana's relative syntax)."""

    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    time_from: str = "now-6h"

    def __post_init__(self) -> None:
        if not _UID.match(self.uid):
            raise DashboardError(f"dashboard uid {self.uid!r}: lowercase, digits and - only")
        _one_line(self.description, self.uid)
        keys = [p.key for p in self.panels]
        if not keys or len(keys) != len(set(keys)):
            raise DashboardError(f"{self.uid}: panel keys must be unique and there must be some")
        names = [v.name for v in self.variables]
        if len(names) != len(set(names)):
            raise DashboardError(f"{self.uid}: variable names must be unique")

    def panel(self, key: str) -> Panel:
        for panel in self.panels:
            if panel.key == key:
                return panel
        raise KeyError(f"{self.uid} has no panel {key!r}")
