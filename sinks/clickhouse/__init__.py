"""The ClickHouse side of the sink: numbered migrations and Kafka-record → row conversion.

- :func:`migrate` / :func:`pending` apply and list the SQL files in ``migrations/``
  (raw tables, materialized views), recorded in ``schema_migrations``.
- :func:`convert` turns one Kafka record into the values of one row of
  ``TABLE_FOR_TOPIC[topic]``, in ``COLUMNS[table]`` order; :func:`pseudonymizer` makes the keyed
  pseudonym that stands for the learner id in every analytics table.

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
from sinks.clickhouse.rows import (
    COLUMNS,
    TABLE_FOR_TOPIC,
    RowError,
    convert,
    pseudonymizer,
)

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
