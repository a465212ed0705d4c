"""Training losses on ``(batch, channels, time)`` tensors.

``l1`` and ``mse`` compare samples; ``stft`` (multi-resolution STFT
magnitude, as in Parallel WaveGAN / Demucs) compares what the ear hears
more closely: spectral convergence plus log-magnitude L1 at three
resolutions; ``si_sdr`` is minus the scale-invariant SDR in dB (higher SDR
-> lower loss); ``l1+stft`` adds the two; ``si_sdr+sc`` adds to SI-SDR ten
times the multi-resolution spectral convergence, a linear-magnitude term
that keeps rewarding suppression of noise-only time-frequency regions
(unlike log magnitudes, it does not chase digital silence to the clamp).

``cmrs`` is a level-normalised, compressed multi-resolution spectral loss
(magnitude and complex terms, as DeepFilterNet's, with an extra weight on
speech the estimate removed), ``cmrs+si_sdr`` adds a little SI-SDR; both
also see the noisy input (to normalise each example's level, so a quiet
example counts as much as a loud one, and noise-only examples teach
suppression).  ``si_sdr+sc+pause`` adds to ``si_sdr+sc`` a hinge on the
residual in the input's noise-dominated frames (:func:`pause_residual`): it asks for
at least 25 dB of attenuation where there is nothing to keep (pauses, noise-only clips),
at a quarter of a loss unit per missing dB, so one dB of SI-SDR still outweighs it.
``silence`` is the same hinge on the noise-only examples alone (:func:`noise_only_residual`):
it never asks for a mixture's quiet speech.  ``pesq`` is a differentiable PESQ-style disturbance
(:mod:`rtconv.train.perceptual`, :func:`pesq_loss`): what P.862's model subtracts from 4.5, in MOS
points, over the examples that hold speech; it needs the signals' sample rate, which the trainer binds.
``stoi`` (:func:`stoi_loss`) is one minus a differentiable STOI (:func:`rtconv.train.perceptual.stoi_estimate`,
pystoi's definition in torch) over the examples that hold speech, and needs the rate too.  ``gap`` (:func:`gap_residual`) asks it of the frames
whose target is 40 dB or more under the input: noise-only examples and the true gaps between words.
``presence`` trains a denoiser's speech-presence head (``--arch-arg presence=N``) on the target's
speech activity (:func:`presence_loss`), a binary cross-entropy per frame.  ``ce`` is the cross-entropy of a classifier's probability
tracks (:mod:`rtconv.classifier`): binary for one track (a sigmoid), over
the channels for several (a softmax).  Use :func:`get_loss` to look one up
by name and :func:`apply` to call any of them.

Any other loss is written as a weighted sum of the terms of :data:`TERMS`
(``l1``, ``mse``, ``stft``, ``si_sdr``, ``sc`` = spectral convergence,
``cmrs``, ``pause``, ``silence``, ``gap``, ``ce``, ``presence``, ``pesq``, ``stoi``): ``get_loss("si_sdr + 10*sc + 5*cmrs")`` is
``si_sdr+sc`` with the compressed spectral loss added at weight 5.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .choices import LOSS_NAMES, LOSS_TERMS, parse_loss
from .perceptual import pesq_disturbance, stoi_estimate

__all__ = ["LOSSES", "TERMS", "get_loss", "apply", "loss_and_terms", "terms", "l1", "mse", "multi_resolution_stft", "si_sdr_loss",
           "spectral_convergence", "compressed_spectral", "pause_residual", "noise_only_residual", "gap_residual",
           "cross_entropy", "presence_loss", "pesq_loss", "stoi_loss", "speech_labels", "PresenceProbe", "presence_probe", "bind_probe", "needs_probe"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(estimate, target)


def mse(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(estimate, target)


def _spectrum(x: torch.Tensor, fft: int, hop: int, window: torch.Tensor, pad_mode: str) -> torch.Tensor:
    """The STFT of every signal of ``x`` as a real tensor ``(signals, frames, bins, 2)``.

    ``torch.stft`` stores its output frame by frame; read in that order (a transposed view, no
    copy) the elementwise work of the spectral terms walks contiguous memory, 1.5-2x faster on a
    CPU than in the ``(bins, frames)`` order it reports."""
    spec = torch.stft(x.reshape(-1, x.shape[-1]), fft, hop, fft, window, return_complex=True,
                      center=True, pad_mode=pad_mode)
    return torch.view_as_real(spec.transpose(-1, -2))


def _modulus(r: torch.Tensor) -> torch.Tensor:
    """``|X|`` of real spectra ``r`` ``(..., 2)``, ``sqrt(re^2 + im^2 + 1e-24)``: a finite gradient
    everywhere (``torch.abs`` of a complex tensor divides by ``|z|`` in its backward pass, NaN where
    ``z`` is subnormal, as in a clip's digital silence, which poisons the whole training step) and at
    most 1e-12 above ``torch.abs``.  The real and imaginary planes are read as two strided views:
    an operation over the pairs' last dimension of 2 runs about four times slower on a CPU than one
    over a plane."""
    re, im = r.unbind(-1)
    return torch.addcmul(re * re, im, im).add_(1e-24).sqrt_()


def _fit(fft: int, hop: int, n: int) -> tuple[int, int]:
    """``(fft, hop)`` halved until the window fits ``n`` samples."""
    while fft > n and fft > 8:
        fft, hop = fft // 2, max(1, hop // 2)
    return fft, hop


_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))


def _spectra(estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]], pad_mode: str):
    """Real spectra ``(E, T)`` (:func:`_spectrum`) per ``(fft_size, hop)``, the target's without
    gradient; sizes longer than the signal are halved until they fit."""
    n = estimate.shape[-1]
    for fft, hop in resolutions:
        fft, hop = _fit(fft, hop, n)
        window = torch.hann_window(fft, device=estimate.device, dtype=estimate.dtype)
        with torch.no_grad():
            rt = _spectrum(target, fft, hop, window, pad_mode)
        yield _spectrum(estimate, fft, hop, window, pad_mode), rt


def _convergence(e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.norm(t - e) / torch.linalg.norm(t).clamp_min(1e-7)


def multi_resolution_stft(
    estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]] = _RESOLUTIONS,
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (``(fft_size, hop)`` pairs)."""
    terms = []
    for re, rt in _spectra(estimate, target, resolutions, "constant"):
        e, t = _modulus(re).clamp_min(1e-7), _modulus(rt).clamp_min_(1e-7)
        terms.append(_convergence(e, t) + F.l1_loss(torch.log(e), torch.log(t)))
    return sum(terms) / len(terms)


def spectral_convergence(
    estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]] = _RESOLUTIONS,
) -> torch.Tensor:
    """``||T| - |E||_F / ||T||_F`` of STFT magnitudes, averaged over resolutions."""
    terms = [_Convergence.apply(re, rt) for re, rt in _spectra(estimate, target, resolutions, "constant")]
    return sum(terms) / len(terms)


