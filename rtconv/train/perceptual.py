"""Differentiable perceptual scores: the ``pesq`` and ``stoi`` loss terms.

PESQ
----

The model of ITU-T P.862 (PESQ) and P.862.2 (its wide-band mode), as a
loss on aligned signals: both signals are brought to one listening level,
split into 32 ms frames of Bark-band powers up to 8 kHz, the reference's
long-term spectrum and each degraded frame's gain are partly compensated
(PESQ forgives a steady colouring and slow gain changes), the powers become
loudness (Zwicker's law over the hearing threshold), and the loudness
difference, less what the louder of the two masks, is the *disturbance*.
Its symmetric and asymmetric (added energy counts more than removed)
parts, aggregated over bands and time with PESQ's norms, give
``0.1 * d_sym + 0.0309 * d_asym``: what PESQ subtracts from 4.5.

This is an approximation written from the standard's published structure,
not the standard: no time alignment (a denoiser's output is aligned), Bark
bands uniform on Traunmüller's scale instead of P.862's tables, Terhardt's
hearing threshold, the speech assumed at PESQ's 79 dB SPL listening level.
It is a training signal that follows PESQ's preferences (residual noise in
pauses and added energy cost more than removed detail; a steady EQ costs
little), checked against the ``pesq`` package's scores by
``tests/test_perceptual.py``; the scores users read are always the real
PESQ.  The same idea as audiolabs' ``torch-pesq`` (which needs torchaudio,
not available here), combined, as there, with SI-SDR.

Runs at any sample rate of 16 kHz or more: the frames are 32 ms long at the
signal's own rate and only bins up to 8 kHz are used, so no resampler sits
in the gradient's path.  Examples whose target holds no speech (noise only)
score 0: the reference would be silence, which PESQ cannot judge.

STOI
----
:func:`stoi_estimate` is short-time objective intelligibility (Taal et al.
2011) as the ``pystoi`` package computes it (the bench's score), in torch:
~25.6 ms Hann frames at half overlap, the 15 one-third-octave bands from
150 Hz as band envelopes, segments of 30 frames (384 ms) starting at every
frame, the estimate's envelope scaled to the target's energy and clipped at
-15 dB SDR, and the correlation of the two, averaged over bands and segments.
It differs from pystoi where a gradient or a batch needs it: no resampling to
10 kHz (the frames are taken at the signals' own rate, only the bands up to
4.3 kHz are read, and the silent-frame test counts bins under 5 kHz, where
pystoi's resampler cuts), and the silent frames are dropped from the STFT
frames of the original signals instead of resynthesising a shortened signal
and analysing that (at a run of kept frames the two agree; pystoi's overlap-add
blends two frames where it joins runs).  ``tests/test_losses_stoi.py``
measures the agreement.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["pesq_disturbance", "pesq_mos", "bark_bands", "stoi_estimate", "third_octave_bands"]

_BANDS = 49            # P.862.2's wide-band Bark bands
_LOW_HZ, _HIGH_HZ = 100.0, 8000.0
_LISTEN_DB_SPL = 79.0  # PESQ's assumed listening level of the speech
_ZWICKER = 0.23        # loudness exponent
_MASK = 0.25           # the louder signal masks this share of the difference
_FRAME_S = 0.032
_SPLIT = 20            # frames per "split second" interval (L6 within, L2 across)
_SILENT_DB = -100.0    # a target this far under full scale in mean power holds no speech


def _bark(f: torch.Tensor | float) -> torch.Tensor | float:
    """Traunmüller's Bark scale."""
    return 26.81 * f / (1960.0 + f) - 0.53


@functools.lru_cache(maxsize=8)
def bark_bands(fft: int, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bins, bands)`` matrix summing power-spectrum bins into :data:`_BANDS` bands uniform in Bark
    from 100 Hz to 8 kHz, and each band's centre frequency in Hz (built once per frame size and rate:
    every training step asks for the same; treat the tensors as read-only)."""
    freqs = torch.arange(fft // 2 + 1, dtype=torch.float64) * rate / fft
    z = _bark(freqs)
    lo, hi = _bark(_LOW_HZ), _bark(min(_HIGH_HZ, rate / 2))
    edges = torch.linspace(lo, hi, _BANDS + 1, dtype=torch.float64)
    idx = torch.bucketize(z, edges) - 1
    inside = (freqs >= _LOW_HZ) & (freqs < min(_HIGH_HZ, rate / 2)) & (idx >= 0) & (idx < _BANDS)
    m = torch.zeros(fft // 2 + 1, _BANDS, dtype=torch.float64)
    m[inside.nonzero().squeeze(1), idx[inside]] = 1.0
    centre_z = (edges[:-1] + edges[1:]) / 2
    centre_hz = 1960.0 * (centre_z + 0.53) / (26.28 - centre_z)  # the scale's inverse
    return m, centre_hz


def _threshold_db(f_hz: torch.Tensor) -> torch.Tensor:
    """Terhardt's absolute hearing threshold, dB SPL."""
    k = f_hz / 1000.0
    return 3.64 * k.pow(-0.8) - 6.5 * torch.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k.pow(4)


