"""Dashboards as code: the Grafana JSON is sound and committed as built, the plugin's macros
expand with every value bound, and every panel and variable query runs on seeded ClickHouse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from dashboards.build import stale_files
from dashboards.definitions import DASHBOARDS
from dashboards.errors import MacroError
from dashboards.grafana import DATASOURCE, dashboard_json
from dashboards.macros import QueryContext, Selection, expand
from dashboards.panels import Dashboard
from learnstream.cli import app
from sinks.clickhouse import migrate
from tests.analytics_seed import seed_analytics

VARIABLE_USE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
BOUND = re.compile(r"\{(\w+):[^{}]+\}")
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=6)


def by_uid(dashboard: Dashboard) -> str:
    return dashboard.uid


# --- the JSON ----------------------------------------------------------------------------------


COMPOSE = (Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text()


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=by_uid)
def test_dashboards_json_is_sound(dashboard: Dashboard) -> None:
    data = dashboard_json(dashboard)
    panels = data["panels"]
    assert data["uid"] == dashboard.uid and data["id"] is None
    assert len({p["id"] for p in panels}) == len(panels) == len(dashboard.panels)
    taken: set[tuple[int, int]] = set()
    sql = []
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cells = set(
            product(range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"]))
        )
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        assert panel["description"].strip() and "\n" not in panel["description"], panel["title"]
        assert panel["datasource"] == DATASOURCE
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert type(target["format"]) is int
            assert target["format"] == (0 if panel["type"] == "timeseries" else 1)
            assert target["editorType"] == "sql" and target["refId"]
            # the 4.x shape, for the plugin version compose installs (else migrated as 3.x)
            assert target["queryType"] == ("timeseries" if target["format"] == 0 else "table")
            assert f"grafana-clickhouse-datasource {target['pluginVersion']}" in COMPOSE
            sql.append(target["rawSql"])
    variables = data["templating"]["list"]
    assert all(v["datasource"] == DATASOURCE and v["type"] == "query" for v in variables)
    defined = {v["name"] for v in variables}
    used = {
        name
        for text in sql + [v["query"] for v in variables]
        for match in VARIABLE_USE.finditer(text)
        if not (name := match.group(1) or match.group(2)).startswith("__")
    }
    assert used <= defined, f"undefined variables {used - defined}"
    assert defined <= used, f"variables no panel uses {defined - used}"


def test_dashboards_committed_files_are_the_build() -> None:
    assert stale_files() == [], "run `learnstream dashboards build` and commit the files"


def test_dashboards_build_check_names_stale_files_and_build_fixes_them(tmp_path: Path) -> None:
    runner = CliRunner()
    check = ["dashboards", "build", "--check", "--out", str(tmp_path)]
    (tmp_path / "renamed.json").write_text("{}")
    result = runner.invoke(app, check)
    assert result.exit_code == 1
    assert "learnstream-ops.json" in result.output and "renamed.json" in result.output
    assert runner.invoke(app, ["dashboards", "build", "--out", str(tmp_path)]).exit_code == 0
    assert not (tmp_path / "renamed.json").exists()
    assert len(list(tmp_path.glob("*.json"))) == len(DASHBOARDS)
    assert runner.invoke(app, check).exit_code == 0


# --- the macros --------------------------------------------------------------------------------


def context(**variables: Selection) -> QueryContext:
    return QueryContext(START, END, interval_s=300, variables=variables)


def as_the_plugin_writes(sql: str, params: dict[str, Any]) -> str:
    """The bound SQL with each value written in, as the plugin formats it."""

    def value(match: re.Match[str]) -> str:
        bound = params[match.group(1)]
        return ",".join(f"'{v}'" for v in bound) if isinstance(bound, list) else str(bound)

    return BOUND.sub(value, sql)


def test_dashboards_macros_time_filters_match_the_plugin_with_values_bound() -> None:
    sql, params = expand("WHERE $__timeFilter(t)", context())
    assert sql == "WHERE t >= toDateTime({__from:Int64}) AND t <= toDateTime({__to:Int64})"
    assert params == {"__from": 1796119200, "__to": 1796140800}
    sql, params = expand("WHERE $__timeFilter_ms(at)", context())
    assert as_the_plugin_writes(sql, params) == (
        "WHERE at >= fromUnixTimestamp64Milli(1796119200000) "
        "AND at <= fromUnixTimestamp64Milli(1796140800000)"
    )
    sql, params = expand("$__fromTime, $__toTime, $__fromTime_ms, $__toTime_ms", context())
    assert as_the_plugin_writes(sql, params) == (
        "toDateTime(1796119200), toDateTime(1796140800), "
        "fromUnixTimestamp64Milli(1796119200000), fromUnixTimestamp64Milli(1796140800000)"
    )


def test_dashboards_macros_time_interval_is_a_bucket_of_at_least_one_second() -> None:
    sql, params = expand("SELECT $__timeInterval(minute) AS time, x / $__interval_s", context())
    assert as_the_plugin_writes(sql, params) == (
        "SELECT toStartOfInterval(toDateTime(minute), INTERVAL 300 second) AS time, x / 300"
    )
    short = QueryContext(START, END, interval_s=0.2)
    assert expand("$__interval_s", short) == ("{__interval_s:UInt32}", {"__interval_s": 1})


def test_dashboards_macros_conditional_all_with_all_and_with_a_selection() -> None:
    sql = "WHERE $__conditionalAll(course_id IN (${course:singlequote}), $course) AND x"
    everything = Selection(("c1", "c2"), all=True)
    assert expand(sql, context(course=everything)) == ("WHERE 1=1 AND x", {})
    sql_bound, params = expand(sql, context(course=Selection(("c1", "o'brien"))))
    assert sql_bound == "WHERE course_id IN ({course:Array(String)}) AND x"
    assert params == {"course": ["c1", "o'brien"]}  # bound, never in the SQL text


def test_dashboards_macros_conditional_all_with_nested_parentheses_and_lines() -> None:
    sql = """WHERE $__conditionalAll(
        room_id IN (SELECT room_id FROM live_qos
                    WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)),
        $course
    ) AND $__conditionalAll(region IN (${region:singlequote}), ${region})"""
    chosen = context(course=Selection(("c1",)), region=Selection(("eu",), all=True))
    bound, params = expand(sql, chosen)
    assert bound == (
        "WHERE room_id IN (SELECT room_id FROM live_qos\n"
        "                    WHERE course_id IN ({course:Array(String)}) AND occurred_at >= "
        "toDateTime({__from:Int64}) AND occurred_at <= toDateTime({__to:Int64})) AND 1=1"
    )
    assert params == {"course": ["c1"], "__from": 1796119200, "__to": 1796140800}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WHERE $__timeFilter()", r"\$__timeFilter: expected 1 argument\(s\), received 0"),
        ("WHERE $__timeFilter AND x", r"\$__timeFilter: expected 1 argument\(s\), received 0"),
        ("SELECT $__timeInterval(a, b)", r"expected 1 argument\(s\), received 2"),
        ("WHERE $__conditionalAll(course_id IN (${course:singlequote}))", "expects 2 arguments"),
        ("WHERE $__conditionalAll(, $course)", "needs a condition"),
        ("WHERE $__timeFilter(occurred_at", "unbalanced parentheses"),
        ("WHERE $__dateFilter(day)", r"\$__dateFilter is not a macro"),
        ("WHERE course_id IN (${nope:singlequote})", r"variable \$nope is not given"),
        ("WHERE course_id = $course", "singlequote"),
        ("WHERE course_id IN (${course:csv})", "singlequote"),
    ],
)
def test_dashboards_macros_refuse_what_they_cannot_expand(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, context(course=Selection(("c1",))))


def test_dashboards_macros_need_a_tz_aware_range() -> None:
    with pytest.raises(MacroError, match="tz-aware"):
        QueryContext(START.replace(tzinfo=None), END)


# --- every query on ClickHouse -------------------------------------------------------------------


def _columns_problem(result: Any, timeseries: bool) -> str | None:
    names = list(result.column_names)
    types = [t.name for t in result.column_types]
    if not names:  # an empty result over HTTP carries no columns
        return None
    if any(re.search(r"Int(128|256)", t) for t in types):
        return f"returns a 128/256-bit integer (show money as strings): {types}"
    if not timeseries:
        return None
    if names[0] != "time" or not types[0].startswith("DateTime"):
        return f"the first column is {names[0]} {types[0]}, not a DateTime named time"
    for name, kind in zip(names[1:], types[1:], strict=True):
        plain = re.sub(r"^(Nullable|LowCardinality)\((.*)\)$", r"\2", kind)
        plain = re.sub(r"^(Nullable|LowCardinality)\((.*)\)$", r"\2", plain)
        if not re.match(r"^(String|U?Int\d+|Float\d+|Decimal)", plain):
            return f"column {name} is {kind}: series split on String columns, values are numbers"
    return None


def test_dashboards_every_panel_and_variable_query_runs_on_seeded_clickhouse(ch: Client) -> None:
    migrate(ch)
    seed_analytics(ch)
    now = datetime.now(UTC)
    problems, empty = [], []
    for dashboard in DASHBOARDS:
        bare = QueryContext(now - timedelta(days=7), now + timedelta(minutes=5), 600)
        options = {}
        for variable in dashboard.variables:
            rows = ch.query(*expand(variable.sql, bare)).result_rows
            options[variable.name] = tuple(str(row[0]) for row in rows)
            if not rows:
                empty.append(f"variable {dashboard.uid}.{variable.name}")
        every = {name: Selection(values, all=True) for name, values in options.items()}
        first = {name: Selection(values[:1]) for name, values in options.items()}
        for panel in dashboard.panels:
            for chosen in (every, first):
                in_context = QueryContext(bare.start, bare.end, bare.interval_s, chosen)
                try:
                    result = ch.query(*expand(panel.sql, in_context))
                except Exception as exc:  # collect them all, then fail once
                    problems.append(f"{panel.key}: {str(exc).splitlines()[0][:300]}")
                    break
                if chosen is every and not result.result_rows:
                    empty.append(panel.key)
                problem = _columns_problem(result, panel.kind == "timeseries")
                if problem:
                    problems.append(f"{panel.key}: {problem}")
    assert problems == []
    assert empty == [], "the seed touches every table, so every panel has rows"
