"""Static checks of the production-shaped docker-compose.yml and everything it mounts or builds.

There is no Docker engine on the development machines, so these tests read the files instead of
running them: every image is pinned, every path exists, every learnstream setting is one that
``learnstream.settings`` reads, and the Grafana provisioning is valid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from learnstream.settings import env_var_names

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_DOCKERFILE = "deploy/app/Dockerfile"
PROVISIONING = ROOT / "dashboards" / "provisioning"

EXPECTED_SERVICES = {
    "kafka",
    "clickhouse",
    "anvil",
    "jobmanager",
    "taskmanager",
    "grafana",
    "collector",
    "sink-clickhouse",
    "reco",
    "settlement",
    "live",
}
APP_SERVICES = {"collector", "sink-clickhouse", "reco", "settlement", "live"}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- helpers ---------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def build_of(service: dict[str, Any]) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service with ``build:``, as absolute paths."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    context_path = (ROOT / context).resolve()
    return context_path, (context_path / dockerfile).resolve()


def is_learnstream_service(service: dict[str, Any]) -> bool:
    """A service that runs learnstream's own image (the application Dockerfile)."""
    build = build_of(service)
    return build is not None and build[1] == (ROOT / APP_DOCKERFILE).resolve()


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    """``environment:`` in either the list or the mapping form."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): None if v is None else str(v) for k, v in env.items()}
    result: dict[str, str | None] = {}
    for item in env:
        name, sep, value = str(item).partition("=")
        result[name] = value if sep else None
    return result


def env_files_of(service: dict[str, Any]) -> list[Path]:
    """``env_file:`` as a string, a list of strings, or a list of {path, required}."""
    value = service.get("env_file") or []
    items = [value] if isinstance(value, str) else value
    paths = []
    for item in items:
        path = item["path"] if isinstance(item, dict) else item
        paths.append(ROOT / path)
    return paths


def read_env_file(path: Path) -> dict[str, str]:
    result = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        assert sep, f"{path.relative_to(ROOT)}:{number}: not NAME=VALUE: {raw!r}"
        result[name.strip()] = value.strip()
    return result


def all_env_of(service: dict[str, Any]) -> dict[str, str | None]:
    """What the container sees: env_files, then ``environment:`` on top."""
    merged: dict[str, str | None] = {}
    for path in env_files_of(service):
        merged.update(read_env_file(path))
    merged.update(environment_of(service))
    return merged


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if "$" in ref:
        return f"{ref}: uses a variable, so its tag cannot be checked"
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ""
    if not tag:
        return None if digest else f"{ref}: no tag"
    if tag == "latest":
        return f"{ref}: uses the tag latest"
    return None


def dockerfile_images(dockerfile: Path) -> list[str]:
    """Every image a Dockerfile pulls: FROM lines and COPY --from=<image>, ARGs expanded."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")

    def expand(value: str) -> str:
        return re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), value
        )

    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and len(words) > 1:
            name, _, default = words[1].partition("=")
            args.setdefault(name, default)
        elif instruction == "FROM":
            refs = [w for w in words[1:] if not w.startswith("--")]
            ref = expand(refs[0])
            if ref.lower() not in stages and ref != "scratch":
                images.append(ref)
            if len(refs) >= 3 and refs[1].lower() == "as":
                stages.add(refs[2].lower())
        elif instruction in {"COPY", "ADD"}:
            for word in words[1:]:
                if word.startswith("--from="):
                    ref = expand(word.removeprefix("--from="))
                    if ref.lower() not in stages and not ref.isdigit():
                        images.append(ref)
    return images


def host_of(address: str) -> str:
    if "://" not in address:
        address = "//" + address
    return urlsplit(address).hostname or ""


# --- tests -----------------------------------------------------------------------------------


def test_compose_file_parses_and_has_services() -> None:
    found = services()
    missing = EXPECTED_SERVICES - set(found)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"
    for name, service in found.items():
        assert isinstance(service, dict), f"service {name} is not a mapping"
        assert "image" in service or "build" in service, f"service {name}: no image and no build"
    for name in APP_SERVICES:
        assert is_learnstream_service(found[name]), f"{name} must build from {APP_DOCKERFILE}"
        assert found[name].get("command"), f"{name}: no command"


