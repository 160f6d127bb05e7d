"""The settlement sender's intent store: one SQLite file per chain and account in the state
folder, holding every intent, every signed attempt of it, and the local nonce ledger.

An intent is written (committed, ``synchronous=FULL``) with its signed raw transaction before
that transaction is broadcast, so a crash at any point leaves either nothing sent or bytes
that can be sent again unchanged. The ``nonce`` column is unique: a nonce belongs to one intent
for ever. The file is locked (``flock``) while a store is open, so a second sender on the same
file fails at once instead of racing for nonces.

Schema (``schema_version`` 1)::

    meta(key PRIMARY KEY, value)    schema_version, chain_id, address, genesis, next_nonce
    intents(intent_id PRIMARY KEY, kind, nonce UNIQUE, to_address, data, value, gas, meta,
            status, tx_hash, block_number, block_hash, receipt_status, gas_used,
            created_at, updated_at)
    attempts(tx_hash PRIMARY KEY, intent_id, n, raw_tx, max_fee_per_gas,
             max_priority_fee_per_gas, signed_at, broadcast_at)

``tx_hash`` of an intent is its current attempt: the one last sent, or the one mined. Wei
amounts (value, fees) are decimal text (they overflow SQLite's 64-bit integers); hashes, data
and raw transactions are ``0x`` hex; times are Unix seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import LearnstreamError
from settlement.contract import ChainError

SCHEMA_VERSION = 1
STATUSES = ("pending", "mined", "confirmed", "failed")
OPEN = ("pending", "mined")
FINAL = ("confirmed", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
    intent_id      TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    nonce          INTEGER NOT NULL UNIQUE CHECK (nonce >= 0),
    to_address     TEXT NOT NULL,
    data           TEXT NOT NULL,
    value          TEXT NOT NULL,
    gas            INTEGER NOT NULL CHECK (gas > 0),
    meta           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'mined', 'confirmed', 'failed')),
    tx_hash        TEXT NOT NULL,
    block_number   INTEGER,
    block_hash     TEXT,
    receipt_status INTEGER,
    gas_used       INTEGER,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_status ON intents (status, nonce);
CREATE TABLE IF NOT EXISTS attempts (
    tx_hash                  TEXT PRIMARY KEY,
    intent_id                TEXT NOT NULL REFERENCES intents (intent_id),
    n                        INTEGER NOT NULL,
    raw_tx                   TEXT NOT NULL,
    max_fee_per_gas          TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    signed_at                REAL NOT NULL,
    broadcast_at             REAL,
    UNIQUE (intent_id, n)
);
"""


# --- errors: each says what happened and what to do --------------------------------------------

_FAULT = (
    "Another process sends with the oracle key: a deployment fault. Run one settlement service "
    "per key and chain, and send nothing else with that key."
)


class NonceConflict(LearnstreamError):
    """The oracle account's nonce was used by a transaction this sender did not sign."""

    @classmethod
    def taken(cls, intent: Intent, address: str, chain_id: int) -> NonceConflict:
        return cls(
            f"nonce {intent.nonce} of {address} on chain {chain_id} was used by a transaction "
            f"this sender did not sign: none of intent {intent.intent_id}'s attempts "
            f"({', '.join(intent.hashes)}) is on the chain. {_FAULT} Intent "
            f"{intent.intent_id} was NOT executed and its nonce is never reused; see what nonce "
            f"{intent.nonce} did on-chain before acting."
        )

    @classmethod
    def ahead(cls, ledger: int, latest: int, address: str, chain_id: int) -> NonceConflict:
        return cls(
            f"nonces {ledger}..{latest - 1} of {address} on chain {chain_id} were used by "
            f"transactions this sender did not sign (its ledger is at {ledger}). {_FAULT} If "
            "you sent them yourself on purpose, open the sender once with resync_nonce=True."
        )


class IntentConflict(LearnstreamError):
    """An intent id already names a different call."""

    @classmethod
    def of(cls, intent: Intent) -> IntentConflict:
        return cls(
            f"intent {intent.intent_id!r} is already stored (nonce {intent.nonce}, "
            f"{intent.status}) with a different call; it stands and nothing new was sent. An "
            "intent id must name one call: derive it from the content."
        )


class UnknownIntent(LearnstreamError):
    """No intent with this id."""


class SendTimeout(LearnstreamError):
    """An intent was not final in time."""

    @classmethod
    def of(cls, intent: Intent, timeout: float) -> SendTimeout:
        return cls(
            f"intent {intent.intent_id} (nonce {intent.nonce}) is still {intent.status} after "
            f"{timeout:.0f} s (attempts: {', '.join(intent.hashes)}); it stays stored and "
            "poll() keeps following it"
        )


