"""The streaming resamplers: rtconv's minimum-phase one (live's default) and soxr's, through one interface."""

from __future__ import annotations

import numpy as np
import pytest

from rtconv.errors import ConfigError
from rtconv.resample import QUALITIES, RateBridge, Resampler

PAIRS = [(48000, 16000), (16000, 48000), (44100, 48000), (48000, 44100), (48000, 32000)]


def _tone(freq, rate, seconds=1.0):
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate).astype(np.float32)[:, None]


def _level_db(y):
    return 20 * np.log10(np.sqrt(2) * y.std() + 1e-12)


@pytest.mark.parametrize("rates", PAIRS)
def test_the_minimum_phase_resampler_gives_the_same_samples_at_any_chunk_sizes_and_withholds_nothing(rates):
    a, b = rates
    rng = np.random.default_rng(1)
    x = rng.normal(size=(a // 3, 2)).astype(np.float32)
    r = Resampler(a, b, 2, "LL")
    whole = r(x)
    assert whole.shape == (int(np.ceil(len(x) * b / a)), 2)  # every output whose input time is in
    r.reset()
    parts, i = [], 0
    for n in rng.integers(0, 200, size=len(x)):  # 0-frame chunks included
        parts.append(r(x[i:i + n]))
        i += n
        if i >= len(x):
            break
    assert np.array_equal(np.concatenate(parts), whole)
    assert r.flush().shape == (0, 2)
    # the channels are independent
    np.testing.assert_allclose(Resampler(a, b, 1, "LL")(x[:, 1:]), whole[:, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rates", PAIRS)
def test_the_minimum_phase_resampler_is_flat_to_90_percent_of_nyquist_and_75_db_down_beyond(rates):
    a, b = rates
    r = Resampler(a, b, 1, "LL")
    nyquist = min(a, b) / 2
    for f in (200.0, 1000.0, 0.5 * nyquist, 0.9 * nyquist):
        r.reset()
        assert abs(_level_db(r(_tone(f, a))[b // 4:])) < 0.05, f
    if b < a:  # what the lower rate cannot hold must not fold back into it
        for f in {1.02 * nyquist, min(1.2 * nyquist, 0.98 * a / 2), min(1.8 * nyquist, 0.98 * a / 2)}:
            r.reset()
            assert _level_db(r(_tone(f, a))[b // 4:]) < -75, f
    else:  # the images above the input's Nyquist frequency are removed
        f = max(0.9 * nyquist, a - 0.96 * b / 2)  # its image a - f inside the output's band
        r.reset()
        y = r(_tone(f, a))[b // 4:, 0]
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)))) / (len(y) / 4)  # a unit tone: 1
        freqs = np.fft.rfftfreq(len(y), 1 / b)
        assert 20 * np.log10(spectrum[np.abs(freqs - (a - f)) < 50].max()) < -75


@pytest.mark.parametrize("rates", PAIRS)
def test_the_minimum_phase_resamplers_delay_is_its_measured_group_delay_at_1_khz_a_few_samples(rates):
    a, b = rates
    r = Resampler(a, b, 1, "LL")
    assert 0.5 < r.delay < 8  # output frames; a linear-phase filter of its selectivity: about 50-160
    f = 1000.0
    y = r(_tone(f, a))[b // 4:, 0]
    t = (np.arange(len(y)) + b // 4) / b
    # the output is the tone delayed by tau: fit sin(w(t - tau)) = cos(w tau) sin(wt) - sin(w tau) cos(wt)
    c, s = np.linalg.lstsq(np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1), y, rcond=None)[0]
    tau = np.arctan2(-s, c) / (2 * np.pi * f) * b
    assert abs(tau - r.delay) < 0.15  # (the tone's phase delay; the group delay is a little longer)


@pytest.mark.parametrize("device_rate", [16000, 44100])
def test_a_rate_bridge_with_the_default_resampler_adds_under_half_a_millisecond_and_counts_it(device_rate):
    ll = RateBridge(device_rate, 48000, 1, 128)
    lq = RateBridge(device_rate, 48000, 1, 128, "LQ")
    assert ll.quality == "LL" and 0 < ll.latency / device_rate < 0.5e-3
    assert lq.latency / device_rate > 0.01  # soxr: filter delay withheld and released in chunks
    # and the reported latency is where a speech-band tone's cycles come out (identity model)
    x = _tone(440.0, device_rate, 0.5)
    out = np.zeros((128, 1), np.float32)
    y = []
    for i in range(0, len(x) - 127, 128):
        ll.process(x[i:i + 128], lambda m: m, out)
        y.append(out.copy())
    y = np.concatenate(y)[:, 0]
    d = ll.latency
    err = y[2000 + d:] - x[2000:len(y) - d, 0]
    assert np.sqrt(np.mean(err ** 2)) < 0.05 and ll.underruns == 0


def test_an_unknown_quality_is_refused_with_the_choices():
    assert QUALITIES[0] == "LL"
    with pytest.raises(ConfigError, match=r"resampler quality must be one of LL, QQ, LQ, MQ, HQ, VHQ, got 'lq'"):
        Resampler(48000, 16000, 1, "lq")


def test_rates_whose_ratio_needs_too_many_phases_fall_back_to_soxr_and_say_so():
    r = Resampler(47999, 48000, 1, "LL")
    assert r.quality == "LQ" and r.delay == 0.0
    assert Resampler(44100, 48000, 1, "LL").quality == "LL"
    b = RateBridge(47999, 48000, 1, 128)
    assert b.quality == "LQ" and b.latency > 100  # soxr's withheld delay, counted
