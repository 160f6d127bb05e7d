"""The CLI's --help on every level, settings from the environment, and .env.example."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from learnstream.cli import app
from learnstream.settings import Settings, env_example, env_var_names
from tests.conftest import ROOT

runner = CliRunner()


def command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_cli_help_works_on_every_level() -> None:
    paths = command_paths()
    expected = [
        ["stack", "up"],
        ["stack", "down"],
        ["stack", "status"],
        ["stack", "logs"],
        ["collector"],
        ["collector", "keygen"],
        ["simulate"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "replay"],
        ["catalog", "load"],
        ["sinks", "migrate"],
        ["sinks", "clickhouse"],
        ["sql"],
        ["bench"],
        ["demo"],
        ["settings"],
        ["dashboards", "build"],
        ["report"],
    ]
    assert [p for p in expected if p not in paths] == []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_settings_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNSTREAM_KAFKA__PORT", "19092")
    monkeypatch.setenv("LEARNSTREAM_CLICKHOUSE__DSN", "http://ch.example:8123")
    monkeypatch.setenv("LEARNSTREAM_TOPICS__OVERRIDES", '{"learner.qos": {"partitions": 12}}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"  # follows the local port
    assert settings.clickhouse.dsn == "http://ch.example:8123"
    assert settings.topics.overrides == {"learner.qos": {"partitions": 12}}


def test_settings_reject_bad_values_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEARNSTREAM_KAFKA__PORT", "not-a-port")
    with pytest.raises(ValueError, match=r"kafka\.port"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_settings_command_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNSTREAM_CLICKHOUSE__PASSWORD", "hunter2")
    from learnstream.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["settings"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert "test test test" not in result.output


def test_env_example_lists_every_variable_and_is_current() -> None:
    text = (ROOT / ".env.example").read_text()
    assert text == env_example(), "stale: run `learnstream settings --env-example > .env.example`"
    listed = {line[2:].split("=")[0] for line in text.splitlines() if line.startswith("# LEARN")}
    assert listed == set(env_var_names())
