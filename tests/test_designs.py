"""Fixed filter designs: the responses they promise, and clear refusals."""

import numpy as np
import pytest
from scipy import signal

from rtconv import ConfigError, Streamer, designs


def gain_db(model, freq, rate):
    _, h = signal.freqz(model.kernel.astype(np.float64), worN=[freq], fs=rate)
    return 20 * np.log10(np.abs(h[0]) + 1e-300)


@pytest.mark.parametrize("rate", [16000, 32000, 48000])
def test_lowpass_passes_below_and_stops_above_its_cutoff(rate):
    lp = designs.lowpass(2000, taps=101, sample_rate=rate)
    assert abs(gain_db(lp, 200, rate)) < 0.1
    assert abs(gain_db(lp, 2000, rate) + 6.02) < 0.5  # firwin's cutoff is the -6 dB point
    assert gain_db(lp, 5000, rate) < -40
    assert lp.sample_rate == rate and lp.metadata["design"]["kind"] == "lowpass"


def test_highpass_and_bandpass_shapes():
    hp = designs.highpass(1000, taps=101, sample_rate=48000)
    assert gain_db(hp, 50, 48000) < -40 and abs(gain_db(hp, 5000, 48000)) < 0.1
    bp = designs.bandpass(1000, 4000, taps=201, sample_rate=48000)
    assert abs(gain_db(bp, 2000, 48000)) < 0.2
    assert gain_db(bp, 100, 48000) < -40 and gain_db(bp, 12000, 48000) < -40


def test_designs_equal_scipy_firwin_taps_in_impulse_response_order():
    lp = designs.lowpass(3000, taps=31, sample_rate=16000)
    np.testing.assert_allclose(lp.kernel, signal.firwin(31, 3000, fs=16000), atol=1e-7)


def test_moving_average_and_edge_kernels():
    np.testing.assert_allclose(designs.moving_average(4).kernel, [0.25] * 4)
    np.testing.assert_array_equal(designs.edge().kernel, [1, 0, -1])


def test_a_design_streams_like_any_model_and_an_impulse_returns_its_kernel():
    lp = designs.lowpass(4000, taps=63, sample_rate=48000)
    x = np.zeros((100, 1), np.float32)
    x[0] = 1
    stream = Streamer(lp)
    y = np.concatenate([stream.process(x[i : i + 7]) for i in range(0, 100, 7)])
    np.testing.assert_allclose(y[:63, 0], lp.kernel, atol=1e-7)
    np.testing.assert_allclose(y[63:, 0], 0, atol=1e-7)


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("lowpass", {"cutoff": 30000, "sample_rate": 48000}, r"cutoff must lie strictly between 0 and the Nyquist frequency 24000 Hz at 48000 Hz, got 30000"),
        ("lowpass", {"cutoff": -5, "sample_rate": 48000}, r"got -5"),
        ("highpass", {"cutoff": 1000, "taps": 100}, r"odd number of taps .* got 100; use 101"),
        ("bandpass", {"low": 4000, "high": 1000}, r"low cutoff \(4000 Hz\) must be below the high cutoff \(1000 Hz\)"),
        ("lowpass", {"cutoff": 1000, "sample_rate": 0}, r"sample_rate must be a positive integer in Hz, got 0"),
        ("moving-average", {"taps": 0}, r"taps must be a positive integer, got 0"),
        ("notch", {}, r"unknown filter 'notch'; choose one of moving-average, edge, lowpass, highpass, bandpass"),
    ],
)
def test_impossible_designs_are_refused_with_the_value_and_the_limit(kind, params, message):
    with pytest.raises(ConfigError, match=message):
        designs.design(kind, **params)
