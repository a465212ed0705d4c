"""A model as one block of computation with explicit state: the step model.

:class:`StepModel` is a plain ``torch.nn.Module`` whose
``forward(audio_in, *states) -> (audio_out, *states_out)`` does one block of
exactly ``block_size`` frames.  Fed block after block, each ``S_out`` given
back as ``S`` and every state starting at zero, it computes what
:class:`rtconv.Streamer` computes for the same blocks (its ``process``; not
``flush``, see below).  It is what :mod:`rtconv.onnx.exporter` traces into an
ONNX file, so a host that knows nothing of rtconv can run the model.

Layout: ``audio_in`` is ``(block_size, channels)`` float32, frames-major like
sounddevice; ``audio_out`` is ``(block_size, out_channels)``, channel-major
like the streamer (a mono 1 -> 2 model on stereo gives L-low, L-high,
R-low, R-high).

States, per layer (names are the layer's path in the model, e.g.
``body.0.history``):

* a convolution keeps the last ``(taps-1)*dilation`` input samples (or
  frames), ``(batch, in_features, span)``;
* a ``Residual`` whose body delays (``padding="same"``) keeps its skip path's
  ``latency`` samples;
* a ``Framed`` layer keeps ``window-1`` input samples (a frame may straddle
  blocks) and the ``decoder.taps-1`` samples of overlap-add not yet emitted;
* a ``FrameGRU`` keeps its hidden vector ``(1, batch, hidden)``;
* ``time``: samples seen, saturating at the last sample that a start-up mask
  (``padding="same"`` layers, a framed decoder's first ``latency`` samples)
  still affects; present only when the model has such masks;
* ``<framed>.phase``: for a framed layer whose hop does not divide the block
  size, the position in the current hop (0 .. hop-1).  The number of frames
  a block completes then varies (128-frame blocks at hop 96 complete 1, 1,
  2, 1, 1, 2 ... frames), so the step model computes the most a block can
  complete, ``ceil(block / hop)``, and uses only those that are due: state
  updates and the overlap-add read the phase.  Every block size works.

For :class:`rtconv.Streamer`'s ``engine="onnx"`` (:mod:`rtconv.onnx.engine`)
two options change the graph: ``phase=True`` gives every framed layer a
phase state, so step models of different block sizes share their states, and
``controls=True`` makes each mask gate's floor an input instead of a constant.

Counters (``time``, ``phase``) and recurrent states are sanitised on input
(NaN to 0, clamped to their range): a host that starts them from uninitialised
memory gets a wrong start, not an error in every later block.

Not part of a step: :meth:`Streamer.flush` (a host feeds zeros instead; the
only difference is that a ``padding="same"`` layer's bias is not masked off
after the end of the signal) and the streamer's choice of convolution
algorithm (the step model convolves directly; the result is the same to float
rounding).  The input is scrubbed like the streamer's (NaN/Inf -> 0).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..framed import Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d
from ..layers import Activation, MimoConv1d, Residual, latency
from ..models import Model
from ..streaming import stream_channels

__all__ = ["StepModel"]

_ACT = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "identity": lambda x: x,
    "softmax": lambda x: torch.softmax(x, dim=1),  # over channels: rtconv.classifier.ChannelSoftmax
}


def _softmax(module: nn.Module) -> bool:
    """Whether ``module`` is a classifier's ChannelSoftmax (imported lazily: the classifier imports a lot)."""
    if type(module).__name__ != "ChannelSoftmax":
        return False
    from ..classifier import ChannelSoftmax

    return isinstance(module, ChannelSoftmax)


class _Ctx:
    """What one step passes through the layer tree: state inputs, state outputs, block start time."""

    def __init__(self, states: dict[str, torch.Tensor], t: torch.Tensor | None,
                 controls: dict[str, torch.Tensor] | None = None) -> None:
        self.states, self.out, self.t, self.controls = states, {}, t, controls or {}


