"""Step nodes of the frame-rate layers (:mod:`rtconv.framed`): framed layers, pair powers, mask gates, GRUs.

A :class:`~rtconv.framed.Framed` layer's node cuts the encoder frames due in
the block, runs its body at the frame rate on them and overlap-adds the
decoder's windows; the body's layers are built with ``ctx.frames`` set (no
masks, no delays: it must be causal).  The layers that change the rate
(:class:`StridedConv1d`, :class:`TransposedConv1d`) have no node of their
own, and the frame-rate layers none at the sample rate.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..framed import (Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d,
                      deep_filter_frames, low_bins, phase_advance, place_low_bins, presence_scale)
from ..layers import latency
from .nodes import Node, StepContext, _Seq, _take, _zero_before, register_step

__all__: list[str] = []


class _PairPower(Node):
    def __init__(self, m: PairPower, batch: int, name: str) -> None:
        super().__init__()
        self.scale, self.shift, self.eps, self.P = m.scale, m.shift, m.eps, m.phase_bins
        self.name, self.shape = f"{name}.previous", (batch, 2 * m.phase_bins, 1)  # the phase bins' last frame

    def specs(self):
        return [(self.name, self.shape)] if self.P else []

    def forward(self, z, flow, valid):
        B, C, M = z.shape
        p = z.square().reshape(B, 2, C // 2, M).sum(1)
        p = torch.log(p + self.eps) * self.scale + self.shift
        if not self.P:
            return p
        x = low_bins(z, self.P)
        h = torch.cat([flow.states[self.name], x], dim=-1)
        flow.out[self.name] = _take(h, valid, 1)  # the frame before the first unused one
        u = phase_advance(x.reshape(B, 2, self.P, M), h[..., :M].reshape(B, 2, self.P, M), self.eps)
        return torch.cat([p, u.reshape(B, 2 * self.P, M)], 1)


class _MaskGate(Node):
    def __init__(self, m: MaskGate, estimator: Node, control: str | None, batch: int, name: str,
                 presence: Node | None = None) -> None:
        super().__init__()
        self.est, self.pairs, self.floor = estimator, m.pairs, m.floor  # the floor at export time
        self.back = 1.0 / m.passthrough  # the floor's mix-back per unit of floor (its weights are baked too)
        self.pres, self.pf, self.prange = presence, m.presence_floor, m.presence_range
        self.linked = bool(getattr(m, "linked", False))  # as at export time
        self.control = control  # or an input of that name, read every block
        self.df, self.span = m.deep_filter, m.filter_span
        # the deep filter's past frames of the bins it filters (real parts, then imaginary)
        self.name = f"{name}.filter"
        self.shape = None if self.df is None else (batch, 2 * self.df[0], self.span)

    def specs(self):
        own = [(self.name, self.shape)] if self.df is not None and self.span else []
        return self.est.specs() + (self.pres.specs() if self.pres is not None else []) + own

    def forward(self, z, flow, valid):
        e = self.est(z, flow, valid)
        if self.control is not None:
            f = flow.controls[self.control]
        else:
            f = self.floor
        if self.linked and z.shape[0] > 1:
            e = e.mean(0, keepdim=True).expand_as(e)
        if not self.pairs:
            return z * (e * (1.0 - f) + f * self.back)
        B, C, M = z.shape
        K = C // 2
        g = e[:, :K]
        pg = None
        if self.pres is not None:
            pg = presence_scale(self.pres(g, flow, valid), self.pf, *self.prange)  # (B, 1, M)
            g = g * pg
        y = (z.reshape(B, 2, K, M) * (g * (1.0 - f) + f * self.back).unsqueeze(1)).reshape(B, C, M)
        if self.df is None:
            return y
        bins, order, d = self.df
        h = low_bins(z, bins)
        if self.span:
            h = torch.cat([flow.states[self.name], h], dim=-1)
            flow.out[self.name] = _take(h, valid, self.span)  # the span before the first unused frame
        v = deep_filter_frames(h, e[:, K:], order, d)
        if pg is not None:
            v = v * pg.unsqueeze(1)
        return y + place_low_bins(v * (1.0 - f), K)


class _GRU(Node):
    def __init__(self, m: FrameGRU, batch: int, name: str) -> None:
        super().__init__()
        self.gru = copy.deepcopy(m.gru).float().requires_grad_(False)
        self.gru.batch_first = True
        self.name, self.shape = f"{name}.hidden", (1, batch, m.hidden)

    def specs(self):
        return [(self.name, self.shape)]

    def forward(self, z, flow, valid):
        h0 = flow.states[self.name]
        h0 = torch.where(h0 == h0, h0, torch.zeros_like(h0)).clamp(-1.0, 1.0)  # a GRU state lies in [-1, 1]
        y, h = self.gru(z.transpose(1, 2), h0)  # (B, M, H)
        if isinstance(valid, int) and valid == y.shape[1]:
            flow.out[self.name] = h
        else:  # the state after the last frame that was due: step `valid` of [h0, y_0, y_1 ...]
            every = torch.cat([h0.transpose(0, 1), y], dim=1)
            i = torch.tensor([valid], dtype=torch.int64) if isinstance(valid, int) else valid.reshape(1)
            flow.out[self.name] = every.index_select(1, i).transpose(0, 1)
        return y.transpose(1, 2)


class _Framed(Node):
    """Encoder frames due in this block, the frame-rate body on them, overlap-add into the output."""

    def __init__(self, m: Framed, body: Node, n: int, batch: int, name: str, phase: bool = False) -> None:
        super().__init__()
        enc, dec = m.encoder, m.decoder
        self.H, self.We, self.Wd, self.n = enc.stride, enc.taps, dec.taps, n
        self.L = dec.taps - 1
        self.register_buffer("w_enc", enc.weight.detach().float().flip(-1).clone())
        self.register_buffer("b_enc", None if enc.bias is None else enc.bias.detach().float().clone())
        self.register_buffer("w_dec", dec.weight.detach().float().flip(-1).transpose(0, 1).contiguous())
        self.body = body
        self.static = n % self.H == 0 and not phase  # then every block completes n / H frames at the same offsets
        self.M = -(-n // self.H)  # frames computed per block (n / H when static)
        self.names = {k: f"{name}.{k}" for k in ("input", "overlap", "phase")}
        self.shapes = {"input": (batch, enc.in_features, self.We - 1), "overlap": (batch, dec.out_features, self.L),
                       "phase": (1,)}

    def specs(self):
        keys = ["input"] * (self.We > 1) + ["overlap"] * (self.L > 0) + ["phase"] * (not self.static)
        return [(self.names[k], self.shapes[k]) for k in keys] + self.body.specs()

    def forward(self, x, flow, valid):
        H, n, M, L = self.H, self.n, self.M, self.L
        if self.static:
            u0, m = H - 1, M  # the first frame due ends at offset H - 1
        else:
            phi = flow.states[self.names["phase"]]
            phi = torch.where(phi == phi, phi, torch.zeros_like(phi)).floor().clamp(0.0, H - 1.0)
            u0 = (H - 1 - phi).to(torch.int64)  # offset in this block where the first due frame ends
            due = torch.floor((phi + n) / H)  # frames completed in this block
            m = due.to(torch.int64)
            flow.out[self.names["phase"]] = phi + n - due * H
        if self.We > 1:  # index i of xx is the sample at offset i - (We-1)
            xx = torch.cat([flow.states[self.names["input"]], x], dim=-1)
            flow.out[self.names["input"]] = xx[..., n:]
        else:
            xx = x
        need = (M - 1) * H + self.We  # window of frame 0 starts at index u0
        if not self.static and xx.shape[-1] < (H - 1) + need:
            xx = F.pad(xx, (0, (H - 1) + need - xx.shape[-1]))  # frames not due read zeros; unused
        z = F.conv1d(_take(xx, u0, need), self.w_enc, self.b_enc, stride=H)  # (B, N, M)
        z = self.body(z, flow, m)
        if not self.static:  # frames not due add nothing
            due_mask = torch.arange(M, dtype=torch.int64) < m
            z = torch.where(due_mask, z, torch.zeros_like(z))
        v = F.conv_transpose1d(z, self.w_dec, stride=H)  # (B, G, (M-1)H + Wd); starts at index u0 below
        # buffer index i is offline output position t0 - L + i; first L hold the pending overlap
        if self.static:
            placed = F.pad(v, (u0, L + n - u0 - v.shape[-1]))
        else:
            v = F.pad(v, (H - 1, max(0, L + n - v.shape[-1])))
            placed = _take(v, (H - 1) - u0, L + n)
        buf = placed if L == 0 else F.pad(flow.states[self.names["overlap"]], (0, n)) + placed
        if L:
            flow.out[self.names["overlap"]] = buf[..., n:]
        out = buf[..., :n]
        return out if L == 0 else _zero_before(out, flow.t, L)  # positions before the signal's start


def _build_framed(module: Framed, ctx: StepContext) -> Node:
    if ctx.frames:  # one rate change per path: a framed layer's body is at the frame rate
        raise ctx.refuse(module)
    # the body sees frames from the first one on: no delay, nothing to mask
    body = ctx.replace(frames=True, mask=False, delay=0).build(module.body, "body")
    ctx.starts.append(latency(module))  # the decoder's first `latency` outputs are zeroed
    return _Framed(module, body, ctx.block, ctx.batch, ctx.path, ctx.phase)


def _frame_rate(build):
    """``build`` for a layer that exists only at the frame rate; refused at the sample rate."""

    def checked(module: nn.Module, ctx: StepContext) -> Node:
        if not ctx.frames:
            raise ctx.refuse(module)
        return build(module, ctx)

    return checked


def _build_gate(module: MaskGate, ctx: StepContext) -> Node:
    control = None
    if ctx.controls:
        control = f"{ctx.path}.floor"
        ctx.control_names.append(control)  # before the estimator's: inputs in the tree's order
    est = ctx.build(module.estimator, "estimator")
    pres = None if module.presence is None else ctx.build(module.presence, "presence")
    return _MaskGate(module, est, control, ctx.batch, ctx.path, pres)


def _refuse_alone(module: nn.Module, ctx: StepContext) -> Node:
    why = "" if ctx.frames else " outside a Framed(encoder, body, decoder) layer, where it changes the rate"
    raise ctx.refuse(module, why)


register_step(Framed, _build_framed)
register_step(FrameNet, lambda module, ctx: _Seq(ctx.sequence(module)))  # a Sequential at either rate
register_step(PairPower, _frame_rate(lambda module, ctx: _PairPower(module, ctx.batch, ctx.path)))
register_step(MaskGate, _frame_rate(_build_gate))
register_step(FrameGRU, _frame_rate(lambda module, ctx: _GRU(module, ctx.batch, ctx.path)))
register_step(StridedConv1d, _refuse_alone)
register_step(TransposedConv1d, _refuse_alone)
