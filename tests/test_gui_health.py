"""The Health box counts what `rtconv live` counts.

Qt runs offscreen; any Qt warning fails the test.
"""

from __future__ import annotations

import pytest

pytest.importorskip("PyQt6", reason="the GUI needs PyQt6 (pip install 'rtconv[gui]')")

OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)]


def _stats(**counts):
    return {"blocks": 100, "block_ms": {"median": 0.5, "p99": 0.9, "max": 1.0, "budget": 2.667}, "cpu_load": 0.2,
            "sample_rate": 48000, "latency": {"model_ms": 3.98, "total_ms": 3.98}, **counts}


@pytest.fixture
def health(qtbot):
    from rtconv_gui.health import HealthPanel

    panel = HealthPanel()
    qtbot.addWidget(panel)
    return panel


@pytest.mark.parametrize(("counts", "text"), [
    # JACK flags one late cycle as an input overflow and an output underflow: one dropout, as rtconv live says
    ({"dropouts": 3, "input_overflows": 3, "output_underflows": 3}, "3 blocks (3 in / 3 out)"),
    ({"dropouts": 1, "input_overflows": 0, "output_underflows": 1}, "1 block (0 in / 1 out)"),
    ({"dropouts": 0, "input_overflows": 0, "output_underflows": 0}, "0 blocks (0 in / 0 out)"),
    # stats from before the processor counted dropouts: the sum is all there is
    ({"input_overflows": 2, "output_underflows": 1}, "3 blocks (2 in / 1 out)"),
])
def test_the_health_box_counts_dropouts_as_rtconv_live_does(health, counts, text):
    """It showed overflows / underflows (3 / 3), which read as six dropouts where `rtconv live` says 3."""
    health.show_stats(_stats(**counts), 30.0)
    assert health.values["dropouts"].text() == text


def test_the_health_box_adds_worker_and_resampler_underruns_after_the_device_count(health):
    health.show_stats(_stats(dropouts=2, input_overflows=2, output_underflows=2, resampler_underruns=5), 30.0)
    assert health.values["dropouts"].text() == "2 blocks (2 in / 2 out) (+5 worker/resampler)"


@pytest.mark.parametrize(("counts", "expected"), [
    ({"dropouts": 4, "input_overflows": 4, "output_underflows": 4}, 4),
    ({"dropouts": 4, "input_overflows": 1, "output_underflows": 3}, 4),
    ({"input_overflows": 1, "output_underflows": 3}, 4),
    ({}, 0),
])
def test_the_dropout_count_is_the_streams_own_when_it_has_one(counts, expected):
    from rtconv_gui.health import dropouts

    assert dropouts(counts) == expected

