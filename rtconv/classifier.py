"""Classifiers as streamable models: per-sample class probabilities.

A classifier here is an ordinary :class:`rtconv.models.Model`: samples in,
one probability track per class out, ``(batch, classes, time)`` of the same
length as the input.  Several classes end in :class:`ChannelSoftmax` (the
tracks sum to 1 at every sample); one class ends in a sigmoid (the
probability that the class is present).  So :class:`rtconv.Streamer`,
checkpoints, ``rtconv info`` and ``rtconv process`` treat a classifier like
any filter, and the streamed tracks equal the offline ones delayed by
:attr:`~rtconv.models.Model.latency`, at any block size.

:class:`LinearClassifier` (``arch = "linear_classifier"``)
    One causal convolution from the input to the class logits, then the
    softmax: the baseline, linear in the waveform before the softmax.
:class:`ConvClassifier` (``arch = "conv_classifier"``)
    A causal dilated CNN (a nonlinearity after every layer, residual
    connections), a learned causal window over its features, and a 1x1
    layer to the class logits.
:class:`FramedVAD` (``arch = "framed_vad"``)
    Voice activity at the frame rate: a fixed Hann-windowed DFT (every
    ``band_step``-th bin of the window, up to ``bands`` bands) as a strided
    convolution, compressed band powers (:class:`~rtconv.framed.PairPower`),
    a causal dilated CNN over frames, a sigmoid, and a decoder that holds
    each frame's probability over that frame's ``hop`` samples
    (:class:`~rtconv.framed.TransposedConv1d` with unit taps).  Latency
    ``hop - 1`` samples (9.98 ms with the default 480-sample hop at 48 kHz).
    Built from the engine's own layers only, so anything that runs the
    denoiser (streamer, ONNX step model) runs it too.

Importing this module registers the architectures and
:class:`ChannelSoftmax`'s streaming cell.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .framed import Framed, FrameGRU, FrameNet, PairPower, StridedConv1d, TransposedConv1d
from .layers import Activation, MimoConv1d, Residual, _check_int, _check_padding
from .models import Model, register
from .cells import Cell, register_cell

__all__ = ["ChannelSoftmax", "LinearClassifier", "ConvClassifier", "FramedVAD", "band_filterbank", "macs_per_second"]


class ChannelSoftmax(nn.Module):
    """Softmax over the channel axis: ``(B, C, T)`` logits to ``C`` probability tracks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


