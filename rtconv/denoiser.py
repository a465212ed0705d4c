"""The shipped speech denoiser: a DFT filterbank with a causal mask network.

Architecture (``arch = "framed_denoiser"``), all causal, streamed exactly by
:class:`rtconv.Streamer` at any block size::

    x (48 kHz) -> StridedConv1d(1 -> 2K, window W, hop H)      analysis, a sqrt-Hann
                                                                DFT (fixed, or trained
                                                                from it)
               -> MaskGate(PairPower -> 1x1 conv -> blocks x    magnitude mask per
                  [dilated causal conv, tanh or leaky ReLU,     pair (K bins), gains
                  1x1] + skip [-> GRU -> 1x1, + skip]           in [floor, 1]
                  -> 1x1 conv -> sigmoid)
               -> TransposedConv1d(2K -> 1, window W, hop H)   overlap-add synthesis

The shipped model keeps the filterbank fixed (``learn_filterbank=False``) and
uses tanh: a trained filterbank drifts away from perfect reconstruction, and
unbounded leaky-ReLU blocks saturate the mask (see ``models/denoiser.md``).

With the defaults (W = 192, H = 96 at 48 kHz: 4 ms windows every 2 ms) the
algorithmic latency is ``W - 1 = 191`` samples (3.98 ms) and the mask network
sees 1 + 2*(2**blocks - 1) frames of context.  There is no resampler: the
model runs at the device rate.

Strength control: :attr:`ConvDenoiser.attenuation_limit_db` caps how much
any band is attenuated (``None``: no cap).  It is part of :attr:`config`, so
it travels with checkpoints, and it can be changed on a loaded model at any
time, also while a :class:`~rtconv.Streamer` built from it is running.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .framed import Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d
from .layers import Activation, MimoConv1d, Residual, _check_int
from .models import Model, register

__all__ = ["ConvDenoiser", "dft_filterbank", "limit_to_floor", "calibrate_gain", "set_attenuation_limit", "set_linked"]


def limit_to_floor(limit_db: float | None) -> float:
    """Mask floor (smallest gain) for an attenuation limit in dB; ``None`` -> 0."""
    if limit_db is None:
        return 0.0
    if isinstance(limit_db, bool) or not isinstance(limit_db, (int, float)) or not limit_db >= 0:
        raise ConfigError(
            f"attenuation_limit_db must be a non-negative number of dB or None, got {limit_db!r}; "
            "e.g. 12 keeps at least -12 dB of every band, None suppresses freely."
        )
    return float(10.0 ** (-float(limit_db) / 20.0))


def set_attenuation_limit(model, limit_db: float | None) -> None:
    """Set a denoiser's strength (``--atten-lim``); refuse, in one sentence, a model without one."""
    if not hasattr(type(model), "attenuation_limit_db"):
        raise ConfigError(
            f"the model ({getattr(model, 'arch', type(model).__name__)!r}) has no attenuation limit: only "
            "denoisers do; leave --atten-lim out for this model."
        )
    model.attenuation_limit_db = None if limit_db is None else float(limit_db)


def set_linked(model, linked: bool) -> None:
    """Process a stereo (or wider) stream's channels with one gain (``--linked``); refuse, in one
    sentence, a model that has no mask to share."""
    gates = [m for m in model.modules() if isinstance(m, MaskGate)] if hasattr(model, "modules") else []
    if not gates:
        raise ConfigError(
            f"the model ({getattr(model, 'arch', type(model).__name__)!r}) has no gains to link: only mask "
            "denoisers do; leave --linked out for this model."
        )
    for g in gates:
        g.linked = bool(linked)


