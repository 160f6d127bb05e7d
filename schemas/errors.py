"""The ground floor of learnstream's errors: it imports nothing of the project, so every part
can raise them and the CLI can turn each into a message and an exit code.

A message says what went wrong and what to do next. Exit codes: 1 for a generic failure; 3-6
for the local stack (see ``learnstream.errors``); 10-12 for a part that cannot be reached.
"""

from __future__ import annotations


class LearnstreamError(Exception):
    """Base of learnstream's own errors; the CLI prints the message and exits non-zero."""

    exit_code = 1


class Unreachable(LearnstreamError):
    """A service this command needs does not answer at its configured address.

    The message names the part, its address, the variable that moves it, and how to start the
    local one. Addresses are shown without credentials.
    """

    part = "a service"
    variable = ""

    def __init__(self, address: str, cause: str = "") -> None:
        self.address = address
        self.cause = cause
        hint = (
            f"Start the local stack with `learnstream stack up`, or point {self.variable} at "
            "a running one."
        )
        why = f" ({cause})" if cause else ""
        super().__init__(f"{self.part} is not reachable at {address}{why}. {hint}")


class KafkaUnreachable(Unreachable):
    part = "Kafka"
    variable = "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS"
    exit_code = 10


class ClickHouseUnreachable(Unreachable):
    part = "ClickHouse"
    variable = "LEARNSTREAM_CLICKHOUSE__DSN"
    exit_code = 11


class ChainUnreachable(Unreachable):
    part = "The chain (JSON-RPC node)"
    variable = "LEARNSTREAM_CHAIN__RPC_URL"
    exit_code = 12
