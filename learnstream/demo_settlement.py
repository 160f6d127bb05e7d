"""The settlement part of `learnstream demo`: the escrow deployed, the settlement sink and the
receipts indexer running beside the simulated run, every payout path on the chain within a
couple of minutes (deadlines from the run's end, a short grace), an expiry when the oracle is
stopped, and a clean reconcile at the end."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from learnstream.errors import LearnstreamError
from learnstream.settings import Settings
from learnstream.stack.children import spawn, stop

Echo = Callable[[str], None]
SETTLE_DELAY_S = 10  # the demo's sink waits this long after a deadline
GRACE_S = 40  # and expire() opens this long after it (the simulated catalogue's grace)
DEADLINE_S = 50  # after the simulated run's end
EXTRA_AFTER_S = 25  # the enrollment left to expire: its deadline comes this much later


@dataclass
class SettlementDemo:
    settings: Settings
    started_at: datetime
    escrow: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra: str | None = None  # the enrollment the oracle never settles

    @property
    def env(self) -> dict[str, str]:
        return {"LEARNSTREAM_SETTLEMENT__SETTLE_DELAY_S": str(SETTLE_DELAY_S)}


def start(settings: Settings, echo: Echo) -> SettlementDemo:
    """Deploy the escrow (once per chain), then run the settlement sink and the indexer."""
    from settlement import contract

    w3 = contract.connect(settings.chain.rpc_url)
    s = settings.settlement
    record = contract.Deployment.load(s.state_dir, int(w3.eth.chain_id))
    if record is None or not w3.eth.get_code(record.escrow):
        void = contract.void_stale_state(s.state_dir, int(w3.eth.chain_id))
        if void is not None:
            echo(f"a fresh chain: the settlement state of the old one moved to {void}")
        record = contract.deploy(w3, contract.Roles.from_settings(settings.chain, s), s.state_dir)
        echo(f"escrow deployed at {record.escrow} (test stablecoin {record.stablecoin})")
    else:
        echo(f"escrow at {record.escrow} (deployed earlier on this chain)")
    demo = SettlementDemo(settings, datetime.now(UTC), record.escrow)
    logs = settings.stack.state_dir / "logs"
    demo.processes["settlement sink"] = spawn(
        settings, ["sinks", "settlement"], logs / "settlement-sink.log", demo.env
    )
    demo.processes["receipts indexer"] = spawn(
        settings, ["settlement", "index"], logs / "settlement-index.log", demo.env
    )
    echo(f"settlement sink and receipts indexer running (logs in {logs})")
    return demo


def sim_overrides() -> dict[str, Any]:
    """What the simulated run needs so that every payout path shows within minutes."""
    return {"deadline_s": DEADLINE_S, "deadline_from_end": True, "grace_s": GRACE_S}


def _pbc_enrollments(settings: Settings, event_ids: set[str]) -> list[dict[str, Any]]:
    from streams.kafka import read_to_end
    from streams.topics import LEARNER_ENROLLMENTS

    out = []
    for record in read_to_end(settings.kafka.bootstrap_servers, [LEARNER_ENROLLMENTS.name]):
        raw = json.loads(record.value or b"{}")
        if raw.get("event_id") in event_ids and raw.get("payment_model") == "pay_by_completion":
            out.append(raw)
    return out


def _send_extra(demo: SettlementDemo, template: dict[str, Any], url: str, key: str) -> str:
    """One more pay-by-completion enrollment, as the platform's server would send it."""
    deadline = datetime.fromisoformat(template["deadline_at"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    extra = {
        **{k: v for k, v in template.items() if k != "received_at"},
        "event_id": str(uuid.uuid4()),
        "learner_id": "demo-learner-who-vanished",
        "occurred_at": now.isoformat().replace("+00:00", "Z"),
        "deadline_at": (max(deadline, now) + timedelta(seconds=EXTRA_AFTER_S))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
    reply = httpx.post(f"{url}/v1/events", json=extra, headers={"X-Api-Key": key}, timeout=30)
    if reply.status_code >= 300:
        raise LearnstreamError(f"demo: the extra enrollment was refused: {reply.text}")
    return str(extra["event_id"])


def settle_and_expire(
    demo: SettlementDemo, event_ids: list[str], collector_url: str, key: str, echo: Echo
) -> None:
    """Waits until every simulated escrow is settled; meanwhile one more enrollment is
    deposited and the oracle is stopped before its deadline, so that anyone can expire it."""
    from settlement import contract
    from settlement.escrows import EscrowView

    settings = demo.settings
    w3 = contract.connect(settings.chain.rpc_url)
    view = EscrowView(w3, demo.escrow, contract.logs_start(w3, settings.settlement))
    pbc = _pbc_enrollments(settings, set(event_ids))
    if not pbc:
        raise LearnstreamError("demo: the simulated run had no pay-by-completion enrollment")
    demo.extra = _send_extra(demo, pbc[0], collector_url, key)
    keys = {contract.enrollment_key(e["event_id"]) for e in pbc}
    extra_key = contract.enrollment_key(demo.extra)
    echo(
        f"settlement: {len(pbc)} pay-by-completion enrollments; waiting for their deposits, "
        f"their completions and their deadline (+{SETTLE_DELAY_S} s)…"
    )
    deadline = time.monotonic() + 300
    while True:
        view.refresh()
        deposited = keys & set(view.escrows)
        settled = {k for k in deposited if view.escrows[k].state != "open"}
        if deposited == keys and settled == keys and extra_key in view.escrows:
            break
        if time.monotonic() > deadline:
            raise LearnstreamError(
                f"demo: {len(keys - deposited)} not deposited, {len(deposited - settled)} not "
                f"settled after 5 minutes (see {settings.stack.state_dir}/logs/settlement-sink.log)"
            )
        time.sleep(1)
    stop(demo.processes.pop("settlement sink"))
    extra = view.escrows[extra_key]
    opens = extra.deadline_ms / 1000 + GRACE_S
    echo(
        f"settlement: every simulated escrow settled; the oracle is now stopped, and enrollment "
        f"{demo.extra} waits for its deadline + grace ({max(0, opens - time.time()):.0f} s)…"
    )
    stranger = contract.dev_account(settings.chain, 6)
    escrow = contract.escrow_at(w3, demo.escrow)
    while int(w3.eth.get_block("latest")["timestamp"]) < opens:
        time.sleep(1)
    contract.transact(w3, stranger, escrow.functions.expire(extra_key))
    refund_to = extra.refund_to
    contract.transact(w3, stranger, escrow.functions.withdrawFor(refund_to, contract.ETH))
    echo(
        f"settlement: anyone may expire an escrow the oracle left: {stranger.address} expired "
        f"it, and withdrew the learner's refund for them (withdrawFor)"
    )
    # the indexer publishes what is behind the confirmation depth, then stops
    head = int(w3.eth.block_number)
    while int(w3.eth.block_number) < head + settings.settlement.confirmations + 2:
        time.sleep(0.5)
    time.sleep(2)
    stop(demo.processes.pop("receipts indexer"))


def summary(demo: SettlementDemo, event_ids: list[str], echo: Echo) -> None:
    """Deposits and settlements by path with amounts, then a reconcile of the demo's period."""
    from settlement import contract
    from settlement.escrows import EscrowView
    from sinks.clickhouse.client import connect
    from sinks.settlement.reconcile import Reconciler
    from streams.topics import SETTLEMENT_RECEIPTS

    settings = demo.settings
    s = settings.settlement
    w3 = contract.connect(settings.chain.rpc_url)
    escrow = contract.escrow_at(w3, demo.escrow)
    start = contract.logs_start(w3, s)
    keys = {contract.enrollment_key(e) for e in [*event_ids, demo.extra or ""] if e}
    view = EscrowView(w3, demo.escrow, start)
    view.refresh()
    mine = {k: e for k, e in view.escrows.items() if k in keys}
    eth = Decimal(10) ** 18
    paths: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for entry in escrow.events.Settled().get_logs(from_block=start):
        a = entry.args
        if bytes(a.key) not in mine:
            continue
        if a.counted:
            path = "completed, full" if a.earnedBps == 10_000 else "completed early: refund"
        else:
            path = "at the deadline, partial" if a.earnedBps else "at the deadline, nothing earned"
        if a.metric == 1:
            path += " (exam)"
        row = paths[path]
        row[0] += 1
        row[1] += mine[bytes(a.key)].amount
        row[2] += a.creatorAmount
        row[3] += a.platformAmount
        row[4] += a.learnerAmount
    for entry in escrow.events.Expired().get_logs(from_block=start):
        if bytes(entry.args.key) in mine:
            row = paths["expired (the oracle never acted)"]
            row[0] += 1
            row[1] += entry.args.learnerAmount
            row[4] += entry.args.learnerAmount
    total = sum(e.amount for e in mine.values())
    echo(
        f"settlement: {len(mine)} deposits, {Decimal(total) / eth:.4f} ETH in escrow at "
        f"{demo.escrow}"
    )
    echo(
        f"  {'path':42} {'n':>3} {'deposits':>10} {'creator':>10} {'platform':>10} "
        f"{'learner':>10}  (ETH)"
    )
    for path, (n, dep, cr, pl, le) in sorted(paths.items()):
        echo(
            f"  {path:42} {n:>3} {Decimal(dep) / eth:>10.4f} {Decimal(cr) / eth:>10.4f} "
            f"{Decimal(pl) / eth:>10.4f} {Decimal(le) / eth:>10.4f}"
        )
    client = connect(settings.clickhouse.dsn)
    report = Reconciler(
        w3,
        demo.escrow,
        start,
        s.confirmations,
        settings.kafka.bootstrap_servers,
        SETTLEMENT_RECEIPTS.name,
        client,
        s.state_dir,
        SETTLE_DELAY_S,
    ).run(demo.started_at - timedelta(seconds=5), None)
    echo(report.render())
    if not report.ok:
        ours = [d for d in report.details if any(k.hex() in json.dumps(d) for k in mine)]
        if ours:
            raise LearnstreamError("demo: reconcile found discrepancies in this run (above)")
        echo(
            "  the discrepancies above concern escrows of an earlier run on this stack (an "
            "interrupted demo leaves its escrows behind the pipeline); `make clean` starts "
            "afresh"
        )
    echo("  (`learnstream settlement reconcile`, `learnstream settlement show ENROLLMENT`)")


def stop_all(demo: SettlementDemo | None) -> None:
    if demo is not None:
        for process in demo.processes.values():
            stop(process)
        demo.processes.clear()


__all__ = ["SettlementDemo", "settle_and_expire", "sim_overrides", "start", "stop_all", "summary"]
