"""Building blocks of every rtconv model, as trainable ``torch.nn`` modules.

Conventions (stated once, used everywhere):

* tensors are ``(batch, channels, time)``;
* kernels are stored in **impulse-response order**: ``weight[g, f, k]`` is
  tap ``k`` of the filter from input feature ``f`` to output feature ``g``,
  and tap 0 acts on the current sample.  This is the matrix ``H_k[f, g]`` of
  ``Y[n] = sum_k H_k^T X[n - k*d]``.  PyTorch's ``conv1d`` correlates, so the
  forward pass flips the kernel once before calling it.

Every layer reports its own numbers: ``latency`` (samples by which its
streamed output lags its offline output) and ``receptive_field`` (input
steps that one output step depends on), 0 and 1 when it has no such
attribute.  :func:`latency` and :func:`receptive_field` add them up along a
layer tree; models, the streamer and the ONNX step model all read them there.

Padding is either ``"causal"`` (all ``(K-1)*d`` zeros on the left: output
``n`` sees only inputs ``<= n``) or ``"same"`` (split around the centre like
``np.convolve(..., "same")``), which streams with a latency of
``floor((K-1)*d/2)`` samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["ConvLayer", "MimoConv1d", "Activation", "Residual", "ACTIVATIONS", "PADDINGS", "latency",
           "receptive_field"]

PADDINGS = ("causal", "same")

def _leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.01)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# module-level functions, not lambdas: models pickle (the GUI sends them to its audio process)
ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "leaky_relu": _leaky_relu,
    "identity": _identity,
}


def latency(module: nn.Module) -> int:
    """Streaming delay of a layer tree, in its input's steps: the layers' own, summed along the path."""
    if isinstance(module, nn.Sequential):
        return sum(latency(m) for m in module)
    return int(getattr(module, "latency", 0))


def receptive_field(module: nn.Module) -> int:
    """Input steps one output step of a layer tree depends on (recurrent memory aside)."""
    if isinstance(module, nn.Sequential):
        return 1 + sum(receptive_field(m) - 1 for m in module)
    return int(getattr(module, "receptive_field", 1))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {value!r}; "
            f"pass a whole number such as {max(minimum, 1)}."
        )
    return value


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ConfigError(
            f"padding must be one of {PADDINGS}, got {padding!r}; use 'causal' "
            "for live filters or 'same' for a centred (delayed) filter."
        )
    return padding


class ConvLayer(nn.Module):
    """Base of every convolution layer (what the GUI draws as kernel stems).

    Subclasses provide ``in_features``, ``out_features``, ``taps``,
    ``dilation``, a ``weight`` parameter ``(out, in, taps)`` in
    impulse-response order, and the properties ``span`` (history in input
    samples), ``latency`` (samples of delay when streamed),
    ``receptive_field`` (``span + 1``) and ``kernel``.
    """

    in_features: int
    out_features: int
    taps: int
    dilation: int = 1
    weight: nn.Parameter

    @property
    def span(self) -> int:
        return (self.taps - 1) * self.dilation

    @property
    def latency(self) -> int:
        return 0

    @property
    def receptive_field(self) -> int:
        return self.span + 1

    @property
    def kernel(self):
        """The taps as a NumPy array ``(out, in, taps)`` in impulse-response order."""
        return self.weight.detach().cpu().numpy().copy()


class MimoConv1d(ConvLayer):
    """Causal (or centred) MIMO convolution ``Y[n] = sum_k H_k^T X[n - k*d]``.

    Parameters
    ----------
    in_features, out_features : int
        ``F`` input and ``G`` output channels.
    taps : int
        ``K``, the number of kernel taps.
    dilation : int
        ``d``, spacing between taps in samples.
    bias : bool
        Add one learnable offset per output channel.
    padding : {"causal", "same"}
        ``"same"`` centres the kernel; its streamed output is delayed by
        :attr:`latency` samples.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        taps: int,
        dilation: int = 1,
        bias: bool = True,
        padding: str = "causal",
    ) -> None:
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.out_features = _check_int("out_features", out_features, 1)
        self.taps = _check_int("taps", taps, 1)
        self.dilation = _check_int("dilation", dilation, 1)
        self.padding = _check_padding(padding)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, taps))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init scaled by fan-in, as ``torch.nn.Conv1d`` does."""
        bound = 1.0 / math.sqrt(self.in_features * self.taps)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def latency(self) -> int:
        """Delay of the streamed output against the offline one, in samples."""
        return self.span // 2 if self.padding == "same" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        right = self.latency
        x = F.pad(x, (self.span - right, right))
        return F.conv1d(x, self.weight.flip(-1), self.bias, dilation=self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, taps={self.taps}, "
            f"dilation={self.dilation}, bias={self.bias is not None}, padding={self.padding!r}"
        )


class Activation(nn.Module):
    """A pointwise nonlinearity chosen by name (see :data:`ACTIVATIONS`)."""

    def __init__(self, name: str = "tanh") -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}."
            )
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return repr(self.name)


class Residual(nn.Module):
    """``x + body(x)``; the body must keep the channel count and the rate."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    @property
    def latency(self) -> int:
        """The body's: the skip path is delayed to match it when streamed."""
        return latency(self.body)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
