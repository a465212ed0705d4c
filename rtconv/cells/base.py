"""The cell compiler: one registry from layer types to cell builders, and a context passed whole.

A *cell* is the streaming counterpart of one layer: ``process(x)`` maps a
block to a block of the same length, keeping whatever history it needs.
Every layer type, built-in or not, reaches its cell the same way: a
builder registered with :func:`register_cell` is called as
``builder(module, ctx)`` with a :class:`Context` that says everything the
build may depend on (batch, dtype, planner hints, the input's delay,
whether outputs are masked, the layout) and compiles children with
``ctx.compile(child, name)``.

Two layouts exist.  Sample-rate cells (and frame-rate cells by default)
take ``(batch, channels, time)``.  Inside a framed layer, where a block
holds one or two frames and every torch call costs more than its
arithmetic, cells can work *row-major* on NumPy arrays ``(frames*batch,
channels)`` (``ctx.rows``, :mod:`.rows`); a builder without such a form
returns ``None`` and the framed layer falls back to the first layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers import Activation, MimoConv1d, Residual, latency, receptive_field
from .history import History

__all__ = ["Cell", "Context", "LayerPlan", "register_cell"]


class Cell:
    """A streaming counterpart of one layer: ``process(block) -> block`` of the same length."""

    #: what :attr:`rtconv.Streamer.plan` reports for the cell's layer ("" for containers)
    kind = ""

    def process(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def children(self) -> list[Cell]:
        return []

    def histories(self) -> list[History]:
        """This cell's own history buffers (not its children's)."""
        return []

    def reset(self) -> None:
        for h in self.histories():
            h.reset()
        for c in self.children():
            c.reset()

    def end(self, t: int) -> None:
        """The input ended after ``t`` samples (used by masks at flush)."""
        for c in self.children():
            c.end(t)

    def buffers(self) -> list:
        """The arrays (NumPy or torch) that hold the state of this cell and its children."""
        return [h.buf for h in self.histories()] + [b for c in self.children() for b in c.buffers()]


class LayerPlan(NamedTuple):
    """How one layer streams: an entry of :attr:`rtconv.Streamer.plan`.

    ``path`` names the layer in the model (``body.0.body.3``); ``kind`` is
    the cell's algorithm (``"conv"``, ``"gemm"``, ``"fft"``, ``"block"`` for
    sample-rate convolutions, ``"rows"`` for row-major frame-rate
    convolutions, ``"framed:rows"`` / ``"framed:columns"`` for a framed
    layer's body layout, else the layer's role); ``partition`` is the FFT
    partition size (0 unless ``kind == "fft"``); ``latency`` and
    ``receptive_field`` are the layer's own, in its input's steps.
    """

    path: str
    layer: str
    kind: str
    partition: int
    latency: int
    receptive_field: int


Builder = Callable[[nn.Module, "Context"], "Cell | None"]
_BUILDERS: dict[type, Builder] = {}


def register_cell(module_type: type, builder: Builder) -> None:
    """Teach the streamer to run ``module_type``.

    ``builder(module, ctx)`` returns the :class:`Cell` for ``module`` given
    the :class:`Context` ``ctx``, or ``None`` when the layer has no form in
    ``ctx``'s layout (row-major only).  The layer's latency is its own
    ``latency`` attribute (0 if absent).
    """
    _BUILDERS[module_type] = builder


@dataclass(frozen=True)
class Context:
    """What building one cell may depend on; children get modified copies."""

    batch: int  #: independent streams run together (a mono model's channels)
    dtype: torch.dtype
    block: int = 128  #: typical block length, a planner hint
    partition: int | str | None = None  #: forced FFT partition (see Streamer)
    direct: str = "auto"  #: forced direct-convolution kind (see Streamer)
    mask: bool = False  #: the model has latency: zero outputs outside the signal
    delay: int = 0  #: samples by which this layer's input lags the offline signal
    rows: bool = False  #: row-major frame-rate layout
    path: str = "body"
    plan: list = field(default_factory=list, compare=False, repr=False)

    def replace(self, **changes) -> Context:
        return dataclasses.replace(self, **changes)

    def build(self, module: nn.Module, name: str | None = None) -> Cell | None:
        """The cell for ``module`` (a child called ``name``), or None if it has no form in this layout."""
        ctx = self if name is None else self.replace(path=f"{self.path}.{name}")
        builder = next((_BUILDERS[c] for c in type(module).__mro__ if c in _BUILDERS), None)
        if builder is None:
            raise ConfigError(f"the streamer cannot run a {type(module).__name__} layer.")
        at = len(ctx.plan)  # a layer's entry goes before its children's
        cell = builder(module, ctx)
        if cell is not None and cell.kind:
            ctx.plan.insert(at, LayerPlan(ctx.path, type(module).__name__, cell.kind, getattr(cell, "P", 0),
                                      latency(module), receptive_field(module)))
        return cell

    def compile(self, module: nn.Module, name: str | None = None) -> Cell:
        cell = self.build(module, name)
        if cell is None:  # pragma: no cover - only row-major builders decline
            raise ConfigError(f"the streamer cannot run a {type(module).__name__} layer here.")
        return cell

    def attempt_rows(self, module: nn.Module) -> Cell | None:
        """``module`` built row-major, or None (and nothing planned) if some layer has no such form."""
        mark = len(self.plan)
        cell = self.replace(rows=True).build(module)
        if cell is None:
            del self.plan[mark:]
        return cell

    def sequence(self, modules: nn.Module) -> list[Cell] | None:
        """Cells of ``modules`` in order, each input delayed by the layers before it."""
        cells, ctx = [], self
        for name, m in modules.named_children():
            c = ctx.build(m, name)
            if c is None:
                return None
            cells.append(c)
            ctx = ctx.replace(delay=ctx.delay + latency(m))
        return cells

    def masked(self, cell: Cell, module: nn.Module) -> Cell:
        """Mask ``cell``'s output before the signal starts and, at flush, after it ends.

        Offline, a later layer sees zero padding there, not ``f(bias)``; every
        layer of a model with latency is masked, not only delayed ones.
        """
        return _Mask(cell, self.delay + latency(module)) if self.mask and not self.rows else cell


_INPLACE = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "leaky_relu": lambda x: F.leaky_relu_(x, 0.01),
    "identity": lambda x: x,
}


class _Activation(Cell):
    """In place, on the block the previous cell made: torch's functions on ``(batch, channels, time)``
    tensors, or another ``table`` of them (the row-major NumPy ones, :data:`.rows.ROW_ACTIVATIONS`)."""

    kind = "pointwise"

    def __init__(self, name: str, table: dict | None = None) -> None:
        self.fn = (_INPLACE if table is None else table)[name]
        self.name = name

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Mask(Cell):
    """Zero a cell's output outside ``[start, end)`` in absolute samples."""

    def __init__(self, inner: Cell, start: int) -> None:
        self.inner, self.start = inner, start
        self.t, self.stop = 0, None
        self.kind, self.P = inner.kind, getattr(inner, "P", 0)  # the plan reports the masked cell

    def children(self) -> list[Cell]:
        return [self.inner]

    def reset(self) -> None:
        super().reset()
        self.t, self.stop = 0, None

    def end(self, t: int) -> None:
        super().end(t)
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


