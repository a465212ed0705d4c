"""File mode: open a recording, process it with the current model, compare A/B, save.

Processing runs in a worker thread (the window and the live stream keep
going).  Playback is one output stream whose callback reads either the
original (A) or the processed (B) signal at the same position, so switching
A/B while it plays is seamless, the way one compares in a studio.  The
spectra are Welch averages over the whole file, with the difference curve.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets
from scipy import signal

from . import engine
from .dsp import FLOOR_DB, log_frequency_ticks
from .spectrum import DIFF_PEN, IN_PEN, OUT_PEN

__all__ = ["FilePanel", "welch_db"]


def welch_db(x: np.ndarray, sample_rate: float, nperseg: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Average power spectrum of a mono signal in dBFS (full-scale sine ≈ 0 dB), DC dropped."""
    x = np.asarray(x, dtype=np.float64)
    nperseg = int(min(nperseg, max(16, x.shape[0])))
    f, p = signal.welch(x, sample_rate, window="hann", nperseg=nperseg, scaling="spectrum")
    # scaling="spectrum" gives the RMS² of a sine; ×2 turns it into its peak² (0 dB at full scale)
    return f[1:], np.maximum(10 * np.log10(np.maximum(2 * p[1:], 1e-24)), FLOOR_DB)


class _Worker(QtCore.QObject):
    done = QtCore.pyqtSignal(object)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, model, audio, sample_rate, both_directions: bool = False) -> None:
        super().__init__()
        self.model, self.audio, self.sample_rate = model, audio, sample_rate
        self.both_directions = both_directions

    def run(self) -> None:
        try:
            self.done.emit(engine.process_array(self.model, self.audio, self.sample_rate, self.both_directions))
        except Exception as e:  # noqa: BLE001 - shown to the user as one line
            self.failed.emit(str(e))


class _Player:
    """One output stream that plays A or B from a shared position."""

    def __init__(self) -> None:
        self.a = self.b = None
        self.pos = 0
        self.use_b = False
        self.stream = None
        self.lock = threading.Lock()

    def callback(self, outdata, frames, time, status) -> None:  # audio thread: copy only
        src = self.b if self.use_b else self.a
        n = max(0, min(frames, src.shape[0] - self.pos))
        ch = min(outdata.shape[1], src.shape[1])
        outdata[:n, :ch] = src[self.pos : self.pos + n, :ch]
        outdata[:n, ch:] = src[self.pos : self.pos + n, :1] if ch < outdata.shape[1] else 0
        outdata[n:] = 0
        self.pos += n
        if n < frames:
            import sounddevice as sd

            raise sd.CallbackStop

    def play(self, a, b, sample_rate, device=None) -> None:
        import sounddevice as sd

        self.stop()
        self.a, self.b, self.pos = a, b, 0
        self.stream = sd.OutputStream(
            samplerate=sample_rate, channels=a.shape[1], dtype="float32", device=device, callback=self.callback
        )
        self.stream.start()

    @property
    def playing(self) -> bool:
        return self.stream is not None and self.stream.active

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
            self.stream = None


