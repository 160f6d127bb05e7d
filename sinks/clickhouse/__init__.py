"""The ClickHouse side of the sinks: migrations, the table registry, and the sink.

- :func:`migrate` / :func:`pending` apply and list the SQL files in ``migrations/``
  (raw tables, materialized views), recorded in ``schema_migrations``.
- ``tables.TABLES`` declares every table once (name, source topics, model, columns);
  :func:`convert` turns one Kafka record into the values of one row of
  ``TABLE_FOR_TOPIC[topic]``, in ``COLUMNS[table]`` order; :func:`pseudonymizer` makes the keyed
  pseudonym that stands for the learner id in every analytics table.
- ``destination.ClickHouseDestination`` is the sink's destination on the shared runner
  (``sinks.runner``); ``sink.ClickHouseSink`` is the runner with it.

docs/analytics.md describes the tables, the views and the analyst queries.
"""

from sinks.clickhouse.migrate import (
    MIGRATIONS_DIR,
    ChecksumMismatchError,
    MigrationError,
    alter_ttl,
    migrate,
    pending,
    split_statements,
)
from sinks.clickhouse.rows import RowError, pseudonymizer
from sinks.clickhouse.tables import COLUMNS, TABLE_FOR_TOPIC, convert

__all__ = [
    "COLUMNS",
    "MIGRATIONS_DIR",
    "TABLE_FOR_TOPIC",
    "ChecksumMismatchError",
    "MigrationError",
    "RowError",
    "alter_ttl",
    "convert",
    "migrate",
    "pending",
    "pseudonymizer",
    "split_statements",
]
