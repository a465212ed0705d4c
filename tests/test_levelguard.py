"""A loud file's level guard: the file's active level measured at any chunking, the model run at a level it
was trained at, the output raised back; quiet files, filters and --keep-level untouched.  A stream's guard: the
same rule set from the output already put out, its gain undone sample for sample, the same at any block size,
in the live chain for denoisers unless --keep-level."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv.cli import main
from rtconv.data.mix import active_level_db
from rtconv.errors import ConfigError
from rtconv.files import Chain, process_array, process_file
from rtconv.levelguard import (LEVEL_GUARD_DBFS, LevelMeter, StreamLevelGuard, guard_gain, lead_for, level_note,
                               stream_level_note, wants_level_guard)

RATE = 48000


def _speechlike(n, peak_dbfs, ch=1, seed=0):
    """Noise with a slow syllable-rate envelope and pauses, scaled to a peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)[:, None] ** 2
    x = env * rng.standard_normal((n, ch))
    return (x / np.abs(x).max() * 10 ** (peak_dbfs / 20)).astype(np.float32)


def _vowels(n, peak_dbfs, ch=1):
    """A synthetic vowel train (harmonics of 140 Hz under syllable envelopes), which the denoiser keeps."""
    t = np.arange(n) / RATE
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2
    v = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 30))
    x = np.repeat((env * v)[:, None], ch, axis=1) * np.linspace(1, 0.7, ch)
    return (x / np.abs(x).max() * 10 ** (peak_dbfs / 20)).astype(np.float32)


@pytest.fixture(scope="module")
def denoiser():
    return rtconv.load("models/denoiser.safetensors")


def test_the_meter_gives_the_mixers_active_level_at_any_chunking_and_ignores_an_offset():
    x = _speechlike(RATE + 123, -6)
    ref = active_level_db(x[:, 0] - 0.0, RATE)
    whole = LevelMeter(RATE, 1)
    whole.add(x)
    # each 10 ms frame's own mean is removed, so the level is the mixer's to a small fraction of a dB
    assert whole.level_db() == pytest.approx(ref, abs=0.05)
    for sizes in ((1,), (479, 481), (7, 1000, 33)):
        m, i, j = LevelMeter(RATE, 1), 0, 0
        while i < len(x):
            m.add(x[i: i + sizes[j % len(sizes)]])
            i, j = i + sizes[j % len(sizes)], j + 1
        assert m.level_db() == pytest.approx(whole.level_db(), abs=1e-9)
    shifted = LevelMeter(RATE, 1)
    shifted.add(x + 0.05)  # a DC offset larger than the signal's RMS
    assert shifted.level_db() == pytest.approx(whole.level_db(), abs=1e-6)
    # silence, or less than one frame, has no level; two channels average their powers
    for y in (np.zeros((RATE, 1)), np.ones((100, 1))):
        m = LevelMeter(RATE, 1)
        m.add(y)
        assert m.level_db() == -math.inf
    two = LevelMeter(RATE, 2)
    two.add(np.concatenate([x, np.zeros_like(x)], axis=1))
    assert two.level_db() == pytest.approx(whole.level_db() - 10 * math.log10(2), abs=1e-6)


def test_the_gain_brings_a_loud_level_down_to_the_threshold_and_leaves_the_rest():
    assert LEVEL_GUARD_DBFS == -26.0  # the corpus's nominal speech level (the README and the note say so)
    assert guard_gain(LEVEL_GUARD_DBFS) == 1.0 and guard_gain(-50.0) == 1.0 and guard_gain(-math.inf) == 1.0
    assert 20 * math.log10(guard_gain(-14.0)) == pytest.approx(LEVEL_GUARD_DBFS + 14.0)
    assert level_note(1.0, -40.0) is None and level_note(guard_gain(-26.5), -26.5) is None
    assert level_note(guard_gain(-14.0), -14.0) == ("the speech is loud (active level -14 dBFS): the model heard the "
                                                     "file 12 dB quieter and its output was raised back "
                                                     "(--keep-level: as it is)")


def test_denoisers_get_it_filters_and_detectors_do_not_and_a_bad_choice_is_refused():
    fir = rtconv.FIR([1.0])
    assert not wants_level_guard(fir)
    fir.metadata = {"task": "denoise"}
    assert wants_level_guard(fir) and not wants_level_guard(fir, False)
    fir.metadata = {"task": "vad"}
    assert not wants_level_guard(fir) and wants_level_guard(fir, True)
    with pytest.raises(ConfigError, match="level_guard must be True, False or None .* got 'yes'"):
        wants_level_guard(fir, "yes")
    with pytest.raises(ConfigError, match=r"level_gain must be in \(0, 1\], got 2"):
        Chain(fir, RATE, 1, 100, level_gain=2)