def test_compose_images_are_pinned() -> None:
    problems = []
    dockerfiles = set()
    for name, service in services().items():
        image = service.get("image")
        if image is not None:
            problem = image_problem(str(image))
            if problem:
                problems.append(f"{name}: {problem}")
        build = build_of(service)
        if build is not None:
            if not build[1].is_file():
                problems.append(f"{name}: Dockerfile {build[1]} does not exist")
            else:
                dockerfiles.add(build[1])
    for dockerfile in sorted(dockerfiles):
        pulled = dockerfile_images(dockerfile)
        if not pulled:
            problems.append(f"{dockerfile.relative_to(ROOT)}: no FROM image found")
        for ref in pulled:
            problem = image_problem(ref)
            if problem:
                problems.append(f"{dockerfile.relative_to(ROOT)}: {problem}")
    assert not problems, "\n".join(problems)


def test_compose_mounted_paths_exist() -> None:
    compose = load_compose()
    declared_volumes = set(compose.get("volumes") or {})
    problems = []
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                kind, source = volume.get("type", "volume"), volume.get("source")
            else:
                source = str(volume).split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind" and source and source.startswith("./"):
                if not (ROOT / source).exists():
                    problems.append(f"{name}: bind-mount source {source} does not exist")
            elif kind == "volume" and source and source not in declared_volumes:
                problems.append(f"{name}: named volume {source} is not declared under volumes:")
        for path in env_files_of(service):
            if not path.is_file():
                problems.append(f"{name}: env_file {path.relative_to(ROOT)} does not exist")
        build = build_of(service)
        if build is not None:
            context, dockerfile = build
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
    assert not problems, "\n".join(problems)


def test_compose_learnstream_env_vars_are_read_by_settings() -> None:
    known = set(env_var_names())
    problems = []
    for name, service in services().items():
        learnstream = is_learnstream_service(service)
        sources: list[tuple[str, dict[str, Any]]] = [("environment", environment_of(service))]
        sources += [
            (str(path.relative_to(ROOT)), read_env_file(path)) for path in env_files_of(service)
        ]
        for where, env in sources:
            for var in env:
                if not ENV_NAME.match(var):
                    problems.append(f"{name} ({where}): {var!r} is not a variable name")
                elif var.startswith("LEARNSTREAM_"):
                    if var not in known:
                        problems.append(f"{name} ({where}): {var} is not read by settings")
                elif learnstream:
                    problems.append(
                        f"{name} ({where}): {var} is not a learnstream setting; learnstream "
                        "services take only LEARNSTREAM_* variables"
                    )
    assert not problems, "\n".join(problems)


def test_compose_learnstream_addresses_point_at_services() -> None:
    """The app services reach Kafka, ClickHouse and anvil by their compose service names."""
    found = services()
    problems = []
    for name in sorted(APP_SERVICES):
        env = all_env_of(found[name])
        for var, expected in (
            ("LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS", "kafka"),
            ("LEARNSTREAM_CLICKHOUSE__DSN", "clickhouse"),
            ("LEARNSTREAM_CHAIN__RPC_URL", "anvil"),
        ):
            value = env.get(var)
            if not value:
                problems.append(f"{name}: {var} is not set")
                continue
            hosts = {host_of(part.strip()) for part in value.split(",")}
            if hosts != {expected} or expected not in found:
                problems.append(f"{name}: {var}={value} does not point at service {expected}")
    assert not problems, "\n".join(problems)


