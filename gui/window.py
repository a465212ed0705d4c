"""The rtconv main window: set-up and model on the left, live plots and kernels on the right.

Data flow (friture's pattern): the window holds a live session
(:mod:`rtconv.live.session`; by default it plays in a separate audio
process) and never a processor: settings go to it as one
:class:`rtconv.live.StreamSettings`, a model as a checkpoint path plus
switches, controls as values.  The audio callback never waits for this
window; a QTimer at ~30 fps pulls a snapshot of the latest input/output from
the session's monitor (shared memory), folds it into the spectra, one
spectrogram column and the meters, and does nothing while the window is
hidden or minimised.  Text
(health, meter readouts) refreshes at ~1 Hz.  Plot items are persistent and
updated with ``setData``; the kernel view is rebuilt only when a swapped
model has a different layer shape.

Errors from the engine (a checkpoint that does not load, a device that does
not open) are shown in a banner and the status bar; the window returns to
the state it was in before the attempt.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from rtconv.errors import RtconvError

from . import engine
from .audio_setup import AudioSetup
from .controls import Controls
from .file_mode import FilePanel
from .health import HealthPanel, dropouts
from .meters import MetersPanel
from .model_panel import ModelPanel
from .spectrogram import SpectrogramPanel
from .spectrum import SpectrumPanel
from .stems import KernelPanel

__all__ = ["MainWindow"]

FPS = 30
DISPLAY_SAMPLES = 4096


#: The engine's messages name command-line options; in the window, the controls that do the same.
_GUI_WORDS = (
    ("run `rtconv devices` to list them", "press Rescan to list them again"),
    ("or run `rtconv devices`", "or press Rescan"),
    ("run `rtconv devices`", "press Rescan"),
    ("try --sample-rate with it", "choose it in the Rate box"),
    ("(--sample-rate)", "(the Rate box)"),
    ("--sample-rate", "the Rate box"),
    ("--block-size", "the Block box"),
    ("--channels", "the Channels box"),
    ("e.g. --hostapi alsa", "in the Host API list"),
    ("--hostapi", "the Host API list"),
    ("leave --atten-lim out for this model", "the strength knob does nothing for this model"),
    ("--atten-lim", "the strength knob"),
)


def gui_words(text: str) -> str:
    """An engine message with its command-line advice said as the window's controls."""
    for cli, gui in _GUI_WORDS:
        text = text.replace(cli, gui)
    return text


