"""Kafka plumbing: the topic catalogue, producer/consumer helpers, collector and simulator."""
