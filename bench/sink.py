"""The ClickHouse sink's throughput side by side with direct Arrow inserts, and its latency.

Everything runs against a Kafka broker and an embedded ClickHouse server that this benchmark
starts (and stops) on free ports under a temporary folder, so nothing else on the machine is
touched. Simulated events are produced once to the event topics; then, in alternating rounds,
each into a fresh ClickHouse database:

- **Arrow (baseline):** ``python -m bench.sink_arrow`` reads the records, converts
  them with the sink's own ``tables.convert`` (not timed, reported apart) and inserts one Arrow
  table per ClickHouse table in chunks of 50,000 rows.
- **Sink:** ``python -m learnstream.cli sinks clickhouse --idle-exit 3`` with a fresh consumer
  group, batches of at most 50,000 rows or 1 s.

Both are timed the same way, from here: the rows of the raw tables are counted every 0.2 s and
the rate is taken from the first count that shows rows to the first that shows all of them.

**Latency:** a sink runs in steady state (it first catches up on the events above), while a
producer process (``python -m bench.paced``) writes new events at a fixed rate, stamping
``received_at`` when it produces each. Every 100 ms this process selects the rows beyond the
highest ``_offset`` it has seen per (table, partition) and records ``seen - received_at`` for
each.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from bench import ROOT
from learnstream.stack.testing import throwaway_stack
from schemas import to_wire
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import RAW_TABLES, migrate
from streams.simulate import SimConfig, SimEvent, Simulation, run_simulation, sim_config_from_args

BATCH_MAX_ROWS = 50_000
BATCH_MAX_S = 1.0
COUNT_PERIOD_S = 0.2
LATENCY_PERIOD_S = 0.1
TARGET_ROWS_PER_S = 100_000
TARGET_P99_S = 3.0
TEMPLATE_EVENTS = 20_000
DRAIN_QUIET_S = 5.0  # after the producer ended: stop when no new row came for this long
DRAIN_MAX_S = 30.0


@dataclass
class SinkBench:
    events: int  # valid events produced once to the event topics: the rows of each round
    rounds: int
    latency_rate: int
    latency_seconds: int
    arrow_rps: list[float] = field(default_factory=list)
    sink_rps: list[float] = field(default_factory=list)
    arrow_rows: list[int] = field(default_factory=list)  # rows that arrived, per round
    sink_rows: list[int] = field(default_factory=list)
    arrow_convert_s: list[float] = field(default_factory=list)  # rows.convert, per round
    arrow_build_s: list[float] = field(default_factory=list)  # building the Arrow tables
    arrow_insert_s: list[float] = field(default_factory=list)  # first insert start to last end
    sink_seconds: list[float] = field(default_factory=list)  # the sink process, start to exit
    sink_said: list[str] = field(default_factory=list)  # its last line: "stopped: N rows in …"
    latency_ms: list[float] = field(default_factory=list)  # seen - received_at, per row
    latency_received_ms: list[int] = field(default_factory=list)  # received_at, same order
    latency_produced: int = 0
    latency_produce_s: float = 0.0
    latency_backlog_s: float = 0.0  # the latency sink's catch-up on the events above
    latency_backlog_rows: int = 0
    latency_stored: int = 0  # rows the producer's events became in ClickHouse (seen or not)
    latency_to_insert_s: tuple[float, float] = (math.nan, math.nan)  # p50, p99 to _inserted_at
    profile: str = ""

    @property
    def ratio(self) -> float:
        return _median(self.sink_rps) / _median(self.arrow_rps)

    @property
    def produce_rate(self) -> float:
        return self.latency_produced / self.latency_produce_s if self.latency_produce_s else 0.0

    def latency_s(self, q: float) -> float:
        """The ``q`` quantile (nearest rank) of the latencies, in seconds."""
        values = sorted(self.latency_ms)
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] / 1000

    def problems(self) -> list[str]:
        """Rows that did not arrive: the figures above them cover only the rows that did."""
        out = []
        for i, n in enumerate(self.arrow_rows):
            if n != self.events:
                out.append(f"Arrow round {i + 1}: {n:,} of {self.events:,} rows arrived")
        for i, n in enumerate(self.sink_rows):
            if n != self.events:
                said = self.sink_said[i] if i < len(self.sink_said) else ""
                out.append(
                    f"sink round {i + 1}: {n:,} of {self.events:,} rows arrived; the sink said "
                    f"{said!r} (its count includes course_catalog and pipeline_metrics rows)"
                )
        if self.latency_backlog_rows != self.events:
            out.append(
                f"latency sink: {self.latency_backlog_rows:,} of {self.events:,} backlog rows "
                "arrived"
            )
        if len(self.latency_ms) != self.latency_produced:
            out.append(
                f"latency: {len(self.latency_ms):,} of {self.latency_produced:,} rows seen, "
                f"{self.latency_stored:,} stored"
            )
        return out

    def latency_trend_s(self, parts: int = 4) -> list[float]:
        """The median latency of the rows received in each ``parts``-th of the run: rising
        medians mean the sink fell behind the producer."""
        if not self.latency_received_ms:
            return []
        start, end = min(self.latency_received_ms), max(self.latency_received_ms)
        buckets: list[list[float]] = [[] for _ in range(parts)]
        for received, latency in zip(self.latency_received_ms, self.latency_ms, strict=True):
            k = min(parts - 1, int(parts * (received - start) / (end - start + 1)))
            buckets[k].append(latency)
        return [statistics.median(b) / 1000 if b else math.nan for b in buckets]

    def render(self) -> str:
        arrow, sink = _median(self.arrow_rps), _median(self.sink_rps)
        convert = statistics.fmean(self.arrow_convert_s) if self.arrow_convert_s else math.nan
        build = statistics.fmean(self.arrow_build_s) if self.arrow_build_s else math.nan
        insert = statistics.fmean(self.arrow_insert_s) if self.arrow_insert_s else math.nan
        p99 = self.latency_s(0.99)
        n = len(self.sink_rps)
        trend = self.latency_trend_s()
        rising = len(trend) > 1 and trend[-1] > 2 * trend[0] + BATCH_MAX_S
        lines = [
            f"ClickHouse sink vs direct Arrow inserts: {self.events:,} simulated events "
            f"(= rows of the raw tables), {n} round{'s' * (n != 1)} each",
            f"  Arrow inserts (baseline)   {_rate(arrow)} rows/s   rounds: "
            + _list(self.arrow_rps),
            f"  sink, Kafka → ClickHouse   {_rate(sink)} rows/s   rounds: {_list(self.sink_rps)}"
            f"   target ≥ {TARGET_ROWS_PER_S:,} rows/s: {_verdict(sink >= TARGET_ROWS_PER_S)}",
            f"  ratio sink/Arrow           {_ratio(self.ratio)}",
            f"  rows arrived per round     Arrow {_list(self.arrow_rows)}; "
            f"sink {_list(self.sink_rows)} (of {self.events:,})",
            f"  not timed, Arrow side      rows.convert {convert:.2f} s "
            f"({_per_s(self.events, convert)} rows/s on one core), "
            f"building the Arrow tables {build:.2f} s; its inserts took {insert:.2f} s in all",
            f"  (rows counted every {COUNT_PERIOD_S:.1f} s, rate from the first count with rows "
            f"to the first with all; sink batches ≤ {BATCH_MAX_ROWS:,} rows or {BATCH_MAX_S:g} s, "
            f"Arrow chunks of {BATCH_MAX_ROWS:,} rows)",
            "",
            f"received_at → queryable: {self.latency_rate:,} events/s asked for "
            f"{self.latency_seconds} s, {self.produce_rate:,.0f} events/s achieved, "
            f"{len(self.latency_ms):,} of {self.latency_produced:,} rows seen",
            f"  p50 {self.latency_s(0.5):.2f} s   p99 {p99:.2f} s   max {self.latency_s(1):.2f} s"
            f"   target p99 ≤ {TARGET_P99_S:g} s at 10,000 events/s: "
            f"{_verdict(p99 <= TARGET_P99_S)}",
            f"  of which to the insert     p50 {self.latency_to_insert_s[0]:.2f} s   "
            f"p99 {self.latency_to_insert_s[1]:.2f} s   (received_at → _inserted_at: Kafka and "
            "the sink's batch)",
            "  p50 by quarter of the run  "
            + ", ".join(f"{x:.2f} s" for x in trend)
            + ("   (rising: the sink fell behind the producer)" if rising else ""),
            f"  (new rows polled every {LATENCY_PERIOD_S * 1000:.0f} ms, so each figure is "
            f"±{LATENCY_PERIOD_S * 1000:.0f} ms; the sink had first caught up on the events "
            f"above, in {self.latency_backlog_s:.1f} s)",
        ]
        lines += [f"! {problem}" for problem in self.problems()]
        if self.profile:
            lines += ["", "sink profile, one extra round (own time, top functions):", self.profile]
        return "\n".join(lines)


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def _list(values: list[float] | list[int], sep: str = ", ") -> str:
    return sep.join(f"{x:,.0f}" if math.isfinite(x) else "n/a" for x in values)


def _ratio(value: float) -> str:
    return f"{value:>10.3f}" if math.isfinite(value) else f"{'n/a':>10}"


def _rate(value: float) -> str:
    return f"{value:>10,.0f}" if math.isfinite(value) else f"{'n/a':>10}"


def _per_s(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"  # NaN > 0 is False


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


# -- the workload ----------------------------------------------------------------------------------


def _sim_config(events: int, seed: int) -> SimConfig:
    """About ``events`` events, all in the past, so they are produced as fast as possible."""
    duration = 3600.0
    return sim_config_from_args(
        learners=max(5, events // 200),
        courses=20 if events >= 20_000 else 5,
        rate=events / duration,
        duration=duration,
        seed=seed,
        start=datetime.now(UTC) - timedelta(seconds=duration + 60),
    )


def _preproduce(bootstrap: str, events: int) -> int:
    """Simulated events (and the catalogue) to the stack's broker; the valid events delivered."""
    report = run_simulation(_sim_config(events, seed=1), "kafka", bootstrap, progress=False)
    if report.problems():
        raise RuntimeError("producing the events failed: " + "; ".join(report.problems()))
    return report.accepted


