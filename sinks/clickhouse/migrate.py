"""Numbered SQL migrations, applied in order and recorded in ``schema_migrations``.

A migration is a file ``NNNN_name.sql`` in :data:`MIGRATIONS_DIR`. It may hold several
statements separated by ``;`` (a ``;`` inside a string literal, a quoted identifier or a comment
does not count). Statements are unqualified: they run in the client's database.

The only text substituted into SQL is ``{raw_ttl_days}`` and ``{dlq_ttl_days}``, validated as
positive ints. Everything else is static or bound. Each applied migration is recorded with the
SHA-256 of its file, so editing an applied file is an error, not a silent divergence: add a new
numbered file instead. The recorded checksum is that of the file (the template), so a changed TTL
setting does not count as an edit; apply a new TTL to existing tables with :func:`alter_ttl`.

Statements use ``IF NOT EXISTS``, so a migration that failed half-way can simply be run again.
Two runners must not apply migrations to the same database at the same time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.errors import LearnstreamError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
"""

# Event tables get {raw_ttl_days} on occurred_at, the dlq {dlq_ttl_days} on received_at.
RAW_TABLES = (
    "views", "playback", "playback_qos", "quiz_results", "enrollments", "live_qos", "immersive_qos",
)  # fmt: skip

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = frozenset({"raw_ttl_days", "dlq_ttl_days"})
MAX_TTL_DAYS = 100 * 366


class MigrationError(LearnstreamError):
    """The migrations cannot be applied as they are; the message says what to do."""


class ChecksumMismatchError(MigrationError):
    """An applied migration's file has changed since it was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name without ".sql", e.g. "0001_raw_tables"
    checksum: str  # SHA-256 of the file text with \n line ends
    statements: tuple[str, ...]

    def render(self, values: Mapping[str, int]) -> list[str]:
        """The statements with their placeholders replaced by ``values``."""
        return [_substitute(statement, values) for statement in self.statements]


# --- splitting -----------------------------------------------------------------------------


def _segments(sql: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` pieces of ``sql``: kind is code, quoted, comment or end (a ``;``)."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                elif sql[j] == ch and j + 1 < n and sql[j + 1] == ch:
                    j += 2  # '' inside '…' is a quote
                elif sql[j] == ch:
                    break
                else:
                    j += 1
            if j >= n:
                raise MigrationError(f"unterminated {ch}…{ch} starting at character {i}")
            yield "quoted", sql[i : j + 1]
            i = j + 1
        elif sql.startswith(("--", "# ", "#!"), i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            yield "comment", sql[i:j]
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise MigrationError(f"unterminated /* comment starting at character {i}")
            yield "comment", sql[i : j + 2]
            i = j + 2
        elif ch == ";":
            yield "end", ";"
            i += 1
        else:
            j = i
            while j < n and sql[j] not in "'\"`;#/-":
                j += 1
            if j == i:  # a lone / or - that starts no comment
                j = i + 1
            yield "code", sql[i:j]
            i = j


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script, without comments or the separating ``;``.

    A ``;`` inside a string literal, a quoted identifier or a comment does not end a statement.
    Statements that hold only whitespace and comments are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    for kind, text in _segments(sql + ";"):
        if kind == "end":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
        elif kind == "comment":
            current.append(" ")
        else:
            current.append(text)
            has_code = has_code or bool(text.strip())
    return statements


def _substitute(statement: str, values: Mapping[str, int]) -> str:
    out: list[str] = []
    for kind, text in _segments(statement):
        if kind == "code":
            text = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
        out.append(text)
    return "".join(out)


def _check_placeholders(name: str, statement: str) -> None:
    for kind, text in _segments(statement):
        if kind == "code":
            unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS
            if unknown:
                raise MigrationError(
                    f"migration {name} uses unknown placeholders {sorted(unknown)}; "
                    f"known: {sorted(PLACEHOLDERS)}"
                )


# --- loading -------------------------------------------------------------------------------


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``directory``, in version order."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: a migration file is named NNNN_lowercase_name.sql, e.g. 0003_add_x.sql"
            )
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        version, name = int(match[1]), path.stem
        if version in found:
            raise MigrationError(
                f"two migrations with version {version}: {found[version].name}, {name}"
            )
        statements = tuple(split_statements(text))
        if not statements:
            raise MigrationError(f"{path}: no statements")
        for statement in statements:
            _check_placeholders(name, statement)
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        found[version] = Migration(version, name, checksum, statements)
    return [found[v] for v in sorted(found)]


def _applied(client: Client) -> dict[int, tuple[str, str]]:
    exists = client.query(
        "SELECT count() FROM system.tables "
        "WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": MIGRATIONS_TABLE},
    ).first_row[0]
    if not exists:
        return {}
    rows = client.query("SELECT version, name, checksum FROM schema_migrations").result_rows
    return {int(version): (name, checksum) for version, name, checksum in rows}


def _plan(client: Client, directory: Path) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones against their files."""
    migrations = load_migrations(directory)
    by_version = {m.version: m for m in migrations}
    applied = _applied(client)
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {name} applied, but {directory} has no version "
                f"{version}: this code is older than the database"
            )
        if migration.name != name or migration.checksum != checksum:
            raise ChecksumMismatchError(
                f"migration {name} was applied with checksum {checksum[:12]}…, but "
                f"{migration.name}.sql now has {migration.checksum[:12]}…: an applied migration "
                "must not change; restore the file and add a new numbered migration instead"
            )
    todo = [m for m in migrations if m.version not in applied]
    latest = max(applied, default=0)
    early = [m.name for m in todo if m.version < latest]
    if early:
        raise MigrationError(
            f"migrations {early} are older than the latest applied version {latest}: "
            "renumber them after it"
        )
    return todo


