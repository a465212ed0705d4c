"""Convolution semantics against NumPy, SciPy and PyTorch."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rtconv import ConfigError
from rtconv.layers import MimoConv1d
from rtconv import semantics as sem

X, H = [1, 2, 3, 4], [1, 2, 3]


@pytest.mark.parametrize(
    "mode, expected",
    [("full", [1, 4, 10, 16, 17, 12]), ("valid", [10, 16]), ("same", [4, 10, 16, 17])],
)
def test_course_example_matches_in_every_mode(mode, expected):
    np.testing.assert_array_equal(sem.convolve(X, H, mode), expected)
    assert sem.mode_length(4, 3, mode) == len(expected)


vectors = st.lists(st.integers(-5, 5), min_size=1, max_size=12)


@given(vectors, vectors, st.sampled_from(sem.MODES))
def test_convolve_and_correlate_equal_numpy(x, h, mode):
    np.testing.assert_allclose(sem.convolve(x, h, mode), np.convolve(x, h, mode))
    np.testing.assert_allclose(sem.correlate(x, h, mode), np.correlate(x, h, mode))
    assert len(sem.convolve(x, h, mode)) == sem.mode_length(len(x), len(h), mode)


def test_correlation_is_convolution_with_the_kernel_flipped():
    x, h = np.random.default_rng(0).normal(size=(2, 9))
    h = h[:4]
    np.testing.assert_allclose(sem.correlate(x, h, "valid"), sem.convolve(x, h[::-1], "valid"))
    # and scipy's lfilter is convolution (causal, first len(x) samples of full)
    np.testing.assert_allclose(scipy.signal.lfilter(h, [1.0], x), sem.convolve(x, h)[: x.size])


@settings(max_examples=60)
@given(
    st.integers(1, 30), st.integers(1, 6), st.integers(0, 4), st.integers(1, 4), st.integers(1, 3),
    st.integers(0, 2**31 - 1),
)
def test_conv1d_and_output_length_formula_equal_torch(n, k, pad, stride, dil, seed):
    rng = np.random.default_rng(seed)
    x, h = rng.normal(size=n), rng.normal(size=k)
    length = sem.output_length(n, k, pad, stride, dil)
    if length == 0:
        return
    expected = F.conv1d(
        torch.tensor(x)[None, None], torch.tensor(h)[None, None], padding=pad, stride=stride, dilation=dil
    )[0, 0].numpy()
    assert length == expected.size == (n + 2 * pad - dil * (k - 1) - 1) // stride + 1
    np.testing.assert_allclose(sem.conv1d(x, h, pad, stride, dil), expected, atol=1e-12)


@settings(max_examples=60)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3))
def test_transposed_convolution_upsamples_like_torch(n, k, stride, pad, dil):
    out_pad = 0
    if sem.transposed_output_length(n, k, pad, stride, dil, out_pad) <= 0:
        return
    rng = np.random.default_rng(n * 100 + k)
    x, h = rng.normal(size=n), rng.normal(size=k)
    expected = F.conv_transpose1d(
        torch.tensor(x)[None, None], torch.tensor(h)[None, None], stride=stride, padding=pad, dilation=dil
    )[0, 0].numpy()
    got = sem.conv_transpose1d(x, h, stride, pad, dil)
    assert got.size == sem.transposed_output_length(n, k, pad, stride, dil) == expected.size
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("fin, fout, k, bias", [(1, 1, 3, False), (1, 5, 40, True), (5, 1, 40, True), (3, 4, 7, True)])
def test_parameter_count_is_in_times_out_times_taps_plus_one_bias_per_output(fin, fout, k, bias):
    layer = MimoConv1d(fin, fout, k, bias=bias)
    n = sum(p.numel() for p in layer.parameters())
    assert n == sem.parameter_count(fin, fout, k, bias) == fin * fout * k + (fout if bias else 0)


def test_unknown_mode_is_refused_with_the_allowed_modes():
    with pytest.raises(ConfigError, match=r"mode must be one of \('full', 'valid', 'same'\), got 'circular'"):
        sem.convolve(X, H, "circular")
