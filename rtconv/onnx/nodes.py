"""The step compiler: one registry from layer types to step nodes, and a context passed whole.

A *node* is one layer's part of a step model (:class:`rtconv.onnx.StepModel`):
``forward(x, flow, valid)`` computes one block from explicit state, reading
its states from ``flow.states`` and writing their next values to
``flow.out``.  Every layer type reaches its node the same way, as with the
streamer's cells (:func:`rtconv.cells.register_cell`): a builder registered
with :func:`register_step` is called as ``builder(module, ctx)`` with a
:class:`StepContext` that says everything the build may depend on (batch,
block size, the input's delay, whether outputs are masked, sample or frame
rate, the engine's options) and compiles children with
``ctx.build(child, name)``.  A layer with no builder, or one that has no
form at the rate it sits at, is refused in one sentence
(:meth:`StepContext.refuse`).

Nodes are traced by ``torch.onnx.export``: their attribute names become
the ONNX graph's node names, so renaming one changes the file (not what it
computes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..classifier import ChannelSoftmax
from ..errors import ConfigError
from ..layers import Activation, MimoConv1d, Residual, latency

__all__ = ["Node", "StepContext", "register_step"]

_ACT = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "identity": lambda x: x,
    "softmax": lambda x: torch.softmax(x, dim=1),  # over channels: rtconv.classifier.ChannelSoftmax
}


class _Flow:
    """What one step passes through the node tree: state inputs, state outputs, block start time, controls."""

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


class Node(nn.Module):
    """One layer's step: ``forward(x, flow, valid)``; ``valid`` is how many leading time steps are real."""

    def specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """This node's states (name, shape), its children's included."""
        return []

    def forward(self, x, flow: _Flow, valid):  # pragma: no cover - interface
        raise NotImplementedError


StepBuilder = Callable[[nn.Module, "StepContext"], Node]
_BUILDERS: dict[type, StepBuilder] = {}


def register_step(module_type: type, builder: StepBuilder) -> None:
    """Teach the step model (and so ``rtconv export`` and ``engine="onnx"``) to run ``module_type``.

    ``builder(module, ctx)`` returns the :class:`Node` for ``module`` given
    the :class:`StepContext` ``ctx``, or raises ``ctx.refuse(module)`` where
    the layer has no form (``ctx.frames`` says which rate it is at).  The
    builder of the nearest registered base class is used for a subclass.
    """
    _BUILDERS[module_type] = builder


@dataclass(frozen=True)
class StepContext:
    """What building one node may depend on; children get modified copies.

    The three lists are shared by every copy: they collect, across the whole
    tree, where masks start (``starts``: ``time`` saturates at their
    largest; ``ends``: where :meth:`Streamer.flush`'s end masks would act)
    and the control inputs in ``forward``'s order.
    """

    batch: int  #: independent streams run together (a mono model's channels)
    block: int  #: frames per block, fixed
    phase: bool = False  #: every framed layer keeps a phase state (see StepModel)
    controls: bool = False  #: mask gates read their floor from an input (see StepModel)
    mask: bool = False  #: the model has latency: zero outputs before the signal
    delay: int = 0  #: samples by which this layer's input lags the offline signal
    frames: bool = False  #: inside a Framed layer's body, at the frame rate
    path: str = "body"
    starts: list = field(default_factory=list, compare=False, repr=False)
    ends: list = field(default_factory=list, compare=False, repr=False)
    control_names: list = field(default_factory=list, compare=False, repr=False)

    def replace(self, **changes) -> StepContext:
        return dataclasses.replace(self, **changes)

    def build(self, module: nn.Module, name: str | None = None) -> Node:
        """The node for ``module`` (a child called ``name``)."""
        ctx = self if name is None else self.replace(path=f"{self.path}.{name}")
        builder = next((_BUILDERS[c] for c in type(module).__mro__ if c in _BUILDERS), None)
        if builder is None:
            raise ctx.refuse(module)
        return builder(module, ctx)

    def sequence(self, modules: nn.Module) -> list[Node]:
        """Nodes of ``modules`` in order (named by position), each input delayed by the layers before it."""
        nodes, ctx = [], self
        for i, m in enumerate(modules):  # by position, not name: state names are ``<path>.<index>.*``
            nodes.append(ctx.build(m, str(i)))
            ctx = ctx.replace(delay=ctx.delay + latency(m))
        return nodes

    def masked(self, node: Node, module: nn.Module) -> Node:
        """Zero ``node``'s output before the signal reaches it (the streamer's mask; flush aside)."""
        if not self.mask:
            return node
        start = self.delay + latency(module)
        self.ends.append(start)
        if start <= 0:  # a mask from time 0 changes nothing
            return node
        self.starts.append(start)
        return _Masked(node, start)

    def refuse(self, module: nn.Module, why: str = "") -> ConfigError:
        """The one-sentence refusal of ``module`` (``why`` is inserted before the list of what exports)."""
        return ConfigError(
            f"a {type(module).__name__} layer cannot be exported to a step model{why}; exportable are "
            "MimoConv1d, Activation, ChannelSoftmax, Residual and Sequential (FIR, MimoCNN, DilatedCNN, the "
            "classifiers) and Framed layers with PairPower, MaskGate and FrameGRU inside."
        )