class MainWindow(QtWidgets.QMainWindow):
    """The desktop app's window.

    Parameters
    ----------
    settings : QSettings, optional
        Where choices persist (default: the user's ``rtconv/gui`` settings).
    audio_process : bool, optional
        Run live audio in a separate process (default, unless the
        environment sets ``RTCONV_AUDIO_PROCESS=0``): Qt paints holding
        Python's interpreter lock, which an in-process audio callback needs
        too (see :mod:`rtconv.live.host`).
    audio : dict, optional
        Audio box choices (:meth:`AudioSetup.choice`'s keys) in place of the
        remembered ones: the command line's.
    """

    def __init__(self, settings: QtCore.QSettings | None = None, parent=None,
                 audio_process: bool | None = None, audio: dict | None = None) -> None:
        super().__init__(parent)
        if audio_process is None:
            audio_process = os.environ.get("RTCONV_AUDIO_PROCESS", "1") != "0"
        self.audio_host = engine.audio_host() if audio_process else None
        self.settings = settings or QtCore.QSettings("rtconv", "gui")
        self.model = None
        self.model_path: str | None = None
        self.session = None
        self._stream_choice: dict | None = None  # the last configuration that opened
        #: Why the last Start failed, in the engine's sentence (the command line's words; the banner says it in the
        #: window's), None when it did not: the audio box's choice is then not remembered (it would fail the next run
        #: the same way), and ``rtconv gui --start`` says it on stderr and ends with 1.
        self.start_error: str | None = None
        #: Why the last model failed to load (one sentence), None when it loaded.
        self.model_error: str | None = None
        self._watcher = None
        self._changed_files: list[str] = []  # from the watcher's thread (list.append is atomic)
        self._temp_checkpoints: list[str] = []
        self.frames = 0
        self.fps = 0.0
        self._fps_t0 = time.monotonic()
        self._fps_n = 0
        self._last_tick = time.monotonic()
        self._written = -1
        self.display_rate = float(FPS)
        self._dropouts_seen = 0
        # sentences from the stream's monitor thread; list.append is atomic, the
        # 1 Hz text timer shows them (Qt is only touched from this thread)
        self._warnings: list[str] = []
        #: The remembered host API or devices that are not there now, and what is used instead (one sentence);
        #: None when all are.  Shown once in the banner; ``rtconv gui`` says it on stderr too.
        self.audio_notice: str | None = None
        self.setWindowTitle("rtconv")

        # left column
        self.audio = AudioSetup()
        self.model_panel = ModelPanel()
        self.controls = Controls()
        self.meters = MetersPanel()
        self.health = HealthPanel()
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        for w in (self.audio, self.model_panel, self.controls, self.health):
            ll.addWidget(w)
        ll.addStretch(1)
        left_scroll = QtWidgets.QScrollArea()
        left_scroll.setWidgetResizable(True)
        left_scroll.setWidget(left)
        left_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left_scroll.setMinimumWidth(left.sizeHint().width() + left_scroll.verticalScrollBar().sizeHint().width() + 4)

        # right side
        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.banner.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.spectrum = SpectrumPanel(fft_size=DISPLAY_SAMPLES)
        self.spectrogram = SpectrogramPanel()
        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        plots.addWidget(self.spectrum)
        plots.addWidget(self.spectrogram)
        plots.setSizes([500, 400])
        live = QtWidgets.QWidget()
        lv = QtWidgets.QHBoxLayout(live)
        lv.setContentsMargins(2, 2, 2, 2)
        lv.addWidget(plots, 1)
        lv.addWidget(self.meters)
        self.kernels = KernelPanel()
        self.file_panel = FilePanel(lambda: self.model, lambda: self.audio.choice()["output_device"])
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.kernels, "Kernels")
        self.tabs.addTab(self.file_panel, "File")
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.banner)
        rl.addWidget(self.tabs, 1)

        split = QtWidgets.QSplitter()
        split.addWidget(left_scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 1100])
        self.setCentralWidget(split)
        self.statusBar().showMessage("ready")

        # wiring
        self.model_panel.load_requested.connect(self.load_model)
        self.audio.start_requested.connect(self.start_stream)
        self.audio.stop_requested.connect(self.stop_stream)
        self.audio.devices_gone.connect(lambda text: self.show_message(text, True))
        self.controls.changed.connect(self._apply_controls)
        self.controls.switches_changed.connect(self._apply_switches)
        self.controls.record_toggled.connect(self._record_toggled)
        self.file_panel.message.connect(self.show_message)
        self.spectrum.db_min.valueChanged.connect(self._levels_changed)
        self.spectrum.db_max.valueChanged.connect(self._levels_changed)
        self.spectrum.fps.valueChanged.connect(self._set_display_rate)
        self.watch = self.model_panel.watch
        self.watch.toggled.connect(self._watch_toggled)
        self._reload_timer = QtCore.QTimer(self, interval=250)
        self._reload_timer.timeout.connect(self._reload_watched)
        self._reload_timer.start()

        self.timer = QtCore.QTimer(self, interval=int(1000 / FPS))
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.refresh_display)
        self.text_timer = QtCore.QTimer(self, interval=1000)
        self.text_timer.timeout.connect(self.refresh_text)

        self.audio.rescan()
        self._restore(audio)
        self._levels_changed()
        self.resize(1500, 920)

    # --- messages ------------------------------------------------------------------
    def show_message(self, text: str, error: bool = True) -> None:
        """Show ``text`` in the banner (red for errors) and the status bar, in the GUI's words."""
        text = gui_words(text)
        colour = "#ffdddd" if error else "#ddf5dd"
        self.banner.setStyleSheet(f"background:{colour}; color:#222; padding:6px; border-radius:4px;")
        self.banner.setText(text)
        self.banner.setVisible(True)
        self.statusBar().showMessage(text, 15000)
        self.last_message = (text, error)

    def clear_message(self) -> None:
        self.banner.setVisible(False)

    # --- model ---------------------------------------------------------------------
    def load_model(self, path: str | Path) -> bool:
        """Load ``path`` and hot-swap it into the running stream; on failure keep the old one."""
        path = str(path)
        try:
            model = engine.load_model(path)
        except Exception as e:  # noqa: BLE001 - any failure keeps the running model
            self.model_error = str(e)
            self.show_message(f"could not load the model: {e}", True)
            return False
        return self.set_model(model, path)

    def set_model(self, model, path: str | None = None) -> bool:
        """Make ``model`` current: hot-swap it into the running session, refresh panel and stems.

        With a session running, the model goes there as its checkpoint path
        plus switches; one that does not fit (channels, too slow for the
        block) is refused there and the running one keeps playing.  Without
        one, the model is shown; whether it can run live is said when audio
        starts.
        """
        switches = engine.model_switches(model)
        if self.session is not None:
            try:
                self.session.swap(self._checkpoint(model, path), switches)
            except RtconvError as e:
                self.show_message(f"kept {self._model_name(self.model)}: {e}", True)
                return False
        self.model, self.model_path, self.model_error = model, path, None
        rate = self._rate()
        self.model_panel.show_model(model, path, rate)
        self.kernels.set_model(model, rate)
        self.setWindowTitle(f"rtconv — {self._model_name(model)}")
        self.statusBar().showMessage(f"model {self._model_name(model)} loaded", 5000)
        self.controls.show_model_switches(switches)
        self.file_panel.show_model(model)
        self.clear_message()
        self._watch_toggled(self.watch.isChecked())
        return True

    def _checkpoint(self, model, path: str | None) -> str:
        """The file a session loads ``model`` from: its own, or a temporary copy of one made in memory."""
        if path is not None:
            return str(path)
        import tempfile

        import rtconv

        fd, tmp = tempfile.mkstemp(prefix="rtconv-gui-", suffix=".safetensors")
        os.close(fd)
        rtconv.save(model, tmp)
        self._temp_checkpoints.append(tmp)
        return tmp

    @staticmethod
    def _model_name(model) -> str:
        if model is None:
            return "no model"
        return (getattr(model, "metadata", {}) or {}).get("name") or type(model).__name__

    def _rate(self) -> int:
        return int(self._stream_choice["sample_rate"]) if self._stream_choice else int(self.audio.choice()["sample_rate"])

    def _watch_toggled(self, on: bool) -> None:
        """Watch the model's file (rtconv.live.ModelWatcher, as ``rtconv live --watch``)."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if on and self.model_path:
            self._watcher = engine.model_watcher(self.model_path, self._changed_files.append)

    def _reload_watched(self) -> None:
        """A new complete version of the watched file: load it like the user would (swapped in if audio runs)."""
        while self._changed_files:
            path = self._changed_files.pop(0)
            if path == self.model_path and self.load_model(path):
                self.show_message(f"reloaded {Path(path).name} after it changed", False)

    # --- session -------------------------------------------------------------------------
    def _apply_controls(self) -> None:
        if self.session is not None:
            try:
                self.session.set_controls(**self.controls.values())
            except RtconvError as e:
                self.show_message(f"the audio process did not take the setting: {e}", True)

    def _apply_switches(self) -> None:
        switches = self.controls.switches()
        if self.model is not None:  # the window's copy shows what plays
            try:
                engine.apply_switches(self.model, switches)
            except RtconvError as e:
                self.show_message(str(e), True)
                return
        if self.session is not None:
            try:
                self.session.set_switches(**switches)
            except RtconvError as e:
                self.show_message(f"the audio process did not take the setting: {e}", True)

    def start_stream(self) -> bool:
        """Open the chosen devices; if they fail, go back to what ran before and say why."""
        choice = self.audio.choice()
        previous = dict(self._stream_choice) if self._stream_choice else None
        was_running = self.session is not None
        self._close_stream()
        ok, err = self._open(choice)
        if ok:
            return True
        self.start_error = err
        self.show_message(f"could not start audio: {err}", True)
        if previous is not None:
            self.audio.set_choice(previous)
            if was_running and self._open(previous)[0]:
                self.show_message(f"could not start audio: {err} — back on the previous devices", True)
        return False

    def _open(self, choice: dict) -> tuple[bool, str]:
        if self.model is None:
            return False, "load a model first"
        rec = self.controls.record_dir.text() if self.controls.record.isChecked() else None
        note = None
        try:
            if rec:
                Path(rec).mkdir(parents=True, exist_ok=True)
            settings = engine.stream_settings(choice, record_dir=rec)
            path = self._checkpoint(self.model, self.model_path)
            kw = dict(switches=self.controls.switches(), controls=self.controls.values(),
                      warn=self._warnings.append)
            vad = engine.default_vad_path()
            session = None
            if vad is not None:  # the voice meter and the speech gate, when the detector can run here
                try:
                    session = engine.make_session(path, settings, self.audio_host, vad=str(vad), **kw)
                    session.start()
                except RtconvError as e:
                    if not str(e).startswith("the VAD"):
                        raise
                    note, session = f"no voice meter or speech gate this time: {e}", None
            if session is None:
                session = engine.make_session(path, settings, self.audio_host, **kw)
                session.start()
            self.controls.show_gate(session.monitor.gate_state() is not None)
        except (RtconvError, OSError) as e:
            self.audio.set_running(False, "stopped")
            return False, str(e)
        self.session = session
        self._stream_choice = dict(choice)
        self.start_error = None
        self._written = -1
        stats = session.stats()
        self._dropouts_seen = dropouts(stats)
        rate = settings.sample_rate
        self.spectrum.set_sample_rate(rate)
        self.spectrogram.set_sample_rate(rate, FPS)
        self.model_panel.show_model(self.model, self.model_path, rate)
        self.model_panel.show_resampling(stats)
        self.controls.show_recording(session.recording_paths)
        self.audio.set_running(True, f"running at {rate} Hz, {settings.block_size}-sample blocks")
        self.clear_message()
        if note:
            self.show_message(note, False)
        self.audio.save(self.settings)
        self.timer.start()
        self.text_timer.start()
        return True, ""

    def _close_stream(self) -> None:
        if self.session is not None:
            try:
                self.session.stop()
            except RtconvError as e:
                self.show_message(f"audio stopped with an error: {e}", True)
            self.session = None
        self.controls.show_recording(None)

    def stop_stream(self) -> None:
        self._close_stream()
        self.audio.set_running(False, "stopped")
        self.timer.stop()
        self.refresh_text()

    def _record_toggled(self, on: bool) -> None:
        if self.session is not None:  # recording files are opened with the stream
            self.start_stream()

    # --- display ---------------------------------------------------------------------
    def _set_display_rate(self, fps: float) -> None:
        self.display_rate = float(fps)
        self.timer.setInterval(int(1000 / self.display_rate))

    def adapt_display_rate(self, stats: dict | None) -> None:
        """Halve the frame rate in a second with dropouts, add 2 fps in a clean one.

        On a machine short of CPU the display gives way to the audio instead
        of competing with it; at 5 fps it costs a sixth of 30 fps.
        """
        if stats is None:
            return
        n = dropouts(stats)
        target = float(self.spectrum.fps.value())
        if not self.spectrum.adaptive.isChecked():
            rate = target
        elif n > self._dropouts_seen:
            rate = max(5.0, self.display_rate / 2)
        else:
            rate = min(target, self.display_rate + 2.0)
        self._dropouts_seen = n
        if rate != self.display_rate:
            self._set_display_rate(rate)

    def _levels_changed(self) -> None:
        self.spectrogram.set_levels(self.spectrum.db_min.value(), self.spectrum.db_max.value())

    def refresh_display(self) -> None:
        """One display frame: pull the latest audio snapshot and update what is visible."""
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        if self.session is None or not self.isVisible() or self.isMinimized():
            return
        mon = self.session.monitor
        written = mon.written
        if written == self._written:  # no new audio (stream stalled or stopped): nothing to redo
            return
        # a new session restarts its count; treat that like a first frame
        new = written - self._written if 0 <= self._written <= written else DISPLAY_SAMPLES
        self._written = written
        if self.tabs.currentIndex() == 0:
            sg = self.spectrogram
            # enough history for every spectrogram column this frame owes (capped by the ring)
            n = min(max(DISPLAY_SAMPLES, sg.fft_size + new), mon.display.capacity)
            inp, out = mon.read_display(n)
            inp, out = inp[:, 0], out[:, 0]
            self.spectrum.update_audio(inp, out, dt)
            sg.update_audio(inp, out, new)
        self.meters.update_meters(mon.meters())
        self.meters.update_speech(mon.gate_state())
        self.frames += 1
        self._fps_n += 1

    def refresh_text(self) -> None:
        now = time.monotonic()
        span = now - self._fps_t0
        if span > 0:
            self.fps = self._fps_n / span
        self._fps_t0, self._fps_n = now, 0
        if not self.isVisible():
            return
        stats = None
        if self.session is not None:
            try:
                stats = self.session.stats()
            except RtconvError as e:
                self.show_message(f"audio stopped: {e}", True)
                self.stop_stream()
                return
        self.adapt_display_rate(stats)
        drops = self.session.monitor.display_drops if self.session is not None else None
        self.health.show_stats(stats, self.fps, drops)
        self.model_panel.show_resampling(stats)
        if self.display_rate < self.spectrum.fps.value():
            self.health.values["fps"].setText(
                self.health.values["fps"].text() + f"; backed off to {self.display_rate:.0f} (audio dropouts)"
            )
        self.meters.update_text()
        if self.session is not None:
            self.controls.show_recording(self.session.recording_paths)
        while self._warnings:
            self.show_message(self._warnings.pop(0), True)

    # --- persistence -------------------------------------------------------------------
    def _restore(self, audio: dict | None = None) -> None:
        s = self.settings
        missing = self.audio.restore(s, audio)
        if missing:  # a device unplugged since the last run fell back to the default silently
            self.audio_notice = self.audio.missing_text(missing)
            self.show_audio_notice()
        self.controls.restore(s)
        self.spectrum.tau.setValue(float(s.value("spectrum/tau", self.spectrum.tau.value())))
        self.spectrum.db_min.setValue(int(s.value("spectrum/db_min", self.spectrum.db_min.value())))
        self.spectrum.db_max.setValue(int(s.value("spectrum/db_max", self.spectrum.db_max.value())))
        self.spectrum.fps.setValue(int(s.value("spectrum/fps", self.spectrum.fps.value())))
        geo = s.value("window/geometry")
        if isinstance(geo, QtCore.QByteArray):
            self.restoreGeometry(geo)

    def show_audio_notice(self) -> None:
        """Show :attr:`audio_notice` (if any) in the banner after what it says already (a failed start, a model that
        did not load); ``rtconv gui`` shows it again once the window is set up, as a model loaded clears the banner."""
        text, shown = self.audio_notice, "" if self.banner.isHidden() else self.banner.text()
        if text and text not in shown:
            self.show_message(f"{shown}\n{text}" if shown else text, True)

    def last_model(self) -> str | None:
        p = self.settings.value("model/path", "")
        return p if p and Path(p).exists() else None

    def save_settings(self) -> None:
        """Remember the window's choices; the audio box's only if the last Start did not fail with them."""
        s = self.settings
        if self.start_error is None:
            self.audio.save(s)
        self.controls.save(s)
        s.setValue("spectrum/tau", self.spectrum.tau.value())
        s.setValue("spectrum/db_min", self.spectrum.db_min.value())
        s.setValue("spectrum/db_max", self.spectrum.db_max.value())
        s.setValue("spectrum/fps", self.spectrum.fps.value())
        s.setValue("window/geometry", self.saveGeometry())
        if self.model_path:
            s.setValue("model/path", self.model_path)
        s.sync()

    def shutdown(self) -> None:
        """Stop timers, audio and playback (idempotent)."""
        self.timer.stop()
        self.text_timer.stop()
        self._close_stream()
        self._watch_toggled(False)
        self._reload_timer.stop()
        self.file_panel.shutdown()
        if self.audio_host is not None:
            self.audio_host.close()
        for tmp in self._temp_checkpoints:
            Path(tmp).unlink(missing_ok=True)
        self._temp_checkpoints.clear()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 - nothing to draw while hidden
        self.timer.stop()
        super().hideEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802
        if self.session is not None:
            self.timer.start()
        super().showEvent(event)
