"""Fixtures: real local services on free ports, each in a state folder of its own.

The session stack (Kafka broker, embedded ClickHouse server, anvil) is started once and stopped
at the end; tests that stop or break a stack start one of their own with :func:`make_stack`.
Nothing here touches a stack on the default ports, so `make demo` and `make test` can run side
by side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from learnstream.settings import Settings
from learnstream.stack import Stack
from learnstream.stack.testing import throwaway_settings

ROOT = Path(__file__).resolve().parents[1]


def stack_settings(state_dir: Path, services: list[str] | None = None) -> Settings:
    """Settings for a stack on free ports under ``state_dir`` (never the user's .env)."""
    return throwaway_settings(state_dir, services)


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return stack_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def stack(session_settings: Settings) -> Iterator[Stack]:
    """The session's stack, started here and stopped here."""
    stack = Stack(session_settings)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start-your-own stacks for tests that stop, restart or break one; all stopped after."""
    made: list[Stack] = []

    def make(services: list[str] | None = None, settings: Settings | None = None) -> Stack:
        state = tmp_path / f"stack{len(made)}"
        built = Stack(settings or stack_settings(state, services))
        made.append(built)
        return built

    yield make
    for built in made:
        built.down()


@pytest.fixture
def bootstrap(stack: Stack) -> str:
    return stack.settings.kafka.bootstrap_servers


@pytest.fixture
def ch_database(stack: Stack) -> Iterator[str]:
    """A fresh ClickHouse database on the session server, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = clickhouse_connect.get_client(dsn=stack.settings.clickhouse.dsn)
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture
def ch(stack: Stack, ch_database: str) -> Iterator[Client]:
    client = clickhouse_connect.get_client(
        dsn=stack.settings.clickhouse.dsn, database=ch_database, tz_mode="aware"
    )
    try:
        yield client
    finally:
        client.close()


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


# The collector fixture lives with its helpers; importing it here registers it for all tests.
from tests.chain_fixtures import chain, deployed  # noqa: E402, F401
from tests.collector_fixtures import collector  # noqa: E402, F401
from tests.live_fixtures import live  # noqa: E402, F401
