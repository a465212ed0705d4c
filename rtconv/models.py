"""The model architectures rtconv trains, saves, streams and shows.

Every model is a :class:`Model`: a ``torch.nn.Module`` whose ``forward``
maps ``(batch, in_channels, time)`` to ``(batch, out_channels, time)`` of the
same length, whose body is a sequence of :mod:`rtconv.layers` modules the
streamer knows how to run block by block, and whose :attr:`Model.config` is
a JSON-able dict such that ``build(model.arch, model.config)`` rebuilds the
same architecture (weights travel separately, see :mod:`rtconv.checkpoint`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .layers import Activation, ConvLayer, MimoConv1d, Residual, _check_int, _check_padding, latency, receptive_field

__all__ = ["Model", "FIR", "MimoCNN", "DilatedCNN", "ARCHITECTURES", "build", "register", "conv_layers", "load_extra_architectures",
           "transfer_weights"]


def conv_layers(module: nn.Module) -> list[ConvLayer]:
    """All convolution layers of ``module`` in signal-flow order."""
    return [m for m in module.modules() if isinstance(m, ConvLayer)]


class Model(nn.Module):
    """Base class: a body of streamable layers plus what tools need to know.

    Attributes
    ----------
    arch : str
        Registry name of the architecture (a key of :data:`ARCHITECTURES`).
    sample_rate : int or None
        Rate the model was designed or trained for, in Hz, if known.
    metadata : dict
        Checkpoint metadata when loaded from a file, else empty.
    """

    arch: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.sample_rate: int | None = None
        self.metadata: dict = {}

    body: nn.Sequential

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture."""
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        return conv_layers(self)[0].in_features

    @property
    def out_channels(self) -> int:
        return conv_layers(self)[-1].out_features

    @property
    def latency(self) -> int:
        """Samples by which the streamed output lags the offline output (the layers' own, summed)."""
        return latency(self.body)

    @property
    def receptive_field(self) -> int:
        """Input samples that influence one output sample (the layers' own, combined)."""
        return receptive_field(self.body)

    @property
    def recurrent(self) -> bool:
        """Whether some layer carries a recurrent state (unbounded memory).

        Then :attr:`receptive_field` counts the convolutions only, and an
        exact result over a long signal needs one pass from its start (the
        streamer, or one ``forward``), not overlapping chunks.
        """
        return any(getattr(type(m), "recurrent", False) is True for m in self.modules())

    def history_frames(self, rate: int) -> int:
        """Input frames (at ``rate`` Hz) a stream needs behind it before its output stops depending on where it began.

        A convolutional model's reach, ``receptive_field - 1``: after that the
        stream is exact.  A recurrent state never forgets exactly, so it gets
        at least a quarter second, at most two.  Used to start a file from its
        own first frames (:func:`rtconv.files.prime_frames`) and to warm a
        model swapped into a live stream before it is heard.
        """
        reach = max(0, self.receptive_field - 1)
        if not self.recurrent:
            return reach
        return int(min(max(reach, rate // 4), 2 * rate))

    @property
    def causal(self) -> bool:
        return all(layer.padding == "causal" for layer in conv_layers(self))

    def conv_layers(self) -> list[ConvLayer]:
        return conv_layers(self)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{type(self).__name__} expects a (batch, {self.in_channels}, time) "
                f"tensor, got shape {tuple(x.shape)}."
            )
        return self.body(x)


def _check_kernel(kernel) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 1 or k.size < 1:
        raise ConfigError(
            f"an FIR kernel must be a non-empty 1-D array of taps, got shape {k.shape}."
        )
    if not np.all(np.isfinite(k)):
        bad = int(np.flatnonzero(~np.isfinite(k))[0])
        raise ConfigError(
            f"an FIR kernel must be finite, but tap {bad} is {float(k[bad])!r}; fix the design."
        )
    return k


class FIR(Model):
    """One FIR filter, fixed or learnable.

    ``FIR(kernel)`` takes the taps in impulse-response order (``kernel[0]``
    multiplies the current sample); ``FIR(taps=21)`` makes a learnable
    filter initialised at random.  ``learnable`` defaults to ``False`` for a
    given kernel and ``True`` for ``taps=N``; either can be overridden (a
    saved fixed filter is rebuilt as ``FIR(taps=N, learnable=False)`` and
    its taps loaded from the checkpoint).
    """

    arch = "fir"

    def __init__(
        self,
        kernel: Sequence[float] | np.ndarray | None = None,
        *,
        taps: int | None = None,
        learnable: bool | None = None,
        padding: str = "causal",
        bias: bool = False,
    ) -> None:
        super().__init__()
        if kernel is None and taps is None:
            raise ConfigError("FIR needs a kernel (1-D taps) or taps=N for a learnable filter.")
        if kernel is not None:
            k = _check_kernel(kernel)
            if taps is not None and taps != k.size:
                raise ConfigError(f"taps={taps!r} disagrees with a kernel of {k.size} taps.")
            taps = k.size
        taps = _check_int("taps", taps, 1)
        self.learnable = (kernel is None) if learnable is None else bool(learnable)
        self._padding = _check_padding(padding)
        conv = MimoConv1d(1, 1, taps, bias=bias, padding=padding)
        if kernel is not None:
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(k).view(1, 1, -1))
                if conv.bias is not None:
                    conv.bias.zero_()
        conv.weight.requires_grad_(self.learnable)
        self.body = nn.Sequential(conv)

    @property
    def config(self) -> dict:
        conv = self.body[0]
        return {
            "taps": conv.taps,
            "learnable": self.learnable,
            "padding": self._padding,
            "bias": conv.bias is not None,
        }

    @property
    def kernel(self) -> np.ndarray:
        """The taps, impulse-response order, as a 1-D NumPy array."""
        return self.body[0].kernel[0, 0]


class MimoCNN(Model):
    """Stacked MIMO convolutions with a nonlinearity between layers.

    ``MimoCNN(taps=[40, 40], features=[1, 5, 1])`` is the classic
    denoiser: layer ``l`` maps ``features[l]`` to ``features[l+1]`` channels
    with ``taps[l]`` taps, ``activation`` is applied between layers and not
    after the last one.
    """

    arch = "mimo_cnn"

    def __init__(
        self,
        taps: Sequence[int] = (40, 40),
        features: Sequence[int] = (1, 5, 1),
        activation: str = "tanh",
        dilations: Sequence[int] | None = None,
        bias: bool = True,
        padding: str = "causal",
    ) -> None:
        super().__init__()
        taps, features = list(taps), list(features)
        if len(taps) < 1:
            raise ConfigError("MimoCNN needs at least one layer: taps=[] was given.")
        if len(features) != len(taps) + 1:
            raise ConfigError(
                f"features must list layers + 1 = {len(taps) + 1} channel counts "
                f"(input, each layer's output), got {len(features)}: {features!r}."
            )
        dilations = [1] * len(taps) if dilations is None else list(dilations)
        if len(dilations) != len(taps):
            raise ConfigError(
                f"dilations must have one entry per layer ({len(taps)}), got {dilations!r}."
            )
        Activation(activation)  # validates the name
        layers: list[nn.Module] = []
        for i, (k, d) in enumerate(zip(taps, dilations, strict=True)):
            layers.append(MimoConv1d(features[i], features[i + 1], k, d, bias, padding))
            if i < len(taps) - 1:
                layers.append(Activation(activation))
        self.body = nn.Sequential(*layers)
        self._config = {
            "taps": taps,
            "features": features,
            "activation": activation,
            "dilations": dilations,
            "bias": bias,
            "padding": padding,
        }

    @property
    def config(self) -> dict:
        return dict(self._config)


class DilatedCNN(Model):
    """A TCN-style dilated causal CNN.

    ``layers`` dilated convolutions with dilations 1, 2, 4, ... ``2**(layers-1)``
    (``channels`` wide, ``taps`` taps each), a nonlinearity after each, residual
    connections around all but the first, and a final 1x1 layer to
    ``out_channels``.  The receptive field is ``1 + (taps-1)*(2**layers - 1)``.
    """

    arch = "dilated_cnn"

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: int = 16,
        layers: int = 4,
        taps: int = 3,
        activation: str = "tanh",
        residual: bool = True,
        padding: str = "causal",
    ) -> None:
        super().__init__()
        _check_int("layers", layers, 1)
        _check_int("channels", channels, 1)
        Activation(activation)
        mods: list[nn.Module] = [
            MimoConv1d(in_channels, channels, taps, 1, True, padding),
            Activation(activation),
        ]
        for i in range(1, layers):
            block = nn.Sequential(
                MimoConv1d(channels, channels, taps, 2**i, True, padding),
                Activation(activation),
            )
            mods.append(Residual(block) if residual else block)
        mods.append(MimoConv1d(channels, out_channels, 1, 1, True, padding))
        self.body = nn.Sequential(*mods)
        self._config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "channels": channels,
            "layers": layers,
            "taps": taps,
            "activation": activation,
            "residual": residual,
            "padding": padding,
        }

    @property
    def config(self) -> dict:
        return dict(self._config)


