"""Strided encoder, overlap-add decoder and mask layers: exact streaming at any block size."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from _streams import kinds, stream_in_sizes
from rtconv import ConfigError, Streamer
from rtconv.denoiser import dft_filterbank
from rtconv.framed import Framed, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d
from rtconv.layers import Activation, MimoConv1d, Residual, receptive_field
from rtconv.models import Model


class _Net(Model):
    arch = "_test_framed"

    def __init__(self, enc_taps, dec_taps, stride, width=6, rowmajor=True, floor=0.0, bias=True, deep_filter=None,
                 phase_bins=0):
        super().__init__()
        seq = FrameNet if rowmajor else nn.Sequential
        extra = 0 if deep_filter is None else 2 * deep_filter[0] * deep_filter[1]
        est = seq(
            PairPower(phase_bins=phase_bins),
            MimoConv1d(width // 2 + 2 * phase_bins, 5, 2),
            Activation("tanh"),
            Residual(nn.Sequential(MimoConv1d(5, 5, 3, 2), Activation("leaky_relu"), MimoConv1d(5, 5, 1))),
            MimoConv1d(5, width // 2 + extra, 1),
            Activation("sigmoid"),
        )
        gate = MaskGate(est, floor=floor, deep_filter=deep_filter)
        # a mask gate or frame net as the body runs row-major; wrapped, the generic column cells
        self.body = nn.Sequential(Framed(
            StridedConv1d(1, width, enc_taps, stride, bias=bias),
            gate if rowmajor else nn.Sequential(gate),
            TransposedConv1d(width, 1, dec_taps, stride),
        ))
        self.layout = "framed:rows" if rowmajor else "framed:columns"


def _offline(model, x):
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    with torch.no_grad():
        y = model.to(tdt)(torch.from_numpy(np.ascontiguousarray(x.T))[:, None].to(tdt))
    return y[:, 0].numpy().T


def _assert_exact(model, x, sizes):
    ref = _offline(model, x)
    got, s = stream_in_sizes(model, x, sizes)
    assert model.layout in kinds(s)
    assert s.latency == model.latency
    assert np.all(got[: s.latency] == 0), "nothing may come out before the signal starts"
    got = got[s.latency :]
    assert got.shape == ref.shape
    if ref.size == 0:  # an empty signal: nothing owed, nothing emitted
        return
    tol = 1e-5 if x.dtype == np.float32 else 1e-11
    assert np.abs(got - ref).max() <= tol * max(np.abs(ref).max(), 1e-12)


@pytest.mark.parametrize("sizes", [[1], [3], [7], [128], [4096], [5, 1, 13, 0, 2, 96]])
@pytest.mark.parametrize("enc_taps,dec_taps,stride", [(12, 8, 4), (8, 8, 4), (3, 5, 4), (4, 4, 4), (5, 2, 3), (1, 1, 1)])
def test_framed_layers_stream_exactly_at_awkward_block_sizes(sizes, enc_taps, dec_taps, stride):
    torch.manual_seed(enc_taps * 7 + dec_taps)
    model = _Net(enc_taps, dec_taps, stride)
    x = np.random.default_rng(stride).normal(size=(301, 1)).astype(np.float32)
    _assert_exact(model, x, sizes)


@pytest.mark.parametrize("rowmajor", [True, False])
@pytest.mark.parametrize("sizes", [[128], [7, 1000, 3]])
def test_the_output_buffer_wraps_around_without_a_seam(rowmajor, sizes):
    # the overlap-add buffer holds 4096 samples and moves its pending tail to the front when full:
    # 10000 samples wrap it twice, at block boundaries that fall anywhere in the hop
    torch.manual_seed(3)
    model = _Net(12, 8, 4, rowmajor=rowmajor)
    x = np.random.default_rng(5).normal(size=(10000, 1))
    _assert_exact(model.double(), x, sizes)


@pytest.mark.parametrize("rowmajor", [True, False])
@pytest.mark.parametrize("channels", [1, 2])
def test_row_major_and_generic_cells_agree_with_offline_per_channel_in_float64(rowmajor, channels):
    torch.manual_seed(1)
    model = _Net(10, 10, 5, rowmajor=rowmajor, floor=0.2).double()
    x = np.random.default_rng(2).normal(size=(257, channels))
    _assert_exact(model, x, [7, 1, 30])


@pytest.mark.parametrize("rowmajor", [True, False])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("deep_filter, floor", [((1, 1, 1), 0.0), ((4, 3, 2), 0.3), ((2, 5, 1), 0.0)])
def test_a_deep_filter_streams_exactly_in_float64_carrying_its_past_frames(rowmajor, channels, deep_filter, floor):
    torch.manual_seed(3)
    model = _Net(10, 10, 5, width=10, rowmajor=rowmajor, floor=floor, deep_filter=deep_filter,
                 phase_bins=deep_filter[0]).double()
    x = np.random.default_rng(4).normal(size=(400, channels))
    _assert_exact(model, x, [7, 1, 30, 0, 3, 200])


@pytest.mark.parametrize("channels", [1, 2])
def test_a_model_that_is_one_framed_layer_streams_on_numpy_alone_with_the_same_output_bit_for_bit(channels):
    torch.manual_seed(9)
    model = _Net(12, 12, 4, deep_filter=(2, 3, 1), phase_bins=2)
    wrapped = _Net(12, 12, 4, deep_filter=(2, 3, 1), phase_bins=2)
    wrapped.load_state_dict(model.state_dict())
    wrapped.body.append(Activation("identity"))  # a second layer: the stream passes torch tensors between cells
    x = np.random.default_rng(4).standard_normal((700, channels)).astype(np.float32)
    a, b = Streamer(model, channels=channels), Streamer(wrapped, channels=channels)
    assert (a.path, b.path) == ("numpy", "torch")
    for sizes in ([1, 7, 128, 3], [128], [700]):
        ya = np.concatenate([a.process(x[i : i + n]) for i, n in _blocks(len(x), sizes)] + [a.flush()])
        yb = np.concatenate([b.process(x[i : i + n]) for i, n in _blocks(len(x), sizes)] + [b.flush()])
        np.testing.assert_array_equal(ya, yb)  # and every block a fresh array: none was overwritten by the next
        assert ya.shape == (700 + a.latency, channels)


def _blocks(total, sizes):
    i, k = 0, 0
    while i < total:
        n = min(sizes[k % len(sizes)], total - i)
        yield i, n
        i, k = i + n, k + 1


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_tap_views_are_the_taps_every_frame_reads(dtype):
    from rtconv.cells.rows import TapIndex

    rng = np.random.default_rng(0)
    buf = (rng.normal(size=(40, 2, 6)) + (1j * rng.normal(size=(40, 2, 6)) if dtype == np.complex64 else 0)).astype(dtype)
    for taps, d in ((3, 1), (3, 8), (1, 4), (5, 2)):
        ix = TapIndex(taps, d)
        for end, m in ((40, 1), (40, 3), (25, 2), (ix.reach + 4, 4)):
            want = np.stack([np.stack([buf[end - m + i - (taps - 1 - k) * d] for k in range(taps)]) for i in range(m)])
            got = ix.view(buf, end, m)
            assert got.shape == (m, taps, 2, 6) and np.array_equal(got, want) and np.shares_memory(got, buf)
            assert np.array_equal(got[-1], buf[ix.one(end)])
        with pytest.raises(IndexError, match="outside"):
            ix.view(buf, ix.reach + 1, 2)  # the first frame's oldest tap would be row -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_products_equal_the_matrix_product_for_any_row_count(dtype):
    from rtconv.cells.rows import row_product

    rng = np.random.default_rng(1)
    w = rng.normal(size=(12, 5)).astype(dtype)
    for R in range(0, 7):
        a = rng.normal(size=(R, 24)).astype(dtype)[:, ::2]  # a strided view, as the taps' reshape can be
        got = row_product(a, w)
        assert got.shape == (R, 5) and got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_allclose(got, a @ w, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
        got += 1.0  # the result is the caller's to modify in place (biases are added so)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_bias_adds_the_bias_to_every_row_whatever_the_row_count(dtype):
    from rtconv.cells.rows import RowBias

    rng = np.random.default_rng(2)
    b = rng.normal(size=7).astype(dtype)
    bias = RowBias(b)
    for R in (0, 1, 2, 3, RowBias.ROWS, RowBias.ROWS + 1, 50):  # tiled up to ROWS rows, broadcast beyond
        y = rng.normal(size=(R, 7)).astype(dtype)
        want = y + b[None, :]
        got = bias.add(y)
        assert got is y and got.dtype == dtype  # in place
        np.testing.assert_array_equal(got, want)
    want = b.copy()
    b[:] = 0  # the bias as it was made, at every row count: a streamer's weights are frozen copies
    for R in (2, 50):
        np.testing.assert_array_equal(bias.add(np.zeros((R, 7), dtype)), np.tile(want, (R, 1)))


def test_a_deep_filter_reaches_back_order_times_dilation_frames_and_no_further():
    torch.manual_seed(5)
    model = _Net(10, 10, 5, width=10, deep_filter=(4, 3, 2)).double()
    gate = model.body[0].body
    x = torch.randn(1, 10, 40, dtype=torch.float64)
    # the estimator's view of frame 30 is held fixed; only the frames the filter taps differ
    assert gate.filter_span == 4 and gate.receptive_field == receptive_field(gate.estimator) + 4

    class Fixed(nn.Module):
        def forward(self, z):
            return est

    with torch.no_grad():
        est = gate.estimator(x)
        gate.estimator = Fixed()
        y = gate(x)
        for back, moves in ((0, True), (2, True), (4, True), (1, False), (3, False), (5, False), (6, False)):
            x2 = x.clone()
            x2[:, [1, 2, 3, 4, 6, 7, 8, 9], 30 - back] += 1.0  # bins 1..4, both parts
            assert bool((gate(x2)[:, :, 30] != y[:, :, 30]).any()) == moves, back


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 24), st.integers(1, 24), st.integers(1, 12), st.integers(0, 400),
    st.lists(st.integers(0, 200), min_size=1, max_size=5).filter(lambda p: sum(p) > 0),
    st.booleans(), st.integers(0, 2**16),
)
def test_random_framed_models_stream_exactly(enc_taps, dec_taps, stride, length, sizes, rowmajor, seed):
    torch.manual_seed(seed)
    deep_filter = [None, (1, 2, 1), (2, 3, 2)][seed % 3]
    model = _Net(enc_taps, dec_taps, stride, rowmajor=rowmajor, deep_filter=deep_filter, phase_bins=seed % 3)
    x = np.random.default_rng(seed).normal(size=(length, 1)).astype(np.float32)
    _assert_exact(model, x, sizes)


@pytest.mark.parametrize("dec_taps", [1, 8, 192])
def test_latency_is_the_synthesis_window_minus_one(dec_taps):
    model = _Net(8, dec_taps, 4)
    assert model.latency == dec_taps - 1 == model.body[0].latency


@pytest.mark.parametrize("length", [0, 1, 95, 96, 97, 1000])
def test_encoder_makes_one_frame_per_completed_hop_and_decoder_returns_whole_hops(length):
    enc, dec = StridedConv1d(1, 4, 192, 96), TransposedConv1d(4, 1, 192, 96)
    z = enc(torch.randn(2, 1, length))
    assert z.shape == (2, 4, length // 96)
    assert dec(torch.randn(2, 4, 3)).shape == (2, 1, 288)


@pytest.mark.parametrize("window", [8, 64, 192])
def test_dft_filterbank_reconstructs_the_input_through_a_unit_mask(window):
    a, s = dft_filterbank(window)
    enc, dec = StridedConv1d(1, window, window, window // 2), TransposedConv1d(window, 1, window, window // 2)
    with torch.no_grad():
        enc.weight.copy_(torch.from_numpy(a))
        dec.weight.copy_(torch.from_numpy(s))
    layer = Framed(enc, nn.Identity(), dec).double()
    x = torch.randn(1, 1, 1000, dtype=torch.float64)
    y = layer(x)
    assert torch.allclose(y, x, atol=1e-6)  # float32 weights


def test_changing_the_mask_floor_takes_effect_in_a_running_stream():
    torch.manual_seed(3)
    model = _Net(8, 8, 4)
    gate = model.body[0].body
    assert isinstance(gate, MaskGate)
    x = np.random.default_rng(4).normal(size=(400, 1)).astype(np.float32)
    running, unchanged = Streamer(model), Streamer(model)
    running.process(x)
    unchanged.process(x)
    gate.floor = 1.0  # a unit mask: the output becomes the bare filterbank
    after = running.process(x)
    rebuilt = Streamer(model)
    rebuilt.process(x)
    L = model.latency  # the overlap-add tail pending at the switch still holds old gains
    np.testing.assert_allclose(after[L:], rebuilt.process(x)[L:], rtol=1e-5, atol=1e-6)
    gate.floor = 0.0
    assert not np.allclose(after[L:], unchanged.process(x)[L:], atol=1e-3)


def test_stride_mismatch_is_refused_with_both_values():
    with pytest.raises(ConfigError, match=r"encoder stride 4 and decoder stride 5 differ"):
        Framed(StridedConv1d(1, 4, 8, 4), nn.Identity(), TransposedConv1d(4, 1, 8, 5))


def test_framed_needs_an_encoder_and_a_decoder():
    with pytest.raises(ConfigError, match=r"StridedConv1d encoder and a TransposedConv1d decoder, got MimoConv1d"):
        Framed(MimoConv1d(1, 4, 8), nn.Identity(), TransposedConv1d(4, 1, 8, 4))


def test_a_strided_layer_alone_cannot_stream_and_says_why():
    class Bare(Model):
        arch = "_test_bare"

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(StridedConv1d(1, 1, 4, 2))

    with pytest.raises(ConfigError, match=r"StridedConv1d changes the rate .* only inside a Framed"):
        Streamer(Bare())


def test_a_non_causal_frame_body_is_refused():
    class Centred(Model):
        arch = "_test_centred"

        def __init__(self):
            super().__init__()
            body = nn.Sequential(MimoConv1d(4, 4, 5, padding="same"))
            self.body = nn.Sequential(Framed(StridedConv1d(1, 4, 8, 4), body, TransposedConv1d(4, 1, 8, 4)))

    with pytest.raises(ConfigError, match=r"must be causal, but it has 2 frames of latency"):
        Streamer(Centred())


@pytest.mark.parametrize("floor", [-0.1, 1.5, float("nan")])
def test_a_mask_floor_outside_0_1_is_refused(floor):
    with pytest.raises(ConfigError, match=r"mask floor must be a gain in \[0, 1\]"):
        MaskGate(nn.Identity(), floor=floor)


def test_a_framed_layer_reports_its_own_latency_and_the_receptive_field_of_its_frames():
    # frames seen by the estimator: 1 + 1 (2 taps) + 4 (3 taps, dilation 2) = 6, each a 12-sample window 4 apart
    model = _Net(12, 8, 4)
    assert model.receptive_field == 12 + (6 - 1) * 4 == model.body[0].receptive_field
    framed = next(p for p in Streamer(model).plan if p.layer == "Framed")
    assert (framed.path, framed.latency, framed.receptive_field) == ("body.0", 7, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pairs=False, deep_filter=(2, 3, 1)), r"deep filtering needs a mask over channel pairs \(pairs=True\)"),
    (dict(deep_filter=(2, 3)), r"deep_filter is \(bins, order, dilation\), got \(2, 3\)"),
    (dict(deep_filter=(2, 0, 1)), r"deep_filter order must be an integer >= 1, got 0"),
])
def test_a_mask_gate_refuses_a_bad_deep_filter_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MaskGate(nn.Identity(), **kwargs)


def test_pair_power_refuses_a_negative_phase_bins_in_one_sentence():
    with pytest.raises(ConfigError, match="phase_bins must be an integer >= 0, got -1"):
        PairPower(phase_bins=-1)
