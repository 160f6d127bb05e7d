"""The HTTP collector: the one way in for platform clients.

Every event is validated and keyed, durably written to Kafka, and only then acknowledged; every
bad event is rejected with a reason and kept in the dead-letter topic.
"""

from streams.collector.app import create_app
from streams.collector.auth import generate_key, hash_key

__all__ = ["create_app", "generate_key", "hash_key"]
