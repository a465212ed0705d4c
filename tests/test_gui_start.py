"""rtconv gui's start-up with no audio hardware: `--start` that cannot start (the exit status and the sentence
`rtconv live` gives, and the window), and the audio set-up it opens with (a remembered device or host API that is
not there now, one a Rescan no longer finds, a rate or block the lists lack).

No audio device is needed: the device that cannot open is a :class:`rtconv.live.stream.LiveStream` whose start
raises what PortAudio's refusal raises, and the listed devices are the GUI engine's list functions replaced by a
fixed machine; audio plays in the test process (``RTCONV_AUDIO_PROCESS=0``) so that the replacements reach it.
Qt runs offscreen; any Qt warning fails the test."""

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


# --- the audio set-up it opens with ----------------------------------------------------------------------

HDA = "HDA Intel PCH: ALC257 Analog (hw:0,0)"
USB = "USB Headset: Audio (hw:2,0)"


def _machine(monkeypatch, devices):
    """The GUI sees one host API, ALSA, with ``devices`` (names; the first is the default in and out)."""
    from rtconv_gui import engine

    listed = [{"index": i, "name": name, "hostapi": "ALSA", "max_input_channels": 2, "max_output_channels": 2,
               "default_samplerate": 48000.0, "default_input": i == 0, "default_output": i == 0}
              for i, name in enumerate(devices)]
    monkeypatch.setattr(engine, "list_hostapis", lambda: [
        {"index": 0, "name": "ALSA", "devices": list(range(len(devices))), "default_input": 0, "default_output": 0}])
    monkeypatch.setattr(engine, "list_devices", lambda hostapi=None: [
        d for d in listed if hostapi in (None, "ALSA")])


def _window(qtbot, settings, audio=None, shown=False):
    """A window on the settings file ``settings``, with audio in this process (the replaced lists reach it) and
    the command line's ``audio`` choices; shown and exposed if asked."""
    from PyQt6 import QtCore

    from rtconv_gui.window import MainWindow

    win = MainWindow(QtCore.QSettings(str(settings), QtCore.QSettings.Format.IniFormat), audio=audio,
                     audio_process=False)
    qtbot.addWidget(win)
    if shown:
        win.show()
        qtbot.waitExposed(win)
    return win


def _remember(path, **audio):
    """An INI file as the window leaves it, with ``audio`` as the last set-up."""
    from PyQt6 import QtCore

    s = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
    for key, value in audio.items():
        s.setValue(f"audio/{key}", value)
    s.sync()


def test_a_remembered_device_that_is_gone_is_named_with_the_one_used_instead(qtbot, tmp_path, monkeypatch):
    """The window fell back to the default device silently."""
    _machine(monkeypatch, [HDA])  # the USB headset of the last run is unplugged
    _remember(tmp_path / "s.ini", hostapi="ALSA", input_device=USB, output_device=HDA)
    win = _window(qtbot, tmp_path / "s.ini", shown=True)
    try:
        c = win.audio.choice()
        assert (c["hostapi"], c["input_device"], c["output_device"]) == ("ALSA", None, HDA)
        said = (f"the input device {USB!r} remembered from the last run is not on ALSA now; using the system "
                f"default ({HDA!r}) instead; choose another in the Audio box, or plug it in, press Rescan and "
                "choose it.")
        assert win.banner.isVisible() and win.banner.text() == said
        assert win.statusBar().currentMessage() == said
        assert win.audio_notice == said  # for rtconv gui's stderr
    finally:
        win.shutdown()


def test_a_remembered_host_api_that_is_gone_is_named_with_the_one_used_instead(qtbot, tmp_path, monkeypatch):
    _machine(monkeypatch, [HDA])  # the JACK server of the last run is not running
    _remember(tmp_path / "s.ini", hostapi="JACK Audio Connection Kit", input_device="system", output_device="system")
    win = _window(qtbot, tmp_path / "s.ini")
    try:
        assert win.audio.choice()["hostapi"] == "ALSA"
        assert win.audio_notice.startswith(
            "the host API 'JACK Audio Connection Kit' remembered from the last run is not there now; using 'ALSA' "
            f"instead; the input device 'system' remembered from the last run is not on ALSA now; using the system "
            f"default ({HDA!r}) instead; the output device 'system' ")
    finally:
        win.shutdown()


def test_remembered_devices_that_are_there_are_used_without_a_word(qtbot, tmp_path, monkeypatch):
    _machine(monkeypatch, [HDA, USB])
    _remember(tmp_path / "s.ini", hostapi="ALSA", input_device=USB, output_device="")  # "": the system default
    win = _window(qtbot, tmp_path / "s.ini", shown=True)
    try:
        assert win.audio.choice()["input_device"] == USB
        assert win.audio_notice is None
        qtbot.wait(50)
        assert not win.banner.isVisible()
    finally:
        win.shutdown()


