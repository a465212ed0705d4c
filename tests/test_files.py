"""Offline file processing: streamed == offline, alignment, resampling, channels, formats."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import rtconv
from rtconv.errors import ConfigError
from rtconv.files import Chain, process_array, process_file
from rtconv.files.chain import _Offline


def _noise(frames, channels, seed=0, scale=0.2):
    return (scale * np.random.default_rng(seed).standard_normal((frames, channels))).astype(np.float32)


def _write(path, x, rate=48000, subtype="FLOAT"):
    sf.write(str(path), x, rate, subtype=subtype)
    return path


def _read(path):
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def _model(padding="same", seed=0, rate=48000):
    torch.manual_seed(seed)
    m = rtconv.MimoCNN([9, 5], [1, 3, 1], padding=padding)
    m.sample_rate = rate
    return m


@pytest.fixture(scope="module")
def stereo_in(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    return _write(folder / "three.wav", _noise(3001, 3))


def _long_fir():
    # long enough for the streamer's partitioned-FFT path, centred so it has latency
    m = rtconv.FIR(np.hanning(1601) / 800, padding="same")
    m.sample_rate = 48000
    return m


MODELS = {"mimo_same": _model, "fir1601_same": _long_fir}


@pytest.fixture(scope="module", params=sorted(MODELS))
def offline_out(request, stereo_in):
    out = stereo_in.with_name(f"offline-{request.param}.wav")
    process_file(stereo_in, out, MODELS[request.param](), offline=True, progress=False)
    return request.param, _read(out)


@pytest.mark.parametrize("block", [1, 7, 64, 480, 4096])
def test_streamed_file_equals_offline_for_every_block_size(stereo_in, offline_out, block):
    name, ref = offline_out
    out = stereo_in.with_name(f"stream{block}-{name}.wav")
    s = process_file(stereo_in, out, MODELS[name](), block_size=block, progress=False)
    y = _read(out)
    assert y.shape == ref.shape == (3001, 3)
    np.testing.assert_allclose(y, ref, atol=2e-6, rtol=1e-5)
    assert s.frames == 3001 and s.channels == s.out_channels == 3


def test_offline_equals_one_whole_signal_forward_even_when_chunked():
    model = _model(seed=3)
    x = _noise(1000, 2, seed=4)
    ref = model(torch.from_numpy(x.T.copy())[:, None, :]).detach().reshape(2, -1).T.numpy()
    off = _Offline(model, 2, chunk=10)  # chunk floor is 4x context: forces several chunks
    assert off.chunk < 1000
    y = np.concatenate([off(x[i : i + 33]) for i in range(0, 1000, 33)] + [off.flush()])
    L = model.latency
    assert y.shape == (1000 + L, 2)
    np.testing.assert_allclose(y[L:], ref, atol=1e-6)


def test_mimo_model_mixes_the_channels_of_a_stereo_file(tmp_path):
    torch.manual_seed(1)
    model = rtconv.MimoCNN([5, 3], [2, 4, 1], padding="same")
    src = _write(tmp_path / "st.wav", _noise(2000, 2))
    a = process_file(src, tmp_path / "a.wav", model, block_size=7, progress=False)
    process_file(src, tmp_path / "b.wav", model, offline=True, progress=False)
    assert a.out_channels == 1
    np.testing.assert_allclose(_read(tmp_path / "a.wav"), _read(tmp_path / "b.wav"), atol=2e-6)


@pytest.mark.parametrize("block", [1, 3, 512, None])
def test_impulse_through_fixed_fir_returns_the_kernel_in_order(tmp_path, block):
    kernel = np.array([0.5, -0.25, 0.125, 0.0625, -0.03125, 0.75])
    x = np.zeros((64, 1), np.float32)
    x[0] = 1.0
    src = _write(tmp_path / "impulse.wav", x)
    out = tmp_path / "ir.wav"
    process_file(src, out, rtconv.FIR(kernel), block_size=block or 512, offline=block is None, progress=False)
    y = _read(out)[:, 0]
    np.testing.assert_allclose(y[:6], kernel, atol=1e-7)
    assert np.all(y[6:] == 0)


def test_16bit_file_through_an_identity_filter_comes_back_bit_identical(tmp_path):
    # every int16 value, both channels: read as k / 32768, written back as round(x * 32768)
    k = np.arange(-32768, 32768, dtype=np.int16)
    pcm = np.stack([k, k[::-1]], axis=1)
    src = tmp_path / "all16.wav"
    sf.write(str(src), pcm, 48000, subtype="PCM_16")
    for block in (1024, None):
        out = tmp_path / f"same-{block}.wav"
        process_file(src, out, rtconv.FIR([1.0]), block_size=block or 1024, offline=block is None, progress=False)
        back, rate = sf.read(str(out), dtype="int16", always_2d=True)
        assert rate == 48000 and sf.info(str(out)).subtype == "PCM_16"
        np.testing.assert_array_equal(back, pcm)


def test_16bit_output_rounds_to_nearest_and_clips_with_a_count(tmp_path):
    from rtconv.audio import AtomicWriter

    y = np.array([[1.0], [-1.0], [1.7], [-3.0], [0.1], [-0.1], [0.4 / 32768], [0.6 / 32768], [-0.6 / 32768]],
                 np.float32)
    out = tmp_path / "r.wav"
    with AtomicWriter(out, 48000, 1, "WAV", "PCM_16") as w:
        w.write(y)
        w.commit()
    assert w.clipped_samples == 2
    got = sf.read(str(out), dtype="int16")[0]
    np.testing.assert_array_equal(got, [32767, -32768, 32767, -32768, 3277, -3277, 0, 1, -1])


@pytest.mark.parametrize("frames", [1, 3, 700])
def test_latency_is_removed_by_default_and_kept_on_request(frames):
    kernel = np.zeros(9)
    kernel[4] = 1.0  # a centred identity: latency 4 when streamed
    model = rtconv.FIR(kernel, padding="same")
    assert model.latency == 4
    x = _noise(frames, 2, seed=frames)
    aligned = process_array(x, 48000, model, block_size=2)
    np.testing.assert_allclose(aligned, x, atol=1e-7)
    raw = process_array(x, 48000, model, block_size=2, align=False)
    assert raw.shape == (frames + 4, 2)
    np.testing.assert_allclose(raw[4:], x, atol=1e-7)
    assert np.all(raw[:4] == 0)


@pytest.mark.parametrize("rate", [8000, 44100, 384000])
def test_file_at_another_rate_is_resampled_for_the_model_and_back(tmp_path, rate):
    n = rate // 10
    t = np.arange(n) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000 * t))[:, None].astype(np.float32)
    src = _write(tmp_path / f"sine{rate}.wav", x, rate)
    model = rtconv.FIR([1.0])
    model.sample_rate = 48000
    s = process_file(src, tmp_path / "out.wav", model, progress=False)
    y = _read(tmp_path / "out.wav")
    assert y.shape == x.shape and sf.info(str(tmp_path / "out.wav")).samplerate == rate
    mid = slice(n // 4, 3 * n // 4)  # away from the resampler's edge transients
    np.testing.assert_allclose(y[mid], x[mid], atol=2e-3)
    said = s.warnings if rate > 48000 else s.notes  # a loss is a warning; upsampling and back, a note
    assert s.resampled and any(f"resampled {rate} Hz -> 48000 Hz" in w for w in said)
    if rate > 48000:
        assert any("content above 24000 Hz was removed" in w for w in s.warnings)
    else:
        assert not any("resampled" in w for w in s.warnings)


def test_model_without_sample_rate_runs_at_the_files_rate(tmp_path):
    src = _write(tmp_path / "x.wav", _noise(500, 1), 22050)
    s = process_file(src, None, rtconv.FIR([0.5, 0.5]), progress=False)
    assert not s.resampled and s.warnings == s.notes == [] and s.output.name == "x-filtered.wav"


def test_band_splitter_changes_the_channel_count_channel_major(tmp_path):
    model = rtconv.MimoCNN([1], [1, 2], bias=False)
    with torch.no_grad():
        model.body[0].weight[:] = torch.tensor([[[1.0]], [[-2.0]]])
    x = _noise(300, 2)
    y = process_array(x, 48000, model)
    assert y.shape == (300, 4)
    np.testing.assert_allclose(y, np.stack([x[:, 0], -2 * x[:, 0], x[:, 1], -2 * x[:, 1]], 1), atol=1e-7)


def test_many_channels_are_each_filtered_like_a_mono_file(tmp_path):
    x = _noise(400, 32)
    model = _model(seed=5)
    y = process_array(x, 48000, model, block_size=64)
    assert y.shape == (400, 32)
    for c in (0, 17, 31):
        np.testing.assert_allclose(y[:, c], process_array(x[:, c], 48000, model)[:, 0], atol=1e-6)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("ogg", "VORBIS")])
def test_output_keeps_the_inputs_format_and_subtype(tmp_path, ext, subtype):
    src = tmp_path / f"in.{ext}"
    sf.write(str(src), _noise(4800, 2, scale=0.1), 48000, subtype=subtype)
    s = process_file(src, None, rtconv.FIR([1.0]), progress=False)
    info = sf.info(str(s.output))
    assert s.output.suffix == f".{ext}"
    assert (info.format, info.subtype, info.channels, info.samplerate) == (sf.info(str(src)).format, subtype, 2, 48000)
    assert info.frames == 4800 or ext == "ogg"


@pytest.mark.parametrize("subtype,expected", [("FLOAT", "PCM_24"), ("DOUBLE", "PCM_24"), ("PCM_32", "PCM_24"),
                                              ("PCM_24", "PCM_24"), ("PCM_16", "PCM_16")])
def test_a_deep_input_written_as_flac_keeps_24_bits_not_flacs_default_16(tmp_path, subtype, expected):
    src = tmp_path / "in.wav"
    x = _noise(4800, 1, scale=0.1)
    sf.write(str(src), x, 48000, subtype=subtype)
    s = process_file(src, tmp_path / "out.flac", rtconv.FIR([1.0]), progress=False)
    assert sf.info(str(s.output)).subtype == expected
    if subtype in ("FLOAT", "DOUBLE"):  # 24-bit: the float input within one 24-bit step, not a 16-bit one
        assert np.max(np.abs(_read(s.output) - sf.read(str(src), dtype="float32", always_2d=True)[0])) < 2.0 ** -22


@pytest.mark.parametrize("ext", ["wav", "w64"])
def test_an_mp3_written_as_wav_gets_the_wavs_default_subtype_not_mp3_inside_wav(tmp_path, ext):
    """`rtconv process talk.mp3 talk.wav` failed ("cannot create WAV/MPEG_LAYER_III output"): libsndfile says WAV
    can hold MPEG layer III, which it reads there but does not write, so the input's subtype was kept."""
    src = tmp_path / "in.mp3"
    sf.write(str(src), _noise(4800, 1, scale=0.1), 48000)
    s = process_file(src, tmp_path / f"out.{ext}", rtconv.FIR([1.0]), progress=False)
    info = sf.info(str(s.output))
    assert (info.subtype, info.frames) == ("PCM_16", 4800)