class _Convergence(torch.autograd.Function):
    """Spectral convergence of one resolution from real spectra ``(..., 2)``, with its gradient
    written out (see :class:`_Compressed`).  Magnitudes as :func:`_modulus` gives them, floored at
    1e-7 (no gradient below the floor)."""

    @staticmethod
    def forward(ctx, re: torch.Tensor, rt: torch.Tensor) -> torch.Tensor:
        s = _modulus(re)
        d = _modulus(rt).clamp_min_(1e-7)
        norm_t = torch.linalg.vector_norm(d).clamp_min(1e-7)
        d.sub_(s.clamp_min(1e-7))  # |T| - |E|
        norm_d = torch.linalg.vector_norm(d)
        ctx.save_for_backward(re, s, d, norm_d, norm_t)
        return norm_d / norm_t

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        re, s, d, norm_d, norm_t = ctx.saved_tensors
        # d/dE of ||d|| / ||T||: -d / (||d|| ||T||) times d|E|/dE = E / |E| (zero where |E| is floored)
        coef = (d * (-grad / (norm_t * norm_d.clamp_min(1e-30)))).div_(s).masked_fill_(s < 1e-7, 0.0)
        return _planes_times(re, coef), None


def si_sdr_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the mean SI-SDR in dB over every (batch, channel) signal."""
    e = estimate - estimate.mean(dim=-1, keepdim=True)
    t = target - target.mean(dim=-1, keepdim=True)
    alpha = (e * t).sum(-1, keepdim=True) / (t.pow(2).sum(-1, keepdim=True) + 1e-8)
    proj = alpha * t
    ratio = proj.pow(2).sum(-1) / ((proj - e).pow(2).sum(-1) + 1e-8)
    return -10.0 * torch.log10(ratio + 1e-8).mean()


def compressed_spectral(
    estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor, power: float = 0.3,
    complex_weight: float = 0.3, removed_speech_weight: float = 1.0,
    resolutions: Sequence[tuple[int, int]] = ((1024, 256), (512, 128), (256, 64)),
) -> torch.Tensor:
    """Compressed multi-resolution spectral loss on level-normalised signals.

    Each example is divided by its noisy input's RMS first, so every input
    level counts alike.  Per STFT resolution: the squared error of
    ``|X|^power`` magnitudes, weighted ``1 + removed_speech_weight`` where
    the estimate is below the target (suppressed speech is worse than
    residual noise), plus ``complex_weight`` times the squared error of the
    compressed complex spectra ``X |X|^(power-1)`` (phase).
    """
    scale = noisy.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-5)
    e, t = estimate / scale, target / scale
    terms = [_Compressed.apply(re, rt, power, complex_weight, removed_speech_weight)
             for re, rt in _spectra(e, t, resolutions, "reflect")]
    return sum(terms) / len(terms)


def _planes_times(r: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``r * coef[..., None]`` for real spectra ``r`` ``(..., 2)``, plane by plane."""
    out = torch.empty_like(r)
    for i in range(2):
        torch.mul(r[..., i], coef, out=out[..., i])
    return out