class _SoftmaxCell(Cell):
    """Stateless: each sample's channels are normalised on their own, so any block size is exact."""

    kind = "pointwise"

    def process(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


# masked like an activation: in a model with latency, the next centred layer must see zeros
# (not softmax(0) = 1/C) before the start and after the end, as the offline zero padding gives
# (no row-major form: a frame-rate body holding one runs in columns)
register_cell(ChannelSoftmax, lambda module, ctx: None if ctx.rows else ctx.masked(_SoftmaxCell(), module))


def _head(classes: int) -> nn.Module:
    return ChannelSoftmax() if classes > 1 else Activation("sigmoid")


class LinearClassifier(Model):
    """Baseline: class logits linear in the last ``taps`` samples, then softmax (sigmoid for one class).

    Parameters
    ----------
    classes : int
        Output probability tracks.
    taps : int
        Length of the single convolution, in samples.
    in_channels : int
    padding : {"causal", "same"}
    """

    arch = "linear_classifier"

    def __init__(self, classes: int = 4, taps: int = 64, in_channels: int = 1, padding: str = "causal") -> None:
        super().__init__()
        _check_int("classes", classes, 1)
        self.body = nn.Sequential(MimoConv1d(in_channels, classes, taps, 1, True, _check_padding(padding)),
                                  _head(classes))
        self._config = {"classes": classes, "taps": taps, "in_channels": in_channels, "padding": padding}

    @property
    def config(self) -> dict:
        return dict(self._config)


class ConvClassifier(Model):
    """Causal dilated CNN classifier: per-sample class probabilities.

    ``MimoConv1d(in, channels, taps)`` and ``layers - 1`` residual dilated
    convolutions (dilations 2, 4, ...), each followed by ``activation``; then
    ``MimoConv1d(channels, channels, window)`` (a learned causal window over
    the features: with a rectifying activation before it, it measures how
    much of each feature the last ``window`` samples held), the activation,
    and a 1x1 layer to ``classes`` logits and the softmax (sigmoid for one
    class).  Receptive field ``taps + (taps-1)(2**layers - 2) + window - 1``.
    """

    arch = "conv_classifier"

    def __init__(self, classes: int = 4, channels: int = 16, layers: int = 4, taps: int = 3, window: int = 64,
                 activation: str = "relu", in_channels: int = 1, padding: str = "causal") -> None:
        super().__init__()
        for name, v, lo in (("classes", classes, 1), ("channels", channels, 1), ("layers", layers, 1),
                            ("taps", taps, 1), ("window", window, 1), ("in_channels", in_channels, 1)):
            _check_int(name, v, lo)
        _check_padding(padding)
        Activation(activation)
        mods: list[nn.Module] = [MimoConv1d(in_channels, channels, taps, 1, True, padding), Activation(activation)]
        for i in range(1, layers):
            mods.append(Residual(nn.Sequential(MimoConv1d(channels, channels, taps, 2**i, True, padding),
                                               Activation(activation))))
        mods += [MimoConv1d(channels, channels, window, 1, True, padding), Activation(activation),
                 MimoConv1d(channels, classes, 1, 1, True, padding), _head(classes)]
        self.body = nn.Sequential(*mods)
        self._config = {"classes": classes, "channels": channels, "layers": layers, "taps": taps,
                        "window": window, "activation": activation, "in_channels": in_channels,
                        "padding": padding}

    @property
    def config(self) -> dict:
        return dict(self._config)


def band_filterbank(window: int, bands: int, band_step: int = 2, first: int = 1) -> np.ndarray:
    """Hann-windowed DFT pairs at bins ``first, first + band_step, ...`` of a ``window``-sample frame.

    Returns an impulse-response-order kernel ``(2 * bands, 1, window)``,
    channels ``[cos_0..cos_{B-1}, sin_0..sin_{B-1}]`` (the layout
    :class:`~rtconv.framed.PairPower` expects), scaled so that a full-scale
    sine at a band's centre gives a pair power of about 1.  Band ``b`` is
    centred at ``(first + b * band_step) / window`` cycles per sample
    (200 Hz steps for window 480, step 2 at 48 kHz).
    """
    _check_int("window", window, 2)
    _check_int("bands", bands, 1)
    _check_int("band_step", band_step, 1)
    _check_int("first", first, 0)
    top = first + (bands - 1) * band_step
    if top >= window // 2:
        raise ConfigError(
            f"bands={bands!r} with band_step={band_step!r} reach DFT bin {top}, above the {window // 2} bins of a "
            f"{window}-sample window; use fewer bands or a smaller step."
        )
    n = np.arange(window)  # n = 0 is the oldest sample of the window
    w = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / window)
    k = (first + band_step * np.arange(bands))[:, None]
    scale = 2.0 / w.sum()
    cos = np.cos(2 * np.pi * k * n / window) * w * scale
    sin = np.sin(2 * np.pi * k * n / window) * w * scale
    analysis = np.concatenate([cos, sin])[:, None, ::-1]  # time order -> impulse-response order
    return np.ascontiguousarray(analysis)


