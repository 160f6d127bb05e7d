"""Fuzzing the running collector from its own OpenAPI document: no input gets a 5xx."""

from __future__ import annotations

import collections
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.collector_fixtures import SERVER_KEY, Collector

pytestmark = [pytest.mark.slow]

# LEARNSTREAM_FUZZ_SCALE=4 runs four times as many (for a longer hunt than CI's).
SCALE = int(os.environ.get("LEARNSTREAM_FUZZ_SCALE", "1"))
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 250, schemathesis.GenerationMode.NEGATIVE: 150}


def test_collector_fuzzed_from_its_openapi_never_answers_5xx(collector: Collector) -> None:
    schema = schemathesis.openapi.from_url(f"{collector.url}/openapi.json")
    statuses: collections.Counter[int] = collections.Counter()
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/events",
        "POST /v1/xapi/statements",
        "POST /v1/cmcd",
        "GET /healthz",
    }

    # Operations without inputs (the GETs) have no negative cases.
    plan = [
        (op, mode, n)
        for op in operations
        for mode, n in EXAMPLES.items()
        if op.method.upper() == "POST" or mode is schemathesis.GenerationMode.POSITIVE
    ]
    for operation, mode, examples in plan:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=examples * SCALE,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(
                base_url=collector.url, headers={"X-API-Key": SERVER_KEY}, timeout=60
            )
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
                )

        exercise()

    total = sum(statuses.values())
    assert total >= 1000, statuses
    assert server_errors == [], server_errors[:5]
    # the generated inputs reached the interesting outcomes, not only one of them
    assert statuses[200] > 0 and (statuses[422] + statuses[207]) > 0, statuses
