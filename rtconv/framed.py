"""Frame-rate building blocks: a strided encoder, an overlap-add decoder, masks.

A learned filterbank front end cuts the sample stream into frames every
``stride`` samples, a frame-rate network works on those frames, and an
overlap-add decoder turns them back into samples.  Three modules make that
streamable by :class:`rtconv.Streamer` at **any** block size (1, 3, 7, 128,
4096 ... samples, not only multiples of the stride):

:class:`StridedConv1d`
    Analysis: frame ``j`` is ``Z[j] = sum_k W_k^T x[(j+1)*stride - 1 - k]``,
    i.e. it is computed as soon as sample ``(j+1)*stride - 1`` has arrived
    (causal, no lookahead).  Kernels are in impulse-response order like every
    rtconv layer: tap 0 acts on the newest sample of the window.
:class:`TransposedConv1d`
    Synthesis: frame ``j`` adds ``sum_c W[:, c, k] Z[c, j]`` to output sample
    ``(j+1)*stride - 1 - k`` (overlap-add).  A sample is final once every
    frame overlapping it has arrived, so streaming it costs ``taps - 1``
    samples of latency (the synthesis window length, independent of the
    block size).
:class:`Framed`
    ``encoder -> body -> decoder`` as one sample-rate layer.  Its offline
    ``forward`` pads the input with ``latency`` zeros on the right and
    returns the aligned, same-length output; its streaming cell emits the
    same samples ``latency`` samples later, and :meth:`Streamer.flush`
    (which feeds exactly those zeros) completes it.  The body runs at the
    frame rate and must be causal there (any :mod:`rtconv.layers` stack of
    causal convolutions, activations, residuals, and the modules below).
:class:`PairPower`, :class:`MaskGate`
    Mask composition for a filterbank whose channels come in pairs
    ``(a_k, b_k)`` (cosine/sine-like): ``PairPower`` gives compressed pair
    energies ``scale * log(a_k^2 + b_k^2 + eps)`` as features, ``MaskGate``
    multiplies both members of each pair by a gain in ``[floor, 1]`` from an
    estimator network.  ``floor`` is the strength control: it limits the
    attenuation and can be changed at any time, also while streaming.
:class:`FrameGRU`
    A gated recurrent unit over frames: memory without a horizon (a noise
    floor tracked over seconds) at the cost of one small matrix product per
    frame.  Streamed, its hidden state is carried from block to block, so
    the output is the offline output at any block size.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .layers import Activation, ConvLayer, MimoConv1d, Residual, _check_int
from .streaming import _Cell, _History, _Sequence, register_cell

__all__ = ["StridedConv1d", "TransposedConv1d", "Framed", "FrameNet", "PairPower", "MaskGate", "FrameGRU"]


class StridedConv1d(ConvLayer):
    """Causal strided convolution (analysis filterbank): samples in, frames out.

    Parameters
    ----------
    in_features, out_features : int
        Input channels (usually 1) and filterbank channels.
    taps : int
        Analysis window length in samples.
    stride : int
        Hop between frames in samples; output has ``floor(T / stride)`` frames
        for ``T`` input samples.
    bias : bool
        Add one learnable offset per output channel.
    """

    padding = "causal"

    def __init__(self, in_features: int, out_features: int, taps: int, stride: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.out_features = _check_int("out_features", out_features, 1)
        self.taps = _check_int("taps", taps, 1)
        self.stride = _check_int("stride", stride, 1)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, taps))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.uniform_(self.weight, -1 / math.sqrt(in_features * taps), 1 / math.sqrt(in_features * taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # frame j's window ends at sample (j+1)*stride - 1; F.pad crops when taps < stride
        if x.shape[-1] < self.stride:  # not one complete frame yet
            return x.new_zeros(x.shape[0], self.out_features, 0)
        x = F.pad(x, (self.taps - self.stride, 0))
        return F.conv1d(x, self.weight.flip(-1), self.bias, stride=self.stride)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, taps={self.taps}, stride={self.stride}"


class TransposedConv1d(ConvLayer):
    """Overlap-add transposed convolution (synthesis filterbank): frames in, samples out.

    Parameters
    ----------
    in_features, out_features : int
        Filterbank channels and output channels (usually 1).
    taps : int
        Synthesis window length in samples; streaming latency is ``taps - 1``.
    stride : int
        Hop between frames in samples (the encoder's stride).
    """

    padding = "causal"

    def __init__(self, in_features: int, out_features: int, taps: int, stride: int) -> None:
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.out_features = _check_int("out_features", out_features, 1)
        self.taps = _check_int("taps", taps, 1)
        self.stride = _check_int("stride", stride, 1)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, taps))
        nn.init.uniform_(self.weight, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))
        self.bias = None

    @property
    def latency(self) -> int:
        """Samples until every frame overlapping an output sample has arrived."""
        return self.taps - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, in, M)`` frames to ``(B, out, M*stride)`` samples (positions before 0 dropped)."""
        y = F.conv_transpose1d(z, self.weight.flip(-1).transpose(0, 1), stride=self.stride)
        # the first frame's window starts at sample stride - taps
        return F.pad(y, (self.stride - self.taps, 0))[..., : z.shape[-1] * self.stride]

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, taps={self.taps}, stride={self.stride}"


class Framed(nn.Module):
    """``encoder -> body -> decoder``: a sample-rate layer with a frame-rate inside.

    The offline output is aligned with the input (same length, no delay);
    streamed, it lags by :attr:`latency` = ``decoder.taps - 1`` samples.
    """

    def __init__(self, encoder: StridedConv1d, body: nn.Module, decoder: TransposedConv1d) -> None:
        super().__init__()
        if not isinstance(encoder, StridedConv1d) or not isinstance(decoder, TransposedConv1d):
            raise ConfigError(
                f"Framed needs a StridedConv1d encoder and a TransposedConv1d decoder, got "
                f"{type(encoder).__name__} and {type(decoder).__name__}."
            )
        if encoder.stride != decoder.stride:
            raise ConfigError(
                f"encoder stride {encoder.stride!r} and decoder stride {decoder.stride!r} differ; "
                "the decoder must overlap-add at the encoder's hop."
            )
        self.encoder, self.body, self.decoder = encoder, body, decoder

    @property
    def latency(self) -> int:
        return self.decoder.latency

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-1]
        # the zeros Streamer.flush feeds: they complete the frames overlapping the end
        z = self.encoder(F.pad(x, (0, self.latency)))
        if z.shape[-1] == 0:  # shorter than one hop: the stream emits only zeros too
            return x.new_zeros(x.shape[0], self.decoder.out_features, T)
        y = self.decoder(self.body(z))
        return F.pad(y, (0, max(0, T - y.shape[-1])))[..., :T]


