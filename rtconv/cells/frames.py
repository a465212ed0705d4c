"""Cells of the frame-rate layers (:mod:`rtconv.framed`): framed layers, masks, pair powers, GRUs.

A framed layer's body runs one or two frames per 128-sample block, where
every torch call costs more than its arithmetic.  When every layer of the
body has a row-major form, the body works on time-major 2-D tensors
``(frames*batch, channels)``: a causal convolution is one addmm on its
taps gathered from a frame history (:class:`RowConv`), with no per-call
transposes or reshapes.  Otherwise the body runs in the engine's
``(batch, channels, time)`` cells.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..framed import (Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d,
                      deep_filter_frames, deep_filter_sum, low_bins, phase_advance, presence_scale)
from ..layers import MimoConv1d, latency
from .base import Cell, Context, _Sequence, register_cell
from .history import History

__all__ = ["RowConv"]


class RowConv(Cell):
    """A causal frame-rate convolution on time-major rows: one addmm over the gathered taps."""

    kind = "rows"

    def __init__(self, layer: MimoConv1d, batch: int, dtype: torch.dtype) -> None:
        w = layer.weight.detach().to(dtype)  # (G, F, K), impulse-response order
        G, Fi, K = w.shape
        self.K, self.d, self.span, self.Fi = K, layer.dilation, layer.span, Fi
        # (K*F, G): rows k*F .. k*F+F-1 hold tap k (k frames*d back)
        self.wt = w.permute(2, 1, 0).reshape(K * Fi, G).contiguous()
        self.b = torch.zeros(G, dtype=dtype) if layer.bias is None else layer.bias.detach().to(dtype)
        self.hist = History(batch, Fi, self.span, dtype, time_first=True) if self.span else None
        self.B = batch

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if self.hist is None:
            return torch.addmm(self.b, x, self.wt)
        end = self.hist.push_rows(x)
        buf, d, m = self.hist.tbuf, self.d, x.shape[0] // self.B
        taps = torch.cat([buf[end - m - k * d : end - k * d] for k in range(self.K)], dim=-1)
        return torch.addmm(self.b, taps.view(x.shape[0], -1), self.wt)


class _PairPower(Cell):
    """``scale * log(a^2 + b^2 + eps) + shift`` over channel pairs, in either layout (channels on axis 1),
    and the phase advances of the first ``phase_bins`` bins over the last frame, carried across blocks."""

    kind = "pointwise"

    def __init__(self, module: PairPower, rows: bool, batch: int, dtype: torch.dtype) -> None:
        self.m, self.rows, self.B = module, rows, batch
        self.P = module.phase_bins
        self.hist = History(batch, 2 * self.P, 1, dtype, time_first=rows) if self.P else None

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def process(self, z: torch.Tensor) -> torch.Tensor:
        if self.rows:
            R, C = z.shape
            p = z.square().view(R, 2, C // 2).sum(1)
        else:
            B, C, M = z.shape
            p = z.square().view(B, 2, C // 2, M).sum(1)
        p = p.add_(self.m.eps).log_().mul_(self.m.scale)
        if self.m.shift:
            p = p.add_(self.m.shift)
        if not self.P:
            return p
        P = self.P
        if self.rows:
            x = z.view(R, 2, C // 2)[:, :, 1 : 1 + P].reshape(R, 2 * P)
            m = R // self.B
            end = self.hist.push_rows(x)
            prev = self.hist.tbuf[end - m - 1 : end - 1].reshape(R, 2, P)
            return torch.cat([p, phase_advance(x.view(R, 2, P), prev, self.m.eps).reshape(R, 2 * P)], 1)
        x = low_bins(z, P)
        h = self.hist.push(x)  # (B, 2P, 1 + M)
        u = phase_advance(x.view(B, 2, P, M), h[..., :M].reshape(B, 2, P, M), self.m.eps)
        return torch.cat([p, u.reshape(B, 2 * P, M)], 1)


class _GRU(Cell):
    """A :class:`FrameGRU` with its hidden state carried across blocks.

    Row-major: input ``(m*B, C)`` time-major rows, output ``(m*B, H)``;
    otherwise ``(B, C, m) -> (B, H, m)``.
    """

    kind = "recurrent"

    def __init__(self, module: FrameGRU, batch: int, dtype: torch.dtype, rows: bool) -> None:
        self.gru = copy.deepcopy(module.gru).to(dtype)
        self.gru.batch_first = not rows
        self.gru.requires_grad_(False)
        self.rows, self.B, self.H = rows, batch, module.hidden
        self.h = torch.zeros(1, batch, module.hidden, dtype=dtype)

    def reset(self) -> None:
        self.h.zero_()

    def buffers(self):
        return [self.h]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if self.rows:
            m = x.shape[0] // self.B
            if m == 0:
                return x.new_zeros(0, self.H)
            y, self.h = self.gru(x.view(m, self.B, -1), self.h)
            return y.reshape(m * self.B, self.H)
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.H, 0)
        y, self.h = self.gru(x.transpose(1, 2), self.h)
        return y.transpose(1, 2)


class _MaskGate(Cell):
    """``z * gain(estimator(z))`` (plus the deep filter's sum over past frames, when the gate has one),
    the floor and the linked switch read live on every block."""

    kind = "gate"

    def __init__(self, module: MaskGate, estimator: Cell, rows: bool, batch: int, dtype: torch.dtype,
                 presence: Cell | None = None) -> None:
        self.m, self.est, self.rows, self.B = module, estimator, rows, batch
        self.pres, self.pf = presence, module.presence_floor
        self.df = module.deep_filter
        # the filtered bins' past frames (real parts, then imaginary), as many as the filter reaches back
        self.hist = None if self.df is None else History(batch, 2 * self.df[0], module.filter_span, dtype,
                                                         time_first=rows)

    def children(self) -> list[Cell]:
        return [self.est] if self.pres is None else [self.est, self.pres]

    def histories(self) -> list[History]:
        return [] if self.hist is None else [self.hist]

    def _presence(self, g: torch.Tensor) -> torch.Tensor:
        """The presence head's scale for gains ``g`` (rows ``(R, K)`` or columns ``(B, K, M)``)."""
        return presence_scale(self.pres.process(g.contiguous()), self.pf, *self.m.presence_range)

    def process(self, z: torch.Tensor) -> torch.Tensor:
        e = self.est.process(z)
        f = self.m._floor  # read live: the strength control may change mid-stream
        B = self.B
        if self.m.linked and B > 1:  # one gain (and filter) for every channel of the stream
            if self.rows:  # rows are frame-major, channel-minor: (m*B, E)
                E = e.shape[-1]
                e = e.view(-1, B, E).mean(1, keepdim=True).expand(-1, B, E).reshape(-1, E)
            else:
                e = e.mean(0, keepdim=True).expand_as(e)
        if not self.m.pairs:
            return z * (e.mul(1.0 - f).add_(f) if f else e)
        C = z.shape[1]
        K = C // 2
        g = e[:, :K]
        pg = None if self.pres is None else self._presence(g)  # (R, 1) or (B, 1, M)
        if pg is not None:
            g = g * pg
        if f:
            g = g.mul(1.0 - f).add_(f)
        if self.rows:  # (R, 2K) * (R, 1, K)
            R = z.shape[0]
            y = (z.view(R, 2, K) * g.unsqueeze(1)).view(R, C)
            if self.df is None:
                return y
            bins, order, d = self.df
            m = R // B
            end = self.hist.push_rows(z.view(R, 2, K)[:, :, 1 : 1 + bins].reshape(R, 2 * bins))
            buf = self.hist.tbuf  # (time, B, 2*bins)
            taps = torch.stack([buf[end - m - n * d : end - n * d] for n in range(order)], 2)  # (m, B, order, 2*bins)
            v = deep_filter_sum(taps.reshape(R, order, 2, bins), e[:, K:].reshape(R, order, 2, bins))
            if pg is not None:
                v.mul_(pg.view(R, 1, 1))
            y.view(R, 2, K)[:, :, 1 : 1 + bins].add_(v.mul_(1.0 - f) if f else v)
            return y
        B, C, M = z.shape
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
    """A row-major body inside a ``(batch, channels, time)`` one: transposes in and out."""

    def __init__(self, inner: Cell) -> None:
        self.inner = inner

    def children(self) -> list[Cell]:
        return [self.inner]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        B, C, M = x.shape  # (B, C, M) <-> time-major (M*B, C)
        y = self.inner.process(x.permute(2, 0, 1).reshape(M * B, C))
        return y.view(M, B, -1).permute(1, 2, 0)


class _FramedCell(Cell):
    """Encoder frames as they complete, body on them, overlap-add into an output buffer."""

    def __init__(self, module: Framed, batch: int, dtype: torch.dtype, inner: Cell, rows: bool) -> None:
        enc, dec = module.encoder, module.decoder
        self.H, self.We, self.Fin, self.B = enc.stride, enc.taps, enc.in_features, batch
        w = enc.weight.detach().to(dtype)  # (N, F, We)
        self.w_enc = w.flip(-1).contiguous()  # correlation order for conv1d
        # the same as (F*We, N) for addmm on time-ordered windows
        self.w_mm = self.w_enc.reshape(w.shape[0], -1).t().contiguous()
        self.b_enc = None if enc.bias is None else enc.bias.detach().to(dtype)
        self.b_mm = torch.zeros(w.shape[0], dtype=dtype) if self.b_enc is None else self.b_enc
        wd = dec.weight.detach().to(dtype)  # (G, N, Wd)
        self.w_dec = wd.flip(-1).transpose(0, 1).contiguous()  # for conv_transpose1d
        self.G, self.Wd = wd.shape[0], wd.shape[-1]
        # (N, G*Wd) in window order: one mm gives every frame's synthesis window
        self.w_dmm = self.w_dec.reshape(wd.shape[1], -1).contiguous()
        self.r = self.Wd // self.H if self.Wd % self.H == 0 else 0
        self.L = dec.taps - 1
        self.inner = inner
        self.rowmajor = rows
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
        H, B = self.H, self.B
        x = x[..., s0 : s0 + (m - 1) * H + self.We]
        if not self.rowmajor:
            z = self.inner.process(F.conv1d(x, self.w_enc, self.b_enc, stride=H))
            v = F.conv_transpose1d(z, self.w_dec, stride=H)
            acc[..., s0 : s0 + v.shape[-1]].add_(v)
            return
        win = x.unfold(-1, self.We, H)  # (B, F, m, We), a view
        win = win[0, 0] if B == 1 and self.Fin == 1 else win.permute(2, 0, 1, 3).reshape(m * B, -1)
        z = self.inner.process(torch.addmm(self.b_mm, win, self.w_mm))  # (m*B, N), time-major
        if not self.r:  # synthesis window not a whole number of hops: the generic way
            v = F.conv_transpose1d(z.view(m, B, -1).permute(1, 2, 0), self.w_dec, stride=H)
            acc[..., s0 : s0 + v.shape[-1]].add_(v)
            return
        v = torch.mm(z, self.w_dmm).view(m, B, self.G, self.r, H)
        hops = acc[..., s0 : s0 + (m + self.r - 1) * H].unflatten(-1, (m + self.r - 1, H))  # (B, G, ., H)
        for i in range(self.r):  # hop i of every frame's window lands i hops later
            hops[:, :, i : i + m].add_(v[:, :, :, i].permute(1, 2, 0, 3))

    def process(self, x: torch.Tensor) -> torch.Tensor:
        n, t0, H, L = x.shape[-1], self.t, self.H, self.L
        if n > self.room:
            self._alloc(max(n, 2 * self.room))
        elif self.pos + n > self.room:  # full: move the pending tail to the front (amortised)
            tail = self.buf[..., self.pos : self.pos + L]
            self.buf[..., :L].copy_(tail.clone() if self.pos < L else tail)
            self.buf[..., L:].zero_()
            self.pos = 0
        buf = self.hist.push(x)  # index i is absolute sample t0 - (We-1) + i
        before = t0 // H
        m = (t0 + n) // H - before
        acc = self.buf[..., self.pos :]  # index i is output position t0 - L + i
        if m:
            # the first new frame's window starts at index s0 of both buffers
            self._overlap_add(buf, acc, (before + 1) * H - t0 - 1, m)
        out = acc[..., :n].clone()  # a fresh tensor: callers may keep or modify it
        self.pos += n
        if t0 < L:  # output positions before the signal's start
            out[..., : min(n, L - t0)] = 0
        self.t = t0 + n
        return out


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
    return _MaskGate(module, est, ctx.rows, ctx.batch, ctx.dtype, pres)


def _refuse_alone(module, ctx: Context) -> Cell:
    raise ConfigError(
        f"a {type(module).__name__} changes the rate between samples and frames, so it streams "
        "only inside a Framed(encoder, body, decoder) layer."
    )


register_cell(Framed, _build_framed)
register_cell(FrameNet, _build_framenet)
register_cell(StridedConv1d, _refuse_alone)
register_cell(TransposedConv1d, _refuse_alone)
register_cell(PairPower, lambda module, ctx: _PairPower(module, ctx.rows, ctx.batch, ctx.dtype))
register_cell(MaskGate, _build_gate)
register_cell(FrameGRU, lambda module, ctx: _GRU(module, ctx.batch, ctx.dtype, ctx.rows))
