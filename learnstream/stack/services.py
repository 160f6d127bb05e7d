"""The three local services: how each is checked, configured, launched and probed."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from learnstream.errors import JavaNotFoundError, MissingArtifactError

if TYPE_CHECKING:
    from learnstream.settings import Settings

STACK_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Port:
    host: str
    port: int
    setting: str  # the variable that moves it, named in the "port taken" error


class Service(ABC):
    """One local service of the stack."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.stack.state_dir

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def ports(self) -> list[Port]: ...

    @abstractmethod
    def command(self) -> list[str]:
        """Check prerequisites, write config, and return the command line."""

    @abstractmethod
    def healthy(self) -> bool:
        """One quick probe of the running service."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)


# --- Kafka -------------------------------------------------------------------------------------


def find_java(java_home: Path | None = None) -> Path:
    """A Java 17+ executable: ``java_home`` (LEARNSTREAM_STACK__JAVA_HOME), then JAVA_HOME,
    then PATH."""
    candidates: list[Path] = []
    for home in (java_home, os.environ.get("JAVA_HOME")):
        if home:
            candidates.append(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    for java in candidates:
        if java.is_file() and java_major(java) >= 17:
            return java
    raise JavaNotFoundError(
        "Java 17 or newer is needed to run the Kafka broker (and Flink), and none was found "
        f"(looked at LEARNSTREAM_STACK__JAVA_HOME, JAVA_HOME and PATH: {candidates or 'nothing'})."
        " Install it with `apt-get install openjdk-17-jre-headless`, or point "
        "LEARNSTREAM_STACK__JAVA_HOME at a JDK 17+."
    )


def java_major(java: Path) -> int:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def kafka_classpath(settings: Settings) -> str:
    jars = settings.stack.jars_dir / "kafka"
    if not any(jars.glob("kafka_2.13-*.jar")) or not any(jars.glob("kafka-tools-*.jar")):
        raise MissingArtifactError(
            f"Kafka jars not found in {jars}. Run `make setup` (it resolves them from Maven "
            "Central with build/pom.xml), or set LEARNSTREAM_STACK__JARS_DIR."
        )
    return str(jars / "*")


def kafka_tool_command(
    settings: Settings, main_class: str, *args: str, heap: str = "256m"
) -> list[str]:
    """A Kafka command-line tool, run from the same jars as the broker (like bin/*.sh do)."""
    return [
        str(find_java(settings.stack.java_home)),
        f"-Xmx{heap}",
        f"-Dlog4j2.configurationFile={STACK_DIR / 'tools-log4j2.properties'}",
        "-cp",
        kafka_classpath(settings),
        main_class,
        *args,
    ]


class Kafka(Service):
    """Apache Kafka 4.x, KRaft single node (broker + controller), from the Maven-resolved jars."""

    name = "kafka"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "kafka" / "data"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "kafka" / "server.properties"

    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def ports(self) -> list[Port]:
        k = self.settings.kafka
        return [
            Port(k.host, k.port, "LEARNSTREAM_KAFKA__PORT"),
            Port(k.host, k.controller_port, "LEARNSTREAM_KAFKA__CONTROLLER_PORT"),
        ]

    def server_properties(self) -> str:
        k = self.settings.kafka
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{k.host}:{k.controller_port}",
            "listeners": f"PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.settings.topics.partitions),
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fast consumer-group joins; `classic` stays enabled for aiokafka (Faust).
            "group.initial.rebalance.delay.ms": "0",
            "group.coordinator.rebalance.protocols": "classic,consumer",
            # Topics come from the catalogue (or a client's admin call), never from a typo.
            "auto.create.topics.enable": "false",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def command(self) -> list[str]:
        java = find_java(self.settings.stack.java_home)
        classpath = kafka_classpath(self.settings)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.server_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath)
        heap = self.settings.kafka.heap
        return [
            str(java),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={STACK_DIR / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.state_dir / 'logs'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.config_path),
        ]

    def _format(self, java: Path, classpath: str) -> None:
        """Format KRaft storage on the first run (kafka-storage.sh format --standalone)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(java),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={STACK_DIR / 'tools-log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            self.settings.kafka.cluster_id,
            "--config",
            str(self.config_path),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise MissingArtifactError(
                f"kafka: formatting storage in {self.data_dir} failed "
                f"(exit {result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {"bootstrap.servers": self.address(), "socket.timeout.ms": 2000, "log_level": 0}
        )
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:
            return False
        return bool(metadata.brokers)


# --- ClickHouse --------------------------------------------------------------------------------


class ClickHouse(Service):
    """The embedded ClickHouse engine (chdb) behind ClickHouse's HTTP interface."""

    name = "clickhouse"

    @property
    def data_dir(self) -> Path:
        return self.settings.clickhouse.data_dir or self.state_dir / "clickhouse"

    def address(self) -> str:
        c = self.settings.clickhouse
        return f"http://{c.host}:{c.port}"

    def ports(self) -> list[Port]:
        c = self.settings.clickhouse
        return [Port(c.host, c.port, "LEARNSTREAM_CLICKHOUSE__PORT")]

    def command(self) -> list[str]:
        c = self.settings.clickhouse
        return [
            sys.executable,
            "-m",
            "learnstream.stack.chserver",
            "--data-dir",
            str(self.data_dir),
            "--host",
            c.host,
            "--port",
            str(c.port),
            "--workers",
            str(c.workers),
        ]

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.address()}/ping", timeout=2).text.strip() == "Ok."
        except httpx.HTTPError:
            return False


# --- anvil -------------------------------------------------------------------------------------


def find_anvil(settings: Settings) -> Path:
    """The native anvil binary that the npm package @foundry-rs/anvil installs."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    system = platform.system().lower()
    tools = settings.stack.tools_dir
    native = tools / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if native.is_file():
        return native
    raise MissingArtifactError(
        f"anvil not found at {native}. Run `make setup` (it installs @foundry-rs/anvil from npm "
        "into tools/node_modules), or set LEARNSTREAM_STACK__TOOLS_DIR."
    )


class Anvil(Service):
    """anvil, a real EVM node, with a fixed mnemonic and a state file kept across restarts."""

    name = "anvil"
    # anvil dumps its --state file on a clean exit, which it takes on SIGINT (Ctrl-C).
    stop_signal = signal.SIGINT

    @property
    def state_file(self) -> Path:
        return self.state_dir / "anvil" / "state.json"

    def address(self) -> str:
        return self.settings.chain.rpc_url

    def ports(self) -> list[Port]:
        c = self.settings.chain
        return [Port(c.host, c.port, "LEARNSTREAM_CHAIN__PORT")]

    def command(self) -> list[str]:
        c = self.settings.chain
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        return [
            str(find_anvil(self.settings)),
            "--host",
            c.host,
            "--port",
            str(c.port),
            "--chain-id",
            str(c.chain_id),
            "--mnemonic",
            c.mnemonic.get_secret_value(),
            "--accounts",
            str(c.accounts),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(c.state_interval_s),
            *(["--block-time", f"{c.block_time_s:g}"] if c.block_time_s else []),
        ]

    def healthy(self) -> bool:
        try:
            reply = httpx.post(
                self.address(),
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=2,
            ).json()
        except (httpx.HTTPError, ValueError):
            return False
        return int(reply.get("result", "0x0"), 16) == self.settings.chain.chain_id


SERVICES: dict[str, type[Service]] = {"kafka": Kafka, "clickhouse": ClickHouse, "anvil": Anvil}
