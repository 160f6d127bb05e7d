"""The ready analyst queries of docs/analytics.md, by name (`learnstream sql --ready NAME`)."""

from __future__ import annotations

import re
from pathlib import Path

from learnstream.settings import PROJECT_ROOT

ANALYTICS_DOC = PROJECT_ROOT / "docs" / "analytics.md"
_BLOCK = re.compile(r"<!-- query: ([a-z0-9_]+) -->\s*```sql\n(.*?)```", re.DOTALL)


def ready_queries(doc: Path = ANALYTICS_DOC) -> dict[str, str]:
    """{name: SQL} of every named query block in the analytics doc."""
    return {name: sql.strip() for name, sql in _BLOCK.findall(doc.read_text(encoding="utf-8"))}


def ready_query(name: str) -> str:
    queries = ready_queries()
    if name not in queries:
        raise KeyError(f"no ready query {name!r}; known: {', '.join(sorted(queries))}")
    return queries[name]
