"""Cells of the frame-rate layers (:mod:`rtconv.framed`): framed layers, masks, pair powers, GRUs.

A framed layer's body runs one or two frames per 128-sample block, where
every torch call costs more than its arithmetic.  When every layer of the
body has a row-major form, the body works on time-major NumPy arrays
``(frames*batch, channels)`` (:mod:`rtconv.cells.rows`), and the framed
cell's analysis and overlap-add run in NumPy around it.  Otherwise the
body runs in the engine's ``(batch, channels, time)`` torch cells, here.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..framed import (Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d,
                      deep_filter_frames, low_bins, phase_advance, presence_scale)
from ..layers import latency
from .base import Cell, Context, _Sequence, register_cell
from .history import History
from .rows import GateCell, RowBias, RowGRU, RowMaskGate, RowPairPower, row_product

__all__ = ["numpy_root"]


class _PairPower(Cell):
    """``scale * log(a^2 + b^2 + eps) + shift`` over channel pairs of ``(B, 2K, M)`` columns, and the
    phase advances of the first ``phase_bins`` bins over the last frame, carried across blocks
    (rows: :class:`rtconv.cells.rows.RowPairPower`)."""

    kind = "pointwise"

    def __init__(self, module: PairPower, batch: int, dtype: torch.dtype) -> None:
        self.m, self.B = module, batch
        self.P = module.phase_bins
        self.hist = History(batch, 2 * self.P, 1, dtype) if self.P else None

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def process(self, z: torch.Tensor) -> torch.Tensor:
        B, C, M = z.shape
        p = z.square().view(B, 2, C // 2, M).sum(1)
        p = p.add_(self.m.eps).log_().mul_(self.m.scale)
        if self.m.shift:
            p = p.add_(self.m.shift)
        if not self.P:
            return p
        P = self.P
        x = low_bins(z, P)
        h = self.hist.push(x)  # (B, 2P, 1 + M)
        u = phase_advance(x.view(B, 2, P, M), h[..., :M].reshape(B, 2, P, M), self.m.eps)
        return torch.cat([p, u.reshape(B, 2 * P, M)], 1)


class _GRU(Cell):
    """A :class:`FrameGRU` on ``(B, C, m)`` columns with its hidden state carried across blocks
    (rows: :class:`rtconv.cells.rows.RowGRU`)."""

    kind = "recurrent"

    def __init__(self, module: FrameGRU, batch: int, dtype: torch.dtype) -> None:
        self.gru = copy.deepcopy(module.gru).to(dtype)
        self.gru.batch_first = True
        self.gru.requires_grad_(False)
        self.B, self.H = batch, module.hidden
        self.h = torch.zeros(1, batch, module.hidden, dtype=dtype)

    def reset(self) -> None:
        self.h.zero_()

    def buffers(self):
        return [self.h]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.H, 0)
        y, self.h = self.gru(x.transpose(1, 2), self.h)
        return y.transpose(1, 2)


class _MaskGate(GateCell):
    """``z * gain(estimator(z))`` on ``(B, C, M)`` columns (plus the deep filter's sum over past frames,
    when the gate has one; its history holds real parts, then imaginary), the floor and the linked
    switch read live on every block (rows: :class:`rtconv.cells.rows.RowMaskGate`)."""

    def __init__(self, module: MaskGate, estimator: Cell, batch: int, dtype: torch.dtype,
                 presence: Cell | None = None) -> None:
        super().__init__(module, estimator, batch, dtype, presence, time_first=False)

    def process(self, z: torch.Tensor) -> torch.Tensor:
        e = self.est.process(z)
        f, b = self.m._fm  # read live: the strength control may change mid-stream (b: its mix-back, f / P)
        if self.m.linked and self.B > 1:  # one gain (and filter) for every channel of the stream
            e = e.mean(0, keepdim=True).expand_as(e)
        if not self.m.pairs:
            return z * (e.mul(1.0 - f).add_(b) if f else e)
        B, C, M = z.shape
        K = C // 2
        g = e[:, :K]
        pg = None if self.pres is None else presence_scale(self.pres.process(g.contiguous()), self.pf,
                                                           *self.m.presence_range)  # (B, 1, M)
        if pg is not None:
            g = g * pg
        if f:
            g = g.mul(1.0 - f).add_(b)
        y = (z.view(B, 2, K, M) * g.unsqueeze(1)).view(B, C, M)
        if self.df is None:
            return y
        bins, order, d = self.df
        v = deep_filter_frames(self.hist.push(low_bins(z, bins)), e[:, K:], order, d)
        if pg is not None:
            v.mul_(pg.unsqueeze(1))
        y.view(B, 2, K, M)[:, :, 1 : 1 + bins].add_(v.mul_(1.0 - f) if f else v)
        return y


class _RowsInColumns(Cell):
    """A row-major NumPy body inside a ``(batch, channels, time)`` torch one: transposes in and out."""

    def __init__(self, inner: Cell) -> None:
        self.inner = inner

    def children(self) -> list[Cell]:
        return [self.inner]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        B, C, M = x.shape  # (B, C, M) <-> time-major (M*B, C)
        y = self.inner.process(np.ascontiguousarray(x.numpy().transpose(2, 0, 1)).reshape(M * B, C))
        return torch.from_numpy(np.ascontiguousarray(y.reshape(M, B, -1).transpose(1, 2, 0)))


class _FramedCell(Cell):
    """Encoder frames as they complete, body on them, overlap-add into an output buffer."""

    def __init__(self, module: Framed, batch: int, dtype: torch.dtype, inner: Cell, rows: bool) -> None:
        enc, dec = module.encoder, module.decoder
        self.H, self.We, self.B = enc.stride, enc.taps, batch
        w = enc.weight.detach().to(dtype)  # (N, F, We)
        self.w_enc = w.flip(-1).contiguous()  # correlation order for conv1d
        # the same as (F*We, N) for one NumPy product on time-ordered windows (rows)
        self.w_mm = self.w_enc.reshape(w.shape[0], -1).t().contiguous().numpy().copy()
        self.b_enc = None if enc.bias is None else enc.bias.detach().to(dtype)
        self.b_mm = RowBias(np.zeros(w.shape[0], self.w_mm.dtype) if self.b_enc is None else self.b_enc.numpy().copy())
        wd = dec.weight.detach().to(dtype)  # (G, N, Wd)
        self.w_dec = wd.flip(-1).transpose(0, 1).contiguous()  # for conv_transpose1d
        self.G, self.Wd = wd.shape[0], wd.shape[-1]
        # (N, G*Wd) in window order: one product gives every frame's synthesis window
        self.w_dmm = self.w_dec.reshape(wd.shape[1], -1).numpy().copy()
        self.r = self.Wd // self.H if self.Wd % self.H == 0 else 0
        self.L = dec.taps - 1
        self.inner = inner
        self.rowmajor = rows
        self._window_index: dict[int, np.ndarray] = {}
        self.kind = "framed:rows" if rows else "framed:columns"
        # We-1 past input samples, so a frame can straddle blocks
        self.hist = History(batch, enc.in_features, self.We - 1, dtype)
        self.shape = (batch, dec.out_features)
        self.dtype = dtype
        self.buf = None
        self._alloc(max(4096, 2 * self.L))
        self.t = 0

    def _alloc(self, room: int) -> None:
        # output as a linear buffer: [pos, pos+L) holds the pending
        # overlap-add tail, everything after it is zero
        new = torch.zeros(*self.shape, self.L + room, dtype=self.dtype)
        if self.buf is not None:
            new[..., : self.L].copy_(self.buf[..., self.pos : self.pos + self.L])
        self.buf, self.room, self.pos = new, room, 0
        self.buf_np = new.numpy()  # the same memory, for the row-major overlap-add

    def histories(self) -> list[History]:
        return [self.hist]

    def children(self) -> list[Cell]:
        return [self.inner]

    def buffers(self):
        return super().buffers() + [self.buf]

    def end(self, t: int) -> None:
        pass  # the body runs at the frame rate: its cells have no sample-rate masks

    def reset(self) -> None:
        super().reset()
        self.buf.zero_()
        self.pos = 0
        self.t = 0

    def _overlap_add(self, x: torch.Tensor, acc: torch.Tensor, s0: int, m: int) -> None:
        """Columns: the body's torch cells between a strided conv1d and a transposed one."""
        H = self.H
        x = x[..., s0 : s0 + (m - 1) * H + self.We]
        z = self.inner.process(F.conv1d(x, self.w_enc, self.b_enc, stride=H))
        v = F.conv_transpose1d(z, self.w_dec, stride=H)
        acc[..., s0 : s0 + v.shape[-1]].add_(v)

    def _windows(self, m: int) -> np.ndarray:
        """``(m, We)``: sample offsets of ``m`` consecutive analysis windows (made once per frame count)."""
        w = self._window_index.get(m)
        if w is None:
            if len(self._window_index) >= 16:
                self._window_index.clear()
            w = self._window_index[m] = np.arange(m)[:, None] * self.H + np.arange(self.We)
        return w

    def _overlap_add_rows(self, x: np.ndarray, acc: np.ndarray, s0: int, m: int) -> None:
        """Rows: the ``m`` windows as time-major rows, one product in, the NumPy body, one product out."""
        H, B, We = self.H, self.B, self.We
        if m == 1:  # (B, F*We): a live block's usual one frame
            win = x[..., s0 : s0 + We].reshape(B, -1)
        else:  # every window in one gather: (B, F, m, We) -> (m*B, F*We)
            win = x[..., self._windows(m) + s0].transpose(2, 0, 1, 3).reshape(m * B, -1)
        z = self.b_mm.add(row_product(win, self.w_mm))
        z = self.inner.process(z)  # (m*B, N), time-major
        if not self.r:  # synthesis window not a whole number of hops: the generic way
            cols = torch.from_numpy(np.ascontiguousarray(z.reshape(m, B, -1).transpose(1, 2, 0)))
            v = F.conv_transpose1d(cols, self.w_dec, stride=H).numpy()
            acc[..., s0 : s0 + v.shape[-1]] += v
            return
        v = row_product(z, self.w_dmm).reshape(m, B, self.G, self.r, H)
        for i in range(self.r):  # hop i of every frame's window lands i hops later
            acc[..., s0 + i * H : s0 + (i + m) * H] += v[:, :, :, i].transpose(1, 2, 0, 3).reshape(B, self.G, m * H)

    def _advance(self, n: int) -> None:
        """Make room for ``n`` more output samples after ``pos``."""
        if n > self.room:
            self._alloc(max(n, 2 * self.room))
        elif self.pos + n > self.room:  # full: move the pending tail to the front (amortised)
            # in NumPy on the same memory: a live stream calls torch nowhere else per block, and this one
            # torch call every 4096 samples, cold, took 95 us of a 2.7 ms block (a 128-sample block's p99)
            L = self.L
            tail = self.buf_np[..., self.pos : self.pos + L]
            self.buf_np[..., :L] = tail.copy() if self.pos < L else tail
            self.buf_np[..., L:] = 0
            self.pos = 0

    def process_np(self, x: np.ndarray) -> np.ndarray:
        """Row-major layers only: :meth:`process` on NumPy ``(B, F, n)``, with no torch call at all; the
        result is a view of the output buffer, valid until the next call (copy it).

        A stream whose whole model is this layer (the denoiser, the VAD) runs through here: the four
        torch conversions of a block cost 3-4 us in a hot loop but 25-50 us when a block finds the CPU's
        caches cold (``torch.from_numpy`` 16.5 us, ``.numpy()`` 8.3 us after another program ran), as a
        live callback does between its periods.
        """
        return self._step(x)

    def process(self, x: torch.Tensor) -> torch.Tensor:
        # a fresh tensor: callers may keep or modify it
        return torch.from_numpy(self._step(x.numpy() if self.rowmajor else x).copy())

    def _step(self, x) -> np.ndarray:
        """One block, NumPy for row-major layers and torch for column ones: a view of the next output."""
        n, t0, H, L = x.shape[-1], self.t, self.H, self.L
        self._advance(n)
        before = t0 // H
        m = (t0 + n) // H - before
        # index i of the history is absolute sample t0 - (We-1) + i; of acc, output position t0 - L + i;
        # the first new frame's window starts at index s0 of both
        s0 = (before + 1) * H - t0 - 1
        if self.rowmajor:
            buf = self.hist.push_np(x)
            if m:
                self._overlap_add_rows(buf, self.buf_np[..., self.pos :], s0, m)
        else:
            buf = self.hist.push(x)
            if m:
                self._overlap_add(buf, self.buf[..., self.pos :], s0, m)
        out = self.buf_np[..., self.pos : self.pos + n]
        if t0 < L:  # output positions before the signal's start (never read again: pos moves past)
            out[..., : min(n, L - t0)] = 0
        self.pos += n
        self.t = t0 + n
        return out