def _band_powers(x: torch.Tensor, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, frames, bands)`` Bark powers of ``(N, T)`` signals, 32 ms Hann frames, half overlap,
    and the band centres."""
    fft = int(round(_FRAME_S * rate))
    fft += fft % 2
    win = torch.hann_window(fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, fft, fft // 2, window=win, center=False, return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (N, bins, frames)
    m, centres = bark_bands(fft, rate)
    return torch.einsum("nbt,bk->ntk", power, m.to(x.dtype).to(x.device)), centres.to(x.device)


def _norm(x: torch.Tensor, p: float, dim: int) -> torch.Tensor:
    """The mean-normalised Lp norm ``(mean |x|^p + 1e-12)^(1/p)`` along ``dim``: the floor keeps the
    gradient finite at 0 and leaves a perfect estimate 0.0013 MOS points short of 4.5 (the two
    norms in a row take it to 1e-12^(1/6))."""
    return (x.abs().pow(p).mean(dim) + 1e-12).pow(1.0 / p)


def _split(d: torch.Tensor, p: float) -> torch.Tensor:
    """PESQ's time aggregation of ``(N, frames)`` frame disturbances: Lp within intervals of
    :data:`_SPLIT` frames (half-overlapping), L2 across them."""
    if d.shape[1] < _SPLIT:
        return _norm(d, 2.0, 1)
    parts = d.unfold(1, _SPLIT, _SPLIT // 2)  # (N, intervals, SPLIT)
    return _norm(_norm(parts, p, 2), 2.0, 1)


def _speech_or_self(estimate: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(speech, target)``: which ``(N, T)`` targets hold speech, and the targets with each one that does
    not replaced by its estimate (detached).  An example without speech is judged against itself (a score
    the caller then sets to 0): a silent reference has no level to align to, and its NaNs would reach the
    gradient through torch.where's other branch."""
    speech = target.detach().square().mean(-1) > 10 ** (_SILENT_DB / 10)
    return speech, torch.where(speech[:, None], target, estimate.detach())