def test_int_output_clips_with_a_warning_and_float_output_does_not(tmp_path):
    x = np.full((100, 1), 0.9, np.float32)
    gain = rtconv.FIR([2.0])
    s16 = process_file(_write(tmp_path / "a.wav", x, subtype="PCM_16"), None, gain, progress=False)
    assert s16.clipped_samples == 100 and any("clipped" in w for w in s16.warnings)
    assert _read(s16.output).max() <= 1.0
    sfl = process_file(_write(tmp_path / "b.wav", x), None, gain, progress=False)
    assert sfl.clipped_samples == 0 and np.allclose(_read(sfl.output), 1.8)


def test_nan_and_inf_samples_are_replaced_by_silence_with_a_warning(tmp_path):
    x = _noise(1000, 2)
    x[10, 0], x[500, 1], x[501, 1] = np.nan, np.inf, -np.inf
    src = _write(tmp_path / "nan.wav", x)
    s = process_file(src, None, _model(), progress=False)
    y = _read(s.output)
    assert np.isfinite(y).all()
    assert s.nonfinite_samples == 3
    assert any("3 NaN/Inf input sample(s) were replaced by silence" in w for w in s.warnings)
    clean = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    np.testing.assert_allclose(y, process_array(clean, 48000, _model()), atol=1e-6)