def numpy_root(cell: Cell) -> _FramedCell | None:
    """The row-major framed cell a compiled model consists of (alone, or alone in a sequence), which a
    stream can run on NumPy arrays from end to end (:meth:`_FramedCell.process_np`); else None."""
    if type(cell) is _Sequence and len(cell.cells) == 1:
        cell = cell.cells[0]
    return cell if isinstance(cell, _FramedCell) and cell.rowmajor else None


def _build_framed(module: Framed, ctx: Context) -> Cell | None:
    if ctx.rows:
        return None  # a framed layer inside a frame-rate body runs in columns
    frames = latency(module.body)
    if frames:
        raise ConfigError(
            f"the frame-rate body of a Framed layer must be causal, but it has {frames} "
            "frames of latency; use padding='causal' inside it."
        )
    # the body sees frames from the first one on: no delay, nothing to mask
    body = ctx.replace(delay=0, mask=False, path=f"{ctx.path}.body")
    inner = body.attempt_rows(module.body) if isinstance(module.body, (FrameNet, MaskGate)) else None
    rows = inner is not None
    if not rows:
        inner = body.compile(module.body)
    return _FramedCell(module, ctx.batch, ctx.dtype, inner, rows)


def _build_framenet(module: FrameNet, ctx: Context) -> Cell | None:
    if ctx.rows:
        return _build_sequence(module, ctx)
    cell = ctx.attempt_rows(module)
    if cell is None:  # something without a row-major form: the engine's cells
        return _build_sequence(module, ctx)
    return _RowsInColumns(cell)


