"""The local stack: a real Kafka broker, the embedded ClickHouse server and anvil."""

from learnstream.stack.manager import ServiceStatus, Stack

__all__ = ["ServiceStatus", "Stack"]
