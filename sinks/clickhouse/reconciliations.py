"""The ``reconciliations`` table: one row per run of ``learnstream settlement reconcile``.

The reconcile tool compares the chain's logs with what the stream decided and records each run
here (migration ``0005_settlement.sql``; docs/analytics.md). Values go in through
clickhouse-connect's typed insert, and the reader binds its limit: no value is ever formatted
into SQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from clickhouse_connect.driver.client import Client

TABLE = "reconciliations"

COUNTS = (
    "matched",
    "missing_on_chain",
    "missing_off_chain",
    "amount_mismatches",
    "metric_mismatches",
    "reorged_blocks",
)
COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "period_from",
    "period_to",
    "chain_id",
    "contract",
    *COUNTS,
    "ok",
    "details",
)


RECENT = """
SELECT run_id, started_at, finished_at, period_from, period_to, chain_id, contract, matched,
    missing_on_chain, missing_off_chain, amount_mismatches, metric_mismatches, reorged_blocks, ok,
    details
FROM reconciliations
ORDER BY started_at DESC, run_id
LIMIT {limit:UInt32}
"""


class ReconciliationRun(TypedDict):
    """One run as the reconcile tool reports it. ``details`` is the list (or object) of the
    discrepancies, stored as JSON; a str is taken as JSON already."""

    run_id: uuid.UUID | str
    started_at: datetime
    finished_at: datetime
    period_from: NotRequired[datetime | None]
    period_to: NotRequired[datetime | None]
    chain_id: int
    contract: str
    matched: int
    missing_on_chain: int
    missing_off_chain: int
    amount_mismatches: int
    metric_mismatches: int
    reorged_blocks: int
    ok: bool
    details: NotRequired[Any]


def _time(run: dict[str, Any], name: str, optional: bool = False) -> datetime | None:
    value = run.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"reconciliation {name} must be a tz-aware datetime, not {value!r}")
    return value


def _count(run: dict[str, Any], name: str, bits: int = 64) -> int:
    value = run[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise ValueError(f"reconciliation {name} must be an int in [0, 2^{bits}), not {value!r}")
    return value


def row(run: ReconciliationRun | dict[str, Any]) -> list[object]:
    """The values of one ``reconciliations`` row, in :data:`COLUMNS` order, checked.

    Raises ``KeyError`` for a missing field and ``ValueError`` for a value of the wrong type.
    """
    values = dict(run)
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown reconciliation fields {unknown}; known: {list(COLUMNS)}")
    if not isinstance(values["ok"], bool):
        raise ValueError(f"reconciliation ok must be a bool, not {values['ok']!r}")
    details = values.get("details", [])
    if not isinstance(details, str):
        details = json.dumps(details, separators=(",", ":"), sort_keys=True, default=str)
    else:
        json.loads(details)  # a str must already be JSON
    return [
        uuid.UUID(str(values["run_id"])),
        _time(values, "started_at"),
        _time(values, "finished_at"),
        _time(values, "period_from", optional=True),
        _time(values, "period_to", optional=True),
        _count(values, "chain_id"),
        str(values["contract"]),
        *(_count(values, name) for name in COUNTS),
        values["ok"],
        details,
    ]


def write_reconciliation(client: Client, run: ReconciliationRun | dict[str, Any]) -> None:
    """Insert one run into ``reconciliations``."""
    client.insert(TABLE, [row(run)], column_names=list(COLUMNS))


def recent_reconciliations(client: Client, limit: int = 20) -> list[dict[str, Any]]:
    """The latest ``limit`` runs, newest first, with ``details`` parsed back from JSON."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**32:
        raise ValueError(f"limit must be a positive int, not {limit!r}")
    result = client.query(RECENT, parameters={"limit": limit})
    runs = list(result.named_results())
    for run in runs:
        run["details"] = json.loads(run["details"]) if run["details"] else None
    return runs
