"""``rtconv gui`` without a display: one sentence with the fix, not Qt's abort and core dump."""

from __future__ import annotations

import os
import subprocess
import sys

from rtconv.cli.gui import display_problem


def test_no_display_names_xvfb_run_and_offscreen_in_one_sentence_and_exits_1():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "rtconv", "gui"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "xvfb-run" in lines[0] and "QT_QPA_PLATFORM=offscreen" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "Aborted" not in r.stderr


def test_the_check_lets_offscreen_wayland_and_other_systems_through():
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({}, "darwin") is None
    assert "xvfb-run" in display_problem({}, "linux")
    assert "xvfb-run" in display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux")