def _build_sequence(module: FrameNet, ctx: Context) -> Cell | None:
    cells = ctx.sequence(module)
    return None if cells is None else _Sequence(cells)


def _build_gate(module: MaskGate, ctx: Context) -> Cell | None:
    est = ctx.build(module.estimator, "estimator")
    if est is None:
        return None
    pres = None
    if module.presence is not None:
        pres = ctx.build(module.presence, "presence")
        if pres is None:
            return None
    return (RowMaskGate if ctx.rows else _MaskGate)(module, est, ctx.batch, ctx.dtype, pres)


def _refuse_alone(module, ctx: Context) -> Cell:
    raise ConfigError(
        f"a {type(module).__name__} changes the rate between samples and frames, so it streams "
        "only inside a Framed(encoder, body, decoder) layer."
    )


register_cell(Framed, _build_framed)
register_cell(FrameNet, _build_framenet)
register_cell(StridedConv1d, _refuse_alone)
register_cell(TransposedConv1d, _refuse_alone)
register_cell(PairPower, lambda module, ctx: (RowPairPower if ctx.rows else _PairPower)(module, ctx.batch, ctx.dtype))
register_cell(MaskGate, _build_gate)
register_cell(FrameGRU, lambda module, ctx: (RowGRU if ctx.rows else _GRU)(module, ctx.batch, ctx.dtype))
