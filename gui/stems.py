"""Kernel stems: every convolution layer's taps, and each filter's frequency response.

Taps are drawn in impulse-response order: tap 0 (the one that multiplies the
current sample) at lag 0 on the left, tap ``k`` at lag ``k * dilation``
samples.  A layer with ``in × out`` filters is a grid (row = input channel,
column = output channel), each cell a stem plot and its magnitude response
beside it.  A layer with more than :data:`MAX_GRID` filters would be a wall
of tiny plots, so it gets a compact heat map of all filters plus a channel
picker that shows one filter's stems and response.

All stems of one filter are a single ``connect="pairs"`` curve; items are
created once per layer shape and updated with ``setData`` on a model swap.
A filter longer than :data:`MAX_STEMS` taps would be a solid blob of stems,
so it is drawn as one line through its taps instead (downsampled to its
peaks when longer than the plot is wide).  Responses are on a logarithmic
frequency axis labelled in Hz, and show at least :data:`MIN_SPAN_DB`, so a
nearly flat response is not its ripple magnified to fill the plot.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from .dsp import frequency_response_db

__all__ = ["KernelPanel", "LayerView", "MAX_GRID", "MAX_STEMS", "stem_segments", "layer_rates", "hz_ticks"]

#: Layers with more filters than this show a heat map and a picker instead of a grid.
MAX_GRID = 8
#: Filters with more taps than this are drawn as a line through the taps, not as stems.
MAX_STEMS = 64
#: The least span of a response plot (dB).
MIN_SPAN_DB = 40.0

STEM_PEN = pg.mkPen("#4f9dde", width=1.5)
TIP_BRUSH = pg.mkBrush("#4f9dde")
RESP_PEN = pg.mkPen("#f2a541", width=1.5)
LINE_PEN = pg.mkPen("#4f9dde", width=1.2)


def stem_segments(taps: np.ndarray, dilation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the stems of ``taps`` as ``connect="pairs"`` segments (0 → tap)."""
    taps = np.asarray(taps, dtype=np.float64)
    lag = np.arange(taps.size, dtype=np.float64) * dilation
    x = np.repeat(lag, 2)
    y = np.zeros(2 * taps.size)
    y[1::2] = taps
    return x, y


class _FilterCell:
    """One filter: a stem plot (lag axis) and a response plot (log frequency axis)."""

    def __init__(self, stem_plot: pg.PlotItem, resp_plot: pg.PlotItem, title: str, unit: str = "samples") -> None:
        self.stem_plot, self.resp_plot = stem_plot, resp_plot
        for p in (stem_plot, resp_plot):
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
        stem_plot.setTitle(title, size="8pt")
        stem_plot.getAxis("bottom").setToolTip(f"lag ({unit}); tap 0 acts on the newest {unit[:-1]}")
        stem_plot.addLine(y=0, pen=pg.mkPen("#666666"))
        self.stems = stem_plot.plot(pen=STEM_PEN, connect="pairs")
        self.tips = stem_plot.plot(pen=None, symbol="o", symbolSize=5, symbolBrush=TIP_BRUSH, symbolPen=None)
        self.line = stem_plot.plot(pen=LINE_PEN)  # a long filter: its taps joined, no stems
        self.line.setDownsampling(auto=True, method="peak")
        self.line.setClipToView(True)
        self.long = False
        resp_plot.setLogMode(x=True, y=False)
        resp_plot.setTitle("|H| dB", size="8pt")
        self.resp = resp_plot.plot(pen=RESP_PEN)
        self.freq_ticks: list[tuple[float, str]] = []

    def set_filter(self, taps: np.ndarray, dilation: int, sample_rate: float) -> None:
        x, y = stem_segments(taps, dilation)
        self.long = np.size(taps) > MAX_STEMS
        for item in (self.stems, self.tips):
            item.setVisible(not self.long)
        self.line.setVisible(self.long)
        if self.long:
            self.line.setData(x[::2], y[1::2])
        else:
            self.stems.setData(x, y)
            self.tips.setData(x[::2], y[1::2])
        f, db = frequency_response_db(taps, dilation, sample_rate)
        self.resp.setData(f, db)
        ticks = hz_ticks(float(f[0]), float(f[-1]))
        if ticks != self.freq_ticks:
            self.freq_ticks = ticks
            self.resp_plot.getAxis("bottom").setTicks([ticks, []])
        top = float(np.max(db))
        low = min(max(top - 60.0, float(np.min(db))), top - MIN_SPAN_DB)
        self.resp_plot.setYRange(low, top + 3.0, padding=0)

    def tip_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(lags, tap values) as drawn: the stems' tips, or the line of a long filter."""
        x, y = (self.line if self.long else self.tips).getData()
        return np.asarray(x), np.asarray(y)


