"""The model box: choose a checkpoint (file dialog or ``models/``) and read its card.

Shows name, task, architecture, parameters, sample rate, latency (samples
and ms at the model's rate, plus what a resampled stream's resampler adds),
receptive field and the metrics stored in the checkpoint, the
metrics as a few plain lines (:func:`metric_lines`) with the raw numbers in
their tooltip.  Loading
is the window's job (it must hot-swap the running stream and keep the old
model on failure); this widget only asks for it with :attr:`load_requested`.
"""

from __future__ import annotations

import json
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from . import engine

__all__ = ["ModelPanel"]

_FIELDS = ("name", "task", "architecture", "parameters", "sample_rate", "latency", "receptive_field", "file")


#: Training bookkeeping: summarised in the "trained ..." line, the raw values in the tooltip.
_TRAINING = ("train_loss", "val_loss", "test_loss", "best_epoch", "epochs_run", "loss", "train_seconds",
             "calibration_gain")
#: Metric words as a reader knows them.
_WORDS = {"si-sdr": "SI-SDR", "sdr": "SDR", "snr": "SNR", "auc": "AUC", "mse": "MSE", "pesq": "PESQ",
          "stoi": "STOI", "lsd": "LSD"}


def metric_lines(metrics: dict) -> list[str]:
    """A checkpoint's metrics as a few lines a person reads at a glance.

    ``{"epochs_run": 10, "train_seconds": 888, "test": {"examples": 48,
    "outputs": {"speech": {"si_sdr_improvement_db": 4.8, ...}}}}`` reads
    ``["trained 10 epochs (best 10), 15 min", "test: SI-SDR +4.8 dB, SNR +5.0 dB
    on 48 examples"]``.  Raw loss values appear only when nothing else
    describes the result and they are plain errors (not negative); bucket and
    per-noise breakdowns are left to the tooltip.
    """
    lines = []
    train = _training_line(metrics)
    if train:
        lines.append(train)
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    phrases = _result_phrases(test)
    for k, v in metrics.items():
        if k not in _TRAINING and k != "test" and _is_number(v):
            p = _phrase(k, v)
            if p not in " ".join(phrases):  # a summary repeated at the top level
                phrases.append(p)
    examples = test.get("examples")
    first = next(iter((test.get("outputs") or {}).values()), {}) if isinstance(test.get("outputs"), dict) else {}
    mixtures = first.get("mixtures") if isinstance(first, dict) else None
    on = "" if not isinstance(examples, int) else (
        f" on {mixtures} mixtures of {examples} examples" if isinstance(mixtures, int) and mixtures < examples
        else f" on {examples} examples")
    if phrases:
        lines.append(("test: " if test or any(k.startswith("test") for k in metrics) else "")
                     + ", ".join(phrases) + on)
    else:
        loss = test.get("loss", metrics.get("test_loss"))
        if _is_number(loss) and loss >= 0:
            name = metrics.get("loss")
            lines.append(f"test loss{f' ({name})' if name else ''}: {loss:.3g}{on}")
    return lines


def _training_line(m: dict) -> str:
    parts = []
    if _is_number(m.get("epochs_run")):
        best = f" (best {m['best_epoch']})" if _is_number(m.get("best_epoch")) else ""
        parts.append(f"trained {m['epochs_run']} epochs{best}")
    if _is_number(m.get("train_seconds")):
        parts.append(_duration(float(m["train_seconds"])))
    if parts and isinstance(m.get("loss"), str):
        parts.append(f"loss {m['loss']}")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _result_phrases(test: dict) -> list[str]:
    """The improvements of a test report, SI-SDR first: one output's unnamed, several outputs' by name."""
    outputs = {k: v for k, v in (test.get("outputs") or {}).items() if isinstance(v, dict)}
    if not outputs:
        outputs = {"": test}
    groups = []
    for name, values in outputs.items():
        keys = sorted((k for k, v in values.items() if k.endswith("improvement_db") and _is_number(v)),
                      key=lambda k: "si_sdr" not in k)
        ps = [_phrase(k, values[k]) for k in keys]
        if not ps and _is_number(values.get("mse_reduction")):
            ps = [_phrase("mse_reduction", values["mse_reduction"])]
        if ps:
            groups.append((f"{name} " if name and len(outputs) > 1 else "") + ", ".join(ps))
    return ["; ".join(groups)] if groups else []