def _compress(r: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For real spectra ``r`` ``(..., 2)``: ``|X|`` (:func:`_modulus`), ``a = |X| + 1e-6`` and
    ``f = a^(power-1)``; the compressed magnitude is ``f a``.  The power is taken as
    ``exp((power - 1) log a)``: ``torch.pow`` with a fractional exponent costs five times as much."""
    s = _modulus(r)
    a = s + 1e-6
    return s, a, torch.log(a).mul_(power - 1.0).exp_()


class _Compressed(torch.autograd.Function):
    """One resolution of :func:`compressed_spectral` from real spectra ``(..., 2)`` (the target's
    without gradient), with its gradient written out: autograd kept some thirty full-size
    temporaries of this chain, over the pairs' last dimension of 2 where a CPU is slowest, and
    walked them all back, which made the loss cost twice the model's own forward and backward
    pass.

    With ``a = |E| + 1e-6``, ``m = a^c``, ``f = a^(c-1)``, ``D = E f - T f_T`` and ``N`` bins:
    ``L = mean(w (m - m_T)^2) + k mean(|D|^2)``, so (``w`` is a step, constant almost everywhere)
    ``dL/dE = 2/N [(w (m - m_T) c f + k (c-1) f (E.D) / a) / |E| E + k f D]``.
    """

    @staticmethod
    def forward(ctx, re: torch.Tensor, rt: torch.Tensor, power: float, complex_weight: float,
                removed_speech_weight: float) -> torch.Tensor:
        s, a, f = _compress(re, power)
        _, at, ft = _compress(rt, power)
        dm = (f * a).sub_(ft * at)  # m - m_T
        w = (dm < 0).to(dm.dtype).mul_(removed_speech_weight).add_(1.0)  # m_T > m: speech removed
        wdm = w.mul_(dm)
        mag = (wdm * dm).mean()
        (er, ei), (tr, ti) = re.unbind(-1), rt.unbind(-1)
        dr = (er * f).sub_(tr * ft)  # D = E f - T f_T, plane by plane
        di = (ei * f).sub_(ti * ft)
        cplx = torch.addcmul(dr * dr, di, di).mean()
        ctx.save_for_backward(re, s, a, f, wdm, dr, di)
        ctx.power, ctx.complex_weight = power, complex_weight
        return mag + complex_weight * cplx

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        re, s, a, f, wdm, dr, di = ctx.saved_tensors
        c, k = ctx.power, ctx.complex_weight
        scale = grad * (2.0 / f.numel())
        er, ei = re.unbind(-1)
        ed = torch.addcmul(er * dr, ei, di)  # E.D
        coef = ed.mul_(k * (c - 1.0)).div_(a).add_(wdm.mul(c)).mul_(f).div_(s).mul_(scale)
        kf = f * (k * scale)
        g = torch.empty_like(re)
        torch.addcmul(er * coef, dr, kf, out=g[..., 0])
        torch.addcmul(ei * coef, di, kf, out=g[..., 1])
        return g, None, None, None, None


def pause_residual(
    estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor, goal_db: float = -25.0,
    frame: int = 960, speech_below_db: float = -20.0, silent_examples_only: bool = False,
) -> torch.Tensor:
    """Mean dB by which the output's noise-dominated frames miss ``goal_db`` of attenuation.

    Frames of ``frame`` samples (20 ms at 48 kHz), hop half a frame.  A frame is noise-dominated
    when the target's energy there is ``speech_below_db`` or more below the input's (a pause,
    a noise-only clip): removing all of it costs the speech nothing audible.  For those frames,
    ``relu(10 log10(E_out / E_in) - goal_db)``, averaged over all frames of the batch (zero
    when there are none), so the term is in dB like ``si_sdr``.  ``silent_examples_only``
    counts the frames of examples whose target is all zeros (noise only) and no others.
    """
    n = estimate.shape[-1]
    if n < frame:
        frame = max(2, n)
    hop = frame // 2

    def energy(x: torch.Tensor) -> torch.Tensor:
        return x.unfold(-1, frame, hop).pow(2).mean(-1)

    pe, pt, pn = energy(estimate), energy(target), energy(noisy)
    quiet = (pt < pn * 10.0 ** (speech_below_db / 10.0)) & (pn > 1e-10)
    if silent_examples_only:
        silent = target.pow(2).flatten(1).sum(-1) == 0
        quiet = quiet & silent.view(-1, *([1] * (quiet.dim() - 1)))
    attenuation = 10.0 * torch.log10((pe + 1e-12) / (pn + 1e-12))
    missing = torch.relu(attenuation - goal_db) * quiet.to(attenuation.dtype)
    return missing.sum() / max(1, missing.numel())


def noise_only_residual(estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """:func:`pause_residual` on the noise-only examples alone (a silent target).

    Every frame of a noise-only example should be 25 dB down; the mean dB by which they
    miss it, over all frames of the batch (zero without noise-only examples).  Unlike ``pause``,
    it never asks a mixture's quiet speech (a decay, an unvoiced consonant 20 dB under the
    noise) to go: it teaches the model to tell "no speech here" from context, which the
    recurrent branch can, and leaves speech frames to the other terms.
    """
    return pause_residual(estimate, target, noisy, silent_examples_only=True)


def gap_residual(estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """:func:`pause_residual` on the frames whose target is silent: 40 dB or more under the input.

    Noise-only examples and the true gaps between a mixture's words (where the target holds at
    most its recording's own noise floor), but not ``pause``'s frames 20..40 dB under the noise,
    which may hold a word's decay or an unvoiced consonant: asking those 25 dB down is what cost
    ``pause`` clean-speech fidelity.
    """
    return pause_residual(estimate, target, noisy, speech_below_db=-40.0)


def cross_entropy(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean cross-entropy (nats per sample) of probability tracks against target probabilities.

    One channel: binary, ``-(y log p + (1-y) log(1-p))``; several: categorical over the
    channels, ``-sum_c y_c log p_c`` (the estimate a softmax, the target one-hot or soft).
    Probabilities are clamped to ``[eps, 1 - eps]`` (a saturated output keeps a gradient)
    and targets to ``[0, 1]``.
    """
    p = estimate.clamp(eps, 1.0 - eps)
    y = target.clamp(0.0, 1.0)
    if estimate.shape[1] == 1:
        return -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p)).mean()
    return -(y * torch.log(p)).sum(1).mean()


