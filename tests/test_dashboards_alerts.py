"""Alert rules as code: the provisioning file is current and well-formed, every alert query runs
on seeded ClickHouse with the plugin's macros expanded, each rule fires on data that should fire
it and not on data that should not, and Grafana's read-only ClickHouse user can read every table
the dashboards and alerts read, and not dlq."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from dashboards.alerts import (
    ALERTS,
    CONSUMER_LAG,
    DLQ_RATE,
    EDGE_NODE_DEGRADED,
    RECONCILE_FAILED,
    SETTLEMENT_LATENCY,
    Alert,
    render,
)
from dashboards.build import ALERTS_FILE, alerts_stale
from dashboards.definitions import DASHBOARDS
from dashboards.grafana import DATASOURCE, dashboard_json
from dashboards.macros import QueryContext, expand
from learnstream.cli import app
from schemas import format_utc
from sinks.clickhouse import migrate
from sinks.clickhouse.reconciliations import write_reconciliation
from tests.analytics_seed import reconciliation, seed_analytics
from tests.test_sinks_migrations import dead_letter, example, insert_records, qos_window
from tests.test_sinks_settlement_tables import Chain, completed, feed

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_USER_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml"
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
RULE_KEYS = {
    "uid",
    "title",
    "condition",
    "data",
    "noDataState",
    "execErrState",
    "for",
    "labels",
    "annotations",
}
PLUGIN_MACROS = {
    "timeFilter",
    "timeFilter_ms",
    "fromTime",
    "toTime",
    "fromTime_ms",
    "toTime_ms",
    "timeInterval",
    "interval_s",
}
MACRO = re.compile(r"\$__(\w+)")
VARIABLE = re.compile(r"\$(?!__)\{?\w+")
# Tables a query reads: after FROM/JOIN (not a table function, not a WITH name), and the
# alternatives of a merge(currentDatabase(), '^(a|b)$').
FROM = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_.]*)\b(?!\s*\()", re.IGNORECASE)
WITH_NAME = re.compile(r"\b(\w+)\s+AS\s*\(", re.IGNORECASE)
MERGE = re.compile(r"merge\(\s*currentDatabase\(\)\s*,\s*'\^\(([^)]*)\)\$'\s*\)")


def by_uid(alert: Alert) -> str:
    return alert.uid


def provisioned() -> dict[str, Any]:
    data = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- the provisioning file ---------------------------------------------------------------------


def test_alerts_committed_file_is_the_build() -> None:
    assert not alerts_stale(), "run `learnstream dashboards build` and commit the file"


def test_alerts_build_check_names_a_stale_alert_file(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "alerting" / "rules.yaml"
    options = ["--out", str(tmp_path / "json"), "--alerts-out", str(target)]
    result = runner.invoke(app, ["dashboards", "build", "--check", *options])
    assert result.exit_code == 1 and "rules.yaml" in result.output
    assert runner.invoke(app, ["dashboards", "build", *options]).exit_code == 0
    assert target.read_text(encoding="utf-8") == render()
    assert runner.invoke(app, ["dashboards", "build", "--check", *options]).exit_code == 0


def test_alerts_provisioning_is_well_formed() -> None:
    data = provisioned()
    assert data["apiVersion"] == 1
    [group] = data["groups"]
    assert group["orgId"] == 1 and group["name"] and group["folder"] and group["interval"]
    rules = group["rules"]
    assert [r["uid"] for r in rules] == [a.uid for a in ALERTS]
    assert len({r["uid"] for r in rules}) == len(rules) == 5
    panels = {d.uid: dashboard_json(d)["panels"] for d in DASHBOARDS}
    for rule in rules:
        where = rule["uid"]
        assert set(rule) >= RULE_KEYS, f"{where}: missing {RULE_KEYS - set(rule)}"
        assert rule["noDataState"] in ("NoData", "Alerting", "OK"), where
        assert rule["execErrState"] in ("Error", "Alerting", "OK"), where
        assert re.fullmatch(r"\d+[smh]", rule["for"]), where
        assert rule["labels"]["severity"] in ("warning", "critical"), where
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], where
        # Grafana expands environment variables in these when it reads the file
        texts = [rule["title"], *rule["annotations"].values(), *rule["labels"].values()]
        assert not any("$" in text for text in texts), where
        items = {item["refId"]: item for item in rule["data"]}
        assert len(items) == len(rule["data"]) and rule["condition"] in items, where
        for item in rule["data"]:
            assert {"refId", "relativeTimeRange", "datasourceUid", "model"} <= set(item), where
            assert item["model"]["refId"] == item["refId"], where
        queries = [i for i in rule["data"] if i["datasourceUid"] != "__expr__"]
        assert len(queries) == 1, f"{where}: one ClickHouse query"
        [query] = queries
        model = query["model"]
        assert query["datasourceUid"] == DATASOURCE["uid"] and model["datasource"] == DATASOURCE
        assert type(model["format"]) is int and model["format"] == 1, where
        assert model["queryType"] == "table" and model["editorType"] == "sql", where
        assert f"grafana-clickhouse-datasource {model['pluginVersion']}" in COMPOSE, where
        window = query["relativeTimeRange"]
        assert window["from"] > window["to"] == 0, where
        sql = model["rawSql"]
        assert set(MACRO.findall(sql)) <= PLUGIN_MACROS, f"{where}: not a plugin macro"
        assert not VARIABLE.search(sql), f"{where}: alerts have no dashboard variables"
        # reduce (last) the query, then the threshold the condition names
        reduce = items["B"]["model"]
        assert reduce["type"] == "reduce" and reduce["reducer"] == "last"
        assert reduce["expression"] == query["refId"]
        threshold = items[rule["condition"]]["model"]
        assert threshold["type"] == "threshold" and threshold["expression"] == "B"
        evaluator = threshold["conditions"][0]["evaluator"]
        assert evaluator["type"] in ("gt", "lt") and len(evaluator["params"]) == 1
        for ref in ("B", rule["condition"]):
            assert items[ref]["datasourceUid"] == "__expr__", where
        ids = {p["id"]: p["title"] for p in panels[rule["dashboardUid"]]}
        assert rule["panelId"] in ids, f"{where}: links to no panel"


def test_alerts_refuse_grafana_time_variables() -> None:
    with pytest.raises(Exception, match=r"\$__from/\$__to"):
        Alert(
            uid="x",
            title="x",
            sql="SELECT 1 WHERE t > $__from",
            threshold=0,
            comparison="gt",
            for_="1m",
            window_s=60,
            severity="warning",
            summary="x",
            description="x",
            panel="ops.dlq_share",
        )


# --- the queries on ClickHouse -------------------------------------------------------------------


def _plain(kind: str) -> str:
    for _ in range(2):
        kind = re.sub(r"^(Nullable|LowCardinality)\((.*)\)$", r"\2", kind)
    return kind


def evaluate(ch: Client, alert: Alert, now: datetime | None = None) -> dict[tuple[str, ...], float]:
    """{labels: value} as Grafana sees the query's table: String columns are labels, the one
    other column is the value (numeric, never NULL)."""
    now = now or datetime.now(UTC) + timedelta(seconds=1)
    context = QueryContext(now - timedelta(seconds=alert.window_s), now)
    result = ch.query(*expand(alert.sql, context))
    if not result.result_rows:
        return {}
    kinds = [_plain(t.name) for t in result.column_types]
    values = [i for i, kind in enumerate(kinds) if kind != "String"]
    assert len(values) == 1, f"{alert.uid}: one numeric column please, not {kinds}"
    [at] = values
    assert re.match(r"^(U?Int\d+|Float\d+|Decimal|Bool)", kinds[at]), kinds
    names = result.column_names
    found = {}
    for row in result.result_rows:
        assert row[at] is not None, f"{alert.uid}: NULL value"
        labels = tuple(f"{names[i]}={row[i]}" for i in range(len(row)) if i != at)
        found[labels] = float(row[at])
    return found


def firing(alert: Alert, values: dict[tuple[str, ...], float]) -> set[tuple[str, ...]]:
    above = alert.comparison == "gt"
    return {k for k, v in values.items() if (v > alert.threshold if above else v < alert.threshold)}


def test_alerts_every_query_runs_on_seeded_clickhouse(ch: Client) -> None:
    migrate(ch)
    seed_analytics(ch)
    answered = {alert.uid: evaluate(ch, alert) for alert in ALERTS}
    # the seed has input, lag reports and a reconciliation run inside these rules' windows
    for uid in ("learnstream-dlq-rate", "learnstream-consumer-lag", "learnstream-reconcile-failed"):
        assert answered[uid], f"{uid}: no rows on the seed"
    assert answered["learnstream-reconcile-failed"] == {(): 0.0}  # the seeded run is clean


def _views(ch: Client, count: int, at: datetime) -> None:
    insert_records(ch, "learner.views", [example("course_viewed", at=at) for _ in range(count)])


def _dead_letters(ch: Client, count: int, at: datetime) -> None:
    insert_records(
        ch, "learner.dlq", [dead_letter(received_at=format_utc(at)) for _ in range(count)]
    )


def _lag(ch: Client, group: str, lag: int, at: datetime, instance: str = "host-1") -> None:
    report = {
        "service": group.removeprefix("learnstream-"),
        "instance": instance,
        "at": format_utc(at),
        "group": group,
        "interval_s": 10,
        "in_per_s": 1.0,
        "out_per_s": 1.0,
        "lag": lag,
        "lag_by_partition": {"learner.views/0": lag},
    }
    insert_records(ch, "pipeline.metrics", [report])


def _qos(ch: Client, edge_node: str, plays: int, rebuffer_share: float, at: datetime) -> None:
    played = 600_000
    rebuffer = round(played * rebuffer_share / (1 - rebuffer_share))
    window = qos_window(
        at, edge_node=edge_node, plays=plays, played_ms=played, rebuffer_ms=rebuffer
    )
    insert_records(ch, "qos.agg.1m", [window])


def _settled(ch: Client, chain: Chain, latencies_s: list[int], at: datetime) -> None:
    receipts, completions = [], []
    for latency in latencies_s:
        enrollment = str(uuid.uuid4())
        receipt = chain.settle(enrollment, "ETH", at, 8, 2, 0)
        receipts.append(receipt)
        completions.append(completed(enrollment, receipt.block_time - timedelta(seconds=latency)))
    feed(ch, "settlement.receipts", receipts)
    feed(ch, "course.completed", completions)


def _dlq_scenario(ch: Client, now: datetime) -> tuple[set[Any], set[Any]]:
    _views(ch, 100, now - timedelta(minutes=2))
    _dead_letters(ch, 1, now - timedelta(minutes=1))  # 1 in 101
    quiet = firing(DLQ_RATE, evaluate(ch, DLQ_RATE))
    _dead_letters(ch, 10, now - timedelta(minutes=1))  # 11 in 111
    return quiet, firing(DLQ_RATE, evaluate(ch, DLQ_RATE))


def _lag_scenario(ch: Client, now: datetime) -> tuple[set[Any], set[Any]]:
    alert = CONSUMER_LAG
    _lag(ch, "learnstream-sink-clickhouse", 50_000, now - timedelta(seconds=60))
    _lag(ch, "learnstream-sink-clickhouse", 120, now - timedelta(seconds=10))  # caught up
    _lag(ch, "learnstream-flink-qos", 4_000, now - timedelta(seconds=10))
    _lag(ch, "learnstream-reco", 90_000, now - timedelta(minutes=20))  # outside the window
    quiet = firing(alert, evaluate(ch, alert))
    _lag(ch, "learnstream-flink-qos", 7_000, now - timedelta(seconds=5), instance="host-2")
    return quiet, firing(alert, evaluate(ch, alert))  # 4000 + 7000 over two instances


def _edge_scenario(ch: Client, now: datetime) -> tuple[set[Any], set[Any]]:
    alert = EDGE_NODE_DEGRADED
    _qos(ch, "mec-par-1", 40, 0.01, now - timedelta(minutes=5))
    _qos(ch, "mec-par-2", 5, 0.5, now - timedelta(minutes=5))  # too few attempts to judge
    _qos(ch, "mec-par-4", 40, 0.2, now - timedelta(minutes=40))  # outside the window
    quiet = firing(alert, evaluate(ch, alert))
    _qos(ch, "mec-par-3", 25, 0.1, now - timedelta(minutes=3))
    return quiet, firing(alert, evaluate(ch, alert))


def _settlement_scenario(ch: Client, now: datetime) -> tuple[set[Any], set[Any]]:
    alert, chain = SETTLEMENT_LATENCY, Chain()
    assert evaluate(ch, alert) == {}, "no settlement in the hour: no data (OK), not NaN"
    _settled(ch, chain, [30, 60, 90], now - timedelta(minutes=10))
    _settled(ch, chain, [7200] * 3, now - timedelta(hours=3))  # slow, but not in the hour
    quiet = firing(alert, evaluate(ch, alert))
    _settled(ch, chain, [3600] * 3, now - timedelta(minutes=5))
    return quiet, firing(alert, evaluate(ch, alert))


def _reconcile_scenario(ch: Client, now: datetime) -> tuple[set[Any], set[Any]]:
    alert = RECONCILE_FAILED
    failed = reconciliation(now - timedelta(hours=2)) | {"ok": False, "missing_on_chain": 1}
    write_reconciliation(ch, failed)
    write_reconciliation(ch, reconciliation(now - timedelta(minutes=30)))  # a later clean run
    quiet = firing(alert, evaluate(ch, alert))
    mismatch = reconciliation(now - timedelta(minutes=1)) | {"amount_mismatches": 2}
    write_reconciliation(ch, mismatch)  # ok was written true, but a count is not zero
    return quiet, firing(alert, evaluate(ch, alert))


SCENARIOS: dict[str, tuple[Callable[..., tuple[set[Any], set[Any]]], set[Any]]] = {
    "learnstream-dlq-rate": (_dlq_scenario, {()}),
    "learnstream-consumer-lag": (
        _lag_scenario,
        {("consumer_group=learnstream-flink-qos",)},
    ),
    "learnstream-edge-node-degraded": (_edge_scenario, {("region=eu-west", "edge_node=mec-par-3")}),
    "learnstream-settlement-latency": (_settlement_scenario, {()}),
    "learnstream-reconcile-failed": (_reconcile_scenario, {()}),
}


@pytest.mark.parametrize("uid", list(SCENARIOS))
def test_alerts_fire_on_bad_data_and_not_on_good(ch: Client, uid: str) -> None:
    assert {a.uid for a in ALERTS} == set(SCENARIOS)
    migrate(ch)
    scenario, expected = SCENARIOS[uid]
    quiet, fired = scenario(ch, datetime.now(UTC))
    assert quiet == set(), f"{uid} fires on good data"
    assert fired == expected


# --- Grafana's read-only ClickHouse user -------------------------------------------------------


def tables_read(sql: str) -> set[str]:
    found = set(FROM.findall(sql)) - set(WITH_NAME.findall(sql))
    for match in MERGE.finditer(sql):
        found |= set(match.group(1).split("|"))
    return found


def every_query() -> list[str]:
    sql = [p.sql for d in DASHBOARDS for p in d.panels]
    sql += [v.sql for d in DASHBOARDS for v in d.variables]
    return sql + [a.sql for a in ALERTS]


def granted() -> tuple[str, list[str]]:
    """(user name, its GRANT queries) from deploy/clickhouse/users.d/grafana.xml."""
    users = ET.parse(GRAFANA_USER_XML).getroot().find("users")
    assert users is not None and len(users) == 1
    [user] = list(users)
    queries = [q.text or "" for q in user.findall("grants/query")]
    return user.tag, queries


def test_alerts_readonly_user_grants_every_table_read_and_not_dlq(ch: Client) -> None:
    migrate(ch)
    existing = set(
        ch.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_columns[0]
    )
    read = set().union(*map(tables_read, every_query()))
    assert read and read <= existing, f"not tables: {read - existing}"
    _, queries = granted()
    tables = set()
    for query in queries:
        match = re.fullmatch(r"GRANT SELECT ON default\.(\w+)", query.strip())
        assert match, f"{query!r}: SELECT on one table of default only"
        tables.add(match.group(1))
    assert "dlq" in existing and "dlq" not in tables
    assert tables <= existing, f"grants on no table: {tables - existing}"
    assert read <= tables, f"the dashboards read tables Grafana may not: {read - tables}"


def test_alerts_readonly_user_loads_in_clickhouse(tmp_path: Path) -> None:
    """The embedded engine (chdb) loads the users.d file as clickhouse-server would: the user
    exists with exactly these grants and a readonly 2 profile. chdb has no login, so reading
    as that user (and being refused dlq) is not tested here; the grants are checked above."""
    (tmp_path / "users.d").mkdir()
    (tmp_path / "users.d" / "grafana.xml").write_text(GRAFANA_USER_XML.read_text("utf-8"))
    (tmp_path / "users.xml").write_text(
        "<clickhouse><profiles><default/></profiles><users><default><password></password>"
        "<profile>default</profile><access_management>1</access_management>"
        "<networks><ip>::/0</ip></networks></default></users><quotas><default/></quotas>"
        "</clickhouse>"
    )
    (tmp_path / "config.xml").write_text(
        "<clickhouse><user_directories><users_xml><path>users.xml</path></users_xml>"
        "</user_directories></clickhouse>"
    )
    user, queries = granted()
    script = f"""
import json, chdb
connection = chdb.connect(":memory:")
cursor = connection.cursor()
cursor.execute("SHOW GRANTS FOR {user}")
grants = [row[0] for row in cursor.fetchall()]
cursor.execute(
    "SELECT inherit_profile FROM system.settings_profile_elements WHERE user_name = '{user}'"
)
[(profile,)] = cursor.fetchall()
cursor.execute(
    "SELECT setting_name, value FROM system.settings_profile_elements "
    f"WHERE profile_name = '{{profile}}' AND setting_name != ''"
)
print(json.dumps({{"grants": grants, "profile": dict(cursor.fetchall())}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # chdb reads ./config.xml
        env={"CLICKHOUSE_GRAFANA_PASSWORD": "secret", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(loaded["grants"]) == sorted(f"{q.strip()} TO {user}" for q in queries)
    assert loaded["profile"].get("readonly") == "2"
