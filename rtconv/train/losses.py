"""Training losses on ``(batch, channels, time)`` tensors.

``l1`` and ``mse`` compare samples; ``stft`` (multi-resolution STFT
magnitude, as in Parallel WaveGAN / Demucs) compares what the ear hears
more closely: spectral convergence plus log-magnitude L1 at three
resolutions; ``si_sdr`` is minus the scale-invariant SDR in dB (higher SDR
-> lower loss); ``l1+stft`` adds the two; ``si_sdr+sc`` adds to SI-SDR ten
times the multi-resolution spectral convergence, a linear-magnitude term
that keeps rewarding suppression of noise-only time-frequency regions
(unlike log magnitudes, it does not chase digital silence to the clamp).

Use :func:`get_loss` to look one up by name.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["LOSSES", "get_loss", "l1", "mse", "multi_resolution_stft", "si_sdr_loss", "spectral_convergence"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(estimate, target)


def mse(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(estimate, target)


def _stft_mag(x: torch.Tensor, fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(x.reshape(-1, x.shape[-1]), fft, hop, fft, window, return_complex=True,
                      center=True, pad_mode="constant")
    return spec.abs().clamp_min(1e-7)


_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))


def _magnitudes(estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]]):
    """STFT magnitude pairs ``(|E|, |T|)`` per ``(fft_size, hop)``; sizes longer than the signal are halved until they fit."""
    n = estimate.shape[-1]
    for fft, hop in resolutions:
        while fft > n and fft > 8:
            fft, hop = fft // 2, max(1, hop // 2)
        window = torch.hann_window(fft, device=estimate.device, dtype=estimate.dtype)
        yield _stft_mag(estimate, fft, hop, window), _stft_mag(target, fft, hop, window)


def _convergence(e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.norm(t - e) / torch.linalg.norm(t).clamp_min(1e-7)


def multi_resolution_stft(
    estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]] = _RESOLUTIONS,
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (``(fft_size, hop)`` pairs)."""
    terms = [_convergence(e, t) + F.l1_loss(torch.log(e), torch.log(t))
             for e, t in _magnitudes(estimate, target, resolutions)]
    return sum(terms) / len(terms)


def spectral_convergence(
    estimate: torch.Tensor, target: torch.Tensor, resolutions: Sequence[tuple[int, int]] = _RESOLUTIONS,
) -> torch.Tensor:
    """``||T| - |E||_F / ||T||_F`` of STFT magnitudes, averaged over resolutions."""
    terms = [_convergence(e, t) for e, t in _magnitudes(estimate, target, resolutions)]
    return sum(terms) / len(terms)


def si_sdr_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the mean SI-SDR in dB over every (batch, channel) signal."""
    e = estimate - estimate.mean(dim=-1, keepdim=True)
    t = target - target.mean(dim=-1, keepdim=True)
    alpha = (e * t).sum(-1, keepdim=True) / (t.pow(2).sum(-1, keepdim=True) + 1e-8)
    proj = alpha * t
    ratio = proj.pow(2).sum(-1) / ((proj - e).pow(2).sum(-1) + 1e-8)
    return -10.0 * torch.log10(ratio + 1e-8).mean()


def _si_sdr_sc(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return si_sdr_loss(estimate, target) + 10.0 * spectral_convergence(estimate, target)


def _l1_stft(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return l1(estimate, target) + multi_resolution_stft(estimate, target)


LOSSES: dict[str, Loss] = {
    "l1": l1,
    "mse": mse,
    "stft": multi_resolution_stft,
    "si_sdr": si_sdr_loss,
    "l1+stft": _l1_stft,
    "si_sdr+sc": _si_sdr_sc,
}


def get_loss(name: str) -> Loss:
    """The loss function called ``name`` (one of :data:`LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}.") from None
