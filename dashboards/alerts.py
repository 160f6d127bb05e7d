"""Alert rules as code: one :class:`Alert` per rule, written to Grafana's file provisioning.

Each rule is a query for the ``grafana-clickhouse-datasource`` plugin that returns one numeric
value, or one row per series (String columns become the alert instance's labels, as Grafana does
with tabular results), then two server-side expressions: ``reduce`` (last) and ``threshold``.

Grafana runs alert queries on its backend, where ``$__from``/``$__to`` are not filled in; the
queries use the plugin's macros (``$__timeFilter(col)``, ``$__fromTime``, ``$__toTime``), which
the plugin expands from the rule's ``relativeTimeRange`` (``window_s`` seconds back from now).
Every query returns a value on every evaluation when there is something to judge (0 rather than
NULL), so that "no data" means no input at all; ``no_data`` says what that means per rule.

:func:`render` writes the provisioning file (``apiVersion: 1``, one group, the rules in
definition order), deterministic so that `learnstream dashboards build --check` can compare it.
Annotations and titles carry no ``$``: Grafana expands environment variables in them when it
reads the file (the query models are read raw, so the macros survive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from dashboards.definitions import DASHBOARDS
from dashboards.errors import DashboardError
from dashboards.grafana import DATASOURCE, PLUGIN_VERSION, QUERY_TYPES
from dashboards.panels import FORMAT_TABLE, _sql

Comparison = Literal["gt", "lt"]
Severity = Literal["warning", "critical"]
NoDataState = Literal["NoData", "Alerting", "OK"]

ORG_ID = 1
GROUP = "learnstream"
FOLDER = "learnstream"  # the dashboards' folder (dashboards/provisioning/dashboards)
INTERVAL = "1m"
EXPRESSIONS = "__expr__"
QUERY, REDUCE, THRESHOLD = "A", "B", "C"
_UID = re.compile(r"^[a-z0-9-]{1,40}$")
_DURATION = re.compile(r"^\d+[smh]$")


@dataclass(frozen=True)
class Alert:
    """One alert rule. ``sql`` returns one numeric column (and optionally String label
    columns); it fires when that value is ``comparison`` (``gt``: above, ``lt``: below)
    ``threshold`` for ``for_`` (a Grafana duration). ``window_s`` is how far back the query
    looks (its ``relativeTimeRange``); ``panel`` the key of the dashboard panel that shows the
    same figure (the alert links to it); ``summary`` one line, ``description`` what ops should
    do."""

    uid: str
    title: str
    sql: str
    threshold: float
    comparison: Comparison
    for_: str
    window_s: int
    severity: Severity
    summary: str
    description: str
    panel: str
    no_data: NoDataState = "OK"

    def __post_init__(self) -> None:
        if not _UID.match(self.uid):
            raise DashboardError(f"alert uid {self.uid!r}: lowercase, digits and - only")
        if self.comparison not in ("gt", "lt") or not _DURATION.match(self.for_):
            raise DashboardError(f"{self.uid}: comparison gt|lt and a duration like 5m please")
        if self.window_s <= 0:
            raise DashboardError(f"{self.uid}: the query needs a window of seconds back")
        for text in (self.title, self.summary, self.description):
            if not text.strip() or "\n" in text or "$" in text:
                raise DashboardError(f"{self.uid}: one line of text without $ please: {text!r}")
        if "$__from" in self.sql.replace("$__fromTime", "") or "$__to" in self.sql.replace(
            "$__toTime", ""
        ):
            raise DashboardError(f"{self.uid}: $__from/$__to are empty in alerts, use macros")
        object.__setattr__(self, "sql", _sql(self.sql))


DLQ_RATE = Alert(
    uid="learnstream-dlq-rate",
    title="Dead-letter rate above 5 %",
    sql="""
    SELECT if(dead + stored = 0, 0, dead / (dead + stored)) AS dead_letter_share
    FROM
    (
        SELECT
            (
                SELECT countMerge(records)
                FROM dlq_reasons_hourly
                WHERE hour >= toStartOfHour($__fromTime) AND hour <= $__toTime
            ) AS dead,
            (
                SELECT count()
                FROM merge(
                    currentDatabase(),
                    '^(views|playback|playback_qos|quiz_results|enrollments|live_qos|immersive_qos)$'
                )
                WHERE received_at >= toStartOfHour($__fromTime) AND received_at <= $__toTime
            ) AS stored
    )
    """,
    threshold=0.05,
    comparison="gt",
    for_="5m",
    window_s=900,
    severity="critical",
    summary="More than 5 % of the input of the last 15 minutes went to the dead-letter queue.",
    description="Dead letters are counted by whole hours, so the share covers the hours the "
    "last 15 minutes touch, against the events stored over the same span. Open the Pipeline "
    "ops dashboard (Top dead-letter reasons) for the reason and endpoint, then `learnstream "
    "dlq` for the records: a client release or a schema change usually explains it; fix the "
    "sender or the schema, then replay.",
    panel="ops.dlq_share",
)

CONSUMER_LAG = Alert(
    uid="learnstream-consumer-lag",
    title="Consumer group lag above 10000 records",
    sql="""
    SELECT consumer_group, toFloat64(sum(instance_lag)) AS lag
    FROM
    (
        SELECT consumer_group, instance, argMax(lag, at) AS instance_lag
        FROM pipeline_metrics
        WHERE _topic = 'pipeline.metrics' AND consumer_group != '' AND lag IS NOT NULL
            AND $__timeFilter(at)
        GROUP BY consumer_group, instance
    )
    GROUP BY consumer_group
    """,
    threshold=10_000,
    comparison="gt",
    for_="10m",
    window_s=300,
    severity="warning",
    summary="A consumer group is more than 10000 records behind its topics.",
    description="Each group's lag is the sum over its instances of their latest report of "
    "the last 5 minutes (Flink jobs through the lag monitor). Check the Pipeline ops "
    "dashboard: in above out in Service throughput means the group cannot keep up (scale it "
    "or look for a slow sink); no reports means it is down (`learnstream ps`, its logs).",
    panel="ops.consumer_lag_now",
    no_data="NoData",
)

EDGE_NODE_DEGRADED = Alert(
    uid="learnstream-edge-node-degraded",
    title="Edge node rebuffering above 3 %",
    sql="""
    SELECT
        region,
        edge_node,
        sum(rebuffer_ms) / (sum(played_ms) + sum(rebuffer_ms)) AS rebuffering_ratio
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
    GROUP BY region, edge_node
    HAVING sum(plays) >= 20 AND sum(played_ms) + sum(rebuffer_ms) > 0
    """,
    threshold=0.03,
    comparison="gt",
    for_="10m",
    window_s=900,
    severity="warning",
    summary="An edge node stalled more than 3 % of viewing time over the last 15 minutes.",
    description="Rebuffering ratio, rebuffer / (played + rebuffer), of one edge node's "
    "one-minute QoS windows, counted only with at least 20 playback attempts. Open Playback "
    "QoS (Worst edge nodes): one node alone points at the node or its uplink (drain it or "
    "move its traffic), every node of a region at the origin or the network there.",
    panel="playback.worst_edge_nodes",
)

SETTLEMENT_LATENCY = Alert(
    uid="learnstream-settlement-latency",
    title="Settlement latency p95 above 15 minutes",
    sql="""
    SELECT toFloat64(quantileExact(0.95)(latency_ms)) / 1000 AS p95_s
    FROM
    (
        SELECT dateDiff('millisecond', c.received_at, s.block_time) AS latency_ms
        FROM
        (
            SELECT enrollment_key, block_time
            FROM settlements FINAL
            WHERE kind = 'settled' AND counted AND metric = 'completion'
                AND $__timeFilter(block_time)
        ) AS s
        INNER JOIN
        (
            SELECT enrollment_key, received_at FROM course_completed FINAL
        ) AS c ON c.enrollment_key = s.enrollment_key
    )
    HAVING count() > 0
    """,
    threshold=900,
    comparison="gt",
    for_="15m",
    window_s=3600,
    severity="warning",
    summary="Completions settled in the last hour took more than 15 minutes at the 95th "
    "percentile.",
    description="Seconds from a completion's received_at to the block time of its settlement "
    "(counted completions only), p95 of the settlements of the last hour. Look at the Finance "
    "dashboard and `learnstream ps`: a lagging completion job or settlement sink, a stuck "
    "transaction (nonce, gas) or a slow chain.",
    panel="finance.settlement_latency",
)

RECONCILE_FAILED = Alert(
    uid="learnstream-reconcile-failed",
    title="Latest reconciliation found discrepancies",
    sql="""
    SELECT toFloat64(
        NOT ok OR missing_on_chain + missing_off_chain + amount_mismatches + metric_mismatches > 0
    ) AS failed
    FROM reconciliations
    ORDER BY started_at DESC, run_id
    LIMIT 1
    """,
    threshold=0,
    comparison="gt",
    for_="0s",
    window_s=600,
    severity="critical",
    summary="The latest run of settlement reconcile is not clean: chain and stream disagree.",
    description="The last row of reconciliations (whatever its age) has ok false or a missing "
    "or mismatched count. Run `learnstream settlement reconcile` to see the discrepancies "
    "(details column) and read docs/settlement.md on reorganisations before any manual "
    "action; it clears when a later run is clean.",
    panel="finance.latest_reconciliation",
)

ALERTS: tuple[Alert, ...] = (
    DLQ_RATE,
    CONSUMER_LAG,
    EDGE_NODE_DEGRADED,
    SETTLEMENT_LATENCY,
    RECONCILE_FAILED,
)


def panel_link(key: str) -> tuple[str, int]:
    """(dashboard uid, panel id) of the panel ``key``: ids are positions, as in the JSON."""
    for dashboard in DASHBOARDS:
        for panel_id, panel in enumerate(dashboard.panels, start=1):
            if panel.key == key:
                return dashboard.uid, panel_id
    raise DashboardError(f"no dashboard has a panel {key!r}")


def _expression(ref_id: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": EXPRESSIONS,
        "model": {"datasource": {"type": EXPRESSIONS, "uid": EXPRESSIONS}, "refId": ref_id} | model,
    }


def rule(alert: Alert) -> dict[str, Any]:
    """The provisioning form of one rule: the query, reduce (last) and the threshold."""
    dashboard_uid, panel_id = panel_link(alert.panel)
    query = {
        "refId": QUERY,
        "relativeTimeRange": {"from": alert.window_s, "to": 0},
        "datasourceUid": DATASOURCE["uid"],
        "model": {
            "datasource": dict(DATASOURCE),
            "editorType": "sql",
            "format": FORMAT_TABLE,
            "intervalMs": 60_000,
            "maxDataPoints": 43_200,
            "pluginVersion": PLUGIN_VERSION,
            "queryType": QUERY_TYPES[FORMAT_TABLE],
            "rawSql": alert.sql,
            "refId": QUERY,
        },
    }
    reduce = _expression(REDUCE, {"type": "reduce", "expression": QUERY, "reducer": "last"})
    condition = {
        "evaluator": {"params": [alert.threshold], "type": alert.comparison},
        "operator": {"type": "and"},
        "query": {"params": [THRESHOLD]},
        "reducer": {"params": [], "type": "last"},
        "type": "query",
    }
    threshold = _expression(
        THRESHOLD, {"type": "threshold", "expression": REDUCE, "conditions": [condition]}
    )
    return {
        "uid": alert.uid,
        "title": alert.title,
        "condition": THRESHOLD,
        "data": [query, reduce, threshold],
        "dashboardUid": dashboard_uid,
        "panelId": panel_id,
        "noDataState": alert.no_data,
        "execErrState": "Error",
        "for": alert.for_,
        "labels": {"service": "learnstream", "severity": alert.severity},
        "annotations": {"summary": alert.summary, "description": alert.description},
        "isPaused": False,
    }


def provisioning(alerts: tuple[Alert, ...] = ALERTS) -> dict[str, Any]:
    """The whole provisioning document."""
    uids = [a.uid for a in alerts]
    if len(uids) != len(set(uids)):
        raise DashboardError("alert uids must be unique")
    group = {
        "orgId": ORG_ID,
        "name": GROUP,
        "folder": FOLDER,
        "interval": INTERVAL,
        "rules": [rule(a) for a in alerts],
    }
    return {"apiVersion": 1, "groups": [group]}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the SQL) as literal blocks, so the file reads like the definitions."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = (
    "# Generated by `learnstream dashboards build` from dashboards/alerts.py; edit that.\n"
    "# Grafana alert rules (file provisioning), mounted at /etc/grafana/provisioning/alerting.\n"
)


def render(alerts: tuple[Alert, ...] = ALERTS) -> str:
    """The file's text: keys in the order above, literal SQL blocks, a final newline."""
    body = yaml.dump(
        provisioning(alerts),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return HEADER + body
