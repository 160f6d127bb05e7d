"""Sinks: ClickHouse migrations and sink, settlement sink."""
