"""Streamer: block-by-block output equals offline output, at any block size."""

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _streams import kinds, stream_in_sizes
from rtconv import FIR, BlockError, ConfigError, DilatedCNN, MimoCNN, Streamer
from rtconv.streaming import plan_conv


def offline(model, x, dtype):
    """Offline forward of a (frames, channels) signal, as the streamer lays channels out."""
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    m = model.to(tdt)
    xt = torch.from_numpy(np.ascontiguousarray(x.T)).to(tdt)
    xt = xt[:, None] if m.in_channels == 1 else xt[None]
    with torch.no_grad():
        y = m(xt)
    return y.reshape(-1, x.shape[0]).T.numpy()


def assert_stream_equals_offline(model, x, sizes, dtype=np.float32, **kw):
    ref = offline(model, x, dtype)
    got, s = stream_in_sizes(model, x.astype(dtype), sizes, **kw)
    got = got[s.latency :]
    assert got.shape == ref.shape
    tol = 1e-5 if dtype == np.float32 else 1e-11
    scale = max(np.abs(ref).max(), 1e-12)
    assert np.abs(got - ref).max() <= tol * scale, np.abs(got - ref).max() / scale
    return s


@st.composite
def architectures(draw):
    layers = draw(st.integers(1, 4))
    taps = draw(st.lists(st.integers(1, 64), min_size=layers, max_size=layers))
    features = draw(st.lists(st.integers(1, 8), min_size=layers + 1, max_size=layers + 1))
    dilations = draw(st.lists(st.integers(1, 8), min_size=layers, max_size=layers))
    padding = draw(st.sampled_from(["causal", "same"]))
    activation = draw(st.sampled_from(["tanh", "relu", "sigmoid"]))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    return MimoCNN(taps, features, activation, dilations, padding=padding)


partitions = st.lists(st.integers(0, 300), min_size=1, max_size=6).filter(lambda p: sum(p) > 0)


directs = st.sampled_from(["auto", "conv", "gemm"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(architectures(), st.integers(1, 700), partitions, st.integers(0, 2**16), st.integers(1, 3), directs)
def test_streamed_equals_offline_for_random_mimo_cnns(model, length, sizes, seed, channels, direct):
    # a mono model on 2-3 channels runs them as a batch: folded into one row, or one by one
    channels = model.in_channels if model.in_channels > 1 else channels
    x = np.random.default_rng(seed).normal(size=(length, channels))
    assert_stream_equals_offline(model, x, sizes, direct=direct)


@settings(max_examples=20, deadline=None)
@given(architectures(), st.integers(1, 400), partitions, st.integers(0, 2**16), directs)
def test_streamed_equals_offline_in_float64_to_1e_11(model, length, sizes, seed, direct):
    x = np.random.default_rng(seed).normal(size=(length, model.in_channels))
    assert_stream_equals_offline(model, x, sizes, dtype=np.float64, direct=direct)


@pytest.mark.parametrize("direct", ["conv", "gemm"])
@pytest.mark.parametrize("channels", [1, 2, 5])
@pytest.mark.parametrize("sizes", [[1], [31], [512], [4096], [3, 200, 0, 1000]])
def test_both_direct_kinds_stream_the_lab_model_exactly_on_any_channel_count(direct, channels, sizes):
    # taps 40 at 1-frame blocks: history 39 >> 2 * block, so batched conv runs per item;
    # at 512 frames the items are folded into one row
    torch.manual_seed(3)
    model = MimoCNN([40, 40], [1, 5, 1])
    x = np.random.default_rng(3).normal(size=(5000, channels))
    assert_stream_equals_offline(model, x, sizes, direct=direct)


def test_the_matmul_form_is_planned_only_for_channel_reducing_layers():
    from rtconv.streaming import plan_direct

    first, second = MimoCNN([40, 40], [1, 5, 1]).conv_layers()
    assert plan_direct(first, 512) == "conv"
    assert plan_direct(second, 128) == "conv"
    assert plan_direct(second, 512) == "gemm"
    assert plan_direct(second, 128, batch=2) == "gemm"
    assert plan_direct(FIR(np.ones(1000)).conv_layers()[0], 4096) == "conv"
    wide = MimoCNN([40], [64, 1]).conv_layers()[0]
    assert plan_direct(wide, 65536) == "conv"  # the 40 x 65575 intermediate would pass 2**21 values


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(["causal", "same"]), st.lists(st.integers(1, 2000), min_size=1, max_size=4), st.integers(0, 99))
def test_a_4096_tap_fir_streams_exactly_through_fft_partitions(padding, sizes, seed):
    rng = np.random.default_rng(seed)
    model = FIR(rng.normal(size=4096) / 64, padding=padding)
    s = assert_stream_equals_offline(model, rng.normal(size=(6000, 2)), sizes)
    assert "fft" in kinds(s)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(["causal", "same"]), st.lists(st.integers(0, 3000), min_size=1, max_size=4).filter(sum),
       st.integers(0, 99), st.integers(1, 2))
