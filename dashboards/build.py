"""The generated dashboard files: what `learnstream dashboards build` writes and `--check`
compares.

One ``<uid>.json`` per dashboard of :data:`dashboards.definitions.DASHBOARDS` in
``dashboards/generated`` (mounted into Grafana by docker-compose.yml). Any other ``*.json``
there is an orphan of a renamed or removed dashboard: the build deletes it and the check
reports it. The alert rules of :mod:`dashboards.alerts` go to one provisioning file,
``dashboards/provisioning/alerting/learnstream.yaml`` (under the folder docker-compose.yml mounts
at /etc/grafana/provisioning), built and checked the same way.
"""

from __future__ import annotations

from pathlib import Path

from dashboards import alerts
from dashboards.definitions import DASHBOARDS
from dashboards.grafana import render

HERE = Path(__file__).resolve().parent
GENERATED = HERE / "generated"
ALERTS_FILE = HERE / "provisioning" / "alerting" / "learnstream.yaml"


def generated_files() -> dict[str, str]:
    """{file name: text} of every dashboard, built in memory."""
    return {f"{dashboard.uid}.json": render(dashboard) for dashboard in DASHBOARDS}


def stale_files(folder: Path = GENERATED) -> list[str]:
    """The files in ``folder`` that a build would write, change or delete, sorted."""
    expected = generated_files()
    stale = [
        name
        for name, text in expected.items()
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text
    ]
    stale += [p.name for p in folder.glob("*.json") if p.name not in expected]
    return sorted(stale)


def alerts_stale(path: Path = ALERTS_FILE) -> bool:
    """Whether the alert provisioning file at ``path`` is missing or differs from the build."""
    return not path.is_file() or path.read_text(encoding="utf-8") != alerts.render()


def write_files(folder: Path = GENERATED) -> list[str]:
    """Bring ``folder`` up to date; the names of the files written or deleted."""
    changed = stale_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = generated_files()
    for name in changed:
        if name in expected:
            (folder / name).write_text(expected[name], encoding="utf-8")
        else:
            (folder / name).unlink()
    return changed


def write_alerts(path: Path = ALERTS_FILE) -> bool:
    """Bring the alert provisioning file up to date; whether it was written."""
    if not alerts_stale(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(alerts.render(), encoding="utf-8")
    return True
