"""Strength on the command line: --atten-lim for denoisers and --wet for files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rtconv import checkpoint, files
from rtconv.cli import main
from rtconv.errors import ConfigError

RATE = 48000


@pytest.fixture()
def noisy_file(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (t > 0.3) + 0.05 * rng.standard_normal(RATE)
    path = tmp_path / "in.wav"
    sf.write(str(path), x.astype(np.float32), RATE, subtype="FLOAT")
    return path, x.astype(np.float32)


def _run(path, out, **kw):
    files.process_file(path, out, overwrite=True, **kw)
    return sf.read(str(out), dtype="float32")[0]


def test_wet_mixes_the_aligned_input_back_in(noisy_file, tmp_path):
    path, x = noisy_file
    wet = _run(path, tmp_path / "wet.wav")
    dry = _run(path, tmp_path / "dry.wav", wet=0.0)
    half = _run(path, tmp_path / "half.wav", wet=0.5)
    np.testing.assert_allclose(dry, x, atol=1e-6)
    np.testing.assert_allclose(half, 0.5 * wet + 0.5 * x, atol=1e-5)
    assert np.abs(wet - x).max() > 0.01  # the model did something, so the mix is not trivial


@pytest.mark.parametrize("wet", [-0.1, 1.5, True, "0.5"])
def test_a_bad_wet_is_one_sentence(noisy_file, tmp_path, wet):
    path, _ = noisy_file
    with pytest.raises(ConfigError, match="wet must be a number from 0"):
        files.process_file(path, tmp_path / "o.wav", wet=wet)
    assert not (tmp_path / "o.wav").exists()


def test_wet_needs_an_aligned_output(noisy_file, tmp_path):
    path, _ = noisy_file
    with pytest.raises(ConfigError, match="leave out --keep-latency"):
        files.process_file(path, tmp_path / "o.wav", wet=0.5, align=False)


def test_an_attenuation_limit_caps_the_suppression_and_leaves_the_model_as_it_was(noisy_file, tmp_path):
    path, x = noisy_file
    model = checkpoint.load(checkpoint.default_model_path())
    before = model.attenuation_limit_db
    free = _run(path, tmp_path / "free.wav", model=model)
    capped = _run(path, tmp_path / "capped.wav", model=model, attenuation_limit_db=3.0)
    assert model.attenuation_limit_db == before
    removed_free = np.sum((x - free) ** 2)
    removed_capped = np.sum((x - capped) ** 2)
    assert removed_capped < removed_free
    # a 3 dB cap keeps at least ~71 % of the level of every band: the output energy cannot drop by more
    assert np.sum(capped**2) >= 0.5 * 10 ** (-3 / 10) * np.sum(x**2)


def test_the_shipped_denoiser_at_atten_lim_0_gives_the_input_back_and_removes_noise_down_to_the_limit():
    """Its decoder carries a +3.3 dB calibration gain, and the floor followed it: at 0 dB the output was 3.3 dB
    louder than the input, at 12 dB white noise came down by 8.4 dB."""
    model = checkpoint.load(checkpoint.default_model_path())
    x = 0.01 * np.random.default_rng(1).standard_normal(2 * RATE).astype(np.float32)

    def db(limit):  # the level change after the first half second (the model's start)
        model.attenuation_limit_db = limit
        y = files.process_array(x, RATE, model, dc_block=False).reshape(-1)
        return y, 10 * np.log10(np.mean(np.square(y[RATE // 2 :], dtype=np.float64))
                                / np.mean(np.square(x[RATE // 2 :], dtype=np.float64)))

    np.testing.assert_allclose(db(0.0)[0], x, atol=1e-5)
    free = db(None)[1]  # white noise: the model alone takes out about 26 dB
    for limit in (6.0, 12.0, 20.0):
        # at least the floor stays; at most the floor and what the model lets through, added as powers, + 1 dB
        assert -limit <= db(limit)[1] <= 10 * np.log10(10 ** (-limit / 10) + 10 ** (free / 10)) + 1.0, limit


def test_atten_lim_on_a_model_without_one_is_refused(noisy_file, tmp_path, capsys):
    path, _ = noisy_file
    code = main(["process", str(path), str(tmp_path / "o.wav"), "--atten-lim", "6",
                 "--model", "models/speech-band.safetensors"])
    assert code == 1
    err = capsys.readouterr().err
    assert "the model 'speech-band' (fir) has no attenuation limit: only denoisers do" in err  # its name, not only its kind
    assert not (tmp_path / "o.wav").exists()


def test_the_cli_takes_atten_lim_and_wet(noisy_file, tmp_path):
    path, x = noisy_file
    assert main(["process", str(path), str(tmp_path / "o.wav"), "--atten-lim", "6", "--wet", "0", "-q"]) == 0
    y = sf.read(str(tmp_path / "o.wav"), dtype="float32")[0]
    np.testing.assert_allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("argv", [["--atten-lim", "-3"], ["--atten-lim", "loud"], ["--wet", "2"]])
def test_a_bad_strength_on_the_command_line_is_one_usage_line(noisy_file, tmp_path, capsys, argv):
    path, _ = noisy_file
    with pytest.raises(SystemExit) as e:
        main(["process", str(path), str(tmp_path / "o.wav"), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rtconv process: error: argument") and ("non-negative number of dB" in err
                                                                   or "between 0 and 1" in err)
    assert not (tmp_path / "o.wav").exists()
