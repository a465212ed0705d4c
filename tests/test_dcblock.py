"""The DC-offset remover in front of denoisers and VADs: its definition at any block split, files and live alike."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv.cli import main
from rtconv.dcblock import DCBlocker, wants_dc_block
from rtconv.errors import ConfigError
from rtconv.files import process_array

RATE = 48000


def _speechlike(n, ch=1, seed=0):
    """Noise with a slow 3-8 Hz envelope: zero mean over seconds, like speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 8, ch) * t[:, None])
    return (0.05 * env * rng.standard_normal((n, ch))).astype(np.float32)


def _db(err, ref, start=RATE // 10):
    """Level of ``err`` against ``ref`` from ``start`` on, dB."""
    return 20 * np.log10(np.sqrt(np.mean(err[start:] ** 2)) / np.sqrt(np.mean(ref[start:] ** 2)))


def _split(proc, x, sizes):
    out, i, j = [], 0, 0
    while i < len(x):
        k = sizes[j % len(sizes)]
        out.append(proc(x[i : i + k]))
        i, j = i + k, j + 1
    return np.concatenate(out)


def _reference(x, N, M):
    """The module docstring's recursion, one sample at a time in float64."""
    x = x.astype(np.float64)
    est, total, out = np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.empty_like(x)
    for n in range(len(x)):
        if n < N:
            total += x[n]
            est = total / max(n + 1, M)
        else:
            est = est + (x[n] - est) / N
        out[n] = x[n] - est
    return out


def test_it_computes_the_running_mean_then_the_one_pole_of_its_definition():
    # 2.5 time constants: the running mean, then the one-pole's closed form over chunks of 4096 and a rest
    x = _speechlike(int(2.5 * 7639), 2) + 0.02
    d = DCBlocker(RATE, 2)
    np.testing.assert_allclose(d.process(x), _reference(x, d.N, d.M), rtol=0, atol=2e-8)
    # fast corners (N = 16, and 3 at the highest cutoff allowed): chunks of the closed form limited by r^-L <= 1e4
    for cutoff, N, start in ((RATE / (2 * np.pi * 16), 16, 0.2), (2399.0, 3, 0.0)):
        d = DCBlocker(RATE, 2, cutoff_hz=cutoff, start_ms=start)
        assert d.N == N and len(d._up) < 200
        np.testing.assert_allclose(d.process(x[:3000]), _reference(x[:3000], d.N, d.M), rtol=0, atol=2e-8)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sizes", [[1], [3, 7], [128], [4096], [7639, 2, 9000]])
def test_the_output_is_the_same_to_float_rounding_at_any_block_split(channels, sizes):
    x = _speechlike(RATE, channels) + 0.02
    whole = DCBlocker(RATE, channels).process(x)
    d = DCBlocker(RATE, channels)
    # float64 inside: a split moves the rounding of the closed form's sums, never more than a float32 ulp here
    np.testing.assert_allclose(_split(d.process, x, sizes), whole, rtol=0, atol=1e-8)


def test_a_constant_offset_fades_out_over_the_first_10_ms_and_is_gone_after():
    x = _speechlike(RATE // 2)
    d0, d1 = DCBlocker(RATE, 1), DCBlocker(RATE, 1)
    assert d1.M == 480
    # the estimate is linear in the input: an offset adds its own share, counted over at least 10 ms
    left = d1.process(x + 0.01)[:, 0] - d0.process(x)[:, 0]
    n = np.arange(len(x))
    np.testing.assert_allclose(left, 0.01 * np.clip(1 - (n + 1) / 480, 0, None), atol=1e-7)
    assert d1.est[0] == pytest.approx(0.01 + d0.est[0], abs=1e-9)


def test_a_file_that_starts_mid_word_is_not_high_passed_by_its_first_samples():
    t = np.arange(RATE // 4) / RATE
    vowel = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.1).astype(np.float32)[:, None]  # loud from sample 0
    lost = {ms: float(np.abs(DCBlocker(RATE, 1, start_ms=ms).process(vowel)[:480, 0]
                             - (vowel[:480, 0] - 0.1)).max()) for ms in (0, 10)}
    # from one sample the first samples are cut to nothing; over 10 ms only the offset's own share is left
    assert lost[0] > 0.2 and lost[10] < 0.11


def test_after_its_start_it_is_a_one_hertz_high_pass_that_follows_a_drifting_offset():
    d = DCBlocker(RATE, 1)
    assert d.N == round(RATE / (2 * np.pi))  # 7639 samples, 0.16 s
    n = 4 * RATE
    drift = np.linspace(0.0, 0.05, n, dtype=np.float32)[:, None]  # 0.0125 per second
    y = d.process(drift)
    # a ramp leaves the one-pole's steady lag: slope * time constant
    assert abs(float(y[-1, 0])) == pytest.approx(0.0125 * d.N / RATE, rel=0.05)
    # and a 100 Hz tone, the lowest voices' pitch, passes within 0.01 dB and 0.6 degrees
    t = np.arange(2 * RATE) / RATE
    tone = np.sin(2 * np.pi * 100 * t).astype(np.float32)[:, None]
    out = DCBlocker(RATE, 1).process(tone)[RATE:, 0]
    ref = tone[RATE:, 0]
    gain = float(np.dot(out, ref) / np.dot(ref, ref))
    assert 20 * np.log10(gain) == pytest.approx(0.0, abs=1e-2)
    assert np.degrees(np.arcsin(np.linalg.norm(out - gain * ref) / np.linalg.norm(out))) < 0.6


def test_nonfinite_samples_pass_as_they_came_and_leave_the_estimate_alone():
    x = _speechlike(1000) + 0.01
    bad = x.copy()
    bad[10, 0], bad[500, 0] = np.nan, np.inf
    d, ref = DCBlocker(RATE, 1), DCBlocker(RATE, 1)
    y, y_ref = d.process(bad), ref.process(np.where(np.isfinite(bad), bad, 0))
    assert np.isnan(y[10, 0]) and np.isinf(y[500, 0])
    ok = np.isfinite(bad[:, 0])
    np.testing.assert_array_equal(y[ok], y_ref[ok])
    assert np.isfinite(d.est).all()


def test_reset_starts_a_new_running_mean():
    d = DCBlocker(RATE, 1)
    a = d.process(_speechlike(3000) + 0.2)
    d.reset()
    b = d.process(_speechlike(3000) + 0.2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cutoff", [0, -1.0, 3000.0, "1"])
def test_a_bad_cutoff_is_refused_with_the_value(cutoff):
    with pytest.raises(ConfigError, match=r"cutoff_hz must be above 0 and below a twentieth of the rate \(2400 Hz\), got"):
        DCBlocker(RATE, 1, cutoff)


@pytest.mark.parametrize("start", [-1, 200.0, None])
def test_a_bad_start_is_refused_with_the_value(start):
    with pytest.raises(ConfigError, match=r"start_ms must be at least 0 and at most the time constant \(159.146 ms\), got"):
        DCBlocker(RATE, 1, start_ms=start)


def test_denoisers_and_vads_get_it_filters_do_not_and_a_bad_choice_is_refused():
    fir = rtconv.FIR([1.0])
    assert not wants_dc_block(fir)
    fir.metadata = {"task": "denoise"}
    assert wants_dc_block(fir) and not wants_dc_block(fir, False)
    fir.metadata = {"task": "vad"}
    assert wants_dc_block(fir)
    with pytest.raises(ConfigError, match="dc_block must be True, False or None .* got 'yes'"):
        wants_dc_block(fir, "yes")


@pytest.fixture(scope="module")
def denoiser():
    return rtconv.load("models/denoiser.safetensors")


def test_files_give_a_denoiser_the_same_input_with_or_without_an_offset(denoiser):
    x = _speechlike(RATE)
    clean_in = process_array(x, RATE, denoiser)
    offset_in = process_array(x + 0.01, RATE, denoiser)
    kept = process_array(x + 0.01, RATE, denoiser, dc_block=False)
    # the offset fades out over the first 10 ms: from 0.1 s on the output is what it is without one
    # (measured -36 dB); kept, the model's output changes by more than itself (+10 dB)
    assert _db(offset_in - clean_in, clean_in) < -25 and _db(kept - clean_in, clean_in) > 0


def test_a_filter_keeps_the_offset_so_its_kernel_stays_exact():
    y = process_array(_speechlike(4000) + 0.25, RATE, rtconv.FIR([1.0]))
    assert float(y.mean()) == pytest.approx(0.25, abs=1e-3)


def test_rtconv_process_notes_a_removed_offset_and_keep_dc_turns_it_off(tmp_path, capsys):
    src = tmp_path / "mic.wav"
    sf.write(src, (_speechlike(RATE) + 0.01)[:, 0], RATE, subtype="FLOAT")
    assert main(["process", str(src), "-o", str(tmp_path / "a.wav")]) == 0
    err = capsys.readouterr().err
    assert "a DC offset of -40 dBFS was removed before the model (--keep-dc: keep it)" in err
    assert main(["process", str(src), "-o", str(tmp_path / "b.wav"), "--keep-dc"]) == 0
    assert "DC offset" not in capsys.readouterr().err
    a, _ = sf.read(tmp_path / "a.wav")
    b, _ = sf.read(tmp_path / "b.wav")
    assert np.abs(a - b).max() > 1e-3


def test_the_live_chain_removes_the_offset_for_a_denoiser_unless_told_not_to(denoiser):
    from rtconv.live import StreamSettings
    from rtconv.live.chain import ModelChain

    st = StreamSettings(sample_rate=RATE, channels=1, block_size=128)
    x = _speechlike(RATE // 2)

    def run(chain, sig):
        out = np.zeros_like(sig)
        for i in range(0, len(sig), 128):
            chain.process(sig[i : i + 128], out[i : i + 128])
        return out

    on = ModelChain(denoiser, st, realtime_check=False)
    assert on.dc is not None
    a = run(on, x)
    on.reset()
    assert _db(run(on, x + 0.01) - a, a) < -25  # measured -32 dB
    off = ModelChain(denoiser, st.replace(dc_block=False), realtime_check=False)
    assert off.dc is None
    assert _db(run(off, x + 0.01) - a, a) > 0  # measured +8 dB
    with pytest.raises(ConfigError, match="dc_block must be True or False, got 'on'"):
        st.replace(dc_block="on")


def test_rtconv_live_keep_dc_reaches_the_stream_settings():
    from _live import cli_settings

    assert cli_settings(sample_rate=RATE).dc_block is True
    assert cli_settings("--keep-dc", sample_rate=RATE).dc_block is False


@pytest.mark.parametrize("offset,note", [
    (None, None), (0.0, None), (9e-4, None),
    (0.0071, "a DC offset of -43 dBFS was removed before the model (--keep-dc: keep it)"),
])
def test_an_offset_is_told_from_minus_60_dbfs_up(offset, note):
    from rtconv.dcblock import offset_note

    assert offset_note(offset) == note


def test_noise_that_wanders_below_1_hz_is_no_offset_to_report():
    """Brown noise moves the estimate by several hundredths around a mean of nothing (the demo recording)."""
    from rtconv.dcblock import offset_note

    rng = np.random.default_rng(2)
    brown = np.cumsum(rng.standard_normal(8 * RATE))
    brown = (0.05 * (brown - brown.mean()) / brown.std()).astype(np.float32)[:, None]
    d = DCBlocker(RATE, 1)
    for i in range(0, len(brown), 128):
        d.process(brown[i : i + 128])
    assert abs(float(d.est[0])) > 2e-3  # the estimate of the moment is far off zero
    assert offset_note(d.offset) is None  # its mean is not
    d.process(np.full((RATE, 1), 0.02, np.float32))  # a second of a real offset moves the mean
    assert d.offset > 1e-3


def test_the_demo_recording_gets_no_offset_note(tmp_path, capsys):
    assert main(["process", "recordings/demo_noisy.wav", "-o", str(tmp_path / "d.wav")]) == 0
    assert "DC offset" not in capsys.readouterr().err


def test_live_stats_and_the_exit_summary_report_the_offset_removed(denoiser):
    from _live import processor

    from rtconv.cli.live import format_stats

    p = processor(denoiser, RATE, 1, 128, realtime_check=False)
    x = _speechlike(RATE // 2) + 0.0071
    for i in range(0, len(x), 128):
        p.process(x[i : i + 128])
    s = p.stats()
    assert s["dc_offset"] == pytest.approx(0.0071, abs=5e-4)
    assert "a DC offset of -43 dBFS was removed before the model (--keep-dc: keep it)" in format_stats(s)
    f = processor(rtconv.FIR([1.0]), RATE, 1, 128, realtime_check=False)
    f.process(x[:128])
    assert f.stats()["dc_offset"] is None and "DC offset" not in format_stats(f.stats())