def _write_templates(path: Path, events: int) -> None:
    """Simulated events the latency producer re-stamps and sends again and again."""
    with path.open("wb") as out:
        for item in Simulation(_sim_config(events, seed=2)):
            assert isinstance(item, SimEvent)  # no bad payloads were asked for
            out.write(to_wire(item) + b"\n")


# -- ClickHouse ------------------------------------------------------------------------------------


def _fresh_database(admin: Client, dsn: str, kind: str) -> tuple[str, str]:
    """A new migrated database, its name and its DSN."""
    name = f"bench_sink_{kind}_{uuid.uuid4().hex[:8]}"
    admin.command(f"CREATE DATABASE {name}")
    db_dsn = f"{dsn.rstrip('/')}/{name}"
    client = connect(db_dsn)
    try:
        migrate(client)
    finally:
        client.close()
    return name, db_dsn


_TABLE_LIST = ", ".join(f"'{t}'" for t in RAW_TABLES)


def _count(admin: Client, database: str) -> int:
    result = admin.query(
        "SELECT sum(rows) FROM system.parts WHERE database = {db:String} AND active "  # noqa: S608 (static table names)
        f"AND table IN ({_TABLE_LIST})",
        parameters={"db": database},
    )
    return int(result.first_row[0] or 0)


def _watch(
    admin: Client,
    database: str,
    expected: int,
    proc: subprocess.Popen[bytes],
    timeout: float,
    settle_s: float | None = None,
) -> tuple[float, int]:
    """Count rows every 0.2 s until all ``expected`` are there, ``proc`` ended, or (with
    ``settle_s``) the count has not moved for that long. Returns the rate from the first count
    with rows to the first count with the final number (NaN when one count saw both), and the
    rows that arrived."""
    first: tuple[float, int] | None = None
    last: tuple[float, int] = (time.monotonic(), 0)  # when the count last changed
    deadline = time.monotonic() + timeout
    while True:
        at = time.monotonic()
        ended = proc.poll() is not None
        n = _count(admin, database)
        if n and first is None:
            first = (at, n)
        if n != last[1]:
            last = (at, n)
        settled = settle_s is not None and n > 0 and at - last[0] >= settle_s
        if n >= expected or ended or settled:
            if first is None or last[0] == first[0]:
                return math.nan, n
            return (last[1] - first[1]) / (last[0] - first[0]), n
        if at > deadline:
            raise RuntimeError(f"only {n} of {expected} rows arrived within {timeout:.0f} s")
        time.sleep(max(0.0, at + COUNT_PERIOD_S - time.monotonic()))