def pesq_disturbance(estimate: torch.Tensor, target: torch.Tensor,
                     rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(d_sym, d_asym, speech)`` for ``(N, T)`` estimate and target: PESQ's two disturbances per
    example, and which examples hold speech (the others' disturbances are 0)."""
    speech, target = _speech_or_self(estimate, target)
    both, centres = _band_powers(torch.cat([target, estimate]), rate)  # one STFT for the pair
    pr, pd = both.chunk(2)
    # one listening level: the target's mean band power over its loud frames is 79 dB SPL; the
    # estimate is brought to the target's level by its own power (PESQ aligns both signals alike),
    # raised by at most 60 dB more than the target (an estimate silent where the target is loud)
    ref_frame = pr.sum(-1)  # (N, frames)
    loud = ref_frame > ref_frame.amax(-1, keepdim=True) * 1e-3
    ref_level = ((ref_frame * loud).sum(-1) / loud.sum(-1).clamp_min(1)).clamp_min(1e-20)
    deg_level = (pd.sum(-1) * loud).sum(-1) / loud.sum(-1).clamp_min(1)
    unit = 10 ** (_LISTEN_DB_SPL / 10)
    ref_gain = unit / ref_level
    deg_gain = torch.minimum(unit / deg_level.clamp_min(1e-30), ref_gain * 1e6)
    pr = pr * ref_gain[:, None, None]
    pd = pd * deg_gain[:, None, None]
    # a steady colouring is forgiven in part: the reference takes the estimate's long-term spectrum
    # over the loud frames, within +-20 dB (P.862's frequency compensation)
    w = loud.to(pr.dtype)[..., None]
    ratio = ((pd * w).sum(1) + 1e3) / ((pr * w).sum(1) + 1e3)
    pr = pr * ratio.clamp(0.01, 100.0)[:, None, :]
    # and slow gain changes: each estimate frame is scaled towards the reference frame's power,
    # within 3e-4 .. 5 (P.862's gain compensation; smoothing left out)
    g = ((pr.sum(-1) + 5e4) / (pd.sum(-1) + 5e4)).clamp(3e-4, 5.0)
    pd = pd * g[..., None]
    # loudness (sone-like) over the hearing threshold, Zwicker's law
    p0 = (10 ** (_threshold_db(centres) / 10)).to(pr.dtype)[None, None, :]

    def loudness(p: torch.Tensor) -> torch.Tensor:
        s = (p0 / 0.5).pow(_ZWICKER) * ((0.5 + 0.5 * p / p0).pow(_ZWICKER) - 1.0)
        return s.clamp_min(0.0)

    lr, ld = loudness(pr), loudness(pd)
    diff = ld - lr
    mask = _MASK * torch.minimum(ld, lr)
    dist = torch.sign(diff) * torch.relu(diff.abs() - mask)
    # added energy counts more: ((Pd + c) / (Pr + c))^1.2, 0 under 3, at most 12
    asym = ((pd + 50.0) / (pr + 50.0)).pow(1.2)
    asym = torch.where(asym < 3.0, torch.zeros_like(asym), asym.clamp(max=12.0))
    frame_sym = _norm(dist, 2.0, 2)        # over bands
    frame_asym = (dist.abs() * asym).mean(2)  # L1 over bands
    d_sym = _split(frame_sym, 6.0)
    d_asym = _split(frame_asym, 6.0)
    zero = torch.zeros_like(d_sym)
    return torch.where(speech, d_sym, zero), torch.where(speech, d_asym, zero), speech


def pesq_mos(estimate: torch.Tensor, target: torch.Tensor, rate: int) -> torch.Tensor:
    """``4.5 - 0.1 d_sym - 0.0309 d_asym`` per example (P.862's raw score, before any mapping)."""
    d_sym, d_asym, _ = pesq_disturbance(estimate.reshape(-1, estimate.shape[-1]),
                                         target.reshape(-1, target.shape[-1]), rate)
    return 4.5 - 0.1 * d_sym - 0.0309 * d_asym


_STOI_BANDS = 15          # one-third-octave bands ...
_STOI_LOW_HZ = 150.0      # ... from this centre frequency (pystoi's NUMBAND, MINFREQ)
_STOI_FRAME_S = 0.0256    # pystoi's 256 samples at 10 kHz
_STOI_BIN_HZ = 10000 / 512  # pystoi's FFT resolution (512 bins at 10 kHz), matched as near as a power of two can
_STOI_SEGMENT = 30        # frames per segment (384 ms)
_STOI_CLIP = 1.0 + 10 ** (15.0 / 20)  # 1 + 10^(-BETA/20), BETA = -15 dB
_STOI_RANGE_DB = 40.0     # frames this far under the target's loudest are silent
_STOI_CUT_HZ = 5000.0     # pystoi's resampling to 10 kHz keeps only this band


def _stoi_sizes(rate: int) -> tuple[int, int, int]:
    """``(window, hop, fft)`` in samples at ``rate``: 25.6 ms, half of it, and the power of two nearest
    pystoi's frequency resolution that holds the window."""
    win = int(round(_STOI_FRAME_S * rate))
    fft = 2 ** int(round(np.log2(rate / _STOI_BIN_HZ)))
    while fft < win:
        fft *= 2
    return win, win // 2, fft


@functools.lru_cache(maxsize=8)
def third_octave_bands(fft: int, rate: int) -> np.ndarray:
    """``(15, fft // 2 + 1)`` 0/1 matrix summing power-spectrum bins into STOI's one-third-octave bands
    (centres ``150 * 2^(k/3)`` Hz, edges at the nearest bins, upper edge excluded), as pystoi's
    ``thirdoct`` builds it."""
    f = np.linspace(0, rate, fft + 1)[: fft // 2 + 1]
    k = np.arange(_STOI_BANDS, dtype=float)
    low = _STOI_LOW_HZ * 2.0 ** ((2 * k - 1) / 6)
    high = _STOI_LOW_HZ * 2.0 ** ((2 * k + 1) / 6)
    obm = np.zeros((_STOI_BANDS, f.size))
    for i in range(_STOI_BANDS):
        obm[i, np.argmin(np.square(f - low[i])):np.argmin(np.square(f - high[i]))] = 1.0
    return obm


def _safe_norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norm along ``dim`` with a finite gradient at 0."""
    return (x.square().sum(dim, keepdim=True) + 1e-20).sqrt()


def stoi_estimate(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, scored)`` for ``(N, T)`` estimate and target at ``sample_rate`` Hz (8000 or more):
    STOI per example (``pystoi.stoi(target, estimate, sample_rate)``'s score, see the module's
    docstring for the differences) and which examples it judges: those whose target holds speech
    and keeps at least 30 frames after the silent ones are dropped (the others score 0; pystoi
    warns and returns 1e-5 for too few frames).

    Silent frames: the target's frames more than 40 dB under its loudest (energy under 5 kHz) are
    dropped from both signals before the segments are cut, as in pystoi; each example's kept frames
    are packed to the front (a gather, so the gradient reaches them) and only the segments that lie
    wholly within them count, which keeps the batch rectangular and the segments pystoi's.  The mask
    is the target's alone and carries no gradient."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise ConfigError(f"STOI needs the signals' sample rate, 8000 Hz or more, got {sample_rate!r}.")
    win, hop, fft = _stoi_sizes(sample_rate)
    length = target.shape[-1]
    if length < win + _STOI_SEGMENT * hop:
        raise ConfigError(f"STOI needs signals of at least {win + _STOI_SEGMENT * hop} samples at {sample_rate} Hz "
                          f"({_STOI_SEGMENT} frames of {1000 * _STOI_FRAME_S:g} ms at half overlap), got {length}.")
    speech, target = _speech_or_self(estimate, target)
    # STOI ignores level; the target's RMS as unit keeps the floors below relative to the speech
    unit = target.detach().square().mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
    window = torch.hann_window(win + 2, periodic=False, dtype=target.dtype, device=target.device)[1:-1]  # pystoi's
    obm = third_octave_bands(fft, sample_rate)
    cut = int(_STOI_CUT_HZ * fft / sample_rate) + 1
    bins = max(cut, int(np.flatnonzero(obm.any(0))[-1]) + 1)  # only these are read

    def envelopes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, frames, bands)`` band envelopes of ``x`` and its ``(N, bins, frames)`` power spectrum."""
        spec = torch.stft(x / unit, fft, hop, win, window, center=False, return_complex=True)[:, :bins]
        power = spec.real.square() + spec.imag.square()
        m = torch.from_numpy(obm[:, :bins]).to(power)
        return (torch.einsum("kb,nbt->ntk", m, power) + 1e-12).sqrt(), power

    y, _ = envelopes(estimate)
    with torch.no_grad():  # the target's side (envelopes, silent-frame mask) needs no gradient
        x, pt = envelopes(target)
        energy_db = 10 * torch.log10(pt[:, :cut].sum(1) + 1e-30)  # (N, frames)
        kept = energy_db > energy_db.amax(-1, keepdim=True) - _STOI_RANGE_DB
        # pystoi analyses the overlap-added kept frames, which yields one frame fewer than it kept
        count = kept.sum(-1) - 1
        order = torch.sort((~kept).to(torch.int8), dim=-1, stable=True).indices  # kept frames first, in order
    idx = order[..., None].expand(-1, -1, _STOI_BANDS)
    x, y = x.gather(1, idx), y.gather(1, idx)
    xs = x.unfold(1, _STOI_SEGMENT, 1)  # (N, segments, bands, 30)
    ys = y.unfold(1, _STOI_SEGMENT, 1)
    alpha = _safe_norm(xs, -1) / _safe_norm(ys, -1)
    yp = torch.minimum(ys * alpha, xs * _STOI_CLIP)
    yp = yp - yp.mean(-1, keepdim=True)
    xs = xs - xs.mean(-1, keepdim=True)
    corr = (yp * xs).sum(-1) / (_safe_norm(yp, -1) * _safe_norm(xs, -1)).squeeze(-1)  # (N, segments, bands)
    segments = count - _STOI_SEGMENT + 1
    valid = torch.arange(xs.shape[1], device=xs.device)[None, :] < segments[:, None]
    scores = (corr.mean(-1) * valid).sum(-1) / segments.clamp_min(1)
    scored = speech & (segments > 0)
    return torch.where(scored, scores, torch.zeros_like(scores)), scored
