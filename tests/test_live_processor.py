"""LiveProcessor without any device: exactness, mix, gain, limiter, failures, swap, stats."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import rtconv
from rtconv import designs
from rtconv.errors import ConfigError, RtconvError
from rtconv.live import DisplayRing, FrameRing, RateBridge

import _live
from _live import processor as LiveProcessor

RATE = 48000


def _noise(n, ch=1, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal((n, ch)) * scale).astype(np.float32)


def _run(p, x, block):
    return np.concatenate([p.process(x[i : i + block]).copy() for i in range(0, len(x), block)])


def _gain_fir(g, rate=None):
    m = rtconv.FIR(np.array([g], np.float32))
    m.sample_rate = rate
    return m


@pytest.mark.parametrize("block", [1, 3, 7, 128, 4096])
@pytest.mark.parametrize("channels", [1, 2])
def test_wet_output_equals_the_streamer_at_any_block_size(block, channels):
    m = designs.lowpass(3000, 63, RATE)
    x = _noise(6000, channels)
    p = LiveProcessor(m, RATE, channels, block, realtime_check=False)
    y = _run(p, x, block)
    ref = rtconv.Streamer(m, channels=channels).process(x)
    np.testing.assert_allclose(y, ref, atol=2e-6)


def test_a_same_padded_model_reports_its_latency_and_the_dry_path_is_delayed_to_match():
    m = rtconv.MimoCNN(taps=[9], features=[1, 1], padding="same", bias=False)
    with torch.no_grad():
        m.conv_layers()[0].weight.zero_()
        m.conv_layers()[0].weight[0, 0, 4] = 1.0  # centred impulse: offline output == input
    p = LiveProcessor(m, RATE, 1, 64)
    assert p.latency == m.latency == 4
    p.set_controls(wet=0.5)
    x = _noise(4096)
    y = _run(p, x, 64)
    # wet (x delayed 4) and dry (x delayed 4) are aligned, so any mix is x delayed 4
    np.testing.assert_allclose(y[4 + 64 :, 0], x[64:-4, 0], atol=1e-6)


@pytest.mark.parametrize("model_rate", [16000, 32000, 44100])
@pytest.mark.parametrize("block", [7, 128])
def test_the_reported_latency_is_where_an_impulse_comes_out_through_soxr_resamplers(model_rate, block):
    p = LiveProcessor(_gain_fir(1.0, model_rate), RATE, 1, block, realtime_check=False, resample_quality="LQ")
    assert p.stats()["latency"]["resampler_ms"] > 0
    x = np.zeros((RATE // 2, 1), np.float32)
    x[5000] = 0.8
    for bypass in (True, False):
        p.set_controls(bypass=bypass)
        y = _run(p, x, block)
        assert abs(int(np.argmax(np.abs(y[:, 0]))) - (5000 + p.latency)) <= 1, bypass


@pytest.mark.parametrize("model_rate", [16000, 32000, 44100])
@pytest.mark.parametrize("block", [7, 128])
def test_the_default_minimum_phase_resamplers_delay_speech_by_the_reported_latency_of_a_few_frames(model_rate, block):
    from scipy import signal

    p = LiveProcessor(_gain_fir(1.0, model_rate), RATE, 1, block, realtime_check=False)
    assert p.latency <= 16 and p.stats()["latency"]["resampler_ms"] > 0  # 0.33 ms; soxr LQ: 100-1900 frames
    # speech-band noise (100 Hz - 3 kHz): the lag of the best match between output and input
    x = signal.sosfilt(signal.butter(4, [100, 3000], "bandpass", fs=RATE, output="sos"), _noise(RATE, scale=1.0)[:, 0])
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)[:, None]
    y = _run(p, x, block)[:, 0]
    lags = np.arange(0, 40)
    match = [np.dot(y[2000 + k:], x[2000:len(x) - k, 0]) for k in lags]
    assert abs(int(lags[np.argmax(match)]) - p.latency) <= 1
    err = y[2000 + p.latency:] - x[2000:len(x) - p.latency, 0]  # within a fraction of a frame: > 10 dB apart
    assert 10 * np.log10(np.sum(x[2000:, 0] ** 2) / np.sum(err ** 2)) > 10


def test_bypass_passes_the_input_delayed_by_the_latency_after_a_ramp():
    m = _gain_fir(0.25)
    p = LiveProcessor(m, RATE, 1, 128)
    p.set_controls(bypass=True)
    x = _noise(128 * 20)
    y = _run(p, x, 128)
    np.testing.assert_allclose(y[128:], x[128:], atol=1e-7)
    assert np.all(np.abs(y[:128]) <= np.abs(x[:128]) + 1e-7)  # ramped from 0.25x to x


def test_gain_scales_the_output_in_db_after_one_block_of_ramp():
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 64)
    p.set_controls(gain_db=-6.0)
    x = _noise(64 * 10, scale=0.1)
    y = _run(p, x, 64)
    np.testing.assert_allclose(y[64:], x[64:] * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)


def test_wet_zero_outputs_the_dry_signal():
    p = LiveProcessor(_gain_fir(0.0), RATE, 1, 32)
    p.set_controls(wet=0.0)
    x = _noise(32 * 10)
    y = _run(p, x, 32)
    np.testing.assert_allclose(y[32:], x[32:], atol=1e-7)


@pytest.mark.parametrize("block", [1, 17, 256])
def test_the_limiter_keeps_every_sample_under_minus_1_dbfs(block):
    p = LiveProcessor(_gain_fir(4.0), RATE, 2, block, realtime_check=False)
    x = _noise(3000, 2, scale=0.5)
    y = _run(p, x, block)
    assert np.abs(y).max() <= 10 ** (-1 / 20) + 1e-6
    assert p.monitor.meters()["out_limited"]
    p.set_controls(limiter=False)
    assert np.abs(_run(p, x, block)).max() > 1.0


def test_the_limiter_releases_to_unity_gain_after_a_loud_burst():
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 128)
    loud = np.full((1280, 1), 1.5, np.float32)
    quiet = _noise(RATE // 2, scale=0.05)
    _run(p, loud, 128)
    y = _run(p, quiet, 128)
    np.testing.assert_allclose(y[-4800:], quiet[-4800:], atol=1e-7)


def test_a_model_producing_nan_passes_the_block_dry_and_counts_it():
    m = designs.lowpass(3000, 31, RATE)
    p = LiveProcessor(m, RATE, 1, 64)
    p.chain.streamer.process = lambda x: np.full_like(x, np.nan)  # weights gone bad mid-stream
    x = _noise(64 * 8)
    y = _run(p, x, 64)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, x, atol=1e-7)
    assert p.stats()["model_errors"] == 8
    (msg,) = p.poll_warnings()
    assert "passed dry" in msg and "NaN" in msg
    assert p.poll_warnings() == []  # at most once per second


def test_a_model_with_nan_weights_is_refused_before_it_plays():
    p = LiveProcessor(_gain_fir(0.5), RATE, 1, 64)
    bad = _gain_fir(1.0)
    with torch.no_grad():
        bad.conv_layers()[0].weight.fill_(float("nan"))
    with pytest.raises(ConfigError, match="non-finite output on silence"):
        p.request_swap(bad)


def test_a_model_that_raises_passes_dry_and_process_never_raises():
    p = LiveProcessor(_gain_fir(0.5), RATE, 1, 32)

    def boom(x):
        raise RuntimeError("kaboom")

    p.chain.streamer.process = boom
    x = _noise(32 * 4)
    y = _run(p, x, 32)
    np.testing.assert_allclose(y, x, atol=1e-7)
    assert p.model_errors == 4 and "kaboom" in p.last_error


def test_nonfinite_input_is_zeroed_counted_and_never_reaches_the_output():
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 16, realtime_check=False)
    x = _noise(64)
    x[5] = np.nan
    x[20] = np.inf
    y = _run(p, x, 16)
    assert np.isfinite(y).all()
    assert p.stats()["nonfinite_samples"] == 2


def test_a_swap_crossfades_from_the_old_model_to_the_new_one():
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 128, crossfade_ms=10)
    x = np.full((128 * 20, 1), 0.5, np.float32)
    _run(p, x[:1280], 128)
    p.request_swap(_gain_fir(-1.0))
    assert p.swap_pending
    y = _run(p, x, 128)[:, 0]
    fade = 480
    assert y[0] == pytest.approx(0.5, abs=0.01)
    assert np.all(np.diff(y[:fade]) < 0)  # a smooth ramp, no jump
    np.testing.assert_allclose(y[fade:], -0.5, atol=1e-6)
    assert p.stats()["swaps"] == 1 and p.model.kernel[0] == -1.0
    assert not p.swap_pending


@pytest.mark.parametrize("block", [1, 16, 128])
def test_a_swapped_in_convolution_is_heard_only_once_its_history_is_the_streams_and_is_then_exact(block):
    """Started from silence it would fade in a truncated response; warmed unheard over its reach, it is exact."""
    old, new = _gain_fir(0.5), designs.lowpass(3000, 63, RATE)
    new.sample_rate = None
    x = _noise(6000, seed=3)
    p = LiveProcessor(old, RATE, 1, block, crossfade_ms=1, realtime_check=False)  # 48-frame fade
    s = 1024 // block * block
    y = _run(p, x[:s], block)
    p.request_swap(new)
    assert p.chain.warm_frames == 0
    y = np.concatenate([y, _run(p, x[s:], block)])
    warm = -(-62 // block) * block  # the reach of 63 taps, rounded up to whole blocks
    np.testing.assert_allclose(y[: s + warm], 0.5 * x[: s + warm], atol=1e-7)  # only the old model heard
    ref = rtconv.Streamer(new, channels=1).process(x)  # the new model as if it had always run
    np.testing.assert_allclose(y[s + warm + 48 :], ref[s + warm + 48 :], atol=2e-6)
    assert p.stats()["swaps"] == 1 and not p.swap_pending


def test_a_swapped_in_recurrent_model_warms_unheard_for_a_quarter_second_and_a_newer_request_replaces_it():
    from rtconv.denoiser import ConvDenoiser

    torch.manual_seed(0)
    rec = ConvDenoiser(window=32, hop=16, channels=8, blocks=2, activation="tanh", gru=4)
    rec.sample_rate = RATE
    assert rec.recurrent and rec.history_frames(RATE) == RATE // 4
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 128, realtime_check=False)
    x = _noise(RATE, seed=4)
    p.request_swap(rec)
    assert p.chain.warm_frames == 0 and p.swap_pending
    y = _run(p, x[: RATE // 8], 128)
    p.request_swap(_gain_fir(-1.0))  # before the first one was heard: it is dropped, the newer one warms
    y = np.concatenate([y, _run(p, x[RATE // 8 :], 128)])
    assert p.model.kernel[0] == -1.0 and p.stats()["swaps"] == 1 and not p.swap_pending
    np.testing.assert_allclose(y[: RATE // 8], x[: RATE // 8], atol=1e-7)  # the recurrent one never heard
    np.testing.assert_allclose(y[RATE // 8 + 960 :], -x[RATE // 8 + 960 :], atol=1e-7)  # the newer one at once
    p.request_swap(rec)
    assert p.swap_pending
    z = _run(p, x, 128)
    heard = -(-(RATE // 4) // 128) * 128  # warm frames rounded up to whole blocks
    np.testing.assert_allclose(z[:heard], -x[:heard], atol=1e-7)
    assert not p.swap_pending and p.model is rec and p.stats()["swaps"] == 2
    assert not np.allclose(z[heard + 960 :], -x[heard + 960 :], atol=1e-3)


def test_swapping_the_shipped_denoiser_into_a_noisy_stream_lets_no_burst_of_noise_through():
    """Before warming, the new model's first 150 ms passed white noise 27 dB louder than the running one did."""
    from rtconv import checkpoint
    from rtconv.train import noise

    x = (0.05 * noise.generate("white", 3 * RATE, RATE, np.random.default_rng(1), "test"))[:, None].astype(np.float32)
    s = 2 * RATE // 128 * 128

    def run(swap):
        p = LiveProcessor(checkpoint.resolve(None), RATE, 1, 128, realtime_check=False)
        y = _run(p, x[:s], 128)
        if swap:
            p.request_swap(checkpoint.resolve(None))
        return np.concatenate([y, _run(p, x[s:], 128)])[s:, 0], p.stats()["swaps"]

    (a, _), (b, swaps) = run(False), run(True)
    assert swaps == 1
    w = RATE // 20
    rise = [10 * np.log10(np.sum(b[i : i + w] ** 2) / np.sum(a[i : i + w] ** 2)) for i in range(0, len(a) - w + 1, w)]
    assert max(rise) < 10, np.round(rise, 1)


