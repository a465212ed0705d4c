"""Objective quality measures for filtered audio, in dB.

All functions take NumPy arrays (or anything ``np.asarray`` accepts, incl.
CPU torch tensors) and measure along the **last axis**, so a batch
``(examples, time)`` or ``(examples, channels, time)`` gives one value per
leading index.  ``reference`` is the clean target, ``estimate`` what a
filter produced, ``noisy`` the filter's input.

snr_db
    ``10 log10(|s|^2 / |s - y|^2)``: plain signal-to-noise ratio.
si_sdr_db
    Scale-invariant SDR (Le Roux et al., 2019): the estimate is projected on
    the reference first, so a filter that only changes the gain is neither
    rewarded nor punished.  Both signals are mean-removed.
snr_improvement_db, si_sdr_improvement_db
    The measure of ``estimate`` minus the measure of ``noisy``: what the
    filter gained.
bucket_improvements
    Mean improvements grouped by input-SNR bucket, the table a denoiser
    report shows.

A tiny ``eps`` keeps silent references and perfect estimates finite
(they come out near +-300 dB instead of inf/NaN).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "snr_db",
    "si_sdr_db",
    "snr_improvement_db",
    "si_sdr_improvement_db",
    "mse",
    "bucket_improvements",
    "DEFAULT_SNR_EDGES",
]

_EPS = 1e-30

#: Input-SNR bucket edges in dB used by reports: ``[-inf,0), [0,5), ..., [15,inf)``.
DEFAULT_SNR_EDGES: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0)


def _pair(reference, estimate) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(reference, dtype=np.float64)
    y = np.asarray(estimate, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(
            f"reference and estimate must have the same shape, got {s.shape} and {y.shape}; "
            "align them (e.g. compensate the filter latency) first."
        )
    if s.ndim == 0 or s.shape[-1] == 0:
        raise ValueError(f"signals need at least one sample on the last axis, got shape {s.shape}.")
    return s, y


def _ratio_db(num: np.ndarray, den: np.ndarray) -> np.ndarray | float:
    out = 10.0 * np.log10((num + _EPS) / (den + _EPS))
    return float(out) if np.ndim(out) == 0 else out


def mse(reference, estimate) -> np.ndarray | float:
    """Mean squared error along the last axis (signal units squared)."""
    s, y = _pair(reference, estimate)
    out = np.mean((s - y) ** 2, axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def snr_db(reference, estimate) -> np.ndarray | float:
    """Signal-to-noise ratio of ``estimate`` against ``reference``, in dB.

    Parameters
    ----------
    reference, estimate : array_like
        Same shape; the last axis is time.

    Returns
    -------
    float or ndarray
        One value per leading index (a float for 1-D input).
    """
    s, y = _pair(reference, estimate)
    return _ratio_db(np.sum(s**2, axis=-1), np.sum((s - y) ** 2, axis=-1))


def si_sdr_db(reference, estimate) -> np.ndarray | float:
    """Scale-invariant signal-to-distortion ratio, in dB.

    ``alpha = <y, s> / |s|^2``; ``SI-SDR = 10 log10(|alpha s|^2 / |alpha s - y|^2)``,
    after removing the mean of both signals.
    """
    s, y = _pair(reference, estimate)
    s = s - s.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    alpha = np.sum(s * y, axis=-1, keepdims=True) / (np.sum(s**2, axis=-1, keepdims=True) + _EPS)
    target = alpha * s
    return _ratio_db(np.sum(target**2, axis=-1), np.sum((target - y) ** 2, axis=-1))


def snr_improvement_db(reference, noisy, estimate) -> np.ndarray | float:
    """SNR of ``estimate`` minus SNR of ``noisy`` (dB gained by the filter)."""
    return snr_db(reference, estimate) - snr_db(reference, noisy)


def si_sdr_improvement_db(reference, noisy, estimate) -> np.ndarray | float:
    """SI-SDR of ``estimate`` minus SI-SDR of ``noisy`` (dB gained by the filter)."""
    return si_sdr_db(reference, estimate) - si_sdr_db(reference, noisy)


def _bucket_label(lo: float, hi: float) -> str:
    if np.isinf(lo):
        return f"< {hi:g} dB"
    if np.isinf(hi):
        return f">= {lo:g} dB"
    return f"{lo:g}..{hi:g} dB"


def bucket_improvements(
    reference,
    noisy,
    estimate,
    edges: Sequence[float] = DEFAULT_SNR_EDGES,
) -> list[dict]:
    """Mean SNR and SI-SDR improvements grouped by input SNR.

    Parameters
    ----------
    reference, noisy, estimate : array_like
        ``(examples, time)`` (or with more leading axes, flattened): clean
        targets, filter inputs and filter outputs, time-aligned.
    edges : sequence of float
        Increasing bucket edges in dB; buckets are ``[-inf, e0), [e0, e1),
        ..., [e_last, inf)``.  Empty buckets are left out.

    Returns
    -------
    list of dict
        One row per non-empty bucket, with keys ``bucket`` (label),
        ``low_db``, ``high_db`` (None when unbounded, so the rows stay
        strict JSON), ``count``, ``input_snr_db``,
        ``output_snr_db``, ``snr_improvement_db``, ``input_si_sdr_db``,
        ``output_si_sdr_db``, ``si_sdr_improvement_db`` (means), plus a last
        row ``bucket="all"`` over every example.
    """
    s, x = _pair(reference, noisy)
    _, y = _pair(reference, estimate)
    n = s.shape[-1]
    s, x, y = s.reshape(-1, n), x.reshape(-1, n), y.reshape(-1, n)
    e = [float(v) for v in edges]
    if any(b <= a for a, b in zip(e, e[1:], strict=False)):
        raise ValueError(f"bucket edges must increase strictly, got {list(edges)!r}.")
    in_snr, out_snr = np.atleast_1d(snr_db(s, x)), np.atleast_1d(snr_db(s, y))
    in_si, out_si = np.atleast_1d(si_sdr_db(s, x)), np.atleast_1d(si_sdr_db(s, y))
    bounds = [-np.inf, *e, np.inf]
    rows: list[dict] = []

    def row(label: str, lo: float, hi: float, m: np.ndarray) -> dict:
        return {
            "bucket": label,
            "low_db": None if np.isinf(lo) else lo,
            "high_db": None if np.isinf(hi) else hi,
            "count": int(m.sum()),
            "input_snr_db": float(in_snr[m].mean()),
            "output_snr_db": float(out_snr[m].mean()),
            "snr_improvement_db": float((out_snr - in_snr)[m].mean()),
            "input_si_sdr_db": float(in_si[m].mean()),
            "output_si_sdr_db": float(out_si[m].mean()),
            "si_sdr_improvement_db": float((out_si - in_si)[m].mean()),
        }

    for lo, hi in zip(bounds, bounds[1:], strict=False):
        m = (in_snr >= lo) & (in_snr < hi)
        if m.any():
            rows.append(row(_bucket_label(lo, hi), lo, hi, m))
    rows.append(row("all", -np.inf, np.inf, np.ones_like(in_snr, dtype=bool)))
    return rows