def _take(x: torch.Tensor, start, length: int) -> torch.Tensor:
    """``x[..., start : start + length]`` for an int or a 0-d/1-element int64 tensor ``start``."""
    if isinstance(start, int):
        return x[..., start : start + length]
    idx = torch.arange(length, dtype=torch.int64) + start.reshape(1)
    return x.index_select(-1, idx)


def _zero_before(y: torch.Tensor, t: torch.Tensor, start: int) -> torch.Tensor:
    """Zero the samples of a block whose absolute time (``t`` + index) is before ``start``."""
    n = y.shape[-1]
    times = t + torch.arange(n, dtype=torch.float32)
    return torch.where(times >= float(start), y, torch.zeros_like(y))


class _Node(nn.Module):
    """One layer's step: ``forward(x, ctx, valid)``; ``valid`` is how many leading time steps are real."""

    def specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """This node's states (name, shape), its children's included."""
        return []

    def forward(self, x, ctx: _Ctx, valid):  # pragma: no cover - interface
        raise NotImplementedError


class _Conv(_Node):
    def __init__(self, layer: MimoConv1d, batch: int, name: str) -> None:
        super().__init__()
        self.register_buffer("w", layer.weight.detach().float().flip(-1).clone())  # correlation order
        self.register_buffer("b", None if layer.bias is None else layer.bias.detach().float().clone())
        self.d, self.span, self.name = layer.dilation, layer.span, f"{name}.history"
        self.shape = (batch, layer.in_features, layer.span)

    def specs(self):
        return [(self.name, self.shape)] if self.span else []

    def forward(self, x, ctx, valid):
        if self.span:
            x = torch.cat([ctx.states[self.name], x], dim=-1)
            ctx.out[self.name] = _take(x, valid, self.span)  # the span before the first unused step
        return F.conv1d(x, self.w, self.b, dilation=self.d)


class _Act(_Node):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.fn = _ACT[name]

    def forward(self, x, ctx, valid):
        return self.fn(x)


class _Masked(_Node):
    """Zero the inner node's output before absolute sample ``start`` (the streamer's ``_Mask``)."""

    def __init__(self, inner: _Node, start: int) -> None:
        super().__init__()
        self.inner, self.start = inner, start

    def specs(self):
        return self.inner.specs()

    def forward(self, x, ctx, valid):
        return _zero_before(self.inner(x, ctx, valid), ctx.t, self.start)


class _Seq(_Node):
    def __init__(self, nodes: list[_Node]) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(nodes)

    def specs(self):
        return [s for n in self.nodes for s in n.specs()]

    def forward(self, x, ctx, valid):
        for n in self.nodes:
            x = n(x, ctx, valid)
        return x


class _Residual(_Node):
    """``body(x) + x``, the skip delayed by the body's latency (a history of that many samples)."""

    def __init__(self, body: _Node, delay: int, batch: int, channels: int, name: str) -> None:
        super().__init__()
        self.body, self.delay, self.name = body, delay, f"{name}.skip"
        self.shape = (batch, channels, delay)

    def specs(self):
        return self.body.specs() + ([(self.name, self.shape)] if self.delay else [])

    def forward(self, x, ctx, valid):
        skip = x
        if self.delay:
            full = torch.cat([ctx.states[self.name], x], dim=-1)
            ctx.out[self.name] = full[..., full.shape[-1] - self.delay :]
            skip = full[..., : x.shape[-1]]
        return self.body(x, ctx, valid) + skip