def test_rtconv_gui_says_once_on_stderr_which_remembered_device_is_gone(tmp_path, model, monkeypatch, capsys,
                                                                       in_process):
    from rtconv.cli import main

    _machine(monkeypatch, [HDA])
    _remember(tmp_path / "s.ini", hostapi="ALSA", input_device=HDA, output_device=USB)
    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(model), "--quit-after", "0"]) == 0
    err = capsys.readouterr().err.splitlines()
    said = (f"the output device {USB!r} remembered from the last run is not on ALSA now; using the system default "
            f"({HDA!r}) instead; choose another in the Audio box, or plug it in, press Rescan and choose it.")
    assert err == [f"rtconv gui: {said}"]


def test_a_device_named_on_the_command_line_replaces_a_remembered_one_without_a_word_about_it(
        tmp_path, model, monkeypatch, capsys, in_process):
    from rtconv.cli import main
    from rtconv_gui import engine

    _machine(monkeypatch, [HDA])
    monkeypatch.setattr(engine, "find_device", lambda query, kind, hostapi=None: {"name": HDA, "hostapi": "ALSA"})
    _remember(tmp_path / "s.ini", hostapi="ALSA", input_device=USB, output_device=HDA)
    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(model), "--input-device", "hda",
                 "--quit-after", "0"]) == 0
    assert capsys.readouterr().err == ""


def test_the_notice_is_said_again_after_the_model_loading_cleared_it_and_after_a_failed_start(
        qtbot, tmp_path, model, monkeypatch, in_process):
    """`rtconv gui` loads the model after the window restored the devices, and may start: both replace the banner."""
    from rtconv.cli import get_parser
    from rtconv.errors import DeviceError
    from rtconv.live.stream import LiveStream
    from rtconv_gui.app import build_window

    def refuse(self):
        raise DeviceError("the output device could not be opened.")

    monkeypatch.setattr(LiveStream, "start", refuse)
    _machine(monkeypatch, [HDA])
    _remember(tmp_path / "s.ini", hostapi="ALSA", input_device=USB)
    win = build_window(get_parser()[0].parse_args(["gui", "--settings", str(tmp_path / "s.ini"), "--model",
                                                   str(model)]))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    try:
        assert win.model is not None and win.banner.isHidden()  # the model loaded, and cleared the banner
        win.show_audio_notice()
        assert win.banner.text() == win.audio_notice and not win.banner.isHidden()
        assert not win.start_stream()
        win.show_audio_notice()
        assert win.banner.text() == f"could not start audio: the output device could not be opened.\n{win.audio_notice}"
        win.show_audio_notice()  # said once
        assert win.banner.text().count(win.audio_notice) == 1
    finally:
        win.shutdown()


def test_a_rate_or_block_the_lists_lack_is_used_as_rtconv_live_uses_it(qtbot, tmp_path, monkeypatch):
    """`rtconv gui -b 96 -r 12345` showed (and started) 128 samples at 48000 Hz without a word."""
    _machine(monkeypatch, [HDA])
    win = _window(qtbot, tmp_path / "first.ini", audio={"block_size": 96, "sample_rate": 12345})
    try:
        c = win.audio.choice()
        assert (c["block_size"], c["sample_rate"]) == (96, 12345)
        blocks = [win.audio.block.itemData(k) for k in range(win.audio.block.count())]
        assert blocks == sorted(blocks) and win.audio.block.currentText() == "96 samples"
    finally:
        win.shutdown()
    # a remembered one (written by a run that was given it) comes back the same way
    _remember(tmp_path / "s.ini", hostapi="ALSA", block_size=96, sample_rate=12345)
    again = _window(qtbot, tmp_path / "s.ini")
    try:
        assert (again.audio.choice()["block_size"], again.audio.choice()["sample_rate"]) == (96, 12345)
        assert again.audio.rate.currentText() == "12345 Hz"
    finally:
        again.shutdown()


def test_a_chosen_device_that_is_gone_at_a_rescan_is_named_with_the_one_used_instead(qtbot, tmp_path, monkeypatch):
    """Rescan after unplugging the chosen headset showed the default device without a word."""
    _machine(monkeypatch, [HDA, USB])
    win = _window(qtbot, tmp_path / "s.ini", audio={"hostapi": "ALSA", "input_device": USB}, shown=True)
    try:
        assert win.audio.choice()["input_device"] == USB and win.audio_notice is None
        _machine(monkeypatch, [HDA])  # unplugged
        told = []
        win.audio.devices_gone.connect(told.append)
        win.audio.refresh_button.click()
        assert win.audio.choice()["input_device"] is None
        said = (f"the input device {USB!r} chosen before the rescan is not on ALSA now; using the system default "
                f"({HDA!r}) instead; choose another in the Audio box, or plug it in, press Rescan and choose it.")
        assert win.banner.isVisible() and win.banner.text() == said
        win.audio.refresh_button.click()  # nothing more gone: nothing more said
        assert told == [said]
    finally:
        win.close()  # as a user does: shut down and hidden (shut down alone, it crashed a later paint)