ARCHITECTURES: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Make an architecture known to :func:`build` (and so to checkpoints)."""
    if not cls.arch:
        raise ConfigError(f"{cls.__name__} needs a non-empty 'arch' name to be registered.")
    ARCHITECTURES[cls.arch] = cls
    return cls


for _cls in (FIR, MimoCNN, DilatedCNN):
    register(_cls)


def load_extra_architectures() -> None:
    """Import the modules that register architectures outside this one (the denoiser, the classifiers)."""
    import importlib

    for name in ("rtconv.denoiser", "rtconv.classifier"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def build(arch: str, config: dict) -> Model:
    """Instantiate architecture ``arch`` with constructor arguments ``config``."""
    if arch not in ARCHITECTURES:
        load_extra_architectures()
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}."
        ) from None
    try:
        return cls(**config)
    except TypeError as e:
        raise ConfigError(f"bad arguments for architecture {arch!r}: {e}.") from None




def transfer_weights(src: nn.Module, dst: nn.Module) -> tuple[int, int]:
    """Copy ``src``'s parameters into a grown architecture ``dst``; return ``(copied, left)``.

    Tensors are matched by name and shape first; the rest in order, each
    ``src`` tensor to the next unmatched ``dst`` tensor of its shape (a layer
    inserted before the output layer shifts the output layer's name, not its
    place in the order).  ``dst``'s other parameters keep their
    initialisation: architectures that grow start a new branch at zero (see
    ``ConvDenoiser(gru=...)``), so the grown model computes what ``src``
    did until it is trained.  An architecture whose tensors change shape as it
    grows maps them itself: ``dst.transfer_from(src)`` returns ``(copied, left)``
    or ``None`` for the generic matching.  Raises :class:`ConfigError` if a ``src``
    tensor has no place in ``dst``.
    """
    own = getattr(dst, "transfer_from", None)  # an architecture that knows how to widen itself
    done = own(src) if own is not None else None
    if done is not None:
        return done
    s_params, d_params = dict(src.named_parameters()), dict(dst.named_parameters())
    todo = [n for n in s_params if not (n in d_params and d_params[n].shape == s_params[n].shape)]
    pairs = [(n, n) for n in s_params if n not in todo]
    free = [n for n in d_params if n not in {d for _, d in pairs}]
    for n in todo:
        match = next((d for d in free if d_params[d].shape == s_params[n].shape), None)
        if match is None:
            raise ConfigError(
                f"parameter {n!r} {tuple(s_params[n].shape)} has no place in the new architecture; "
                "only architectures that add layers can start from a smaller model's weights."
            )
        free = free[free.index(match) + 1:]  # keep the order
        pairs.append((n, match))
    with torch.no_grad():
        for a, b in pairs:
            d_params[b].copy_(s_params[a])
    return len(pairs), len(d_params) - len(pairs)
