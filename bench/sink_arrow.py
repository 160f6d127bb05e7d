"""The sink benchmark's baseline, in a process of its own: the rows of the event topics inserted
straight into ClickHouse as Arrow, with nothing of the sink around them.

It reads every record of the event topics, converts each with the sink's own
:func:`sinks.clickhouse.tables.convert`, builds one Arrow table per ClickHouse table (columns in
:data:`~sinks.clickhouse.tables.COLUMNS` order, Arrow types from the table's ClickHouse types) and
then inserts them with ``client.insert_arrow`` in chunks of 50,000 rows. Only the inserts are
timed; reading and converting are reported separately.

Usage: python -m bench.sink_arrow BOOTSTRAP DSN
(``DSN`` names a fresh, migrated database: ``http://host:port/<database>``.)
Prints one JSON line: ``{"rows", "per_table", "read_s", "convert_s", "arrow_s", "insert_s",
"inserts", "first_to_last_s", "rows_after_first"}``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from learnstream.settings import get_settings
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import RAW_TABLES
from sinks.clickhouse.rows import pseudonymizer
from sinks.clickhouse.tables import COLUMNS, TABLE_FOR_TOPIC, convert
from streams.kafka import read_to_end

CHUNK_ROWS = 50_000
EVENT_TOPICS = sorted(t for t, table in TABLE_FOR_TOPIC.items() if table in RAW_TABLES)

_SIMPLE: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UUID": pa.string(),  # ClickHouse parses the text form
    "Bool": pa.bool_(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "UInt128": pa.string(),
    "UInt256": pa.string(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Int128": pa.string(),
    "Int256": pa.string(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Date": pa.date32(),
    "DateTime": pa.timestamp("s", tz="UTC"),
}
_WRAPPED = re.compile(r"^(\w+)\((.*)\)$", re.DOTALL)
_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a type, e.g. ``Float64, Array(Tuple(A, B))``."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def arrow_type(ch_type: str) -> pa.DataType:
    """The Arrow type ClickHouse reads into ``ch_type`` (the subset the sink's tables use)."""
    ch_type = ch_type.strip()
    if ch_type in _SIMPLE:
        return _SIMPLE[ch_type]
    match = _WRAPPED.match(ch_type)
    if match is None:
        raise ValueError(f"no Arrow type for ClickHouse type {ch_type!r}")
    name, inner = match.groups()
    if name in ("Nullable", "LowCardinality"):
        return arrow_type(inner)
    if name == "Array":
        return pa.list_(arrow_type(inner))
    if name == "DateTime64":
        precision = int(_split_args(inner)[0])
        return pa.timestamp(_UNITS.get(precision, "ns"), tz="UTC")
    if name == "Tuple":
        fields = []
        for i, arg in enumerate(_split_args(inner), 1):
            parts = arg.split(None, 1)
            named = len(parts) == 2 and re.fullmatch(r"\w+", parts[0]) and "(" not in parts[0]
            field_name, field_type = (parts[0], parts[1]) if named else (str(i), arg)
            fields.append(pa.field(field_name, arrow_type(field_type)))
        return pa.struct(fields)
    if name == "Map":
        key, value = _split_args(inner)
        return pa.map_(arrow_type(key), arrow_type(value))
    raise ValueError(f"no Arrow type for ClickHouse type {ch_type!r}")


def _prepare(arrow: pa.DataType) -> Callable[[object], object] | None:
    """What each Python value needs before ``pa.array`` takes it (``None``: nothing).

    UUIDs and big ints (UInt256) go as text, which ClickHouse parses; tuples already fit structs.
    """
    if pa.types.is_string(arrow):
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    if pa.types.is_list(arrow):
        item = _prepare(arrow.value_type)
        if item is None:
            return None
        return lambda v: None if v is None else [item(x) for x in v]  # type: ignore[attr-defined]
    return None


def column_types(client: Client, table: str) -> dict[str, str]:
    result = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {table:String}",
        parameters={"table": table},
    )
    return {str(name): str(kind) for name, kind in result.result_rows}


def build_table(rows: list[list[Any]], columns: list[str], ch_types: dict[str, str]) -> pa.Table:
    """One Arrow table from rows in ``columns`` order, typed for the ClickHouse table."""
    arrays = []
    for i, name in enumerate(columns):
        arrow = arrow_type(ch_types[name])
        values = [row[i] for row in rows]
        prepare = _prepare(arrow)
        if prepare is not None:
            values = [prepare(v) for v in values]
        arrays.append(pa.array(values, type=arrow))
    return pa.Table.from_arrays(arrays, names=columns)


def main() -> None:
    bootstrap, dsn = sys.argv[1], sys.argv[2]
    settings = get_settings()
    pseudonymize = pseudonymizer(settings.clickhouse.pseudonym_secret.get_secret_value().encode())
    client = connect(dsn)
    try:
        started = time.perf_counter()
        records = read_to_end(bootstrap, EVENT_TOPICS, timeout=120)
        read_s = time.perf_counter() - started

        started = time.perf_counter()
        rows: dict[str, list[list[Any]]] = defaultdict(list)
        for r in records:
            row = convert(r.topic, r.partition, r.offset, r.value, pseudonymize)
            if row is not None:
                rows[TABLE_FOR_TOPIC[r.topic]].append(row)
        convert_s = time.perf_counter() - started

        # pyarrow's first tz-aware conversion loads time zone data (about 1 s): not per row
        pa.array([datetime.now(UTC)], type=pa.timestamp("ms", tz="UTC"))
        started = time.perf_counter()
        tables = {
            table: build_table(table_rows, COLUMNS[table], column_types(client, table))
            for table, table_rows in sorted(rows.items())
        }
        arrow_s = time.perf_counter() - started

        done: list[tuple[float, int]] = []  # (end of insert, rows) per insert
        started = time.perf_counter()
        for table, arrow_table in tables.items():
            for offset in range(0, arrow_table.num_rows, CHUNK_ROWS):
                chunk = arrow_table.slice(offset, CHUNK_ROWS)
                client.insert_arrow(table, chunk)
                done.append((time.perf_counter(), chunk.num_rows))
        insert_s = time.perf_counter() - started
    finally:
        client.close()
    total = sum(n for _, n in done)
    print(
        json.dumps({
            "rows": total,
            "per_table": {table: t.num_rows for table, t in tables.items()},
            "read_s": read_s,
            "convert_s": convert_s,
            "arrow_s": arrow_s,
            "insert_s": insert_s,
            "inserts": len(done),
            # the analogue of "first visible row to last", without polling
            "first_to_last_s": done[-1][0] - done[0][0] if done else 0.0,
            "rows_after_first": total - done[0][1] if done else 0,
        }),
        flush=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