def dft_filterbank(window: int) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly reconstructing sqrt-Hann DFT analysis/synthesis pair.

    Returns ``(analysis, synthesis)`` as impulse-response-order kernels of
    shapes ``(window, 1, window)`` and ``(1, window, window)``; channels are
    laid out ``[cos_0..cos_{K-1}, sin_0..sin_{K-1}]`` with ``K = window/2``
    (``sin_0`` slot holds the Nyquist cosine), so pair ``k`` is bin ``k``.
    With hop ``window/2`` the overlap-add of synthesis(analysis(x)) is ``x``.
    """
    K = window // 2
    n = np.arange(window)
    k = np.arange(K)[:, None]
    cos = np.cos(2 * np.pi * k * n / window)
    sin = np.sin(2 * np.pi * k * n / window)
    sin[0] = np.cos(np.pi * n)
    basis = np.concatenate([cos, sin]) / math.sqrt(window)  # (W, W) rows over window position
    sw = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / window))  # periodic sqrt-Hann
    A = basis * sw
    S = sw[:, None] * np.linalg.inv(A * 1.0 + 0.0) if False else None
    # A is singular where sw = 0 (first sample); solve on the window's support instead
    S = np.linalg.pinv(basis) * sw[:, None]  # (W, W): synthesis rows over window position
    analysis = A[:, None, ::-1]
    synthesis = S.T[None, :, ::-1]
    return np.ascontiguousarray(analysis), np.ascontiguousarray(synthesis)


class ConvDenoiser(Model):
    """Causal learned-filterbank mask denoiser (see the module docstring).

    Parameters
    ----------
    window : int
        Analysis and synthesis window in samples (even); latency ``window - 1``.
    hop : int
        Frame hop in samples; ``window // 2`` reconstructs perfectly at init.
    channels : int
        Width of the mask network.
    blocks : int
        Residual blocks with dilations 1, 2, 4, ... frames.
    taps : int
        Taps of each dilated convolution.
    attenuation_limit_db : float or None
        Strength control: the most any band is attenuated, in dB.
    learn_filterbank : bool
        Train the analysis/synthesis filterbank too (``True``, the original
        recipe) or keep it fixed at the perfectly reconstructing sqrt-Hann DFT
        pair (``False``: its weights get ``requires_grad=False``, so the
        trainer leaves them alone and every mask gain acts on one frequency
        bin).  A freely trained filterbank loses perfect reconstruction: the
        first shipped model's passes clean speech at only 11 dB SI-SDR, which
        caps what any mask can reach (an oracle mask scores PESQ 1.27 through
        it, 2.33 through the DFT pair).
    feature_floor_db : float
        The mask network sees each bin's power as ``log(p + 10**(floor/10))``:
        bins below the floor all look alike.  The first models used -60 dB,
        which hides a quiet microphone's speech (at -70 dBFS every bin is
        under it); -120 keeps input down to 16-bit silence visible.
    activation : str
        Hidden activation of the mask network: ``"leaky_relu"`` (the
        original) or ``"tanh"``.  Unbounded leaky-ReLU residual blocks let
        the hidden state grow several-fold per block as training proceeds,
        until the sigmoid saturates to exactly 0 or 1 and the gradient
        vanishes (the first shipped model's gains are 99.6% exactly 0 or 1,
        which is why more training steps no longer changed it); tanh keeps
        each block's contribution bounded.
    gru : int
        Hidden units of a recurrent branch (:class:`~rtconv.framed.FrameGRU`)
        after the dilated blocks, added residually; 0 (the default) leaves it
        out.  The convolutions see 256 ms; the GRU's memory has no horizon,
        so it can follow a noise floor over seconds (what RNNoise and
        DeepFilterNet use GRUs for).  Its output projection starts at zero,
        so the weights of a model without one load unchanged and give the
        same output (``rtconv train --init``).
    """

    arch = "framed_denoiser"

    def __init__(
        self,
        window: int = 192,
        hop: int = 96,
        channels: int = 96,
        blocks: int = 6,
        taps: int = 3,
        attenuation_limit_db: float | None = None,
        learn_filterbank: bool = True,
        activation: str = "leaky_relu",
        feature_floor_db: float = -60.0,
        gru: int = 0,
    ) -> None:
        super().__init__()
        _check_int("window", window, 4)
        if window % 2:
            raise ConfigError(f"window must be even (pairs of filterbank channels), got {window!r}.")
        _check_int("hop", hop, 1)
        if hop > window:
            raise ConfigError(f"hop {hop!r} exceeds window {window!r}; frames would leave gaps.")
        _check_int("channels", channels, 1)
        _check_int("blocks", blocks, 0)
        _check_int("taps", taps, 1)
        if not isinstance(learn_filterbank, bool):
            raise ConfigError(f"learn_filterbank must be true or false, got {learn_filterbank!r}.")
        if activation not in ("leaky_relu", "tanh"):
            raise ConfigError(f"activation must be 'leaky_relu' or 'tanh', got {activation!r}.")
        if (isinstance(feature_floor_db, bool) or not isinstance(feature_floor_db, (int, float))
                or not -200.0 <= feature_floor_db <= 0.0):
            raise ConfigError(f"feature_floor_db must be a number of dB from -200 to 0, got {feature_floor_db!r}; "
                              "e.g. -120 lets the mask network see input as quiet as -120 dB per bin.")
        _check_int("gru", gru, 0)
        K = window // 2
        feats = PairPower(eps=10.0 ** (float(feature_floor_db) / 10.0))
        layers: list[nn.Module] = [feats, MimoConv1d(K, channels, 1), Activation(activation)]
        for i in range(blocks):
            layers.append(Residual(nn.Sequential(
                MimoConv1d(channels, channels, taps, 2**i),
                Activation(activation),
                MimoConv1d(channels, channels, 1),
            )))
        if gru:
            layers.append(Residual(nn.Sequential(FrameGRU(channels, gru), MimoConv1d(gru, channels, 1))))
        layers += [MimoConv1d(channels, K, 1), Activation("sigmoid")]
        estimator = FrameNet(*layers)
        gate = MaskGate(estimator, pairs=True, floor=limit_to_floor(attenuation_limit_db))
        self.body = nn.Sequential(Framed(StridedConv1d(1, window, window, hop), gate,
                                         TransposedConv1d(window, 1, window, hop)))
        self._config = {"window": window, "hop": hop, "channels": channels, "blocks": blocks, "taps": taps}
        if not learn_filterbank:  # only when set, so configs of learned-filterbank models stay as they were
            self._config["learn_filterbank"] = False
        if activation != "leaky_relu":
            self._config["activation"] = activation
        if feature_floor_db != -60.0:
            self._config["feature_floor_db"] = float(feature_floor_db)
        if gru:
            self._config["gru"] = gru
        self._limit = attenuation_limit_db
        self._init_weights()
        for p in (self.encoder.weight, self.decoder.weight):
            p.requires_grad_(learn_filterbank)

    def _init_weights(self) -> None:
        a, s = dft_filterbank(self.encoder.taps)
        scale = self.encoder.taps / (2.0 * self.encoder.stride)  # overlap-add gain of sqrt-Hann pairs
        with torch.no_grad():
            self.encoder.weight.copy_(torch.from_numpy(a))
            self.decoder.weight.copy_(torch.from_numpy(s / scale))
            for m in self.gate.estimator:
                if isinstance(m, Residual) and isinstance(m.body[0], FrameGRU):
                    # the recurrent branch starts silent: the convolutional mask network's
                    # function is unchanged, so weights of a model without one carry over
                    m.body[-1].weight.zero_()
                    m.body[-1].bias.zero_()
                elif isinstance(m, Residual):
                    m.body[-1].weight.mul_(0.1)  # blocks start near identity
            last = [m for m in self.gate.estimator if isinstance(m, MimoConv1d)][-1]
            last.weight.mul_(0.1)
            last.bias.fill_(3.0)  # gains start near 0.95: the model starts as a pass-through

    # the parts live once, in the body (checkpoints store each tensor once)
    @property
    def encoder(self) -> StridedConv1d:
        return self.body[0].encoder

    @property
    def decoder(self) -> TransposedConv1d:
        return self.body[0].decoder

    @property
    def gate(self) -> MaskGate:
        return self.body[0].body

    @property
    def attenuation_limit_db(self) -> float | None:
        """The most any band is attenuated, in dB (``None``: unlimited)."""
        return self._limit

    @attenuation_limit_db.setter
    def attenuation_limit_db(self, value: float | None) -> None:
        self.gate.floor = limit_to_floor(value)
        self._limit = value

    @property
    def config(self) -> dict:
        return {**self._config, "attenuation_limit_db": self._limit}

    def macs_per_second(self, sample_rate: int = 48000) -> float:
        """Multiply-accumulates per second of audio (convolutions only)."""
        H = self.encoder.stride
        per_frame = self.encoder.weight.numel() + self.decoder.weight.numel()
        per_frame += sum(m.weight.numel() for m in self.gate.estimator.modules() if isinstance(m, MimoConv1d))
        per_frame += sum(3 * m.hidden * (m.in_features + m.hidden) for m in self.gate.estimator.modules()
                         if isinstance(m, FrameGRU))
        return per_frame * sample_rate / H


register(ConvDenoiser)


def calibrate_gain(model: ConvDenoiser, pairs) -> float:
    """Scale the decoder so the output level matches clean speech; return the gain applied.

    A scale-invariant loss (SI-SDR) leaves the output level free; this picks
    the one least-squares gain ``g = sum <y, s> / sum <y, y>`` over
    ``pairs`` of ``(noisy, clean)`` 1-D arrays (use training or validation
    data, never the test set) and folds it into the decoder weights, so the
    streamed output needs no extra operation.
    """
    num = den = 0.0
    model.eval()
    with torch.no_grad():
        for noisy, clean in pairs:
            y = model(torch.as_tensor(np.asarray(noisy, np.float32)).view(1, 1, -1))[0, 0].double().numpy()
            s = np.asarray(clean, np.float64).reshape(-1)
            num += float(y @ s)
            den += float(y @ y)
        g = num / den if den > 0 else 1.0
        model.decoder.weight.mul_(g)
    return g
