"""learnstream as an installed package, outside the checkout.

The wheel is built from a copy of the working tree, installed into a fresh virtual environment
in a temporary folder (from requirements/app.lock and the local package cache: no network), and
run from a working directory of its own. Nothing it does may read the checkout or write into
site-packages: the ready queries are package data, state and cache folders default to the
working directory, and importing a module creates nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

UV = Path(sys.executable).parent / "uv"

# Every app entry point, imported and (where it needs no running service) built.
ENTRY_POINTS = """
import json, sys
import learnstream, learnstream.cli, learnstream.wiring, learnstream.stack.chserver
import streams.collector.app, sinks.clickhouse.sink, jobs.faust.reco_app, jobs.lag_monitor
import jobs.flink.qos, jobs.flink.completion, jobs.launch, schemas.export, dashboards.report
from learnstream.settings import Settings
from learnstream.wiring import collector_app, reco_app
settings = Settings()
collector_app(settings)
reco_app(settings)
print(json.dumps({"learnstream": learnstream.__file__, "jobs": jobs.launch.__file__}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path  # the working directory the commands run in

    @property
    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.work.parent / "home"),
            # Python's own bytecode cache is not the application's doing: keep it out, so that
            # any file that appears in site-packages was written by learnstream
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return subprocess.run(
            list(args), cwd=self.work, env=env, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip


def _uv(*args: str) -> None:
    result = subprocess.run(
        [str(UV), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"  # the working tree as git sees it, without build output
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    _uv("build", "--wheel", "--offline", "-q", "-o", str(tmp / "dist"), str(source))
    [wheel] = (tmp / "dist").glob("learnstream-*.whl")
    # the application's lock, without uv itself (make setup installs uv with pip)
    blocks = re.split(r"\n(?=\S)", (ROOT / "requirements" / "app.lock").read_text())
    lock = tmp / "app.lock"
    lock.write_text("\n".join(b for b in blocks if not b.startswith("uv==")) + "\n")
    venv = tmp / "venv"
    _uv("venv", "-q", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    _uv("pip", "sync", "-q", "--offline", "--python", python, str(lock))
    _uv("pip", "install", "-q", "--offline", "--no-deps", "--python", python, str(wheel))
    work = tmp / "work"
    work.mkdir()
    (tmp / "home").mkdir()
    return Installed(wheel, venv, work)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_package_wheel_holds_the_product_and_its_data_and_no_development_tools(
    installed: Installed,
) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("learnstream-")}
    assert tops == {
        "learnstream", "schemas", "streams", "jobs", "sinks", "settlement", "live", "dashboards",
    }  # fmt: skip
    ready = {p.name for p in (ROOT / "sinks" / "clickhouse" / "ready").glob("*.sql")}
    assert {f"sinks/clickhouse/ready/{n}" for n in ready} <= set(names)
    for data in (
        "sinks/clickhouse/migrations/0001_raw_tables.sql",
        "learnstream/stack/log4j2.properties",
        "schemas/json/event.json",
        "schemas/examples/enrollment.json",
        "live/static/index.html",
        "live/static/live.js",
    ):
        assert data in names, data


def test_package_runs_outside_the_checkout_and_writes_nothing_into_site_packages(
    installed: Installed,
) -> None:
    before = _tree(installed.site_packages)

    listed = installed.run("learnstream", "sql", "--list")
    assert listed.returncode == 0, listed.stderr
    ready = sorted(p.stem for p in (ROOT / "sinks" / "clickhouse" / "ready").glob("*.sql"))
    assert listed.stdout.split() == ready

    shown = installed.run("learnstream", "settings")
    assert shown.returncode == 0, shown.stderr
    stack = json.loads(shown.stdout)["stack"]
    assert Path(stack["state_dir"]) == installed.work / ".stack"
    assert Path(stack["jars_dir"]).is_relative_to(installed.work)

    imported = installed.run("python", "-c", ENTRY_POINTS)
    assert imported.returncode == 0, imported.stderr[-3000:]
    where = json.loads(imported.stdout.strip().splitlines()[-1])
    for path in where.values():  # the installed copy, not the checkout's
        assert Path(path).is_relative_to(installed.site_packages), path

    job = installed.run("python", "-m", "jobs.flink.qos", "--help")
    assert job.returncode == 0 and "--start" in job.stdout, job.stderr

    assert _tree(installed.site_packages) == before, "something wrote into site-packages"
    assert list(installed.work.iterdir()) == [], "importing or showing settings created files"
