"""`rtconv gui --start` that cannot start: the exit status and the sentence `rtconv live` gives, and the window.

No audio device is needed: the device that cannot open is a :class:`rtconv.live.stream.LiveStream` whose start
raises what PortAudio's refusal raises; audio plays in the test process (``RTCONV_AUDIO_PROCESS=0``) so that
the replacement reaches it.  Qt runs offscreen; any Qt warning fails the test.
"""

from __future__ import annotations

import pytest

pytest.importorskip("PyQt6", reason="the GUI needs PyQt6 (pip install 'rtconv[gui]')")

import rtconv  # noqa: E402
from rtconv import designs  # noqa: E402
from rtconv.errors import DeviceError  # noqa: E402

OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)]

#: What a device held by another program makes PortAudio's stream refuse, in rtconv's sentence.
BUSY = ("the output device 'Speakers' could not be opened (PortAudio: Device unavailable); close the program that "
        "holds it, or choose another (run `rtconv devices` to list them).")


@pytest.fixture
def model(tmp_path):
    return rtconv.save(designs.lowpass(2000, 45, 48000), tmp_path / "lowpass.safetensors", name="lowpass",
                       task="filter")


@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.setenv("RTCONV_AUDIO_PROCESS", "0")


@pytest.fixture
def busy_device(monkeypatch, in_process):
    """Every stream's devices refuse to open, as a device another program holds does."""
    from rtconv.live.stream import LiveStream

    def refuse(self):
        raise DeviceError(BUSY)

    monkeypatch.setattr(LiveStream, "start", refuse)

def test_a_failed_start_ends_rtconv_gui_with_1_and_rtconv_lives_sentence_on_stderr(tmp_path, model, capsys,
                                                                                  busy_device):
    """`rtconv gui --start` on a device that cannot open exited 0 with only a banner in the window."""
    from rtconv.cli import main

    assert main(["live", "--model", str(model), "-r", "48000", "--duration", "0.1"]) == 1
    live = capsys.readouterr().err.splitlines()[-1]
    assert live == f"rtconv live: error: {BUSY}"
    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(model), "--start",
                 "--quit-after", "0"]) == 1
    err = capsys.readouterr().err
    assert err == live.replace("rtconv live", "rtconv gui") + "\n"  # said once, in the command line's words


def test_the_window_of_a_failed_start_still_shows_why_in_its_own_words(qtbot, tmp_path, model, busy_device):
    from rtconv.cli import get_parser
    from rtconv_gui.app import build_window
    from rtconv_gui.window import gui_words

    win = build_window(get_parser()[0].parse_args(["gui", "--settings", str(tmp_path / "s.ini"), "--model",
                                                   str(model)]))
    qtbot.addWidget(win)
    try:
        assert not win.start_stream()
        assert win.start_error == BUSY  # for the command line
        assert "`rtconv devices`" not in gui_words(BUSY)
        assert win.banner.text() == "could not start audio: " + gui_words(BUSY)  # the window's words
    finally:
        win.shutdown()


def test_rtconv_gui_without_start_does_not_fail_for_a_device_it_never_opened(tmp_path, model, capsys, busy_device):
    from rtconv.cli import main

    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(model), "--quit-after", "0"]) == 0
    assert "error" not in capsys.readouterr().err


def test_a_start_with_a_model_that_does_not_load_fails_too(tmp_path, capsys, in_process):
    from rtconv.cli import main

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(bad), "--start",
                 "--quit-after", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("rtconv gui: error: ") and "bad.safetensors" in err[0], err