class _PairPower(_Node):
    def __init__(self, m: PairPower) -> None:
        super().__init__()
        self.scale, self.shift, self.eps = m.scale, m.shift, m.eps

    def forward(self, z, ctx, valid):
        B, C, M = z.shape
        p = z.square().reshape(B, 2, C // 2, M).sum(1)
        return torch.log(p + self.eps) * self.scale + self.shift


class _MaskGate(_Node):
    def __init__(self, m: MaskGate, estimator: _Node, control: str | None = None) -> None:
        super().__init__()
        self.est, self.pairs, self.floor = estimator, m.pairs, m.floor  # the floor at export time
        self.linked = bool(getattr(m, "linked", False))  # as at export time
        self.control = control  # or an input of that name, read every block

    def specs(self):
        return self.est.specs()

    def forward(self, z, ctx, valid):
        g = self.est(z, ctx, valid)
        if self.control is not None:
            f = ctx.controls[self.control]
            g = g * (1.0 - f) + f
        elif self.floor:
            g = g * (1.0 - self.floor) + self.floor
        if self.linked and z.shape[0] > 1:
            g = g.mean(0, keepdim=True).expand_as(g)
        if not self.pairs:
            return z * g
        B, C, M = z.shape
        return (z.reshape(B, 2, C // 2, M) * g.unsqueeze(1)).reshape(B, C, M)


class _GRU(_Node):
    def __init__(self, m: FrameGRU, batch: int, name: str) -> None:
        super().__init__()
        self.gru = copy.deepcopy(m.gru).float().requires_grad_(False)
        self.gru.batch_first = True
        self.name, self.shape = f"{name}.hidden", (1, batch, m.hidden)

    def specs(self):
        return [(self.name, self.shape)]

    def forward(self, z, ctx, valid):
        h0 = ctx.states[self.name]
        h0 = torch.where(h0 == h0, h0, torch.zeros_like(h0)).clamp(-1.0, 1.0)  # a GRU state lies in [-1, 1]
        y, h = self.gru(z.transpose(1, 2), h0)  # (B, M, H)
        if isinstance(valid, int) and valid == y.shape[1]:
            ctx.out[self.name] = h
        else:  # the state after the last frame that was due: step `valid` of [h0, y_0, y_1 ...]
            every = torch.cat([h0.transpose(0, 1), y], dim=1)
            i = torch.tensor([valid], dtype=torch.int64) if isinstance(valid, int) else valid.reshape(1)
            ctx.out[self.name] = every.index_select(1, i).transpose(0, 1)
        return y.transpose(1, 2)


class _Framed(_Node):
    """Encoder frames due in this block, the frame-rate body on them, overlap-add into the output."""

    def __init__(self, m: Framed, body: _Node, n: int, batch: int, name: str, phase: bool = False) -> None:
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

    def forward(self, x, ctx, valid):
        H, n, M, L = self.H, self.n, self.M, self.L
        if self.static:
            u0, m = H - 1, M  # the first frame due ends at offset H - 1
        else:
            phi = ctx.states[self.names["phase"]]
            phi = torch.where(phi == phi, phi, torch.zeros_like(phi)).floor().clamp(0.0, H - 1.0)
            u0 = (H - 1 - phi).to(torch.int64)  # offset in this block where the first due frame ends
            due = torch.floor((phi + n) / H)  # frames completed in this block
            m = due.to(torch.int64)
            ctx.out[self.names["phase"]] = phi + n - due * H
        if self.We > 1:  # index i of xx is the sample at offset i - (We-1)
            xx = torch.cat([ctx.states[self.names["input"]], x], dim=-1)
            ctx.out[self.names["input"]] = xx[..., n:]
        else:
            xx = x
        need = (M - 1) * H + self.We  # window of frame 0 starts at index u0
        if not self.static and xx.shape[-1] < (H - 1) + need:
            xx = F.pad(xx, (0, (H - 1) + need - xx.shape[-1]))  # frames not due read zeros; unused
        z = F.conv1d(_take(xx, u0, need), self.w_enc, self.b_enc, stride=H)  # (B, N, M)
        z = self.body(z, ctx, m)
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
        buf = placed if L == 0 else F.pad(ctx.states[self.names["overlap"]], (0, n)) + placed
        if L:
            ctx.out[self.names["overlap"]] = buf[..., n:]
        out = buf[..., :n]
        return out if L == 0 else _zero_before(out, ctx.t, L)  # positions before the signal's start


class StepModel(nn.Module):
    """One block of ``model`` with explicit state (see the module docstring).

    Parameters
    ----------
    model : rtconv.models.Model
        The model; its weights are copied (and later changes do not reach
        the step model).  A denoiser's attenuation limit is the one it has
        now.
    block_size : int
        Frames per block, fixed: the ONNX file's input shape.
    channels : int, optional
        Channels of the stream, with :class:`rtconv.Streamer`'s rule: a
        mono model runs once per channel, a multi-input model needs exactly
        its channel count.  Default: the model's input channels.
    phase : bool
        Give every framed layer a phase state, also when its hop divides
        ``block_size``: then step models of any block sizes have the same
        states and can take turns on one stream (the ``"onnx"`` engine).
    controls : bool
        Make each mask gate's floor (a denoiser's strength) an input named
        ``<path>.floor`` of shape ``(1,)``, read every block, instead of a
        constant; :attr:`control_names` lists them after the states.

    Attributes
    ----------
    state_names : list of str
        Input names of the states, in ``forward``'s order; outputs add ``_out``.
    state_shapes : list of tuple
        Their shapes.
    control_names : list of str
        With ``controls=True``: the floor inputs, after the states in ``forward``.
    exact_flush : bool
        Whether feeding ``latency`` zeros gives exactly :meth:`Streamer.flush`
        (not when a masked layer acts before the model's last delay).
    channels, out_channels, latency : int
        As :class:`rtconv.Streamer` reports them.
    """

    def __init__(self, model: Model, block_size: int, channels: int | None = None, *,
                 phase: bool = False, controls: bool = False) -> None:
        super().__init__()
        if not isinstance(model, Model):
            raise ConfigError(f"a step model needs an rtconv model, got {type(model).__name__}.")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive number of frames, got {block_size!r}; e.g. 128.")
        f0 = model.in_channels
        channels = stream_channels(model, channels, hint=f"export it with --channels {f0}")
        self.n, self.channels = block_size, channels
        self.batch = channels if f0 == 1 else 1
        self.in_features = f0
        self.out_channels = self.batch * model.out_channels
        self.latency = model.latency
        self._starts: list[int] = []
        self._ends: list[int] = []  # starts of every mask, 0 included: where Streamer.flush's end masks act
        self._phase, self._controls = phase, controls
        self.control_names: list[str] = []
        with torch.no_grad():
            self.body, _ = self._compile(model.body, "body", block_size, 0, mask=self.latency > 0)
        self.cap = max(self._starts, default=0)  # `time` saturates here: no mask acts after it
        specs = ([("time", (1,))] if self.cap else []) + self.body.specs()
        names = [s[0] for s in specs]
        if len(set(names)) != len(names):  # pragma: no cover - paths are unique
            raise ConfigError(f"state names collide: {names!r}.")
        self.state_names = names
        self.state_shapes = [s[1] for s in specs]
        self.exact_flush = all(s >= self.latency for s in self._ends)

    # -------------------------------------------------------------- compiling
    def _refuse(self, module: nn.Module, why: str = "") -> ConfigError:
        return ConfigError(
            f"a {type(module).__name__} layer cannot be exported to a step model{why}; exportable are "
            "MimoConv1d, Activation, ChannelSoftmax, Residual and Sequential (FIR, MimoCNN, DilatedCNN, the "
            "classifiers) and Framed layers with PairPower, MaskGate and FrameGRU inside."
        )

    def _compile(self, module: nn.Module, path: str, n: int, delay: int, mask: bool) -> tuple[_Node, int]:
        """The node for ``module`` at sample rate, input delayed ``delay`` samples; return it and its delay."""
        B = self.batch
        if isinstance(module, MimoConv1d):
            node: _Node = _Conv(module, B, path)
            delay += latency(module)
            return self._mask(node, delay, mask), delay
        if isinstance(module, Activation) or _softmax(module):
            return self._mask(_Act(getattr(module, "name", "softmax")), delay, mask), delay
        if isinstance(module, Framed):
            body = self._frame_rate(module.body, f"{path}.body")
            self._starts.append(latency(module))
            return _Framed(module, body, n, B, path, self._phase), delay + latency(module)
        if isinstance(module, Residual):
            body, out = self._compile(module.body, f"{path}.body", n, delay, mask)
            channels = next(m for m in module.modules() if isinstance(m, MimoConv1d)).in_features
            return _Residual(body, latency(module), B, channels, path), out
        if isinstance(module, (StridedConv1d, TransposedConv1d)):
            raise self._refuse(module, " outside a Framed(encoder, body, decoder) layer, where it changes the rate")
        if type(module) is nn.Sequential or isinstance(module, FrameNet):
            nodes = []
            for i, m in enumerate(module):
                node, delay = self._compile(m, f"{path}.{i}", n, delay, mask)
                nodes.append(node)
            return _Seq(nodes), delay
        raise self._refuse(module)

    def _mask(self, node: _Node, start: int, mask: bool) -> _Node:
        if mask:
            self._ends.append(start)
        if not mask or start <= 0:  # a mask from time 0 changes nothing
            return node
        self._starts.append(start)
        return _Masked(node, start)

    def _frame_rate(self, module: nn.Module, path: str) -> _Node:
        """The node for a Framed layer's body: causal, at the frame rate."""
        B = self.batch
        if isinstance(module, MimoConv1d):
            if module.padding != "causal":
                raise ConfigError(
                    f"the frame-rate body of a Framed layer must be causal, but {path} has padding "
                    f"{module.padding!r}; use padding='causal' inside it."
                )
            return _Conv(module, B, path)
        if isinstance(module, Activation) or _softmax(module):
            return _Act(getattr(module, "name", "softmax"))
        if isinstance(module, PairPower):
            return _PairPower(module)
        if isinstance(module, MaskGate):
            control = None
            if self._controls:
                control = f"{path}.floor"
                self.control_names.append(control)
            return _MaskGate(module, self._frame_rate(module.estimator, f"{path}.estimator"), control)
        if isinstance(module, FrameGRU):
            return _GRU(module, B, path)
        if isinstance(module, Residual):
            return _Residual(self._frame_rate(module.body, f"{path}.body"), 0, B, 0, path)
        if type(module) is nn.Sequential or isinstance(module, FrameNet):
            return _Seq([self._frame_rate(m, f"{path}.{i}") for i, m in enumerate(module)])
        raise self._refuse(module)

    # -------------------------------------------------------------- running
    def initial_states(self) -> list[torch.Tensor]:
        """The zero states a stream starts from, in ``forward``'s order."""
        return [torch.zeros(s) for s in self.state_shapes]

    def initial_controls(self, model: Model) -> list[torch.Tensor]:
        """The control inputs as ``model`` has them now (its mask gates' floors)."""
        return [torch.tensor([model.get_submodule(k.removesuffix(".floor")).floor]) for k in self.control_names]

    def forward(self, audio_in: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.n
        states, controls = inputs[: len(self.state_names)], inputs[len(self.state_names) :]
        x = torch.where(torch.isfinite(audio_in), audio_in, torch.zeros_like(audio_in))  # as Streamer._check
        x = x.transpose(0, 1).reshape(self.batch, self.in_features, n)
        named = dict(zip(self.state_names, states))
        t = None
        if self.cap:
            t = named["time"]
            t = torch.where(t == t, t, torch.zeros_like(t)).clamp(0.0, float(self.cap))
        ctx = _Ctx(named, t, dict(zip(self.control_names, controls)))
        y = self.body(x, ctx, n)
        if self.cap:
            ctx.out["time"] = torch.clamp(t + n, max=float(self.cap))
        audio_out = y.reshape(self.out_channels, n).transpose(0, 1)
        return (audio_out, *(ctx.out[k] for k in self.state_names))

    def extra_repr(self) -> str:
        return f"block_size={self.n}, channels={self.channels}, out_channels={self.out_channels}, states={len(self.state_names)}"

