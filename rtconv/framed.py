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

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .layers import ConvLayer, _check_int, latency, receptive_field

__all__ = ["StridedConv1d", "TransposedConv1d", "Framed", "FrameNet", "PairPower", "MaskGate", "FrameGRU", "deep_filter_sum", "deep_filter_frames", "low_bins", "presence_scale",
           "place_low_bins", "phase_advance"]


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

    @property
    def receptive_field(self) -> int:
        """Input samples behind one output sample: the frames the body sees, each a window."""
        return self.encoder.taps + (receptive_field(self.body) - 1) * self.encoder.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-1]
        # the zeros Streamer.flush feeds: they complete the frames overlapping the end
        z = self.encoder(F.pad(x, (0, self.latency)))
        if z.shape[-1] == 0:  # shorter than one hop: the stream emits only zeros too
            return x.new_zeros(x.shape[0], self.decoder.out_features, T)
        y = self.decoder(self.body(z))
        return F.pad(y, (0, max(0, T - y.shape[-1])))[..., :T]


class FrameNet(nn.Sequential):
    """A frame-rate stack (``nn.Sequential``) that the streamer runs row-major (:mod:`rtconv.cells.frames`).

    Same parameters and offline behaviour as ``nn.Sequential``; streamed,
    its causal convolutions become small matrix products on a
    ``(frames, channels)`` history, which costs far fewer and cheaper torch
    calls per block than generic convolution cells (small blocks are
    overhead-bound).
    """


