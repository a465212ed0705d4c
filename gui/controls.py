"""Live controls: bypass, dry/wet, output gain, limiter, speech gate, strength, recording.

The widget holds the user's settings and exposes them as values
(:meth:`Controls.values`, :meth:`Controls.switches`) and signals
(``changed``, ``switches_changed``); the window hands them to the live
session, so a session opened for new devices or another model keeps them.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtWidgets

__all__ = ["Controls"]


class Controls(QtWidgets.QGroupBox):
    """Bypass, dry/wet (%), output gain (dB), limiter, record on/off."""

    changed = QtCore.pyqtSignal()
    switches_changed = QtCore.pyqtSignal()
    record_toggled = QtCore.pyqtSignal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__("Controls", parent)
        self.bypass = QtWidgets.QCheckBox("Bypass")
        self.bypass.setToolTip("Pass the input through unprocessed (latency-matched)")
        self.limiter = QtWidgets.QCheckBox("Output limiter")
        self.limiter.setToolTip("Keep the output below full scale instead of clipping")
        self.limiter.setChecked(True)
        self.wet = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.wet.setValue(100)
        self.wet_label = QtWidgets.QLabel()
        self.gain = QtWidgets.QDoubleSpinBox(suffix=" dB", decimals=1, minimum=-40.0, maximum=20.0, singleStep=0.5)
        self.gain.setToolTip("Gain applied to the output after mixing")
        # model switches: shown only for models that have them (the denoiser's strength)
        self.limit_on = QtWidgets.QCheckBox("Limit attenuation to")
        self.limit_on.setToolTip("Denoiser strength: the most any band is attenuated")
        self.limit_db = QtWidgets.QDoubleSpinBox(suffix=" dB", decimals=0, minimum=0.0, maximum=100.0, singleStep=3.0)
        self.limit_db.setValue(20.0)
        # the speech gate: offered when the stream has a voice-activity detector
        self.gate = QtWidgets.QCheckBox("Speech gate")
        self.gate.setToolTip("Silence the output between speech (the voice meter shows what the detector hears)")
        self.gate_threshold = QtWidgets.QDoubleSpinBox(decimals=2, minimum=0.05, maximum=0.95, singleStep=0.05)
        self.gate_threshold.setValue(0.5)
        self.gate_threshold.setPrefix("opens at ")
        self.gate_threshold.setToolTip("Speech probability that opens the gate; it closes 0.15 below")
        self.gate_hold = QtWidgets.QSpinBox(suffix=" ms hold", minimum=0, maximum=5000, singleStep=50)
        self.gate_hold.setValue(250)
        self.gate_hold.setToolTip("How long the gate stays open after the speech ends")
        self.gate_floor = QtWidgets.QSpinBox(suffix=" dB", minimum=-91, maximum=0, singleStep=6)
        self.gate_floor.setSpecialValueText("silence")  # the minimum shows as 'silence' (-inf)
        self.gate_floor.setValue(-91)
        self.gate_floor.setToolTip("Level between speech: a few dB down keeps the room audible, 'silence' mutes it")
        self._switches: dict = {}
        self.record = QtWidgets.QPushButton("● Record")
        self.record.setCheckable(True)
        self.record.setToolTip("Record input and output to WAV files while the stream runs")
        self.record_dir = QtWidgets.QLineEdit(str(Path.cwd() / "recordings"))
        self.record_dir.setToolTip("Folder for recordings")
        self.record_file = QtWidgets.QLabel("not recording")
        self.record_file.setWordWrap(True)
        self.record_file.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QtWidgets.QFormLayout(self)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.bypass)
        row.addWidget(self.limiter)
        form.addRow(row)
        wet = QtWidgets.QHBoxLayout()
        wet.addWidget(self.wet, 1)
        wet.addWidget(self.wet_label)
        form.addRow("Dry/wet", wet)
        form.addRow("Output gain", self.gain)
        self.strength_row = QtWidgets.QWidget()
        sr = QtWidgets.QHBoxLayout(self.strength_row)
        sr.setContentsMargins(0, 0, 0, 0)
        sr.addWidget(self.limit_on)
        sr.addWidget(self.limit_db, 1)
        form.addRow(self.strength_row)
        self.strength_row.setVisible(False)
        self.gate_row = QtWidgets.QWidget()
        gr = QtWidgets.QHBoxLayout(self.gate_row)
        gr.setContentsMargins(0, 0, 0, 0)
        for w in (self.gate, self.gate_threshold, self.gate_hold, self.gate_floor):
            gr.addWidget(w)
        form.addRow(self.gate_row)
        self.gate_row.setVisible(False)
        rec = QtWidgets.QHBoxLayout()
        rec.addWidget(self.record)
        rec.addWidget(self.record_dir, 1)
        form.addRow(rec)
        form.addRow(self.record_file)

        self.bypass.toggled.connect(self.changed)
        self.limiter.toggled.connect(self.changed)
        self.wet.valueChanged.connect(self._wet_changed)
        self.gain.valueChanged.connect(self.changed)
        self.record.toggled.connect(self.record_toggled)
        self.limit_on.toggled.connect(self._apply_strength)
        self.limit_db.valueChanged.connect(self._apply_strength)
        self.gate.toggled.connect(self.changed)
        self.gate_threshold.valueChanged.connect(self.changed)
        self.gate_hold.valueChanged.connect(self.changed)
        self.gate_floor.valueChanged.connect(self.changed)
        self._wet_changed(self.wet.value())

    def _wet_changed(self, value: int) -> None:
        self.wet_label.setText(f"{value:3d} % wet")
        self.changed.emit()

    @property
    def wet_fraction(self) -> float:
        return self.wet.value() / 100.0

    def values(self) -> dict:
        """The controls as :data:`rtconv.live.CONTROLS` (the gate's too; a stream without a VAD ignores them)."""
        return {
            "bypass": self.bypass.isChecked(),
            "wet": self.wet_fraction,
            "gain_db": float(self.gain.value()),
            "limiter": self.limiter.isChecked(),
            "gate": self.gate.isChecked(),
            "gate_threshold": float(self.gate_threshold.value()),
            "gate_hold": self.gate_hold.value() / 1000.0,
            "gate_floor_db": self.gate_floor_db,
        }

    def show_gate(self, available: bool) -> None:
        """Offer the speech gate row when the stream has a voice-activity detector."""
        self.gate_row.setVisible(available)

    @property
    def gate_floor_db(self) -> float:
        v = self.gate_floor.value()
        return float("-inf") if v == self.gate_floor.minimum() else float(v)

    def show_model_switches(self, switches: dict) -> None:
        """Offer the switches a model has (``engine.model_switches``: a denoiser's attenuation limit)."""
        has = "attenuation_limit_db" in switches
        self.strength_row.setVisible(has)
        if has:
            limit = switches["attenuation_limit_db"]
            for w in (self.limit_on, self.limit_db):
                w.blockSignals(True)
            self.limit_on.setChecked(limit is not None)
            if limit is not None:
                self.limit_db.setValue(float(limit))
            for w in (self.limit_on, self.limit_db):
                w.blockSignals(False)
            self.limit_db.setEnabled(limit is not None)
        self._switches = dict(switches)

    def switches(self) -> dict:
        """The model switches as set here (only those the model has)."""
        out = dict(self._switches)
        if "attenuation_limit_db" in out:
            out["attenuation_limit_db"] = float(self.limit_db.value()) if self.limit_on.isChecked() else None
        return out

    def _apply_strength(self) -> None:
        self.limit_db.setEnabled(self.limit_on.isChecked())
        self.switches_changed.emit()

    def show_recording(self, paths) -> None:
        if paths:
            self.record_file.setText("recording to " + ", ".join(Path(p).name for p in paths))
            self.record_file.setToolTip("\n".join(str(p) for p in paths))
        else:
            self.record_file.setText("not recording")
            self.record_file.setToolTip("")

    def save(self, settings) -> None:
        settings.setValue("controls/bypass", self.bypass.isChecked())
        settings.setValue("controls/wet", self.wet.value())
        settings.setValue("controls/gain_db", self.gain.value())
        settings.setValue("controls/limiter", self.limiter.isChecked())
        settings.setValue("controls/record_dir", self.record_dir.text())
        settings.setValue("controls/gate", self.gate.isChecked())
        settings.setValue("controls/gate_threshold", self.gate_threshold.value())
        settings.setValue("controls/gate_hold_ms", self.gate_hold.value())
        settings.setValue("controls/gate_floor_db", self.gate_floor.value())

    def restore(self, settings) -> None:
        self.bypass.setChecked(_bool(settings.value("controls/bypass", False)))
        self.wet.setValue(int(settings.value("controls/wet", 100)))
        self.gain.setValue(float(settings.value("controls/gain_db", 0.0)))
        self.limiter.setChecked(_bool(settings.value("controls/limiter", True)))
        self.gate.setChecked(_bool(settings.value("controls/gate", False)))
        self.gate_threshold.setValue(float(settings.value("controls/gate_threshold", 0.5)))
        self.gate_hold.setValue(int(settings.value("controls/gate_hold_ms", 250)))
        self.gate_floor.setValue(int(settings.value("controls/gate_floor_db", -91)))
        d = settings.value("controls/record_dir", "")
        if d:
            self.record_dir.setText(str(d))


def _bool(v) -> bool:
    return v is True or str(v).lower() in ("true", "1")