def _ttl_days(name: str, value: int) -> int:
    if type(value) is not int or not 1 <= value <= MAX_TTL_DAYS:
        raise MigrationError(f"{name} must be an int between 1 and {MAX_TTL_DAYS}, not {value!r}")
    return value


# --- the API -------------------------------------------------------------------------------


def pending(client: Client, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Names of the migrations not applied yet, in the order :func:`migrate` would apply them."""
    return [m.name for m in _plan(client, directory)]


def migrate(
    client: Client,
    raw_ttl_days: int = 365,
    dlq_ttl_days: int = 7,
    directory: Path = MIGRATIONS_DIR,
) -> list[str]:
    """Apply the pending migrations in order; return their names (``[]`` when up to date).

    Raises :class:`ChecksumMismatchError` when an applied migration's file has changed, and
    :class:`MigrationError` when a statement fails (earlier migrations stay applied).
    """
    values = {
        "raw_ttl_days": _ttl_days("raw_ttl_days", raw_ttl_days),
        "dlq_ttl_days": _ttl_days("dlq_ttl_days", dlq_ttl_days),
    }
    client.command(SCHEMA_MIGRATIONS_DDL)
    done: list[str] = []
    for migration in _plan(client, directory):
        for number, statement in enumerate(migration.render(values), 1):
            try:
                client.command(statement)
            except ClickHouseError as exc:
                raise MigrationError(
                    f"migration {migration.name}, statement {number} failed: {exc}"
                ) from exc
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        done.append(migration.name)
    return done


def alter_ttl(client: Client, raw_ttl_days: int, dlq_ttl_days: int) -> None:
    """Set new TTLs on tables that already exist (the migrations set them only on creation)."""
    raw = _ttl_days("raw_ttl_days", raw_ttl_days)
    dlq = _ttl_days("dlq_ttl_days", dlq_ttl_days)
    # Table names are static, and the day counts validated ints: nothing here comes from input.
    for table in RAW_TABLES:
        client.command(
            f"ALTER TABLE {table} MODIFY TTL toDateTime(occurred_at) + INTERVAL {raw} DAY"
        )
    client.command(f"ALTER TABLE dlq MODIFY TTL toDateTime(received_at) + INTERVAL {dlq} DAY")