class PresenceProbe:
    """What the ``presence`` term needs of a model: its presence head's output, frame by frame.

    A forward hook on the head (:class:`rtconv.framed.MaskGate` ``presence``) keeps its output
    ``p`` (``(B, 1, M)``, a speech probability per frame) of the model's latest forward pass
    (of every pass while :attr:`keep` is set, as an evaluation in batches needs); ``stride`` and
    ``window`` are the filterbank's hop and analysis window in samples (frame ``j`` ends at
    sample ``(j+1)*stride - 1``); ``offset`` is the number of warm-up samples the trainer cuts
    off the start of the target before the loss sees it.  Build one with :func:`presence_probe`.
    """

    def __init__(self, model, head, stride: int, window: int, offset: int = 0) -> None:
        self.stride, self.window, self.offset = int(stride), int(window), int(offset)
        self.keep = False
        self.outputs: list[torch.Tensor] = []
        self._handles = [model.register_forward_pre_hook(self._new_pass),
                         head.register_forward_hook(lambda _m, _i, out: self.outputs.append(out))]

    def _new_pass(self, _module, _inputs) -> None:
        if not self.keep:
            self.outputs = []

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self.outputs = []

    def presence(self, batch: int) -> torch.Tensor:
        """The head's output for the latest ``batch`` examples, ``(batch, 1, M)``."""
        out, n = [], 0
        for p in reversed(self.outputs):
            if n >= batch:
                break
            out.insert(0, p)
            n += p.shape[0]
        if n != batch:
            raise ConfigError(f"the presence term needs the presence head's output for {batch} examples, "
                              f"but the model's last forward passes gave {n}; run the model on the batch first.")
        return out[0] if len(out) == 1 else torch.cat(out, 0)


