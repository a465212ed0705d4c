"""Classic fixed FIR filters, built as :class:`rtconv.FIR` models.

Window-method designs come from :func:`scipy.signal.firwin`; every kernel is
in impulse-response order and the returned model carries ``sample_rate`` and
its design parameters in ``metadata["design"]``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .errors import ConfigError
from .models import FIR

__all__ = ["moving_average", "edge", "lowpass", "highpass", "bandpass", "DESIGNS", "design"]


def _fir(kernel: np.ndarray, sample_rate: int | None, **design) -> FIR:
    model = FIR(kernel)
    model.sample_rate = sample_rate
    model.metadata = {"task": "filter", "design": design}
    return model


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}.")
    return int(sample_rate)


def _check_cutoff(name: str, cutoff, sample_rate: int) -> float:
    nyq = sample_rate / 2
    if not (isinstance(cutoff, (int, float, np.floating)) and 0 < cutoff < nyq):
        raise ConfigError(
            f"{name} must lie strictly between 0 and the Nyquist frequency {nyq:g} Hz "
            f"at {sample_rate} Hz, got {cutoff!r}."
        )
    return float(cutoff)


def _check_taps(taps, odd: bool = False) -> int:
    if isinstance(taps, bool) or not isinstance(taps, (int, np.integer)) or taps < 1:
        raise ConfigError(f"taps must be a positive integer, got {taps!r}.")
    if odd and taps % 2 == 0:
        raise ConfigError(
            f"a high-pass or band-pass FIR needs an odd number of taps (a type I "
            f"filter), got {taps}; use {taps + 1}."
        )
    return int(taps)


def moving_average(taps: int = 5, sample_rate: int | None = None) -> FIR:
    """Average of the last ``taps`` samples (kernel ``1/taps`` each)."""
    taps = _check_taps(taps)
    return _fir(np.full(taps, 1.0 / taps), sample_rate, kind="moving-average", taps=taps)


def edge(sample_rate: int | None = None) -> FIR:
    """The edge detector ``[1, 0, -1]``: ``y[n] = x[n] - x[n-2]``."""
    return _fir(np.array([1.0, 0.0, -1.0]), sample_rate, kind="edge", taps=3)


def lowpass(cutoff: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming") -> FIR:
    """Window-method low-pass, ``cutoff`` in Hz (-6 dB point)."""
    sr = _check_rate(sample_rate)
    c = _check_cutoff("cutoff", cutoff, sr)
    taps = _check_taps(taps)
    h = signal.firwin(taps, c, window=window, fs=sr)
    return _fir(h, sr, kind="lowpass", cutoff=c, taps=taps, window=window)


def highpass(cutoff: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming") -> FIR:
    """Window-method high-pass, ``cutoff`` in Hz; ``taps`` must be odd."""
    sr = _check_rate(sample_rate)
    c = _check_cutoff("cutoff", cutoff, sr)
    taps = _check_taps(taps, odd=True)
    h = signal.firwin(taps, c, window=window, pass_zero=False, fs=sr)
    return _fir(h, sr, kind="highpass", cutoff=c, taps=taps, window=window)


def bandpass(low: float, high: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming") -> FIR:
    """Window-method band-pass between ``low`` and ``high`` Hz; ``taps`` must be odd."""
    sr = _check_rate(sample_rate)
    lo = _check_cutoff("low cutoff", low, sr)
    hi = _check_cutoff("high cutoff", high, sr)
    if lo >= hi:
        raise ConfigError(f"the low cutoff ({lo:g} Hz) must be below the high cutoff ({hi:g} Hz).")
    taps = _check_taps(taps, odd=True)
    h = signal.firwin(taps, [lo, hi], window=window, pass_zero=False, fs=sr)
    return _fir(h, sr, kind="bandpass", low=lo, high=hi, taps=taps, window=window)


DESIGNS = {
    "moving-average": moving_average,
    "edge": edge,
    "lowpass": lowpass,
    "highpass": highpass,
    "bandpass": bandpass,
}


def design(kind: str, **params) -> FIR:
    """Build a fixed filter by name (a key of :data:`DESIGNS`)."""
    try:
        fn = DESIGNS[kind]
    except KeyError:
        raise ConfigError(f"unknown filter {kind!r}; choose one of {', '.join(DESIGNS)}.") from None
    return fn(**params)
