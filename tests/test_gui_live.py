"""The desktop app wired to live audio: controls reach the session, and on a
JACK server with the dummy backend, streams start, spectra move, models hot-swap,
a refused device restores the previous state, recording names its files.

Qt runs offscreen; any Qt warning fails the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("PyQt6", reason="the GUI needs PyQt6 (pip install 'rtconv[gui]')")

import rtconv  # noqa: E402
from rtconv import designs  # noqa: E402
from rtconv.live.client import PORTS  # noqa: E402

OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)]

JACK_API = "JACK Audio Connection Kit"


JACK_PERIOD = 128  # frames per cycle of the jackd fixture's server (tests/conftest.py)


@pytest.fixture(scope="module")
def jack(jackd):
    """A JACK server (dummy backend, 48 kHz) that PortAudio sees: this test process's own, under its own name, so
    that test runs side by side neither share a server nor stop each other's."""
    return jackd


@pytest.fixture
def metronome(jack):
    """A 1 kHz click source wired into the GUI stream's input instead of the silent dummy capture."""
    name = f"rtconvsrc{os.getpid()}"
    proc = subprocess.Popen(["jack_metro", "-n", name, "-b", "1200", "-f", "1000", "-A", "0.5", "-D", "40"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def connect():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split("\n")
            src = [p for p in ports if p.startswith(name + ":")]
            # the stream's client: "rtconv", or "rtconv-01" when it runs in the GUI's
            # audio process and the GUI's own PortAudio (listing devices) took the plain name
            dst = [p for p in ports if re.match(PORTS, p) and p.endswith(":in_0")]
            if src and dst:
                subprocess.run(["jack_disconnect", "system:capture_1", dst[0]], capture_output=True)
                subprocess.run(["jack_connect", src[0], dst[0]], capture_output=True, check=True)
                return
            time.sleep(0.05)
        raise AssertionError(f"no metronome or stream ports appeared: {ports}")

    yield connect
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def window(qtbot, tmp_path):
    from PyQt6 import QtCore

    from rtconv_gui.window import MainWindow

    win = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def _lowpass(tmp_path, cutoff=2000, name="lowpass"):
    return rtconv.save(designs.lowpass(cutoff, 31, 48000), tmp_path / f"{name}.safetensors", name=name, task="filter")


def _on_jack(win, **choice):
    win.audio.rescan()
    c = win.audio.choice()
    c.update(hostapi=JACK_API, input_device=None, output_device=None, sample_rate=48000, block_size=128, channels=1)
    c.update(choice)
    win.audio.set_choice(c)
    assert win.audio.choice()["hostapi"] == JACK_API


@pytest.mark.parametrize("wet", [0, 35, 100])
def test_bypass_dry_wet_gain_and_limiter_are_the_values_a_session_gets(window, tmp_path, wet):
    window.load_model(_lowpass(tmp_path))
    c = window.controls
    c.bypass.setChecked(True)
    c.wet.setValue(wet)
    c.gain.setValue(-4.5)
    c.limiter.setChecked(False)
    v = c.values()
    assert v["bypass"] is True
    assert v["wet"] == pytest.approx(wet / 100)
    assert v["gain_db"] == pytest.approx(-4.5)
    assert v["limiter"] is False
    c.bypass.setChecked(False)
    assert c.values()["bypass"] is False
    from rtconv.live import CONTROLS

    assert set(v) <= set(CONTROLS)  # every value is a control the session takes


def test_controls_carry_over_to_the_session_opened_after_a_new_model(window, tmp_path, jack):
    window.load_model(_lowpass(tmp_path, name="a"))
    window.controls.wet.setValue(20)
    window.controls.bypass.setChecked(True)
    window.load_model(_lowpass(tmp_path, 4000, name="b"))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    s = window.session.stats()
    assert s["controls"]["wet"] == pytest.approx(0.2) and s["controls"]["bypass"] is True and s["model_name"] == "b"


def test_the_denoiser_strength_switch_sets_its_attenuation_limit(window, tmp_path):
    denoiser = pytest.importorskip("rtconv.denoiser")
    path = rtconv.save(denoiser.ConvDenoiser(window=16, hop=8, channels=4, blocks=1), tmp_path / "d.safetensors",
                       sample_rate=48000, task="denoise")
    window.load_model(path)
    c = window.controls
    assert c.strength_row.isVisibleTo(window)
    c.limit_on.setChecked(True)
    c.limit_db.setValue(12)
    assert window.model.attenuation_limit_db == 12.0
    c.limit_on.setChecked(False)
    assert window.model.attenuation_limit_db is None
    window.load_model(_lowpass(tmp_path))
    assert not c.strength_row.isVisibleTo(window)


def test_starting_the_stream_on_jack_makes_the_spectra_update(window, qtbot, tmp_path, metronome):
    window.load_model(_lowpass(tmp_path))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    metronome()
    spec = window.spectrum

    def loud():
        x, y = spec.curves()["input"]
        return y is not None and np.max(y) > -60

    qtbot.waitUntil(loud, timeout=10000)
    f, db_in = spec.curves()["input"]
    assert 800 < f[np.argmax(db_in)] < 1200  # the 1 kHz click
    n = spec.updates
    qtbot.waitUntil(lambda: spec.updates >= n + 5, timeout=5000)
    assert window.spectrogram.inp.data[-1].max() > -100  # newest column has the click
    qtbot.waitUntil(lambda: window.meters.meter_in.peak_db > -40, timeout=5000)
    window.refresh_text()
    assert "of" in window.health.values["block"].text()  # median / p99 / max of budget
    assert window.audio.start_button.text() == "Stop"
    from PyQt6 import QtGui

    from rtconv_gui.app import save_screenshot

    shot = QtGui.QImage(str(save_screenshot(window, tmp_path / "running.png")))
    assert not shot.isNull() and shot.width() >= 800
    window.stop_stream()
    assert window.session is None and window.audio.start_button.text() == "Start"


def test_rtconv_gui_screenshot_renders_the_window_and_exits(tmp_path):
    import sys

    out = tmp_path / "cli.png"
    model = _lowpass(tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "rtconv", "gui", "--settings", str(tmp_path / "s.ini"), "--model",
                        str(model), "--tab", "kernels", "--screenshot", str(out), "--quit-after", "0.3"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout
    from PyQt6 import QtGui

    assert not QtGui.QImage(str(out)).isNull()


def test_a_screenshot_that_cannot_be_written_is_an_error_on_stderr_and_status_1(tmp_path):
    """The sentence went to stdout, where a script reading `wrote PATH` lines would take it for output."""
    import sys

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the screenshot's folder should be")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "rtconv", "gui", "--settings", str(tmp_path / "s.ini"), "--model",
                        str(_lowpass(tmp_path)), "--screenshot", str(blocked / "x.png"), "--quit-after", "0.3"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert "rtconv gui: error: could not write the screenshot" in r.stderr and "cannot make its folder" in r.stderr
    assert "Errno" not in r.stderr
    assert "error" not in r.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_rtconv_gui_closes_the_window_and_its_audio_process(tmp_path, jack, signum):
    """A terminal's Ctrl-C reaches the whole process group: it killed the audio process and left the window
    open without audio. It closes the window (and so the stream) now, as SIGTERM does."""
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.Popen([sys.executable, "-m", "rtconv", "gui", "--settings", str(tmp_path / "s.ini"), "--model",
                          str(_lowpass(tmp_path)), "--hostapi", JACK_API, "--start"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)

    def ours():
        return [q for q in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
                if re.match(PORTS, q)]

    try:
        deadline = time.monotonic() + 90
        while not ours() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ours() and p.poll() is None, p.communicate(timeout=30)
        time.sleep(0.5)
        os.killpg(p.pid, signum)  # as the terminal sends it: to the window and its audio process
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 128 + signum, err
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"rtconv gui: stopped by {name}; closing the window" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ours()  # the audio process is gone with the window


#: ``rtconv gui`` with Record pressed before Start, as a user does (argv: the recording folder, then gui's arguments)
_RECORDING_GUI = """
import sys


def recording(args):
    win = build(args)
    win.controls.record_dir.setText(folder)
    win.controls.record.setChecked(True)
    return win


if __name__ == "__main__":  # not again in the audio process, which spawn starts by importing this file
    from rtconv.cli import main
    from rtconv_gui import app

    build, folder = app.build_window, sys.argv.pop(1)
    app.build_window = recording
    sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_while_recording_ends_the_gui_with_its_recording_finished_and_saved(tmp_path, jackd):
    """The terminal's Ctrl-C reached the audio process, which writes the recording, and killed it first."""
    import sys

    import soundfile as sf

    driver, rec = tmp_path / "gui.py", tmp_path / "rec"
    driver.write_text(_RECORDING_GUI)
    p = subprocess.Popen([sys.executable, str(driver), str(rec), "gui", "--settings", str(tmp_path / "s.ini"),
                          "--model", str(_lowpass(tmp_path)), "--hostapi", "jack", "--start"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    try:
        deadline = time.monotonic() + 90
        while len(list(rec.glob("*.wav"))) < 2 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list(rec.glob("*.wav"))) == 2 and p.poll() is None, p.communicate(timeout=30)
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)  # as the terminal sends it: to the window and its audio process
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err
    assert "rtconv gui: stopped by Ctrl-C; closing the window" in err and "Traceback" not in err, err
    inp, outp = (sf.info(str(f)) for f in sorted(rec.glob("*.wav")))
    assert inp.frames == outp.frames > 0.5 * 48000  # both files closed, with the second recorded


def test_rtconv_gui_rejects_a_negative_quit_after(tmp_path):
    import sys

    r = subprocess.run([sys.executable, "-m", "rtconv", "gui", "--quit-after", "-1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "expected a duration of 0 seconds or more, got '-1'" in r.stderr


def test_a_model_loaded_while_streaming_is_hot_swapped(window, qtbot, tmp_path, jack):
    window.load_model(_lowpass(tmp_path, name="first"))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    session = window.session
    assert window.load_model(_lowpass(tmp_path, 6000, name="second"))
    assert window.session is session  # same stream, same session: a swap, not a restart
    assert session.wait_swapped(5)
    assert session.stats()["model_name"] == "second" == window.model.metadata["name"]
    assert window.model_panel.field("name") == "second"


def test_a_model_that_does_not_fit_the_stream_is_refused_and_the_old_one_keeps_playing(window, tmp_path, jack):
    window.load_model(_lowpass(tmp_path, name="first"))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    running = window.model
    two_in = rtconv.save(rtconv.MimoCNN(taps=[3], features=[2, 1]), tmp_path / "two.safetensors", sample_rate=48000)
    assert not window.load_model(two_in)
    assert window.session.stats()["model_name"] == "first" and window.model is running
    assert window.model_panel.field("name") == "first"
    assert window.banner.text().startswith("kept first: ")
    assert "keeps playing" in window.banner.text()


def test_a_device_that_fails_to_open_restores_the_previous_state(window, tmp_path, jack):
    window.load_model(_lowpass(tmp_path))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    _on_jack(window, sample_rate=44100)  # the JACK server runs at 48 kHz only
    assert not window.start_stream()
    text = window.banner.text()
    assert text.startswith("could not start audio: ") and "44100" in text
    assert window.audio.choice()["sample_rate"] == 48000  # the previous choice is back
    assert window.session is not None and window.session.active  # and running again
    assert window.audio.start_button.text() == "Stop"


def test_recording_shows_its_file_names_and_writes_them(window, qtbot, tmp_path, jack):
    window.load_model(_lowpass(tmp_path))
    _on_jack(window)
    window.controls.record_dir.setText(str(tmp_path / "rec"))
    assert window.start_stream(), window.banner.text()
    window.controls.record.setChecked(True)
    paths = window.session.recording_paths
    assert paths
    for p in paths:
        assert os.path.basename(str(p)) in window.controls.record_file.text()
    qtbot.wait(300)
    window.stop_stream()
    assert all(os.path.getsize(p) > 44 for p in paths)
    assert window.controls.record_file.text() == "not recording"


def test_the_display_skips_work_while_hidden_and_when_no_new_audio_arrived(window, tmp_path):
    from gui import engine

    window.load_model(_lowpass(tmp_path))
    # a session that does not play: the test is the audio thread, the window reads its monitor
    window.session = engine.make_session(window.model_path, engine.stream_settings(window.audio.choice()))
    proc = window.session.processor
    block = (0.1 * np.random.default_rng(0).standard_normal((128, 1))).astype(np.float32)
    proc.process(block)  # the audio thread's side, without a device
    window.refresh_display()
    assert window.spectrum.updates == 1
    window.refresh_display()  # nothing new in the display ring: nothing redrawn
    assert window.spectrum.updates == 1
    window.hide()
    proc.process(block)
    window.refresh_display()
    assert window.spectrum.updates == 1
    window.show()
    window.refresh_display()
    assert window.spectrum.updates == 2
    window.tabs.setCurrentIndex(1)  # kernels shown: live plots are not drawn, meters still are
    proc.process(10 * block)
    window.refresh_display()
    assert window.spectrum.updates == 2
    assert window.meters.meter_in.peak_db > -20


@pytest.mark.parametrize("switch_at", [0, 1, 3])
def test_file_mode_ab_switches_between_original_and_processed_at_the_same_position(switch_at):
    from rtconv_gui.file_mode import _Player

    a = np.arange(40, dtype=np.float32)[:, None]
    b = -a
    player = _Player()
    player.a, player.b, player.pos = a, b, 0
    out = np.zeros((10, 2), np.float32)  # a stereo device plays a mono file on both channels
    got = []
    for i in range(4):
        player.use_b = i >= switch_at
        player.callback(out, 10, None, None)
        got.append(out[:, 0].copy())
        np.testing.assert_array_equal(out[:, 1], out[:, 0])
    expected = np.concatenate([(b if i >= switch_at else a)[10 * i : 10 * i + 10, 0] for i in range(4)])
    np.testing.assert_array_equal(np.concatenate(got), expected)


def test_the_stream_plays_in_a_separate_audio_process_that_takes_controls_and_swaps(window, qtbot, tmp_path, jack):
    window.load_model(_lowpass(tmp_path, name="first"))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    host = window.audio_host
    assert host is not None and host.alive and host.pid != os.getpid()
    c = window.controls
    c.bypass.setChecked(True)
    c.wet.setValue(35)
    c.gain.setValue(-3.0)
    c.limiter.setChecked(False)
    s = window.session
    remote = s.stats()["controls"]  # as the audio process has them
    assert remote["bypass"] is True
    assert remote["wet"] == pytest.approx(0.35)
    assert remote["gain_db"] == pytest.approx(-3.0)
    assert remote["limiter"] is False
    assert s.stats()["model_name"] == "first"
    assert window.load_model(_lowpass(tmp_path, 6000, name="second"))
    assert s.wait_swapped(5) and s.stats()["model_name"] == "second"
    qtbot.waitUntil(lambda: window.session.stats()["blocks"] > 50, timeout=10000)  # it plays there


def test_the_denoiser_strength_reaches_the_model_playing_in_the_audio_process(window, tmp_path, jack):
    denoiser = pytest.importorskip("rtconv.denoiser")
    path = rtconv.save(denoiser.ConvDenoiser(window=16, hop=8, channels=4, blocks=1), tmp_path / "d.safetensors",
                       sample_rate=48000, task="denoise")
    window.load_model(path)
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    window.controls.limit_on.setChecked(True)
    window.controls.limit_db.setValue(9)
    assert window.session.stats()["switches"]["attenuation_limit_db"] == 9.0
    window.controls.limit_on.setChecked(False)
    assert window.session.stats()["switches"]["attenuation_limit_db"] is None


def test_an_audio_process_that_dies_is_reported_and_the_stream_stops(window, tmp_path, jack):
    import signal

    window.load_model(_lowpass(tmp_path))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    os.kill(window.audio_host.pid, signal.SIGKILL)
    window.audio_host._proc.join(5)
    window.refresh_text()
    assert window.banner.text().startswith("audio stopped: the audio process stopped")
    assert window.session is None and window.audio.start_button.text() == "Start"
    assert window.start_stream(), window.banner.text()  # a new audio process starts
    assert window.audio_host.alive


def test_audio_can_still_run_in_the_gui_process(qtbot, tmp_path, metronome):
    from PyQt6 import QtCore

    from rtconv_gui.window import MainWindow
    from rtconv.live import LocalSession

    win = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat),
                     audio_process=False)
    qtbot.addWidget(win)
    win.show()
    try:
        win.load_model(_lowpass(tmp_path))
        _on_jack(win)
        assert win.start_stream(), win.banner.text()
        assert isinstance(win.session, LocalSession) and win.audio_host is None
        metronome()
        qtbot.waitUntil(lambda: win.meters.meter_in.peak_db > -40 or (win.refresh_display() and False), timeout=10000)
    finally:
        win.shutdown()


def test_the_voice_meter_follows_speech_and_the_gate_controls_reach_the_audio_process(window, qtbot, tmp_path, jack):
    import types

    import soundfile as sf

    from rtconv.bench.jackd import Loopback

    speech, _ = sf.read("recordings/demo_noisy.wav", dtype="float32", always_2d=True)
    window.load_model(_lowpass(tmp_path, 8000))
    _on_jack(window)
    assert window.start_stream(), window.banner.text()
    assert window.session.monitor.gate_state() is not None and window.controls.gate_row.isVisibleTo(window)
    c = window.controls
    c.gate.setChecked(True)
    c.gate_threshold.setValue(0.7)
    c.gate_hold.setValue(400)
    c.gate_floor.setValue(-30)
    s = window.session
    remote = s.stats()["controls"]
    assert remote["gate"] is True and remote["gate_threshold"] == pytest.approx(0.7)
    assert remote["gate_hold"] == pytest.approx(0.4) and remote["gate_floor_db"] == -30.0
    c.gate_floor.setValue(c.gate_floor.minimum())
    assert c.gate_floor.text() == "silence" and s.stats()["controls"]["gate_floor_db"] == float("-inf")
    meter = window.meters.meter_speech
    qtbot.waitUntil(lambda: meter.isVisibleTo(window), timeout=5000)
    # the dummy capture is digital silence: nobody speaks, the gate stays shut
    qtbot.waitUntil(lambda: s.stats()["blocks"] > 200, timeout=10000)
    assert meter.probability < 0.5 and not meter.gate_open
    lb = Loopback(types.SimpleNamespace(name=None, sample_rate=48000), speech[:, 0], 1.0, loop=True)
    try:
        lb.connect()
        lb.play()
        qtbot.waitUntil(lambda: meter.probability > 0.7 and meter.gate_open, timeout=10000)
        window.refresh_text()
        assert "voice 0." in window.meters.readout.text() and "gate open" in window.meters.readout.text()
        assert s.stats()["gate"]["opened"] >= 1
    finally:
        lb.close()
    c.gate.setChecked(False)
    assert s.stats()["controls"]["gate"] is False
    window.refresh_display()
    window.refresh_text()
    assert "gate off" in window.meters.readout.text()


def _gui_args(*argv):
    """``rtconv gui ARGV`` parsed as the command line parses it."""
    from rtconv.cli import get_parser

    return get_parser()[0].parse_args(["gui", *map(str, argv)])


@pytest.mark.parametrize(("flag", "value"), [("--input-device", "nosuchdevice"), ("--output-device", "nosuchdevice"),
                                             ("--hostapi", "nosuchapi")])
def test_an_unknown_device_on_the_command_line_is_refused_in_the_sentence_rtconv_live_says(tmp_path, jackd, capsys,
                                                                                          flag, value):
    """The window started on the default device instead, silently."""
    from rtconv.cli import main

    model = _lowpass(tmp_path)
    assert main(["live", "--model", str(model), flag, value, "--duration", "0.1"]) == 1
    live = capsys.readouterr().err.splitlines()[-1]
    assert live.startswith("rtconv live: error: ") and repr(value) in live and "`rtconv devices`" in live, live
    assert main(["gui", "--settings", str(tmp_path / "s.ini"), "--model", str(model), flag, value,
                 "--quit-after", "0"]) == 1
    err = capsys.readouterr().err
    assert err == live.replace("rtconv live", "rtconv gui") + "\n"


def test_a_device_named_on_the_command_line_is_found_on_its_host_api_as_rtconv_live_finds_it(qtbot, tmp_path, jackd):
    from rtconv_gui import engine
    from rtconv_gui.app import build_window

    index = next(d["index"] for d in engine.list_devices(JACK_API) if d["name"] == "system")
    win = build_window(_gui_args("--settings", tmp_path / "s.ini", "--model", _lowpass(tmp_path),
                                 "--input-device", "syst", "--output-device", index))  # a name's part, an index
    qtbot.addWidget(win)
    try:
        c = win.audio.choice()
        assert (c["hostapi"], c["input_device"], c["output_device"]) == (JACK_API, "system", "system")
    finally:
        win.shutdown()


def test_settings_a_stream_failed_to_start_with_are_not_remembered_for_the_next_run(qtbot, tmp_path, jackd):
    """A failed `rtconv gui -r 44100 --start` made the next plain `rtconv gui --start` fail the same way."""
    from rtconv_gui.app import build_window

    model = _lowpass(tmp_path)

    def run(*argv):
        win = build_window(_gui_args("--settings", tmp_path / "s.ini", "--model", model, *argv))
        qtbot.addWidget(win)
        return win

    first = run("--hostapi", "jack", "-r", 48000)
    assert first.start_stream(), first.banner.text()
    first.close()
    second = run("-r", 44100)  # the JACK server runs at 48 kHz only
    assert not second.start_stream()
    assert second.banner.text().startswith("could not start audio: ") and "44100" in second.banner.text()
    second.close()
    third = run()
    assert third.audio.choice()["sample_rate"] == 48000
    assert third.start_stream(), third.banner.text()
    third.close()


def test_a_resampled_stream_shows_the_models_latency_at_its_rate_and_the_resamplers_as_rtconv_live_counts_it(
        window, qtbot, tmp_path, jackd):
    """The card divided the model's samples by the device's rate; the resampler's latency is the session's number."""
    denoiser = pytest.importorskip("rtconv.denoiser")
    path = rtconv.save(denoiser.ConvDenoiser(window=16, hop=8, channels=4, blocks=1), tmp_path / "d16k.safetensors",
                       sample_rate=16000, task="denoise")
    assert window.load_model(path)
    _on_jack(window)  # 48 kHz
    assert window.start_stream(), window.banner.text()
    lat = window.session.stats()["latency"]
    assert lat["resampler_ms"] > 0
    card = f"15 samples ({1000 * 15 / 16000:.2f} ms) + {lat['resampler_ms']:.2f} ms resampling to 48000 Hz"
    assert window.model_panel.field("latency") == card
    window.refresh_text()
    assert window.model_panel.field("latency") == card
    assert f"resampler {lat['resampler_ms']:.2f}" in window.health.values["latency"].text()
    window.stop_stream()
    assert window.model_panel.field("latency") == f"15 samples ({1000 * 15 / 16000:.2f} ms)"