def test_a_1024_tap_fir_at_long_blocks_streams_exactly_through_whole_block_ffts(padding, sizes, seed, channels):
    rng = np.random.default_rng(seed)
    model = FIR(rng.normal(size=1024) / 32, padding=padding)
    s = assert_stream_equals_offline(model, rng.normal(size=(9000, channels)), sizes, block_size=1024)
    assert "block" in kinds(s)


@settings(max_examples=15, deadline=None)
@given(architectures(), st.integers(1, 700), partitions, st.integers(0, 2**16))
def test_whole_block_ffts_stream_random_mimo_cnns_exactly(model, length, sizes, seed):
    x = np.random.default_rng(seed).normal(size=(length, model.in_channels))
    assert_stream_equals_offline(model, x, sizes, partition="block")


@pytest.mark.parametrize("padding", ["causal", "same"])
@pytest.mark.parametrize("sizes", [[1], [3], [7], [128], [4096], [5, 0, 64, 1, 300]])
def test_dilated_cnn_with_residuals_streams_exactly(padding, sizes):
    torch.manual_seed(0)
    model = DilatedCNN(channels=8, layers=4, taps=4, padding=padding)
    x = np.random.default_rng(0).normal(size=(1500, 1))
    assert_stream_equals_offline(model, x, sizes)


def test_long_kernels_go_to_fft_and_short_ones_stay_direct():
    assert plan_conv(FIR(np.ones(4096)).conv_layers()[0])[0] == "fft"
    assert plan_conv(FIR(np.ones(2048)).conv_layers()[0])[0] == "fft"
    assert plan_conv(FIR(np.ones(512)).conv_layers()[0]) == ("direct", 0)
    assert plan_conv(MimoCNN().conv_layers()[0]) == ("direct", 0)
    assert plan_conv(MimoCNN().conv_layers()[1], 4096) == ("direct", 0)
    assert plan_conv(FIR(np.ones(1024)).conv_layers()[0], 4096) == ("block", 0)
    assert plan_conv(FIR(np.ones(4096)).conv_layers()[0], 512) == ("block", 0)
    assert plan_conv(FIR(np.ones(1)).conv_layers()[0], 4096) == ("direct", 0)


@pytest.mark.parametrize("partition", [16, 64, 256, "block"])
def test_forced_fft_partitions_match_direct_convolution(partition):
    torch.manual_seed(1)
    model = MimoCNN([300, 9], [2, 3, 2], dilations=[2, 1], padding="same")
    x = np.random.default_rng(1).normal(size=(3000, 2))
    assert_stream_equals_offline(model, x, [1, 77, 500, 13], partition=partition)


def test_a_mono_model_runs_per_channel_with_independent_state():
    torch.manual_seed(2)
    model = MimoCNN()
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 400, 1)).astype(np.float32)
    s = Streamer(model, channels=2)
    y = np.concatenate([s.process(np.hstack([a, b])[i : i + 50]) for i in range(0, 400, 50)])
    ya = np.concatenate([Streamer(model).process(a)])
    yb = Streamer(model).process(b)
    np.testing.assert_allclose(y[:, 0:1], ya, atol=1e-6)
    np.testing.assert_allclose(y[:, 1:2], yb, atol=1e-6)


def test_a_one_to_two_model_on_stereo_gives_four_channels_channel_major():
    model = MimoCNN([3], [1, 2])
    s = Streamer(model, channels=2)
    assert s.out_channels == 4
    x = np.zeros((10, 2), np.float32)
    x[0, 1] = 1.0
    y = s.process(x)
    assert np.abs(y[:, :2] - y[0, :2]).max() == 0  # channel 0 saw only silence (bias)
    np.testing.assert_allclose(y[:3, 2:] - y[-1, 2:], model.conv_layers()[0].kernel[:, 0].T, atol=1e-6)


def test_reset_forgets_history():
    model = MimoCNN()
    x = np.random.default_rng(3).normal(size=(256, 1)).astype(np.float32)
    s = Streamer(model)
    first = s.process(x)
    s.process(x)
    s.reset()
    np.testing.assert_array_equal(s.process(x), first)


def test_blocks_of_zero_frames_are_fine_and_return_zero_frames():
    s = Streamer(MimoCNN([3, 3], [1, 2, 3]))
    assert s.process(np.zeros((0, 1), np.float32)).shape == (0, 3)


