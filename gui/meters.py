"""Level meters (peak and RMS in dBFS) with latching clip indicators.

A meter is a small painted bar: the RMS as a filled bar, the peak as a line
that falls back slowly (peak hold ~1.5 s), and a clip light that latches red
when the monitor reports clipping until the user clicks it.  A scale
beside the meters numbers their ticks in dBFS.
"""

from __future__ import annotations

import time

from PyQt6 import QtCore, QtGui, QtWidgets

__all__ = ["LevelMeter", "MeterScale", "SpeechMeter", "MetersPanel"]

MIN_DB = -60.0
#: Ticks of the level meters, numbered on their scale (dBFS).
TICKS_DB = (0, -6, -12, -24, -48)
#: Height of the clip light and of the name below a meter (pixels).
_LIGHT, _LABEL_H = 10, 14


def _bar_y(db: float, height: int) -> int:
    """Pixel row of ``db`` in a meter ``height`` pixels tall (clip light on top, name below)."""
    top, bottom = _LIGHT + 4, height - _LABEL_H
    frac = (min(max(db, MIN_DB), 0.0) - MIN_DB) / -MIN_DB
    return int(top + (bottom - top) * (1.0 - frac))


class LevelMeter(QtWidgets.QWidget):
    """One vertical meter: RMS bar, peak line, clip light on top."""

    HOLD_S = 1.5

    def __init__(self, label: str, parent=None) -> None:
        super().__init__(parent)
        self.label = label
        self.peak_db = MIN_DB
        self.rms_db = MIN_DB
        self.held_db = MIN_DB
        self._held_at = 0.0
        self.clipped = False
        self.setMinimumSize(26, 120)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setToolTip(f"{label}: peak and RMS level, dBFS; click to clear the clip light")

    def set_level(self, peak_db: float, rms_db: float, clip: bool = False) -> None:
        now = time.monotonic()
        self.peak_db, self.rms_db = float(peak_db), float(rms_db)
        if self.peak_db >= self.held_db or now - self._held_at > self.HOLD_S:
            self.held_db, self._held_at = self.peak_db, now
        self.clipped = self.clipped or bool(clip)
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.clipped = False
        self.update()

    def tick_y(self, db: float) -> int:
        """Pixel row of the ``db`` tick in this meter."""
        return _bar_y(db, self.height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        p = QtGui.QPainter(self)
        w, h = self.width(), self.height()
        light, label_h = _LIGHT, _LABEL_H
        top, bottom = light + 4, h - label_h
        p.fillRect(0, 0, w, h, QtGui.QColor("#1e1e1e"))
        p.fillRect(4, 2, w - 8, light, QtGui.QColor("#e03131" if self.clipped else "#3a3a3a"))
        y = self.tick_y(self.rms_db)
        grad = QtGui.QLinearGradient(0, top, 0, bottom)
        grad.setColorAt(0.0, QtGui.QColor("#e03131"))
        grad.setColorAt(0.15, QtGui.QColor("#f2c641"))
        grad.setColorAt(0.4, QtGui.QColor("#5cb85c"))
        grad.setColorAt(1.0, QtGui.QColor("#2f7d32"))
        p.fillRect(6, y, w - 12, bottom - y, QtGui.QBrush(grad))
        p.setPen(QtGui.QPen(QtGui.QColor("#ffffff"), 2))
        yp = self.tick_y(self.held_db)
        p.drawLine(4, yp, w - 4, yp)
        p.setPen(QtGui.QColor("#777777"))
        for db in TICKS_DB:
            yy = self.tick_y(db)
            p.drawLine(0, yy, 3, yy)
        p.setPen(QtGui.QColor("#dddddd"))
        p.drawText(QtCore.QRect(0, bottom, w, label_h), QtCore.Qt.AlignmentFlag.AlignCenter, self.label)
        p.end()


class MeterScale(QtWidgets.QWidget):
    """The level meters' dBFS numbers (0, -6, ... -48), each beside its tick; as tall as the meters."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        font = self.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        self.setFont(font)
        self.setFixedWidth(QtGui.QFontMetrics(font).horizontalAdvance("-48") + 4)
        self.setMinimumHeight(120)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setToolTip("level, dBFS")

    def labels(self) -> list[tuple[str, int]]:
        """``(text, pixel row)`` of each number, the rows the meters draw their ticks at."""
        return [(f"{db}", _bar_y(db, self.height())) for db in TICKS_DB]

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        p = QtGui.QPainter(self)
        p.setPen(QtGui.QColor("#999999"))
        h = QtGui.QFontMetrics(self.font()).height()
        right = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        for text, y in self.labels():
            p.drawText(QtCore.QRect(0, y - h // 2, self.width() - 2, h), right, text)
        p.end()


class SpeechMeter(QtWidgets.QWidget):
    """The voice-activity detector's speech probability (0..1) as a bar, the gate's threshold as
    a line, and a light on top: green while the gate is open, grey while it is closed or off."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.probability = 0.0
        self.threshold = 0.5
        self.gate_on = False
        self.gate_open = False
        self.setMinimumSize(26, 120)  # as narrow as the level meters: the window's width is spoken for
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setToolTip("speech: the probability that someone is speaking (voice-activity detector); "
                        "the line is the gate's threshold, the light is on while the gate lets sound through")

    def set_state(self, state: dict | None, threshold: float | None = None) -> None:
        """Take :meth:`rtconv.live.Monitor.gate_state` (``None``: no detector, an empty bar)."""
        state = state or {}
        self.probability = min(max(float(state.get("probability", 0.0)), 0.0), 1.0)
        self.gate_on = bool(state.get("on", False))
        self.gate_open = bool(state.get("open", False)) and self.gate_on
        if threshold is not None:
            self.threshold = float(threshold)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        p = QtGui.QPainter(self)
        w, h = self.width(), self.height()
        light, label_h = 10, 14
        top, bottom = light + 4, h - label_h
        height = bottom - top
        p.fillRect(0, 0, w, h, QtGui.QColor("#1e1e1e"))
        p.fillRect(4, 2, w - 8, light, QtGui.QColor("#5cb85c" if self.gate_open else "#3a3a3a"))
        y = int(top + height * (1.0 - self.probability))
        p.fillRect(6, y, w - 12, bottom - y, QtGui.QColor("#4c8bf5" if self.probability >= self.threshold else "#35557f"))
        if self.gate_on:
            p.setPen(QtGui.QPen(QtGui.QColor("#ffffff"), 1, QtCore.Qt.PenStyle.DashLine))
            yt = int(top + height * (1.0 - self.threshold))
            p.drawLine(2, yt, w - 2, yt)
        p.setPen(QtGui.QColor("#dddddd"))
        font = p.font()
        room = QtGui.QFontMetricsF(font).horizontalAdvance("voice")
        if room > w - 2 and font.pointSizeF() > 0:  # shrink the label to the meter, not the meter to the label
            font.setPointSizeF(font.pointSizeF() * (w - 2) / room)
            p.setFont(font)
        p.drawText(QtCore.QRect(0, bottom, w, label_h), QtCore.Qt.AlignmentFlag.AlignCenter, "voice")
        p.end()


class MetersPanel(QtWidgets.QWidget):
    """Input and output meters and their numeric readout (refreshed at ~1 Hz)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.meter_in = LevelMeter("in")
        self.meter_out = LevelMeter("out")
        self.meter_speech = SpeechMeter()
        self.meter_speech.setVisible(False)  # shown when the stream has a voice-activity detector
        self._speech: dict | None = None
        self.readout = QtWidgets.QLabel("—")
        self.readout.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.readout.setStyleSheet("font-size: 9pt")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.scale = MeterScale()
        bars = QtWidgets.QHBoxLayout()
        bars.addWidget(self.scale)
        bars.addWidget(self.meter_in)
        bars.addWidget(self.meter_out)
        bars.addWidget(self.meter_speech)
        lay.addLayout(bars, 1)
        lay.addWidget(self.readout)
        # no fixed minimum: the layout's (scale, in, out, voice) keeps every meter whole

    def update_meters(self, m: dict) -> None:
        """Take :meth:`rtconv.live.Monitor.meters` output (dBFS values, clip flags)."""
        self.meter_in.set_level(_get(m, "in", "peak"), _get(m, "in", "rms"), _clip(m, "in"))
        self.meter_out.set_level(_get(m, "out", "peak"), _get(m, "out", "rms"), _clip(m, "out"))

    def update_speech(self, state: dict | None) -> None:
        """Take :meth:`rtconv.live.Monitor.gate_state` (None hides the voice meter)."""
        self._speech = state
        self.meter_speech.setVisible(state is not None)
        if state is not None:
            self.meter_speech.set_state(state, state.get("threshold"))

    def update_text(self) -> None:
        a, b = self.meter_in, self.meter_out
        text = f"peak dBFS\n{_num(a.held_db)} {_num(b.held_db)}\nRMS dBFS\n{_num(a.rms_db)} {_num(b.rms_db)}"
        s = self._speech
        if s is not None:
            gate = ("gate open" if s.get("open") else "gate closed") if s.get("on") else "gate off"
            text += f"\nvoice {s.get('probability', 0.0):.2f}\n{gate}"
        self.readout.setText(text)


def _num(db: float) -> str:
    """A level for the readout: silence is -∞, not the -200 dB floor of the arithmetic."""
    return "   -∞" if db <= -120 else f"{db:5.1f}"


def _first(value) -> float:
    """A per-channel list or a scalar, as the loudest channel."""
    try:
        return float(max(value))
    except TypeError:
        return float(value)


def _get(m: dict, side: str, what: str) -> float:
    for key in (f"{side}_{what}_db", f"{side}_{what}", f"{'input' if side == 'in' else 'output'}_{what}_db"):
        if key in m:
            return _first(m[key])
    sub = m.get(side) or m.get("input" if side == "in" else "output")
    if isinstance(sub, dict):
        for key in (f"{what}_db", what):
            if key in sub:
                return _first(sub[key])
    return MIN_DB


def _clip(m: dict, side: str) -> bool:
    for key in (f"{side}_clip", f"{side}_limited", f"{side}_clipped"):
        if key in m:
            v = m[key]
            return bool(any(v)) if hasattr(v, "__iter__") else bool(v)
    sub = m.get(side) or m.get("input" if side == "in" else "output")
    if isinstance(sub, dict):
        for key in ("clip", "clipped"):
            if key in sub:
                v = sub[key]
                return bool(any(v)) if hasattr(v, "__iter__") else bool(v)
    return False