# -- the processes ---------------------------------------------------------------------------------


def _sink_env(bootstrap: str, db_dsn: str) -> dict[str, str]:
    return {
        **os.environ,
        "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "LEARNSTREAM_CLICKHOUSE__DSN": db_dsn,
        "LEARNSTREAM_SINK__GROUP_ID": f"bench-sink-{uuid.uuid4().hex[:8]}",
        "LEARNSTREAM_SINK__BATCH_MAX_ROWS": str(BATCH_MAX_ROWS),
        "LEARNSTREAM_SINK__BATCH_MAX_S": str(BATCH_MAX_S),
    }


def _start_sink(
    bootstrap: str, db_dsn: str, idle_exit: float, log: Path, profile_to: Path | None = None
) -> subprocess.Popen[bytes]:
    prefix = [sys.executable]
    if profile_to is not None:
        prefix += ["-m", "cProfile", "-o", str(profile_to)]
    cmd = [*prefix, "-m", "learnstream.cli", "sinks", "clickhouse", "--idle-exit", str(idle_exit)]
    with log.open("ab") as handle:
        return subprocess.Popen(
            cmd, env=_sink_env(bootstrap, db_dsn), stdout=handle, stderr=subprocess.STDOUT
        )


def _finish(proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 120) -> None:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not exit: {_tail(log)}") from None
    if code != 0:
        raise RuntimeError(f"{what} exited with {code}: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _sink_round(
    admin: Client, dsn: str, bootstrap: str, expected: int, log: Path, result: SinkBench
) -> None:
    database, db_dsn = _fresh_database(admin, dsn, "sink")
    try:
        started = time.monotonic()
        proc = _start_sink(bootstrap, db_dsn, 3, log)
        try:
            rate, rows = _watch(admin, database, expected, proc, timeout=900)
        finally:
            _finish(proc, log, "the sink")
        result.sink_seconds.append(time.monotonic() - started)
        said = [x for x in _tail(log).splitlines() if x.startswith("stopped:")]
        result.sink_said.append(said[-1] if said else "")
        result.sink_rps.append(rate)
        result.sink_rows.append(rows)
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")


