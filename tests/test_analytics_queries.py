"""Every ready query in docs/analytics.md runs against a migrated database with data in it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate
from tests.analytics_seed import seed_analytics
from tests.conftest import ROOT

DOC = ROOT / "docs" / "analytics.md"
QUERY = re.compile(r"^<!-- query: ([a-z0-9_]+) -->\n```sql\n(.*?)\n```$", re.M | re.S)
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")

# Example values for the parameters the queries declare, by name.
EXAMPLE_VALUES: dict[str, Any] = {
    "hours": 6,
    "days": 60,
    "minutes": 60,
    "inactive_days": 14,
    "limit": 20,
    "min_plays": 1,
    "min_attempts": 1,
    "min_samples": 1,
    "course_id": "",
    "room_id": "",
}


def doc_queries() -> list[tuple[str, str]]:
    return QUERY.findall(DOC.read_text(encoding="utf-8"))


def test_analytics_doc_has_at_least_12_named_queries_and_no_unnamed_sql() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = [name for name, _ in doc_queries()]
    assert len(names) >= 12
    assert len(names) == len(set(names)), "query names must be unique"
    assert text.count("```sql") == len(names), "every sql block needs a <!-- query: … --> line"


def test_analytics_doc_shows_exactly_the_packaged_ready_queries() -> None:
    """`learnstream sql --ready` runs the queries shipped in sinks/clickhouse/ready/; the doc
    shows each of them, to the character."""
    from sinks.clickhouse.queries import ready_queries

    assert dict(doc_queries()) == ready_queries()


def test_analytics_queries_never_read_raw_dead_letters() -> None:
    for name, sql in doc_queries():
        assert not re.search(r"\bdlq\b(?!_)", sql), f"{name} reads the dlq table"
        assert "learner_id" not in sql, name


@pytest.fixture(scope="module")
def queries() -> list[tuple[str, str]]:
    return doc_queries()


def test_analytics_every_doc_query_runs_against_a_migrated_database(
    ch: Client, queries: list[tuple[str, str]]
) -> None:
    migrate(ch)
    seed_analytics(ch)
    empty = []
    for name, sql in queries:
        declared = {param: kind for param, kind in PARAM.findall(sql)}
        unknown = sorted(set(declared) - set(EXAMPLE_VALUES))
        assert not unknown, f"{name}: no example value for parameters {unknown}"
        result = ch.query(sql, parameters={p: EXAMPLE_VALUES[p] for p in declared})
        if not result.result_rows:
            empty.append(name)
    # the seed data touches every table, so every question has an answer
    assert empty == []


def test_analytics_at_risk_learners_finds_the_inactive_learner_below_the_median(
    ch: Client, queries: list[tuple[str, str]]
) -> None:
    migrate(ch)
    seed_analytics(ch)
    sql = dict(queries)["at_risk_learners"]
    rows = ch.query(sql, parameters={"inactive_days": 14, "limit": 10}).named_results()
    [row] = list(rows)
    assert row["progress"] == pytest.approx(0.025)
    assert row["course_median"] == pytest.approx(0.25)
    assert row["days_inactive"] == 30
    funnel = ch.query(dict(queries)["completion_funnel"], parameters={"days": 60}).first_row
    # viewed 3, enrolled 3, watched 3 (all played video-1), completed: learner-1 only
    assert funnel[1:5] == (3, 3, 3, 1)
