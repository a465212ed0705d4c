"""Linked stereo: one denoiser gain for every channel of a stream, so the stereo image stays put."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import rtconv
from rtconv.denoiser import ConvDenoiser, set_linked
from rtconv.errors import ConfigError

RATE = 48000


@pytest.fixture(scope="module")
def denoiser():
    return rtconv.load("models/denoiser.safetensors")


def _speech(seconds=1.5):
    x, sr = sf.read("recordings/demo_noisy.wav", dtype="float32")
    assert sr == RATE
    return x[: int(seconds * RATE)]


def _stream(model, x, block):
    s = rtconv.Streamer(model, channels=x.shape[1], block_size=block)
    return np.concatenate([s.process(x[i : i + block]) for i in range(0, len(x), block)])


@pytest.mark.parametrize("block", [1, 7, 128, 4096])
@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("gru", [0, 8])
def test_linked_streaming_equals_the_linked_offline_forward(block, channels, gru):
    torch.manual_seed(channels + gru)
    m = ConvDenoiser(window=32, hop=16, channels=8, blocks=2, gru=gru, learn_filterbank=False, activation="tanh")
    with torch.no_grad():  # a mask that varies: trained-looking, not the near-identity init
        for p in m.gate.estimator.parameters():
            p.add_(0.3 * torch.randn_like(p))
    set_linked(m, True)
    rng = np.random.default_rng(block)
    x = (0.3 * rng.standard_normal((3000, channels))).astype(np.float32)
    with torch.no_grad():
        off = m(torch.from_numpy(x.T.copy())[:, None, :])[:, 0, :].numpy().T
    y = _stream(m, x, block)
    lat = m.latency
    np.testing.assert_allclose(y[lat:], off[: len(off) - lat], atol=2e-6)


def test_linked_keeps_the_stereo_image_and_unlinked_does_not(denoiser):
    x = _speech()
    st = np.stack([x, 0.5 * x], 1)  # a source panned left: right is the same sound 6 dB down
    set_linked(denoiser, True)
    y = _stream(denoiser, st, 128)
    np.testing.assert_allclose(y[:, 1], 0.5 * y[:, 0], atol=1e-7)  # same gains: still 6 dB down everywhere
    set_linked(denoiser, False)
    y = _stream(denoiser, st, 128)
    assert np.abs(y[:, 1] - 0.5 * y[:, 0]).max() > 1e-3  # each channel judged alone: the image wanders


def test_identical_channels_come_out_the_same_linked_or_not(denoiser):
    x = _speech()
    st = np.stack([x, x], 1)
    set_linked(denoiser, True)
    a = _stream(denoiser, st, 512)
    set_linked(denoiser, False)
    b = _stream(denoiser, st, 512)
    np.testing.assert_array_equal(a, b)


def test_a_model_without_a_mask_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"has no gains to link: only mask denoisers do; leave --linked out"):
        set_linked(rtconv.FIR([1.0]), True)


def test_linked_reaches_every_worker_of_a_batch_and_the_live_processor(tmp_path, denoiser):
    x = _speech(1.0)
    for k in range(3):
        sf.write(tmp_path / f"in{k}.wav", np.stack([x, (0.5 - 0.1 * k) * x], 1), RATE, subtype="FLOAT")
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([sys.executable, "-m", "rtconv", "process", *(str(tmp_path / f"in{k}.wav") for k in range(3)),
                        "-o", str(out), "--linked", "-j", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for k in range(3):
        y, _ = sf.read(out / f"in{k}-denoised.wav", dtype="float32")
        np.testing.assert_allclose(y[:, 1], (0.5 - 0.1 * k) * y[:, 0], atol=1e-6)
    from _live import processor as LiveProcessor

    set_linked(denoiser, True)
    proc = LiveProcessor(denoiser, RATE, 2, 128)
    proc.set_controls(limiter=False)
    st = np.stack([x, 0.5 * x], 1)
    y = np.concatenate([proc.process(st[i : i + 128]).copy() for i in range(0, len(st), 128)])
    np.testing.assert_allclose(y[:, 1], 0.5 * y[:, 0], atol=1e-7)
    set_linked(denoiser, False)


def test_the_onnx_export_of_a_linked_denoiser_matches_the_streamer(tmp_path, denoiser):
    pytest.importorskip("onnxruntime")
    from rtconv.onnx import OnnxStep, export

    set_linked(denoiser, True)
    try:
        export(denoiser, tmp_path / "d.onnx", 256, 2, check=False)
        run = OnnxStep(tmp_path / "d.onnx")
        s = rtconv.Streamer(denoiser, channels=2, block_size=256)
        x = _speech(0.5)
        st = np.stack([x, 0.3 * x + 0.01], 1).astype(np.float32)
        err = max(float(np.abs(run.process(st[i : i + 256]) - s.process(st[i : i + 256])).max())
                  for i in range(0, len(st) - 255, 256))
        assert err <= 1e-4
    finally:
        set_linked(denoiser, False)


def test_linked_on_a_mono_stream_is_refused_rather_than_ignored():
    r = subprocess.run([sys.executable, "-m", "rtconv", "live", "--linked"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == (
        "rtconv live: error: --linked links the denoiser's gains across channels, and the stream has 1; add "
        "--channels 2 (a stereo microphone), or leave --linked out."), r.stderr