def _arrow_round(
    admin: Client, dsn: str, bootstrap: str, expected: int, log: Path, result: SinkBench
) -> None:
    database, db_dsn = _fresh_database(admin, dsn, "arrow")
    try:
        cmd = [sys.executable, "-m", "bench.sink_arrow", bootstrap, db_dsn]
        with log.open("ab") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        try:
            rate, rows = _watch(admin, database, expected, proc, timeout=900)
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if proc.returncode != 0:
            raise RuntimeError(f"the Arrow baseline exited with {proc.returncode}: {_tail(log)}")
        report = json.loads(out.decode().strip().splitlines()[-1])
        result.arrow_rps.append(rate)
        result.arrow_rows.append(rows)
        result.arrow_convert_s.append(float(report["convert_s"]))
        result.arrow_build_s.append(float(report["arrow_s"]))
        result.arrow_insert_s.append(float(report["insert_s"]))
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")


# -- latency ---------------------------------------------------------------------------------------


def _max_offsets(client: Client) -> dict[tuple[str, int], int]:
    sql = " UNION ALL ".join(
        f"SELECT '{t}', _partition, max(_offset) FROM {t} GROUP BY _partition"  # noqa: S608 (static)
        for t in RAW_TABLES
    )
    return {(str(t), int(p)): int(o) for t, p, o in client.query(sql).result_rows}


