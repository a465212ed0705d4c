"""The row-major frame-rate cells, in NumPy: a framed layer's body one or two frames at a time.

Inside a framed layer (:mod:`rtconv.framed`) a 128-sample block holds one
or two frames, and the body's arithmetic is a few small matrix products
per frame: the cost is the calls, not the products.  A torch call on such
small arrays costs 1-5 us before any arithmetic and a NumPy call 0.2-2 us
(a 1x192 by 192x64 product: 4.6 us in ``torch.addmm``, 2.3 us in NumPy;
a slice: 2.0 against 0.2 us), so the body runs here on NumPy arrays laid
out time-major, ``(frames*batch, channels)``: a causal convolution is one
product of its taps, read from a frame history, with its weights
(:class:`RowConv`); the GRU steps frame by frame from one input projection
for all of them; the mask gate and its deep filter are elementwise (the
filter in complex arithmetic).  A file's long blocks hand the body hundreds
of frames at once; the same code serves them (NumPy's products measured as
fast as torch's there), except the large sigmoids, which go to torch on the
same memory (:data:`LARGE`).  The framed cell (:mod:`rtconv.cells.frames`) hands its
frames over as NumPy and takes them back; the sample-rate side stays in
torch.

Every cell here computes what its layer's ``forward`` computes, so a
stream equals the offline model to float rounding (the streaming property
tests run every one of them, at one frame per block and at many).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from ..framed import FrameGRU, MaskGate, PairPower, presence_scale
from ..layers import MimoConv1d
from .base import Cell
from .history import History

__all__ = ["RowConv", "RowPairPower", "RowGRU", "GateCell", "RowMaskGate", "ROW_ACTIVATIONS", "TapIndex", "row_product", "RowBias"]


def _np(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """A parameter as a contiguous NumPy array of the stream's dtype (a copy: the model may change later)."""
    return np.ascontiguousarray(t.detach().to(dtype).numpy()).copy()


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.01 * x, out=x)


#: From this many elements on, the sigmoid runs in torch on the same memory: 0.88 ms against SciPy's
#: 5.5 ms for a file block's 1364 x 480 gains here, while for a live block's one or two frames NumPy's
#: and SciPy's calls cost less (tanh and the products measured no faster in torch at any size here:
#: a 1364 x 192 by 192 x 64 product 0.29 ms in NumPy, 0.5-0.64 ms in torch.mm, one thread).
LARGE = 4096


def _sigmoid(x: np.ndarray) -> np.ndarray:
    if x.size >= LARGE:
        torch.sigmoid_(torch.from_numpy(x))
        return x
    return expit(x, out=x)


#: in-place activations on NumPy rows, by :class:`rtconv.layers.Activation` name
ROW_ACTIVATIONS = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0, out=x),
    "sigmoid": _sigmoid,
    "leaky_relu": _leaky_relu,
    "identity": lambda x: x,
}


