"""The mixer alone, without a model or a stream: dry delay, ramps, crossfade, limiter."""

from __future__ import annotations

import numpy as np
import pytest

from rtconv.live import Mixer

RATE = 48000


def _blocks(n, block):
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


@pytest.mark.parametrize("block", [1, 7, 128, 1000])
@pytest.mark.parametrize("delay", [0, 5, 191])
def test_the_dry_path_is_the_input_delayed_at_any_block_size(block, delay):
    x = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32)
    m = Mixer(RATE, 2)
    out = np.zeros_like(x)
    for sl in _blocks(len(x), block):
        m.push_dry(x[sl])
        m.dry(delay, out[sl])
    np.testing.assert_array_equal(out, np.r_[np.zeros((delay, 2), np.float32), x[: len(x) - delay]])


def test_controls_ramp_across_one_block_from_the_last_applied_value():
    m = Mixer(RATE, 1)
    wet, dry = np.ones((100, 1), np.float32), np.zeros((100, 1), np.float32)
    out = np.zeros_like(wet)
    m.wet = 0.0
    m.mix(wet, dry, out)
    np.testing.assert_allclose(out[:, 0], 1 - np.arange(1, 101) / 100, atol=1e-6)  # 1 -> 0, no jump
    m.mix(wet, dry, out)
    assert np.all(out == 0)
    m.wet, m.gain_db = 1.0, -6.0
    m.mix(wet, dry, out)
    m.mix(wet, dry, out)
    np.testing.assert_allclose(out, 10 ** (-6 / 20), rtol=1e-6)
    m.bypass = True
    m.mix(wet, dry, out)
    m.mix(wet, dry, out)
    assert np.all(out == 0)  # bypass is the dry signal, gain not applied


def test_a_crossfade_goes_from_old_to_new_over_its_length_at_any_block_split():
    m = Mixer(RATE, 1, crossfade_ms=10)
    n = m.fade_frames
    assert n == 480
    old, new = np.zeros((2 * n, 1), np.float32), np.ones((2 * n, 1), np.float32)
    got, done = [], 0
    for sl in _blocks(2 * n, 100):
        blk = new[sl].copy()
        done = m.crossfade(old[sl], blk, done)
        got.append(blk)
    y = np.concatenate(got)[:, 0]
    np.testing.assert_allclose(y[:n], np.arange(1, n + 1) / n, atol=1e-6)
    assert np.all(y[n:] == 1) and done == 2 * n


def test_the_limiter_holds_the_ceiling_and_counts_the_frames_it_turned_down():
    m = Mixer(RATE, 2)
    y = np.full((256, 2), 2.0, np.float32)
    limited = m.limit(y)
    assert limited == 256 and np.abs(y).max() <= 10 ** (-1 / 20) + 1e-6
    m.limiter = False
    z = np.full((16, 2), 2.0, np.float32)
    assert m.limit(z) == 0 and np.all(z == 2.0)


def test_steady_controls_give_exactly_dry_in_bypass_exactly_wet_at_full_mix_and_the_ramps_arithmetic_otherwise():
    rng = np.random.default_rng(3)
    wet, dry = (rng.standard_normal((128, 2)) * 0.3).astype(np.float32), (rng.standard_normal((128, 2)) * 0.3).astype(np.float32)
    m, out = Mixer(RATE, 2), np.zeros((128, 2), np.float32)
    m.mix(wet, dry, out)
    np.testing.assert_array_equal(out, wet)  # the defaults: the model's output, bit for bit
    m.wet, m.gain_db = 0.3, -4.0
    m.mix(wet, dry, out)  # the ramp's block
    m.mix(wet, dry, out)
    mix, gain = np.float32(0.3), np.float32(10 ** (-4 / 20))
    np.testing.assert_array_equal(out, (dry + mix * (wet - dry)) * gain)
    m.bypass = True
    m.mix(wet, dry, out)
    m.mix(wet, dry, out)
    np.testing.assert_array_equal(out, dry)
    m.bypass, m.wet, m.gain_db = False, 1.0, 0.0
    m.mix(wet, dry, out)  # ramps out of bypass: neither dry nor wet yet
    assert not np.array_equal(out, wet) and not np.array_equal(out, dry)
    m.mix(wet, dry, out)
    np.testing.assert_array_equal(out, wet)


def test_the_limiter_leaves_a_block_under_its_ceiling_alone_but_still_recovers_after_one_over_it():
    m = Mixer(RATE, 1)
    quiet = np.full((64, 1), 0.5, np.float32)
    assert m.limit(quiet) == 0 and np.all(quiet == 0.5)
    assert m.limit(np.full((64, 1), 2.0, np.float32)) == 64
    after = np.full((64, 1), 0.5, np.float32)  # under the ceiling, but the gain is still coming back
    assert m.limit(after) == 0 and after[0, 0] < 0.5 and np.all(np.diff(after[:, 0]) >= 0)