def test_where_two_models_would_not_keep_up_a_swapped_in_one_is_heard_at_once_and_a_warning_says_why():
    """A quarter second of two models in each block would be a quarter second of dropouts on a loaded model."""
    from rtconv.denoiser import ConvDenoiser

    torch.manual_seed(0)
    rec = ConvDenoiser(window=32, hop=16, channels=8, blocks=2, activation="tanh", gru=4)
    rec.sample_rate = RATE
    x = _noise(RATE // 4, seed=5)
    for heavy, heard_at in ((False, RATE // 4), (True, 0)):
        p = LiveProcessor(_gain_fir(1.0), RATE, 1, 128, crossfade_ms=1)
        p.poll_warnings(interval=0)
        if heavy:  # the playing model's fastest block took 0.6 of the 2.67 ms budget
            p.chain.warmup_ms = 0.6 * 128 / RATE * 1e3
        p.request_swap(rec)
        y = _run(p, x, 128)
        assert (p.model is rec) == heavy and p._pending[1].warm_frames == (0 if heavy else RATE // 4)
        assert np.allclose(y, x, atol=1e-7) != heavy  # warming: the old model only, all quarter second
        warnings = p.poll_warnings(interval=0)
        if heavy:
            (msg,) = warnings
            assert "without warming up" in msg and "of a 2.67 ms block" in msg and "256 frames" in msg
        else:
            assert warnings == [] and p.swap_pending


def test_a_switch_set_while_a_swapped_in_model_warms_holds_for_it():
    from rtconv import checkpoint

    p = LiveProcessor(checkpoint.resolve(None), RATE, 1, 128, realtime_check=False)
    p.request_swap(checkpoint.resolve(None), {"attenuation_limit_db": 6})
    _run(p, _noise(1280), 128)  # warming, unheard
    assert p.swap_pending
    p.set_switches(attenuation_limit_db=12)
    _run(p, _noise(RATE // 2), 128)
    assert not p.swap_pending and p.switches["attenuation_limit_db"] == 12


def test_a_swap_to_a_model_at_another_rate_adds_the_resamplers(tmp_path):
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 128)
    p.request_swap(_gain_fir(1.0, 16000))
    _run(p, _noise(RATE // 4), 128)
    assert p.stats()["model_rate"] == 16000 and p.latency > 0


def test_a_model_that_does_not_fit_is_refused_and_the_old_one_keeps_playing():
    p = LiveProcessor(_gain_fir(0.5), RATE, 1, 64)
    stereo = rtconv.MimoCNN(taps=[3], features=[2, 2])
    with pytest.raises(ConfigError, match=r"not swapped in, the running one keeps playing.*2 input channels"):
        p.request_swap(stereo)
    x = _noise(640)
    np.testing.assert_allclose(_run(p, x, 64), 0.5 * x, atol=1e-7)


def test_a_missing_checkpoint_is_refused_with_its_name(tmp_path):
    p = LiveProcessor(_gain_fir(0.5), RATE, 1, 64)
    bad = tmp_path / "nope.safetensors"
    with pytest.raises(RtconvError, match=r"nope\.safetensors.*running one keeps playing"):
        p.request_swap(bad)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(RtconvError, match="garbage.safetensors"):
        p.request_swap(garbage)
    assert p.model.kernel[0] == 0.5


def test_a_model_too_slow_for_the_block_budget_is_refused():
    slow = designs.lowpass(3000, 4001, RATE)
    slow.sample_rate = None
    with pytest.raises(ConfigError, match=r"real time allows 0\.0\d+ ms; use a larger block size"):
        LiveProcessor(slow, 1_000_000, 1, 1)


@pytest.mark.parametrize("bad, match", [
    (dict(sample_rate=0), "sample_rate must be a positive integer, got 0"),
    (dict(channels=1.5), "channels must be a positive integer, got 1.5"),
    (dict(block_size=True), "block_size must be a positive integer, got True"),
    (dict(resample_quality="best"), "resample_quality must be one of LL, QQ, LQ, MQ, HQ, VHQ, got 'best'"),
    (dict(output_channels=3, channels=2), "output_channels must be 2 for a 2-channel stream, got 3"),
    (dict(device_latency="lowest"), "device_latency must be 'low', 'high' or seconds, got 'lowest'"),
    (dict(device_latency=0), r"device_latency must be 'low', 'high' or seconds above 0 and at most 2, got 0\."),
    (dict(device_latency=True), "device_latency must be .* got True"),
])
def test_bad_stream_settings_are_refused_with_the_value(bad, match):
    from rtconv.live import StreamSettings

    kw = dict(sample_rate=RATE, channels=1, block_size=64) | bad
    with pytest.raises(ConfigError, match=match):
        StreamSettings(**kw)


def test_stats_report_counters_block_times_and_the_latency_breakdown():
    p = LiveProcessor(_gain_fir(1.0, 16000), RATE, 1, 128)
    _run(p, _noise(128 * 50), 128)
    s = p.stats()
    assert s["blocks"] == 50 and s["frames"] == 6400
    b = s["block_ms"]
    assert 0 < b["median"] <= b["p99"] <= b["max"] and b["budget"] == pytest.approx(128 / 48)
    assert set(s["latency"]) == {"model_ms", "resampler_ms", "gate_ms", "device_in_ms", "device_out_ms",
                                 "total_ms"}
    assert s["latency"]["gate_ms"] == 0 and s["gate"] is None  # no VAD, no gate
    assert s["latency"]["total_ms"] == pytest.approx(p.latency / 48)
    for key in ("input_overflows", "output_underflows", "model_errors", "nonfinite_samples", "cpu_load"):
        assert key in s


def test_meters_report_levels_in_dbfs_and_clipping_once():
    p = LiveProcessor(_gain_fir(0.5), RATE, 1, 480)
    x = np.full((480 * 150, 1), 1.0, np.float32)
    _run(p, x, 480)
    m = p.monitor.meters()
    assert m["in_peak_db"][0] == pytest.approx(0.0, abs=0.01)
    assert m["out_peak_db"][0] == pytest.approx(-6.02, abs=0.05)
    assert m["in_rms_db"][0] == pytest.approx(0.0, abs=0.1)
    assert m["in_clip"] and not p.monitor.meters()["in_clip"]


def test_the_display_ring_returns_the_latest_input_and_output():
    p = LiveProcessor(_gain_fir(0.5), RATE, 2, 100)
    x = _noise(1000, 2)
    _run(p, x, 100)
    i, o = p.monitor.read_display(300)
    np.testing.assert_array_equal(i, x[-300:])
    np.testing.assert_allclose(o, 0.5 * x[-300:], atol=1e-7)
    i, _ = p.monitor.read_display(5000)
    assert i.shape == (5000, 2) and not i[:4000].any()


def test_frame_ring_is_lossless_in_order_across_wraps_and_counts_refused_blocks():
    r = FrameRing(10, 1)
    got = []
    for k in range(20):
        assert r.write(np.full((3, 1), k, np.float32))
        got.append(r.read()[:, 0])
    assert np.array_equal(np.concatenate(got), np.repeat(np.arange(20), 3))
    r.write(np.zeros((8, 1), np.float32))
    assert not r.write(np.zeros((3, 1), np.float32)) and r.dropped == 3


def test_display_ring_counts_frames_no_reader_saw():
    r = DisplayRing(8, 1)
    r.write(np.arange(20, dtype=np.float32)[:, None])
    assert np.array_equal(r.read_latest(4)[:, 0], [16, 17, 18, 19])
    assert r.dropped == 12


@pytest.mark.parametrize("quality", ["LL", "QQ", "LQ", "HQ"])
def test_rate_bridge_never_runs_dry_at_a_fixed_block_size(quality):
    b = RateBridge(48000, 16000, 1, 128, quality)
    out = np.zeros((128, 1), np.float32)
    for _ in range(600):
        b.process(np.zeros((128, 1), np.float32), lambda m: m, out)
    assert b.underruns == 0


def test_rate_bridge_refuses_an_unknown_quality():
    with pytest.raises(ConfigError, match=r"one of LL, QQ, LQ, MQ, HQ, VHQ, got 'best'"):
        RateBridge(48000, 16000, 1, 128, "best")


def test_a_processor_takes_its_format_only_as_stream_settings_and_a_model_reaches_the_audio_process_as_a_path():
    from rtconv.live import LiveProcessor as Processor
    from rtconv.live.host import AudioHost, RemoteSession

    with pytest.raises(ConfigError, match=r"^settings must be a StreamSettings, got int\.$"):
        Processor(_gain_fir(1.0), RATE)
    host = AudioHost()  # never started: the checks come first
    with pytest.raises(ConfigError, match=r"^a model reaches the audio process as a checkpoint path, got FIR; "):
        RemoteSession(host, _gain_fir(1.0), _live.settings())
    assert not host.alive


class _StuckStream:
    """Stands in for a PortAudio stream whose host API never returns from stop()."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def stop(self) -> None:
        self.release.wait()

    def close(self) -> None:
        pass


def test_a_stuck_device_does_not_hold_up_stop_and_the_recordings_are_finalized(tmp_path):
    import soundfile as sf

    from rtconv.live import LiveStream
    from rtconv.live.recorder import Recorder

    warnings: list[str] = []
    st = LiveStream(LiveProcessor(_gain_fir(1.0), RATE, 1, 128), warn=warnings.append)
    st.stop_timeout = 0.3
    st.recorder = Recorder(tmp_path, RATE, 1)
    block = np.linspace(-0.5, 0.5, 128, dtype=np.float32)[:, None]
    for _ in range(10):
        st.recorder.push(block, 0.5 * block)
    st._stream = stuck = _StuckStream()
    try:
        st.stop()  # returns after stop_timeout instead of waiting for the device
        assert st.device_hung
        assert warnings == ["the audio device did not stop within 0.3 s (PortAudio is stuck in the host API); "
                            "the recordings are finalized anyway."]
        files = sorted(tmp_path.glob("*.wav"))
        assert [f.name.rsplit("-", 1)[1] for f in files] == ["input.wav", "output.wav"]
        rin = sf.read(files[0], dtype="float32")[0]
        rout = sf.read(files[1], dtype="float32")[0]
        np.testing.assert_allclose(rin, np.tile(block[:, 0], 10), atol=1e-4)
        np.testing.assert_allclose(rout, 0.5 * rin, atol=1e-4)
    finally:
        stuck.release.set()


def test_a_device_that_fails_to_stop_is_reported_and_recordings_still_finalized(tmp_path):
    from rtconv.live import LiveStream
    from rtconv.live.recorder import Recorder

    class Failing(_StuckStream):
        def stop(self) -> None:
            raise OSError("device unplugged")

    warnings: list[str] = []
    st = LiveStream(LiveProcessor(_gain_fir(1.0), RATE, 1, 128), warn=warnings.append)
    st.recorder = Recorder(tmp_path, RATE, 1)
    st._stream = Failing()
    st.stop()
    assert not st.device_hung and not st.recorder.active
    assert warnings == ["stopping the audio device failed (device unplugged); the recordings are finalized anyway."]
    assert len(list(tmp_path.glob("*.wav"))) == 2


def test_the_onnx_engine_gives_the_torch_output_live_and_after_a_swap():
    """``LiveProcessor(engine="onnx")`` (``rtconv live --engine onnx``): the same audio, swaps included."""
    pytest.importorskip("onnxruntime", reason="the onnx engine needs the onnx extra (pip install 'rtconv[onnx]')")
    from rtconv.denoiser import ConvDenoiser

    torch.manual_seed(0)
    first = ConvDenoiser(window=32, hop=16, channels=8, blocks=2, activation="tanh", gru=4)
    first.sample_rate = RATE
    second = designs.lowpass(3000, 63, RATE)
    x = _noise(4096)
    ref = LiveProcessor(first, RATE, 1, 128, realtime_check=False)
    onnx = LiveProcessor(first, RATE, 1, 128, realtime_check=False, engine="onnx")
    assert onnx.chain.streamer.engine == "onnx"
    np.testing.assert_allclose(_run(onnx, x, 128), _run(ref, x, 128), atol=1e-4)
    onnx.request_swap(second)
    _run(onnx, x[:2048], 128)  # taken at a block boundary, then a 20 ms crossfade
    assert onnx.wait_swapped(10) and onnx.model is second
    assert onnx.chain.streamer.engine == "onnx"


def test_the_terminal_status_line_shows_levels_in_dbfs_and_silence_as_minus_infinity():
    """``rtconv live``'s one line tells a user the microphone works: meters, dropouts, block time."""
    from rtconv.cli.live import status_line

    p = LiveProcessor(designs.lowpass(3000, 63, RATE), RATE, 1, 128, realtime_check=False)
    _run(p, np.zeros((4096, 1), np.float32), 128)
    silent = status_line(p.stats(), p.monitor.meters())
    assert "in   -inf out   -inf dBFS" in silent and "-200" not in silent
    _run(p, _noise(48000, scale=0.1), 128)  # RMS -20 dBFS
    line = status_line(p.stats(), p.monitor.meters())
    level = float(re.search(r"in +(-?\d+\.\d) out", line).group(1))
    assert -22 < level < -18, line
    assert re.search(r"dropouts 0 .*block \d+\.\d\d/\d+\.\d\d ms of 2\.67", line), line


def test_a_slow_framed_model_is_not_sent_to_the_onnx_engine_which_runs_its_body_slower():
    import time as _time

    from rtconv.denoiser import ConvDenoiser

    p = LiveProcessor(ConvDenoiser(window=32, hop=16, channels=8, blocks=1).eval(), RATE, 1, 64)
    fast = p.chain.streamer.process
    p.chain.streamer.process = lambda x: (_time.sleep(0.002), fast(x))[1]  # slower than the block
    _run(p, _noise(64 * 20), 64)
    p.note_status(output_underflow=True)
    (msg,) = p.poll_warnings(interval=0)
    assert msg.startswith("1 dropout(s): the model takes") and re.search(
        r"a larger block size \((256|512) frames or more\) gives it more room\.$", msg), msg


def test_one_xrun_flagging_both_directions_is_one_dropout_not_two():
    """JACK reports a late cycle to PortAudio as an input overflow and an output underflow of the same block."""
    from rtconv.cli.live import format_stats, status_line

    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 1024)
    _run(p, _noise(1024 * 4), 1024)
    p.note_status(input_overflow=True, output_underflow=True)
    (msg,) = p.poll_warnings(interval=0)
    assert msg.startswith("1 dropout(s) reported by the audio device"), msg
    s = p.stats()
    assert (s["dropouts"], s["input_overflows"], s["output_underflows"]) == (1, 1, 1)
    assert "dropouts 1 " in status_line(s)
    assert "dropouts: 1 blocks (1 input overflows, 1 output underflows; one xrun is often both)" in format_stats(
        {**s, "resampler_underruns": 0})


def test_the_block_size_advice_for_a_tiny_block_names_one_whose_budget_holds_the_block_time():
    """At -b 1 a block's time is fixed cost: doubling the block (2 frames) would not keep up either."""
    import time as _time

    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 1)  # 0.02 ms per block
    fast = p.chain.streamer.process
    p.chain.streamer.process = lambda x: (_time.sleep(0.0002), fast(x))[1]  # 0.2 ms and more, as python's overhead
    _run(p, _noise(400), 1)
    p.note_status(output_underflow=True)
    (msg,) = p.poll_warnings(interval=0)
    size = int(re.search(r"a larger block size \((\d+) frames or more\)", msg).group(1))
    p99 = p.stats()["block_ms"]["p99"]
    assert size >= 2 * p99 * 1e-3 * RATE and size & (size - 1) == 0 and size >= 16, (size, p99, msg)


def test_an_unknown_control_or_model_switch_is_refused_in_one_sentence_with_the_known_ones():
    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 64)
    with pytest.raises(ConfigError, match=r"^unknown control 'volume'; the controls are bypass, wet, gain_db, limiter, "
                                          r"gate, gate_threshold, .*\.$"):
        p.set_controls(volume=3)
    with pytest.raises(ConfigError, match=r"^unknown model switch 'strength'; the switches are attenuation_limit_db, "
                                          r"linked\.$"):
        p.set_switches(strength=3)
    with pytest.raises(ConfigError, match=r"^the model \('fir'\) has no attenuation limit: only denoisers do; "):
        p.set_switches(attenuation_limit_db=12)
    assert p.switches == {} and p.controls()["bypass"] is False  # nothing half-applied


def test_dropouts_are_explained_by_the_block_times():
    import time as _time

    p = LiveProcessor(_gain_fir(1.0), RATE, 1, 64)  # 1.33 ms per block
    fast = p.chain.streamer.process
    p.chain.streamer.process = lambda x: (_time.sleep(0.002), fast(x))[1]  # slower than the block
    _run(p, _noise(64 * 20), 64)
    p.note_status(output_underflow=True)
    p.note_status(input_overflow=True)
    (msg,) = p.poll_warnings(interval=0)
    assert msg.startswith("2 dropout(s): the model takes") and "of the 1.33 ms a 64-frame block allows" in msg
    # 2 ms a block needs a 4 ms budget or more: 192 frames, a power of two up
    assert re.search(r"a larger block size \((256|512) frames or more\) or the onnx engine \(--engine onnx\)", msg), msg
    assert p.poll_warnings(interval=0) == []  # said once per new dropout
    q = LiveProcessor(_gain_fir(1.0), RATE, 1, 1024)  # a gain is far quicker than 21 ms
    _run(q, _noise(1024 * 4), 1024)
    q.note_status(output_underflow=True)
    (msg,) = q.poll_warnings(interval=0)
    assert msg.startswith("1 dropout(s) reported by the audio device while the model kept up")
    assert msg.endswith("more device buffering (rtconv live --device-latency 0.02, the GUI's Buffering) trades "
                        "a few milliseconds of delay for fewer.")
    r = LiveProcessor(_gain_fir(1.0), RATE, 1, 1024, device_latency=0.05)  # already buffering more: no advice
    _run(r, _noise(1024 * 4), 1024)
    r.note_status(output_underflow=True)
    (msg,) = r.poll_warnings(interval=0)
    assert msg.endswith("another program or the system held the CPU or the device.")


@pytest.mark.parametrize("value", ["3", "0", "lowest"])
def test_a_bad_device_latency_is_one_argparse_sentence(capsys, value):
    from rtconv.cli import main

    with pytest.raises(SystemExit) as e:
        main(["live", "--device-latency", value])
    assert e.value.code == 2
    assert (f"argument --device-latency: expected 'low', 'high' or seconds above 0 and at most 2, got '{value}'"
            in capsys.readouterr().err)


def test_device_latency_reaches_the_settings_and_is_low_by_default():
    # --virtual-mic's 20 ms reaching the stream is checked on a real server (test_virtual_mic)
    import argparse

    from rtconv.cli import live

    parser = argparse.ArgumentParser()
    live.configure(parser)
    def settings(*argv):  # a given rate: no device is asked for its own
        return live._settings(parser.parse_args(["--sample-rate", "48000", *argv]), 48000)

    assert settings().device_latency == "low"
    assert settings("--device-latency", "high").device_latency == "high"
    assert settings("--device-latency", "0.05").device_latency == 0.05


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("block", [1, 7, 128])
def test_meters_follow_their_peak_fall_and_mean_square_time_constant_at_any_block_size(channels, block):
    from rtconv.live import Monitor

    rate, n = 8000, 2000
    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((n, channels)) * np.linspace(0.2, 0.01, n)[:, None]).astype(np.float32)
    out = x * 0.25
    mon = Monitor(rate, channels)
    for i in range(0, n, block):
        mon.update(x[i : i + block], out[i : i + block], 0, 1e-4)
    # the meters' definitions in float64, block by block
    peak, ms = np.zeros((2, channels)), np.zeros((2, channels))
    for i in range(0, n, block):
        k = len(x[i : i + block])
        fall, step = 10 ** (-20 * k / rate / 20), 1 - np.exp(-k / rate / 0.3)
        for j, a in enumerate((x[i : i + block], out[i : i + block])):
            a = a.astype(np.float64)
            peak[j] = np.maximum(np.abs(a).max(0), peak[j] * fall)
            ms[j] += step * ((a * a).mean(0) - ms[j])
    got = mon.meters()
    np.testing.assert_allclose(got["in_peak_db"], 20 * np.log10(peak[0]), atol=1e-4)
    np.testing.assert_allclose(got["out_peak_db"], 20 * np.log10(peak[1]), atol=1e-4)
    np.testing.assert_allclose(got["in_rms_db"], 10 * np.log10(ms[0]), atol=1e-3)
    np.testing.assert_allclose(got["out_rms_db"], 10 * np.log10(ms[1]), atol=1e-3)
    assert not got["in_clip"]


def test_nan_and_inf_input_samples_count_as_silence_in_the_meters_and_only_finite_full_scale_ones_as_clips():
    from rtconv.live import Monitor

    mon = Monitor(RATE, 2)
    x = np.full((128, 2), 0.1, np.float32)
    x[3, 0], x[4, 1], x[5, 1] = np.nan, np.inf, 1.0
    mon.update(x, np.zeros_like(x), 0, 1e-4)
    m = mon.meters()
    assert all(np.isfinite(v) for key in ("in_peak_db", "in_rms_db") for v in m[key])
    assert m["in_peak_db"][1] == pytest.approx(0.0) and m["in_peak_db"][0] == pytest.approx(-20.0, abs=1e-4)
    assert m["in_clip"] and int(mon._clips[0]) == 1  # the 1.0; the inf is silence, not a clip
    x[5, 1] = 0.1
    mon.update(x, np.zeros_like(x), 0, 1e-4)
    assert not mon.meters()["in_clip"]  # an Inf alone does not clip
    mon.update(np.full((128, 2), 0.1, np.float32), np.zeros((128, 2), np.float32), 0, 1e-4)
    assert all(np.isfinite(v) for v in mon.meters()["in_rms_db"])  # no NaN left behind in the state


@pytest.mark.parametrize("name", ["vad"])
def test_a_detector_is_refused_as_the_model_a_stream_plays_and_a_swap_keeps_the_playing_one(name):
    with pytest.raises(ConfigError, match=r"is a 'vad' model whose output is a probability, not sound, and the live "
                                          r"stream would play it; run a denoiser or filter"):
        LiveProcessor(name, realtime_check=False)
    p = LiveProcessor("speech-band", realtime_check=False)
    with pytest.raises(RtconvError, match="not swapped in, the running one keeps playing: .* not sound"):
        p.request_swap(name)
    gated = LiveProcessor("denoiser", realtime_check=False, vad=name)  # keying the gate is what a VAD is for
    assert gated.speech is not None


def test_a_swap_from_a_denoiser_to_a_filter_carries_no_unset_strength_to_refuse():
    p = LiveProcessor("denoiser", realtime_check=False)
    assert p.switches == {"attenuation_limit_db": None, "linked": False}
    p.request_swap("speech-band", p.switches)  # what --watch does when the file becomes another kind of model
    with pytest.raises(RtconvError, match="has no attenuation limit"):  # a limit the user set still cannot apply
        p.request_swap("speech-band", {"attenuation_limit_db": 12.0})