def presence_probe(model, offset: int = 0) -> PresenceProbe:
    """A :class:`PresenceProbe` on ``model``'s presence head; one sentence if it has none."""
    from ..framed import Framed, MaskGate

    gates = [m for m in model.modules() if isinstance(m, MaskGate) and m.presence is not None]
    framed = [m for m in model.modules() if isinstance(m, Framed)]
    if len(gates) != 1 or len(framed) != 1:
        raise ConfigError(
            f"the presence loss term trains a denoiser's speech-presence head, and {getattr(model, 'arch', type(model).__name__)!r} "
            f"{getattr(model, 'config', '')} has {len(gates)}; grow one first (--resume MODEL --arch-arg presence=32) "
            "or drop the term.")
    enc = framed[0].encoder
    return PresenceProbe(model, gates[0].presence, enc.stride, enc.taps, offset)


def bind_probe(loss: Loss, probe: PresenceProbe) -> Loss:
    """``loss`` with ``probe`` filled in: a loss the trainer calls as any other (``apply``), whose
    weighted-sum terms (``parts``) are bound too."""
    def bind(f):
        def bound(estimate, target, noisy=None):
            return apply(f, estimate, target, noisy, probe)
        bound.needs_input = True
        bound.probe = probe
        bound.__name__ = getattr(f, "__name__", "loss")
        return bound

    out = bind(loss)
    if getattr(loss, "parts", ()):
        out.parts = tuple((w, t, bind(f)) for w, t, f in loss.parts)
    return out


def speech_labels(target: torch.Tensor, stride: int, window: int, frames: int, offset: int = 0,
                  range_db: float = 35.0, hangover: int = 3840) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame speech activity of ``target`` (``(B, C, T)``) for a filterbank's ``frames``
    frames, and which of them the target covers whole.

    Frame ``j`` spans samples ``[(j+1)*stride - window, (j+1)*stride)`` of the model's input,
    ``offset`` samples before the target's first one.  A frame is active when its target
    energy is within ``range_db`` of the example's loudest frame (as the mixer's active level,
    so a silent target, noise only, has none) and stays so for ``hangover`` samples after
    (80 ms at 48 kHz): a stop's closure and a word's decay count as speech, the pause after
    it and a noise-only stretch do not.
    Returns ``(labels, valid)``, both ``(B, 1, frames)``.
    """
    B, T = target.shape[0], target.shape[-1]
    # float64: a frame 35 dB under the loudest is ~1e-7 of a clip's summed energy, float32's resolution
    e = target.double().pow(2).mean(1, keepdim=True)  # (B, 1, T)
    ends = (torch.arange(frames, device=target.device) + 1) * stride - offset  # exclusive end in target coords
    valid = (ends - window >= 0) & (ends <= T)
    c = F.pad(e.cumsum(-1), (1, 0))
    hi, lo = ends.clamp(0, T), (ends - window).clamp(0, T)
    energy = (c[..., hi] - c[..., lo]) / window  # (B, 1, frames)
    loud = torch.where(valid, energy, torch.zeros_like(energy)).amax(-1, keepdim=True)
    active = (energy > loud * 10.0 ** (-range_db / 10.0)) & (loud > 0) & valid
    a = active.to(target.dtype)
    hang = -(-int(hangover) // stride)
    if hang > 0:
        a = F.max_pool1d(F.pad(a, (hang, 0)), hang + 1, stride=1)
    return a, valid.view(1, 1, frames).expand(B, 1, frames)


def presence_loss(estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor,
                  probe: PresenceProbe | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Binary cross-entropy (nats per frame) of the presence head's output against the target's
    speech activity (:func:`speech_labels`), over the frames the target covers whole.

    Trains a speech-presence head directly, as RNNoise trains its voice-activity output beside
    its gains: through the denoising loss alone the head's gradient is too weak to learn more
    than a constant (eleventh session).  Needs the model (a :class:`PresenceProbe`); the
    estimate and input are not used.
    """
    if probe is None:
        raise ConfigError("the presence loss term needs the model's presence head (a PresenceProbe).")
    p = probe.presence(target.shape[0]).to(target.device)
    labels, valid = speech_labels(target, probe.stride, probe.window, p.shape[-1], probe.offset)
    p = p.clamp(eps, 1.0 - eps)
    bce = -(labels * torch.log(p) + (1.0 - labels) * torch.log1p(-p))
    w = valid.to(p.dtype)
    return (bce * w).sum() / w.sum().clamp_min(1.0)