@pytest.mark.parametrize("frames,channels", [(1, 1), (3, 2), (7, 1), (4096, 2)])
@pytest.mark.parametrize("copy", [True, False])
def test_zero_nonfinite_silences_and_counts_nan_and_inf_and_passes_finite_audio_through(frames, channels, copy):
    from rtconv.audio import zero_nonfinite

    x = _noise(frames, channels)
    same, count = zero_nonfinite(x, copy=copy)
    assert same is x and count == 0  # no copy for the usual case
    bad = x.copy()
    bad.flat[:: max(1, bad.size // 3)] = np.nan
    bad[-1, -1] = np.inf
    expected = np.where(np.isfinite(bad), bad, 0)
    n_bad = int((~np.isfinite(bad)).sum())
    before = bad.copy()
    out, count = zero_nonfinite(bad, copy=copy)
    assert count == n_bad and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    if copy:
        np.testing.assert_array_equal(bad, before)  # the caller's array is left alone
    else:
        assert out is bad


def test_all_finite_finds_nan_and_inf_anywhere_and_passes_huge_finite_samples():
    from rtconv.audio import all_finite

    for dtype in (np.float32, np.float64):
        x = _noise(257, 2).astype(dtype)
        assert all_finite(x) and all_finite(x[::3]) and all_finite(x[:0])
        for bad in (np.nan, np.inf, -np.inf):
            for where in ((0, 0), (128, 1), (-1, -1)):
                y = x.copy()
                y[where] = bad
                assert not all_finite(y) and not all_finite(y.T)
        huge = np.full((4, 1), np.finfo(dtype).max / 2, dtype)  # its sum of squares overflows: checked sample by sample
        assert all_finite(huge)
        huge[2] = np.nan
        assert not all_finite(huge)
    assert all_finite(np.array([[32767, -32768]], np.int16))  # integers are always finite
    assert all_finite(np.array([1 + 2j, 3j], np.complex64)) and not all_finite(np.array([1, complex(np.nan, 0)]))


def test_process_array_silences_nan_and_inf_like_a_file(tmp_path):
    x = _noise(1000, 2)
    x[10, 0], x[500, 1], x[501, 1] = np.nan, np.inf, -np.inf
    y = process_array(x, 48000, _model())
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, process_array(np.where(np.isfinite(x), x, 0), 48000, _model()), atol=1e-6)


def test_long_file_is_read_in_chunks_with_flat_memory(tmp_path, monkeypatch):
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 1000)
    sizes = []
    real = Chain.__call__

    def spy(self, x):
        sizes.append(x.shape[0])
        return real(self, x)

    monkeypatch.setattr(Chain, "__call__", spy)
    src = _write(tmp_path / "long.wav", _noise(10_500, 1))
    s = process_file(src, None, _model(), progress=False)
    assert max(sizes) == 1000 and sum(sizes) == 10_500 and s.output_frames == 10_500


