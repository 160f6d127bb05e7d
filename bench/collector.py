"""Collector throughput (batches of 100) side by side with the raw producer on the same events.

Both sides run in processes of their own against a Kafka broker this benchmark starts (and
stops) on free ports, so nothing else on the machine is touched. Rounds alternate
raw, collector, raw, collector, … and the medians are compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import ROOT
from bench.workload import write_batches
from learnstream.stack.collector import start_collector
from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack

BENCH_KEY = "lsk_bench"


@dataclass
class CollectorBench:
    events: int
    batch: int
    concurrency: int
    raw_eps: list[float] = field(default_factory=list)
    collector_eps: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    profile: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.collector_eps) / statistics.median(self.raw_eps)

    def render(self) -> str:
        raw, col = statistics.median(self.raw_eps), statistics.median(self.collector_eps)
        lines = [
            f"collector vs raw producer: {self.events} events, batches of {self.batch}, "
            f"{self.concurrency} concurrent requests, {len(self.raw_eps)} rounds each",
            f"  raw producer (baseline)  {raw:>10,.0f} events/s   rounds: "
            + ", ".join(f"{x:,.0f}" for x in self.raw_eps),
            f"  collector (HTTP)         {col:>10,.0f} events/s   rounds: "
            + ", ".join(f"{x:,.0f}" for x in self.collector_eps),
            f"  ratio collector/raw      {self.ratio:>10.3f}",
            f"  HTTP statuses            {self.statuses}",
        ]
        if self.profile:
            lines += ["", "collector profile (own time, top functions):", self.profile]
        return "\n".join(lines)


def _run_json(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=900
    )
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[2]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _profile_summary(path: Path, top: int = 25) -> str:
    import io
    import pstats

    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    return "\n".join(line for line in buffer.getvalue().splitlines() if line.strip())


def run(
    events: int = 100_000,
    batch: int = 100,
    rounds: int = 3,
    concurrency: int = 16,
    profile: bool = False,
) -> CollectorBench:
    result = CollectorBench(events, batch, concurrency)
    with (
        tempfile.TemporaryDirectory(prefix="learnstream-bench-") as tmp_name,
        throwaway_stack(Path(tmp_name) / "stack", ["kafka"]) as stack,
    ):
        tmp = Path(tmp_name)
        workload, warmup = tmp / "events.jsonl", tmp / "warmup.jsonl"
        write_batches(workload, events, batch)
        write_batches(warmup, 200 * batch, batch, seed=1)
        bootstrap = stack.settings.kafka.bootstrap_servers
        port = free_port()
        profile_to = tmp / "collector.prof" if profile else None
        collector = start_collector(
            port,
            {"bench": BENCH_KEY},
            tmp / "collector.log",
            {"LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap},
            ("-m", "cProfile", "-o", str(profile_to)) if profile_to else (),
        )
        url = f"http://127.0.0.1:{port}/v1/events"
        env = dict(os.environ)
        loadgen = [sys.executable, "-m", "bench.loadgen", url, BENCH_KEY]
        raw = [sys.executable, "-m", "bench.rawproduce", bootstrap]
        try:
            _run_json([*loadgen, str(warmup), str(concurrency)], env)
            _run_json([*raw, str(warmup)], env)
            for _ in range(rounds):
                r = _run_json([*raw, str(workload)], env)
                result.raw_eps.append(float(r["events"]) / float(r["seconds"]))  # type: ignore[arg-type]
                c = _run_json([*loadgen, str(workload), str(concurrency)], env)
                result.collector_eps.append(float(c["events"]) / float(c["seconds"]))  # type: ignore[arg-type]
                for status, n in c["statuses"].items():  # type: ignore[attr-defined]
                    result.statuses[status] = result.statuses.get(status, 0) + n
        finally:
            collector.send_signal(2)  # SIGINT: uvicorn shuts down cleanly, cProfile writes
            collector.wait(timeout=60)
        if profile_to is not None and profile_to.exists():
            result.profile = _profile_summary(profile_to)
    return result
