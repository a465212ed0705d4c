"""Sample-rate convolution cells, and the planners that choose among them.

A :class:`~rtconv.layers.MimoConv1d` streams in one of three ways, all
giving the same output: direct convolution of history + block (``"conv"``
through torch's ``conv1d``, or ``"gemm"``, one matmul and a strided
diagonal sum, see :func:`plan_direct`); uniformly partitioned overlap-save
FFT convolution (``"fft"``: the first ``P`` taps direct, the rest from a
frequency-domain delay line, zero added latency at any block size); or one
FFT of history + block per channel (``"block"``).  :func:`plan_conv`
chooses from a cost estimate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import fft as sp_fft

from ..layers import MimoConv1d
from .base import Cell, Context, register_cell
from .history import History

__all__ = ["plan_conv", "plan_direct"]


class _DirectConv(Cell):
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
        self.hist = History(batch, Fi, self.span, weight_ir.dtype) if self.span else None

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

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


class _FFTConv(Cell):
    """Partitioned convolution: head taps ``[0, P)`` direct, the rest by FFT.

    The frequency-domain delay line is NumPy/``scipy.fft`` (per-call cost of
    a few microseconds, where torch's is tens on these small transforms).
    Each new segment spectrum is written twice, at slots ``p`` and ``p + J``
    of a ``2J`` ring, so the last ``J`` spectra are always the contiguous
    window ``[p+1, p+J]``, oldest first: no per-segment reordering.
    """

    kind = "fft"

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

    def children(self) -> list[Cell]:
        return [self.head]

    def buffers(self) -> list[np.ndarray]:
        return [self.S, self.seg, self.tail_out] + self.head.buffers()

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


class _BlockFFTConv(Cell):
    """Whole-block overlap-save: one FFT of ``history + block`` per channel.

    The kernel's full spectrum is kept per transform length (lengths follow
    the block sizes seen; a few are cached).  No added latency, and for
    blocks of a few hundred frames or more it beats both direct convolution
    and partitioned FFT on long kernels; on tiny blocks each sample pays for
    a whole transform, which is why :func:`plan_conv` weighs the block size.
    """

    _CACHE = 4
    kind = "block"

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
        self.hist = History(batch, Fi, span, weight_ir.dtype)

    def histories(self) -> list[History]:
        return [self.hist]

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


def _build_conv(module: MimoConv1d, ctx: Context) -> Cell | None:
    if ctx.rows:
        from .rows import RowConv  # frame-rate, time-major NumPy rows: one product over gathered taps

        return RowConv(module, ctx.batch, ctx.dtype) if module.padding == "causal" else None
    w = module.weight.detach().to(ctx.dtype)
    b = None if module.bias is None else module.bias.detach().to(ctx.dtype)
    part = ctx.partition
    if part is None:
        kind, P = plan_conv(module, ctx.block)
    elif part == "block":
        kind, P = ("block", 0) if module.span else ("direct", 0)
    else:
        kind, P = ("fft", part) if part < module.span + 1 else ("direct", 0)
    if kind == "block":
        cell: Cell = _BlockFFTConv(w, b, module.dilation, ctx.batch)
    elif kind == "fft":
        cell = _FFTConv(w, b, module.dilation, ctx.batch, P)
    else:
        how = plan_direct(module, ctx.block, ctx.batch) if ctx.direct == "auto" else ctx.direct
        cell = _DirectConv(w, b, module.dilation, ctx.batch, how)
    return ctx.masked(cell, module)


register_cell(MimoConv1d, _build_conv)
