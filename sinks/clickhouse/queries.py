"""The ready analyst queries (`learnstream sql --ready NAME`), shipped with the package.

Each is a file ``ready/NAME.sql``; docs/analytics.md shows every one of them with the question it
answers, and a test holds the doc's SQL blocks equal to these files.
"""

from __future__ import annotations

from importlib import resources

READY = resources.files("sinks.clickhouse") / "ready"


def ready_queries() -> dict[str, str]:
    """{name: SQL} of every ready query."""
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8").strip()
        for entry in sorted(READY.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    }


def ready_query(name: str) -> str:
    queries = ready_queries()
    if name not in queries:
        raise KeyError(f"no ready query {name!r}; known: {', '.join(sorted(queries))}")
    return queries[name]
