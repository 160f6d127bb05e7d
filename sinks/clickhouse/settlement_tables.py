"""The settlement tables of the registry: ``completion_scores`` (``completion.scores``),
``course_completed`` (``course.completed``) and ``settlements`` (``settlement.receipts``).

Declared here as data, one :class:`TableSpec` each, and made into registry tables by
``tables.py`` (which imports this module; this module imports nothing of the registry, so the
import graph has no cycle). A column is ``(name, source, check)``: ``source`` is the record's
attribute path (a str), or a function of the record, or :data:`LEARNER` for the ``learner_key``
pseudonym. Migration ``0005_settlement.sql`` creates the tables.

``enrollment_key`` is how the escrow contract knows an enrollment: keccak256 of the
enrollment UUID's 16 bytes, as ``0x`` + 64 lowercase hex digits, the form the receipts carry. It
is what joins the completion tables to ``settlements``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from sinks.clickhouse import rows
from sinks.clickhouse.rows import Check
from streams.topics import COMPLETION_SCORES, COURSE_COMPLETED, SETTLEMENT_RECEIPTS, Topic


class LearnerKey:
    """The source of the ``learner_key`` column: the sink's pseudonym of ``learner_id``."""


LEARNER = LearnerKey()


class ColumnSpec(NamedTuple):
    name: str
    source: str | Callable[[Any], object] | LearnerKey
    check: Check | None = None


class TableSpec(NamedTuple):
    name: str
    topic: Topic
    columns: tuple[ColumnSpec, ...]
    tombstones: bool  # a compacted topic: a record without a value stores nothing


@functools.lru_cache(maxsize=1 << 16)  # an enrollment's scores come again and again
def enrollment_key(enrollment_id: str | uuid.UUID) -> str:
    """The on-chain key of an enrollment, as the receipts write it."""
    try:
        from eth_utils import keccak  # comes with web3 (the app extra), not with the core
    except ImportError as exc:
        raise ImportError(
            "the settlement tables need keccak256 from eth-utils: install learnstream[app]"
        ) from exc
    return "0x" + keccak(uuid.UUID(str(enrollment_id)).bytes).hex()


def _uuid(name: str) -> ColumnSpec:
    """A UUID column from a UUID text attribute of the same name."""
    return ColumnSpec(name, lambda r: uuid.UUID(getattr(r, name)))


def _plain(*names: str, check: Check | None = None) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(name, name, check) for name in names)


# The columns both completion tables begin with, after their own record id.
ENROLLMENT = (
    _uuid("enrollment_id"),
    ColumnSpec("enrollment_key", lambda r: enrollment_key(r.enrollment_id)),
    ColumnSpec("learner_key", LEARNER),
    *_plain("course_id", "payment_model"),
)

COMPLETION_SCORES_SPEC = TableSpec(
    "completion_scores",
    COMPLETION_SCORES,
    (
        _uuid("score_id"),
        *ENROLLMENT,
        *_plain("score", "score_bps", "watched_fraction", "quiz_fraction", "complete"),
        *_plain("exam_bps", "exam_passed"),
        *_plain("exam_passed_received_at", check=rows.opt_time),
        *_plain("as_of", "received_at", "enrolled_received_at", check=rows.time),
        *_plain("deadline_at", check=rows.opt_time),
    ),
    tombstones=True,
)

COURSE_COMPLETED_SPEC = TableSpec(
    "course_completed",
    COURSE_COMPLETED,
    (
        _uuid("completion_id"),
        *ENROLLMENT,
        *_plain("completed_at", "received_at", "enrolled_received_at", check=rows.time),
        *_plain("deadline_at", check=rows.opt_time),
    ),
    tombstones=True,
)

SETTLEMENTS_SPEC = TableSpec(
    "settlements",
    SETTLEMENT_RECEIPTS,
    (
        *_plain("receipt_id", "kind"),
        *_plain("chain_id", check=rows.uint(64)),
        *_plain("contract", "tx_hash"),
        *_plain("block_number", check=rows.uint(64)),
        *_plain("block_hash"),
        *_plain("block_time", check=rows.time),
        *_plain("log_index", check=rows.uint(32)),
        *_plain("enrollment_key", "course_key"),
        *_plain("terms_id", check=rows.opt_uint(64)),
        *_plain("payee", "refund_to", "creator", "asset", "decimals"),
        # amounts: UInt256 holds every value the schema accepts (< 2^256)
        *_plain("amount", "creator_amount", "platform_amount", "learner_amount"),
        *_plain("earned_bps", "score_bps", "metric", "counted", "reason"),
        *_plain("enrolled_at", "deadline_at", check=rows.opt_time),
        *_plain("detail"),
    ),
    tombstones=False,
)

SPECS: tuple[TableSpec, ...] = (COMPLETION_SCORES_SPEC, COURSE_COMPLETED_SPEC, SETTLEMENTS_SPEC)
