"""Block-by-block execution of rtconv models with carried state.

:class:`Streamer` turns any :class:`rtconv.models.Model` into a stateful
processor of NumPy blocks shaped ``(frames, channels)`` (the layout of
soundfile and sounddevice).  Feeding a signal in blocks of any sizes gives
the offline ``model(x)`` output delayed by :attr:`Streamer.latency` samples
(zero for causal models), to float rounding.

How it works: the model's layer tree is compiled once into *cells*, one per
layer, each holding the history it needs in preallocated buffers:

* direct convolution keeps ``(K-1)*d`` past samples in one linear buffer
  the blocks are appended to (no per-block reallocation); it runs as torch's
  ``conv1d`` or as one matmul plus a strided diagonal sum, whichever is
  faster for the layer's shape (:func:`plan_direct`);
* long kernels use uniformly partitioned overlap-save FFT convolution: the
  first ``P`` taps run directly (zero added latency, any block size), the
  rest from a frequency-domain delay line updated once every ``P`` samples;
  or, for blocks long enough, one FFT of history + block per channel; the
  choice and ``P`` come from a cost estimate (:func:`plan_conv`);
* ``"same"``-padded layers are streamed causally and their outputs masked to
  zero before their start and, at :meth:`Streamer.flush`, after the end, so
  the next layer sees exactly the zero padding the offline pass sees.

Weights are copied into the cells when the streamer is built: later changes
to the model do not reach a running streamer (build a new one to swap).
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch
from scipy import fft as sp_fft
import torch.nn.functional as F
from torch import nn

from .errors import BlockError, ConfigError
from .layers import Activation, MimoConv1d, Residual
from .models import Model

__all__ = ["Streamer", "plan_conv", "plan_direct", "register_cell"]

_INPLACE = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "leaky_relu": lambda x: F.leaky_relu_(x, 0.01),
}


class _Cell:
    """A streaming counterpart of one layer: ``process((B, C, n)) -> (B, C', n)``."""

    def process(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self) -> None:
        pass

    def end(self, t: int) -> None:
        """The input ended after ``t`` samples (used by masks at flush)."""


class _History:
    """``span`` past samples of a ``(B, C, .)`` stream, kept in one linear buffer.

    Blocks are written after the history at a moving write position, so a
    block costs one copy; only when the buffer is full are the last ``span``
    samples moved back to the front (amortised: once per ``room`` samples).
    The buffer is a NumPy array and cells get torch views of it: slicing and
    copying small blocks costs ~0.5 us in NumPy against ~2.5 us in torch,
    measured per call at 512 frames.
    """

    def __init__(self, batch: int, channels: int, span: int, dtype: torch.dtype) -> None:
        self.shape = (batch, channels)
        self.span = span
        self.np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.buf: np.ndarray | None = None
        self._alloc(max(4096, 2 * span))

    def _alloc(self, room: int) -> None:
        new = np.zeros((*self.shape, self.span + room), self.np_dtype)
        if self.buf is not None:  # keep the history when a larger block arrives
            new[..., : self.span] = self.buf[..., self.pos - self.span : self.pos]
        self.buf, self.room, self.pos = new, room, self.span
        self.tbuf = torch.from_numpy(new)
        self._views: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def reset(self) -> None:
        self.buf[:] = 0
        self.pos = self.span

    def _append(self, x: np.ndarray) -> tuple[int, int]:
        n, s = x.shape[-1], self.span
        if n > self.room:
            self._alloc(max(n, 2 * self.room))
        if self.pos + n > s + self.room:  # full: move the history to the front
            if s:
                tail = self.buf[..., self.pos - s : self.pos]
                if self.pos - s < s:  # overlapping ranges (only when room < span)
                    tail = tail.copy()
                self.buf[..., :s] = tail
            self.pos = s
        p = self.pos
        self.buf[..., p : p + n] = x
        self.pos = p + n
        return p - s, p + n

    def push_np(self, x: np.ndarray) -> np.ndarray:
        """Append ``x``; return ``history + x`` as a NumPy view valid until the next push."""
        a, b = self._append(x)
        return self.buf[..., a:b]

    def push_views(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``x``; return ``history + x`` as torch views ``(B, C, L)`` and ``(C, L)`` (item 0).

        With steady block sizes the write position cycles through a few
        values, so the views are made once per position and reused (making
        one costs ~1 us per block otherwise).
        """
        key = self._append(x)
        v = self._views.get(key)
        if v is None:
            if len(self._views) >= 64:
                self._views.clear()
            full = self.tbuf[..., key[0] : key[1]]
            v = self._views[key] = (full, full[0])
        return v

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Append ``x``; return ``history + x`` as a torch view valid until the next push."""
        return self.push_views(x.numpy())[0]


class _DirectConv(_Cell):
    """Direct convolution of ``history + block``, in one of two ways (same result).

    ``"conv"``: torch's ``conv1d`` on one batch item.  Several items (a mono
    model on stereo) are folded into one long row, items side by side in
    time, because for batch > 1 torch hands these small shapes to oneDNN,
    measured ~40 us slower per call; the outputs that straddle two items are
    computed and dropped.  When the history is long next to the block, that
    waste would dominate, so the items run one by one instead.

    ``"gemm"``: one matmul of all taps with the input, ``Z = W X`` with
    ``W`` of shape ``(K*G, F)``, then ``Y[g, t] = sum_k Z[k, g, t + k*d]``
    read as a strided diagonal view and summed.  It wins for layers that
    reduce many channels to few (a 5 -> 1 layer at 4096 frames: 38 us
    against 203 us for ``conv1d``), see :func:`plan_direct`.
    """

    def __init__(self, weight_ir: torch.Tensor, bias, dilation: int, batch: int, kind: str = "conv") -> None:
        G, Fi, K = weight_ir.shape
        self.w = weight_ir.flip(-1).contiguous()
        self.b = bias
        self.d = dilation
        self.G, self.K = G, K
        self.span = (K - 1) * dilation
        self.kind = kind
        if kind == "gemm":
            self.wk = self.w.permute(2, 0, 1).reshape(K * G, Fi).contiguous()  # row k*G + g: tap k of output g
            self.bcol = None if bias is None else bias.reshape(G, 1)
        elif kind != "conv":
            raise ValueError(f"unknown direct convolution kind {kind!r}")
        self.hist = _History(batch, Fi, self.span, weight_ir.dtype) if self.span else None

    def reset(self) -> None:
        if self.hist is not None:
            self.hist.reset()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        N, Fi, n = x.shape
        x, x0 = (x, None) if self.hist is None else self.hist.push_views(x.numpy())
        L = x.shape[-1]
        if self.kind == "gemm":
            G, K = self.G, self.K
            # one item: a 2-D mm, ~3 us cheaper per call than the batched matmul
            z = torch.mm(self.wk, x[0] if x0 is None else x0) if N == 1 else torch.matmul(self.wk, x)  # (N, K*G, L)
            y = z.as_strided((N, G, n, K), (K * G * L, L, 1, G * L + self.d)).sum(-1)
            return y if self.bcol is None else y.add_(self.bcol)
        if N == 1:
            return F.conv1d(x, self.w, self.b, dilation=self.d)
        if self.span <= 2 * n:
            row = x.transpose(0, 1).reshape(1, Fi, N * L)
            y = F.conv1d(row, self.w, self.b, dilation=self.d)  # (1, G, N*L - span)
            return y.as_strided((N, self.G, n), (L, y.shape[-1], 1), y.storage_offset())
        return torch.cat([F.conv1d(x[i : i + 1], self.w, self.b, dilation=self.d) for i in range(N)])


def plan_direct(layer: MimoConv1d, block: int = 128, batch: int = 1) -> str:
    """Choose ``"conv"`` or ``"gemm"`` for a directly convolved layer (see ``_DirectConv``).

    A rule read off timings of both on a 2-core x86 CPU, one thread (us per
    block, conv1d / matmul: 5 -> 1 x 40 taps 8.4/9.4 at 128 frames,
    17/12 at 512, 203/38 at 4096; 3 -> 1 12/12 at 512; 2 -> 1 45/39 at 4096;
    1 -> 5 8/25 at 512; 16 -> 16 x 5 taps 18/25 at 512): the matmul form wins when the layer
    has at least three times more inputs than outputs from 256-frame blocks
    on, at least twice as many from 2048 frames on, or at least twice as
    many whenever several batch items (channels of a mono model) run
    together; it is never chosen when its intermediate would pass 2**21
    values (8 MB in float32).
    """
    Fi, G, K = layer.in_features, layer.out_features, layer.taps
    if K * G * batch * (block + layer.span) > 2**21:
        return "conv"
    if Fi >= 3 * G and block >= 256:
        return "gemm"
    if Fi >= 2 * G and (block >= 2048 or batch > 1):
        return "gemm"
    return "conv"


class _FFTConv(_Cell):
    """Partitioned convolution: head taps ``[0, P)`` direct, the rest by FFT.

    The frequency-domain delay line is NumPy/``scipy.fft`` (per-call cost of
    a few microseconds, where torch's is tens on these small transforms).
    Each new segment spectrum is written twice, at slots ``p`` and ``p + J``
    of a ``2J`` ring, so the last ``J`` spectra are always the contiguous
    window ``[p+1, p+J]``, oldest first: no per-segment reordering.
    """

    def __init__(self, weight_ir: torch.Tensor, bias, dilation: int, batch: int, part: int) -> None:
        G, Fi, K = weight_ir.shape
        span = (K - 1) * dilation
        dense = torch.zeros(G, Fi, span + 1, dtype=weight_ir.dtype)
        dense[..., ::dilation] = weight_ir
        P = self.P = part
        self.head = _DirectConv(dense[..., :P], bias, 1, batch, "conv")
        tail = dense[..., P:].numpy()
        J = self.J = -(-tail.shape[-1] // P)
        tail = np.pad(tail, ((0, 0), (0, 0), (0, J * P - tail.shape[-1])))
        parts = tail.reshape(G, Fi, J, P).transpose(2, 0, 1, 3)  # (J, G, F, P): partition j+1
        H = sp_fft.rfft(parts, n=2 * P, axis=-1)
        self.H = np.ascontiguousarray(H[::-1])  # window slot i (oldest first) meets partition J-i
        if Fi == 1 and G == 1:
            self.H = np.ascontiguousarray(self.H[:, 0, 0])  # (J, bins): the FIR fast path
        self.S = np.zeros((2 * J, batch, Fi, P + 1), dtype=H.dtype)
        self.seg = np.zeros((batch, Fi, 2 * P), dtype=tail.dtype)
        self.tail_out = np.zeros((batch, G, P), dtype=tail.dtype)
        self.mono = Fi == 1 and G == 1
        self.fill, self.p = 0, J - 1

    def reset(self) -> None:
        self.head.reset()
        self.S[:] = 0
        self.seg[:] = 0
        self.tail_out[:] = 0
        self.fill, self.p = 0, self.J - 1

    def _segment_done(self) -> None:
        P, J = self.P, self.J
        self.p = p = (self.p + 1) % J
        spec = sp_fft.rfft(self.seg, n=2 * P, axis=-1)
        self.S[p] = spec
        self.S[p + J] = spec
        self.seg[..., :P] = self.seg[..., P:]
        win = self.S[p + 1 : p + 1 + J]  # (J, B, F, bins), oldest first
        if self.mono:
            Y = np.einsum("jbk,jk->bk", win[:, :, 0], self.H)[:, None]
        else:
            Y = np.einsum("jbfk,jgfk->bgk", win, self.H)
        self.tail_out[:] = sp_fft.irfft(Y, n=2 * P, axis=-1)[..., P:]
        self.fill = 0

    def process(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head.process(x)
        o, xn = out.numpy(), x.numpy()
        n, pos, P = xn.shape[-1], 0, self.P
        while pos < n:
            m = min(n - pos, P - self.fill)
            f = self.fill
            o[..., pos : pos + m] += self.tail_out[..., f : f + m]
            self.seg[..., P + f : P + f + m] = xn[..., pos : pos + m]
            self.fill += m
            pos += m
            if self.fill == P:
                self._segment_done()
        return out


class _BlockFFTConv(_Cell):
    """Whole-block overlap-save: one FFT of ``history + block`` per channel.

    The kernel's full spectrum is kept per transform length (lengths follow
    the block sizes seen; a few are cached).  No added latency, and for
    blocks of a few hundred frames or more it beats both direct convolution
    and partitioned FFT on long kernels; on tiny blocks each sample pays for
    a whole transform, which is why :func:`plan_conv` weighs the block size.
    """

    _CACHE = 4

    def __init__(self, weight_ir: torch.Tensor, bias, dilation: int, batch: int) -> None:
        G, Fi, K = weight_ir.shape
        self.span = span = (K - 1) * dilation
        dense = torch.zeros(G, Fi, span + 1, dtype=torch.float64)
        dense[..., ::dilation] = weight_ir.to(torch.float64)
        self.h = dense.numpy()  # impulse-response order: h[..., j] meets x[t - j]
        self.b = None if bias is None else bias.numpy().reshape(G, 1)
        self.mono = Fi == 1 and G == 1
        self.cdtype = np.complex64 if weight_ir.dtype == torch.float32 else np.complex128
        self.spectra: dict[int, np.ndarray] = {}
        self.hist = _History(batch, Fi, span, weight_ir.dtype)

    def reset(self) -> None:
        self.hist.reset()

    def _spectrum(self, nfft: int) -> np.ndarray:
        H = self.spectra.get(nfft)
        if H is None:
            if len(self.spectra) >= self._CACHE:
                self.spectra.pop(next(iter(self.spectra)))
            H = sp_fft.rfft(self.h, n=nfft, axis=-1).astype(self.cdtype)
            self.spectra[nfft] = H = H[0, 0] if self.mono else H
        return H

    def process(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        win = self.hist.push_np(x.numpy())  # (N, F, span + n)
        L = self.span + n
        nfft = sp_fft.next_fast_len(L, real=True)
        H = self._spectrum(nfft)
        X = sp_fft.rfft(win, n=nfft, axis=-1)
        Y = X * H if self.mono else np.einsum("nfk,gfk->ngk", X, H)
        y = sp_fft.irfft(Y, n=nfft, axis=-1)[..., self.span : L]  # circular wrap only touches t < span
        if self.b is not None:
            y += self.b
        return torch.from_numpy(y)


class _Activation(_Cell):
    def __init__(self, name: str) -> None:
        self.fn: Callable | None = _INPLACE.get(name)
        self.name = name

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.name == "identity" else self.fn(x)


class _Mask(_Cell):
    """Zero a cell's output outside ``[start, end)`` in absolute samples."""

    def __init__(self, inner: _Cell, start: int) -> None:
        self.inner, self.start = inner, start
        self.t, self.stop = 0, None

    def reset(self) -> None:
        self.inner.reset()
        self.t, self.stop = 0, None

    def end(self, t: int) -> None:
        self.inner.end(t)
        self.stop = t + self.start

    def process(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner.process(x)
        t0, n = self.t, y.shape[-1]
        self.t += n
        if t0 < self.start:
            y[..., : min(n, self.start - t0)] = 0
        if self.stop is not None and t0 + n > self.stop:
            y[..., max(0, self.stop - t0) :] = 0
        return y


class _Delay(_Cell):
    def __init__(self, batch: int, channels: int, delay: int, dtype: torch.dtype) -> None:
        self.hist = _History(batch, channels, delay, dtype)

    def reset(self) -> None:
        self.hist.reset()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.hist.push_np(x.numpy())[..., : x.shape[-1]])


class _Sequence(_Cell):
    def __init__(self, cells: list[_Cell]) -> None:
        self.cells = cells

    def reset(self) -> None:
        for c in self.cells:
            c.reset()

    def end(self, t: int) -> None:
        for c in self.cells:
            c.end(t)

    def process(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.cells:
            x = c.process(x)
        return x


class _Residual(_Cell):
    def __init__(self, body: _Cell, skip: _Cell | None) -> None:
        self.body, self.skip = body, skip

    def reset(self) -> None:
        self.body.reset()
        if self.skip is not None:
            self.skip.reset()

    def end(self, t: int) -> None:
        self.body.end(t)

    def process(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skip.process(x)
        return self.body.process(x).add_(skip)


def stream_channels(model, channels: int | None, hint: str = "") -> int:
    """The channel count of a stream through ``model`` (default: its inputs), checked in one sentence.

    A mono model runs once per channel; a model that mixes ``F`` input
    channels needs a stream of exactly ``F``.  ``hint`` ends that refusal
    (e.g. how the caller's user sets the count).
    """
    f0 = model.in_channels
    channels = f0 if channels is None else channels
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"channels must be a positive integer, got {channels!r}.")
    if f0 > 1 and channels != f0:
        raise ConfigError(
            f"this model mixes {f0} input channels, so the stream must have {f0} channels, not {channels}"
            f"{'; ' + hint if hint else ''}."
        )
    return channels


def plan_conv(layer: MimoConv1d, block: int = 128) -> tuple[str, int]:
    """Choose ``("direct", 0)``, ``("fft", P)`` or ``("block", 0)`` for a layer by estimated cost.

    The estimate is in nanoseconds per output sample, fitted to timings on a
    2-core x86 CPU (one thread):

    * direct convolution costs about 0.27 ns per multiply-add for a
      single-channel kernel, down to 0.04 ns when several channel pairs
      share the work (``0.27 / (F*G)``, at least 0.04), growing with
      ``block * taps`` (torch's im2col buffer falls out of cache);
    * a partitioned FFT segment costs about 50 us of calls per channel pair,
      spread over ``P`` samples, plus the direct head of ``P`` taps and about
      10 us of bookkeeping per block;
    * a whole-block FFT (``"block"``: one transform of history + block per
      channel, the kernel's full spectrum) costs about 5 us plus
      ``0.33 n log2 n`` ns per transform of ``n = block + span`` samples,
      and about 17 us of bookkeeping per block.

    An FFT must win by 1.25x to be chosen.  At 128-frame blocks FIRs up to a
    few hundred taps stay direct, a 1024-tap FIR takes the whole-block FFT
    and 2048 taps or more get ``P = 512``; from 512-frame blocks on, long
    FIRs take the whole-block FFT.  Each choice measured within ~10% of the
    fastest of the three on the FIRs of ``rtconv bench engine``.
    """
    Fi, G = layer.in_features, layer.out_features
    FG = Fi * G
    keff = layer.span + 1
    per_mac = max(0.04, 0.27 / FG)

    def direct_ns(taps: int) -> float:
        return per_mac * FG * taps * (1 + block * taps / 1.9e6)

    if keff == 1:
        return "direct", 0
    direct = direct_ns(layer.taps) + 8000 / block
    best = ("direct", 0, direct)
    n = sp_fft.next_fast_len(block + keff - 1, real=True)
    whole = ((Fi + G) * (5000 + 0.33 * n * np.log2(n)) + FG * n / 2 + 17_000) / block
    if whole < direct / 1.25:
        best = ("block", 0, whole)
    P = 64
    while P < keff:
        J = -(-(keff - P) // P)
        fft = (
            direct_ns(P)
            + FG * J
            + 50_000 * (Fi + G) / 2 / P
            + 10_000 / block
        )
        if fft < direct / 1.25 and fft < best[2]:
            best = ("fft", P, fft)
        P *= 2
    return best[0], best[1]


_BUILDERS: dict[type, Callable] = {}


def register_cell(module_type: type, builder: Callable) -> None:
    """Teach the streamer to run ``module_type``.

    ``builder(module, batch, dtype, delay, compile)`` returns ``(cell, delay)``:
    a cell object with ``process(x: (batch, C, n)) -> (batch, C', m)``,
    ``reset()`` and ``end(t)``, and the delay (in samples of the stream's
    input) after this module; ``compile(child, delay)`` builds a child module
    the same way.
    """
    _BUILDERS[module_type] = builder


def _compile(
    module: nn.Module, batch: int, dtype: torch.dtype, delay: int, part: int | str | None, mask: bool,
    block: int = 128, direct: str = "auto",
) -> tuple[_Cell, int]:
    """Build the cell for ``module`` whose input is delayed ``delay`` samples; return it and its output delay.

    With ``mask`` (the model has latency, so :meth:`Streamer.flush` will feed
    zeros past the end) every layer's output is masked, not only delayed ones:
    offline, a later layer sees zero padding after the end, not ``f(bias)``.
    """
    for cls in type(module).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls](
                module, batch, dtype, delay, lambda m, d: _compile(m, batch, dtype, d, part, mask, block, direct)
            )
    if isinstance(module, MimoConv1d):
        w = module.weight.detach().to(dtype)
        b = None if module.bias is None else module.bias.detach().to(dtype)
        if part is None:
            kind, P = plan_conv(module, block)
        elif part == "block":
            kind, P = ("block", 0) if module.span else ("direct", 0)
        else:
            kind, P = ("fft", part) if part < module.span + 1 else ("direct", 0)
        if kind == "block":
            cell = _BlockFFTConv(w, b, module.dilation, batch)
        elif kind == "fft":
            cell = _FFTConv(w, b, module.dilation, batch, P)
        else:
            how = plan_direct(module, block, batch) if direct == "auto" else direct
            cell = _DirectConv(w, b, module.dilation, batch, how)
        delay += module.latency
        return (_Mask(cell, delay) if mask else cell), delay
    if isinstance(module, Activation):
        cell = _Activation(module.name)
        return (_Mask(cell, delay) if mask else cell), delay
    if isinstance(module, nn.Sequential):
        cells = []
        for m in module:
            c, delay = _compile(m, batch, dtype, delay, part, mask, block, direct)
            cells.append(c)
        return _Sequence(cells), delay
    if isinstance(module, Residual):
        body, out_delay = _compile(module.body, batch, dtype, delay, part, mask, block, direct)
        inner = out_delay - delay
        channels = next(m for m in module.modules() if isinstance(m, MimoConv1d)).in_features
        skip = _Delay(batch, channels, inner, dtype) if inner else None
        return _Residual(body, skip), out_delay
    raise ConfigError(f"the streamer cannot run a {type(module).__name__} layer.")


_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class Streamer:
    """Run a model on consecutive audio blocks with carried state.

    Parameters
    ----------
    model : rtconv.models.Model
        The model; its weights are copied at construction.
    channels : int, optional
        Channels of the audio stream.  Defaults to the model's input
        channels.  A mono model (one input channel) on ``channels > 1``
        runs once per channel with independent state; a model with more
        input channels must match them exactly (it mixes them, MIMO).
    dtype : numpy float dtype
        Precision of the computation and of the returned blocks.
    threads : int or None
        Sets ``torch.set_num_threads`` when given; 1 suits live use, where
        one core must do a block in a fraction of its time.  The count is
        re-applied on whichever thread calls :meth:`process` (OpenMP keeps
        it per thread, so an audio callback thread would otherwise run with
        the default).
    partition : int or "block", optional
        Force FFT partition size ``P`` for every layer longer than ``P``
        taps, or ``"block"`` for a whole-block FFT on every layer with
        history (for tests and benchmarks); by default :func:`plan_conv`
        decides.
    direct : {"auto", "conv", "gemm"}
        How directly convolved layers run (for tests and benchmarks); by
        default :func:`plan_direct` decides per layer.
    block_size : int
        Typical block length the caller will feed, in frames; it only
        guides the direct-vs-FFT choice (any length still works).
    engine : {"torch", "onnx"}
        ``"onnx"`` runs the model's exported step model in onnxruntime
        (:mod:`rtconv.onnx.engine`; needs the ``onnx`` extra): the same
        output, faster for conv nets such as the denoiser, slower for long
        FIRs (README, "A second engine"); float32 only, and a block length
        other than ``block_size`` builds its own session on first use.

    Notes
    -----
    Non-finite input samples (NaN, +-Inf) are replaced by 0 before they
    reach the state, and counted in :attr:`nonfinite_samples`, so one bad
    block cannot poison all later output.
    """

    def __init__(
        self,
        model: Model,
        channels: int | None = None,
        dtype=np.float32,
        threads: int | None = 1,
        partition: int | str | None = None,
        block_size: int = 128,
        direct: str = "auto",
        engine: str = "torch",
    ) -> None:
        if not isinstance(model, Model):
            raise ConfigError(f"Streamer needs an rtconv model, got {type(model).__name__}.")
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}.")
        f0 = model.in_channels
        channels = stream_channels(model, channels)
        if threads is not None:
            torch.set_num_threads(threads)
        # OpenMP's thread count is per OS thread: a block arriving on another thread
        # (an audio callback, a worker) would otherwise run with the default count,
        # measured 3.5x slower. process() re-applies it when the calling thread changes.
        self._threads = torch.get_num_threads() if threads is None else threads
        self._thread_id: int | None = threading.get_ident()
        self.model = model
        self.channels = channels
        self._batch = channels if f0 == 1 else 1
        self._model_out = model.out_channels
        self.out_channels = self._batch * self._model_out
        self.latency: int = model.latency
        self.receptive_field: int = model.receptive_field
        self.nonfinite_samples = 0
        self._t = 0
        self._tdtype = _DTYPES[self.dtype]
        self.engine, self._onnx = engine, None
        if engine == "onnx":
            if self.dtype != np.float32 or partition is not None or direct != "auto":
                raise ConfigError(
                    "engine='onnx' computes in float32 with its own convolutions; leave dtype, partition "
                    "and direct at their defaults with it."
                )
            from .onnx.engine import OnnxEngine

            self._onnx = OnnxEngine(model, channels, max(1, int(block_size)), self._threads)
            return
        if engine != "torch":
            raise ConfigError(f"engine must be 'torch' or 'onnx', got {engine!r}.")
        with torch.no_grad():
            self._cell, _ = _compile(
                model.body, self._batch, self._tdtype, 0, partition, mask=self.latency > 0,
                block=max(1, int(block_size)), direct=direct,
            )

    def reset(self) -> None:
        """Forget all history, as if the stream started now."""
        (self._cell if self._onnx is None else self._onnx).reset()
        self._t = 0

    def _check(self, block) -> np.ndarray:
        if not isinstance(block, np.ndarray):
            raise BlockError(f"a block must be a NumPy array, got {type(block).__name__}.")
        if block.ndim != 2:
            raise BlockError(
                f"a block must be 2-D (frames, channels), got shape {block.shape}; "
                "for mono audio use block[:, None]."
            )
        if block.shape[1] != self.channels:
            raise BlockError(
                f"this streamer expects {self.channels} channel(s), got a block of shape "
                f"{block.shape} with {block.shape[1]}."
            )
        if block.dtype.kind != "f":
            raise BlockError(
                f"a block must hold floats (float32 or float64 in [-1, 1]), got dtype "
                f"{block.dtype}; convert integer PCM with x / 32768."
            )
        if block.dtype != self.dtype:
            block = block.astype(self.dtype)
        if not np.isfinite(block).all():
            bad = ~np.isfinite(block)
            self.nonfinite_samples += int(bad.sum())
            block = np.where(bad, 0, block).astype(self.dtype)
        return block

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block ``(frames, channels)``; return ``(frames, out_channels)``."""
        block = self._check(block)
        if threading.get_ident() != self._thread_id:
            torch.set_num_threads(self._threads)
            self._thread_id = threading.get_ident()
        n = block.shape[0]
        if n == 0:
            return np.zeros((0, self.out_channels), self.dtype)
        if self._onnx is not None:
            self._t += n
            return self._onnx.process(block)
        # layout changes on the NumPy side: ~3 us cheaper per block than torch views
        x = torch.from_numpy(block.T.reshape(self._batch, -1, n))
        y = self._cell.process(x)
        self._t += n
        # always a fresh array: a cell may return a view of its own buffers,
        # which the next block overwrites
        return np.array(y.numpy().reshape(self.out_channels, n).T, order="C", copy=True)

    def flush(self) -> np.ndarray:
        """End the signal: return the last :attr:`latency` output frames, then reset.

        After ``process`` over a whole signal, ``flush`` emits what the
        model still owes for it (nothing for causal models); together they
        equal the offline output delayed by ``latency``.
        """
        if self._onnx is None:
            self._cell.end(self._t)
            tail = self.process(np.zeros((self.latency, self.channels), self.dtype))
        else:  # whole blocks of zeros through the built session: no session for the tail's length
            tail = self._onnx.flush(self.latency) if self.latency else np.zeros((0, self.out_channels), self.dtype)
        self.reset()
        return tail

    def __repr__(self) -> str:
        return (
            f"Streamer({type(self.model).__name__}, channels={self.channels}, "
            f"out_channels={self.out_channels}, latency={self.latency}, dtype={self.dtype})"
        )