def test_progress_callback_sees_every_frame(tmp_path, monkeypatch):
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 256)
    seen = []
    src = _write(tmp_path / "p.wav", _noise(1000, 1))
    process_file(src, None, rtconv.FIR([1.0]), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1000, 1000) and len(seen) == 4


def test_summary_line_reports_duration_and_real_time_factor(tmp_path):
    src = _write(tmp_path / "s.wav", _noise(24000, 1))
    s = process_file(src, None, rtconv.FIR([1.0]), progress=False)
    line = s.line()
    assert line.startswith("s.wav -> ") and "0.50 s, 48000 Hz" in line and "x real time" in line
    assert s.realtime_factor > 1


def test_default_model_is_used_when_none_is_given(tmp_path):
    src = _write(tmp_path / "d.wav", _noise(2000, 1))
    s = process_file(src, progress=False)
    expected = rtconv.load(rtconv.checkpoint.default_model_path())
    assert s.model == expected.metadata["name"] and s.latency == expected.latency


def test_offline_chunks_of_a_framed_model_start_on_frame_boundaries():
    denoiser = pytest.importorskip("rtconv.denoiser", reason="the framed denoiser module is not in this checkout")
    torch.manual_seed(0)
    model = denoiser.ConvDenoiser().eval()
    x = _noise(130_000, 1, seed=8, scale=0.1)
    with torch.no_grad():
        ref = model(torch.from_numpy(x.T.copy())[:, None, :]).reshape(1, -1).T.numpy()
    off = _Offline(model, 1, chunk=10)
    assert off.chunk % off.period == 0 and off.ctx % off.period == 0 and off.period > 1
    y = np.concatenate([off(x[i : i + 7777]) for i in range(0, len(x), 7777)] + [off.flush()])
    np.testing.assert_allclose(y[model.latency :], ref, atol=2e-6)  # misaligned chunks differ by ~5e-5


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "bar.wav", _noise(2000, 1))
    process_file(src, tmp_path / "a.wav", rtconv.FIR([1.0]), progress=True)
    assert "bar.wav" in capsys.readouterr().err  # tqdm writes its description to stderr
    monkeypatch.setattr("rtconv.files.progress._stderr_tty", lambda: False)
    process_file(src, tmp_path / "b.wav", rtconv.FIR([1.0]))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("rtconv.files.progress._stderr_tty", lambda: True)
    process_file(src, tmp_path / "c.wav", rtconv.FIR([1.0]))
    assert "bar.wav" in capsys.readouterr().err


