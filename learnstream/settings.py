"""Settings for every learnstream component.

One pydantic model per component, gathered in :class:`Settings`. Every value can be set from the
environment with the prefix ``LEARNSTREAM_`` and ``__`` between levels, for example
``LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``LEARNSTREAM_CLICKHOUSE__DSN=http://ch:8123``.
``.env.example`` lists every variable; a test keeps it in step with these classes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# anvil's well-known development mnemonic: its accounts are public, funded only on local chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

DAY_MS = 24 * 60 * 60 * 1000


class KafkaSettings(BaseModel):
    """Where clients find Kafka, and how the local broker runs."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list that every client uses."
    )
    host: str = Field("127.0.0.1", description="Local broker: listen address.")
    port: int = Field(9092, ge=1, le=65535, description="Local broker: client port.")
    controller_port: int = Field(9093, ge=1, le=65535, description="Local broker: KRaft port.")
    heap: str = Field("512m", pattern=r"^\d+[kmg]$", description="Local broker: JVM -Xmx/-Xms.")
    cluster_id: str = Field(
        "bGVhcm5zdHJlYW0tbG9jYQ",
        min_length=22,
        max_length=22,
        description="Local broker: KRaft cluster id used when formatting storage.",
    )

    @model_validator(mode="after")
    def _default_bootstrap(self) -> KafkaSettings:
        # A moved local broker moves its clients too, unless they were pointed elsewhere.
        if "bootstrap_servers" not in self.model_fields_set:
            self.bootstrap_servers = f"{self.host}:{self.port}"
        return self


class TopicSettings(BaseModel):
    """Defaults for the topic catalogue; per-topic overrides by name."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * DAY_MS, ge=-1, description="-1 keeps records forever.")
    dlq_retention_ms: int = Field(7 * DAY_MS, ge=-1)
    derived_retention_ms: int = Field(7 * DAY_MS, ge=-1)
    overrides: dict[str, dict[str, int | str]] = Field(
        default_factory=dict,
        description='JSON, e.g. {"learner.qos": {"partitions": 12, "retention.ms": 86400000}}',
    )


class ClickHouseSettings(BaseModel):
    """The ClickHouse every client talks to, and the local embedded server."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    dsn: str = Field(
        "http://127.0.0.1:8123",
        description="http(s)://[user[:password]@]host:port[/database] for the HTTP interface, "
        "or chdb:///path for single-process use.",
    )
    host: str = Field("127.0.0.1", description="Local embedded server: listen address.")
    port: int = Field(8123, ge=1, le=65535, description="Local embedded server: HTTP port.")
    user: str = Field("default", description="Local embedded server: accepted user.")
    password: SecretStr = Field(SecretStr(""), description="Local embedded server: password.")
    data_dir: Path | None = Field(
        None, description="Local embedded server: chdb data folder (default .stack/clickhouse)."
    )
    workers: int = Field(4, ge=1, description="Local embedded server: query threads.")
    pseudonym_secret: SecretStr = Field(
        SecretStr("learnstream-local-pseudonym-key"),
        description="HMAC key that turns learner ids into learner_key; set your own in production",
    )
    raw_ttl_days: int = Field(365, ge=1, description="TTL of the raw event tables")
    dlq_ttl_days: int = Field(7, ge=1, description="TTL of the dlq table (it holds raw payloads)")

    @model_validator(mode="after")
    def _default_dsn(self) -> ClickHouseSettings:
        if "dsn" not in self.model_fields_set:
            self.dsn = f"http://{self.host}:{self.port}"
        return self


class ChainSettings(BaseModel):
    """The EVM node: RPC address, and how the local anvil runs."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    rpc_url: str = Field("http://127.0.0.1:8545")
    host: str = Field("127.0.0.1")
    port: int = Field(8545, ge=1, le=65535)
    chain_id: int = Field(31337, ge=1)
    mnemonic: SecretStr = Field(SecretStr(DEV_MNEMONIC))
    accounts: int = Field(10, ge=1)
    state_interval_s: int = Field(
        5, ge=1, description="anvil saves its --state file this often and on a clean exit."
    )

    @model_validator(mode="after")
    def _default_rpc(self) -> ChainSettings:
        if "rpc_url" not in self.model_fields_set:
            self.rpc_url = f"http://{self.host}:{self.port}"
        return self


class CollectorSettings(BaseModel):
    """The HTTP collector: where it listens, who may post, and what it accepts."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    host: str = Field("127.0.0.1")
    port: int = Field(8080, ge=1, le=65535)
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {client_id: "sha256:<hex>"}; see `learnstream collector keygen`',
    )
    browser_clients: list[str] = Field(
        default_factory=list, description="Client ids whose keys may be used from browsers (CORS)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed for browser clients, e.g. ["https://app.example"]',
    )
    max_batch_events: int = Field(500, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_past_days: float = Field(30, gt=0, description="Reject occurred_at older than this")
    max_future_s: float = Field(300, ge=0, description="Reject occurred_at further ahead than this")
    delivery_timeout_s: float = Field(30, gt=0, description="Wait this long for Kafka to confirm")

    @field_validator("api_keys")
    @classmethod
    def _hashed(cls, value: dict[str, str]) -> dict[str, str]:
        for client, digest in value.items():
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                raise ValueError(
                    f"api key of client {client!r} must be stored hashed as sha256:<64 hex>; "
                    "make one with `learnstream collector keygen <client>`"
                )
        return value


class SinkSettings(BaseModel):
    """The ClickHouse sink: its consumer group and its batches."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    group_id: str = Field("learnstream-sink-clickhouse")
    batch_max_rows: int = Field(50_000, ge=1, description="Flush when a batch has this many rows")
    batch_max_s: float = Field(1.0, gt=0, description="... or when its oldest row waited this long")
    retry_max_s: float = Field(30.0, gt=0, description="Longest pause between insert retries")
    metrics_interval_s: float = Field(10.0, gt=0, description="pipeline.metrics period")


class FlinkSettings(BaseModel):
    """The PyFlink jobs (jobs/flink): where they run and their streaming semantics."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    python: Path = Field(
        PROJECT_ROOT / ".venv-flink" / "bin" / "python",
        description="The Flink environment's interpreter (client and Python workers).",
    )
    parallelism: int = Field(1, ge=1, description="Default operator parallelism.")
    heap: str = Field("1g", pattern=r"^\d+[kmg]$", description="Mini-cluster JVM -Xmx.")
    checkpoint_interval_s: float = Field(
        5.0, gt=0, description="Checkpoint interval: the latency floor of the derived topics."
    )
    checkpoint_dir: Path | None = Field(
        None, description="Retained checkpoints; default: <stack.state_dir>/flink/checkpoints."
    )
    transaction_timeout_ms: int = Field(
        900_000,
        ge=60_000,
        le=900_000,
        description="Kafka sink transaction timeout; at most the broker's "
        "transaction.max.timeout.ms.",
    )
    allowed_lateness_s: float = Field(
        120.0, ge=0, description="QoS: events this far behind their partition's newest still count."
    )
    dedup_ttl_h: float = Field(24.0, gt=0, description="How long a seen event_id is remembered.")
    window_state_ttl_h: float = Field(
        1.0,
        gt=0,
        description="QoS: how long a minute's aggregate state is kept after its last update.",
    )
    score_step: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Emit completion.scores when a score moves at least this much.",
    )