class FilePanel(QtWidgets.QWidget):
    """Offline processing of one recording with the model the window holds."""

    message = QtCore.pyqtSignal(str, bool)  # text, is_error

    def __init__(self, get_model, get_output_device=lambda: None, parent=None) -> None:
        super().__init__(parent)
        self.get_model = get_model
        self.get_output_device = get_output_device
        self.path: Path | None = None
        self.audio: np.ndarray | None = None
        self.processed: np.ndarray | None = None
        self.sample_rate = 48000
        self.player = _Player()
        self._thread = None

        self.open_button = QtWidgets.QPushButton("Open recording…")
        self.process_button = QtWidgets.QPushButton("Process with current model")
        self.play_button = QtWidgets.QPushButton("▶ Play")
        self.play_button.setCheckable(True)
        self.ab = QtWidgets.QPushButton("A: original")
        self.ab.setCheckable(True)
        self.ab.setToolTip("Switch between original (A) and processed (B), also while playing")
        self.save_button = QtWidgets.QPushButton("Save result…")
        self.both = QtWidgets.QCheckBox("both directions")
        self.both.setEnabled(False)  # until a denoiser is shown (show_model)
        self.info = QtWidgets.QLabel("Open a recording (WAV, FLAC, OGG …) to process it offline.")
        self.info.setWordWrap(True)
        row = QtWidgets.QHBoxLayout()
        for w in (self.open_button, self.process_button, self.both, self.play_button, self.ab, self.save_button):
            row.addWidget(w)
        row.addStretch(1)

        self.plot = pg.PlotWidget()
        pi = self.plot.getPlotItem()
        pi.setLogMode(x=True, y=False)
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.setLabel("bottom", "frequency (Hz)")
        pi.getAxis("bottom").setTicks(log_frequency_ticks())
        pi.setLabel("left", "average magnitude", units="dBFS")
        pi.addLegend(offset=(10, -10))
        pi.setMenuEnabled(False)
        self.curve_a = pi.plot(pen=IN_PEN, name="original")
        self.curve_b = pi.plot(pen=OUT_PEN, name="processed")
        self.curve_d = pi.plot(pen=DIFF_PEN, name="processed − original")

        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)

        self.open_button.clicked.connect(self._open_dialog)
        self.process_button.clicked.connect(self.process)
        self.play_button.toggled.connect(self._play_toggled)
        self.ab.toggled.connect(self._ab_toggled)
        self.save_button.clicked.connect(self._save_dialog)
        self.poll = QtCore.QTimer(self, interval=200)
        self.poll.timeout.connect(self._poll_player)
        self._update_buttons()

    def show_model(self, model) -> None:
        """The window's current model: the 'both directions' box is for denoisers only."""
        ok = model is not None and engine.runs_both_directions(model)
        self.both.setEnabled(ok)
        self.both.setToolTip(
            "Run the denoiser over the recording forwards and backwards and keep the mean of the two "
            "(rtconv process --both-directions): cleaner, twice the time; files only" if ok else
            "For denoisers: a filter would lose its phase, a detector its timing")

    def _update_buttons(self) -> None:
        busy = self._thread is not None
        self.process_button.setEnabled(self.audio is not None and not busy)
        self.play_button.setEnabled(self.audio is not None)
        self.ab.setEnabled(self.processed is not None)
        self.save_button.setEnabled(self.processed is not None and not busy)

    # --- open / process / save -------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a recording", "", "Audio (*.wav *.flac *.ogg *.aiff *.aif);;All files (*)"
        )
        if path:
            self.open(path)

    def open(self, path: str | Path) -> bool:
        import soundfile as sf

        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001 - soundfile raises several types
            self.message.emit(f"cannot open {str(path)!r}: {e}", True)
            return False
        self.path, self.audio, self.sample_rate, self.processed = Path(path), audio, int(rate), None
        self.info.setText(f"{self.path.name}: {audio.shape[0] / rate:.2f} s, {rate} Hz, {audio.shape[1]} ch")
        self._show_spectra()
        self._update_buttons()
        return True

    def process(self) -> None:
        model = self.get_model()
        if self.audio is None or model is None:
            self.message.emit("open a recording and load a model first.", True)
            return
        self.info.setText(f"processing {self.path.name} …")
        self._thread = QtCore.QThread(self)
        self._both_used = self.both.isChecked() and self.both.isEnabled()
        self._worker = _Worker(model, self.audio, self.sample_rate, self._both_used)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.done.connect(self._processed)
        self._worker.failed.connect(self._failed)
        self._thread.start()
        self._update_buttons()

    def _finish_thread(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._thread = None

    def _processed(self, out) -> None:
        self._finish_thread()
        self.processed = np.ascontiguousarray(out, dtype=np.float32)
        self.info.setText(
            f"{self.path.name}: processed with {self._model_name()}"
            + (" in both directions" if self._both_used else "")
            + f" ({self.processed.shape[0] / self.sample_rate:.2f} s); A/B to compare, save to keep"
        )
        self._show_spectra()
        self._update_buttons()

    def _failed(self, text: str) -> None:
        self._finish_thread()
        self.message.emit(f"processing {self.path.name} failed: {text}", True)
        self.info.setText(f"{self.path.name}: not processed")
        self._update_buttons()

    def wait(self, ms: int = 30000) -> bool:
        """Block until processing is done (tests and scripts)."""
        deadline = QtCore.QDeadlineTimer(ms)
        while self._thread is not None and not deadline.hasExpired():
            QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return self._thread is None

    def _model_name(self) -> str:
        m = self.get_model()
        return (getattr(m, "metadata", {}) or {}).get("name") or type(m).__name__

    def _save_dialog(self) -> None:
        suggested = str(self.path.with_name(self.path.stem + "-processed.wav")) if self.path else ""
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the processed audio", suggested, "WAV (*.wav);;FLAC (*.flac)")
        if path:
            self.save(path)

    def save(self, path: str | Path) -> bool:
        import soundfile as sf

        try:
            sf.write(str(path), self.processed, self.sample_rate, subtype="FLOAT" if str(path).lower().endswith(".wav") else None)
        except Exception as e:  # noqa: BLE001
            self.message.emit(f"cannot save {str(path)!r}: {e}", True)
            return False
        self.message.emit(f"saved {path}", False)
        return True

    def _show_spectra(self) -> None:
        fa, da = welch_db(self.audio[:, 0], self.sample_rate)
        self.curve_a.setData(fa, da)
        # silence (the floor) would stretch the axis to -160 dB; show ~110 dB down from
        # the peak or from 0 dB, where the difference curve of an unchanged band lies
        top = max(float(np.max(da)), 0.0) + 5
        self.plot.getPlotItem().setYRange(top - 115, top, padding=0)
        if self.processed is not None:
            fb, db = welch_db(self.processed[:, 0], self.sample_rate)
            self.curve_b.setData(fb, db)
            self.curve_d.setData(fb, db - da)
        else:
            self.curve_b.setData([], [])
            self.curve_d.setData([], [])

    # --- playback ----------------------------------------------------------------
    def _ab_toggled(self, b: bool) -> None:
        self.player.use_b = b
        self.ab.setText("B: processed" if b else "A: original")

    def _play_toggled(self, on: bool) -> None:
        if not on:
            self.player.stop()
            self.poll.stop()
            self.play_button.setText("▶ Play")
            return
        b = self.processed if self.processed is not None else self.audio
        try:
            self.player.use_b = self.ab.isChecked() and self.processed is not None
            self.player.play(self.audio, b, self.sample_rate, self.get_output_device())
        except Exception as e:  # noqa: BLE001 - PortAudio's reason is shown
            self.message.emit(f"cannot play: {e}", True)
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
            return
        self.play_button.setText("■ Stop")
        self.poll.start()

    def _poll_player(self) -> None:
        if not self.player.playing:
            self.play_button.setChecked(False)

    def shutdown(self) -> None:
        self.player.stop()
        if self._thread is not None:
            self._finish_thread()
