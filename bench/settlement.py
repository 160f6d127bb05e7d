"""Settlement on this machine (issue 11).

- **Throughput and gas**, batched against one settlement per transaction, side by side, on
  anvil with automine, through the settlement service's own sender (intents and signed bytes
  in SQLite before each broadcast): settlements per second and gas per settlement.
- **Latency** from a ``course.completed`` record to its settlement in a block, through Kafka
  and the settlement sink, on anvil mining a block every second; the confirmation wait
  (confirmations x block time) comes on top and is reported beside it.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack
from schemas import to_wire
from schemas.catalog import Course
from schemas.derived import CourseCompleted
from schemas.events import Enrollment
from settlement import contract as c
from settlement.escrows import EscrowView
from settlement.sender import Sender
from settlement.settings import ChainSettings, SettlementSettings
from sinks.runner import SinkRunner
from sinks.settings import SinkSettings
from sinks.settlement.destination import SettlementDestination
from streams.kafka import make_producer, produce_all
from streams.topics import COURSE_CATALOG, COURSE_COMPLETED, LEARNER_ENROLLMENTS

ETHER = 10**18


def _course(creator: str, course_id: str = "bench-course") -> Course:
    return Course.model_validate(
        {
            "course_id": course_id, "title": "Bench", "category": "bench", "level": "beginner",
            "creator_id": "creator", "creator_address": creator,
            "price": {"amount_minor": 1000, "currency": "USD"},
            "payment_models": ["pay_by_completion"],
            "videos": [{"video_id": "v1", "title": "one", "length_s": 60}],
            "payout": {"deadline_days": 1, "grace_s": 600},
            "updated_at": datetime(2026, 12, 1, tzinfo=UTC),
        }
    )  # fmt: skip


@dataclass
class Mode:
    settlements: int
    seconds: float
    gas: int

    @property
    def per_s(self) -> float:
        return self.settlements / self.seconds

    @property
    def gas_each(self) -> float:
        return self.gas / self.settlements


@dataclass
class SettlementBench:
    batch: int
    batched: Mode | None = None
    single: Mode | None = None
    latencies_s: list[float] = field(default_factory=list)
    block_time_s: float = 1.0
    confirmations: int = 2

    def render(self) -> str:
        b, s = self.batched, self.single
        assert b is not None and s is not None
        lat = sorted(self.latencies_s)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: 0.0)
        return "\n".join([
            "settlement on anvil, through the sender (intents in SQLite before broadcast):",
            f"  batched ({self.batch} per tx): {b.per_s:,.0f} settlements/s, "
            f"{b.gas_each:,.0f} gas per settlement ({b.settlements} settlements)",
            f"  one per tx:          {s.per_s:,.0f} settlements/s, {s.gas_each:,.0f} gas per "
            f"settlement ({s.settlements} settlements)",
            f"  ratio batched/single: {b.per_s / s.per_s:.1f}x faster, "
            f"{b.gas_each / s.gas_each:.3f} of the gas",
            f"  course.completed -> in a block, through Kafka and the sink ({len(lat)} "
            f"completions, blocks every {self.block_time_s:g} s): p50 {pick(0.5):.2f} s, "
            f"p99 {pick(0.99):.2f} s; confirmation wait on top: {self.confirmations} x "
            f"{self.block_time_s:g} s",
        ])  # fmt: skip


def _deposit_all(w3: Any, sender: Sender, escrow: Any, course: Course, n: int) -> list[bytes]:
    keys = [c.enrollment_key(uuid.uuid4()) for _ in range(n)]
    now = int(w3.eth.get_block("latest")["timestamp"]) * 1000
    for start in range(0, n, 100):
        part = keys[start : start + 100]
        rows = [(k, c.course_key(course.course_id), c.ETH, ETHER, sender.address, now,
                 now + 3_600_000) for k in part]  # fmt: skip
        data = escrow.encode_abi("deposit", args=[rows])
        sender.submit(f"deposit:{start}", escrow.address, data, value=ETHER * len(part))
    sender.wait(f"deposit:{(n - 1) // 100 * 100}", 120)
    return keys


def _settle(sender: Sender, escrow: Any, keys: list[bytes], batch: int, tag: str) -> Mode:
    """Sends every settlement (pipelined nonces), waits until every receipt is in."""
    now = int(sender.w3.eth.get_block("latest")["timestamp"]) * 1000
    started = time.perf_counter()
    ids = []
    for start in range(0, len(keys), batch):
        rows = [(k, True, now, 10_000) for k in keys[start : start + batch]]
        data = escrow.encode_abi("settle", args=[rows])
        gas = 60_000 + 40_000 * len(rows)  # explicit: the earlier ones are not mined yet
        ids.append(sender.submit(f"{tag}:{start}", escrow.address, data, gas=gas).intent_id)
    for intent_id in ids:
        sender.wait(intent_id, 300)
    seconds = time.perf_counter() - started
    gas_used = sum(int(sender.get(i).gas_used or 0) for i in ids)  # type: ignore[union-attr]
    return Mode(len(keys), seconds, gas_used)


def throughput(result: SettlementBench, settlements: int, single: int, state: Path) -> None:
    with throwaway_stack(state / "stack", ["anvil"]) as stack:
        s = stack.settings
        w3 = c.connect(s.chain.rpc_url)
        roles = c.Roles.from_settings(s.chain, s.settlement)
        record = c.deploy(w3, roles, state / "settlement", stablecoin=False)
        escrow = c.escrow_at(w3, record.escrow)
        course = _course(c.dev_account(s.chain, 4).address)
        with Sender(w3, roles.oracle, state / "sender", confirmations=0,
                    receipt_poll_s=0.02) as sender:  # fmt: skip
            reg = escrow.encode_abi("registerCourse", args=[c.course_key(course.course_id),
                                                            c.terms_of(course)])  # fmt: skip
            sender.wait(sender.submit("register", escrow.address, reg).intent_id, 60)
            keys = _deposit_all(w3, sender, escrow, course, settlements + single)
            # side by side: single first and batched after, then once more the other way round
            half = single // 2
            one = _settle(sender, escrow, keys[:half], 1, "single-a")
            many = _settle(sender, escrow, keys[single:], result.batch, "batched")
            two = _settle(sender, escrow, keys[half:single], 1, "single-b")
        result.batched = many
        result.single = Mode(one.settlements + two.settlements, one.seconds + two.seconds,
                             one.gas + two.gas)  # fmt: skip


def latency(result: SettlementBench, completions: int, rate: float, state: Path) -> None:
    chain = ChainSettings(port=free_port(), state_interval_s=1, block_time_s=result.block_time_s)
    with throwaway_stack(state / "lstack", ["kafka", "anvil"], chain=chain) as stack:
        s = stack.settings
        w3 = c.connect(s.chain.rpc_url)
        roles = c.Roles.from_settings(s.chain, s.settlement)
        record = c.deploy(w3, roles, state / "lsettlement", stablecoin=False)
        escrow = c.escrow_at(w3, record.escrow)
        course = _course(c.dev_account(s.chain, 4).address)
        bootstrap = s.kafka.bootstrap_servers
        producer = make_producer(bootstrap)
        produce_all(producer, COURSE_CATALOG.name, [(course.course_id, to_wire(course))])
        now = datetime.now(UTC)
        enrollments = [_enrollment(course, now, i) for i in range(completions)]
        produce_all(producer, LEARNER_ENROLLMENTS.name,
                    [(e.learner_id, to_wire(e)) for e in enrollments])  # fmt: skip
        view = EscrowView(w3, escrow.address, record.block, result.confirmations)
        sender = None
        done = threading.Event()
        observed: dict[bytes, float] = {}
        sent_at: dict[bytes, float] = {}

        def drive() -> None:
            # Waits for the deposits, then sends completions at ``rate`` and watches the logs.
            seen = EscrowView(w3, escrow.address, record.block, 0)
            keys = {c.enrollment_key(e.event_id) for e in enrollments}
            while not keys <= set(seen.escrows):
                seen.refresh()
                time.sleep(0.2)
            flt = escrow.events.Settled.create_filter(from_block=record.block)

            def observe() -> None:  # concurrently, so that an observation is never late
                deadline = time.monotonic() + 180
                while len(observed) < len(enrollments) and time.monotonic() < deadline:
                    for entry in flt.get_new_entries():
                        observed.setdefault(bytes(entry.args.key), time.time())
                    time.sleep(0.05)

            watcher = threading.Thread(target=observe, daemon=True)
            watcher.start()
            for e in enrollments:
                rec = CourseCompleted.model_validate({
                    "completion_id": str(uuid.uuid4()), "enrollment_id": str(e.event_id),
                    "learner_id": e.learner_id, "course_id": course.course_id,
                    "payment_model": "pay_by_completion", "completed_at": datetime.now(UTC),
                    "received_at": datetime.now(UTC), "enrolled_received_at": e.received_at,
                    "deadline_at": e.deadline_at}, strict=False)  # fmt: skip
                sent_at[c.enrollment_key(e.event_id)] = time.time()
                produce_all(producer, COURSE_COMPLETED.name, [(rec.enrollment_id,
                                                               rec.model_dump_json())])  # fmt: skip
                time.sleep(1 / rate)
            watcher.join()
            done.set()
            runner.stop()

        # the service's defaults: receipts polled every second, batches every 0.5 s
        defaults = SettlementSettings()
        sender = Sender(w3, roles.oracle, state / "lsender", confirmations=result.confirmations)
        dest = SettlementDestination(w3, sender, view, settle_delay_s=5, batch_size=100)
        runner = SinkRunner(dest, bootstrap, SinkSettings(
            group_id="bench-settlement", batch_max_s=defaults.batch_max_s,
            batch_max_rows=defaults.batch_size * 10))  # fmt: skip
        watcher = threading.Thread(target=drive, daemon=True)
        watcher.start()
        runner.run()
        watcher.join(10)
        result.latencies_s = [observed[k] - sent_at[k] for k in observed if k in sent_at]


def _enrollment(course: Course, now: datetime, i: int) -> Enrollment:
    return Enrollment.model_validate({
        "event_id": str(uuid.uuid4()), "schema_version": 1, "occurred_at": now,
        "received_at": now, "learner_id": f"bench-{i}", "session_id": "s",
        "client": {"platform": "server", "app_version": "1", "device": "d",
                   "network_type": "ethernet", "region": "r", "edge_node": "e"},
        "course_id": course.course_id, "price": {"amount_minor": 1000, "currency": "USD"},
        "payment_model": "pay_by_completion",
        "escrow": {"deposit_wei": str(ETHER // 100),
                   "refund_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        "deadline_at": now + timedelta(hours=20)}, strict=False)  # fmt: skip


def run(
    settlements: int = 2_000, single: int = 200, batch: int = 100, completions: int = 200,
    rate: float = 20.0,
) -> SettlementBench:  # fmt: skip
    result = SettlementBench(batch=batch)
    with tempfile.TemporaryDirectory(prefix="learnstream-bench-settle-") as tmp:
        throughput(result, settlements, single, Path(tmp))
        latency(result, completions, rate, Path(tmp))
    return result