# --- block size for files -------------------------------------------------------------


def test_files_use_long_blocks_chosen_per_kind_of_model():
    from rtconv.denoiser import ConvDenoiser
    from rtconv.files import file_block_size

    assert file_block_size(ConvDenoiser()) == 65536  # frame-rate network: a whole read chunk
    assert file_block_size(_model()) == file_block_size(_long_fir()) == 16384


def test_default_denoiser_output_equals_the_live_block_stream_to_float_rounding(tmp_path):
    # the output files had before long blocks: streamed in 1024-frame blocks (bit-identical while the
    # frame-rate body ran in torch; its NumPy products round a row differently with the row count)
    x, rate = sf.read("recordings/demo_noisy.wav", dtype="float32", always_2d=True)
    src = _write(tmp_path / "demo.wav", np.concatenate([x, x[::-1]], axis=1), rate)  # stereo, 8 s
    model = rtconv.load(rtconv.checkpoint.default_model_path())
    fast = process_file(src, tmp_path / "fast.wav", model, progress=False)
    process_file(src, tmp_path / "live.wav", model, block_size=1024, progress=False)
    assert fast.mode == "streamed in 65536-frame blocks"
    np.testing.assert_allclose(_read(tmp_path / "fast.wav"), _read(tmp_path / "live.wav"), atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_file_blocks_equal_live_blocks_to_float_rounding(tmp_path, name):
    x = _noise(40_000, 2, seed=9)
    fast = process_array(x, 48000, MODELS[name]())
    live = process_array(x, 48000, MODELS[name](), block_size=1024)
    np.testing.assert_allclose(fast, live, atol=2e-6, rtol=1e-5)


def test_progress_bar_counts_audio_time(tmp_path, capsys):
    src = _write(tmp_path / "minute.wav", _noise(48000 * 61, 1, scale=0.01))
    process_file(src, None, rtconv.FIR([1.0]), progress=True)
    err = capsys.readouterr().err
    assert "minute.wav:" in err and "of 0:01:01 audio [" in err and "x real time]" in err


# --- temporaries of killed runs ---------------------------------------------------------


def _stale(folder, name, age_s=60.0):
    import os
    import time

    p = folder / name
    p.write_bytes(b"RIFF half a file")
    os.utime(p, (time.time() - age_s, time.time() - age_s))
    return p


def test_the_next_run_removes_only_its_own_outputs_stale_temporaries(tmp_path):
    src = _write(tmp_path / "a.wav", _noise(500, 1))
    out = tmp_path / "a-filtered.wav"
    mine = [_stale(tmp_path, ".a-filtered.wav.k3_x9q0z.part"), _stale(tmp_path, ".a-filtered.wav.abcdefgh.part")]
    others = [
        _stale(tmp_path, ".b-filtered.wav.abcdefgh.part"),  # another output's
        _stale(tmp_path, ".a-filtered.wav.part"),  # not the writer's pattern
        _stale(tmp_path, "a-filtered.wav.abcdefgh.part"),  # not hidden
        _stale(tmp_path, ".a-filtered.wav.abcdefgh.part.bak"),
        _stale(tmp_path, ".a-filtered.wav.justnow_.part", age_s=0.0),  # may be a running writer's, not locked yet
    ]
    s = process_file(src, out, rtconv.FIR([1.0]), progress=False)
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)
    assert any(f"removed 2 temporary file(s) an interrupted run had left for this output ({mine[1].name}, "
               f"{mine[0].name})" in w for w in s.warnings), s.warnings


