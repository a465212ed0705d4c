"""The model box: choose a checkpoint (file dialog or ``models/``) and read its card.

Shows name, task, architecture, parameters, sample rate, latency (samples
and ms), receptive field and the metrics stored in the checkpoint.  Loading
is the window's job (it must hot-swap the running stream and keep the old
model on failure); this widget only asks for it with :attr:`load_requested`.
"""

from __future__ import annotations

import json
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from . import engine

__all__ = ["ModelPanel"]

_FIELDS = (
    ("name", "Name"),
    ("task", "Task"),
    ("architecture", "Architecture"),
    ("parameters", "Parameters"),
    ("sample_rate", "Sample rate"),
    ("latency", "Latency"),
    ("receptive_field", "Receptive field"),
    ("file", "File"),
)


_HEADLINE = ("improvement_db", "mse_reduction", "examples")


def _headlines(value, path: tuple = ()) -> list[str]:
    """The headline numbers of a nested metrics dict (improvements, example counts).

    Per-group breakdowns (``per_*`` dicts, bucket lists) stay in the tooltip.
    """
    out = []
    for k, v in value.items():
        if isinstance(v, dict):
            if not str(k).startswith("per_"):
                out += _headlines(v, path + (str(k),))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and str(k).endswith(_HEADLINE):
            where = [p for p in path if p != "outputs"]
            out.append(" ".join(where[-1:] + [str(k)]) + f" {_fmt_metric(v)}")
    return out


def _metric_line(key: str, value) -> str:
    if isinstance(value, dict):
        heads = _headlines(value)
        return f"{key}: " + (", ".join(heads) if heads else f"{len(value)} entries (tooltip)")
    return f"{key}: {_fmt_metric(value)}"


def _fmt_metric(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt_metric(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt_metric(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
    return str(value)


class ModelPanel(QtWidgets.QGroupBox):
    """Model chooser and card."""

    load_requested = QtCore.pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__("Model", parent)
        self.choice = QtWidgets.QComboBox()
        self.choice.setToolTip("Models in the models/ folder; choosing one loads it")
        self.open_button = QtWidgets.QPushButton("Open…")
        self.open_button.setToolTip("Load a checkpoint (.safetensors) from anywhere")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.choice, 1)
        row.addWidget(self.open_button)
        self.values: dict[str, QtWidgets.QLabel] = {}
        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key, label in _FIELDS:
            v = QtWidgets.QLabel("—")
            v.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            v.setWordWrap(True)
            self.values[key] = v
            form.addRow(label, v)
        self.metrics = QtWidgets.QLabel("")
        self.metrics.setWordWrap(True)
        self.metrics.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Metrics", self.metrics)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(form)
        self.open_button.clicked.connect(self._open_dialog)
        self.choice.activated.connect(self._chosen)
        self.refresh_list()

    def refresh_list(self, select: str | Path | None = None) -> None:
        """Re-read ``models/``; keep ``select`` (a path) shown if given."""
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItem("— models/ —", "")
        for p in engine.shipped_models():
            label = p.stem
            try:
                meta = engine.read_metadata(p)
                label = f"{meta.get('name') or p.stem} ({meta.get('task') or 'model'})"
            except Exception:  # noqa: BLE001 - an unreadable file is listed by name; loading says why
                pass
            self.choice.addItem(label, str(p))
        if select is not None:
            i = self.choice.findData(str(select))
            if i < 0:
                self.choice.addItem(Path(select).stem, str(select))
                i = self.choice.count() - 1
            self.choice.setCurrentIndex(i)
        self.choice.blockSignals(False)

    def _chosen(self, index: int) -> None:
        path = self.choice.itemData(index)
        if path:
            self.load_requested.emit(path)

    def _open_dialog(self) -> None:
        start = str(engine.models_dir())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Load a model", start, "rtconv checkpoints (*.safetensors);;All files (*)"
        )
        if path:
            self.load_requested.emit(path)

    def show_model(self, model, path: str | Path | None, samplerate: float | None = None) -> None:
        """Fill the card from ``model`` (and its checkpoint metadata)."""
        d = engine.describe_model(model, samplerate)
        ms = lambda v: f" ({v:.2f} ms)" if v is not None else ""  # noqa: E731
        text = {
            "name": d["name"],
            "task": d["task"],
            "architecture": d["architecture"],
            "parameters": f"{d['parameters']:,}",
            "sample_rate": f"{d['sample_rate']} Hz" if d["sample_rate"] else "not stated",
            "latency": f"{d['latency']} samples{ms(d['latency_ms'])}" + ("" if d["causal"] else ", non-causal layers"),
            "receptive_field": f"{d['receptive_field']} samples{ms(d['receptive_field_ms'])}",
            "file": Path(path).name if path else "(built in)",
        }
        for key, value in text.items():
            self.values[key].setText(value)
        self.values["name"].setToolTip(d["description"])
        self.values["file"].setToolTip(str(path or ""))
        metrics = d["metrics"]
        # nested test reports as their headline numbers; everything in the tooltip
        self.metrics.setText("\n".join(_metric_line(k, v) for k, v in metrics.items()) if metrics else "none in the card")
        self.metrics.setToolTip(json.dumps(metrics, indent=1, default=str)[:4000] if metrics else "")
        if path:
            self.refresh_list(select=path)

    def field(self, key: str) -> str:
        return self.metrics.text() if key == "metrics" else self.values[key].text()