class FrameNet(nn.Sequential):
    """A frame-rate stack (``nn.Sequential``) that the streamer runs in a fused, row-major cell.

    Same parameters and offline behaviour as ``nn.Sequential``; streamed,
    its causal convolutions become small matrix products on a
    ``(frames, channels)`` history, which costs far fewer and cheaper torch
    calls per block than generic convolution cells (small blocks are
    overhead-bound).
    """


class PairPower(nn.Module):
    """Compressed energies of channel pairs: ``scale * log(a_k^2 + b_k^2 + eps) + shift``.

    Input ``(B, 2K, M)`` laid out ``[a_0..a_{K-1}, b_0..b_{K-1}]``; output ``(B, K, M)``.
    """

    def __init__(self, scale: float = 0.2, shift: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.scale, self.shift, self.eps = float(scale), float(shift), float(eps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, C, M = z.shape
        p = z.square().view(B, 2, C // 2, M).sum(1)
        return torch.log(p + self.eps) * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shift={self.shift}, eps={self.eps}"


class MaskGate(nn.Module):
    """``z * gain``: the estimator's gains in ``[0, 1]``, limited to ``[floor, 1]``.

    Parameters
    ----------
    estimator : nn.Module
        Frame-rate network ``(B, C, M) -> (B, C/2, M)`` (with ``pairs``) or
        ``(B, C, M)``, ending in a sigmoid.
    pairs : bool
        One gain per channel pair ``(a_k, b_k)`` (a magnitude mask).
    floor : float
        Smallest gain, ``10 ** (-limit_db / 20)`` for an attenuation limit
        of ``limit_db``; 0 lets the estimator suppress fully.  Read on every
        block, so changing it affects running streamers at once.

    Attributes
    ----------
    linked : bool
        Apply one gain, the mean over the batch, to every batch item: a
        stereo (or wider) stream, whose channels a mono model runs as the
        batch, keeps its image because every channel gets the same
        suppression.  For streams only: in training the batch holds
        unrelated examples.  Read on every block, like ``floor``.
    """

    def __init__(self, estimator: nn.Module, pairs: bool = True, floor: float = 0.0) -> None:
        super().__init__()
        self.estimator = estimator
        self.pairs = bool(pairs)
        self.floor = floor
        self.linked = False

    @property
    def floor(self) -> float:
        return self._floor

    @floor.setter
    def floor(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"the mask floor must be a gain in [0, 1], got {value!r}; "
                "use 10 ** (-limit_db / 20) for an attenuation limit in dB."
            )
        self._floor = value

    def gain(self, g: torch.Tensor) -> torch.Tensor:
        f = self._floor
        return g if f == 0.0 else g * (1.0 - f) + f

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        g = self.gain(self.estimator(z))
        if self.linked and g.shape[0] > 1:
            g = g.mean(0, keepdim=True).expand_as(g)
        if self.pairs:
            B, C, M = z.shape
            return (z.view(B, 2, C // 2, M) * g.unsqueeze(1)).view(B, C, M)
        return z * g

    def extra_repr(self) -> str:
        return f"pairs={self.pairs}, floor={self._floor:g}"


class FrameGRU(nn.Module):
    """``(B, C, M) -> (B, hidden, M)``: a one-layer GRU over frames, from a zero state.

    Causal by construction (frame ``j`` sees frames ``0..j``); its memory is
    unbounded, so a model containing one reports ``recurrent = True`` and
    its ``receptive_field`` counts the convolutions only.  Parameters are
    ``torch.nn.GRU``'s (``gru.weight_ih_l0`` ...), stored as plain tensors.
    """

    #: memory without a horizon: models containing one report ``recurrent = True``
    recurrent = True

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.hidden = _check_int("hidden", hidden, 1)
        self.gru = nn.GRU(in_features, hidden, batch_first=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] == 0:
            return z.new_zeros(z.shape[0], self.hidden, 0)
        y, _ = self.gru(z.transpose(1, 2))
        return y.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"{self.in_features}, hidden={self.hidden}"


# ---------------------------------------------------------------- streaming cells
#
# The frame-rate part of a Framed layer runs 1-2 frames per 128-sample block,
# where every torch call costs more than its arithmetic.  Cells of a FrameNet
# therefore work "row-major" on time-major 2-D tensors (frames*batch, channels):
# a causal convolution is one addmm on its taps gathered from a frame history,
# with no per-call transposes or reshapes.  Anything else falls back to the
# engine's (batch, channels, time) cells.

_ROW_ACT = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "leaky_relu": lambda x: F.leaky_relu_(x, 0.01),
    "identity": lambda x: x,
}


class _RowHistory:
    """``span`` past frames of a time-major ``(., B, C)`` stream in one linear buffer."""

    def __init__(self, batch: int, channels: int, span: int, dtype: torch.dtype) -> None:
        self.shape, self.span, self.dtype = (batch, channels), span, dtype
        self.buf = None
        self._alloc(max(256, 2 * span))

    def _alloc(self, room: int) -> None:
        new = torch.zeros(self.span + room, *self.shape, dtype=self.dtype)
        if self.buf is not None:
            new[: self.span].copy_(self.buf[self.pos - self.span : self.pos])
        self.buf, self.room, self.pos = new, room, self.span

    def reset(self) -> None:
        self.buf.zero_()
        self.pos = self.span

    def push(self, x: torch.Tensor) -> int:
        """Append ``x`` ``(m*B, C)``; return the buffer index just past it."""
        m, s = x.shape[0] // self.shape[0], self.span
        if m > self.room:
            self._alloc(max(m, 2 * self.room))
        if self.pos + m > s + self.room:  # full: move the history to the front (amortised)
            tail = self.buf[self.pos - s : self.pos]
            self.buf[:s].copy_(tail.clone() if self.pos - s < s else tail)
            self.pos = s
        p = self.pos
        self.buf[p : p + m].view(-1, self.shape[1]).copy_(x)
        self.pos = p + m
        return p + m


class _RowConv(_Cell):
    rowmajor = True

    def __init__(self, layer: MimoConv1d, batch: int, dtype: torch.dtype) -> None:
        w = layer.weight.detach().to(dtype)  # (G, F, K), impulse-response order
        G, Fi, K = w.shape
        self.K, self.d, self.span, self.Fi = K, layer.dilation, layer.span, Fi
        # (K*F, G): rows k*F .. k*F+F-1 hold tap k (k frames*d back)
        self.wt = w.permute(2, 1, 0).reshape(K * Fi, G).contiguous()
        self.b = torch.zeros(G, dtype=dtype) if layer.bias is None else layer.bias.detach().to(dtype)
        self.hist = _RowHistory(batch, Fi, self.span, dtype) if self.span else None

    def reset(self) -> None:
        if self.hist is not None:
            self.hist.reset()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if self.hist is None:
            return torch.addmm(self.b, x, self.wt)
        end = self.hist.push(x)
        buf, d, m = self.hist.buf, self.d, x.shape[0] // self.hist.shape[0]
        taps = torch.cat([buf[end - m - k * d : end - k * d] for k in range(self.K)], dim=-1)
        return torch.addmm(self.b, taps.view(x.shape[0], -1), self.wt)


class _RowAct(_Cell):
    rowmajor = True

    def __init__(self, name: str) -> None:
        self.fn = _ROW_ACT[name]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _RowSequence(_Cell):
    rowmajor = True

    def __init__(self, cells: list[_Cell]) -> None:
        self.cells = cells

    def reset(self) -> None:
        for c in self.cells:
            c.reset()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.cells:
            x = c.process(x)
        return x


class _RowResidual(_RowSequence):
    def process(self, x: torch.Tensor) -> torch.Tensor:
        return super().process(x).add_(x)


class _RowPairPower(_Cell):
    rowmajor = True

    def __init__(self, module: PairPower) -> None:
        self.m = module

    def process(self, z: torch.Tensor) -> torch.Tensor:
        R, C = z.shape
        p = z.square().view(R, 2, C // 2).sum(1).add_(self.m.eps).log_().mul_(self.m.scale)
        return p.add_(self.m.shift) if self.m.shift else p


class _GRUCell(_Cell):
    """A :class:`FrameGRU` with its hidden state carried across blocks.

    Row-major: input ``(m*B, C)`` time-major rows, output ``(m*B, H)``;
    otherwise ``(B, C, m) -> (B, H, m)``.
    """

    def __init__(self, module: FrameGRU, batch: int, dtype: torch.dtype, rowmajor: bool) -> None:
        self.gru = copy.deepcopy(module.gru).to(dtype)
        self.gru.batch_first = not rowmajor
        self.gru.requires_grad_(False)
        self.rowmajor, self.B, self.H = rowmajor, batch, module.hidden
        self.h = torch.zeros(1, batch, module.hidden, dtype=dtype)

    def reset(self) -> None:
        self.h.zero_()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if self.rowmajor:
            m = x.shape[0] // self.B
            if m == 0:
                return x.new_zeros(0, self.H)
            y, self.h = self.gru(x.view(m, self.B, -1), self.h)
            return y.reshape(m * self.B, self.H)
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.H, 0)
        y, self.h = self.gru(x.transpose(1, 2), self.h)
        return y.transpose(1, 2)


def _row_compile(module: nn.Module, batch: int, dtype: torch.dtype) -> _Cell | None:
    """A time-major cell for ``module``, or None if it has no such form."""
    if isinstance(module, FrameGRU):
        return _GRUCell(module, batch, dtype, rowmajor=True)
    if isinstance(module, MimoConv1d):
        return _RowConv(module, batch, dtype) if module.padding == "causal" else None
    if isinstance(module, Activation):
        return _RowAct(module.name)
    if isinstance(module, PairPower):
        return _RowPairPower(module)
    if isinstance(module, MaskGate):
        est = _row_compile(module.estimator, batch, dtype)
        return None if est is None else _MaskGateCell(module, est, rowmajor=True, batch=batch)
    if isinstance(module, Residual):
        body = module.body
        cells = [_row_compile(m, batch, dtype) for m in (body if isinstance(body, nn.Sequential) else [body])]
        return None if any(c is None for c in cells) else _RowResidual(cells)
    if isinstance(module, nn.Sequential):
        cells = [_row_compile(m, batch, dtype) for m in module]
        return None if any(c is None for c in cells) else _RowSequence(cells)
    return None


class _MaskGateCell(_Cell):
    def __init__(self, module: MaskGate, estimator: _Cell, rowmajor: bool = False, batch: int = 1) -> None:
        self.m, self.est, self.rowmajor, self.B = module, estimator, rowmajor, batch

    def reset(self) -> None:
        self.est.reset()

    def end(self, t: int) -> None:
        self.est.end(t)

    def process(self, z: torch.Tensor) -> torch.Tensor:
        g = self.est.process(z)
        f = self.m._floor  # read live: the strength control may change mid-stream
        if f:
            g = g.mul(1.0 - f).add_(f)
        B = self.B
        if self.m.linked and B > 1:  # one gain for every channel of the stream
            if self.rowmajor:  # rows are frame-major, channel-minor: (m*B, K)
                K = g.shape[-1]
                g = g.view(-1, B, K).mean(1, keepdim=True).expand(-1, B, K).reshape(-1, K)
            else:
                g = g.mean(0, keepdim=True).expand_as(g)
        if not self.m.pairs:
            return z * g
        if self.rowmajor:  # (R, 2K) * (R, 1, K)
            R, C = z.shape
            return (z.view(R, 2, C // 2) * g.unsqueeze(1)).view(R, C)
        B, C, M = z.shape
        return (z.view(B, 2, C // 2, M) * g.unsqueeze(1)).view(B, C, M)


class _PairPowerCell(_Cell):
    def __init__(self, module: PairPower) -> None:
        self.m = module

    def process(self, z: torch.Tensor) -> torch.Tensor:
        B, C, M = z.shape
        p = z.square().view(B, 2, C // 2, M).sum(1).add_(self.m.eps).log_().mul_(self.m.scale)
        return p.add_(self.m.shift) if self.m.shift else p


class _FramedCell(_Cell):
    """Encoder frames as they complete, body on them, overlap-add into an output buffer."""

    def __init__(self, module: Framed, batch: int, dtype: torch.dtype, inner: _Cell) -> None:
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
        self.rowmajor = bool(getattr(inner, "rowmajor", False))
        # We-1 past input samples, so a frame can straddle blocks
        self.hist = _History(batch, enc.in_features, self.We - 1, dtype)
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

    def reset(self) -> None:
        self.hist.reset()
        self.inner.reset()
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


def _build_framed(module: Framed, batch: int, dtype: torch.dtype, delay: int, compile):
    inner = _row_compile(module.body, batch, dtype) if isinstance(module.body, (FrameNet, MaskGate)) else None
    if inner is None:
        inner, inner_delay = compile(module.body, 0)
        if inner_delay:
            raise ConfigError(
                f"the frame-rate body of a Framed layer must be causal, but it has {inner_delay} "
                "frames of latency; use padding='causal' inside it."
            )
    return _FramedCell(module, batch, dtype, inner), delay + module.latency


def _refuse_alone(module, batch, dtype, delay, compile):
    raise ConfigError(
        f"a {type(module).__name__} changes the rate between samples and frames, so it streams "
        "only inside a Framed(encoder, body, decoder) layer."
    )


def _build_mask(module: MaskGate, batch, dtype, delay, compile):
    est, d = compile(module.estimator, delay)
    if getattr(est, "rowmajor", False):  # a FrameNet estimator inside a column-major body
        est = _RowToColumn(est)
    return _MaskGateCell(module, est, batch=batch), d


class _RowToColumn(_Cell):
    def __init__(self, inner: _Cell) -> None:
        self.inner = inner

    def reset(self) -> None:
        self.inner.reset()

    def process(self, x: torch.Tensor) -> torch.Tensor:
        B, C, M = x.shape  # (B, C, M) <-> time-major (M*B, C)
        y = self.inner.process(x.permute(2, 0, 1).reshape(M * B, C))
        return y.view(M, B, -1).permute(1, 2, 0)


def _build_framenet(module: FrameNet, batch, dtype, delay, compile):
    cell = _row_compile(module, batch, dtype)
    if cell is None:  # something without a row-major form: the engine's cells
        cells = []
        for m in module:
            c, delay = compile(m, delay)
            cells.append(c)
        return _Sequence(cells), delay
    return cell, delay


register_cell(Framed, _build_framed)
register_cell(FrameNet, _build_framenet)
register_cell(StridedConv1d, _refuse_alone)
register_cell(TransposedConv1d, _refuse_alone)
register_cell(PairPower, lambda m, b, dt, d, c: (_PairPowerCell(m), d))
register_cell(MaskGate, _build_mask)
register_cell(FrameGRU, lambda m, b, dt, d, c: (_GRUCell(m, b, dt, rowmajor=False), d))
