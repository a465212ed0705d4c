"""The STOI loss term (rtconv.train.perceptual.stoi_estimate, the ``stoi`` term of rtconv.train.losses).

The bench scores intelligibility with ``pystoi``; the term is pystoi's definition written in torch at
the signals' own rate, so these tests hold it to pystoi's numbers on speech-like signals in noise,
check that a perfect estimate scores 1 with usable gradients, and that descending on the term raises
pystoi's score.
"""

import numpy as np
import pytest
import torch

from rtconv.errors import ConfigError
from rtconv.train import losses
from rtconv.train.perceptual import stoi_estimate, third_octave_bands


def speechlike(rate: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voiced syllables: harmonics of a gliding pitch shaped by three formants, under 120-300 ms
    raised-sine envelopes with 40-250 ms pauses, plus a little fricative noise at their peaks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 110 + 40 * rng.random() + 25 * np.sin(2 * np.pi * 0.7 * t + rng.random() * 6)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = rng.uniform([400, 1100, 2300], [800, 1800, 3200])
    voiced = np.zeros_like(t)
    for h in range(1, 40):
        fh = h * f0.mean()
        if fh > 0.45 * rate:
            break
        gain = sum(np.exp(-0.5 * ((fh - f) / 150) ** 2) for f in formants) + 0.05
        voiced += gain / h ** 0.5 * np.sin(h * phase + rng.random() * 6)
    env = np.zeros_like(t)
    pos = int(0.1 * rate)
    while pos < t.size:
        n = int(rng.uniform(0.12, 0.3) * rate)
        env[pos:pos + n] = (np.sin(np.linspace(0, np.pi, n)) ** 2 * rng.uniform(0.3, 1.0))[: t.size - pos]
        pos += n + int(rng.uniform(0.04, 0.25) * rate)
    x = env * voiced + 0.3 * env ** 4 * np.diff(rng.normal(size=t.size + 1)) * 0.15
    return 0.1 * x / np.sqrt(np.mean(x ** 2))


def noisy(clean: np.ndarray, kind: str, snr_db: float, seed: int) -> np.ndarray:
    """``clean`` plus white or pink (1/f power) noise at ``snr_db`` over the whole signal."""
    w = np.random.default_rng(seed).normal(size=clean.size)
    if kind == "pink":
        f = np.fft.rfft(w)
        w = np.fft.irfft(f / np.sqrt(np.maximum(np.arange(f.size), 1)), clean.size)
    return clean + w * np.sqrt(np.mean(clean ** 2) / np.mean(w ** 2) / 10 ** (snr_db / 10))


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def _score(estimate, target, rate: int) -> float:
    s, scored = stoi_estimate(_t(estimate)[None], _t(target)[None], rate)
    assert bool(scored[0])
    return float(s[0])


@pytest.mark.parametrize("rate", [16000, 48000])
def test_the_score_tracks_pystoi_on_speech_in_noise(rate):
    pystoi = pytest.importorskip("pystoi", reason="pystoi (test and bench extras) is the reference score")
    ref, ours = [], []
    for seed, kind in ((1, "white"), (2, "pink")):
        clean = speechlike(rate, 2.0, seed)
        for snr in (-5.0, 0.0, 5.0, 10.0, 20.0):
            mix = noisy(clean, kind, snr, seed + 10)
            ref.append(pystoi.stoi(clean, mix, rate))
            ours.append(_score(mix, clean, rate))
    ref, ours = np.array(ref), np.array(ours)
    # measured on these items: r 0.9998 / 0.998, mean |diff| 0.003 / 0.011, largest 0.006 / 0.031 at
    # 16 / 48 kHz (at 48 kHz the term reads pink noise at -5..5 dB SNR 0.02-0.03 higher than pystoi)
    assert np.corrcoef(ref, ours)[0, 1] > 0.95, (ref.round(3), ours.round(3))
    assert np.abs(ref - ours).mean() < 0.02, (ref.round(3), ours.round(3))
    assert np.abs(ref - ours).max() < 0.05, (ref.round(3), ours.round(3))


def test_identical_signals_score_one_and_give_finite_nonzero_gradients():
    rate = 16000
    clean = _t(speechlike(rate, 1.5, 3))
    assert _score(clean, clean, rate) == pytest.approx(1.0, abs=1e-4)
    assert _score(0.01 * clean, clean, rate) == pytest.approx(1.0, abs=1e-4)  # STOI ignores level
    est = _t(noisy(clean.numpy().astype(np.float64), "white", 5.0, 4))[None, None].requires_grad_(True)
    loss = losses.get_loss("stoi", rate)(est, clean[None, None])
    loss.backward()
    assert 0.0 < float(loss.detach()) < 1.0
    assert torch.isfinite(est.grad).all() and float(est.grad.abs().max()) > 0
    # digital silence out against speech: finite, and the worst score
    silent = torch.zeros(1, 1, clean.numel(), requires_grad=True)
    loss = losses.get_loss("stoi", rate)(silent, clean[None, None])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(silent.grad).all()


def test_the_term_sums_with_others_and_is_zero_for_noise_alone():
    rate = 16000
    f = losses.get_loss("si_sdr + 10*stoi", rate)
    assert [t for _, t, _ in f.parts] == ["si_sdr", "stoi"]
    target = torch.zeros(3, 1, rate)
    target[1, 0] = _t(speechlike(rate, 1.0, 5))
    est = (target + 0.05 * torch.randn(3, 1, rate)).requires_grad_(True)
    stoi = losses.get_loss("stoi", rate)(est, target)
    stoi.backward()
    assert 0.0 < stoi.item() < 1.0 and torch.isfinite(est.grad).all()
    assert float(est.grad[0].abs().max()) == 0.0 and float(est.grad[2].abs().max()) == 0.0  # noise alone teaches nothing
    assert float(losses.get_loss("stoi", rate)(torch.randn(2, 1, rate), torch.zeros(2, 1, rate))) == 0.0
    assert losses.terms(f, est.detach(), target, est.detach())["stoi"] == pytest.approx(stoi.item())


def test_the_term_needs_the_rate_and_long_enough_signals():
    x = torch.randn(1, 1, 16000)
    with pytest.raises(ConfigError, match=r"^the stoi loss term needs the signals' sample rate, 8000 Hz or more, got None;"):
        losses.get_loss("si_sdr + 2*stoi")(x, x)
    with pytest.raises(ConfigError, match="got 4000"):
        losses.get_loss("stoi", 4000)(x, x)
    with pytest.raises(ConfigError, match="at least"):
        losses.get_loss("stoi", 16000)(x[..., :4000], x[..., :4000])


def test_the_bands_are_pystois_at_its_own_rate():
    pytest.importorskip("pystoi", reason="pystoi (test and bench extras) holds the reference bands")
    from pystoi.utils import thirdoct

    assert np.array_equal(third_octave_bands(512, 10000), thirdoct(10000, 512, 15, 150)[0])
    m = third_octave_bands(2048, 48000)
    assert m.shape == (15, 1025) and np.all(m.sum(0) <= 1) and np.all(m.sum(1) >= 1)


def test_descending_on_the_term_raises_pystois_score():
    pystoi = pytest.importorskip("pystoi", reason="pystoi (test and bench extras) is the reference score")
    rate = 16000
    clean = speechlike(rate, 2.0, 6)
    mix = noisy(clean, "white", 0.0, 7)
    # a gain per STFT bin on the noisy input, trained on the term alone
    window = torch.hann_window(512)
    spec = torch.stft(_t(mix), 512, 128, window=window, return_complex=True)
    logit = torch.zeros(spec.shape, requires_grad=True)
    target = _t(clean)[None, None]
    loss_fn = losses.get_loss("stoi", rate)
    opt = torch.optim.Adam([logit], lr=0.1)

    def out():
        return torch.istft(spec * torch.sigmoid(logit + 2.0), 512, 128, window=window, length=mix.size)

    before = pystoi.stoi(clean, out().detach().numpy(), rate)
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(out()[None, None], target)
        loss.backward()
        opt.step()
    after = pystoi.stoi(clean, out().detach().numpy(), rate)
    assert after > before + 0.03, (before, after)
