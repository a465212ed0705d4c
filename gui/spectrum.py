"""Live input and output spectra on one plot, with peak hold and the difference curve.

Magnitude in dBFS on a logarithmic frequency axis.  The output − input curve
shows what the model removes (negative) or adds (positive) on a small plot of
its own below (a change in dB, not a level, so it does not share the dBFS
axis), its frequency axis linked to the spectra's.  All curves are created
once and updated with ``setData``.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from .dsp import LogBands, SpectrumAverager, log_frequency_ticks

__all__ = ["SpectrumPanel"]

IN_PEN = pg.mkPen("#4f9dde", width=1.5)
OUT_PEN = pg.mkPen("#f2a541", width=1.5)
DIFF_PEN = pg.mkPen("#7bd389", width=1.2)
GRID_PEN = pg.mkPen("#3a3a3a", width=1)
#: The difference plot's range, dB of change: deep cuts below, a little gain above.
DIFF_RANGE = (-40.0, 10.0)
#: Width of both plots' left axes, so their frequency axes line up.
AXIS_WIDTH = 56


def _grid(xs, x_span, ys, y_span) -> tuple[np.ndarray, np.ndarray]:
    """A static grid as ``connect="pairs"`` vertices: vertical lines at ``xs``, horizontal at ``ys``."""
    gx = np.concatenate([np.repeat(xs, 2), np.tile(x_span, len(ys))])
    gy = np.concatenate([np.tile(y_span, len(xs)), np.repeat(ys, 2)])
    return gx, gy


class SpectrumPanel(QtWidgets.QWidget):
    """The spectra plot and its small control row (averaging, dB range, peak hold).

    Feed it with :meth:`update_audio` (latest input and output samples, mono)
    from the display timer.
    """

    def __init__(self, parent=None, fft_size: int = 4096) -> None:
        super().__init__(parent)
        self.sample_rate = 48000.0
        self.avg_in = SpectrumAverager(fft_size)
        self.avg_out = SpectrumAverager(fft_size)
        self.updates = 0
        self._bands_for = None

        self.plot = pg.PlotWidget()
        pi = self.plot.getPlotItem()
        pi.setLogMode(x=True, y=False)
        # the grid is one static pairs-curve drawn under the data: pyqtgraph's
        # axis grid is repainted with every frame and cost ~20 ms per frame
        self.grid = pg.PlotCurveItem(pen=GRID_PEN, connect="pairs")
        self.grid.setZValue(-10)
        pi.addItem(self.grid, ignoreBounds=True)
        pi.setLabel("bottom", "frequency (Hz)")
        pi.getAxis("bottom").setTicks(log_frequency_ticks())
        pi.setLabel("left", "magnitude", units="dBFS")
        pi.getAxis("left").setWidth(AXIS_WIDTH)
        pi.addLegend(offset=(10, -10))  # bottom left: below the curves of most signals
        pi.setMenuEnabled(False)
        self.curve_in = pi.plot(pen=IN_PEN, name="input")
        self.curve_out = pi.plot(pen=OUT_PEN, name="output")
        self.peak_in = pi.plot(pen=pg.mkPen("#4f9dde", width=1, style=QtCore.Qt.PenStyle.DotLine), name="input peak")
        self.peak_out = pi.plot(pen=pg.mkPen("#f2a541", width=1, style=QtCore.Qt.PenStyle.DotLine), name="output peak")
        self.diff_plot = pg.PlotWidget()
        self.diff_plot.setMinimumHeight(90)
        dp = self.diff_plot.getPlotItem()
        dp.setLogMode(x=True, y=False)
        dp.setXLink(pi)
        dp.setMenuEnabled(False)
        dp.setMouseEnabled(x=True, y=False)
        dp.hideButtons()
        dp.getAxis("bottom").setTicks(log_frequency_ticks())
        dp.setLabel("left", "dB")
        dp.getAxis("left").setWidth(AXIS_WIDTH)
        dp.setYRange(*DIFF_RANGE, padding=0)
        self.diff_grid = pg.PlotCurveItem(pen=GRID_PEN, connect="pairs")
        self.diff_grid.setZValue(-10)
        dp.addItem(self.diff_grid, ignoreBounds=True)
        dp.addLine(y=0, pen=pg.mkPen("#777777", width=1))
        dp.addLegend(offset=(10, -2))  # bottom left: the curve mostly runs near 0 dB
        self.curve_diff = dp.plot(pen=DIFF_PEN, name="output − input (dB)")
        for c in (self.curve_in, self.curve_out, self.peak_in, self.peak_out, self.curve_diff):
            c.setClipToView(True)

        # controls
        self.tau = QtWidgets.QDoubleSpinBox(suffix=" s", decimals=2, minimum=0.0, maximum=10.0, singleStep=0.1)
        self.tau.setValue(0.3)
        self.tau.setToolTip("Averaging time constant of the spectra (0 = each frame as it comes)")
        self.db_min = QtWidgets.QSpinBox(suffix=" dB", minimum=-200, maximum=0, singleStep=10)
        self.db_min.setValue(-120)
        self.db_max = QtWidgets.QSpinBox(suffix=" dB", minimum=-100, maximum=40, singleStep=10)
        self.db_max.setValue(10)  # headroom: a full-scale peak is not drawn on the frame
        self.peak_hold = QtWidgets.QCheckBox("peak hold")
        self.peak_hold.setChecked(True)
        self.show_diff = QtWidgets.QCheckBox("output − input")
        self.show_diff.setChecked(True)
        self.reset_peaks = QtWidgets.QPushButton("reset peaks")
        self.fps = QtWidgets.QSpinBox(suffix=" fps", minimum=5, maximum=60, singleStep=5)
        self.fps.setValue(30)
        self.fps.setToolTip("Display frame rate; lower it to give a slow machine's CPU to the audio")
        self.adaptive = QtWidgets.QCheckBox("yield to audio")  # short: the row sets the window's minimum width
        self.adaptive.setChecked(True)
        self.adaptive.setToolTip("Halve the display rate (down to 5 fps) in every second the audio drops out, "
                                 "then creep back: drawing never competes with the audio")

        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("averaging"))
        row.addWidget(self.tau)
        row.addWidget(QtWidgets.QLabel("range"))
        row.addWidget(self.db_min)
        row.addWidget(QtWidgets.QLabel("to"))
        row.addWidget(self.db_max)
        row.addWidget(self.peak_hold)
        row.addWidget(self.reset_peaks)
        row.addWidget(self.show_diff)
        row.addStretch(1)
        row.addWidget(self.fps)
        row.addWidget(self.adaptive)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 3)
        lay.addWidget(self.diff_plot, 1)
        lay.addLayout(row)

        self.tau.valueChanged.connect(self._set_tau)
        self.db_min.valueChanged.connect(self._apply_range)
        self.db_max.valueChanged.connect(self._apply_range)
        self.peak_hold.toggled.connect(self._peak_toggled)
        self.reset_peaks.clicked.connect(self._reset_peaks)
        self.show_diff.toggled.connect(self.diff_plot.setVisible)
        self._apply_range()
        self._set_tau(self.tau.value())

    # --- settings -------------------------------------------------------------
    def set_sample_rate(self, sample_rate: float) -> None:
        if sample_rate != self.sample_rate:
            self.sample_rate = float(sample_rate)
            self.avg_in.reset()
            self.avg_out.reset()
        self._apply_range()

    def _set_tau(self, value: float) -> None:
        self.avg_in.tau = self.avg_out.tau = float(value)

    def _apply_range(self) -> None:
        lo, hi = self.db_min.value(), self.db_max.value()
        if hi <= lo:
            hi = lo + 10
        self.plot.getPlotItem().setYRange(lo, hi, padding=0)
        nyq = self.sample_rate / 2
        x0, x1 = np.log10(20.0), np.log10(nyq)
        self.plot.getPlotItem().setXRange(x0, x1, padding=0)
        xs = [t for t, _ in log_frequency_ticks(20.0, nyq)[0]]
        ys = list(range(int(np.ceil(lo / 10) * 10), int(hi) + 1, 10))
        self.grid.setData(*_grid(xs, (x0, x1), ys, (lo, hi)))
        dlo, dhi = DIFF_RANGE
        self.diff_grid.setData(*_grid(xs, (x0, x1), np.arange(dlo, dhi + 1, 10), DIFF_RANGE))

    def _peak_toggled(self, on: bool) -> None:
        self.peak_in.setVisible(on)
        self.peak_out.setVisible(on)
        self._reset_peaks()

    def _reset_peaks(self) -> None:
        self.avg_in.reset_peaks()
        self.avg_out.reset_peaks()

    # --- data -------------------------------------------------------------------
    def _bands(self) -> LogBands:
        if self._bands_for != self.sample_rate:
            self._log_bands = LogBands(self.avg_in.frequencies(self.sample_rate)[1:])
            self._bands_for = self.sample_rate
        return self._log_bands

    def update_audio(self, inp: np.ndarray, out: np.ndarray, dt: float) -> None:
        """Fold the newest mono ``inp``/``out`` samples in; ``dt`` s since the last call.

        Curves are drawn at about 48 points per octave (bins pooled by
        :class:`LogBands`), not at every FFT bin.
        """
        self.avg_in.add(inp, dt)
        self.avg_out.add(out, dt)
        bands = self._bands()
        f = bands.freqs
        db_in = bands.mean_power_db(self.avg_in.power[1:])
        db_out = bands.mean_power_db(self.avg_out.power[1:])
        self.curve_in.setData(f, db_in, skipFiniteCheck=True)
        self.curve_out.setData(f, db_out, skipFiniteCheck=True)
        if self.peak_hold.isChecked():
            self.peak_in.setData(f, bands.max_db(self.avg_in.peak_db[1:]), skipFiniteCheck=True)
            self.peak_out.setData(f, bands.max_db(self.avg_out.peak_db[1:]), skipFiniteCheck=True)
        if self.show_diff.isChecked():
            self.curve_diff.setData(f, db_out - db_in, skipFiniteCheck=True)
        self.updates += 1

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Current (Hz, dB) data of each curve (before the log-axis transform)."""
        return {
            name: (c.xData, c.yData)
            for name, c in (("input", self.curve_in), ("output", self.curve_out), ("difference", self.curve_diff))
        }
