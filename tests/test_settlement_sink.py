"""The settlement sink on a real Kafka and anvil: deposits, a settlement on completion, at the
deadline a partial one by the score and a full refund below the minimum, nothing sent twice
when everything is read again, and refused enrollments in the DLQ with their reason."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from learnstream.stack import Stack
from schemas import to_wire
from schemas.derived import CompletionScore, CourseCompleted
from schemas.events import Enrollment
from settlement import contract as c
from settlement import formula
from settlement.escrows import EscrowView
from settlement.sender import Sender
from sinks.runner import SinkRunner
from sinks.settings import SinkSettings
from sinks.settlement.destination import SettlementDestination
from streams.admin import ensure_topics
from streams.kafka import make_producer, produce_all, read_to_end
from streams.topics import (
    COMPLETION_SCORES,
    COURSE_CATALOG,
    COURSE_COMPLETED,
    LEARNER_DLQ,
    LEARNER_ENROLLMENTS,
    TopicSpec,
)
from tests.chain_fixtures import Chain, course

pytestmark = pytest.mark.slow
ETHER = 10**18


def iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


@pytest.fixture
def names(stack: Stack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    out = {
        t.name: f"test.{t.name}.{suffix}"
        for t in (COURSE_CATALOG, LEARNER_ENROLLMENTS, COURSE_COMPLETED, COMPLETION_SCORES)
    }
    ensure_topics(
        stack.settings.kafka.bootstrap_servers, [TopicSpec(n, 2, 1, {}) for n in out.values()]
    )
    time.sleep(1)
    return out


def enrollment(
    learner: str,
    received: datetime,
    deadline: datetime,
    amount: int,
    refund: str,
    course_id: str = "c-escrow",
    asset: str = "ETH",
) -> Enrollment:
    return Enrollment.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "occurred_at": iso(received - timedelta(days=3)),  # backdated: changes nothing
            "received_at": iso(received),
            "learner_id": learner,
            "session_id": "s-1",
            "client": {
                "platform": "server",
                "app_version": "1.0.0",
                "device": "backend",
                "network_type": "ethernet",
                "region": "eu",
                "edge_node": "none",
            },
            "course_id": course_id,
            "price": {"amount_minor": 4900, "currency": "EUR"},
            "payment_model": "pay_by_completion",
            "escrow": {"deposit_wei": str(amount), "refund_address": refund, "asset": asset},
            "deadline_at": iso(deadline),
        },
        strict=False,
    )


def completion_records(e: Enrollment, *, score: float, completed_at: datetime | None) -> list:
    common = {
        "enrollment_id": str(e.event_id),
        "learner_id": e.learner_id,
        "course_id": e.course_id,
        "payment_model": "pay_by_completion",
        "enrolled_received_at": e.received_at,
        "deadline_at": e.deadline_at,
    }
    at = completed_at or e.received_at + timedelta(seconds=1)
    out: list[Any] = [
        CompletionScore.model_validate(
            {
                **common,
                "score_id": str(uuid.uuid4()),
                "score": score,
                "score_bps": int(score * 10_000 + 1e-6),
                "watched_fraction": score,
                "quiz_fraction": score,
                "complete": completed_at is not None,
                "as_of": at,
                "received_at": at,
            },
            strict=False,
        )
    ]
    if completed_at is not None:
        out.append(
            CourseCompleted.model_validate(
                {
                    **common,
                    "completion_id": str(uuid.uuid4()),
                    "completed_at": at,
                    "received_at": at,
                },
                strict=False,
            )
        )
    return out


class Running:
    """The sink in this thread (the sender's SQLite connection is the thread's own), stopped
    by a watcher thread once ``done()`` holds; blocks are mined meanwhile (automine makes
    none by itself), so that confirmations accrue."""

    def __init__(self, chain: Chain, stack: Stack, names: dict[str, str], state: Path) -> None:
        self.chain = chain
        view = EscrowView(chain.w3, chain.escrow.address, 0, 1)  # as deep as the sender
        sender = Sender(chain.w3, chain.roles.oracle, state, confirmations=1, receipt_poll_s=0.1)
        self.dest = SettlementDestination(
            chain.w3, sender, view, settle_delay_s=1, names=names, batch_size=10
        )
        self.dest.tick_interval_s = 0.3
        self.runner = SinkRunner(
            self.dest,
            stack.settings.kafka.bootstrap_servers,
            SinkSettings(group_id=f"test-settle-{uuid.uuid4().hex[:6]}", batch_max_s=0.2),
        )

    def until(self, done: Any, timeout: float = 90) -> None:
        outcome: dict[str, bool] = {}

        def watch() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if done():
                    outcome["ok"] = True
                    break
                self.chain.rpc("evm_mine")
                time.sleep(0.5)
            self.runner.stop()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.runner.run()
        watcher.join(10)
        assert outcome.get("ok"), "the sink did not get there in time"


def intents(chain: Chain, state: Path) -> list[Any]:
    with Sender(chain.w3, chain.roles.oracle, state, confirmations=1) as sender:
        return sender.intents()


def settled_logs(chain: Chain) -> dict[bytes, list]:
    out: dict[bytes, list] = {}
    for e in chain.escrow.events.Settled().get_logs(from_block=0):
        out.setdefault(bytes(e.args.key), []).append(e.args)
    return out


def test_the_sink_deposits_and_settles_every_path_once(
    chain: Chain, stack: Stack, names: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = stack.settings.kafka.bootstrap_servers
    policy = course(
        tranches=[{"within_s": 600, "bps": 9_000}, {"within_s": 86_400, "bps": 10_000}],
        min_score=0.3,
    )
    now = datetime.now(UTC)
    deadline = now + timedelta(seconds=12)
    early = enrollment("l-early", now, deadline, ETHER, chain.learner.address)
    partial = enrollment("l-partial", now, deadline, 2 * ETHER, chain.learner.address)
    nothing = enrollment("l-nothing", now, deadline, 3 * ETHER, chain.learner.address)
    too_long = enrollment("l-too-long", now, now + timedelta(days=2), ETHER, chain.learner.address)
    producer = make_producer(bootstrap)
    produce_all(producer, names[COURSE_CATALOG.name], [(policy.course_id, to_wire(policy))])
    produce_all(
        producer,
        names[LEARNER_ENROLLMENTS.name],
        [(e.learner_id, to_wire(e)) for e in (early, partial, nothing, too_long)],
    )
    records = (
        completion_records(early, score=1.0, completed_at=now + timedelta(seconds=2))
        + completion_records(partial, score=0.5, completed_at=None)
        + completion_records(nothing, score=0.1, completed_at=None)
    )
    for r in records:
        topic = names[
            (COURSE_COMPLETED if isinstance(r, CourseCompleted) else COMPLETION_SCORES).name
        ]
        produce_all(producer, topic, [(r.enrollment_id, r.model_dump_json())])

    keys = {
        n: c.enrollment_key(e.event_id)
        for n, e in (("early", early), ("partial", partial), ("nothing", nothing))
    }
    state = tmp_path / "sender"
    first = Running(chain, stack, names, state)
    settled_at: dict[str, int] = {}

    def all_settled() -> bool:  # and two more blocks on top, so every intent is final
        if set(keys.values()) <= set(settled_logs(chain)):
            settled_at.setdefault("block", chain.w3.eth.block_number)
            return chain.w3.eth.block_number >= settled_at["block"] + 3
        return False

    first.until(all_settled)

    logs = settled_logs(chain)
    assert all(len(logs[k]) == 1 for k in keys.values())  # once each
    terms = c.formula_terms(policy)
    enrolled, dl = formula.to_ms(now.replace(microsecond=now.microsecond // 1000 * 1000)), None
    early_log = logs[keys["early"]][0]
    assert (early_log.counted, early_log.earnedBps) == (True, 9_000)  # within the first tranche
    assert early_log.learnerAmount == ETHER - ETHER * 9_000 // 10_000  # early-finish refund
    partial_log = logs[keys["partial"]][0]
    assert (partial_log.counted, partial_log.earnedBps) == (False, 5_000)
    nothing_log = logs[keys["nothing"]][0]
    assert (nothing_log.earnedBps, nothing_log.learnerAmount) == (0, 3 * ETHER)
    for log_, e in ((partial_log, partial), (nothing_log, nothing)):
        want = formula.payout(
            terms,
            e.escrow.deposit_wei,
            enrolled_at_ms=enrolled,
            deadline_ms=formula.to_ms(e.deadline_at),
            complete=False,
            completed_at_ms=0,
            score_bps=log_.scoreBps,
        )
        assert log_.creatorAmount == want.creator and log_.learnerAmount == want.learner
    del dl
    # nothing reverted, nothing skipped
    sent = intents(chain, state)
    assert sent and all(i.status == "confirmed" and i.receipt_status == 1 for i in sent)
    assert not list(chain.escrow.events.SettlementSkipped().get_logs(from_block=0))
    # the enrollment beyond the policy's cap was refused, with its reason, in the DLQ
    dead = [json.loads(r.value) for r in read_to_end(bootstrap, [LEARNER_DLQ.name])]
    refused = [d for d in dead if str(too_long.event_id) in d.get("raw", "")]
    assert refused and "beyond the course's cap" in refused[0]["detail"]

    # everything read again (a new group): no transaction, the records are counted as ignored
    again = Running(chain, stack, names, state)
    again.until(lambda: again.dest.book.ignored >= 3, timeout=60)
    assert len(intents(chain, state)) == len(sent)
    assert settled_logs(chain) == logs


def test_a_bad_enrollment_never_holds_up_the_others(
    chain: Chain, stack: Stack, names: dict[str, str], tmp_path: Path
) -> None:
    """A refund address with a wrong checksum and a token deposit the wallet cannot fund go to
    the DLQ with their reasons; the good enrollment beside them is deposited and settled."""
    bootstrap = stack.settings.kafka.bootstrap_servers
    policy = course()
    now = datetime.now(UTC)
    deadline = now + timedelta(minutes=5)
    good_address = chain.learner.address
    typo = good_address[:-1] + (good_address[-1].swapcase() if good_address[-1].isalpha() else "a")
    lower = enrollment("l-lower", now, deadline, ETHER, good_address.lower())
    bad = enrollment("l-typo", now, deadline, ETHER, typo)
    broke = enrollment("l-broke", now, deadline, 10**12, good_address, asset=chain.coin.address)
    producer = make_producer(bootstrap)
    produce_all(producer, names[COURSE_CATALOG.name], [(policy.course_id, to_wire(policy))])
    produce_all(
        producer,
        names[LEARNER_ENROLLMENTS.name],
        [(e.learner_id, to_wire(e)) for e in (bad, broke, lower)],
    )
    (done,) = completion_records(lower, score=1.0, completed_at=now + timedelta(seconds=1))[1:]
    produce_all(
        producer, names[COURSE_COMPLETED.name], [(done.enrollment_id, done.model_dump_json())]
    )
    running = Running(chain, stack, names, tmp_path / "sender")
    key = c.enrollment_key(lower.event_id)
    running.until(lambda: key in settled_logs(chain))
    assert chain.escrow.functions.escrowOf(key).call()[4] == good_address  # checksummed
    for e in (bad, broke):
        assert chain.escrow.functions.escrowOf(c.enrollment_key(e.event_id)).call()[2] == 0
    dead = [json.loads(r.value) for r in read_to_end(bootstrap, [LEARNER_DLQ.name])]
    reasons = {
        e.learner_id: [d["detail"] for d in dead if str(e.event_id) in d.get("raw", "")]
        for e in (bad, broke)
    }
    assert "checksum" in reasons["l-typo"][0]
    assert "holds 0 of" in reasons["l-broke"][0]