def test_a_loud_file_is_run_with_its_speech_at_the_threshold_and_raised_back(denoiser):
    x = _vowels(RATE, -1)
    kept = process_array(x, RATE, denoiser, level_guard=False)
    g0 = guard_gain(active_level_db(x[:, 0], RATE))  # the file brought to the threshold by its own level
    lowered = process_array(x * np.float32(g0), RATE, denoiser, level_guard=False) / np.float32(g0)
    meter, at_own = LevelMeter(RATE, 1), LevelMeter(RATE, 1)
    meter.add(lowered)  # what the model keeps of the file lowered: its speech
    at_own.add(kept)  # at the file's own level the model closes on it and the speech measures low
    assert at_own.level_db() < meter.level_db() - 0.5
    g = guard_gain(meter.level_db())
    assert g < 0.5
    guarded = process_array(x, RATE, denoiser)
    by_hand = process_array(x * np.float32(g), RATE, denoiser, level_guard=False) / np.float32(g)
    np.testing.assert_allclose(guarded, by_hand, rtol=0, atol=1e-5)  # the measuring pass's own rounding
    assert np.abs(kept - guarded).max() > 1e-3  # the model is not scale-free up there: the guard matters
    # loud noise with little speech in it is left at its level, where the model removes more of it
    rng = np.random.default_rng(3)
    noise = (0.2 * rng.standard_normal((RATE, 1))).astype(np.float32)  # active level -14 dBFS
    assert np.array_equal(process_array(noise, RATE, denoiser), process_array(noise, RATE, denoiser,
                                                                                level_guard=False))
    # a quiet file is not touched, to the bit; nor is any file through a filter
    q = _vowels(RATE, -30)
    assert np.array_equal(process_array(q, RATE, denoiser), process_array(q, RATE, denoiser, level_guard=False))
    fir = rtconv.FIR([0.5, 0.25])
    assert np.array_equal(process_array(x, RATE, fir), process_array(x, RATE, fir, level_guard=False))


def test_the_shipped_denoiser_passes_loud_clean_speech_whole_only_with_the_guard(denoiser):
    x = _vowels(2 * RATE, -1)

    def lost_db(y):
        s = slice(RATE // 2, None)  # after the start
        return 10 * np.log10(np.sum(y[s].astype(np.float64) ** 2) / np.sum(x[s].astype(np.float64) ** 2))

    assert abs(lost_db(process_array(x, RATE, denoiser))) < 1.0
    assert lost_db(process_array(x, RATE, denoiser, level_guard=False)) < -1.0


def test_files_measure_the_whole_file_first_and_say_so_and_keep_level_turns_it_off(tmp_path, capsys, denoiser):
    x = _vowels(RATE + 5000, -1, ch=2)
    src = tmp_path / "loud.wav"
    sf.write(src, x, RATE, subtype="FLOAT")
    s = process_file(src, tmp_path / "a.wav", denoiser, block_size=333)
    assert s.level_gain < 0.5 and 20 * math.log10(s.level_gain) == pytest.approx(LEVEL_GUARD_DBFS - s.level_db)
    assert any("--keep-level" in n for n in s.notes)
    a, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    np.testing.assert_allclose(a, process_array(x, RATE, denoiser), rtol=0, atol=1e-5)  # the chunked meter agrees
    assert main(["process", str(src), "-o", str(tmp_path / "b.wav")]) == 0
    assert "the speech is loud (active level" in capsys.readouterr().err
    assert main(["process", str(src), "-o", str(tmp_path / "c.wav"), "--keep-level"]) == 0
    assert "the speech is loud" not in capsys.readouterr().err
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    c, _ = sf.read(tmp_path / "c.wav", dtype="float32")
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c, process_array(x, RATE, denoiser, level_guard=False), rtol=0, atol=1e-5)
    # both directions: each pass at the guarded level
    d = process_file(src, tmp_path / "d.wav", denoiser, both_directions=True)
    assert d.level_gain == pytest.approx(s.level_gain, rel=1e-6)  # the pre-pass streams at any block size
    dd, _ = sf.read(tmp_path / "d.wav", dtype="float32")
    np.testing.assert_allclose(dd, process_array(x, RATE, denoiser, both_directions=True), rtol=0, atol=1e-5)


