"""Scrolling spectrograms of the input and the output, side by side.

Each frame of the display timer adds one column per image (the newest at
the right).  The images are preallocated ``(columns, bins)`` arrays shown by
persistent :class:`pyqtgraph.ImageItem` with fixed levels and one lookup
table, so a frame costs one FFT and one array shift per image.  A colour bar
beside them reads the colours as dBFS; it follows the range boxes
(:meth:`SpectrogramPanel.set_levels`), not the frames.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from .dsp import _Window, magnitude_db

__all__ = ["SpectrogramPanel"]


class _Scroller:
    def __init__(self, plot: pg.PlotItem, title: str, columns: int, bins: int, lut) -> None:
        self.data = np.full((columns, bins), -160.0, dtype=np.float32)
        self.rect = None
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setLookupTable(lut)
        plot.addItem(self.image)
        plot.setTitle(title)
        plot.setLabel("left", "frequency", units="Hz")
        plot.setLabel("bottom", "time", units="s")
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        self.plot = plot

    def push(self, columns: np.ndarray, levels: tuple[float, float]) -> None:
        """Append ``columns`` (``(k, bins)``, oldest first) at the right, scrolling left."""
        k = min(columns.shape[0], self.data.shape[0])
        if k == 0:
            return
        self.data[:-k] = self.data[k:]
        self.data[-k:] = columns[-k:]
        self.image.setImage(self.data, autoLevels=False, levels=levels)
        if self.rect is not None:  # ImageItem can place an image only once it has one
            self.image.setRect(*self.rect)
            self.rect = None

    def place(self, x: float, y: float, w: float, h: float) -> None:
        """Put the image at (x, y, w, h) in plot coordinates (seconds, Hz)."""
        self.rect = (x, y, w, h)
        if self.image.image is not None:
            self.image.setRect(*self.rect)
            self.rect = None


class SpectrogramPanel(QtWidgets.QWidget):
    """Input (top) and output (bottom) spectrograms over the last few seconds."""

    # 512-point frames: 257 bins is already more than the ~200 pixel rows the
    # image gets, and each image costs LUT mapping plus a scaled draw per frame
    def __init__(self, parent=None, fft_size: int = 512, columns: int = 300) -> None:
        super().__init__(parent)
        self.fft_size = fft_size
        self.columns = columns
        self.sample_rate = 48000.0
        self.frame_rate = 30.0
        self.levels = (-120.0, 0.0)
        self._win = _Window(fft_size)
        self._pending = 0
        bins = fft_size // 2 + 1
        cmap = pg.colormap.get("inferno")
        lut = cmap.getLookupTable(nPts=256)
        self.view = pg.GraphicsLayoutWidget()
        self.inp = _Scroller(self.view.addPlot(row=0, col=0), "input", columns, bins, lut)
        self.out = _Scroller(self.view.addPlot(row=1, col=0), "output", columns, bins, lut)
        self.out.plot.setXLink(self.inp.plot)
        # one scale for both images (they share levels and lookup table); not linked to the
        # images, so it costs nothing per frame
        self.colour_bar = pg.ColorBarItem(values=self.levels, colorMap=cmap, label="level (dBFS)",
                                          interactive=False, width=12, colorMapMenu=False)
        self.view.addItem(self.colour_bar, row=0, col=1, rowspan=2)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self._geometry()

    def set_sample_rate(self, sample_rate: float, frame_rate: float | None = None) -> None:
        self.sample_rate = float(sample_rate)
        if frame_rate:
            self.frame_rate = float(frame_rate)
        self._geometry()

    def set_levels(self, lo: float, hi: float) -> None:
        self.levels = (float(lo), float(max(hi, lo + 1)))
        self.colour_bar.setLevels(self.levels)

    def _geometry(self) -> None:
        # columns are display frames; x in seconds ending at 0 (now)
        seconds = self.columns / self.frame_rate
        nyq = self.sample_rate / 2
        for s in (self.inp, self.out):
            s.place(-seconds, 0.0, seconds, nyq)
            s.plot.setXRange(-seconds, 0, padding=0)
            s.plot.setYRange(0, nyq, padding=0)

    @property
    def hop(self) -> int:
        """Samples between columns: one column per 1/``frame_rate`` s of audio."""
        return max(1, round(self.sample_rate / self.frame_rate))

    def update_audio(self, inp: np.ndarray, out: np.ndarray, new_frames: int | None = None) -> int:
        """Add the columns for ``new_frames`` new samples (default: one column); return how many.

        Columns are spaced by :attr:`hop` samples of audio, not by display
        frames, so the time axis stays true when the display runs slower
        than ``frame_rate`` (a busy machine): a late frame adds several
        columns, computed from the snapshot ``inp``/``out`` (mono, newest last).
        """
        n, hop = self.fft_size, self.hop
        if new_frames is None:
            count = 1
        else:
            self._pending += int(new_frames)
            count, self._pending = divmod(self._pending, hop)
            count = min(count, self.columns)
            if count == 0:
                return 0
        ends = [None] + [-(j * hop) for j in range(1, count)]  # newest column first
        for s, x in ((self.inp, inp), (self.out, out)):
            x = np.asarray(x, dtype=np.float32)
            need = n + (count - 1) * hop
            if x.shape[0] < need:
                x = np.concatenate([np.zeros(need - x.shape[0], np.float32), x])
            cols = np.empty((count, n // 2 + 1), np.float32)
            for j, end in enumerate(ends):
                seg = x[:end][-n:] if end is not None else x[-n:]
                cols[count - 1 - j] = magnitude_db(seg, self._win)
            s.push(cols, self.levels)
        return count
