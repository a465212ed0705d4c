"""Behaviour of rtconv.metrics: SNR, SI-SDR, improvements and buckets."""

import numpy as np
import pytest

from rtconv import metrics


@pytest.mark.parametrize("n", [1, 3, 256, 4096])
def test_snr_of_reference_plus_known_noise_matches_the_power_ratio(n):
    rng = np.random.default_rng(n)
    s = rng.standard_normal(n) + 0.1
    noise = 0.1 * rng.standard_normal(n) + 1e-3
    expect = 10 * np.log10(np.sum(s**2) / np.sum(noise**2))
    assert metrics.snr_db(s, s + noise) == pytest.approx(expect, rel=1e-9)


def test_si_sdr_ignores_a_gain_change_but_snr_does_not():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(1000)
    y = s + 0.05 * rng.standard_normal(1000)
    assert metrics.si_sdr_db(s, 3.0 * y) == pytest.approx(metrics.si_sdr_db(s, y), abs=1e-9)
    assert metrics.snr_db(s, 3.0 * y) < metrics.snr_db(s, y) - 5


def test_si_sdr_of_a_ten_percent_orthogonal_error_is_twenty_db():
    t = np.arange(4800)
    s = np.sin(2 * np.pi * t / 48)
    e = np.cos(2 * np.pi * t / 48)  # orthogonal over whole periods
    assert metrics.si_sdr_db(s, s + 0.1 * e) == pytest.approx(20.0, abs=1e-6)


def test_metrics_work_per_row_on_batches():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((4, 2, 64))
    y = s + 0.1 * rng.standard_normal((4, 2, 64))
    out = metrics.snr_db(s, y)
    assert out.shape == (4, 2)
    assert out[2, 1] == pytest.approx(metrics.snr_db(s[2, 1], y[2, 1]))


def test_perfect_estimate_and_silence_stay_finite():
    s = np.ones(8)
    assert np.isfinite(metrics.snr_db(s, s)) and metrics.snr_db(s, s) > 200
    assert np.isfinite(metrics.si_sdr_db(np.zeros(8), np.zeros(8)))


def test_improvements_are_output_minus_input():
    rng = np.random.default_rng(2)
    s = rng.standard_normal(500)
    x = s + rng.standard_normal(500)
    y = s + 0.1 * rng.standard_normal(500)
    assert metrics.snr_improvement_db(s, x, y) == pytest.approx(
        metrics.snr_db(s, y) - metrics.snr_db(s, x))
    assert metrics.si_sdr_improvement_db(s, x, y) == pytest.approx(
        metrics.si_sdr_db(s, y) - metrics.si_sdr_db(s, x))


def test_buckets_group_examples_by_input_snr_and_end_with_all():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((6, 2000))
    scales = np.array([3.0, 2.0, 0.5, 0.4, 0.05, 0.04])[:, None]  # ~-10, -6, 6, 8, 26, 28 dB
    x = s + scales * rng.standard_normal((6, 2000))
    y = s + 0.5 * scales * rng.standard_normal((6, 2000))
    rows = metrics.bucket_improvements(s, x, y)
    assert [r["bucket"] for r in rows] == ["< 0 dB", "5..10 dB", ">= 15 dB", "all"]
    assert [r["count"] for r in rows] == [2, 2, 2, 6]
    assert rows[0]["low_db"] is None and rows[-2]["high_db"] is None
    for r in rows:
        assert r["snr_improvement_db"] == pytest.approx(6.0, abs=0.6)


def test_mismatched_shapes_are_refused_with_both_shapes_named():
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
        metrics.snr_db(np.ones(3), np.ones(4))


def test_empty_signals_are_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        metrics.si_sdr_db(np.ones((2, 0)), np.ones((2, 0)))


def test_bucket_edges_must_increase():
    s = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"increase strictly, got \[5, 0\]"):
        metrics.bucket_improvements(s, s, s, edges=[5, 0])