def test_a_temporary_that_a_running_rtconv_is_writing_is_left_alone(tmp_path):
    import fcntl
    import os

    from rtconv.files import remove_stale_temporaries

    busy = _stale(tmp_path, ".x.wav.abcdefgh.part")
    young = _stale(tmp_path, ".x.wav.ijklmnop.part", age_s=0.0)  # created a moment ago: maybe not locked yet
    stale = _stale(tmp_path, ".x.wav.qrstuvwx.part")
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the writer holds it
        assert remove_stale_temporaries(tmp_path / "x.wav") == [stale]
    finally:
        os.close(fd)
    assert busy.exists() and young.exists() and not stale.exists()


def test_the_writer_holds_its_temporary_locked_while_writing(tmp_path):
    from rtconv.files import remove_stale_temporaries

    seen = []
    src = _write(tmp_path / "a.wav", _noise(5000, 1))

    def during(done, total):  # the temporary exists now: an old one by its age, but locked
        import os
        import time

        (tmp,) = tmp_path.glob(".a-filtered.wav.*.part")
        os.utime(tmp, (time.time() - 60, time.time() - 60))
        seen.append(remove_stale_temporaries(tmp_path / "a-filtered.wav"))

    process_file(src, None, rtconv.FIR([1.0]), progress=during)
    assert seen and all(r == [] for r in seen) and (tmp_path / "a-filtered.wav").is_file()


# --- finding files ---------------------------------------------------------------------


def test_audio_files_lists_sub_folders_with_their_relative_place(tmp_path):
    from pathlib import Path

    from rtconv.files import audio_files

    for name in ("a.wav", "s/b.flac", "s/t/c.wav", ".h/d.wav", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            _write(tmp_path / name, _noise(10, 1), subtype="PCM_16")
    flat = audio_files([tmp_path])
    assert flat.files == [(tmp_path / "a.wav", Path("."))] and flat.folders == [tmp_path / "s"]
    deep = audio_files([tmp_path], recursive=True)
    assert deep.files == [(tmp_path / "a.wav", Path(".")), (tmp_path / "s/b.flac", Path("s")),
                          (tmp_path / "s/t/c.wav", Path("s/t"))] and deep.folders == []
    assert audio_files([tmp_path], recursive=True, exclude=[tmp_path / "s"]).files == [(tmp_path / "a.wav", Path("."))]


def _recurrent_denoiser():
    torch.manual_seed(3)
    return rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                            "learn_filterbank": False, "gru": 4}).eval()