compressed_spectral.needs_input = True
pause_residual.needs_input = True
noise_only_residual.needs_input = True
gap_residual.needs_input = True
presence_loss.needs_input = True
presence_loss.needs_probe = True


def _check_rate(term: str, sample_rate) -> None:
    """The one sentence for a rate-bound term (``pesq``, ``stoi``) called without a usable sample rate."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise ConfigError(f"the {term} loss term needs the signals' sample rate, 8000 Hz or more, got {sample_rate!r}; "
                          "the trainer passes the task's (get_loss(name, sample_rate=...)).")


def pesq_loss(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
    """PESQ's disturbance ``0.1 d_sym + 0.0309 d_asym`` (MOS points below 4.5,
    :func:`rtconv.train.perceptual.pesq_disturbance`), the mean over the examples whose target holds
    speech (0 for a batch of noise alone).  ``sample_rate``: the signals' rate, 8 kHz or more."""
    _check_rate("pesq", sample_rate)
    T = estimate.shape[-1]
    d_sym, d_asym, speech = pesq_disturbance(estimate.reshape(-1, T), target.reshape(-1, T), sample_rate)
    return (0.1 * d_sym + 0.0309 * d_asym).sum() / speech.sum().clamp_min(1)


pesq_loss.needs_rate = True