class FramedVAD(Model):
    """Frame-rate voice activity detector: the probability of speech, per sample.

    Parameters
    ----------
    window : int
        Analysis window in samples (480 = 10 ms at 48 kHz: every sample is
        seen by one frame).
    hop : int
        Frame hop in samples (480 = 10 ms); latency ``hop - 1``.
    bands : int
        Spectral bands the network sees (40: 100, 300, ... 7900 Hz at 48 kHz).
    band_step : int
        DFT bins of the window between bands (2: 200 Hz steps for window
        480, where the Hann main lobe is 200 Hz wide on each side, so no
        frequency falls between bands).
    channels : int
        Width of the frame network.
    layers : int
        Causal dilated convolutions over frames (dilations 1, 2, 4, ...);
        the network sees ``1 + (taps-1)(2**layers - 1)`` frames.
    taps : int
    gru : int
        Hidden units of a recurrent branch (:class:`~rtconv.framed.FrameGRU`):
        memory beyond the convolutions (a noise floor, a speaker's level
        over seconds); 0 leaves it out.  Measured on the validation split:
        frame AUC 0.863 with five dilated layers and no GRU, 0.884 with
        three and a 16-unit GRU, at about the same cost per frame.
    feature_floor_db : float
        Band powers below this level (dB re a full-scale sine) all look alike.
    learn_filterbank : bool
        Train the analysis filterbank too (default: fixed).
    first_taps : int
        Frames the first layer sees at once, before any nonlinearity: more
        than one lets it compare a band's power with the frames before it
        (onsets, a level that changes), whatever the absolute level.
    """

    arch = "framed_vad"

    def __init__(self, window: int = 480, hop: int = 480, bands: int = 40, band_step: int = 2, channels: int = 32,
                 layers: int = 3, taps: int = 3, gru: int = 16, feature_floor_db: float = -110.0,
                 learn_filterbank: bool = False, first_taps: int = 1) -> None:
        super().__init__()
        _check_int("window", window, 2)
        _check_int("hop", hop, 1)
        if hop > window:
            raise ConfigError(f"hop {hop!r} exceeds window {window!r}; frames would leave samples unseen.")
        for name, v, lo in (("channels", channels, 1), ("layers", layers, 0), ("taps", taps, 1), ("gru", gru, 0),
                            ("first_taps", first_taps, 1)):
            _check_int(name, v, lo)
        if (isinstance(feature_floor_db, bool) or not isinstance(feature_floor_db, (int, float))
                or not -200.0 <= feature_floor_db <= 0.0):
            raise ConfigError(f"feature_floor_db must be a number of dB from -200 to 0, got {feature_floor_db!r}.")
        if not isinstance(learn_filterbank, bool):
            raise ConfigError(f"learn_filterbank must be true or false, got {learn_filterbank!r}.")
        kernel = band_filterbank(window, bands, band_step)
        encoder = StridedConv1d(1, 2 * bands, window, hop)
        # 0.1 * ln(power): about 0.43 per 10 dB, so the usual range of levels stays near [-3, 1]
        mods: list[nn.Module] = [PairPower(scale=0.1, eps=10.0 ** (float(feature_floor_db) / 10.0)),
                                 MimoConv1d(bands, channels, first_taps), Activation("tanh")]
        for i in range(layers):
            mods.append(Residual(nn.Sequential(MimoConv1d(channels, channels, taps, 2**i), Activation("tanh"))))
        if gru:
            mods.append(Residual(nn.Sequential(FrameGRU(channels, gru), MimoConv1d(gru, channels, 1))))
        mods += [MimoConv1d(channels, 1, 1), Activation("sigmoid")]
        decoder = TransposedConv1d(1, 1, hop, hop)
        self.body = nn.Sequential(Framed(encoder, FrameNet(*mods), decoder))
        with torch.no_grad():
            encoder.weight.copy_(torch.from_numpy(kernel))
            decoder.weight.fill_(1.0)  # hold: frame j's probability on samples j*hop .. (j+1)*hop - 1
        encoder.weight.requires_grad_(learn_filterbank)
        decoder.weight.requires_grad_(False)
        self._config = {"window": window, "hop": hop, "bands": bands, "band_step": band_step,
                        "channels": channels, "layers": layers, "taps": taps, "gru": gru,
                        "feature_floor_db": float(feature_floor_db), "learn_filterbank": learn_filterbank,
                        "first_taps": first_taps}

    @property
    def config(self) -> dict:
        return dict(self._config)

    @property
    def hop(self) -> int:
        """Samples per decision (frame hop)."""
        return self.body[0].encoder.stride

    def macs_per_second(self, sample_rate: int = 48000) -> float:
        """Multiply-accumulates per second of audio (filterbank, frame network, hold)."""
        fr = self.body[0]
        per_frame = fr.encoder.weight.numel() + fr.decoder.weight.numel()
        per_frame += sum(m.weight.numel() for m in fr.body.modules() if isinstance(m, MimoConv1d))
        per_frame += sum(3 * m.hidden * (m.in_features + m.hidden) for m in fr.body.modules()
                         if isinstance(m, FrameGRU))
        return per_frame * sample_rate / fr.encoder.stride


for _cls in (LinearClassifier, ConvClassifier, FramedVAD):
    register(_cls)


def macs_per_second(model: Model, sample_rate: int) -> float:
    """Multiply-accumulates per second of audio for a sample-rate model (convolutions only)."""
    if hasattr(model, "macs_per_second"):
        return float(model.macs_per_second(sample_rate))
    return float(sum(layer.weight.numel() for layer in model.conv_layers()) * sample_rate)

