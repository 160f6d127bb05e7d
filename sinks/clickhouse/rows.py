"""Kafka records → ClickHouse rows: the pieces every table declaration uses.

A row is a list of the Python values clickhouse-connect inserts: tz-aware UTC ``datetime``,
``uuid.UUID``, ``int``, ``float``, ``bool``, ``str``, ``None`` (Nullable columns) and lists of
tuples, in the order of its table's columns (``sinks/clickhouse/tables.py``). ``_inserted_at``
is filled by the server.

Learner ids never reach a row: ``learner_key`` is a keyed pseudonym made by the function passed
as ``pseudonymize`` (see :func:`pseudonymizer`). Only the ``dlq`` table keeps raw payloads.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from schemas.base import readable

Pseudonymize = Callable[[str], str]
Row = list[object]
# A column's value check: (value, column name) -> the value, or _Invalid
Check = Callable[[object, str], object]


class RowError(ValueError):
    """A Kafka record that cannot become a row; the message names topic, partition and offset.

    ``dlq_reason`` is the dead-letter reason for it (``malformed_json``, ``unknown_type`` or
    ``invalid``). The message carries no field values: they may hold a learner id.
    """

    def __init__(
        self, topic: str, partition: int, offset: int, reason: str, dlq_reason: str = "invalid"
    ) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.reason = reason
        self.dlq_reason = dlq_reason


class Invalid(ValueError):
    """Raised while converting; the caller adds where the record came from."""


class Malformed(Invalid):
    """Not JSON at all."""


def pseudonymizer(secret: bytes) -> Pseudonymize:
    """The keyed pseudonym of a learner id: HMAC-SHA256 under ``secret``, as 64 hex digits.

    The same secret gives the same function (and its cache of recent ids). Without the secret a
    pseudonym cannot be linked back to a learner id; with it, a known id can be looked up.
    """
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("the pseudonym secret must be at least 16 bytes (32 random bytes is good)")
    return _pseudonymizer(secret)


@functools.lru_cache(maxsize=8)
def _pseudonymizer(secret: bytes) -> Pseudonymize:
    @functools.lru_cache(maxsize=1 << 16)
    def pseudonymize(learner_id: str) -> str:
        return hmac.new(secret, learner_id.encode("utf-8"), hashlib.sha256).hexdigest()

    return pseudonymize


def dlq_reason(exc: ValidationError) -> str:
    kinds = {e["type"] for e in exc.errors(include_input=False, include_url=False)}
    if "json_invalid" in kinds:
        return "malformed_json"
    if kinds & {"union_tag_invalid", "union_tag_not_found"}:
        return "unknown_type"
    return "invalid"


def describe(exc: ValidationError) -> str:
    # Locations and messages only: the input values may hold a learner id.
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(record)'}: {readable(e, with_input=False)}"
        for e in exc.errors(include_input=False, include_url=False)
    )


# --- value checks: what a model allows that a column cannot hold --------------------------------


def uint(bits: int) -> Check:
    def check(value: object, name: str) -> object:
        if not 0 <= value < 2**bits:  # type: ignore[operator]
            raise Invalid(f"{name} = {value} does not fit UInt{bits}")
        return value

    return check


def opt_uint(bits: int) -> Check:
    inner = uint(bits)
    return lambda value, name: None if value is None else inner(value, name)


def int64(value: object, name: str) -> object:
    if not -(2**63) <= value < 2**63:  # type: ignore[operator]
        raise Invalid(f"{name} = {value} does not fit Int64")
    return value


def time(value: object, name: str) -> object:
    # DateTime64(3) covers 1900..2299; the collector already bounds occurred_at much tighter.
    assert isinstance(value, datetime)
    if not 1900 <= value.year <= 2299:
        raise Invalid(f"{name} year {value.year} is outside 1900..2299")
    return value


def opt_time(value: object, name: str) -> object:
    return None if value is None else time(value, name)