def row_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w`` for ``(R, K)`` time-major rows: one row through ``np.dot``, two or three as that many
    vector products.

    For one row ``np.dot`` skips the ``matmul`` ufunc's dispatch: 0.5-0.9 us less per product here
    (1x192 by 192x64: 2.7 against 3.6 us), the same BLAS call and the same result bit for bit.
    OpenBLAS's single-threaded sgemm for two or three rows took 1.3-2.3x the time of as many
    vector products here (a 2x194 by 194x192 product 13.8 us against 8.1; four rows or more are as
    fast either way), and a live 128-sample block holds two frames one time in three:
    NumPy's stacked ``matmul`` runs one vector product per row.
    """
    R = a.shape[0]
    if R == 1:
        return np.dot(a, w)
    if R == 2 or R == 3:
        return np.matmul(a.reshape(R, 1, -1), w).reshape(R, -1)
    return a @ w


class RowBias:
    """A bias ``(C,)`` added in place to ``(R, C)`` rows, as an array of the rows' own shape for a live
    block's few rows.

    NumPy's broadcasting ``y += b`` of a ``(C,)`` vector onto ``(1, C)`` rows costs 2.2 us here against
    0.9 us for two arrays of one shape: a live frame's body adds some twenty biases.  Up to
    :data:`ROWS` rows the bias is kept tiled per row count (made once); a file's long blocks broadcast.
    """

    ROWS = 4

    def __init__(self, b: np.ndarray) -> None:
        self.b = np.array(b)  # a copy: the model's parameters may change later, the stream's do not
        self._tiled = {R: np.tile(self.b, (R, 1)) for R in range(1, self.ROWS + 1)}

    def add(self, y: np.ndarray) -> np.ndarray:
        """``y += b`` for ``(R, C)`` rows ``y``; returns ``y``."""
        t = self._tiled.get(y.shape[0])
        y += self.b if t is None else t
        return y


class TapIndex:
    """Where each of ``m`` new frames' taps lie in a time-first history, oldest tap first.

    Frames ``end-m .. end-1`` (``end`` as :meth:`History.push_rows` returns it), each with
    ``taps`` taps ``dilation`` frames apart, the oldest ``(taps-1)*dilation`` frames back.
    Frame ``i``'s tap ``k`` is row ``end - m - reach + i + k*dilation``: one step apart along the
    frames and ``dilation`` along the taps, so every frame's taps are one strided view of the
    history, ``(m, taps, batch, channels)``, made without a copy: :meth:`one` for one frame (a live
    block's usual share, a slice), :meth:`view` for any number (the two-frame blocks that set a
    stream's p99: 10 us a layer against 15 us for a gather with an index array, measured here).
    """

    def __init__(self, taps: int, dilation: int) -> None:
        self.taps, self.d, self.reach = taps, dilation, (taps - 1) * dilation

    def one(self, end: int) -> slice:
        """The taps of frame ``end - 1``: ``buf[one(end)]`` is ``(taps, batch, channels)``, a view."""
        return slice(end - 1 - self.reach, end, self.d)

    def view(self, buf: np.ndarray, end: int, m: int) -> np.ndarray:
        """The taps of frames ``end-m .. end-1`` of the time-first ``buf``: ``(m, taps, batch, channels)``,
        a view of it (valid until the history moves; read it, do not write it)."""
        start = end - m - self.reach
        if start < 0 or end > len(buf):
            raise IndexError(f"frames {end - m}..{end - 1} reach back to row {start}, outside 0..{len(buf)}")
        step = buf.strides[0]
        return np.ndarray((m, self.taps, *buf.shape[1:]), buf.dtype, buf, step * start,
                          (step, self.d * step, *buf.strides[1:]))


class RowConv(Cell):
    """A causal frame-rate convolution on time-major rows: one product over the gathered taps."""

    kind = "rows"

    def __init__(self, layer: MimoConv1d, batch: int, dtype: torch.dtype) -> None:
        w = layer.weight.detach().to(dtype)  # (G, F, K), impulse-response order
        G, Fi, K = w.shape
        self.span = layer.span
        # (K*F, G), oldest tap first (as TapIndex gathers them): rows k*F .. k*F+F-1 hold tap K-1-k
        self.wt = _np(w.flip(-1).permute(2, 1, 0).reshape(K * Fi, G), dtype)
        self.b = RowBias(np.zeros(G, self.wt.dtype) if layer.bias is None else _np(layer.bias, dtype))
        self.hist = History(batch, Fi, self.span, dtype, time_first=True) if self.span else None
        self.B = batch
        self.index = TapIndex(K, layer.dilation)

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.hist is None:
            y = row_product(x, self.wt)
        else:
            end = self.hist.push_rows(x)
            buf, R, B = self.hist.buf, x.shape[0], self.B
            if R == B:  # one frame: its taps are a strided view (K, B, F)
                taps = buf[self.index.one(end)].transpose(1, 0, 2)
            else:
                taps = self.index.view(buf, end, R // B).transpose(0, 2, 1, 3)  # (m, B, K, F)
            y = row_product(taps.reshape(R, -1), self.wt)
        return self.b.add(y)


def phase_advance_rows(x: np.ndarray, prev: np.ndarray, eps: float) -> np.ndarray:
    """:func:`rtconv.framed.phase_advance` on ``(R, 2, P)`` rows: ``(R, 2P)``, real parts then imaginary."""
    a, b = x[:, 0], x[:, 1]
    ap, bp = prev[:, 0], prev[:, 1]
    re, im = a * ap + b * bp, b * ap - a * bp
    norm = re * re + im * im
    norm += eps * eps
    np.sqrt(norm, out=norm)
    np.reciprocal(norm, out=norm)
    re *= norm
    im *= norm
    return np.concatenate([re, im], axis=1)


class RowPairPower(Cell):
    """:class:`rtconv.framed.PairPower` on rows ``(R, 2K) -> (R, K [+ 2P])``, the last frame's low bins
    carried across blocks for the phase advances."""

    kind = "pointwise"

    def __init__(self, module: PairPower, batch: int, dtype: torch.dtype) -> None:
        self.scale, self.shift, self.eps = module.scale, module.shift, module.eps
        self.B, self.P = batch, module.phase_bins
        self.hist = History(batch, 2 * self.P, 1, dtype, time_first=True) if self.P else None

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def process(self, z: np.ndarray) -> np.ndarray:
        R, C = z.shape
        z3 = z.reshape(R, 2, C // 2)
        p = np.square(z3[:, 0])
        p += np.square(z3[:, 1])
        p += self.eps
        np.log(p, out=p)
        p *= self.scale
        if self.shift:
            p += self.shift
        if not self.P:
            return p
        P = self.P
        x = z3[:, :, 1 : 1 + P]
        end = self.hist.push_rows(x.reshape(R, 2 * P))
        prev = self.hist.buf[end - R // self.B - 1 : end - 1].reshape(R, 2, P)
        return np.concatenate([p, phase_advance_rows(x, prev, self.eps)], axis=1)


class RowGRU(Cell):
    """A :class:`rtconv.framed.FrameGRU` on rows ``(m*B, C) -> (m*B, H)``, its hidden state carried.

    torch's GRU written out in NumPy: the input projection of all ``m``
    frames in one product, then per frame ``r, z = sigmoid(Wi x + bi + Wh h
    + bh)`` (first two thirds), ``n = tanh(Wi_n x + bi_n + r * (Wh_n h +
    bh_n))``, ``h = n + z * (h - n)``.  Also for a file's long blocks: its
    loop measured faster here than torch's GRU call over the same frames.
    """

    kind = "recurrent"

    def __init__(self, module: FrameGRU, batch: int, dtype: torch.dtype) -> None:
        g = module.gru
        self.wi, self.wh = _np(g.weight_ih_l0.t(), dtype), _np(g.weight_hh_l0.t(), dtype)  # (C, 3H), (H, 3H)
        self.bi, self.bh = RowBias(_np(g.bias_ih_l0, dtype)), RowBias(_np(g.bias_hh_l0, dtype))
        self.B, self.H = batch, module.hidden
        self.h = np.zeros((batch, module.hidden), self.wh.dtype)

    def reset(self) -> None:
        self.h[:] = 0

    def buffers(self):
        return [self.h]

    def process(self, x: np.ndarray) -> np.ndarray:
        B, H = self.B, self.H
        m = x.shape[0] // B
        gi = self.bi.add(row_product(x, self.wi))
        y = np.empty((m * B, H), self.h.dtype)
        h = self.h
        for t in range(m):
            i = gi[t * B : (t + 1) * B]
            gh = self.bh.add(row_product(h, self.wh))
            rz = i[:, : 2 * H] + gh[:, : 2 * H]
            expit(rz, out=rz)
            n = gh[:, 2 * H :]
            n *= rz[:, :H]
            n += i[:, 2 * H :]
            np.tanh(n, out=n)
            # h = n + z * (h - n), into the carried state
            np.subtract(h, n, out=h)
            h *= rz[:, H:]
            h += n
            y[t * B : (t + 1) * B] = h
        return y


class GateCell(Cell):
    """What a mask gate's cell holds in either layout: the estimator's (and presence head's) cells, the
    module whose floor and linked switch it reads live, and the deep filter's history of past frames."""

    kind = "gate"

    def __init__(self, module: MaskGate, estimator: Cell, batch: int, dtype: torch.dtype,
                 presence: Cell | None, time_first: bool) -> None:
        self.m, self.est, self.B = module, estimator, batch
        self.pres, self.pf = presence, module.presence_floor
        self.df = module.deep_filter
        # the filtered bins' past frames, as many as the filter reaches back
        self.hist = None if self.df is None else History(batch, 2 * self.df[0], module.filter_span, dtype,
                                                         time_first=time_first)

    def children(self) -> list[Cell]:
        return [self.est] if self.pres is None else [self.est, self.pres]

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]


class RowMaskGate(GateCell):
    """:class:`rtconv.framed.MaskGate` on rows: ``z * gain`` plus the deep filter's sum over past
    frames, the floor and the linked switch read live on every block.  The filter's history holds
    each bin's real and imaginary parts side by side, so that it reads as complex numbers."""

    def __init__(self, module: MaskGate, estimator: Cell, batch: int, dtype: torch.dtype,
                 presence: Cell | None = None) -> None:
        super().__init__(module, estimator, batch, dtype, presence, time_first=True)
        self.complex = np.complex64 if dtype == torch.float32 else np.complex128
        self.index = None if self.df is None else TapIndex(self.df[1], self.df[2])

    def _presence(self, g: np.ndarray) -> np.ndarray:
        """The presence head's scale ``(R, 1)`` for gains ``g`` ``(R, K)`` (:func:`rtconv.framed.presence_scale`)."""
        p = torch.from_numpy(self.pres.process(np.ascontiguousarray(g)))
        return presence_scale(p, self.pf, *self.m.presence_range).numpy()

    def process(self, z: np.ndarray) -> np.ndarray:
        e = self.est.process(z)
        f, fb = self.m._fm  # read live: the strength control may change mid-stream (fb: its mix-back, f / P)
        B = self.B
        if self.m.linked and B > 1:  # one gain (and filter) for every channel: rows are frame-major, channel-minor
            E = e.shape[-1]
            e = np.repeat(e.reshape(-1, B, E).mean(1), B, axis=0)
        if not self.m.pairs:
            return z * (e * (1.0 - f) + fb if f else e)
        R, C = z.shape
        K = C // 2
        g = e[:, :K]
        pg = None if self.pres is None else self._presence(g)  # (R, 1)
        if pg is not None:
            g = g * pg
        if f:
            g = g * (1.0 - f) + fb
        y = z.reshape(R, 2, K) * g[:, None, :]
        if self.df is None:
            return y.reshape(R, C)
        bins, order, _ = self.df
        m = R // B
        # the deep filter in complex arithmetic: sum_n c_n x[t - n*d], c = 2*s - 1 (two calls, not a dozen)
        z3 = z.reshape(R, 2, K)
        end = self.hist.push_rows(z3[:, :, 1 : 1 + bins].transpose(0, 2, 1).reshape(R, -1))  # (R, bins*re/im)
        cbuf = self.hist.buf.view(self.complex)  # (time, B, bins)
        if m == 1:  # (order, B, bins), oldest first, a strided view
            taps = cbuf[self.index.one(end)].transpose(1, 0, 2)
        else:  # (m, order, B, bins), a strided view
            taps = self.index.view(cbuf, end, m).transpose(0, 2, 1, 3).reshape(R, order, bins)
        # the coefficients (n = 0 for the newest frame) reversed to the taps' order: (R, order, bins, re/im)
        s = np.multiply(e[:, K:].reshape(R, order, 2, bins)[:, ::-1].transpose(0, 1, 3, 2), 2.0, order="C")
        s -= 1.0
        v = (taps * s.view(self.complex)[..., 0]).sum(1)  # (R, bins)
        if pg is not None:
            v *= pg
        if f:
            v *= 1.0 - f
        y[:, 0, 1 : 1 + bins] += v.real
        y[:, 1, 1 : 1 + bins] += v.imag
        return y.reshape(R, C)
