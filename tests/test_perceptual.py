"""The PESQ-style loss term (rtconv.train.perceptual, the ``pesq`` term of rtconv.train.losses).

It is a training signal, so what matters is that it follows the real PESQ (the ``pesq`` package,
the score the bench reports) in order, that it is level-invariant as PESQ is, that a perfect
estimate costs nothing, and that its gradients stay finite where training meets silence.
"""

import math

import numpy as np
import pytest
import torch

from rtconv.errors import ConfigError
from rtconv.train import losses
from rtconv.train.perceptual import bark_bands, pesq_disturbance, pesq_mos

RATE = 48000


@pytest.fixture(scope="module")
def mixtures():
    """espeak-ng sentences in white, pink and babble noise at -5..30 dB SNR, plus the clean ones."""
    from rtconv.bench.heldout import make_test_set

    return make_test_set(per_cell=1, snrs=[-5.0, 0.0, 5.0, 10.0, 20.0, 30.0], families=["white", "pink", "babble"],
                         seed=3)


def _pick(mixtures, snr, noise):
    return next(ex for ex in mixtures if ex.snr_db == snr and ex.noise == noise)


def _mos(est, ref):
    return float(pesq_mos(torch.from_numpy(np.asarray(est, np.float32))[None],
                          torch.from_numpy(np.asarray(ref, np.float32))[None], RATE)[0])


def test_the_proxy_ranks_noisy_speech_as_pesq_does(mixtures):
    pytest.importorskip("pesq", reason="the pesq package (test and bench extras) scores the reference order")
    from rtconv.bench.heldout import score

    real, proxy = [], []
    for ex in mixtures:
        real.append(score(ex.clean, ex.noisy, ex.noisy, RATE)["pesq"])
        proxy.append(_mos(ex.noisy, ex.clean))
    real, proxy = np.array(real), np.array(proxy)
    rank = lambda v: np.argsort(np.argsort(v))
    spearman = np.corrcoef(rank(real), rank(proxy))[0, 1]
    assert spearman > 0.85, (spearman, real.round(2), proxy.round(2))
    # within each noise, more noise is worse to both
    for fam in ("white", "pink", "babble"):
        p = [q for q, ex in zip(proxy, mixtures) if ex.noise == fam]
        assert all(a < b for a, b in zip(p, p[1:])), (fam, p)


def test_a_perfect_estimate_scores_the_top_at_any_level(mixtures):
    clean = mixtures[0].clean
    # the norms' floor (rtconv.train.perceptual._norm) leaves 0.0013 of the 4.5
    assert _mos(clean, clean) == pytest.approx(4.5, abs=0.002)
    assert _mos(0.3 * clean, clean) == pytest.approx(_mos(clean, clean), abs=1e-6)  # PESQ aligns levels
    ex = _pick(mixtures, 0.0, "pink")
    assert _mos(0.1 * ex.noisy, ex.clean) == pytest.approx(_mos(ex.noisy, ex.clean), abs=1e-4)
    assert _mos(ex.noisy, ex.clean) < 4.0 

def test_residual_noise_in_pauses_costs_more_than_the_same_energy_removed(mixtures):
    # PESQ's asymmetry: energy added where the reference is quiet is a worse disturbance than
    # the same energy taken out of the speech
    ex = _pick(mixtures, 5.0, "white")
    clean = ex.clean.astype(np.float64)
    quiet = np.abs(clean) < 0.02 * np.abs(clean).max()
    rng = np.random.default_rng(0)
    added = clean + np.where(quiet, rng.normal(size=clean.size), 0.0) * 0.01 * np.abs(clean).max()
    err = np.sum((added - clean) ** 2)
    # remove the same energy from the loud speech: scale it down
    loud = ~quiet
    k = 1 - np.sqrt(err / np.sum(clean[loud] ** 2))
    removed = np.where(loud, clean * k, clean)
    assert _mos(added, clean) < _mos(removed, clean)


