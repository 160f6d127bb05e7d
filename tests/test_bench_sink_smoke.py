"""The sink benchmark, tiny: it runs end to end on a stack of its own and every row arrives."""

from __future__ import annotations

import math

import pytest

from bench import sink as sink_bench
from bench.sink_arrow import arrow_type


@pytest.mark.slow
def test_bench_sink_tiny_run_reports_every_figure_and_loses_no_row() -> None:
    result = sink_bench.run(events=3000, rounds=1, latency_rate=500, latency_seconds=3)

    assert result.events >= 2500  # the simulation aims at about 3000 events
    # every row arrived, on both sides and in the latency phase
    assert result.arrow_rows == [result.events]
    assert result.sink_rows == [result.events]
    assert result.latency_backlog_rows == result.events
    assert result.problems() == []
    # one figure per round, each side; a tiny round may land within one count (NaN)
    assert len(result.arrow_rps) == len(result.sink_rps) == 1
    assert all(math.isnan(x) or x > 0 for x in result.arrow_rps + result.sink_rps)
    assert result.arrow_convert_s[0] > 0 and result.arrow_insert_s[0] > 0
    # latency: all 1,500 produced rows seen, each with a plausible delay
    assert result.latency_produced == 1500
    assert len(result.latency_ms) == 1500
    assert 0 < result.latency_s(0.5) <= result.latency_s(0.99) <= result.latency_s(1) < 30
    assert 300 < result.produce_rate < 700

    text = result.render()
    needles = ["Arrow inserts (baseline)", "sink, Kafka → ClickHouse", "ratio sink/Arrow", "p50",
               "p99", "target ≥ 100,000 rows/s", "target p99 ≤ 3 s", "±100 ms"]  # fmt: skip
    for needle in needles:
        assert needle in text
    assert "!" not in text


def test_arrow_types_cover_the_sink_tables() -> None:
    import pyarrow as pa

    assert arrow_type("LowCardinality(String)") == pa.string()
    assert arrow_type("Nullable(DateTime64(3, 'UTC'))") == pa.timestamp("ms", tz="UTC")
    assert arrow_type("Array(Tuple(Float64, Float64))") == pa.list_(
        pa.struct([("1", pa.float64()), ("2", pa.float64())])
    )
    assert arrow_type("Array(Tuple(quiz_id String, weight Float64))") == pa.list_(
        pa.struct([("quiz_id", pa.string()), ("weight", pa.float64())])
    )
    assert arrow_type("UInt256") == pa.string()
    with pytest.raises(ValueError, match="no Arrow type"):
        arrow_type("AggregateFunction(uniq, String)")
