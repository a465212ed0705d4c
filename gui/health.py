"""Health box: dropouts, model errors (and a DC offset removed from the input, loud speech lowered), block time, CPU load, latency, frame rate.

Refreshed at ~1 Hz from the live session's ``stats()`` (with the device's
latency); the display frame rate is measured by the window's timer.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from rtconv.dcblock import noted_offset_dbfs

__all__ = ["HealthPanel", "dropouts"]

_ROWS = (
    ("dropouts", "Dropouts"),
    ("errors", "Model"),
    ("block", "Block time (median / p99 / max)"),
    ("cpu", "CPU load"),
    ("latency", "Latency"),
    ("fps", "Display"),
)


def _num(d: dict, *keys, default=None):
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def dropouts(stats: dict) -> int:
    """Blocks the device dropped, as ``rtconv live`` counts them: the stream's ``dropouts`` (one late cycle that
    JACK flags as both an input overflow and an output underflow is one), else overflows + underflows."""
    n = _num(stats, "dropouts")
    if n is None:  # stats from before the stream counted them
        n = _num(stats, "input_overflows", "overflows", default=0) + _num(stats, "output_underflows", "underflows",
                                                                          default=0)
    return n


class HealthPanel(QtWidgets.QGroupBox):
    """Numbers that tell whether the live stream keeps up."""

    def __init__(self, parent=None) -> None:
        super().__init__("Health", parent)
        form = QtWidgets.QFormLayout(self)
        self.values: dict[str, QtWidgets.QLabel] = {}
        for key, label in _ROWS:
            v = QtWidgets.QLabel("—")
            v.setWordWrap(True)
            v.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.values[key] = v
            form.addRow(label, v)
        self.values["dropouts"].setToolTip(
            "blocks the audio device dropped, counted as rtconv live counts them (a late cycle flagged both an input "
            "overflow and an output underflow is one); in brackets: input overflows / output underflows")

    def show_stats(self, stats: dict | None, fps: float, display_drops: int | None = None) -> None:
        """Render :meth:`LiveStream.stats` (``None`` when no stream runs) and the display ``fps``."""
        drops = "" if display_drops is None else f", {display_drops} frames not drawn"
        self.values["fps"].setText(f"{fps:.0f} frames/s{drops}")
        if not stats:
            for key in ("dropouts", "errors", "block", "cpu", "latency"):
                self.values[key].setText("— (stream stopped)")
            return
        ov = _num(stats, "input_overflows", "overflows", default=0)
        un = _num(stats, "output_underflows", "underflows", default=0)
        n = dropouts(stats)
        extra = _num(stats, "worker_underruns", default=0) + _num(stats, "resampler_underruns", default=0)
        self.values["dropouts"].setText(f"{n} block{'' if n == 1 else 's'} ({ov} in / {un} out)"
                                        + (f" (+{extra} worker/resampler)" if extra else ""))
        errors = _num(stats, "model_errors", default=0) + _num(stats, "internal_errors", default=0)
        last = stats.get("last_error") or ""
        self.values["errors"].setText(f"{errors} failed blocks" + (f" — last: {last}" if errors and last else "")
                                      + _dc_text(stats.get("dc_offset")) + _level_text(stats.get("level_gain_db")))
        b = stats.get("block_ms") or {}
        if not stats.get("blocks"):
            self.values["block"].setText("— (no blocks yet)")
        else:
            budget = b.get("budget")
            over = budget is not None and b.get("p99", 0) > budget
            colour = "#e03131" if over else "inherit"
            text = f"{b.get('median', 0):.3f} / {b.get('p99', 0):.3f} / {b.get('max', 0):.3f} ms"
            text += f" of {budget:.3f} ms" if budget else ""
            self.values["block"].setText(f"<span style='color:{colour}'>{text}</span>")
        cpu = stats.get("cpu_load")
        if cpu is not None:
            rate = stats.get("model_rate")
            note = f"; model at {rate} Hz, resampled" if rate and rate != stats.get("sample_rate") else ""
            self.values["cpu"].setText(f"{100.0 * cpu:.0f} % of the block budget{note}")
        self.values["latency"].setText(_latency_text(stats.get("latency")))


def _dc_text(offset) -> str:
    """``"; input DC offset -43 dBFS removed"`` when the stream removes one worth telling (a cheap microphone's)."""
    db = noted_offset_dbfs(offset)
    return "" if db is None else f"; input DC offset {db:.0f} dBFS removed"


def _level_text(gain_db) -> str:
    """``"; loud speech: the model hears it 9 dB quieter"`` while the level guard lowers the input by a dB or more."""
    if not isinstance(gain_db, (int, float)) or gain_db > -1.0:
        return ""
    return f"; loud speech: the model hears it {-gain_db:.0f} dB quieter"


def _latency_text(lat) -> str:
    """``{"model_ms": .., "device_in_ms": .., "total_ms": ..}`` as one line (zero parts left out)."""
    if not isinstance(lat, dict):
        return "—"
    parts = [
        f"{k[:-3].replace('_', ' ')} {v:.2f}" for k, v in lat.items()
        if k != "total_ms" and isinstance(v, (int, float)) and v > 0
    ]
    total = lat.get("total_ms", 0.0)
    return f"{total:.2f} ms" + (f" ({', '.join(parts)})" if parts else "")