@pytest.mark.parametrize("offline, block_size", [(True, None), (False, 1), (False, 77), (False, 4096)])
def test_a_recurrent_model_starts_from_the_files_first_frames_played_backwards(offline, block_size):
    """Primed: the output is what the zero-history model makes of reflection + signal, the reflection's part cut."""
    from rtconv.files import prime_frames

    model = _recurrent_denoiser()
    assert model.recurrent
    x = (np.random.default_rng(0).standard_normal(20000) * 0.1).astype(np.float32)
    n = prime_frames(model, 16000)
    assert n == 4000  # a quarter second at least (this model's own reach is shorter)
    padded = np.concatenate([x[1 : n + 1][::-1], x])
    want = process_array(padded, 16000, model, offline=True, prime=False)[n:]
    got = process_array(x, 16000, model, offline=offline, block_size=block_size)  # prime by default
    np.testing.assert_allclose(got, want, atol=2e-6)
    zero = process_array(x, 16000, model, offline=offline, block_size=block_size, prime=False)
    assert np.abs(zero[:n] - got[:n]).max() > 5e-5  # the start differs (by far more than the tolerance above)


def test_a_file_shorter_than_the_priming_is_reflected_whole_and_keeps_its_length():
    model = _recurrent_denoiser()
    x = (np.random.default_rng(1).standard_normal(300) * 0.1).astype(np.float32)
    padded = np.concatenate([x[1:][::-1], x])
    got = process_array(x, 16000, model)
    assert got.shape == (300, 1)
    np.testing.assert_allclose(got, process_array(padded, 16000, model, prime=False)[299:], atol=2e-6)
    assert process_array(x[:1], 16000, model).shape == (1, 1)
    assert process_array(x[:0], 16000, model).shape == (0, 1)


def test_a_convolution_is_never_primed_and_a_primed_file_says_so(tmp_path):
    fir = rtconv.FIR(np.array([0.5, 0.25, 0.125], np.float32))
    x = (np.random.default_rng(2).standard_normal(5000) * 0.1).astype(np.float32)
    np.testing.assert_allclose(process_array(x, 16000, fir)[:, 0], np.convolve(x, [0.5, 0.25, 0.125])[:5000],
                               atol=1e-6)  # zero history: the convolution's own semantics
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    s = process_file(src, tmp_path / "out.wav", _recurrent_denoiser(), progress=False)
    assert s.primed_frames == 4000 and any("first 250 ms played backwards" in n for n in s.notes), s.notes
    s = process_file(src, tmp_path / "zero.wav", _recurrent_denoiser(), progress=False, prime=False)
    assert s.primed_frames == 0 and not any("backwards" in n for n in s.notes)
    s = process_file(src, tmp_path / "fir.wav", fir, progress=False)
    assert s.primed_frames == 0
    short = tmp_path / "short.wav"
    sf.write(short, x[:160], 16000, subtype="FLOAT")  # 10 ms: it said "the file's first 250 ms"
    s = process_file(short, tmp_path / "short-out.wav", _recurrent_denoiser(), progress=False)
    assert s.primed_frames == 159 and any("first 10 ms played backwards" in n for n in s.notes), s.notes


@pytest.mark.parametrize("dtype,full", [(np.int16, 32768.0), (np.int32, 2.0**31)])
def test_integer_samples_are_scaled_to_full_scale_as_soundfile_reads_them(dtype, full):
    x = _noise(4800, 1, scale=0.1)
    ints = np.round(x * (full - 1)).astype(dtype)
    y = process_array(ints, 48000, rtconv.FIR([1.0]))
    assert y.dtype == np.float32 and np.max(np.abs(y - x)) < 1e-4