class ChainRewound(LearnstreamError):
    """The chain no longer holds a transaction this sender saw final."""

    @classmethod
    def of(cls, intent: Intent, latest: int, address: str, path: Path) -> ChainRewound:
        return cls(
            f"intent {intent.intent_id} was final in block {intent.block_number} (tx "
            f"{intent.tx_hash}, nonce {intent.nonce}), but the chain has only {latest} "
            f"transactions from {address}: it was reset, or reorganised deeper than the "
            f"confirmation depth. Reconcile before sending again; to start over on a fresh "
            f"chain, move {path} aside."
        )


class TransactionFailed(ChainError):
    """An intent's transaction was mined and reverted (receipt status 0)."""

    @classmethod
    def of(cls, intent: Intent, reason: str) -> TransactionFailed:
        return cls(
            f"intent {intent.intent_id} ({intent.kind}, nonce {intent.nonce}) FAILED: tx "
            f"{intent.tx_hash} reverted in block {intent.block_number} ({reason}). The sink "
            f"must never send a reverting transaction: check the call's inputs (meta "
            f"{intent.meta})."
        )


class BroadcastRejected(ChainError):
    """The node refused a signed transaction (not a duplicate)."""

    @classmethod
    def of(cls, intent: Intent, tx_hash: str, message: str, hint: str) -> BroadcastRejected:
        return cls(
            f"the node refused intent {intent.intent_id} (nonce {intent.nonce}, tx {tx_hash}): "
            f"{message}.{hint} It stays stored and pending; poll() sends it again."
        )


class StoreLocked(LearnstreamError):
    """Another process has this sender's intent store open."""


class StoreMismatch(LearnstreamError):
    """The intent store belongs to another chain, account or schema."""

    @classmethod
    def genesis(cls, path: Path, stored: str, found: str | None, node: str) -> StoreMismatch:
        return cls(
            f"{path} belongs to a chain whose genesis block is {stored}, but the node at "
            f"{node} starts with {found}. A fresh local chain? Then its intents are void: move "
            "the file aside (and deploy the escrow again). Else point "
            "LEARNSTREAM_CHAIN__RPC_URL at the right node."
        )


@dataclass(frozen=True)
class Attempt:
    """One signed transaction for an intent; every attempt of an intent has its nonce."""

    tx_hash: str
    n: int
    raw_tx: str
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    signed_at: float
    broadcast_at: float | None


@dataclass(frozen=True)
class Intent:
    """What the caller asked to send, and where its transaction stands.

    ``status``: ``pending`` (signed, not in a canonical block), ``mined`` (in a canonical
    block, fewer than the confirmation depth on top), ``confirmed`` (deep enough, succeeded) or
    ``failed`` (deep enough, reverted: ``receipt_status`` 0).
    """

    intent_id: str
    kind: str
    nonce: int
    to: str
    data: str
    value: int
    gas: int
    meta: dict[str, Any]
    status: str
    tx_hash: str
    block_number: int | None
    block_hash: str | None
    receipt_status: int | None
    gas_used: int | None
    created_at: float
    updated_at: float
    attempts: tuple[Attempt, ...]

    @property
    def done(self) -> bool:
        return self.status in FINAL

    @property
    def current(self) -> Attempt:
        """The attempt last sent (or mined)."""
        return next(a for a in self.attempts if a.tx_hash == self.tx_hash)

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(a.tx_hash for a in self.attempts)


@dataclass(frozen=True)
class Change:
    """What :meth:`Sender.poll` (or :meth:`Sender.rebroadcast`) did or saw for one intent.

    ``event``: ``broadcast`` (sent, or sent again), ``replaced`` (a new attempt with higher
    fees), ``mined``, ``reorged`` (its block left the chain; back to pending), ``confirmed``,
    ``failed`` (final and reverted), ``rejected`` (the node refused it; it stays pending).
    """

    event: str
    intent: Intent
    detail: str = ""