def _new_rows_sql(seen: dict[tuple[str, int], int]) -> str:
    """Rows beyond the highest ``_offset`` seen per (table, partition): table, partition,
    offset, received_at in ms. Every value put into the SQL is an int or a static name."""
    parts = []
    for table in RAW_TABLES:
        known = sorted((p, o) for (t, p), o in seen.items() if t == table)
        after = "-1"
        if known:
            cases = ", ".join(f"_partition = {p}, {o}" for p, o in known)
            after = f"multiIf({cases}, -1)"
        parts.append(
            f"SELECT '{table}', _partition, _offset, toUnixTimestamp64Milli(received_at) "  # noqa: S608
            f"FROM {table} WHERE toInt64(_offset) > {after}"
        )
    return " UNION ALL ".join(parts)


def _to_insert(client: Client, since_ms: int) -> tuple[float, float]:
    """p50 and p99 of ``_inserted_at - received_at`` (the server's clock when the insert was
    parsed) for the rows received since ``since_ms``: the part of the latency spent before the
    insert, in Kafka and in the sink's batch."""
    union = " UNION ALL ".join(
        f"SELECT received_at, _inserted_at FROM {t}"  # noqa: S608 (static table names)
        for t in RAW_TABLES
    )
    row = client.query(
        "SELECT quantiles(0.5, 0.99)(toUnixTimestamp64Milli(_inserted_at) - "  # noqa: S608
        f"toUnixTimestamp64Milli(received_at)) FROM ({union}) "
        "WHERE toUnixTimestamp64Milli(received_at) >= {since:Int64}",
        parameters={"since": since_ms},
    ).first_row[0]
    return (row[0] / 1000, row[1] / 1000) if row else (math.nan, math.nan)