def test_eight_bit_samples_are_centred_on_128():
    ints = np.array([128, 255, 0, 128, 192], np.uint8)
    y = process_array(ints, 48000, rtconv.FIR([1.0]))[:, 0]
    np.testing.assert_allclose(y, [0.0, 127 / 128, -1.0, 0.0, 0.5])


def test_integer_scale_floats_are_refused_in_one_sentence():
    x = np.round(_noise(4800, 1, scale=0.3) * 32767).astype(np.float32)
    with pytest.raises(ConfigError) as e:
        process_array(x, 48000, rtconv.FIR([1.0]))
    msg = str(e.value)
    assert msg.startswith("the audio peaks at ") and "divide 16-bit samples by 32768" in msg and "\n" not in msg
    loud = _noise(4800, 1, scale=0.1) * 8  # float headroom over full scale is audio, not integers
    assert process_array(loud, 48000, rtconv.FIR([1.0])).shape == (4800, 1)


def test_every_name_in_a_modules_all_is_bound_there_and_audio_extensions_imports_lazily():
    """ruff's F822: ``rtconv.audio.__all__`` named AUDIO_EXTENSIONS, which only the module's ``__getattr__``
    gave, so readers (and linters) found no definition; an annotation declares it without asking libsndfile."""
    import ast
    from pathlib import Path

    def statements(body):  # a module's own statements, also those under a top-level if / try
        for node in body:
            yield node
            for inner in ("body", "orelse", "finalbody", "handlers"):
                if isinstance(node, (ast.If, ast.Try, ast.ExceptHandler)) and hasattr(node, inner):
                    yield from statements(getattr(node, inner))

    unbound = []
    for path in sorted(Path(rtconv.__file__).parent.rglob("*.py")):
        if path.name == "__init__.py":  # a package's __all__ may name its submodules (ruff exempts it too)
            continue
        bound, exported = set(), []
        for node in statements(ast.parse(path.read_text()).body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    bound.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                    if getattr(target, "id", None) == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                        exported += [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
        unbound += [f"{path.relative_to(Path(rtconv.__file__).parent)}: {name}" for name in exported
                    if name not in bound]
    assert unbound == []
    from rtconv.audio import AUDIO_EXTENSIONS  # still computed on first use, as users import it

    assert {"wav", "flac", "au", "w64"} <= AUDIO_EXTENSIONS and "raw" not in AUDIO_EXTENSIONS



def test_progress_of_a_file_that_ends_before_its_header_says_ends_at_100_percent(tmp_path, monkeypatch):
    """A file cut short while it is read (a recording overwritten, a copy restarted) ends the read early: the
    progress total stayed the header's, so a bar stopped short of 100 %; it is corrected to what was read."""
    import os

    import rtconv.files as files

    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 256)
    src = tmp_path / "p.wav"

    def shrinking():  # 600 of its 1000 frames go after the first chunk is read
        _write(src, _noise(1000, 1), subtype="PCM_16")
        return lambda: os.truncate(src, src.stat().st_size - 2 * 600)

    seen = []
    cut = shrinking()
    s = process_file(src, tmp_path / "a.wav", rtconv.FIR([1.0]),
                     progress=lambda done, total: (seen or cut(), seen.append((done, total))))
    assert s.frames == 400 and seen[0] == (256, 1000) and seen[-1] == (400, 400), seen

    bars = []

    def bar(*a, **kw):
        b = make_bar(*a, **kw)
        update = b.update
        b.update = lambda n: (bars or cut(), bars.append(b), update(n))
        return b

    make_bar = files.audio_progress_bar
    monkeypatch.setattr("rtconv.files.progress.audio_progress_bar", bar)
    cut = shrinking()
    process_file(src, tmp_path / "b.wav", rtconv.FIR([1.0]), progress=True)
    assert bars[0].n == pytest.approx(bars[0].total) == pytest.approx(400 / 48000), (bars[0].n, bars[0].total)