class IntentStore:
    """The SQLite file behind one sender. Not thread-safe: one sender per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = (path.parent / f"{path.name}.lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreLocked(
                f"{path} is open in another sender. There must be one sender per oracle key "
                "and chain: stop the other settlement process first."
            ) from None
        self._db = sqlite3.connect(path, isolation_level=None)  # transactions made explicit
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)  # idempotent; executescript commits on its own
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            self.close()
            raise StoreMismatch(f"{path} has schema {version}; this sender reads {SCHEMA_VERSION}")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._db.close()
        self._lock.close()  # releases the flock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE``), committed on exit, rolled back on
        error. Nested use joins the outer one."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- meta and the nonce ledger ------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def next_nonce(self) -> int | None:
        """The ledger: the nonce the next new intent gets (None before the first start)."""
        value = self.get_meta("next_nonce")
        return None if value is None else int(value)

    def set_next_nonce(self, nonce: int) -> None:
        self.set_meta("next_nonce", str(nonce))

    # --- intents ------------------------------------------------------------------------------

    def get(self, intent_id: str) -> Intent | None:
        row = self._db.execute("SELECT * FROM intents WHERE intent_id = ?", (intent_id,))
        found = row.fetchone()
        return None if found is None else self._intent(found)

    def by_nonce(self, nonce: int) -> Intent | None:
        found = self._db.execute("SELECT * FROM intents WHERE nonce = ?", (nonce,)).fetchone()
        return None if found is None else self._intent(found)

    def list(self, *statuses: str) -> list[Intent]:
        """Intents in nonce order, all or those with one of ``statuses``."""
        if statuses:
            marks = ", ".join("?" * len(statuses))
            rows = self._db.execute(
                f"SELECT * FROM intents WHERE status IN ({marks}) ORDER BY nonce",  # noqa: S608
                statuses,
            )
        else:
            rows = self._db.execute("SELECT * FROM intents ORDER BY nonce")
        return [self._intent(r) for r in rows.fetchall()]

    def insert(
        self,
        *,
        intent_id: str,
        kind: str,
        nonce: int,
        to: str,
        data: str,
        value: int,
        gas: int,
        meta: dict[str, Any],
        attempt: Attempt,
    ) -> None:
        """A new intent with its first attempt; moves the ledger past its nonce. Call inside
        :meth:`transaction` together with reading :meth:`next_nonce`."""
        now = time.time()
        self._db.execute(
            "INSERT INTO intents (intent_id, kind, nonce, to_address, data, value, gas, meta, "
            "status, tx_hash, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (intent_id, kind, nonce, to, data, str(value), gas, json.dumps(meta, sort_keys=True),
             attempt.tx_hash, now, now),
        )  # fmt: skip
        self._insert_attempt(intent_id, attempt)
        self.set_next_nonce(max(nonce + 1, self.next_nonce() or 0))

    def add_attempt(self, intent_id: str, attempt: Attempt) -> None:
        """A replacement: a new attempt, now the intent's current one."""
        with self.transaction():
            self._insert_attempt(intent_id, attempt)
            self._update(intent_id, tx_hash=attempt.tx_hash)

    def mark_broadcast(self, tx_hash: str, at: float) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE attempts SET broadcast_at = ? WHERE tx_hash = ?", (at, tx_hash)
            )

    def set_mined(self, intent_id: str, receipt: dict[str, Any]) -> None:
        with self.transaction():
            self._update(
                intent_id,
                status="mined",
                tx_hash=receipt["tx_hash"],
                block_number=receipt["block_number"],
                block_hash=receipt["block_hash"],
                receipt_status=receipt["status"],
                gas_used=receipt["gas_used"],
            )

    def set_status(self, intent_id: str, status: str) -> None:
        """``confirmed``/``failed`` keep the receipt; ``pending`` (after a reorganisation)
        forgets it but keeps the current attempt: the bytes that were mined."""
        assert status in STATUSES
        with self.transaction():
            if status == "pending":
                self._update(intent_id, status=status, block_number=None, block_hash=None,
                             receipt_status=None, gas_used=None)  # fmt: skip
            else:
                self._update(intent_id, status=status)

    # --- rows ---------------------------------------------------------------------------------

    def _insert_attempt(self, intent_id: str, a: Attempt) -> None:
        self._db.execute(
            "INSERT INTO attempts (tx_hash, intent_id, n, raw_tx, max_fee_per_gas, "
            "max_priority_fee_per_gas, signed_at, broadcast_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (a.tx_hash, intent_id, a.n, a.raw_tx, str(a.max_fee_per_gas),
             str(a.max_priority_fee_per_gas), a.signed_at, a.broadcast_at),
        )  # fmt: skip

    def _update(self, intent_id: str, **columns: Any) -> None:
        columns["updated_at"] = time.time()
        sets = ", ".join(f"{name} = ?" for name in columns)
        self._db.execute(
            f"UPDATE intents SET {sets} WHERE intent_id = ?",  # noqa: S608 (names are ours)
            (*columns.values(), intent_id),
        )

    def _intent(self, row: sqlite3.Row) -> Intent:
        attempts = tuple(
            Attempt(
                tx_hash=a["tx_hash"],
                n=a["n"],
                raw_tx=a["raw_tx"],
                max_fee_per_gas=int(a["max_fee_per_gas"]),
                max_priority_fee_per_gas=int(a["max_priority_fee_per_gas"]),
                signed_at=a["signed_at"],
                broadcast_at=a["broadcast_at"],
            )
            for a in self._db.execute(
                "SELECT * FROM attempts WHERE intent_id = ? ORDER BY n", (row["intent_id"],)
            ).fetchall()
        )
        return Intent(
            intent_id=row["intent_id"],
            kind=row["kind"],
            nonce=row["nonce"],
            to=row["to_address"],
            data=row["data"],
            value=int(row["value"]),
            gas=row["gas"],
            meta=json.loads(row["meta"]),
            status=row["status"],
            tx_hash=row["tx_hash"],
            block_number=row["block_number"],
            block_hash=row["block_hash"],
            receipt_status=row["receipt_status"],
            gas_used=row["gas_used"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            attempts=attempts,
        )


def rpc_message(exc: Any) -> str:
    """The node's own message of a JSON-RPC error (web3's ``Web3RPCError``)."""
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(exc.message)
