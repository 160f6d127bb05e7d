"""The quality score held to values worked by hand from DESIGN.md's formula."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import LiveQos
from schemas.quality import band, mos, of_event, quality, r_factor


def test_good_conditions() -> None:
    # L = 40/2 + 2*5 + 10 = 40 ms; R = 93.2 - 40/40 = 92.2
    q = quality(rtt_ms=40, jitter_ms=5, loss=0.0)
    assert q.r == pytest.approx(92.2)
    # MOS = 1 + 0.035*92.2 + 7e-6*92.2*32.2*7.8 = 1 + 3.227 + 0.162099
    assert q.mos == pytest.approx(4.389099, abs=1e-6)
    assert q.video is None and q.score == q.r and q.band == "excellent"


def test_lossy_conditions() -> None:
    # 5 % loss: R = 92.2 - 2.5*5 = 79.7, just below excellent
    q = quality(rtt_ms=40, jitter_ms=5, loss=0.05)
    assert q.r == pytest.approx(79.7)
    assert q.band == "good"
    # 15 % loss: 92.2 - 37.5 = 54.7
    assert quality(40, 5, 0.15).band == "fair"


def test_sixty_percent_loss_is_clamped() -> None:
    # Unclamped: R = 92.2 - 150 = -57.8, and the MOS polynomial of -57.8 is
    # 1 - 2.023 + 7e-6*(-57.8)*(-117.8)*157.8 = 6.5: better than perfect. G.107 clamps R to 0.
    assert mos(-57.8) == pytest.approx(6.498, abs=1e-3)
    q = quality(rtt_ms=40, jitter_ms=5, loss=0.60)
    assert q.r == 0.0
    assert q.mos == pytest.approx(1.0)
    assert q.score == 0.0 and q.band == "poor"


def test_high_latency_uses_the_steeper_slope() -> None:
    # L = 600/2 + 2*30 + 10 = 370 >= 160: R = 93.2 - (370-120)/10 = 68.2
    q = quality(rtt_ms=600, jitter_ms=30, loss=0.0)
    assert q.r == pytest.approx(68.2)
    assert q.band == "good"
    # just under the knee: L = 158/2*... rtt 276, jitter 5: L = 138+10+10 = 158 -> 158/40
    assert r_factor(276, 5, 0) == pytest.approx(93.2 - 158 / 40)
    # at the knee: L = 160 -> (160-120)/10 = 4
    assert r_factor(280, 5, 0) == pytest.approx(89.2)


def test_freezing_video_caps_the_score() -> None:
    # network excellent (R = 92.2); 2.5 s frozen of 5 s at 30 fps: V = 100*(1-0.5)*1 = 50
    q = quality(rtt_ms=40, jitter_ms=5, loss=0.0, fps=30, freeze_ms=2500, interval_s=5)
    assert q.video == pytest.approx(50.0)
    assert q.score == pytest.approx(50.0) and q.band == "fair"
    # 12 fps and 1 s frozen of 5 s: V = 100*0.8*0.5 = 40
    assert quality(40, 5, 0, fps=12, freeze_ms=1000, interval_s=5).video == pytest.approx(40.0)
    # smooth 24+ fps and no freeze: V = 100, the network decides
    smooth = quality(40, 5, 0.05, fps=30, freeze_ms=0, interval_s=5)
    assert smooth.video == 100.0 and smooth.score == pytest.approx(79.7)
    # frozen the whole interval
    assert quality(40, 5, 0, fps=0, freeze_ms=5000, interval_s=5).score == 0.0


def test_unknown_figures_count_as_perfect_and_bands() -> None:
    # aiortc inbound rows have no RTT: L = 2*jitter + 10
    assert r_factor(None, 15, None) == pytest.approx(93.2 - 40 / 40)
    assert [band(s) for s in (80, 79.99, 60, 59.99, 40, 39.99, 0)] == [
        "excellent",
        "good",
        "good",
        "fair",
        "fair",
        "poor",
        "poor",
    ]


def test_of_event_reads_a_live_qos_row() -> None:
    row = LiveQos.model_validate_json(Path("schemas/examples/live_qos.json").read_bytes())
    q = of_event(row)
    # L = 21 + 6.2 + 10 = 37.2; R = 93.2 - 0.93 - 2.5*0.2 = 91.77; V = 100*(29.8/24 capped) = 100
    assert q.r == pytest.approx(91.77)
    assert q.video == 100.0 and q.band == "excellent"
