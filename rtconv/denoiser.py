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
unbounded leaky-ReLU blocks saturate the mask (the README's "In-domain: espeak-ng test set").

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

__all__ = ["ConvDenoiser", "dft_filterbank", "asymmetric_filterbank", "limit_to_floor", "calibrate_gain", "set_attenuation_limit", "set_linked"]


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


def _which(model) -> str:
    """``'speech-band' (fir)`` for a checkpoint with a name, ``('fir')`` for a bare model: what a refusal calls it."""
    arch = getattr(model, "arch", type(model).__name__)
    name = (getattr(model, "metadata", None) or {}).get("name")
    return f"{name!r} ({arch})" if name else f"({arch!r})"


def set_attenuation_limit(model, limit_db: float | None) -> None:
    """Set a denoiser's strength (``--atten-lim``); refuse, in one sentence, a model without one."""
    if not hasattr(type(model), "attenuation_limit_db"):
        raise ConfigError(
            f"the model {_which(model)} has no attenuation limit: only "
            "denoisers do; leave --atten-lim out for this model."
        )
    model.attenuation_limit_db = None if limit_db is None else float(limit_db)


def set_linked(model, linked: bool) -> None:
    """Process a stereo (or wider) stream's channels with one gain (``--linked``); refuse, in one
    sentence, a model that has no mask to share."""
    gates = [m for m in model.modules() if isinstance(m, MaskGate)] if hasattr(model, "modules") else []
    if not gates:
        raise ConfigError(
            f"the model {_which(model)} has no gains to link: only mask "
            "denoisers do; leave --linked out for this model."
        )
    for g in gates:
        g.linked = bool(linked)


def _hann(length: int, n: np.ndarray) -> np.ndarray:
    """Periodic Hann window of ``length`` at positions ``n``."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / length)


def _dft_basis(window: int) -> np.ndarray:
    """The real DFT of ``window`` samples as a square matrix, rows ``[cos_0..cos_{K-1}, sin_0..sin_{K-1}]``
    over window position (``sin_0`` holds the Nyquist cosine), scaled by ``1/sqrt(window)``; invertible."""
    n = np.arange(window)
    k = np.arange(window // 2)[:, None]
    cos = np.cos(2 * np.pi * k * n / window)
    sin = np.sin(2 * np.pi * k * n / window)
    sin[0] = np.cos(np.pi * n)
    return np.concatenate([cos, sin]) / math.sqrt(window)


def dft_filterbank(window: int) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly reconstructing sqrt-Hann DFT analysis/synthesis pair.

    Returns ``(analysis, synthesis)`` as impulse-response-order kernels of
    shapes ``(window, 1, window)`` and ``(1, window, window)``; channels are
    laid out ``[cos_0..cos_{K-1}, sin_0..sin_{K-1}]`` with ``K = window/2``
    (``sin_0`` slot holds the Nyquist cosine), so pair ``k`` is bin ``k``.
    With hop ``window/2`` the overlap-add of synthesis(analysis(x)) is ``x``.
    """
    basis = _dft_basis(window)
    sw = np.sqrt(_hann(window, np.arange(window)))  # periodic sqrt-Hann
    A = basis * sw
    # A is singular where sw = 0 (first sample); invert the basis and window the result instead
    S = np.linalg.pinv(basis) * sw[:, None]  # (W, W): synthesis rows over window position
    analysis = A[:, None, ::-1]
    synthesis = S.T[None, :, ::-1]
    return np.ascontiguousarray(analysis), np.ascontiguousarray(synthesis)



def asymmetric_filterbank(analysis: int, synthesis: int) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly reconstructing DFT pair with a long analysis and a short synthesis window.

    The analysis window (``analysis`` samples: frequency resolution ``rate / analysis``)
    rises as the square root of a Hann window of ``2 * (analysis - synthesis / 2)`` and
    falls over its newest ``synthesis / 2`` samples as a square-root Hann of
    ``synthesis``; the synthesis window covers only the newest ``synthesis`` samples and
    is chosen so that analysis times synthesis there is a Hann window of ``synthesis``,
    which overlap-adds to one at hop ``synthesis / 2``.  Latency is that of the short
    window (``synthesis - 1`` samples) while every gain acts on a bin ``analysis /
    synthesis`` times narrower (Mauler & Martin, "A low delay, variable resolution,
    perfect reconstruction spectral analysis-synthesis system for speech enhancement",
    EUSIPCO 2007).  With ``analysis == synthesis`` it is :func:`dft_filterbank`'s pair.

    Returns ``(analysis_kernel, synthesis_kernel)`` of shapes ``(analysis, 1, analysis)``
    and ``(1, analysis, synthesis)`` in impulse-response order, channels laid out as in
    :func:`dft_filterbank` (pair ``k`` is bin ``k`` of the long window).
    """
    N, S = int(analysis), int(synthesis)
    if S < 2 or S % 2 or N % 2 or N < S:
        raise ConfigError(f"an asymmetric filterbank needs even windows with analysis >= synthesis, got "
                          f"analysis {analysis!r} and synthesis {synthesis!r}.")
    M = S // 2
    n = np.arange(N)
    basis = _dft_basis(N)
    wa = np.where(n < N - M, np.sqrt(_hann(2 * (N - M), n)), np.sqrt(_hann(S, n - (N - S))))
    tail = n[N - S:]
    ws = _hann(S, tail - (N - S)) / np.where(wa[N - S:] > 0, wa[N - S:], 1.0)
    A = basis * wa
    inv = np.linalg.inv(basis)  # (positions, channels): the frame back from its coefficients
    Ssyn = inv[N - S:] * ws[:, None]  # the newest S positions, weighted by the synthesis window
    analysis_k = A[:, None, ::-1]
    synthesis_k = Ssyn.T[None, :, ::-1]
    return np.ascontiguousarray(analysis_k), np.ascontiguousarray(synthesis_k)


class ConvDenoiser(Model):
    """Causal learned-filterbank mask denoiser (see the module docstring).

    Parameters
    ----------
    window : int
        Synthesis window in samples (even), and the analysis window unless
        ``analysis_window`` is set; latency ``window - 1``.
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
    analysis_window : int or None
        A longer analysis window than ``window`` (even, a multiple of it
        is usual): :func:`asymmetric_filterbank`, gains on bins of
        ``rate / analysis_window`` Hz (62.5 Hz at 768 and 48 kHz, narrower
        than a voice's harmonic spacing) at the latency of ``window``.
        ``None`` (default): the symmetric pair of ``window``.  Needs
        ``hop == window // 2``.  A model grown into it from one without
        (``--resume ... --arch-arg analysis_window=768``) starts with each
        old band's weights spread over the bins it covers.
    deep_filter : [bins, order, dilation] or None
        Deep filtering of the lowest ``bins`` bins (1..bins) by a complex FIR
        over ``order`` frames ``dilation`` hops apart (see
        :class:`~rtconv.framed.MaskGate`): at 250 Hz bins a voice's harmonics
        share a bin, and a filter over the bin's past frames can keep them and
        remove the noise between.  Adds ``2*order*bins`` outputs to the mask
        network's last layer; they start at a zero filter, so a model grown
        into it (``--resume ... --arch-arg deep_filter=[24,8,1]``) starts as
        the plain mask it came from.  No latency: the filter uses past frames.
    phase_features : int
        Also show the mask network the phase advance over one frame of bins
        1..``phase_features`` (:class:`~rtconv.framed.PairPower`): where in a
        250 Hz bin its energy lies, which log energies do not tell and a deep
        filter's coefficients depend on.  0 (the default) leaves them out;
        their first-layer weights start at zero, so a model grown into them
        starts at its old output.
    presence : int
        Hidden units of a speech-presence head (0, the default: none): a 1x1
        layer, a GRU and a sigmoid reading the gains each frame, which scale
        the frame's gains and deep filter by ``pf + (1 - pf) * p`` (see
        :class:`~rtconv.framed.MaskGate`): a frame the head calls noise is
        closed by up to ``presence_floor_db`` more than the mask closes it.
        The mask learns which bins hold speech; the head learns whether the
        frame holds any, over the GRU's memory, and trains alone on a frozen
        mask network (``rtconv train --resume ... --arch-arg presence=32
        --train-only presence --loss presence``: the target's speech activity,
        :func:`rtconv.train.losses.presence_loss`).  It starts open (``p``
        0.95..0.99 everywhere: -0.4..-0.1 dB).
    presence_floor_db : float
        The most the presence head closes a frame, in dB (default 30).
    presence_range : [lo, hi]
        How the head's probability becomes the frame's scale (default
        ``[0, 1]``: the probability itself): frames with ``p >= hi`` pass
        whole, frames with ``p <= lo`` are closed by ``presence_floor_db``,
        linearly between (:func:`rtconv.framed.presence_scale`).  A head
        trained on speech activity is about 80 % sure on speech, which as a
        gain would take 2 dB off it (model card, twelfth session).
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
        analysis_window: int | None = None,
        deep_filter=None,
        phase_features: int = 0,
        presence: int = 0,
        presence_floor_db: float = 30.0,
        presence_range=(0.0, 1.0),
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
        if analysis_window is not None:
            _check_int("analysis_window", analysis_window, 4)
            if analysis_window % 2 or analysis_window < window or hop * 2 != window:
                raise ConfigError(
                    f"analysis_window must be even and at least window ({window}), with hop = window / 2 "
                    f"({window // 2}); got analysis_window {analysis_window!r} and hop {hop!r}.")
        analysis = window if analysis_window is None else int(analysis_window)
        K = analysis // 2
        if deep_filter is not None:
            if (not isinstance(deep_filter, (list, tuple)) or len(deep_filter) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in deep_filter)
                    or deep_filter[0] > K - 1):
                raise ConfigError(
                    f"deep_filter must be [bins, order, dilation], positive integers with bins at most {K - 1} "
                    f"(this window's bins above DC), got {deep_filter!r}; e.g. [24, 8, 1] filters up to "
                    f"{24 * 48000 // analysis} Hz at 48 kHz over 8 frames.")
            deep_filter = [int(v) for v in deep_filter]
        extra = 0 if deep_filter is None else 2 * deep_filter[0] * deep_filter[1]
        if isinstance(phase_features, bool) or not isinstance(phase_features, int) or not 0 <= phase_features < K:
            raise ConfigError(f"phase_features must be a number of bins from 0 to {K - 1}, got {phase_features!r}; "
                              "e.g. the deep filter's bins.")
        feats = PairPower(eps=10.0 ** (float(feature_floor_db) / 10.0), phase_bins=phase_features)
        layers: list[nn.Module] = [feats, MimoConv1d(K + 2 * phase_features, channels, 1), Activation(activation)]
        for i in range(blocks):
            layers.append(Residual(nn.Sequential(
                MimoConv1d(channels, channels, taps, 2**i),
                Activation(activation),
                MimoConv1d(channels, channels, 1),
            )))
        if gru:
            layers.append(Residual(nn.Sequential(FrameGRU(channels, gru), MimoConv1d(gru, channels, 1))))
        layers += [MimoConv1d(channels, K + extra, 1), Activation("sigmoid")]
        estimator = FrameNet(*layers)
        _check_int("presence", presence, 0)
        if (isinstance(presence_floor_db, bool) or not isinstance(presence_floor_db, (int, float))
                or not 0.0 <= presence_floor_db <= 120.0):
            raise ConfigError(f"presence_floor_db must be a number of dB from 0 to 120, got {presence_floor_db!r}; "
                              "e.g. 30 lets the presence head close a noise-only frame by up to 30 dB more.")
        if (not isinstance(presence_range, (list, tuple)) or len(presence_range) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in presence_range)
                or not 0.0 <= presence_range[0] < presence_range[1] <= 1.0):
            raise ConfigError(f"presence_range must be two probabilities [lo, hi] with 0 <= lo < hi <= 1, got "
                              f"{presence_range!r}; e.g. [0.3, 0.6] passes frames the head is 60 % sure of whole.")
        head = None
        if presence:
            head = FrameNet(MimoConv1d(K, presence, 1), Activation("tanh"), FrameGRU(presence, presence),
                            MimoConv1d(presence, 1, 1), Activation("sigmoid"))
        gate = MaskGate(estimator, pairs=True, floor=limit_to_floor(attenuation_limit_db), deep_filter=deep_filter,
                        presence=head, presence_floor=10.0 ** (-float(presence_floor_db) / 20.0) if presence else 0.0,
                        presence_range=presence_range)
        self.body = nn.Sequential(Framed(StridedConv1d(1, analysis, analysis, hop), gate,
                                         TransposedConv1d(analysis, 1, window, hop)))
        self._config = {"window": window, "hop": hop, "channels": channels, "blocks": blocks, "taps": taps}
        if not learn_filterbank:  # only when set, so configs of learned-filterbank models stay as they were
            self._config["learn_filterbank"] = False
        if activation != "leaky_relu":
            self._config["activation"] = activation
        if feature_floor_db != -60.0:
            self._config["feature_floor_db"] = float(feature_floor_db)
        if gru:
            self._config["gru"] = gru
        if analysis != window:
            self._config["analysis_window"] = analysis
        if deep_filter is not None:
            self._config["deep_filter"] = deep_filter
        if phase_features:
            self._config["phase_features"] = phase_features
        if presence:
            self._config["presence"] = presence
            self._config["presence_floor_db"] = float(presence_floor_db)
            if tuple(presence_range) != (0.0, 1.0):  # only when set: earlier heads' configs stay as they were
                self._config["presence_range"] = [float(v) for v in presence_range]
        self._limit = attenuation_limit_db
        self._init_weights()
        for p in (self.encoder.weight, self.decoder.weight):
            p.requires_grad_(learn_filterbank)
        # the filterbank as built reconstructs its input (the gate's passthrough 1); a checkpoint's decoder
        # may carry a calibration gain, and the floor is measured at the output
        self.register_load_state_dict_post_hook(lambda module, incompatible: module.sync_passthrough())

    def _filterbank(self) -> tuple[np.ndarray, np.ndarray]:
        """The initial (analysis, synthesis) kernels, the synthesis one scaled for overlap-add."""
        if self.encoder.taps != self.decoder.taps:
            return asymmetric_filterbank(self.encoder.taps, self.decoder.taps)
        a, s = dft_filterbank(self.encoder.taps)
        return a, s / (self.encoder.taps / (2.0 * self.encoder.stride))  # overlap-add gain of sqrt-Hann pairs

    def _init_weights(self) -> None:
        a, s = self._filterbank()
        with torch.no_grad():
            self.encoder.weight.copy_(torch.from_numpy(a))
            self.decoder.weight.copy_(torch.from_numpy(s))
            first = [m for m in self.gate.estimator if isinstance(m, MimoConv1d)][0]
            first.weight[:, self.encoder.taps // 2 :].zero_()  # phase features start unheard
            for m in self.gate.estimator:
                if isinstance(m, Residual) and isinstance(m.body[0], FrameGRU):
                    # the recurrent branch starts silent: the convolutional mask network's
                    # function is unchanged, so weights of a model without one carry over
                    m.body[-1].weight.zero_()
                    m.body[-1].bias.zero_()
                elif isinstance(m, Residual):
                    m.body[-1].weight.mul_(0.1)  # blocks start near identity
            last = [m for m in self.gate.estimator if isinstance(m, MimoConv1d)][-1]
            K = self.encoder.taps // 2
            last.weight.mul_(0.1)
            last.bias.fill_(3.0)  # gains start near 0.95: the model starts as a pass-through
            last.weight[K:].zero_()  # the deep filter's outputs start at 0.5: a zero filter
            last.bias[K:].zero_()
            if self.gate.presence is not None:
                # the head starts open, sigmoid(4 +- ~1) = 0.95..0.99 on every frame (-0.4..-0.1 dB over the
                # floor): a bias, not a zero readout, which leaves the GRU no gradient and the head stuck near
                # a constant (twelfth session: validation AUC 0.65 against 0.80 with the readout's usual init)
                out = [m for m in self.gate.presence if isinstance(m, MimoConv1d)][-1]
                out.bias.fill_(4.0)

    def transfer_from(self, src) -> tuple[int, int] | None:
        """Start from ``src``, a model with a shorter analysis window (see :func:`rtconv.models.transfer_weights`).

        Tensors of equal shape are copied; the mask network's first layer takes each old
        band's weights spread over the new bins it covers (divided among them) and its last
        layer repeats each old band's gain for them, so the grown model first applies the
        old mask on a finer grid; the decoder keeps the old one's output-level calibration.
        ``None`` (the generic matching) when the analysis windows are equal.
        """
        if not isinstance(src, ConvDenoiser):
            return None
        if src.encoder.taps == self.encoder.taps:
            return self._transfer_filter(src)
        if src.encoder.weight.requires_grad or src.decoder.taps != self.decoder.taps \
                or src.encoder.stride != self.encoder.stride:
            raise ConfigError(
                "only a model with a fixed filterbank and the same window and hop can grow a longer analysis "
                f"window; this one has window {src.decoder.taps}, hop {src.encoder.stride} and "
                f"{'a learned' if src.encoder.weight.requires_grad else 'a fixed'} filterbank.")
        convs = lambda m: [x for x in m.gate.estimator if isinstance(x, MimoConv1d)]  # noqa: E731
        s_first, s_last, d_first, d_last = convs(src)[0], convs(src)[-1], convs(self)[0], convs(self)[-1]
        k_old, k_new = s_first.weight.shape[1], d_first.weight.shape[1]
        bins = np.minimum(np.rint(np.arange(k_new) * (2 * k_old) / self.encoder.taps).astype(int), k_old - 1)
        share = torch.as_tensor(np.bincount(bins, minlength=k_old)[bins], dtype=s_first.weight.dtype)
        idx = torch.as_tensor(bins)
        s_params, d_params = dict(src.named_parameters()), dict(self.named_parameters())
        special = {id(p) for p in (self.encoder.weight, self.decoder.weight, d_first.weight, d_last.weight,
                                   d_last.bias)}
        copied = 0
        with torch.no_grad():
            for name, p in d_params.items():
                if id(p) not in special and name in s_params and s_params[name].shape == p.shape:
                    p.copy_(s_params[name])
                    copied += 1
            d_first.weight.copy_(s_first.weight[:, idx] / share[None, :, None])
            d_last.weight.copy_(s_last.weight[idx])
            d_last.bias.copy_(s_last.bias[idx])
            pristine = torch.as_tensor(src._filterbank()[1], dtype=src.decoder.weight.dtype)
            gain = float((src.decoder.weight * pristine).sum() / pristine.square().sum())
            self.decoder.weight.mul_(gain)
        copied += 4
        return copied, len(d_params) - copied

    def _transfer_filter(self, src) -> tuple[int, int] | None:
        """Start from ``src`` with a narrower GRU, or without a deep filter or phase features.

        Tensors of equal shape are copied; the first layer's and the last layer's grown tensors take
        the old ones as their leading block (the power features' columns, the gains' rows) and zeros
        elsewhere: unheard phase features, a zero filter.  A wider GRU keeps the old units' weights
        gate by gate (torch's reset, update, new stacking); the new units keep their random start
        but nothing hears them at first (the old units' recurrent weights from them and the output
        projection's columns for them are zero), while the gradient reaches them through those
        columns.  The grown model computes what ``src`` did.  ``None`` when nothing grows.
        """
        if src.gate.presence is not None and self.gate.presence is None:
            raise ConfigError("a model with a presence head cannot become one without; keep --arch-arg presence.")
        mine = (self.gate.deep_filter, self.config.get("phase_features", 0))
        theirs = (src.gate.deep_filter, src.config.get("phase_features", 0))
        width, old_width = self.config.get("gru", 0), src.config.get("gru", 0)
        if mine == theirs and (width == old_width or not old_width):
            return None  # nothing grows, or a GRU is added: the generic matching (the output layer moves)
        if theirs[0] not in (None, mine[0]) or theirs[1] not in (0, mine[1]):
            raise ConfigError(
                f"a model with deep_filter {theirs[0]} and phase_features {theirs[1]} cannot become one with "
                f"deep_filter {mine[0]} and phase_features {mine[1]}; grow them only from a model without.")
        if old_width and width < old_width:
            raise ConfigError(f"a model with a GRU of {old_width} units cannot become one with {width}; "
                              "a GRU only grows (the new units start unheard).")
        s_params, d_params = dict(src.named_parameters()), dict(self.named_parameters())
        copied = 0
        with torch.no_grad():
            for name, p in d_params.items():
                q = s_params.get(name)
                if q is None or q.dim() != p.dim() or any(a < b for a, b in zip(p.shape, q.shape, strict=True)):
                    continue
                if ".gru." in name and q.shape != p.shape:
                    _grow_gru_tensor(p, q, old_width, width, name.rsplit(".", 1)[-1])
                else:
                    if q.shape != p.shape:
                        p.zero_()
                    p[tuple(slice(0, n) for n in q.shape)].copy_(q)
                copied += 1
        if copied != len(s_params):
            raise ConfigError(
                f"{len(s_params) - copied} parameters of the old model have no place in the new architecture; "
                "keep the other settings when growing a deep filter or a GRU (a GRU may be added).")
        return copied, len(d_params) - copied

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
        floor = limit_to_floor(value)
        if floor:  # the weights may have changed since the last measure (trained, calibrated in place)
            self.sync_passthrough()
        self.gate.floor = floor
        self._limit = value

    def passthrough_gain(self) -> float:
        """The model's gain with the mask fully open: encoder then decoder, the least-squares gain
        from a noise input to its output away from the edges.

        1 for the filterbank as built (it reconstructs its input); the calibration gain once
        :func:`calibrate_gain` folded one into the decoder (the shipped denoiser: 1.468, +3.3 dB).
        The attenuation limit is measured against it (:attr:`rtconv.framed.MaskGate.passthrough`).
        """
        framed, w = self.body[0], self.decoder.weight
        W = max(self.encoder.taps, self.decoder.taps)
        n = 8 * W + 32 * self.encoder.stride
        x = torch.randn(1, self.in_channels, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x = x.to(dtype=w.dtype, device=w.device)
        with torch.no_grad():
            y = framed.decoder(framed.encoder(torch.nn.functional.pad(x, (0, framed.latency))))[..., :n]
        a, b = x[..., 2 * W : n - 2 * W].double(), y[..., 2 * W : n - 2 * W].double()
        g = float((a * b).sum() / (a * a).sum())
        return g if math.isfinite(g) and g > 0 else 1.0

    def sync_passthrough(self) -> None:
        """Measure :meth:`passthrough_gain` into the gate (on load, calibration and a set limit), unless the
        filterbank's weights are the ones last measured: a strength knob turned on a live stream costs
        nothing then (the measure takes about 2 ms of the interpreter here)."""
        key = tuple((w.data_ptr(), w._version) for w in (self.encoder.weight, self.decoder.weight))
        if key != getattr(self, "_measured", None):
            self.gate.passthrough = self.passthrough_gain()
            self._measured = key

    @property
    def config(self) -> dict:
        return {**self._config, "attenuation_limit_db": self._limit}

    def macs_per_second(self, sample_rate: int = 48000) -> float:
        """Multiply-accumulates per second of audio (convolutions only)."""
        H = self.encoder.stride
        per_frame = self.encoder.weight.numel() + self.decoder.weight.numel()
        nets = [self.gate.estimator] + ([self.gate.presence] if self.gate.presence is not None else [])
        for net in nets:
            per_frame += sum(m.weight.numel() for m in net.modules() if isinstance(m, MimoConv1d))
            per_frame += sum(3 * m.hidden * (m.in_features + m.hidden) for m in net.modules()
                             if isinstance(m, FrameGRU))
        if self.gate.deep_filter is not None:  # one complex multiply-add (4 real) per bin and tap
            per_frame += 4 * self.gate.deep_filter[0] * self.gate.deep_filter[1]
        return per_frame * sample_rate / H


register(ConvDenoiser)


def _grow_gru_tensor(p: torch.Tensor, q: torch.Tensor, old: int, new: int, kind: str) -> None:
    """Copy a ``torch.nn.GRU`` tensor ``q`` of ``old`` units into ``p`` of ``new`` units, in place.

    The three gates' blocks (rows ``g*H .. g*H + H``) keep their old units first; the old units'
    recurrent weights from the new units are zeroed, so the old units run as before; every other
    entry of ``p`` (the new units' own rows) keeps its initialisation.
    """
    for g in range(3):
        rows = slice(g * new, g * new + old)
        if kind.startswith("weight_hh"):
            p[rows, :old].copy_(q[g * old:(g + 1) * old])
            p[rows, old:].zero_()
        else:
            p[rows].copy_(q[g * old:(g + 1) * old])


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
    model.sync_passthrough()
    return g