class _Delay(Cell):
    def __init__(self, batch: int, channels: int, delay: int, dtype: torch.dtype) -> None:
        self.hist = History(batch, channels, delay, dtype)

    def histories(self) -> list[History]:
        return [self.hist]

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.hist.push_np(x.numpy())[..., : x.shape[-1]])


class _Sequence(Cell):
    def __init__(self, cells: list[Cell]) -> None:
        self.cells = cells

    def children(self) -> list[Cell]:
        return list(self.cells)

    def process(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.cells:
            x = c.process(x)
        return x


class _Residual(_Sequence):
    """``cells(x) + skip(x)``: the skip delayed as much as the cells (``padding="same"`` inside)."""

    def __init__(self, cells: list[Cell], skip: Cell | None) -> None:
        super().__init__(cells)
        self.skip = skip

    def children(self) -> list[Cell]:
        return self.cells + ([] if self.skip is None else [self.skip])

    def end(self, t: int) -> None:
        for c in self.cells:
            c.end(t)

    def process(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skip.process(x)
        for c in self.cells:
            x = c.process(x)
        x += skip  # in place, for torch tensors and the row-major cells' NumPy arrays alike
        return x


def _build_activation(module: Activation, ctx: Context) -> Cell:
    if ctx.rows:
        from .rows import ROW_ACTIVATIONS

        return _Activation(module.name, ROW_ACTIVATIONS)
    return ctx.masked(_Activation(module.name), module)


def _build_sequential(module: nn.Sequential, ctx: Context) -> Cell | None:
    cells = ctx.sequence(module)
    return None if cells is None else _Sequence(cells)


def _build_residual(module: Residual, ctx: Context) -> Cell | None:
    body = ctx.build(module.body, "body")
    if body is None:
        return None
    cells = body.cells if type(body) is _Sequence else [body]  # one loop, not a nested sequence
    inner = latency(module.body)
    if not inner:
        return _Residual(cells, None)
    channels = next(m for m in module.modules() if isinstance(m, MimoConv1d)).in_features
    return _Residual(cells, _Delay(ctx.batch, channels, inner, ctx.dtype))


register_cell(Activation, _build_activation)
register_cell(nn.Sequential, _build_sequential)
register_cell(Residual, _build_residual)