def test_compose_depends_on_waits_for_health() -> None:
    found = services()
    problems = []
    for name, service in found.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            if target not in found:
                problems.append(f"{name}: depends on unknown service {target}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            healthy = "healthcheck" in found[target]
            if healthy and condition != "service_healthy":
                problems.append(f"{name}: waits for {target} with {condition}, not service_healthy")
            if condition == "service_healthy" and not healthy:
                problems.append(f"{name}: waits for {target} to be healthy, it has no healthcheck")
    assert not problems, "\n".join(problems)


def test_compose_grafana_provisioning_is_valid_yaml() -> None:
    files = sorted(PROVISIONING.rglob("*.y*ml"))
    assert files, f"no provisioning files under {PROVISIONING}"
    parsed = {}
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict), f"{path}: not a mapping"
        assert data.get("apiVersion") == 1, f"{path}: apiVersion must be 1"
        parsed[path.relative_to(PROVISIONING).as_posix()] = data

    grafana = services()["grafana"]
    mounts = {}
    for volume in grafana.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        mounts[source.rstrip("/")] = target.rstrip("/")
    assert mounts.get("./dashboards/provisioning") == "/etc/grafana/provisioning"
    dashboards_dir = mounts.get("./dashboards/generated")
    assert dashboards_dir, "grafana does not mount ./dashboards/generated"

    datasources = [
        ds
        for data in parsed.values()
        for ds in data.get("datasources") or []
        if isinstance(ds, dict)
    ]
    clickhouse = [ds for ds in datasources if ds.get("uid") == "clickhouse"]
    assert len(clickhouse) == 1, "exactly one datasource with uid 'clickhouse' is expected"
    ds = clickhouse[0]
    assert ds.get("type") == "grafana-clickhouse-datasource"
    json_data = ds.get("jsonData") or {}
    assert json_data.get("protocol") == "http"
    assert json_data.get("host") == "clickhouse" and "clickhouse" in services()
    assert int(json_data.get("port", 0)) == 8123
    plugins = str(environment_of(grafana).get("GF_INSTALL_PLUGINS") or "")
    assert "grafana-clickhouse-datasource" in plugins, "the ClickHouse plugin is not installed"

    providers = [
        p for data in parsed.values() for p in data.get("providers") or [] if isinstance(p, dict)
    ]
    file_providers = [p for p in providers if p.get("type", "file") == "file"]
    assert file_providers, "no file dashboard provider"
    paths = {str((p.get("options") or {}).get("path", "")).rstrip("/") for p in file_providers}
    assert dashboards_dir in paths, f"no dashboard provider reads {dashboards_dir}"


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a service's ``./…`` bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts[target.rstrip("/")] = source.rstrip("/")
    return mounts


def test_compose_grafana_reads_clickhouse_as_a_readonly_user() -> None:
    """The datasource logs in as a user of a users.d file mounted into the clickhouse service,
    with a read-only profile and its own password variable; Grafana never gets the password of
    the user the services write with. (tests/test_dashboards_alerts.py checks the grants.)"""
    found = services()
    clickhouse, grafana = found["clickhouse"], found["grafana"]
    datasource_file = PROVISIONING / "datasources" / "clickhouse.yaml"
    [ds] = yaml.safe_load(datasource_file.read_text(encoding="utf-8"))["datasources"]
    username = ds["jsonData"]["username"]
    password = re.fullmatch(r"\$\{(\w+)\}", ds["secureJsonData"]["password"])
    assert password, "the datasource password comes from one environment variable"
    variable = password.group(1)

    users = {}
    for target, source in bind_mounts(clickhouse).items():
        if target.startswith("/etc/clickhouse-server/users.d/") and target.endswith(".xml"):
            root = ET.parse(ROOT / source).getroot()
            profiles = {p.tag: p for p in root.findall("profiles/*")}
            for user in root.findall("users/*"):
                users[user.tag] = (user, profiles)
    assert username in users, f"no users.d file mounted into clickhouse defines {username}"
    assert username != environment_of(clickhouse).get("CLICKHOUSE_USER"), "not the writer"
    user, profiles = users[username]
    profile = profiles[user.findtext("profile", "")]
    assert profile.findtext("readonly") in ("1", "2"), f"{username}'s profile is not read-only"
    secret = user.find("password")
    assert secret is not None and secret.get("from_env") == variable, "password from the env"
    env_clickhouse, env_grafana = environment_of(clickhouse), environment_of(grafana)
    assert env_clickhouse.get(variable) and env_clickhouse.get(variable) == env_grafana.get(
        variable
    ), f"{variable} must reach both containers with the same default"
    assert "CLICKHOUSE_PASSWORD" not in env_grafana, "Grafana gets the read-only password only"


def test_compose_grafana_alert_rules_are_provisioned() -> None:
    mounts = {source: target for target, source in bind_mounts(services()["grafana"]).items()}
    assert mounts.get("./dashboards/provisioning") == "/etc/grafana/provisioning"
    files = sorted((PROVISIONING / "alerting").glob("*.yaml"))
    assert files, "no alert rules in dashboards/provisioning/alerting"
    for path in files:
        groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        queries = [
            item
            for group in groups
            for rule in group["rules"]
            for item in rule["data"]
            if item["datasourceUid"] != "__expr__"
        ]
        assert queries and {q["datasourceUid"] for q in queries} == {"clickhouse"}


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        ("apache/kafka:4.1.1", True),
        ("localhost:5000/team/app:1.2", True),
        ("python@sha256:" + "0" * 64, True),
        ("apache/kafka", False),
        ("apache/kafka:latest", False),
        ("localhost:5000/team/app", False),
    ],
)
def test_image_pin_check(ref: str, pinned: bool) -> None:
    assert (image_problem(ref) is None) is pinned