def test_the_term_is_zero_for_noise_alone_and_its_gradients_are_finite():
    torch.manual_seed(0)
    target = torch.zeros(3, 1, RATE)
    target[0, 0] = torch.randn(RATE) * 0.1 * torch.sin(torch.linspace(0, 20, RATE)).clamp_min(0)
    target[2, 0] = target[0, 0] * 1e-3  # quiet speech (-90 dB) is still speech
    # a noise-alone example whose estimate lets noise through: its silent reference has no level, and
    # before the fix its NaNs reached the gradient through torch.where's unused branch (stage p1 diverged)
    est = (torch.randn(3, 1, RATE) * 0.01).requires_grad_(True)
    loss = losses.get_loss("pesq", RATE)(est, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(est.grad).all()
    assert float(est.grad[1].abs().max()) == 0.0  # the noise-alone example teaches nothing here
    _, _, speech = pesq_disturbance(est.detach()[:, 0], target[:, 0], RATE)
    assert speech.tolist() == [True, False, True]
    # digital silence out (a closed mask) against speech, and a whole batch of noise alone
    silent = torch.zeros(3, 1, RATE, requires_grad=True)
    losses.get_loss("pesq", RATE)(silent, target).backward()
    assert torch.isfinite(silent.grad).all()
    only_noise = losses.get_loss("pesq", RATE)(torch.randn(2, 1, RATE), torch.zeros(2, 1, RATE))
    assert float(only_noise) == 0.0


def test_the_term_needs_the_rate_and_the_trainer_gives_it(tmp_path):
    f = losses.get_loss("si_sdr + 2*pesq")
    with pytest.raises(ConfigError, match="sample rate"):
        f(torch.randn(1, 1, 16000), torch.randn(1, 1, 16000))
    with pytest.raises(ConfigError, match="8000 Hz or more"):
        losses.get_loss("pesq", 4000)(torch.randn(1, 1, 4000), torch.randn(1, 1, 4000))
    g = losses.get_loss("si_sdr + 2*pesq", 16000)
    x = torch.randn(1, 1, 16000)
    assert torch.isfinite(g(x + 0.1 * torch.randn_like(x), x))
    assert losses.terms(g, x, x, x)["pesq"] == pytest.approx(0.0, abs=0.002)
    assert losses.terms(g, 0.5 * x + 0.3 * torch.randn_like(x), x, x)["pesq"] > 0.1


def test_the_bark_bands_cover_100_hz_to_8_khz_once():
    m, centres = bark_bands(1536, RATE)
    assert m.shape == (769, 49)
    assert torch.all(m.sum(1) <= 1)  # no bin in two bands
    assert torch.all(m.sum(0) >= 1)  # no empty band at 32 ms frames
    freqs = torch.arange(769) * RATE / 1536
    used = freqs[m.sum(1) > 0]
    assert used.min() >= 100 and used.max() < 8000
    assert torch.all(centres[1:] > centres[:-1]) and 100 < centres[0] < 200 and 7000 < centres[-1] < 8000


def test_a_training_run_with_the_term_gets_the_task_rate_and_logs_the_term(tmp_path):
    from rtconv.train.trainer import TrainConfig, train

    opts = {"train_examples": 8, "val_examples": 4, "test_examples": 4, "sample_rate": 16000, "seconds": 0.75,
            "utterances": 8}
    lines = []
    cfg = TrainConfig(task="denoise", task_options=opts, arch="framed_denoiser", loss="si_sdr + 4*pesq",
                      arch_config={"channels": 8, "blocks": 1, "window": 32, "hop": 16, "learn_filterbank": False},
                      optimizer="adam", lr=0.01, epochs=2, batch_size=4, progress=False,
                      out=str(tmp_path / "p.safetensors"), seed=4)
    result = train(cfg, log=lines.append)
    assert result.checkpoint.exists() and all(map(math.isfinite, result.history["train_loss"]))
    logged = [ln for ln in lines if "pesq" in ln and "val" in ln]
    assert logged, lines  # the validation line names the term's own value