class PairPower(nn.Module):
    """Compressed energies of channel pairs: ``scale * log(a_k^2 + b_k^2 + eps) + shift``.

    Input ``(B, 2K, M)`` laid out ``[a_0..a_{K-1}, b_0..b_{K-1}]``; output ``(B, K, M)``.

    With ``phase_bins`` = P > 0, also each of bins 1..P's phase advance over one frame, the
    unit complex number ``u = x[t] conj(x[t-1]) / |x[t] x[t-1]|`` (real parts, then imaginary:
    output ``(B, K + 2P, M)``; 0 before the first frame): where in its bin a bin's energy lies
    (a harmonic's frequency), which log energies do not show and a deep filter needs.  Level
    invariant; a causal history of one frame.
    """

    def __init__(self, scale: float = 0.2, shift: float = 0.0, eps: float = 1e-6, phase_bins: int = 0) -> None:
        super().__init__()
        self.scale, self.shift, self.eps = float(scale), float(shift), float(eps)
        self.phase_bins = _check_int("phase_bins", phase_bins, 0)

    @property
    def receptive_field(self) -> int:
        return 2 if self.phase_bins else 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, C, M = z.shape
        p = z.square().view(B, 2, C // 2, M).sum(1)
        p = torch.log(p + self.eps) * self.scale + self.shift
        if not self.phase_bins:
            return p
        P = self.phase_bins
        x = low_bins(z, P).view(B, 2, P, M)
        return torch.cat([p, phase_advance(x, F.pad(x, (1, 0))[..., :M], self.eps).reshape(B, -1, M)], 1)

    def extra_repr(self) -> str:
        ph = f", phase_bins={self.phase_bins}" if self.phase_bins else ""
        return f"scale={self.scale}, shift={self.shift}, eps={self.eps}{ph}"


def phase_advance(x: torch.Tensor, prev: torch.Tensor, eps: float) -> torch.Tensor:
    """``x conj(prev)`` normalised to unit length (0 where both are silent), real/imaginary on axis 1.

    ``x``, ``prev``: ``(R, 2, P, ...)``; ``eps``: the power floor (``eps**2`` guards the product's).
    """
    a, b = x.unbind(1)
    ap, bp = prev.unbind(1)
    re, im = a * ap + b * bp, b * ap - a * bp
    norm = torch.rsqrt(re * re + im * im + eps * eps)
    return torch.stack([re * norm, im * norm], 1)


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
        block, so changing it affects running streamers at once.  The gain
        is ``(1 - f) * g + f / P``, with ``P`` the :attr:`passthrough`: the
        floor mixes the input back in at the model's output, so with every
        gain closed the model's output is ``f`` times its input.

    deep_filter : (bins, order, dilation) or None
        Also filter the lowest ``bins`` frequency bins (bins 1..bins; bin 0
        holds DC and Nyquist, both real) with a complex FIR over each bin's
        past frames (deep filtering, Schroeter et al., DeepFilterNet 2022):
        ``y_k[t] = g_k[t] x_k[t] + sum_n c_{n,k}[t] x_k[t - n*dilation]``,
        ``n = 0..order-1``, the coefficients ``c = 2*s - 1`` (in ``[-1, 1]``)
        from ``2*order*bins`` more estimator outputs ``s`` laid out
        ``(n, real/imaginary, bin)`` after the ``K`` gains.  A bin's frames
        filtered over ``order*dilation`` hops resolve what one short window
        cannot: a voice's harmonics inside a bin wider than their spacing.
        With the coefficient outputs at ``s = 0.5`` it is the plain mask.
        The floor then mixes the input back in: ``f/P*x + (1-f)*(g*x + DF)``.
    presence : nn.Module or None
        A speech-presence head: a frame-rate network ``(B, K, M) -> (B, 1, M)``
        ending in a sigmoid that reads the gains (the mask network's view
        of each bin) and says, per frame, how likely speech is; the frame's
        gains and filter are scaled by ``pf + (1 - pf) * p``, so frames the
        head calls noise are closed by up to ``presence_floor`` more than
        the mask alone closes them (RNNoise's and DeepFilterNet's VAD and
        local-SNR outputs do the same job).  The attenuation ``floor`` still
        bounds the total: ``f/P*x + (1-f)*(p'*(g*x + DF))``.
    presence_floor : float
        Smallest presence gain ``pf`` (``10 ** (-dB / 20)``).
    presence_range : (lo, hi)
        The head's probabilities mapped to the gate: ``p`` is first taken to
        ``clamp((p - lo) / (hi - lo), 0, 1)``, so a frame the head calls speech
        with ``p >= hi`` passes whole and one with ``p <= lo`` is closed to
        ``pf``.  ``(0, 1)``, the default, is ``p`` itself (:func:`presence_scale`).

    Attributes
    ----------
    passthrough : float
        ``P``, the gain the rest of the model gives what this gate passes
        whole: 1 for a filterbank that reconstructs its input, a calibration
        gain once one is folded into the decoder (the owning model sets it,
        :meth:`rtconv.denoiser.ConvDenoiser.passthrough_gain`).  Without it
        the floor was measured inside the model: the shipped denoiser's
        +3.3 dB decoder gain made ``--atten-lim 0`` louder than the input.
    linked : bool
        Apply one gain, the mean over the batch, to every batch item: a
        stereo (or wider) stream, whose channels a mono model runs as the
        batch, keeps its image because every channel gets the same
        suppression.  For streams only: in training the batch holds
        unrelated examples.  Read on every block, like ``floor``.
    """

    def __init__(self, estimator: nn.Module, pairs: bool = True, floor: float = 0.0, deep_filter=None,
                 presence: nn.Module | None = None, presence_floor: float = 0.0,
                 presence_range=(0.0, 1.0)) -> None:
        super().__init__()
        self.estimator = estimator
        self.pairs = bool(pairs)
        if presence is not None and not self.pairs:
            raise ConfigError("a presence head reads the gains of a mask over channel pairs (pairs=True).")
        self.presence = presence
        if not 0.0 <= float(presence_floor) <= 1.0:
            raise ConfigError(f"the presence floor must be a gain in [0, 1], got {presence_floor!r}.")
        self.presence_floor = float(presence_floor)
        lo, hi = (float(v) for v in presence_range)
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(f"the presence range must be probabilities 0 <= lo < hi <= 1, got {tuple(presence_range)!r}.")
        self.presence_range = (lo, hi)
        self._passthrough = 1.0
        self.floor = floor
        self.linked = False
        if deep_filter is not None:
            if not self.pairs:
                raise ConfigError("deep filtering needs a mask over channel pairs (pairs=True): it filters complex bins.")
            deep_filter = tuple(deep_filter)
            if len(deep_filter) != 3:
                raise ConfigError(f"deep_filter is (bins, order, dilation), got {deep_filter!r}.")
            for name, v in zip(("bins", "order", "dilation"), deep_filter, strict=True):
                _check_int(f"deep_filter {name}", v, 1)
        self.deep_filter = deep_filter

    @property
    def filter_span(self) -> int:
        """Past frames the deep filter reaches back (0 without one)."""
        if self.deep_filter is None:
            return 0
        _, order, dilation = self.deep_filter
        return (order - 1) * dilation

    @property
    def floor(self) -> float:
        return self._fm[0]

    @floor.setter
    def floor(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"the mask floor must be a gain in [0, 1], got {value!r}; "
                "use 10 ** (-limit_db / 20) for an attenuation limit in dB."
            )
        # (floor, its mix-back term f/P): one assignment, so a streamer's block never reads half a change
        self._fm = (value, value / self._passthrough)

    @property
    def passthrough(self) -> float:
        return self._passthrough

    @passthrough.setter
    def passthrough(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value > 0.0):
            raise ConfigError(f"the gate's passthrough gain must be a positive number, got {value!r}.")
        self._passthrough = value
        self.floor = self._fm[0]

    @property
    def latency(self) -> int:
        return latency(self.estimator)

    @property
    def receptive_field(self) -> int:
        own = receptive_field(self.estimator) + self.filter_span
        if self.presence is None:
            return own
        return max(own, receptive_field(self.estimator) + receptive_field(self.presence) - 1)

    def presence_gain(self, g: torch.Tensor) -> torch.Tensor | None:
        """The presence head's per-frame scale ``pf + (1 - pf) * p`` (``(B, 1, M)``) from the gains
        ``g`` (``(B, K, M)``), or ``None`` without a head."""
        if self.presence is None:
            return None
        return presence_scale(self.presence(g), self.presence_floor, *self.presence_range)

    def gain(self, g: torch.Tensor) -> torch.Tensor:
        f, b = self._fm
        return g if f == 0.0 else g * (1.0 - f) + b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        e = self.estimator(z)
        if self.linked and e.shape[0] > 1:
            e = e.mean(0, keepdim=True).expand_as(e)
        if not self.pairs:
            return z * self.gain(e)
        B, C, M = z.shape
        K = C // 2
        pg = self.presence_gain(e[:, :K])
        g = e[:, :K] if pg is None else e[:, :K] * pg
        y = (z.view(B, 2, K, M) * self.gain(g).unsqueeze(1)).view(B, C, M)
        if self.deep_filter is None:
            return y
        bins, order, d = self.deep_filter
        h = F.pad(low_bins(z, bins), (self.filter_span, 0))  # from zeros before the first frame
        v = deep_filter_frames(h, e[:, K:], order, d)
        if pg is not None:
            v = v * pg.unsqueeze(1)
        return y + (1.0 - self._fm[0]) * place_low_bins(v, K)

    def extra_repr(self) -> str:
        df = "" if self.deep_filter is None else f", deep_filter={self.deep_filter}"
        pr = "" if self.presence is None else f", presence_floor={self.presence_floor:g}, presence_range={self.presence_range}"
        pt = "" if self._passthrough == 1.0 else f", passthrough={self._passthrough:g}"
        return f"pairs={self.pairs}, floor={self.floor:g}{pt}{df}{pr}"


def presence_scale(p: torch.Tensor, floor: float, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """A presence head's probabilities ``p`` as the frame's scale: ``floor + (1 - floor) * q``,
    ``q = clamp((p - lo) / (hi - lo), 0, 1)`` (``q = p`` for the default range ``(0, 1)``).

    A probability is not a gain: a head that is 80 % sure of speech would take 2 dB off it.
    With a range, frames above ``hi`` pass whole and frames below ``lo`` are closed to ``floor``.
    One function for the offline model, the streaming cell and the ONNX graph.
    """
    if lo != 0.0 or hi != 1.0:
        p = ((p - lo) * (1.0 / (hi - lo))).clamp(0.0, 1.0)
    return p if floor == 0.0 else p * (1.0 - floor) + floor


def deep_filter_sum(taps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``sum_n c_n * x[t - n*d]`` in complex arithmetic, ``c = 2*s - 1``.

    ``taps`` and ``s``: ``(R, order, 2, bins, ...)``, real and imaginary parts on axis 2;
    returns ``(R, 2, bins, ...)``.
    """
    c = s * 2.0 - 1.0
    a, b = taps.unbind(2)
    cr, ci = c.unbind(2)
    return torch.stack([(cr * a - ci * b).sum(1), (cr * b + ci * a).sum(1)], 1)


def deep_filter_frames(h: torch.Tensor, s: torch.Tensor, order: int, dilation: int) -> torch.Tensor:
    """The deep filter on ``(batch, channels, frames)`` tensors (offline, and streamed in columns or ONNX).

    ``h``: ``(B, 2*bins, span + M)``, the filtered bins' frames (:func:`low_bins`) from ``span =
    (order-1)*dilation`` frames before the first of the ``M`` output frames; ``s``: ``(B,
    2*order*bins, M)``, the estimator's coefficient outputs.  Returns ``(B, 2, bins, M)``.
    """
    B, M = h.shape[0], s.shape[-1]
    span, bins = h.shape[-1] - M, h.shape[1] // 2
    taps = torch.stack([h[..., span - n * dilation : span - n * dilation + M] for n in range(order)], 1)
    return deep_filter_sum(taps.reshape(B, order, 2, bins, M), s.reshape(B, order, 2, bins, M))


def low_bins(z: torch.Tensor, bins: int) -> torch.Tensor:
    """Bins 1..bins of ``(B, 2K, M)`` frames as ``(B, 2*bins, M)``: real parts, then imaginary."""
    B, C, M = z.shape
    return z.reshape(B, 2, C // 2, M)[:, :, 1 : 1 + bins].reshape(B, 2 * bins, M)


def place_low_bins(v: torch.Tensor, K: int) -> torch.Tensor:
    """``(B, 2, bins, M)`` filtered bins 1..bins into a ``(B, 2K, M)`` frame of zeros elsewhere."""
    B, _, bins, M = v.shape
    return F.pad(v, (0, 0, 1, K - 1 - bins)).reshape(B, 2 * K, M)


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
