"""Layers and models: impulse-response order, MIMO mapping, configuration errors."""

import numpy as np
import pytest
import torch

import rtconv
from rtconv import ConfigError, DilatedCNN, FIR, MimoCNN
from rtconv.layers import MimoConv1d


def impulse(length=64, channels=1, at=0, channel=0):
    x = torch.zeros(1, channels, length, dtype=torch.float64)
    x[0, channel, at] = 1.0
    return x


def test_fir_impulse_response_is_the_kernel_in_order():
    h = np.array([0.5, -1.0, 2.0, 0.25])
    y = FIR(h).double()(impulse())[0, 0].detach().numpy()
    np.testing.assert_allclose(y[:4], h)
    np.testing.assert_allclose(y[4:], 0)


def test_fir_matches_np_convolve_on_a_signal():
    rng = np.random.default_rng(1)
    h, x = rng.normal(size=7), rng.normal(size=50)
    y = FIR(h).double()(torch.tensor(x)[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(y, np.convolve(x, h)[:50], atol=1e-6)  # taps stored as float32


@pytest.mark.parametrize("dilation", [1, 3])
def test_impulse_on_input_f_gives_h_fg_on_output_g(dilation):
    torch.manual_seed(0)
    layer = MimoConv1d(3, 4, taps=5, dilation=dilation, bias=False).double()
    W = layer.kernel  # (out, in, taps), impulse-response order
    for f in range(3):
        y = layer(impulse(40, 3, channel=f))[0].detach().numpy()
        for g in range(4):
            np.testing.assert_allclose(y[g, : 5 * dilation : dilation], W[g, f])
            mask = np.ones(40, bool)
            mask[: 5 * dilation : dilation] = False
            np.testing.assert_allclose(y[g, mask], 0, atol=1e-15)


def test_mimo_layer_is_the_shift_operator_recursion():
    """Y = sum_k S^k X H_k, written out with the shift matrix S."""
    torch.manual_seed(2)
    T, Fi, G, K = 12, 2, 3, 4
    layer = MimoConv1d(Fi, G, K, bias=False).double()
    X = np.random.default_rng(2).normal(size=(T, Fi))
    S = np.eye(T, k=-1)  # (S X)[n] = X[n-1]
    Hk = layer.kernel.transpose(2, 1, 0)  # (K, F, G)
    Y = sum(np.linalg.matrix_power(S, k) @ X @ Hk[k] for k in range(K))
    got = layer(torch.tensor(X.T)[None])[0].detach().numpy().T
    np.testing.assert_allclose(got, Y, atol=1e-12)


def test_same_padding_is_causal_output_advanced_by_the_latency():
    torch.manual_seed(3)
    causal = MimoConv1d(1, 1, 7, dilation=2)
    same = MimoConv1d(1, 1, 7, dilation=2, padding="same")
    same.load_state_dict(causal.state_dict())
    x = torch.randn(1, 1, 100)
    L = same.latency
    assert L == (7 - 1) * 2 // 2
    torch.testing.assert_close(same(x)[..., : 100 - L], causal(x)[..., L:])


def test_same_padding_equals_np_convolve_same_for_odd_kernels():
    h = np.array([1.0, 2.0, 3.0])
    y = FIR(h, padding="same").double()(torch.tensor([[[1.0, 2, 3, 4]]], dtype=torch.float64))
    np.testing.assert_allclose(y[0, 0].detach().numpy(), [4, 10, 16, 17])


def test_classic_mimo_cnn_shapes_and_receptive_field():
    m = MimoCNN(taps=[40, 40], features=[1, 5, 1])
    assert [tuple(l.weight.shape) for l in m.conv_layers()] == [(5, 1, 40), (1, 5, 40)]
    assert m.parameter_count() == 1 * 5 * 40 + 5 + 5 * 1 * 40 + 1
    assert m.receptive_field == 79 and m.latency == 0 and m.causal
    assert m(torch.zeros(2, 1, 33)).shape == (2, 1, 33)


def test_dilated_cnn_reports_its_receptive_field():
    m = DilatedCNN(channels=16, layers=4, taps=3)
    assert [l.dilation for l in m.conv_layers()] == [1, 2, 4, 8, 1]
    assert m.receptive_field == 1 + 2 * (1 + 2 + 4 + 8)


def test_a_layer_is_causal_output_never_depends_on_the_future():
    torch.manual_seed(4)
    m = DilatedCNN(channels=4, layers=3)
    x = torch.randn(1, 1, 64)
    y1 = m(x)
    x2 = x.clone()
    x2[..., 40:] = torch.randn(24)
    torch.testing.assert_close(m(x2)[..., :40], y1[..., :40])


def test_build_rebuilds_an_architecture_from_its_config():
    for m in (FIR(taps=9), MimoCNN([3, 5], [2, 3, 2]), DilatedCNN(layers=2, padding="same")):
        m2 = rtconv.build(m.arch, m.config)
        assert type(m2) is type(m) and m2.config == m.config
        m2.load_state_dict(m.state_dict())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MimoCNN(taps=[40, 40], features=[1, 5]), r"features must list layers \+ 1 = 3 channel counts"),
        (lambda: MimoCNN(taps=[0], features=[1, 1]), r"taps must be an integer >= 1, got 0"),
        (lambda: MimoCNN(taps=[], features=[1]), r"at least one layer"),
        (lambda: MimoCNN(activation="swish"), r"activation must be one of .* got 'swish'"),
        (lambda: MimoCNN(padding="valid"), r"padding must be one of \('causal', 'same'\), got 'valid'"),
        (lambda: FIR([1.0, float("nan"), 2.0]), r"tap 1 is nan"),
        (lambda: FIR([[1.0, 2.0]]), r"1-D array of taps, got shape \(1, 2\)"),
        (lambda: FIR(), r"FIR needs a kernel"),
        (lambda: rtconv.build("transformer", {}), r"unknown architecture 'transformer'"),
        (lambda: rtconv.build("fir", {"tapz": 3}), r"bad arguments for architecture 'fir'"),
    ],
)
def test_nonsense_configurations_are_refused_with_a_clear_message(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_forward_refuses_the_wrong_channel_count():
    with pytest.raises(ConfigError, match=r"expects a \(batch, 1, time\) tensor, got shape \(1, 2, 10\)"):
        MimoCNN()(torch.zeros(1, 2, 10))


def test_engine_imports_without_qt_or_sounddevice():
    import subprocess
    import sys

    code = (
        "import sys, rtconv, rtconv.streaming, rtconv.designs, rtconv.semantics, rtconv.cli;"
        "bad = [m for m in ('PyQt6', 'sounddevice', 'pyqtgraph') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_fir_learnable_flag_follows_the_config_both_ways():
    fixed = FIR([1.0, 2.0])
    assert not fixed.learnable and not fixed.body[0].weight.requires_grad
    rebuilt = rtconv.build("fir", fixed.config)
    assert not rebuilt.learnable and not rebuilt.body[0].weight.requires_grad
    assert FIR(taps=5).learnable and FIR([1.0], learnable=True).body[0].weight.requires_grad