def hz_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Decade ticks between ``low`` and ``high`` Hz for a log-x axis: ``(log10 f, "1 kHz")``."""
    ticks = []
    for e in range(-2, 6):
        f = 10.0 ** e
        if low <= f <= high:
            label = f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"
            ticks.append((float(e), label))
    return ticks


class LayerView(QtWidgets.QGroupBox):
    """Stems and responses of one convolution layer (grid, or heat map + picker).

    ``rate`` is the rate the layer runs at in Hz (the sample rate, or the
    frame rate for layers inside a framed model) and ``unit`` names its lag
    step ("samples" or "frames").
    """

    CELL_H = 130
    WRAP = 3

    def __init__(self, index: int, layer, sample_rate: float, parent=None, unit: str = "samples") -> None:
        super().__init__(parent)
        self.index = index
        self.shape = tuple(layer.kernel.shape)  # (out, in, taps)
        self.dilation = int(getattr(layer, "dilation", 1))
        self.sample_rate = float(sample_rate)
        self.unit = unit
        out_f, in_f, taps = self.shape
        self.grid = in_f * out_f <= MAX_GRID
        pad = getattr(layer, "padding", "causal")
        stride = getattr(layer, "stride", 1)
        self.setTitle(
            f"layer {index} ({type(layer).__name__}): {in_f} in → {out_f} out, {taps} taps"
            + (f", dilation {self.dilation}" if self.dilation > 1 else "")
            + (f", stride {stride}" if stride > 1 else "")
            + ("" if pad == "causal" else f", {pad} padding")
            + (f"; runs at {self.sample_rate:g} frames/s" if unit == "frames" else "")
        )
        self.view = pg.GraphicsLayoutWidget()
        lay = QtWidgets.QVBoxLayout(self)
        self.cells: dict[tuple[int, int], _FilterCell] = {}
        if self.grid:
            # a fan-out (1 in) or fan-in (1 out) layer is a single row or column of
            # filters; wrap it at WRAP cells so it fits the window
            cols = out_f if in_f > 1 and out_f > 1 else min(in_f * out_f, self.WRAP)
            for i, (f, g) in enumerate((f, g) for f in range(in_f) for g in range(out_f)):
                row, col = (f, g) if in_f > 1 and out_f > 1 else divmod(i, cols)
                stem = self.view.addPlot(row=row, col=2 * col)
                resp = self.view.addPlot(row=row, col=2 * col + 1)
                self.cells[(f, g)] = _FilterCell(stem, resp, f"in {f} → out {g}", unit)
            rows = -(-in_f * out_f // cols)
            self.view.setMinimumHeight(self.CELL_H * rows)
            self.view.setMinimumWidth(230 * cols)
        else:
            self.pick_in = QtWidgets.QSpinBox(minimum=0, maximum=in_f - 1, prefix="in ")
            self.pick_out = QtWidgets.QSpinBox(minimum=0, maximum=out_f - 1, prefix="out ")
            # heat map rows: the larger side's channels; columns: the other side × taps
            self.rows_are_out = out_f >= in_f
            across = "input" if self.rows_are_out else "output"
            row = QtWidgets.QHBoxLayout()
            row.addWidget(QtWidgets.QLabel(f"{in_f * out_f} filters; show"))
            row.addWidget(self.pick_in)
            row.addWidget(self.pick_out)
            row.addWidget(QtWidgets.QLabel(
                f"heat map: colour = tap value, columns = {across} channel × tap" if taps > 1
                else "heat map: the mixing matrix (1 tap per filter)"
            ))
            row.addStretch(1)
            lay.addLayout(row)
            heat_plot = self.view.addPlot(row=0, col=0)
            heat_plot.setMenuEnabled(False)
            heat_plot.setLabel("bottom", f"{across} channel × {taps} taps" if taps > 1 else f"{across} channel")
            heat_plot.setLabel("left", "output channel" if self.rows_are_out else "input channel")
            heat_plot.invertY(True)
            self.heat = pg.ImageItem(axisOrder="row-major")
            self.heat.setLookupTable(pg.colormap.get("CET-D1").getLookupTable(nPts=256))
            heat_plot.addItem(self.heat)
            stem = self.view.addPlot(row=0, col=1)
            resp = self.view.addPlot(row=0, col=2)
            self.cells[(0, 0)] = _FilterCell(stem, resp, "", unit)
            self.view.setMinimumHeight(2 * self.CELL_H)
            self.view.ci.layout.setColumnStretchFactor(0, 2)
            self.view.ci.layout.setColumnStretchFactor(1, 2)
            self.view.ci.layout.setColumnStretchFactor(2, 1)
            self.pick_in.valueChanged.connect(self._show_picked)
            self.pick_out.valueChanged.connect(self._show_picked)
        lay.addWidget(self.view)
        self.kernel = np.zeros(self.shape)
        self.set_kernel(layer.kernel, sample_rate)

    def set_kernel(self, kernel: np.ndarray, sample_rate: float | None = None) -> None:
        """New taps of the same shape (a swapped model): update items in place."""
        if sample_rate:
            self.sample_rate = float(sample_rate)
        self.kernel = np.asarray(kernel, dtype=np.float64)
        out_f, in_f, taps = self.shape
        if self.grid:
            for (f, g), cell in self.cells.items():
                cell.set_filter(self.kernel[g, f], self.dilation, self.sample_rate)
        else:
            self.heat_image = self.heat_matrix(self.kernel, self.rows_are_out)
            lim = float(np.max(np.abs(self.heat_image))) or 1.0
            self.heat.setImage(self.heat_image, autoLevels=False, levels=(-lim, lim))
            other = in_f if self.rows_are_out else out_f
            self.heat.setRect(0, 0, other * taps, out_f if self.rows_are_out else in_f)
            self._show_picked()

    @staticmethod
    def heat_matrix(kernel: np.ndarray, rows_are_out: bool) -> np.ndarray:
        """``(out, in*taps)`` (or ``(in, out*taps)``): each filter's taps side by side."""
        out_f, in_f, taps = kernel.shape
        if rows_are_out:
            return kernel.reshape(out_f, in_f * taps)
        return np.transpose(kernel, (1, 0, 2)).reshape(in_f, out_f * taps)

    def _show_picked(self) -> None:
        f, g = self.pick_in.value(), self.pick_out.value()
        cell = self.cells[(0, 0)]
        cell.stem_plot.setTitle(f"in {f} → out {g}", size="8pt")
        cell.set_filter(self.kernel[g, f], self.dilation, self.sample_rate)

    def stem_data(self, f: int, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(lags, tap values) drawn for the filter input ``f`` → output ``g``."""
        if self.grid:
            return self.cells[(f, g)].tip_data()
        self.pick_in.setValue(f)
        self.pick_out.setValue(g)
        return self.cells[(0, 0)].tip_data()


def layer_rates(model, sample_rate: float) -> dict[int, tuple[float, str]]:
    """``id(layer) -> (rate Hz, "samples" | "frames")`` for every conv layer of ``model``.

    Layers inside a framed model's body (an ``encoder``/``body``/``decoder``
    module whose encoder has a ``stride``) run once per frame, at
    ``sample_rate / stride``; their taps are frames apart.
    """
    rates = {id(l): (float(sample_rate), "samples") for l in model.conv_layers()}
    for m in model.modules():
        # direct children only: a model may expose its inner encoder as a property
        enc, body = m._modules.get("encoder"), m._modules.get("body")
        stride = getattr(enc, "stride", None)
        if isinstance(stride, int) and stride > 1 and body is not None:
            for sub in body.modules():
                if id(sub) in rates:
                    rates[id(sub)] = (float(sample_rate) / stride, "frames")
    return rates


class KernelPanel(QtWidgets.QScrollArea):
    """All layers of the loaded model, top to bottom in signal-flow order."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.inner = QtWidgets.QWidget()
        self.box = QtWidgets.QVBoxLayout(self.inner)
        self.placeholder = QtWidgets.QLabel("No model loaded.")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.box.addWidget(self.placeholder)
        self.box.addStretch(1)
        self.setWidget(self.inner)
        self.layer_views: list[LayerView] = []
        self.rebuilds = 0

    def set_model(self, model, sample_rate: float | None = None) -> None:
        """Show ``model``'s kernels at the rate it runs at: its own, else ``sample_rate`` (the device's), else 48 kHz."""
        rate = float(getattr(model, "sample_rate", None) or sample_rate or 48000)
        layers = model.conv_layers()
        rates = layer_rates(model, rate)
        shapes = [(tuple(l.kernel.shape), int(getattr(l, "dilation", 1)), rates[id(l)][1]) for l in layers]
        if shapes == [(v.shape, v.dilation, v.unit) for v in self.layer_views]:
            for v, l in zip(self.layer_views, layers, strict=True):
                v.set_kernel(l.kernel, rates[id(l)][0])
            return
        for v in self.layer_views:
            self.box.removeWidget(v)
            v.hide()
            v.setParent(None)
            v.deleteLater()
        self.layer_views = []
        self.placeholder.setVisible(not layers)
        for i, layer in enumerate(layers):
            v = LayerView(i, layer, rates[id(layer)][0], unit=rates[id(layer)][1])
            self.box.insertWidget(self.box.count() - 1, v)
            self.layer_views.append(v)
        self.rebuilds += 1
