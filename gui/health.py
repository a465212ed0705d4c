"""Health box: dropouts, block time against the budget, CPU load, latency, frame rate.

Refreshed at ~1 Hz from :meth:`LiveProcessor.stats` and the stream's device
latency; the display frame rate is measured by the window's timer.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

__all__ = ["HealthPanel"]

_ROWS = (
    ("dropouts", "Overflows / underflows"),
    ("errors", "Model errors"),
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

    def show_stats(self, stats: dict | None, fps: float, device_latency=None) -> None:
        """Render ``stats`` (``None`` when no stream runs) and the display ``fps``."""
        self.values["fps"].setText(f"{fps:.0f} frames/s")
        if not stats:
            for key in ("dropouts", "errors", "block", "cpu", "latency"):
                self.values[key].setText("— (stream stopped)")
            return
        ov = _num(stats, "overflows", "input_overflows", default=0)
        un = _num(stats, "underflows", "output_underflows", default=0)
        self.values["dropouts"].setText(f"{ov} / {un}")
        self.values["errors"].setText(str(_num(stats, "model_errors", "errors", default=0)))
        budget = _num(stats, "budget_ms", "block_budget_ms")
        med = _num(stats, "block_ms_median", "block_time_median_ms", "median_ms")
        p99 = _num(stats, "block_ms_p99", "block_time_p99_ms", "p99_ms")
        mx = _num(stats, "block_ms_max", "block_time_max_ms", "max_ms")
        if med is None:
            self.values["block"].setText("— (no blocks yet)")
        else:
            parts = " / ".join(f"{v:.2f}" for v in (med, p99, mx) if v is not None)
            over = budget is not None and p99 is not None and p99 > budget
            colour = "#e03131" if over else "inherit"
            text = f"{parts} ms" + (f" of {budget:.2f} ms budget" if budget else "")
            self.values["block"].setText(f"<span style='color:{colour}'>{text}</span>")
        cpu = _num(stats, "cpu_load", "load")
        if cpu is not None:
            self.values["cpu"].setText(f"{100.0 * cpu:.0f} % of the block budget")
        lat = stats.get("latency") or stats.get("latency_ms")
        self.values["latency"].setText(_latency_text(lat, device_latency))


def _latency_text(lat, device_latency) -> str:
    if isinstance(lat, dict):
        parts = [
            f"{k.replace('_ms', '').replace('_', ' ')} {v:.2f} ms" for k, v in lat.items()
            if isinstance(v, (int, float)) and k != "total_ms"
        ]
        total = lat.get("total_ms")
        text = ", ".join(parts)
        return f"{total:.2f} ms total ({text})" if isinstance(total, (int, float)) else text
    if isinstance(lat, (int, float)):
        return f"{lat:.2f} ms"
    if device_latency is not None:
        try:
            i, o = device_latency
            return f"device in {1000 * i:.2f} ms, out {1000 * o:.2f} ms"
        except (TypeError, ValueError):
            return str(device_latency)
    return "—"