def test_history_buffers_are_not_reallocated_per_block():
    s = Streamer(MimoCNN())
    ids = [id(b) for b in s.buffers()]
    assert len(ids) == 2  # one history per convolution
    for _ in range(200):  # several wrap-arounds of the 4096-frame room
        s.process(np.ones((128, 1), np.float32))
    assert ids == [id(b) for b in s.buffers()]


def test_nonfinite_input_is_zeroed_and_counted_and_does_not_poison_the_state():
    model = MimoCNN()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 1)).astype(np.float32)
    bad = x.copy()
    bad[10] = np.nan
    bad[20] = np.inf
    s = Streamer(model)
    y = s.process(bad)
    assert s.nonfinite_samples == 2
    assert np.isfinite(y).all()
    clean = x.copy()
    clean[[10, 20]] = 0
    np.testing.assert_allclose(y, Streamer(model).process(clean), atol=1e-6)
    later = s.process(x)  # once the bad samples leave the receptive field, all is normal
    assert np.isfinite(later).all()


def test_float64_blocks_are_accepted_by_a_float32_streamer():
    s = Streamer(FIR([1.0, 2.0]))
    y = s.process(np.ones((4, 1)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], [1, 3, 3, 3])


@pytest.mark.parametrize(
    "block, message",
    [
        (np.zeros(16, np.float32), r"block must be 2-D \(frames, channels\), got shape \(16,\); for mono audio use block\[:, None\]"),
        (np.zeros((16, 2), np.float32), r"expects 1 channel\(s\), got a block of shape \(16, 2\) with 2"),
        (np.zeros((16, 1), np.int16), r"must hold floats .* got dtype int16; convert integer PCM"),
        ([[0.0]], r"must be a NumPy array, got list"),
    ],
)
def test_bad_blocks_are_refused_with_a_clear_message(block, message):
    with pytest.raises(BlockError, match=message):
        Streamer(MimoCNN()).process(block)


def test_a_mixing_model_refuses_a_stream_with_other_channels():
    with pytest.raises(ConfigError, match=r"mixes 2 input channels, so the stream must have 2 channels, not 3"):
        Streamer(MimoCNN([3], [2, 1]), channels=3)


def test_streamer_copies_weights_so_a_running_stream_is_unaffected_by_training():
    model = FIR([1.0])
    s = Streamer(model)
    with torch.no_grad():
        model.body[0].weight.fill_(5.0)
    np.testing.assert_allclose(s.process(np.ones((3, 1), np.float32))[:, 0], 1.0)


def test_the_thread_count_follows_the_stream_onto_another_thread():
    """OpenMP keeps the thread count per OS thread: an audio callback thread must get it too."""
    import threading

    s = Streamer(MimoCNN(), threads=1)
    seen = []

    def audio_thread():
        torch.set_num_threads(2)  # what a fresh thread may start with
        s.process(np.zeros((8, 1), np.float32))
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=audio_thread)
    t.start()
    t.join()
    assert seen == [1]


def test_the_plan_names_each_layer_with_its_algorithm_latency_and_receptive_field():
    model = MimoCNN([300, 9], [1, 3, 1], padding="same")
    s = Streamer(model, partition=64)
    assert [(p.path, p.layer, p.kind, p.partition) for p in s.plan] == [
        ("body.0", "MimoConv1d", "fft", 64), ("body.1", "Activation", "pointwise", 0),
        ("body.2", "MimoConv1d", "conv", 0)]
    assert [(p.latency, p.receptive_field) for p in s.plan] == [(149, 300), (0, 1), (4, 9)]
    assert sum(p.latency for p in s.plan) == s.latency == model.latency == 153
    assert s.receptive_field == model.receptive_field == 300 + 9 - 1


def test_residual_layers_are_planned_by_their_paths_and_add_no_latency_of_their_own():
    s = Streamer(DilatedCNN(channels=4, layers=3, taps=3, padding="same"))
    convs = [p for p in s.plan if p.layer == "MimoConv1d"]
    assert [p.path for p in convs] == ["body.0", "body.2.body.0", "body.3.body.0", "body.4"]
    assert [p.latency for p in convs] == [1, 2, 4, 0] and s.latency == 7


def test_a_streamers_thread_count_holds_numpys_blas_as_well_as_torch():
    """A framed model's frame-rate body computes in NumPy: ``threads`` must bound its BLAS too (live: one core)."""
    from threadpoolctl import threadpool_info

    from rtconv.denoiser import ConvDenoiser

    model = ConvDenoiser(window=32, hop=16, channels=8, blocks=1).eval()
    # OpenBLAS caps its count at the machine's cores: two only where there are two
    for n in ((2, 1) if (os.cpu_count() or 1) >= 2 else (1,)):
        Streamer(model, threads=n)
        assert torch.get_num_threads() == n
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {n}
