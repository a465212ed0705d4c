"""Exact 1-D convolution semantics, as small NumPy references.

These functions spell out what every layer in rtconv computes, so users
can check the numbers against the course material and against NumPy,
SciPy and PyTorch (the test-suite does):

* **convolution** flips the kernel: ``y[n] = sum_k h[k] x[n-k]``
  (``np.convolve``, ``scipy.signal.lfilter``, and rtconv's layers, whose
  kernels are stored in this impulse-response order);
* **cross-correlation** does not: ``y[n] = sum_k h[k] x[n+k]``
  (``np.correlate``, and ``torch.nn.functional.conv1d`` — which is why
  rtconv flips its kernels before calling it).

Modes for ``len(x) = N``, ``len(h) = K``: ``full`` has ``N+K-1`` samples,
``valid`` ``max(N,K) - min(N,K) + 1``, ``same`` ``max(N,K)`` (centred as
NumPy centres it).  With padding ``P``, stride ``S`` and dilation ``D``::

    L_out = floor((L_in + 2P - D(K-1) - 1) / S) + 1

and a transposed convolution (the upsampling adjoint) gives::

    L_out = (L_in - 1) S - 2P + D(K-1) + output_padding + 1

Example: ``x = [1, 2, 3, 4]``, ``h = [1, 2, 3]``: full ``[1, 4, 10, 16, 17, 12]``,
valid ``[10, 16]``, same ``[4, 10, 16, 17]``.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = [
    "MODES",
    "convolve",
    "correlate",
    "conv1d",
    "conv_transpose1d",
    "output_length",
    "transposed_output_length",
    "mode_length",
    "parameter_count",
]

MODES = ("full", "valid", "same")


def _vec(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D sequence, got shape {a.shape}.")
    return a


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}.")
    return mode


def mode_length(n: int, k: int, mode: str) -> int:
    """Output length of :func:`convolve` / :func:`correlate` in ``mode``."""
    _check_mode(mode)
    if mode == "full":
        return n + k - 1
    if mode == "valid":
        return max(n, k) - min(n, k) + 1
    return max(n, k)


def _crop(full: np.ndarray, n: int, k: int, mode: str) -> np.ndarray:
    if mode == "full":
        return full
    length = mode_length(n, k, mode)
    start = (full.size - length) // 2 if mode == "same" else min(n, k) - 1
    return full[start : start + length]


def convolve(x, h, mode: str = "full") -> np.ndarray:
    """True convolution, ``y[n] = sum_k h[k] x[n-k]``; equals ``np.convolve(x, h, mode)``."""
    x, h = _vec("x", x), _vec("h", h)
    _check_mode(mode)
    n, k = x.size, h.size
    full = np.zeros(n + k - 1)
    for i in range(k):  # one shifted, scaled copy of x per tap: the definition
        full[i : i + n] += h[i] * x
    return _crop(full, n, k, mode)


def correlate(x, h, mode: str = "valid") -> np.ndarray:
    """Cross-correlation, ``y[n] = sum_k h[k] x[n+k]``; equals ``np.correlate(x, h, mode)``.

    It is convolution with the kernel reversed: ``correlate(x, h) ==
    convolve(x, h[::-1])``.  (``np.correlate`` swaps roles when ``h`` is
    longer than ``x``; this function follows it.)
    """
    x, h = _vec("x", x), _vec("h", h)
    if h.size > x.size:  # np.correlate's convention for a longer second argument
        return convolve(x[::-1], h, mode)[::-1].copy()
    return convolve(x, h[::-1], mode)


def output_length(length: int, taps: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """``L_out = floor((L_in + 2P - D(K-1) - 1)/S) + 1`` (0 if the kernel does not fit)."""
    span = dilation * (taps - 1) + 1
    if length + 2 * padding < span:
        return 0
    return (length + 2 * padding - span) // stride + 1


def transposed_output_length(
    length: int, taps: int, padding: int = 0, stride: int = 1, dilation: int = 1, output_padding: int = 0
) -> int:
    """``L_out = (L_in-1)S - 2P + D(K-1) + output_padding + 1``."""
    return (length - 1) * stride - 2 * padding + dilation * (taps - 1) + output_padding + 1


def conv1d(x, h, padding: int = 0, stride: int = 1, dilation: int = 1, flip: bool = False) -> np.ndarray:
    """Strided, dilated, zero-padded 1-D correlation (PyTorch's ``conv1d``).

    ``y[m] = sum_k h[k] xp[m*S + k*D]`` with ``xp`` = ``x`` padded by ``P``
    zeros on both sides.  ``flip=True`` reverses the kernel first, i.e.
    computes a true convolution with the same padding/stride/dilation.
    """
    x, h = _vec("x", x), _vec("h", h)
    if flip:
        h = h[::-1]
    xp = np.concatenate([np.zeros(padding), x, np.zeros(padding)])
    L = output_length(x.size, h.size, padding, stride, dilation)
    y = np.zeros(L)
    for k in range(h.size):
        y += h[k] * xp[k * dilation : k * dilation + (L - 1) * stride + 1 : stride]
    return y


def conv_transpose1d(
    x, h, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> np.ndarray:
    """Transposed convolution (PyTorch's ``conv_transpose1d``): upsampling by ``stride``.

    Each input sample ``x[m]`` adds a scaled copy of ``h`` (taps spaced by
    ``D``) at output position ``m*S``; then ``P`` samples are cropped from
    each end.  It is the adjoint of :func:`conv1d` with the same arguments.
    """
    x, h = _vec("x", x), _vec("h", h)
    full_len = (x.size - 1) * stride + dilation * (h.size - 1) + 1 + output_padding
    y = np.zeros(full_len)
    for m in range(x.size):
        y[m * stride : m * stride + dilation * (h.size - 1) + 1 : dilation] += x[m] * h
    return y[padding : full_len - padding]


def parameter_count(in_channels: int, out_channels: int, taps: int, bias: bool = True) -> int:
    """Weights ``in*out*K`` plus one bias per output channel."""
    return in_channels * out_channels * taps + (out_channels if bias else 0)