class _Conv(Node):
    def __init__(self, layer: MimoConv1d, batch: int, name: str) -> None:
        super().__init__()
        self.register_buffer("w", layer.weight.detach().float().flip(-1).clone())  # correlation order
        self.register_buffer("b", None if layer.bias is None else layer.bias.detach().float().clone())
        self.d, self.span, self.name = layer.dilation, layer.span, f"{name}.history"
        self.shape = (batch, layer.in_features, layer.span)

    def specs(self):
        return [(self.name, self.shape)] if self.span else []

    def forward(self, x, flow, valid):
        if self.span:
            x = torch.cat([flow.states[self.name], x], dim=-1)
            flow.out[self.name] = _take(x, valid, self.span)  # the span before the first unused step
        return F.conv1d(x, self.w, self.b, dilation=self.d)


class _Act(Node):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.fn = _ACT[name]

    def forward(self, x, flow, valid):
        return self.fn(x)


class _Masked(Node):
    """Zero the inner node's output before absolute sample ``start`` (the streamer's ``_Mask``)."""

    def __init__(self, inner: Node, start: int) -> None:
        super().__init__()
        self.inner, self.start = inner, start

    def specs(self):
        return self.inner.specs()

    def forward(self, x, flow, valid):
        return _zero_before(self.inner(x, flow, valid), flow.t, self.start)


class _Seq(Node):
    def __init__(self, nodes: list[Node]) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(nodes)

    def specs(self):
        return [s for n in self.nodes for s in n.specs()]

    def forward(self, x, flow, valid):
        for n in self.nodes:
            x = n(x, flow, valid)
        return x


class _Residual(Node):
    """``body(x) + x``, the skip delayed by the body's latency (a history of that many samples)."""

    def __init__(self, body: Node, delay: int, batch: int, channels: int, name: str) -> None:
        super().__init__()
        self.body, self.delay, self.name = body, delay, f"{name}.skip"
        self.shape = (batch, channels, delay)

    def specs(self):
        return self.body.specs() + ([(self.name, self.shape)] if self.delay else [])

    def forward(self, x, flow, valid):
        skip = x
        if self.delay:
            full = torch.cat([flow.states[self.name], x], dim=-1)
            flow.out[self.name] = full[..., full.shape[-1] - self.delay :]
            skip = full[..., : x.shape[-1]]
        return self.body(x, flow, valid) + skip


def _build_conv(module: MimoConv1d, ctx: StepContext) -> Node:
    if ctx.frames and module.padding != "causal":  # a frame-rate body streams without masks or delays
        raise ConfigError(
            f"the frame-rate body of a Framed layer must be causal, but {ctx.path} has padding "
            f"{module.padding!r}; use padding='causal' inside it."
        )
    return ctx.masked(_Conv(module, ctx.batch, ctx.path), module)


def _build_activation(module: nn.Module, ctx: StepContext) -> Node:
    return ctx.masked(_Act(getattr(module, "name", "softmax")), module)


def _build_residual(module: Residual, ctx: StepContext) -> Node:
    body = ctx.build(module.body, "body")
    delay = 0 if ctx.frames else latency(module)  # a frame-rate body is causal: no skip history
    channels = next(m for m in module.modules() if isinstance(m, MimoConv1d)).in_features if delay else 0
    return _Residual(body, delay, ctx.batch, channels, ctx.path)


def _build_sequential(module: nn.Sequential, ctx: StepContext) -> Node:
    if type(module) is not nn.Sequential:  # a subclass may compute something else in its forward
        raise ctx.refuse(module)
    return _Seq(ctx.sequence(module))


register_step(MimoConv1d, _build_conv)
register_step(Activation, _build_activation)
register_step(ChannelSoftmax, _build_activation)
register_step(Residual, _build_residual)
register_step(nn.Sequential, _build_sequential)