def _latency(
    admin: Client, dsn: str, bootstrap: str, backlog: int, tmp: Path, result: SinkBench
) -> None:
    templates = tmp / "templates.jsonl"
    _write_templates(templates, min(TEMPLATE_EVENTS, result.latency_rate * result.latency_seconds))
    database, db_dsn = _fresh_database(admin, dsn, "latency")
    client = connect(db_dsn)
    log = tmp / "sink-latency.log"
    sink = _start_sink(bootstrap, db_dsn, 600, log)
    try:
        started = time.monotonic()
        # steady state first: the sink catches up on the events produced before
        _, rows = _watch(admin, database, backlog, sink, timeout=900, settle_s=5)
        if sink.poll() is not None:
            raise RuntimeError(f"the sink stopped after {rows} of {backlog} rows: {_tail(log)}")
        result.latency_backlog_s = time.monotonic() - started
        result.latency_backlog_rows = rows
        seen = _max_offsets(client)
        cmd = [sys.executable, "-m", "bench.paced", bootstrap,
               str(templates), str(result.latency_rate), str(result.latency_seconds)]  # fmt: skip
        with (tmp / "producer.log").open("ab") as err:
            producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        report: dict[str, float] | None = None
        try:
            ended_at = last_new = math.inf
            while True:
                at = time.monotonic()
                now_ms = time.time() * 1000
                new_rows = client.query(_new_rows_sql(seen)).result_rows
                for table, partition, offset, received_ms in new_rows:
                    key = (str(table), int(partition))
                    seen[key] = max(seen.get(key, -1), int(offset))
                    result.latency_ms.append(now_ms - int(received_ms))
                    result.latency_received_ms.append(int(received_ms))
                if new_rows:
                    last_new = at
                if report is None and producer.poll() is not None:
                    out, _ = producer.communicate()
                    if producer.returncode != 0:
                        raise RuntimeError(f"the producer failed: {_tail(tmp / 'producer.log')}")
                    report = json.loads(out.decode().strip().splitlines()[-1])
                    ended_at = last_new = at
                if report is not None and (
                    len(result.latency_ms) >= report["delivered"]
                    or at - last_new > DRAIN_QUIET_S  # the rest is not coming
                    or at - ended_at > DRAIN_MAX_S
                ):
                    break
                time.sleep(max(0.0, at + LATENCY_PERIOD_S - time.monotonic()))
        finally:
            if producer.poll() is None:
                producer.kill()
            producer.wait()
            if producer.stdout is not None:
                producer.stdout.close()
        assert report is not None  # set before the loop can end
        result.latency_stored = _count(admin, database) - result.latency_backlog_rows
        if result.latency_received_ms:
            result.latency_to_insert_s = _to_insert(client, min(result.latency_received_ms))
        result.latency_produced = int(report["delivered"])
        result.latency_produce_s = float(report["seconds"])
    finally:
        client.close()
        if sink.poll() is None:
            sink.send_signal(signal.SIGTERM)
        _finish(sink, log, "the latency sink", timeout=60)
        admin.command(f"DROP DATABASE IF EXISTS {database}")


# -- the benchmark ---------------------------------------------------------------------------------


def run(
    events: int = 200_000,
    rounds: int = 2,
    latency_rate: int = 10_000,
    latency_seconds: int = 20,
    profile: bool = False,
) -> SinkBench:
    """Start a stack, produce the events once, run the rounds, then the latency phase."""
    with (
        _terminate_cleanly(),
        tempfile.TemporaryDirectory(prefix="learnstream-bench-sink-") as tmp_name,
    ):
        tmp = Path(tmp_name)
        with throwaway_stack(tmp / "stack", ["kafka", "clickhouse"]) as stack:
            bootstrap, dsn = stack.settings.kafka.bootstrap_servers, stack.settings.clickhouse.dsn
            produced = _preproduce(bootstrap, events)
            result = SinkBench(produced, rounds, latency_rate, latency_seconds)
            admin = connect(dsn)
            try:
                for _ in range(rounds):
                    _arrow_round(admin, dsn, bootstrap, produced, tmp / "arrow.log", result)
                    _sink_round(admin, dsn, bootstrap, produced, tmp / "sink.log", result)
                if profile:
                    result.profile = _profile_round(admin, dsn, bootstrap, produced, tmp)
                _latency(admin, dsn, bootstrap, produced, tmp, result)
            finally:
                admin.close()
    return result


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM (e.g. from ``timeout``) unwinds like Ctrl-C, so the stack is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _profile_round(admin: Client, dsn: str, bootstrap: str, expected: int, tmp: Path) -> str:
    from bench.collector import _profile_summary

    database, db_dsn = _fresh_database(admin, dsn, "profile")
    profile_to, log = tmp / "sink.prof", tmp / "sink-profile.log"
    try:
        proc = _start_sink(bootstrap, db_dsn, 3, log, profile_to)
        try:
            _watch(admin, database, expected, proc, timeout=1800)
        finally:
            _finish(proc, log, "the profiled sink", timeout=300)
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")
    return _profile_summary(profile_to) if profile_to.exists() else ""