class RecoSettings(BaseModel):
    """The recommendation app (jobs/faust): where it serves, how it checkpoints."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    host: str = Field("127.0.0.1", description="HTTP listen address of the recommendations.")
    port: int = Field(6066, ge=1, le=65535)
    group_id: str = Field("learnstream-reco", description="Faust app id and consumer group.")
    checkpoint_path: Path | None = Field(
        None, description="Models + offsets; default: <stack.state_dir>/reco/checkpoint.pkl."
    )
    checkpoint_interval_s: float = Field(10.0, gt=0)
    metrics_interval_s: float = Field(10.0, gt=0, description="reco.metrics period")
    negatives: int = Field(2, ge=0, description="Unseen courses learned as 0 per interaction.")
    rank_every: int = Field(10, ge=1, description="Recall/NDCG on every n-th interaction.")
    dedup_ttl_h: float = Field(24.0, gt=0, description="How long a seen event_id is remembered.")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Signal weights overriding the defaults of docs/reco.md, e.g. "
        '{"purchase": 5, "view": 1, "video_completed": 0.5}.',
    )

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float]) -> dict[str, float]:
        known = {
            "view", "view_intent", "watch_base", "watch_progress", "video_completed",
            "quiz_base", "quiz_score", "purchase",
        }  # fmt: skip
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown signal weights {unknown}; known: {sorted(known)}")
        return value


class StackSettings(BaseModel):
    """The local stack manager."""

    model_config = ConfigDict(validate_default=True, extra="forbid")

    state_dir: Path = Field(PROJECT_ROOT / ".stack", description="PID files, logs and data.")
    jars_dir: Path = Field(PROJECT_ROOT / ".cache" / "jars", description="Maven-resolved jars.")
    tools_dir: Path = Field(
        PROJECT_ROOT / "tools" / "node_modules", description="npm-installed anvil and solcjs."
    )
    java_home: Path | None = Field(None, description="JDK/JRE 17+; default: JAVA_HOME, then PATH.")
    startup_timeout_s: float = Field(90.0, gt=0)
    stop_timeout_s: float = Field(20.0, gt=0)
    services: list[str] = Field(
        default_factory=lambda: ["kafka", "clickhouse", "anvil"],
        description="Which local services `stack up` starts.",
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - {"kafka", "clickhouse", "anvil"})
        if unknown:
            raise ValueError(f"unknown stack services {unknown}; known: kafka, clickhouse, anvil")
        return value


class Settings(BaseSettings):
    """All of learnstream's settings. Environment: ``LEARNSTREAM_<SECTION>__<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="LEARNSTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    chain: ChainSettings = Field(default_factory=ChainSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    reco: RecoSettings = Field(default_factory=RecoSettings)
    stack: StackSettings = Field(default_factory=StackSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and ``.env``."""
    return Settings()


def env_var_names(model: type[BaseModel] = Settings, prefix: str = "LEARNSTREAM_") -> list[str]:
    """Every environment variable the settings read, e.g. ``LEARNSTREAM_KAFKA__PORT``."""
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(env_var_names(annotation, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def _example_value(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        try:
            return str(value.relative_to(PROJECT_ROOT))
        except ValueError:
            return str(value)
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value)
    return "" if value is None else str(value)


def env_example() -> str:
    """The text of ``.env.example``: every variable, its description and default, commented out."""
    lines = [
        "# learnstream settings. Every variable is optional; the value shown is the default.",
        "# Copy to .env (read from the working directory) or export them. Generated by",
        "# `learnstream settings --env-example`; a test fails when this file is stale.",
    ]
    defaults = Settings.model_construct()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        lines += ["", f"# --- {section}: {(model.__doc__ or '').strip().splitlines()[0]}"]
        instance = getattr(defaults, section) if hasattr(defaults, section) else model()
        for name, sub in model.model_fields.items():
            if sub.description:
                lines.append(f"# {sub.description}")
            value = _example_value(getattr(instance, name))
            lines.append(f"# LEARNSTREAM_{section.upper()}__{name.upper()}={value}")
    return "\n".join(lines) + "\n"


ROOT_ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
