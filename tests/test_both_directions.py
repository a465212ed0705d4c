"""Files run forwards and backwards through a denoiser, averaged (``both_directions``, ``--both-directions``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

import rtconv
from rtconv.cli import main
from rtconv.errors import ConfigError
from rtconv.files import process_array, process_file, remove_stale_temporaries


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    """A small recurrent framed denoiser saved as a denoise checkpoint (so primed and DC-blocked as the shipped one)."""
    torch.manual_seed(7)
    model = rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                             "learn_filterbank": False, "gru": 4}).eval()
    path = tmp_path_factory.mktemp("model") / "gru.safetensors"
    rtconv.save(model, path, name="gru", task="denoise", sample_rate=48000)
    return path


def _noisy(frames, channels, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * (np.sin(2 * np.pi * 3 * t)[:, None] > 0)
    return (tone + 0.05 * rng.standard_normal((frames, channels)) + 0.01).astype(np.float32)


def test_the_output_is_the_mean_of_the_forward_pass_and_the_backward_pass(denoiser):
    model = rtconv.load(denoiser)
    x = _noisy(9000, 2)
    # at the file's own level: a loud file's guard sets one gain for both passes, from the forward one
    # (tests/test_levelguard.py), where a reversed file alone would measure its own
    fwd = process_array(x, 16000, model, level_guard=False)
    back = process_array(np.ascontiguousarray(x[::-1]), 16000, model, level_guard=False)[::-1]
    got = process_array(x, 16000, model, both_directions=True, level_guard=False)
    np.testing.assert_allclose(got, 0.5 * (fwd + back), atol=1e-7)
    assert got.shape == x.shape and np.abs(got - fwd).max() > 1e-3  # a different output, not the forward one


def test_a_file_equals_the_array_and_keeps_memory_flat_with_scratch_files_it_removes(denoiser, tmp_path, monkeypatch):
    # chunks of 1000 frames: the backward pass reads the scratch copy from its end in many pieces, the
    # forward pass pairs outputs of other lengths (resampled 16 -> 48 -> 16 kHz) with them
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 1000)
    x = _noisy(9001, 2, seed=1)
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    seen, scratch = [], []

    def progress(done, total):
        seen.append((done, total))
        names = [n for n in os.listdir(tmp_path) if n.startswith(".out.wav.") and n.endswith(".part")]
        scratch.append(len(names))
        # in use: a second run over the same output leaves them alone (they are locked)
        assert remove_stale_temporaries(out, min_age_s=0.0) == []

    s = process_file(src, out, denoiser, both_directions=True, wet=0.75, progress=progress)
    got = sf.read(out, dtype="float32", always_2d=True)[0]
    want = 0.75 * process_array(x, 16000, rtconv.load(denoiser), both_directions=True) + 0.25 * x
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert "both directions" in s.mode and s.output_frames == 9001 and s.both_directions
    assert any(n.startswith("each pass started from the first") and "its end backwards" in n for n in s.notes), s.notes
    assert seen[-1] == (2 * 9001, 2 * 9001) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert max(scratch) == 3  # the two scratch copies and the writer's own temporary, while it ran
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "out.wav"]  # and nothing after


def test_a_cancelled_run_leaves_neither_output_nor_scratch_files(denoiser, tmp_path, monkeypatch):
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 1000)
    src = tmp_path / "in.wav"
    sf.write(src, _noisy(9000, 1), 16000, subtype="FLOAT")

    def stop(done, total):
        if done > total // 2:  # in the forward pass, with part of the output written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_file(src, tmp_path / "out.wav", denoiser, both_directions=True, progress=stop)
    assert os.listdir(tmp_path) == ["in.wav"]


def test_the_command_line_option_writes_what_the_api_does(denoiser, tmp_path):
    x = _noisy(8000, 1, seed=2)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    assert main(["process", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "-m", str(denoiser),
                 "--both-directions", "--quiet"]) == 0
    got = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    np.testing.assert_allclose(got, process_array(x, 16000, rtconv.load(denoiser), both_directions=True)[:, 0],
                               atol=1e-6)


def test_models_that_must_not_run_backwards_are_refused_in_one_sentence_before_any_output(tmp_path, capsys):
    fir = rtconv.FIR(np.array([0.5, 0.25, 0.125], np.float32))
    x = _noisy(4000, 1)
    with pytest.raises(ConfigError, match=r"--both-directions averages a denoiser's passes .* a filter"):
        process_array(x, 16000, fir, both_directions=True)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(ConfigError, match="aligned with the input; leave out --keep-latency"):
        process_file(tmp_path / "in.wav", tmp_path / "out.wav", "denoiser", both_directions=True, align=False)
    assert main(["process", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), "-m", "speech-band",
                 "--both-directions"]) == 1
    err = capsys.readouterr().err
    assert "this model (speech-band) is a filter" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == ["in.wav"]


def test_the_bench_column_needs_the_realistic_sets_quality_run(capsys):
    assert main(["bench", "denoise", "--both-directions", "--no-quality"]) == 1
    assert "--both-directions adds columns to the realistic set's tables; drop it, or drop --no-quality" in (
        capsys.readouterr().err)
