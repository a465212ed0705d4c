"""Classic fixed FIR filters, built as :class:`rtconv.FIR` models.

Window-method designs come from :func:`scipy.signal.firwin`; every kernel is
in impulse-response order and the returned model carries ``sample_rate`` and
its design parameters in ``metadata["design"]``.

Timing.  Every design here is linear phase unless asked otherwise: a kernel
of ``N`` taps delays everything by ``(N - 1) / 2`` samples.  With
``padding="same"`` the model declares that delay as its latency, so
:func:`rtconv.process_file` removes it and a processed file lines up with
its input, exactly like the shipped ``speech-band`` model; a live stream
still hears the delay (it cannot be removed in real time).  That is what
``rtconv filter`` writes by default.  ``padding="causal"`` (the default of
these functions, kept for callers that convolve causally) keeps the delay
in the output and declares none.  ``phase="minimum"`` (low-, high- and band-pass) turns the kernel into the
minimum-phase filter with the same magnitude response
(:func:`scipy.signal.minimum_phase`, ``half=False``): causal, latency 0 and
a short, frequency-dependent delay (a few samples in the pass band; more
near a low cutoff) instead of half the kernel, at the price of phase
distortion.  It suits live use where latency matters more than waveform
shape.

Too few taps for a cutoff make a filter that barely filters.  Each window
design is measured at half the distance from each cutoff to its nearest
neighbour (0 Hz, the Nyquist frequency or the other cutoff): the stop side
must be cut by at least 20 dB and the pass side kept within 1 dB.  A design
that misses either gets a :class:`FilterDesignWarning` naming the measured
gains and the tap count (:func:`taps_needed`) that would meet both.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import signal

from .errors import ConfigError
from .models import FIR

__all__ = [
    "moving_average",
    "edge",
    "lowpass",
    "highpass",
    "bandpass",
    "DESIGNS",
    "design",
    "taps_needed",
    "check_response",
    "FilterDesignWarning",
    "PHASES",
    "STOP_DB",
    "PASS_DB",
]

#: Phase responses a window design can have.
PHASES = ("linear", "minimum")

#: The response check: at least this cut (dB) half-way into the stop side of a cutoff ...
STOP_DB = -20.0
#: ... and at most this loss (dB) half-way into its pass side.
PASS_DB = -1.0

# Largest kernel taps_needed() will propose (2**20 + 1: 22 s of latency at 48 kHz).
_MAX_TAPS = 2**20 + 1


class FilterDesignWarning(UserWarning):
    """A filter design that does not do what its parameters promise (too few taps)."""


def _check_padding_phase(padding: str, phase: str) -> str:
    if phase not in PHASES:
        raise ConfigError(f"phase must be one of {', '.join(map(repr, PHASES))}, got {phase!r}.")
    if padding not in ("causal", "same"):
        raise ConfigError(f"padding must be 'causal' or 'same', got {padding!r}.")
    if phase == "minimum" and padding == "same":
        raise ConfigError(
            "a minimum-phase filter is causal and has no centre to declare as latency; "
            "use padding 'causal' or phase 'linear'."
        )
    return padding


def _fir(kernel: np.ndarray, sample_rate: int | None, padding: str, **design) -> FIR:
    model = FIR(kernel, padding=padding)
    model.sample_rate = sample_rate
    model.metadata = {"task": "filter", "design": {**design, "padding": padding}}
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


# --- the response check ---------------------------------------------------------


def _window_kernel(kind: str, cutoffs: tuple[float, ...], taps: int, sample_rate: int, window) -> np.ndarray:
    cut = cutoffs[0] if len(cutoffs) == 1 else list(cutoffs)
    return signal.firwin(taps, cut, window=window, pass_zero=(kind == "lowpass"), fs=sample_rate)


def _probes(kind: str, cutoffs: tuple[float, ...], sample_rate: int) -> list[tuple[float, float]]:
    """(stop-side, pass-side) frequencies in Hz around each cutoff, half its room away."""
    edges = (0.0, *cutoffs, sample_rate / 2)
    out = []
    for i, fc in enumerate(cutoffs, start=1):
        half = min(fc - edges[i - 1], edges[i + 1] - fc) / 2
        stop_below = kind == "highpass" or (kind == "bandpass" and i == 1)
        out.append((fc - half, fc + half) if stop_below else (fc + half, fc - half))
    return out


def _gains_db(kernel: np.ndarray, freqs: list[float], sample_rate: int) -> np.ndarray:
    # the DTFT at a few frequencies directly (freqz evaluates a polynomial, 10x slower for long kernels)
    h = np.asarray(kernel, np.float64)
    w = 2 * np.pi * np.asarray(freqs, np.float64)[:, None] / sample_rate
    resp = np.exp(-1j * w * np.arange(h.size)) @ h
    return 20 * np.log10(np.abs(resp) + 1e-300)


def _misses(kernel, kind, cutoffs, sample_rate) -> list[tuple[float, float, str]]:
    """Each probe the kernel fails: (frequency Hz, measured dB, 'stop' or 'pass')."""
    probes = _probes(kind, cutoffs, sample_rate)
    flat = [f for pair in probes for f in pair]
    g = _gains_db(kernel, flat, sample_rate)
    out = []
    for j, (fs_, fp) in enumerate(probes):
        if g[2 * j] > STOP_DB:
            out.append((fs_, float(g[2 * j]), "stop"))
        if g[2 * j + 1] < PASS_DB:
            out.append((fp, float(g[2 * j + 1]), "pass"))
    return out


def taps_needed(kind: str, cutoffs, sample_rate: int, window="hamming", start: int = 3) -> int | None:
    """Fewest odd taps whose window design meets the response check (None: over 2**20 + 1).

    Measured, not estimated: designs of growing length (doubling from
    ``start``) are evaluated at the frequencies the check uses, then the
    length is bisected, so the answer is the fewest from ``start`` up.
    """
    cutoffs = tuple(float(c) for c in np.atleast_1d(cutoffs))

    def ok(n: int) -> bool:
        return not _misses(_window_kernel(kind, cutoffs, n, sample_rate, window), kind, cutoffs, sample_rate)

    good = max(3, int(start)) | 1
    bad = None
    while not ok(good):
        bad = good
        good = 2 * good + 1
        if good > _MAX_TAPS:
            return None
    while bad is not None and good - bad > 2:
        mid = (bad + good) // 2 | 1
        if mid >= good:
            break
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def check_response(model: FIR) -> str | None:
    """Why a window design from this module barely filters, in one sentence; None when it is fine."""
    d = (model.metadata or {}).get("design") or {}
    kind, rate = d.get("kind"), model.sample_rate
    if kind not in ("lowpass", "highpass", "bandpass") or not rate:
        return None
    cutoffs = (d["low"], d["high"]) if kind == "bandpass" else (d["cutoff"],)
    misses = _misses(model.kernel, kind, cutoffs, rate)
    if not misses:
        return None
    taps = model.kernel.size
    what = " and ".join(
        f"{round(g, 1) + 0.0:.1f} dB at {f:g} Hz ({side} side, wanted "
        + (f"{STOP_DB:g} dB or less)" if side == "stop" else f"{PASS_DB:g} dB or more)")
        for f, g, side in misses
    )
    need = taps_needed(kind, cutoffs, rate, d.get("window", "hamming"), start=taps)
    where = " and ".join(f"{c:g} Hz" for c in cutoffs)
    if need is None:
        fix = (f"no window design up to {_MAX_TAPS} taps meets it, so move the cutoff away from 0 Hz "
               "and the Nyquist frequency")
    else:
        edges = "0 Hz, the Nyquist frequency and the other cutoff" if kind == "bandpass" else "0 Hz and Nyquist"
        fix = (f"use {need} taps or more (linear phase: latency {(need - 1) // 2} samples = "
               f"{1000 * (need - 1) / 2 / rate:.1f} ms) or a cutoff further from {edges}")
    return f"a {taps}-tap {kind} at {where} ({rate} Hz) is too short to filter: it measures {what}; {fix}."


def _warn_if_short(model: FIR) -> FIR:
    why = check_response(model)
    if why:
        warnings.warn(why, FilterDesignWarning, stacklevel=4)
    return model


# --- designs ------------------------------------------------------------------------


def moving_average(taps: int = 5, sample_rate: int | None = None, padding: str = "causal") -> FIR:
    """Average of the last ``taps`` samples (kernel ``1/taps`` each); ``padding="same"`` centres it."""
    taps = _check_taps(taps)
    padding = _check_padding_phase(padding, "linear")
    return _fir(np.full(taps, 1.0 / taps), sample_rate, padding, kind="moving-average", taps=taps)


def edge(sample_rate: int | None = None, padding: str = "causal") -> FIR:
    """The edge detector ``[1, 0, -1]``: ``y[n] = x[n] - x[n-2]``; ``x[n+1] - x[n-1]`` with ``padding="same"``."""
    padding = _check_padding_phase(padding, "linear")
    return _fir(np.array([1.0, 0.0, -1.0]), sample_rate, padding, kind="edge", taps=3)


def _windowed(kind, cutoffs, taps, sample_rate, window, phase, padding, **design) -> FIR:
    padding = _check_padding_phase(padding, phase)
    h = _window_kernel(kind, cutoffs, taps, sample_rate, window)
    if phase == "minimum":
        h = signal.minimum_phase(h, method="homomorphic", half=False)
    model = _fir(h, sample_rate, padding, kind=kind, **design, taps=taps, window=window, phase=phase)
    return _warn_if_short(model)


def lowpass(cutoff: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming",
            phase: str = "linear", padding: str = "causal") -> FIR:
    """Window-method low-pass, ``cutoff`` in Hz (-6 dB point).

    ``phase`` is ``"linear"`` or ``"minimum"``; ``padding="same"`` (linear
    phase only) declares the group delay as latency, so files come out aligned.
    """
    sr = _check_rate(sample_rate)
    c = _check_cutoff("cutoff", cutoff, sr)
    taps = _check_taps(taps)
    return _windowed("lowpass", (c,), taps, sr, window, phase, padding, cutoff=c)


def highpass(cutoff: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming",
             phase: str = "linear", padding: str = "causal") -> FIR:
    """Window-method high-pass, ``cutoff`` in Hz; odd ``taps``; ``phase``, ``padding`` as for :func:`lowpass`."""
    sr = _check_rate(sample_rate)
    c = _check_cutoff("cutoff", cutoff, sr)
    taps = _check_taps(taps, odd=True)
    return _windowed("highpass", (c,), taps, sr, window, phase, padding, cutoff=c)


def bandpass(low: float, high: float, taps: int = 101, sample_rate: int = 48000, window: str = "hamming",
             phase: str = "linear", padding: str = "causal") -> FIR:
    """Window-method band-pass between ``low`` and ``high`` Hz; odd ``taps``; the rest as for :func:`lowpass`."""
    sr = _check_rate(sample_rate)
    lo = _check_cutoff("low cutoff", low, sr)
    hi = _check_cutoff("high cutoff", high, sr)
    if lo >= hi:
        raise ConfigError(f"the low cutoff ({lo:g} Hz) must be below the high cutoff ({hi:g} Hz).")
    taps = _check_taps(taps, odd=True)
    return _windowed("bandpass", (lo, hi), taps, sr, window, phase, padding, low=lo, high=hi)


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