def _phrase(key: str, value: float) -> str:
    """``si_sdr_improvement_db, 4.81`` → ``SI-SDR +4.8 dB``; ``test_accuracy, 0.84`` → ``accuracy 84 %``."""
    if key == "mse_reduction":
        return f"MSE {value:.3g}× lower"
    words = key.replace("si_sdr", "si-sdr").split("_")
    if words[0] == "test" and len(words) > 1:
        words = words[1:]
    unit = words[-1] == "db" and len(words) > 1
    if unit:
        words = words[:-1]
    change = words[-1] == "improvement" and len(words) > 1
    if change:
        words = words[:-1]
    name = " ".join(_WORDS.get(w, w) for w in words)
    if unit:
        return f"{name} {value:+.1f} dB" if change else f"{name} {value:.1f} dB"
    if words[-1] == "accuracy" and 0 <= value <= 1:
        return f"{name} {100 * value:.0f} %"
    return f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class ModelPanel(QtWidgets.QGroupBox):
    """Model chooser and card.

    The card is compact (two facts to a row where they belong together) so
    the left column fits a 900-pixel-high window; :meth:`field` reads each
    fact by key.  The full metrics are in the tooltip of the metrics lines.
    """

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
        for key in _FIELDS:
            v = QtWidgets.QLabel("—")
            v.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.values[key] = v
        self.values["architecture"].setWordWrap(True)
        self.values["latency"].setWordWrap(True)  # a resampled stream adds its resampler's
        self._latency: str | None = None  # the card's latency text and the model's rate, for show_resampling
        self._rate = None
        self.watch = QtWidgets.QCheckBox("reload on change")
        self.watch.setToolTip("Reload the model when its file changes (training writes it)")
        self.metrics = QtWidgets.QLabel("")
        self.metrics.setWordWrap(True)
        self.metrics.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(4)
        form.addRow("Name / task", self._pair("name", "/", "task"))
        form.addRow("Architecture", self.values["architecture"])
        form.addRow("Parameters", self._pair("parameters", "at", "sample_rate"))
        form.addRow("Latency", self.values["latency"])
        form.addRow("Receptive field", self.values["receptive_field"])
        file_row = self._pair("file", None, None)
        file_row.layout().addWidget(self.watch)
        form.addRow("File", file_row)
        form.addRow("Metrics", self.metrics)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(form)
        self.open_button.clicked.connect(self._open_dialog)
        self.choice.activated.connect(self._chosen)
        self.refresh_list()

    def _pair(self, first: str, word: str | None, second: str | None) -> QtWidgets.QWidget:
        """One form row holding two facts: ``first word second`` (e.g. ``185,248 at 48000 Hz``)."""
        w = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.values[first])
        if word:
            lay.addWidget(QtWidgets.QLabel(word))
        if second:
            lay.addWidget(self.values[second])
        lay.addStretch(1)
        return w

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

    def show_model(self, model, path: str | Path | None, sample_rate: float | None = None) -> None:
        """Fill the card from ``model`` (and its checkpoint metadata)."""
        d = engine.describe_model(model, sample_rate)
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
        self._latency, self._rate = text["latency"], d["sample_rate"]
        self.values["name"].setToolTip(d["description"])
        self.values["file"].setToolTip(str(path or ""))
        metrics = d["metrics"]
        # a few lines a person reads; the raw numbers in the tooltip
        lines = metric_lines(metrics)
        self.metrics.setText("\n".join(lines) if lines else "in the tooltip" if metrics else "none in the card")
        self.metrics.setToolTip(json.dumps(metrics, indent=1, default=str)[:4000] if metrics else "")
        if path:
            self.refresh_list(select=path)

    def show_resampling(self, stats: dict | None) -> None:
        """Add to the latency what resampling to a stream at another rate adds to this model's.

        ``stats`` are the live session's (``None``: no stream): its resampler's latency is the number ``rtconv live``
        reports, shown only while the stream plays this card's model rate (a swap takes effect a little later).
        """
        text = self._latency
        if text is None:
            return
        if stats and stats.get("model_rate") == self._rate and stats.get("sample_rate") != self._rate:
            text += f" + {stats['latency']['resampler_ms']:.2f} ms resampling to {stats['sample_rate']} Hz"
        self.values["latency"].setText(text)

    def field(self, key: str) -> str:
        return self.metrics.text() if key == "metrics" else self.values[key].text()
