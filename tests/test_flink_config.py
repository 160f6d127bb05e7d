"""The Flink jobs' Kafka settings, as docs/architecture.md (Exactly-once) requires (no job
started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.flink import completion, qos
from jobs.flink.runtime import JobConfigError, RunOptions, kafka_sink_options, kafka_source_options
from jobs.launch import Launcher
from learnstream.settings import FlinkSettings, Settings


def launcher(settings: Settings, tmp: Path) -> Launcher:
    return Launcher(settings.kafka, settings.flink, tmp / "java", tmp / "jars", tmp / "state")


def test_sinks_are_exactly_once_within_the_brokers_transaction_limit() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    props = kafka_sink_options(settings, "qos.agg.1m", "p", RunOptions())
    assert props["sink.delivery-guarantee"] == "exactly-once"
    assert int(props["properties.transaction.timeout.ms"]) <= 900_000  # broker default max
    with pytest.raises(ValidationError, match="less than or equal to 900000"):
        FlinkSettings(transaction_timeout_ms=3_600_000)


def test_sources_read_committed_only() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for options in (RunOptions(), RunOptions(start="earliest", bounded=True)):
        props = kafka_source_options(settings, ["learner.qos"], "g", options)
        assert props["properties.isolation.level"] == "read_committed"
    assert "scan.bounded.mode" in kafka_source_options(
        settings, ["t"], "g", RunOptions(bounded=True)
    )
    assert "read_committed" in qos.source_ddl(settings, RunOptions())
    assert completion.GROUP_ID != qos.GROUP_ID


def test_job_options_and_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(JobConfigError, match="committed, earliest, latest"):
        RunOptions(start="newest")
    with pytest.raises(JobConfigError, match="unknown job 'reco'"):
        launcher(Settings(_env_file=None), tmp_path).command("reco", RunOptions())  # type: ignore[call-arg]


def test_job_process_gets_the_callers_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    settings = settings.model_copy(
        update={"flink": FlinkSettings(allowed_lateness_s=30, score_step=0.05)}
    )
    env = launcher(settings, tmp_path).settings_env("qos")
    assert env["LEARNSTREAM_FLINK__ALLOWED_LATENESS_S"] == "30.0"
    assert env["LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS"] == settings.kafka.bootstrap_servers
    rebuilt = Settings(_env_file=None, **{})  # type: ignore[call-arg]
    assert rebuilt.flink.score_step == 0.01  # the environment of this process is untouched
