"""The offline report is looked at: `learnstream report` on seeded ClickHouse holds every
panel's title, draws every chart that has rows, names no URL to load, fails loudly but still
writes the page when a query fails, and a headless Chromium shows a picture that is not blank."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import clickhouse_connect
import pandas as pd
import pytest
from typer.testing import CliRunner

from dashboards.charts import table_html
from dashboards.definitions import DASHBOARDS
from dashboards.panels import Panel
from learnstream.cli import app
from learnstream.stack import Stack
from sinks.clickhouse import migrate
from tests.analytics_seed import seed_analytics

SECTION = re.compile(r'<section class="panel" id="([^"]+)" data-kind="(\w+)" data-state="(\w+)" '
                     r'data-rows="(\d+)"[^>]*>(.*?)</section>', re.S)  # fmt: skip
EXTERNAL = re.compile(
    r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?!#)[a-z]+:|url\(\s*["']?\s*(?!#)[a-z]+:"""
    r"""|<script[^>]*\bsrc\b|<link\b|@import|<iframe\b|<object\b|<embed\b""",
    re.I,
)


@dataclass(frozen=True)
class Written:
    path: Path
    html: str
    exit_code: int
    output: str
    dsn: str


@pytest.fixture(scope="module")
def seeded_dsn(stack: Stack) -> Iterator[str]:
    """A database of the session's ClickHouse with the analytics seed, dropped after."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    dsn = stack.settings.clickhouse.dsn.rstrip("/")
    admin = clickhouse_connect.get_client(dsn=dsn)
    admin.command(f"CREATE DATABASE {name}")
    client = clickhouse_connect.get_client(dsn=dsn, database=name, tz_mode="aware")
    try:
        migrate(client)
        seed_analytics(client)
        yield f"{dsn}/{name}"
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="module")
def written(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Written:
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(app, ["report", "--out", str(path), "--dsn", seeded_dsn])
    assert path.exists(), f"{result.output} {result.exception!r}"
    html = path.read_text(encoding="utf-8")
    return Written(path, html, result.exit_code, result.output, seeded_dsn)


def sections(html: str) -> dict[str, tuple[str, str, int, str]]:
    """{panel key: (kind, state, rows, inner HTML)} of every panel in the page."""
    return {m[1]: (m[2], m[3], int(m[4]), m[5]) for m in SECTION.finditer(html)}


def test_report_holds_every_panel_title_of_every_dashboard(written: Written) -> None:
    assert written.exit_code == 0, written.output
    assert "panels" in written.output and "KiB" in written.output
    found = sections(written.html)
    for dashboard in DASHBOARDS:
        assert f'<h2 id="{dashboard.uid}">{dashboard.title}</h2>' in written.html
        for panel in dashboard.panels:
            assert panel.key in found, panel.key
            inner = found[panel.key][3]
            assert f"<h3>{escape(panel.title)}</h3>" in inner, panel.key
            assert escape(panel.description) in inner, panel.key
            assert f'href="#{panel.key}"' in written.html  # in the table of contents
    assert len(found) == sum(len(d.panels) for d in DASHBOARDS)


def test_report_draws_a_chart_with_marks_for_every_panel_with_rows(written: Written) -> None:
    drawn = 0
    for key, (kind, state, rows, inner) in sections(written.html).items():
        assert state in ("drawn", "empty"), f"{key} failed: {inner}"
        if rows == 0:
            assert state == "empty" and "no data in this range" in inner, key
            assert "<svg" not in inner and "<table" not in inner, key
            continue
        if kind in ("timeseries", "barchart", "bargauge"):
            assert state == "drawn", f"{key}: {rows} rows but nothing drawn"
            [svg] = re.findall(r"<svg.*?</svg>", inner, re.S)
            marks = re.findall(
                r'<g class="mark-(?:line|rect|symbol) role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S
            )
            assert marks and sum(m.count("<path") for m in marks) > 0, key
            drawn += 1
        elif kind == "stat":
            assert re.search(r'class="stat-value">[^<n]', inner), key
        else:
            assert inner.count("<tr>") >= 2, key  # the header and at least one row
    assert drawn >= 10, "the seed gives most charts rows"


def test_report_names_no_url_to_load(written: Written) -> None:
    assert EXTERNAL.findall(written.html) == []
    assert "<script" not in written.html  # charts are SVG drawn when the report is made
    assert not re.search(r"https?://", written.html)


def test_report_a_failed_panel_is_shown_and_the_command_exits_1(
    seeded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = DASHBOARDS[0]
    broken = Panel(
        key="ops.broken", title="Broken <on purpose>", kind="timeseries", unit="short",
        description="Reads a table that is not there.", sql="SELECT now() AS time, x FROM nope",
    )  # fmt: skip
    empty = replace(broken, key="ops.empty", title="Empty", sql="SELECT now() AS time, 1 WHERE 0")
    panels = (*ops.panels, broken, empty)
    monkeypatch.setattr("dashboards.definitions.DASHBOARDS", (replace(ops, panels=panels),))
    out = tmp_path / "r.html"
    args = ["report", "--out", str(out), "--dsn", seeded_dsn, "--hours", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "1 panel(s) failed: ops.broken" in result.output
    found = sections(out.read_text())
    _, state, _, inner = found["ops.broken"]
    assert state == "error" and "query failed" in inner and "nope" in inner
    assert "Broken &lt;on purpose&gt;" in inner  # escaped
    _, state, rows, inner = found["ops.empty"]
    assert (state, rows) == ("empty", 0) and "no data in this range" in inner
    assert "<svg" not in inner


def test_report_tables_show_fifty_rows_and_say_how_many_are_left_out() -> None:
    rows = pd.DataFrame({"learner": [f"<l{i}>" for i in range(60)], "n": range(60)})
    html = table_html(rows)
    assert html.count("<tr>") == 51 and "10 more rows not shown" in html
    assert "&lt;l0&gt;" in html and "<l0>" not in html


# --- looked at in a browser ---------------------------------------------------------------------


def png_colours(png: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixel colours of an 8-bit RGB or RGBA PNG (no Pillow)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        chunk = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
        elif kind == b"IDAT":
            data += chunk
        pos += 12 + length
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(data), width * bpp
    previous, colours = bytearray(stride), set()
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):  # undo the row's filter (PNG spec, section 9)
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filt == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        if y % 4 == 0:  # every fourth row is plenty to count colours
            colours.update(bytes(line[x : x + 3]) for x in range(0, stride, bpp))
        previous = line
    return width, height, colours


@pytest.mark.slow
def test_report_opens_in_headless_chromium_as_a_picture_that_is_not_blank(
    written: Written, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium on this machine: `make setup` installs it"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--screenshot={shot}", "--window-size=1400,3000",
            f"--user-data-dir={tmp_path / 'profile'}", written.path.as_uri(),
        ],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    width, height, colours = png_colours(shot.read_bytes())
    assert (width, height) == (1400, 3000)
    assert len(colours) > 50, f"{len(colours)} colours: the page looks blank"
