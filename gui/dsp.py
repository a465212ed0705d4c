"""The numbers behind the plots: spectra, spectrogram columns, kernel responses.

Pure NumPy/SciPy, no Qt, so the display maths is testable on its own and the
widgets only draw.  Levels are dB relative to full scale (a full-scale sine
reads about 0 dB), frequencies in Hz.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

__all__ = [
    "FLOOR_DB",
    "SpectrumAverager",
    "magnitude_db",
    "smoothing_alpha",
    "layer_filters",
    "frequency_response_db",
    "level_db",
]

#: Level shown for silence (log of zero), dB.
FLOOR_DB = -160.0


def level_db(x: np.ndarray | float) -> np.ndarray | float:
    """Amplitude (linear, full scale 1.0) to dBFS, clamped at :data:`FLOOR_DB`."""
    return np.maximum(20.0 * np.log10(np.maximum(np.abs(x), 1e-12)), FLOOR_DB)


class _Window:
    """A Hann window of ``n`` samples scaled so a full-scale sine peaks at 0 dB."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.w = signal.get_window("hann", n).astype(np.float32)
        self.scale = 2.0 / float(self.w.sum())


def magnitude_db(block: np.ndarray, window: _Window | None = None) -> np.ndarray:
    """One-sided magnitude spectrum of ``block`` (1-D, ``n`` samples) in dBFS."""
    block = np.asarray(block, dtype=np.float32)
    window = window or _Window(block.shape[0])
    mag = np.abs(np.fft.rfft(block * window.w)) * window.scale
    return level_db(mag)


def smoothing_alpha(dt: float, tau: float) -> float:
    """Weight of a new frame in an exponential average with time constant ``tau`` s."""
    if tau <= 0:
        return 1.0
    return 1.0 - math.exp(-max(dt, 0.0) / tau)


class SpectrumAverager:
    """Exponentially averaged power spectrum with peak hold.

    Parameters
    ----------
    fft_size : int
        Samples per analysis frame (frequency resolution ``sample_rate / fft_size`` Hz).
    tau : float
        Averaging time constant in seconds (0 shows each frame as it comes).

    Averaging is done on power, so the average of a steady noise is its
    true level rather than the (lower) mean of its log magnitudes.
    """

    def __init__(self, fft_size: int = 4096, tau: float = 0.3) -> None:
        self.fft_size = int(fft_size)
        self.tau = float(tau)
        self._win = _Window(self.fft_size)
        self.power: np.ndarray | None = None
        self.peak_db: np.ndarray | None = None

    def reset(self) -> None:
        self.power = None
        self.peak_db = None

    def reset_peaks(self) -> None:
        self.peak_db = None

    def add(self, frame: np.ndarray, dt: float) -> np.ndarray:
        """Fold the latest ``fft_size`` samples into the average; return it in dB."""
        frame = np.asarray(frame, dtype=np.float32)[-self.fft_size :]
        if frame.shape[0] < self.fft_size:
            frame = np.concatenate([np.zeros(self.fft_size - frame.shape[0], np.float32), frame])
        mag = np.abs(np.fft.rfft(frame * self._win.w)) * self._win.scale
        p = mag.astype(np.float64) ** 2
        if self.power is None:
            self.power = p
        else:
            a = smoothing_alpha(dt, self.tau)
            self.power += a * (p - self.power)
        db = np.maximum(10.0 * np.log10(np.maximum(self.power, 1e-24)), FLOOR_DB)
        self.peak_db = db.copy() if self.peak_db is None else np.maximum(self.peak_db, db)
        return db

    def frequencies(self, sample_rate: float) -> np.ndarray:
        return np.fft.rfftfreq(self.fft_size, 1.0 / sample_rate)


def layer_filters(kernel: np.ndarray) -> np.ndarray:
    """A layer kernel ``(out, in, taps)`` as ``(in, out, taps)``: row = input, column = output."""
    k = np.asarray(kernel)
    if k.ndim != 3:
        raise ValueError(f"expected a kernel shaped (out, in, taps), got shape {k.shape}")
    return np.transpose(k, (1, 0, 2))


def frequency_response_db(
    taps: np.ndarray, dilation: int = 1, sample_rate: float = 48000.0, points: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude response of one filter (impulse-response order taps) in dB.

    A dilated filter is the taps spread ``dilation`` samples apart, so its
    response repeats ``dilation`` times up to Nyquist; the response is taken
    of the spread-out impulse response.  Returns ``(freqs_hz, db)`` without
    the DC bin so it plots on a logarithmic frequency axis.
    """
    h = np.asarray(taps, dtype=np.float64)
    if dilation > 1:
        spread = np.zeros((h.size - 1) * dilation + 1)
        spread[::dilation] = h
        h = spread
    f, resp = signal.freqz(h, worN=points + 1, fs=sample_rate)
    return f[1:], level_db(resp[1:])


def log_frequency_ticks(low: float = 20.0, high: float = 24000.0) -> list[list[tuple[float, str]]]:
    """Major and minor ticks for a pyqtgraph log-x axis (values in log10 Hz)."""
    major, minor = [], []
    for decade in (1, 10, 100, 1000, 10000):
        for m in range(1, 10):
            f = m * decade
            if not low <= f <= high:
                continue
            if m in (1, 2, 5):
                label = f"{f // 1000}k" if f >= 1000 else str(f)
                major.append((math.log10(f), label))
            else:
                minor.append((math.log10(f), ""))
    return [major, minor]


class LogBands:
    """Groups of FFT bins, about ``per_octave`` per octave, for drawing on a log axis.

    Above a few hundred Hz a 4096-point spectrum has far more bins than
    pixels; drawing every bin costs paint time (and GIL time the audio
    thread may be waiting for) for nothing.  Low bins stay single; higher
    ones are pooled: mean power for averaged spectra, max for peaks.
    """

    def __init__(self, freqs: np.ndarray, per_octave: int = 48) -> None:
        freqs = np.asarray(freqs, dtype=np.float64)
        pos = np.log2(np.maximum(freqs, freqs[1] if freqs.size > 1 else 1.0)) * per_octave
        key = np.floor(pos).astype(np.int64)
        self.starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        self.counts = np.diff(np.r_[self.starts, freqs.size])
        self.freqs = np.add.reduceat(freqs, self.starts) / self.counts

    def mean_power_db(self, power: np.ndarray) -> np.ndarray:
        p = np.add.reduceat(power, self.starts) / self.counts
        return np.maximum(10.0 * np.log10(np.maximum(p, 1e-24)), FLOOR_DB)

    def max_db(self, db: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(db, self.starts)