# ---- streams -------------------------------------------------------------------------------------------------


def _stream(guard, x, model, size):
    return np.concatenate([guard.process(x[i: i + size], model) for i in range(0, len(x), size)])


class _Delay:
    """A model that is a pure delay of ``n`` samples, recording what it heard."""

    def __init__(self, n):
        self.n, self.heard, self._tail = n, [], None

    def __call__(self, c):
        self.heard.append(np.array(c))
        if self._tail is None:
            self._tail = np.zeros((self.n, c.shape[1]), c.dtype)
        both = np.concatenate([self._tail, c])
        self._tail = both[both.shape[0] - self.n:]
        return both[: c.shape[0]]


def _frame_gains_db(heard, x, frame):
    """The gain each 10 ms input frame was given, dB: what the model heard over what came in at the frame's last
    sample, where the gain's straight line across the frame reaches the frame's own value."""
    ends = np.arange(frame - 1, len(x), frame)
    return 20 * np.log10(np.abs(heard[ends, 0].astype(np.float64) / x[ends, 0].astype(np.float64)))


def test_within_a_frame_the_gain_moves_in_a_straight_line_with_no_steps():
    x = _vowels(2 * RATE, -1) + 1e-4 * np.random.default_rng(5).standard_normal((2 * RATE, 1)).astype(np.float32)
    model = _Delay(0)
    g = StreamLevelGuard(RATE, 1, 0)
    _stream(g, x, model, 333)
    gain = np.concatenate(model.heard)[:, 0].astype(np.float64) / x[:, 0]
    assert gain.min() < 0.2
    step = np.abs(np.diff(gain)).max()  # no sample-to-sample step larger than a frame's move spread over 480
    assert step < (1 - 10 ** (-0.2 / 20)) / (RATE // 100) * 1.01


@pytest.mark.parametrize("latency", [0, 191, 1000])
def test_the_stream_guard_lowers_loud_speech_to_the_threshold_slowly_and_undoes_its_gain_exactly(latency):
    loud, quiet = _vowels(4 * RATE, -1), _vowels(8 * RATE, -40)
    floor = 1e-4 * np.random.default_rng(5).standard_normal((12 * RATE, 1)).astype(np.float32)  # no silent frame
    x = np.concatenate([loud, quiet]) + floor
    model = _Delay(latency)
    g = StreamLevelGuard(RATE, 1, latency)
    y = _stream(g, x, model, 4096)
    # out: the input delayed, every gain undone at the sample it was given
    np.testing.assert_allclose(y[latency:], x[: len(x) - latency], rtol=0, atol=2e-6)
    heard = np.concatenate(model.heard)
    gains = _frame_gains_db(heard, x, RATE // 100)
    # at most 20 dB a second down (0.2 dB a frame) and 3 up (0.03), never above 0 dB
    steps = np.diff(gains[: len(gains) - 1])
    assert steps.min() >= -0.2 - 1e-5 and steps.max() <= 0.03 + 1e-5 and gains.max() <= 1e-5  # float32 ratios
    # the loud speech settled with its active level at the threshold (within two frames' steps)
    assert active_level_db(heard[2 * RATE: 4 * RATE, 0], RATE) == pytest.approx(LEVEL_GUARD_DBFS, abs=0.5)
    assert gains[: 4 * 100].min() < -15 and g.min_gain_db == pytest.approx(gains.min(), abs=0.05)
    # quiet speech after it: the gain held while the loud frames are in the 2 s window, then rose 3 dB a second
    assert gains[4 * 100 + 150] == pytest.approx(gains[4 * 100 - 5], abs=0.3)
    assert gains[-2] == pytest.approx(0.0, abs=1e-6) and g.gain_db == 0.0
    low = g.min_gain_db
    g.reset()  # the history goes, the record of the lowest gain stays
    assert g.gain_db == 0.0 and g.min_gain_db == low


def test_quiet_speech_passes_the_stream_guard_to_the_bit_and_loud_noise_the_model_removes_is_soon_left_alone(
        denoiser):
    from rtconv.streaming import Streamer

    x = _vowels(2 * RATE, -30)
    g = StreamLevelGuard(RATE, 1, 191)
    plain = Streamer(denoiser, 1)
    by_blocks = np.concatenate([plain.process(x[i: i + 128]) for i in range(0, len(x), 128)])
    assert np.array_equal(_stream(g, x, Streamer(denoiser, 1).process, 128), by_blocks)
    assert g.min_gain_db == 0.0
    # white noise at -14 dBFS: the model, started from silence, lets its first 0.2 s through, which the guard
    # takes for loud speech; once the model removes it, the gain goes back to 0 dB at 3 dB a second
    noise = (0.2 * np.random.default_rng(3).standard_normal((4 * RATE, 1))).astype(np.float32)
    g = StreamLevelGuard(RATE, 1, 191)
    _stream(g, noise, Streamer(denoiser, 1).process, 128)
    assert -8 < g.min_gain_db < -1 and g.gain_db == 0.0


def test_the_stream_guard_gives_the_same_output_at_any_block_size(denoiser):
    from rtconv.streaming import Streamer

    x = np.concatenate([_vowels(RATE, -1, ch=2), _vowels(RATE // 2, -35, ch=2)])
    ref = None
    for size in (4096, 1, 37, 128, 480, 481, 1000, len(x)):
        s = Streamer(denoiser, 2)
        g = StreamLevelGuard(RATE, 2, s.latency)
        y = _stream(g, x[: RATE // 4] if size == 1 else x, s.process, size)
        assert g.min_gain_db < (-0.5 if size == 1 else -6)  # it guarded
        if ref is None:
            ref = y
        np.testing.assert_allclose(y, ref[: len(y)], rtol=0, atol=2e-6)


@pytest.mark.parametrize("lead", [3, 6])
def test_a_longer_lead_passes_longer_blocks_whole_and_is_exact_at_any_block_size(lead):
    x = _vowels(2 * RATE, -1) + 1e-4 * np.random.default_rng(5).standard_normal((2 * RATE, 1)).astype(np.float32)
    frame = RATE // 100
    ref = None
    for size in (1000, 1, 128, (lead - 1) * frame, 4096):
        model = _Delay(191)
        g = StreamLevelGuard(RATE, 1, 191, lead=lead)
        y = _stream(g, x[: RATE // 4] if size == 1 else x, model, size)
        calls = [len(c) for c in model.heard]
        if size <= (lead - 1) * frame:
            assert calls == [size] * (len(calls) - 1) + [calls[-1]]  # every block whole, in one call
        else:  # a longer one is cut where the gains set so far end
            assert max(calls) <= lead * frame and sum(calls) == len(x)
            assert size < lead * frame or len(calls) > len(range(0, len(x), size))
        assert g.min_gain_db < (-0.3 if size == 1 else -10)
        if ref is None:
            ref = y
        np.testing.assert_allclose(y, ref[: len(y)], rtol=0, atol=2e-6)
        if size == 4096:  # the gain of frame k follows from the output up to frame k - lead: through a pure
            two = _Delay(191)  # delay the output is the same whatever the gains, so are the gains, lead - 2 later
            _stream(StreamLevelGuard(RATE, 1, 191), x, two, size)
            a = _frame_gains_db(np.concatenate(model.heard), x, frame)
            b = _frame_gains_db(np.concatenate(two.heard), x, frame)
            assert a.min() < -10
            np.testing.assert_allclose(a[lead - 2:], b[: len(b) - (lead - 2)], rtol=0, atol=1e-4)
    # the live chain's lead passes its blocks, and a resampler's pieces around them, whole
    assert lead_for(128, RATE) == 2 and lead_for(480, RATE) == 3 and lead_for(1024, RATE) == 6
    assert lead_for(128, 16000) == 3
    with pytest.raises(ValueError, match=r"blocks of shape \(frames, 1\), got \(480,\)"):
        StreamLevelGuard(RATE, 1, 0).process(x[:480, 0], lambda c: c)


def test_the_live_chain_gives_the_model_its_blocks_whole_so_onnx_plans_one_length(denoiser):
    from rtconv.live import StreamSettings
    from rtconv.live.chain import ModelChain

    for block in (128, 1024):
        chain = ModelChain(denoiser, StreamSettings(sample_rate=RATE, channels=1, block_size=block),
                           realtime_check=False)
        sizes, run = [], chain.streamer.process
        chain.streamer.process = lambda c: (sizes.append(len(c)), run(c))[1]
        _live_run_blocks(chain, _vowels(2 * RATE, -1), block)
        assert set(sizes) == {block} and chain.level_gain_db < -10


def test_nonfinite_output_leaves_the_stream_guards_gain_alone():
    g = StreamLevelGuard(RATE, 1, 0)
    x = _vowels(RATE, -1)
    _stream(g, x, lambda c: c, 480)
    before = g.gain_db
    y = g.process(x[:960], lambda c: np.full_like(c, np.nan))
    assert np.isnan(y).all() and math.isfinite(g.gain_db) and g.gain_db <= before + 0.06
    assert np.isfinite(_stream(g, x, lambda c: c, 480)).all()


def _live_run_blocks(chain, x, block):
    out = np.zeros_like(x)
    for i in range(0, len(x) - block + 1, block):
        chain.process(x[i: i + block], out[i: i + block])
    return out


def _live_run(chain, x):
    return _live_run_blocks(chain, x, 128)


def test_the_live_chain_passes_loud_speech_whole_with_the_guard_and_keep_level_turns_it_off(denoiser):
    from rtconv.live import StreamSettings
    from rtconv.live.chain import ModelChain

    st = StreamSettings(sample_rate=RATE, channels=1, block_size=128)
    x = _vowels(3 * RATE, -1)
    lat = None

    def lost_db(y):
        s = slice(3 * RATE // 2, None)  # after the gain settled
        return 10 * np.log10(np.sum(y[s].astype(np.float64) ** 2)
                             / np.sum(x[s.start - lat: len(x) - lat].astype(np.float64) ** 2))

    on = ModelChain(denoiser, st, realtime_check=False)
    lat = on.latency
    assert on.guard is not None and on.level_gain_db == 0.0
    assert abs(lost_db(_live_run(on, x))) < 0.5
    assert on.level_gain_min_db < -10 and on.level_gain_db < -10
    off = ModelChain(denoiser, st.replace(level_guard=False), realtime_check=False)
    assert off.guard is None and off.level_gain_db is None
    assert lost_db(_live_run(off, x)) < -1.0
    # a resampled chain guards at the model's rate
    at44 = ModelChain(denoiser, st.replace(sample_rate=44100), realtime_check=False)
    assert at44.guard is not None and at44.guard.frame == RATE // 100
    _live_run(at44, _vowels(2 * 44100, -1))
    assert at44.level_gain_db < -10
    # a filter has no guard
    assert ModelChain(rtconv.FIR([0.5]), st, realtime_check=False).guard is None
    with pytest.raises(ConfigError, match="level_guard must be True or False, got 'on'"):
        st.replace(level_guard="on")


def test_rtconv_live_keep_level_reaches_the_settings_and_stats_and_the_summary_tell_the_guard(denoiser):
    from _live import cli_settings, processor

    from rtconv.cli.live import format_stats

    assert cli_settings(sample_rate=RATE).level_guard is True
    assert cli_settings("--keep-level", sample_rate=RATE).level_guard is False
    pr = processor(denoiser, RATE, 1, 128, realtime_check=False)
    x = _vowels(2 * RATE, -1)
    for i in range(0, len(x), 128):
        pr.process(x[i: i + 128])
    s = pr.stats()
    assert s["level_gain_db"] < -10 and s["level_gain_min_db"] <= s["level_gain_db"]
    assert (f"the speech was loud: the model heard it up to {-s['level_gain_min_db']:.0f} dB quieter and its "
            "output was raised back (--keep-level: as it is)") in format_stats(s)
    assert stream_level_note(-0.5) is None and stream_level_note(None) is None
    f = processor(rtconv.FIR([1.0]), RATE, 1, 128, realtime_check=False)
    f.process(x[:128])
    assert f.stats()["level_gain_db"] is None and "the speech was loud" not in format_stats(f.stats())
    # the lowest gain is the stream's: a failed block (the chain reset) and a swap keep it
    low = s["level_gain_min_db"]
    run = pr.chain.streamer.process
    pr.chain.streamer.process = lambda c: np.full_like(c, np.nan)
    pr.process(x[:128])
    pr.chain.streamer.process = run
    assert pr.stats()["model_errors"] == 1 and pr.stats()["level_gain_min_db"] == low
    pr.request_swap(rtconv.FIR([1.0]))
    quiet = _vowels(RATE // 2, -40)
    for i in range(0, len(quiet), 128):
        pr.process(quiet[i: i + 128])
    assert pr.stats()["swaps"] == 1 and pr.stats()["level_gain_db"] is None
    assert pr.stats()["level_gain_min_db"] == low and "the speech was loud" in format_stats(pr.stats())