def stoi_loss(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
    """``1 - STOI`` (:func:`rtconv.train.perceptual.stoi_estimate`, pystoi's score in torch), the mean
    over the examples whose target holds speech (0 for a batch of noise alone): the intelligibility
    that SI-SDR and the spectral terms do not ask for.  ``sample_rate``: the signals' rate, 8 kHz or
    more; the signals must hold at least 30 STOI frames (0.4 s)."""
    _check_rate("stoi", sample_rate)
    T = estimate.shape[-1]
    scores, scored = stoi_estimate(estimate.reshape(-1, T), target.reshape(-1, T), sample_rate)
    return ((1.0 - scores) * scored).sum() / scored.sum().clamp_min(1)


stoi_loss.needs_rate = True


def _with_rate(f: Loss, sample_rate: int | None) -> Loss:
    """``f`` with ``sample_rate`` bound when it is a term that needs one (``pesq``, ``stoi``)."""
    if not getattr(f, "needs_rate", False) or sample_rate is None:
        return f
    g = functools.partial(f, sample_rate=int(sample_rate))
    g.__name__ = f.__name__
    return g


def apply(loss: Loss, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor,
          probe: PresenceProbe | None = None) -> torch.Tensor:
    """``loss(estimate, target)``, or ``loss(estimate, target, noisy)`` for losses that need the input
    (and ``probe=`` for those that need the model's presence head, :func:`needs_probe`)."""
    if getattr(loss, "needs_probe", False):
        return loss(estimate, target, noisy, probe=probe)
    if getattr(loss, "needs_input", False):
        return loss(estimate, target, noisy)
    return loss(estimate, target)


def needs_probe(loss: Loss) -> bool:
    """Whether ``loss`` (or a term of it) reads the model's presence head (the ``presence`` term)."""
    return bool(getattr(loss, "needs_probe", False))


#: The terms a weighted-sum loss is written in (``"si_sdr + 10*sc + 5*cmrs"``).
TERMS: dict[str, Loss] = {
    "l1": l1,
    "mse": mse,
    "stft": multi_resolution_stft,
    "si_sdr": si_sdr_loss,
    "sc": spectral_convergence,
    "cmrs": compressed_spectral,
    "pause": pause_residual,
    "silence": noise_only_residual,
    "gap": gap_residual,
    "ce": cross_entropy,
    "presence": presence_loss,
    "pesq": pesq_loss,
    "stoi": stoi_loss,
}
if tuple(TERMS) != LOSS_TERMS:
    raise ImportError(f"loss terms {tuple(TERMS)} differ from rtconv.train.choices.LOSS_TERMS {LOSS_TERMS}; "
                      "name each term there too, in the same order.")


def _weighted_sum(parts: tuple[tuple[float, str], ...], sample_rate: int | None = None) -> Loss:
    fns = [(w, _with_rate(TERMS[t], sample_rate)) for w, t in parts]
    needs = any(getattr(f, "needs_input", False) for _, f in fns)

    def loss(estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor | None = None,
             probe: PresenceProbe | None = None) -> torch.Tensor:
        return sum(w * apply(f, estimate, target, noisy, probe) for w, f in fns)

    loss.needs_input = needs
    loss.needs_probe = any(getattr(f, "needs_probe", False) for _, f in fns)
    loss.parts = tuple((w, t, f) for (w, t), (_, f) in zip(parts, fns, strict=True))
    loss.__name__ = " + ".join(f"{w:g}*{t}" for w, t in parts)
    return loss


def loss_and_terms(loss: Loss, estimate: torch.Tensor, target: torch.Tensor,
                   noisy: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """``apply(loss, ...)`` and, for a weighted sum, each of its terms unweighted (``{}`` for a
    single loss), every term computed once: what the trainer logs beside the validation loss, so
    the weights can be judged.  The sum is formed as the loss forms it, so it is the same value."""
    parts = getattr(loss, "parts", ())
    if not parts:
        return apply(loss, estimate, target, noisy), {}
    values = [(w, t, apply(f, estimate, target, noisy)) for w, t, f in parts]
    return sum(w * v for w, _, v in values), {t: float(v) for _, t, v in values}


def terms(loss: Loss, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor) -> dict[str, float]:
    """The unweighted terms of :func:`loss_and_terms`."""
    return loss_and_terms(loss, estimate, target, noisy)[1]


LOSSES: dict[str, Loss] = {
    "l1": l1,
    "mse": mse,
    "stft": multi_resolution_stft,
    "si_sdr": si_sdr_loss,
    "l1+stft": _weighted_sum(((1.0, "l1"), (1.0, "stft"))),
    "si_sdr+sc": _weighted_sum(((1.0, "si_sdr"), (10.0, "sc"))),
    "si_sdr+sc+pause": _weighted_sum(((1.0, "si_sdr"), (10.0, "sc"), (0.25, "pause"))),
    "cmrs": compressed_spectral,
    "cmrs+si_sdr": _weighted_sum(((1.0, "cmrs"), (0.01, "si_sdr"))),
    "ce": cross_entropy,
}
if tuple(LOSSES) != LOSS_NAMES:  # `rtconv train --help` offers LOSS_NAMES without importing torch
    raise ImportError(f"losses {tuple(LOSSES)} differ from rtconv.train.choices.LOSS_NAMES {LOSS_NAMES}; "
                      "name each loss there too, in the same order.")


def get_loss(name: str, sample_rate: int | None = None) -> Loss:
    """The loss called ``name``: one of :data:`LOSSES`, or a weighted sum of :data:`TERMS`
    such as ``"si_sdr + 10*sc + 5*cmrs"`` (see :func:`rtconv.train.choices.parse_loss`).
    ``sample_rate`` (Hz) is bound to the terms that need it (``pesq``, ``stoi``)."""
    if isinstance(name, str) and name.strip() in LOSSES:
        return LOSSES[name.strip()]
    try:
        parts = parse_loss(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return _weighted_sum(parts, sample_rate)
