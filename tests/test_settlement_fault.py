"""Settlement under faults: a simulated run with pay-by-completion learners, the settlement
sink killed with SIGKILL right after a broadcast (before its offsets are committed) several
times, and the chain reorganising its last blocks once, shallower than the confirmation depth.

Afterwards every completed enrollment is settled exactly once, every enrollment past its
deadline is settled by the policy, no transaction reverted, `reconcile` finds nothing, and
each asset's contract balance equals the credits not yet withdrawn."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jobs.flink.runtime import RunOptions
from learnstream.settings import Settings, to_env
from learnstream.stack.children import kill, spawn, stop
from learnstream.stack.collector import start_collector
from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack
from learnstream.wiring import launcher
from settlement import contract as c
from settlement.escrows import EscrowView
from settlement.settings import ChainSettings, SettlementSettings
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.reconciliations import recent_reconciliations
from streams.collector.auth import generate_key
from streams.kafka import read_to_end
from streams.simulate import run_simulation, sim_config_from_args
from streams.topics import COURSE_COMPLETED, LEARNER_ENROLLMENTS

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
KILLS = 3


def broadcast_intents(db: Path) -> set[str]:
    """Intents the sink has broadcast (read-only: the sink owns the store)."""
    if not db.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute(
                "SELECT i.intent_id FROM intents i JOIN attempts a ON a.intent_id = i.intent_id "
                "WHERE a.broadcast_at IS NOT NULL"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return set()
    return {r[0] for r in rows}


def enrollments(s: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(r.value)
        for r in read_to_end(s.kafka.bootstrap_servers, [LEARNER_ENROLLMENTS.name])
    ]


def completions(s: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(r.value)
        for r in read_to_end(s.kafka.bootstrap_servers, [COURSE_COMPLETED.name])
        if r.value
    ]


def wait(check: Any, timeout: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


def test_kills_and_a_reorg_pay_nobody_twice(tmp_path: Path) -> None:
    chain = ChainSettings(port=free_port(), state_interval_s=1, block_time_s=1)
    settlement = SettlementSettings(
        state_dir=tmp_path / "settlement", confirmations=3, settle_delay_s=5, stuck_after_s=15
    )
    with throwaway_stack(tmp_path / "stack", chain=chain, settlement=settlement) as stack:
        s: Settings = stack.settings
        w3 = c.connect(s.chain.rpc_url)
        roles = c.Roles.from_settings(s.chain, s.settlement)
        c.deploy(w3, roles, s.settlement.state_dir)
        migrate(connect(s.clickhouse.dsn), 30, 7)
        logs = tmp_path / "logs"
        logs.mkdir()
        key = generate_key()
        collector_port = free_port()
        collector = start_collector(
            collector_port,
            {"sim": key},
            logs / "collector.log",
            env={"LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers},
        )
        services = {
            "index": spawn(s, ["settlement", "index"], logs / "index.log"),
            "clickhouse": spawn(s, ["sinks", "clickhouse"], logs / "clickhouse.log"),
        }
        sink = spawn(s, ["sinks", "settlement"], logs / "sink.log")
        try:
            cfg = sim_config_from_args(
                learners=40,
                courses=3,
                rate=0,
                duration=60,
                seed=11,
                bad_fraction=0,
                deadline_s=100,
                pay_by_completion_fraction=0.9,
            )
            run_simulation(
                cfg,
                "http",
                s.kafka.bootstrap_servers,
                collector_url=f"http://127.0.0.1:{collector_port}",
                api_key=key,
                progress=False,
            )
            launcher(s).run_to_end("completion", RunOptions(bounded=True))

            # SIGKILL right after each of the next broadcasts, before the offsets commit
            db = s.settlement.state_dir / f"sender-{chain.chain_id}-{roles.oracle.address}.sqlite"
            kills = 0
            while kills < KILLS:
                seen = broadcast_intents(db)
                wait(lambda: broadcast_intents(db) - seen, 120, "a broadcast", step=0.02)  # noqa: B023
                kill(sink)
                kills += 1
                sink = spawn(s, ["sinks", "settlement"], logs / "sink.log")
            # once settlements are on the chain, reorganise the last two blocks (depth 3)
            escrow = c.escrow_at(w3, c.Deployment.load(s.settlement.state_dir, 31337).escrow)
            wait(lambda: list(escrow.events.Settled().get_logs(from_block=0)), 120, "a settlement")
            reply = w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]
            assert "error" not in reply, reply

            view = EscrowView(w3, escrow.address, 0)
            pbc = [e for e in enrollments(s) if e["payment_model"] == "pay_by_completion"]
            assert len(pbc) >= 10

            def all_settled() -> bool:
                view.refresh()
                keys = {c.enrollment_key(e["event_id"]) for e in pbc}
                return keys <= set(view.escrows) and not view.open_escrows()

            wait(all_settled, 240, "every escrow settled")
            time.sleep(8)  # the last settlements get their confirmations and are indexed
        finally:
            stop(sink)
            for process in services.values():
                stop(process)
            collector.terminate()
            collector.wait(30)

        settled = Counter(bytes(e.args.key) for e in escrow.events.Settled().get_logs(from_block=0))
        assert set(settled) == set(view.escrows) and set(settled.values()) == {1}
        completed = {c.enrollment_key(r["enrollment_id"]) for r in completions(s)}
        assert completed, "the run must have completions"
        counted = {
            bytes(e.args.key)
            for e in escrow.events.Settled().get_logs(from_block=0)
            if e.args.counted
        }
        assert completed & set(view.escrows) <= counted
        # no transaction the sink sent reverted
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        statuses = con.execute("SELECT status, receipt_status FROM intents").fetchall()
        con.close()
        assert statuses and all(r == 1 for _, r in statuses if r is not None), statuses
        assert not list(escrow.events.SettlementSkipped().get_logs(from_block=0))
        # reconcile (the command finance runs): the chain, the receipts topic, ClickHouse and
        # the completion records agree
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSTREAM_")}
        done = subprocess.run(
            [sys.executable, "-m", "learnstream.cli", "settlement", "reconcile"],
            env={**clean, **to_env(s)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ok: no discrepancy" in done.stdout and " matched 0," not in done.stdout
        runs = recent_reconciliations(connect(s.clickhouse.dsn), 1)
        assert runs and runs[0]["ok"] and runs[0]["matched"] > 0
        # each asset's balance is exactly the credits not yet withdrawn
        payees = {roles.treasury} | {e.refund_to for e in view.escrows.values()}
        payees |= {view.terms(e.terms_id).creator for e in view.escrows.values()}
        owed = sum(escrow.functions.creditOf(c.ETH, p).call() for p in payees)
        assert w3.eth.get_balance(escrow.address) == owed > 0
