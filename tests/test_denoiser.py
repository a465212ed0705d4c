"""The framed mask denoiser: exact streaming, latency, checkpoints, strength control."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rtconv import ConfigError, checkpoint
from rtconv.denoiser import ConvDenoiser, asymmetric_filterbank, calibrate_gain, dft_filterbank, limit_to_floor
from rtconv.framed import FrameGRU
from rtconv.layers import MimoConv1d, Residual

from _streams import stream_in_sizes

SMALL = dict(window=32, hop=16, channels=8, blocks=2, taps=3)
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "denoiser.safetensors"


def _offline(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x.T))[:, None])[:, 0].numpy().T


def _stream(model, x, sizes):
    y, s = stream_in_sizes(model, x, sizes, dtype=np.float32)
    return y[s.latency :]


@pytest.mark.parametrize("sizes", [[1], [3], [7], [128], [4096], [17, 1, 250]])
@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_denoiser_equals_offline_delayed_by_latency(sizes, channels):
    torch.manual_seed(0)
    model = ConvDenoiser(**SMALL).eval()
    x = np.random.default_rng(1).normal(size=(2000, channels)).astype(np.float32) * 0.1
    ref = _offline(model, x)
    np.testing.assert_allclose(_stream(model, x, sizes), ref, atol=1e-5 * np.abs(ref).max())


def test_default_denoiser_latency_is_under_5_ms_at_48_khz_and_it_is_causal():
    model = ConvDenoiser()
    assert model.latency == 191 and model.latency / 48000 <= 0.005
    assert model.causal and model.in_channels == 1 and model.out_channels == 1


def test_a_fresh_denoiser_passes_audio_through_nearly_unchanged():
    # the DFT filterbank reconstructs perfectly and gains start near 0.95
    model = ConvDenoiser(**SMALL).eval()
    x = np.random.default_rng(2).normal(size=(3000, 1)).astype(np.float32)
    y = _offline(model, x)
    assert 0.85 < np.std(y) / np.std(x) < 1.0
    assert np.corrcoef(x[:, 0], y[:, 0])[0, 1] > 0.99


@pytest.mark.parametrize("limit_db", [0.0, 6.0, 20.0])
def test_attenuation_limit_bounds_suppression_of_a_fully_closed_mask(limit_db):
    model = ConvDenoiser(**SMALL, attenuation_limit_db=limit_db).eval()
    last = [m for m in model.gate.estimator if isinstance(m, MimoConv1d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-50.0)  # the estimator asks for silence everywhere
    x = np.random.default_rng(3).normal(size=(3000, 1)).astype(np.float32)
    y = _offline(model, x)
    # with every gain at the floor the output is the filterbank's copy of x times the floor
    np.testing.assert_allclose(y, x * 10 ** (-limit_db / 20), atol=1e-4)
    model.attenuation_limit_db = None
    assert np.abs(_offline(model, x)).max() < 1e-6


@pytest.mark.parametrize("limit_db", [0.0, 6.0, 20.0])
@pytest.mark.parametrize("how", ["set after calibration", "loaded from a checkpoint", "calibrated"])
def test_the_attenuation_limit_is_measured_at_the_output_of_a_calibrated_model(limit_db, how, tmp_path):
    """A calibration gain in the decoder (the shipped denoiser's: +3.3 dB) raised the floor with it, so
    ``--atten-lim 0`` made the output 3.3 dB louder than the input and 20 dB attenuated 16.7 dB."""
    model = ConvDenoiser(**{**ASYM, "analysis_window": 64}, gru=4, deep_filter=[3, 2, 1],
                         attenuation_limit_db=limit_db).eval()
    last = [m for m in model.gate.estimator if isinstance(m, MimoConv1d)][-1]
    x = np.random.default_rng(3).normal(size=(3000, 1)).astype(np.float32)
    K = model.encoder.weight.shape[0] // 2  # gains, then the deep filter's coefficients
    with torch.no_grad():
        last.weight.zero_()
        last.bias[:K].fill_(-50.0)  # every gain closed
        last.bias[K:].fill_(0.0)  # the deep filter's coefficients at 0: c = 2 * 0.5 - 1
        if how == "calibrated":  # the least-squares gain towards a target 1.5 times the model's output
            gain = calibrate_gain(model, [(x[:, 0], 1.5 * _offline(model, x)[:, 0])])
            assert gain == pytest.approx(1.5, rel=1e-4)
        else:
            model.decoder.weight.mul_(1.5)
    if how == "set after calibration":
        model.attenuation_limit_db = limit_db
    elif how == "loaded from a checkpoint":
        model = checkpoint.load(checkpoint.save(model, tmp_path / "c.safetensors", sample_rate=48000))
    assert model.gate.passthrough == pytest.approx(1.5, rel=1e-4)
    want = x * 10 ** (-limit_db / 20)
    np.testing.assert_allclose(_offline(model, x), want, atol=1e-4)
    np.testing.assert_allclose(_stream(model, x, [7, 128]), want, atol=1e-4)


def test_attenuation_limit_travels_in_the_config_and_through_checkpoints(tmp_path):
    torch.manual_seed(4)
    model = ConvDenoiser(**SMALL, attenuation_limit_db=12.0).eval()
    path = checkpoint.save(model, tmp_path / "d.safetensors", sample_rate=48000, task="denoise")
    back = checkpoint.load(path)
    assert isinstance(back, ConvDenoiser)
    assert back.config == model.config and back.attenuation_limit_db == 12.0
    assert back.latency == model.latency and back.sample_rate == 48000
    x = np.random.default_rng(5).normal(size=(1000, 1)).astype(np.float32)
    np.testing.assert_array_equal(_offline(back, x), _offline(model, x))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(window=31), r"window must be even .* got 31"),
        (dict(window=32, hop=33), r"hop 33 exceeds window 32"),
        (dict(attenuation_limit_db=-3), r"attenuation_limit_db must be a non-negative number of dB or None, got -3"),
        (dict(attenuation_limit_db="loud"), r"got 'loud'"),
        (dict(channels=0), r"channels must be an integer >= 1, got 0"),
    ],
)
def test_bad_denoiser_settings_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ConvDenoiser(**{**SMALL, **kwargs})


def test_limit_to_floor_converts_decibels_to_a_gain():
    assert limit_to_floor(None) == 0.0
    assert limit_to_floor(20.0) == pytest.approx(0.1)
    assert limit_to_floor(0) == 1.0


def test_shipped_denoiser_is_the_default_model_and_real_time_ready():
    meta = checkpoint.read_metadata(SHIPPED)
    assert meta["task"] == "denoise"
    model = checkpoint.load(SHIPPED)
    assert isinstance(model, ConvDenoiser) and model.sample_rate == 48000
    assert model.causal and model.latency / 48000 <= 0.005
    assert checkpoint.default_model_path().resolve() == SHIPPED.resolve()


def test_shipped_denoiser_improves_held_out_speech_in_noise():
    from rtconv.bench.heldout import make_test_set
    from rtconv.metrics import si_sdr_improvement_db

    model = checkpoint.load(SHIPPED)
    gains = []
    for ex in make_test_set(per_cell=1, snrs=[0.0], families=["white", "pink"], seed=11):
        y = _offline(model, ex.noisy[:, None])[:, 0]
        gains.append(si_sdr_improvement_db(ex.clean, ex.noisy, y))
    assert min(gains) > 1.0, gains  # a pass-through scores 0


def test_a_fixed_filterbank_is_left_alone_by_training_and_travels_through_checkpoints(tmp_path):
    # learn_filterbank=False keeps the perfectly reconstructing DFT pair: only the mask network learns
    torch.manual_seed(5)
    model = ConvDenoiser(**SMALL, learn_filterbank=False)
    assert model.config["learn_filterbank"] is False
    assert "learn_filterbank" not in ConvDenoiser(**SMALL).config  # old configs stay as they were
    enc, dec = model.encoder.weight.detach().clone(), model.decoder.weight.detach().clone()
    trainable = [p for p in model.parameters() if p.requires_grad]  # what the trainer optimises
    opt = torch.optim.Adam(trainable, lr=1e-2)
    x = torch.randn(2, 1, 800)
    for _ in range(3):
        opt.zero_grad()
        (model(x) - 0.5 * x).square().mean().backward()
        opt.step()
    torch.testing.assert_close(model.encoder.weight.detach(), enc, rtol=0, atol=0)
    torch.testing.assert_close(model.decoder.weight.detach(), dec, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(trainable, ConvDenoiser(**SMALL).parameters()))
    path = checkpoint.save(model.eval(), tmp_path / "f.safetensors", sample_rate=48000, task="denoise")
    back = checkpoint.load(path)
    assert back.config == model.config
    assert not back.encoder.weight.requires_grad and not back.decoder.weight.requires_grad
    xs = np.random.default_rng(6).normal(size=(1000, 1)).astype(np.float32)
    np.testing.assert_allclose(_offline(back, xs), _offline(model, xs), atol=1e-6)


def test_learn_filterbank_must_be_a_bool():
    with pytest.raises(ConfigError, match="learn_filterbank"):
        ConvDenoiser(**SMALL, learn_filterbank="no")


@pytest.mark.parametrize("sizes", [[1], [128], [17, 1, 250]])
def test_a_tanh_denoiser_streams_exactly_and_keeps_its_activation_through_checkpoints(sizes, tmp_path):
    torch.manual_seed(7)
    model = ConvDenoiser(**SMALL, activation="tanh").eval()
    assert model.config["activation"] == "tanh"
    assert "activation" not in ConvDenoiser(**SMALL).config  # old configs stay as they were
    x = np.random.default_rng(8).normal(size=(2000, 1)).astype(np.float32) * 0.1
    ref = _offline(model, x)
    np.testing.assert_allclose(_stream(model, x, sizes), ref, atol=1e-5 * np.abs(ref).max())
    back = checkpoint.load(checkpoint.save(model, tmp_path / "t.safetensors", sample_rate=48000, task="denoise"))
    assert back.config == model.config
    np.testing.assert_allclose(_offline(back, x), ref, atol=1e-6)


def test_unknown_activation_is_refused():
    with pytest.raises(ConfigError, match="activation"):
        ConvDenoiser(**SMALL, activation="relu6")


def test_a_low_feature_floor_lets_the_mask_network_see_quiet_input(tmp_path):
    x = torch.randn(1, 1, 4800) * 10 ** (-80 / 20)  # a very quiet input: -80 dBFS
    for floor, sees in ((-60.0, False), (-120.0, True)):
        m = ConvDenoiser(channels=8, blocks=1, learn_filterbank=False, activation="tanh", feature_floor_db=floor)
        feats = m.gate.estimator[0](m.encoder(x))
        spread = float(feats.max() - feats.min())
        assert (spread > 1.0) is sees, (floor, spread)
    path = tmp_path / "f.safetensors"
    checkpoint.save(m, path)
    back = checkpoint.load(path)
    assert back.config["feature_floor_db"] == -120.0
    assert "feature_floor_db" not in ConvDenoiser().config  # older configs stay as they were
    with pytest.raises(ConfigError, match="feature_floor_db must be a number of dB"):
        ConvDenoiser(feature_floor_db=10)


def _moved(model, scale):
    """``model`` with its mask network's parameters moved off their pass-through start (in place)."""
    with torch.no_grad():
        for p in model.gate.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def _assert_streams_exactly_and_round_trips(model, x, sizes, path):
    """Streamed in ``sizes`` equals offline; saved to ``path`` and loaded, the same offline output; returns it loaded."""
    ref = _offline(model, x)
    np.testing.assert_allclose(_stream(model, x, sizes), ref, atol=1e-5 * np.abs(ref).max())
    checkpoint.save(model, path, sample_rate=48000)
    back = checkpoint.load(path)
    np.testing.assert_allclose(_offline(back, x), ref, atol=1e-6)
    return back


# -- a long analysis window at the short window's latency ----------------------------------------------
ASYM = dict(window=32, hop=16, channels=8, blocks=2, taps=3, activation="tanh", learn_filterbank=False)


@pytest.mark.parametrize("analysis", [32, 64, 128, 96])
def test_an_asymmetric_filterbank_reconstructs_perfectly_at_the_short_windows_latency(analysis):
    model = ConvDenoiser(**ASYM, analysis_window=analysis if analysis != 32 else None).eval()
    last = [m for m in model.gate.estimator if isinstance(m, MimoConv1d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(50.0)  # every gain 1: the filterbank alone
    x = np.random.default_rng(3).normal(size=(4000, 1)).astype(np.float32)
    y = _offline(model, x)
    assert model.latency == 31
    # once the long window has filled, the output is the input (aligned: latency removed)
    np.testing.assert_allclose(y[analysis:], x[analysis:], atol=2e-5)
    assert model.encoder.taps == analysis and model.decoder.taps == 32
    assert model.gate.estimator[1].weight.shape[1] == analysis // 2  # one gain per bin of the long window


def test_an_asymmetric_filterbank_of_equal_windows_is_the_symmetric_pair():
    a, s = asymmetric_filterbank(64, 64)
    a2, s2 = dft_filterbank(64)
    np.testing.assert_allclose(a, a2, atol=1e-12)
    np.testing.assert_allclose(s, s2, atol=1e-12)


def test_a_long_analysis_window_narrows_the_bins():
    """A tone halfway between two bins of the 4 ms window falls on one bin of the 16 ms one."""
    rate, f = 48000, 1125.0  # bin 4.5 of a 192-sample window, bin 18 of a 768-sample one
    x = np.sin(2 * np.pi * f * np.arange(4800) / rate)
    share = {}
    for n in (192, 768):
        a, _ = asymmetric_filterbank(n, 192)
        frame = a[:, 0, ::-1] @ x[2000:2000 + n]  # kernels are in impulse-response order: newest sample first
        power = frame[: n // 2] ** 2 + frame[n // 2:] ** 2
        share[n] = (power.max() / power.sum(), np.argmax(power) * rate / n)
    assert share[192][0] <= 0.5 + 1e-9 and share[192][1] in (1000.0, 1250.0)
    assert share[768][0] > 0.8 and share[768][1] == f


@pytest.mark.parametrize("sizes", [[1], [7], [16], [4096], [17, 1, 250]])
@pytest.mark.parametrize("channels", [1, 2])
def test_an_asymmetric_denoiser_streams_exactly_and_travels_through_checkpoints(sizes, channels, tmp_path):
    torch.manual_seed(4)
    model = _moved(ConvDenoiser(**ASYM, gru=5, analysis_window=96).eval(), 0.3)
    x = np.random.default_rng(5).normal(size=(2000, channels)).astype(np.float32) * 0.1
    back = _assert_streams_exactly_and_round_trips(model, x, sizes, tmp_path / "a.safetensors")
    assert back.config["analysis_window"] == 96 and back.latency == model.latency


def test_a_model_grows_a_long_analysis_window_starting_near_its_old_output():
    from rtconv.models import build, transfer_weights

    torch.manual_seed(6)
    old = ConvDenoiser(**ASYM, gru=5).eval()
    with torch.no_grad():
        for p in old.gate.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        old.decoder.weight.mul_(1.1)  # an output-level calibration, kept by the grown model
    new = build(old.arch, {**old.config, "analysis_window": 128}).eval()
    copied, left = transfer_weights(old, new)
    assert left == 1  # the long window's analysis filterbank: fixed, its own
    t = np.arange(48000) / 48000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))
         + 0.05 * np.random.default_rng(7).normal(size=t.size)).astype(np.float32)[:, None]
    a, b = _offline(old, x)[4000:], _offline(new, x)[4000:]
    snr = 10 * np.log10(np.sum(a**2) / np.sum((a - b) ** 2))
    assert snr > 12, snr
    assert abs(10 * np.log10(np.sum(b**2) / np.sum(a**2))) < 1.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(analysis_window=33), r"analysis_window must be even and at least window \(32\)"),
    (dict(analysis_window=16), r"got analysis_window 16"),
    (dict(analysis_window=64, hop=8), r"hop = window / 2 \(16\); got analysis_window 64 and hop 8"),
])
def test_bad_analysis_windows_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ConvDenoiser(**{**ASYM, **kwargs})


# -- deep filtering of the low bins ---------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[1], [7], [16], [4096], [17, 1, 250]])
@pytest.mark.parametrize("channels", [1, 2])
def test_a_deep_filter_denoiser_streams_exactly_and_travels_through_checkpoints(sizes, channels, tmp_path):
    torch.manual_seed(8)
    model = _moved(ConvDenoiser(**ASYM, gru=5, deep_filter=[6, 4, 2], attenuation_limit_db=20).eval(), 0.3)
    x = np.random.default_rng(9).normal(size=(2000, channels)).astype(np.float32) * 0.1
    back = _assert_streams_exactly_and_round_trips(model, x, sizes, tmp_path / "d.safetensors")
    assert back.config["deep_filter"] == [6, 4, 2] and back.latency == model.latency == 31
    assert "deep_filter" not in ConvDenoiser(**ASYM).config  # configs without one stay as they were


def test_a_model_grows_a_deep_filter_starting_at_its_old_output_and_the_filter_then_acts():
    from rtconv.models import build, transfer_weights

    torch.manual_seed(10)
    old = _moved(ConvDenoiser(**ASYM, gru=5).eval(), 0.1)
    new = build(old.arch, {**old.config, "deep_filter": [5, 3, 1]}).eval()
    assert transfer_weights(old, new) == (len(list(old.parameters())), 0)
    x = np.random.default_rng(11).normal(size=(3000, 1)).astype(np.float32) * 0.1
    np.testing.assert_allclose(_offline(new, x), _offline(old, x), atol=1e-6)
    with torch.no_grad():  # the filter's outputs moved off their zero start: now it acts
        last = [m for m in new.gate.estimator if isinstance(m, MimoConv1d)][-1]
        last.bias[16:].add_(torch.randn(last.bias.shape[0] - 16) * 0.5)
    assert np.abs(_offline(new, x) - _offline(old, x)).max() > 1e-3
    # and back: a model without the filter cannot take the grown model's wider layer
    with pytest.raises(ConfigError, match=r"deep_filter \(5, 3, 1\) and phase_features 0 cannot become one with "
                                          r"deep_filter None"):
        transfer_weights(new, build(old.arch, old.config))
    with pytest.raises(ConfigError, match="a GRU of 5 units cannot become one with 0"):  # a GRU is not taken away
        transfer_weights(old, build(old.arch, {**old.config, "gru": 0, "deep_filter": [5, 3, 1]}))


def test_a_model_grows_a_wider_gru_starting_at_its_old_output_and_the_new_units_then_learn():
    from rtconv.models import build, transfer_weights

    torch.manual_seed(14)
    old = _moved(ConvDenoiser(**ASYM, gru=5, deep_filter=[5, 3, 1], phase_features=5).eval(), 0.1)
    new = build(old.arch, {**old.config, "gru": 9}).eval()
    assert transfer_weights(old, new) == (len(list(old.parameters())), 0)
    x = np.random.default_rng(15).normal(size=(3000, 1)).astype(np.float32) * 0.1
    np.testing.assert_allclose(_offline(new, x), _offline(old, x), atol=1e-6)
    gru = next(m for m in new.gate.estimator.modules() if isinstance(m, FrameGRU))
    proj = next(m for m in new.gate.estimator if isinstance(m, Residual) and isinstance(m.body[0], FrameGRU)).body[1]
    assert gru.gru.weight_hh_l0[:, 5:].abs().sum() > 0  # the new units run from a random start...
    assert proj.weight[:, 5:].abs().sum() == 0  # ...unheard
    # one step of training reaches the new units through their (zero) output columns
    new.train()
    y = new(torch.from_numpy(x.T.copy())[:, None])
    y.square().mean().backward()
    assert proj.weight.grad[:, 5:].abs().sum() > 0
    new.zero_grad()
    with torch.no_grad():  # and once heard, they change the output
        proj.weight[:, 5:].add_(torch.randn_like(proj.weight[:, 5:]) * 0.5)
    assert np.abs(_offline(new.eval(), x) - _offline(old, x)).max() > 1e-4
    assert new.config["gru"] == 9 and new.macs_per_second() > old.macs_per_second()
    with pytest.raises(ConfigError, match="a GRU of 9 units cannot become one with 5"):
        transfer_weights(new, build(old.arch, old.config))


def test_phase_features_start_unheard_then_tell_the_mask_network_where_in_its_bin_the_energy_is(tmp_path):
    from rtconv.models import build, transfer_weights

    torch.manual_seed(12)
    old = _moved(ConvDenoiser(**ASYM, gru=5).eval(), 0.1)
    new = build(old.arch, {**old.config, "deep_filter": [5, 3, 1], "phase_features": 5}).eval()
    assert transfer_weights(old, new) == (len(list(old.parameters())), 0)
    t = np.arange(9600) / 48000
    # two tones in bin 2 (1500 Hz +- 750 Hz at a 32-sample window): same energies, other places
    lo, hi = (0.1 * np.sin(2 * np.pi * f * t).astype(np.float32)[:, None] for f in (1250.0, 1750.0))
    np.testing.assert_allclose(_offline(new, lo), _offline(old, lo), atol=1e-6)
    feats = new.gate.estimator[0]
    z = lambda x: new.encoder(torch.from_numpy(x.T.copy())[None])  # noqa: E731
    with torch.no_grad():
        f_lo, f_hi, f_loud = feats(z(lo)), feats(z(hi)), feats(z(100 * lo))
    assert f_lo.shape[1] == 16 + 10
    u_lo, u_hi = f_lo[0, [17, 22], 50:].mean(-1), f_hi[0, [17, 22], 50:].mean(-1)  # bin 2: real, imaginary
    # the advance over a 16-sample hop differs by 2 pi * 500 Hz * 16 / 48 kHz = 60 degrees (sign: the convention's)
    turn = abs(float(torch.atan2(u_hi[1], u_hi[0]) - torch.atan2(u_lo[1], u_lo[0])))
    assert abs(min(turn, 2 * np.pi - turn) - np.pi / 3) < 0.05, turn
    np.testing.assert_allclose(f_loud[0, [17, 22], 1:], f_lo[0, [17, 22], 1:], atol=1e-4)  # level invariant
    assert np.all(f_lo[0, 16:, 0].numpy() == 0)  # nothing before the first frame
    with pytest.raises(ConfigError, match="phase_features must be a number of bins from 0 to 15, got 16"):
        ConvDenoiser(**ASYM, phase_features=16)


@pytest.mark.parametrize("sizes", [[1], [16], [17, 1, 250]])
def test_a_denoiser_with_phase_features_streams_exactly_and_travels_through_checkpoints(sizes, tmp_path):
    torch.manual_seed(13)
    model = _moved(ConvDenoiser(**ASYM, deep_filter=[6, 4, 1], phase_features=6).eval(), 0.3)
    x = np.random.default_rng(14).normal(size=(2000, 2)).astype(np.float32) * 0.1
    back = _assert_streams_exactly_and_round_trips(model, x, sizes, tmp_path / "p.safetensors")
    assert back.config["phase_features"] == 6


def test_a_deep_filters_cost_is_counted():
    plain, df = ConvDenoiser(**ASYM), ConvDenoiser(**ASYM, deep_filter=[6, 4, 2])
    extra_per_frame = 8 * 2 * 6 * 4 + 2 * 6 * 4 * 2  # the wider last layer (8 channels in) + 4 MACs per bin and tap
    assert df.macs_per_second(48000) - plain.macs_per_second(48000) == pytest.approx(extra_per_frame * 48000 / 16)


@pytest.mark.parametrize("value", [[16, 4, 1], [0, 4, 1], [4, 4], "24,8,1", [4, 2.5, 1], [True, 4, 1]])
def test_bad_deep_filters_are_refused_in_one_sentence(value):
    with pytest.raises(ConfigError, match=r"deep_filter must be \[bins, order, dilation\], positive integers with "
                                          r"bins at most 15 .*got"):
        ConvDenoiser(**ASYM, deep_filter=value)


# -- a speech-presence head -------------------------------------------------------------------------------
def test_a_grown_presence_head_starts_open_and_scales_every_bin_and_the_deep_filter_alike():
    from rtconv.models import build, transfer_weights

    torch.manual_seed(20)
    old = _moved(ConvDenoiser(**ASYM, gru=5, deep_filter=[5, 3, 1], phase_features=5).eval(), 0.1)
    new = build(old.arch, {**old.config, "presence": 4}).eval()
    assert transfer_weights(old, new) == (len(list(old.parameters())), 8)  # the head's 8 tensors start fresh
    x = np.random.default_rng(21).normal(size=(3000, 1)).astype(np.float32) * 0.1
    # each frame scaled by sigmoid(4 +- ~1) above the 30 dB floor (-0.4..-0.1 dB), which a calibration takes back
    a, b = _offline(new, x), _offline(old, x)
    loud = np.abs(b) > 0.01
    ratio = a[loud] / b[loud]
    assert 10 ** (-0.6 / 20) < ratio.min() and ratio.max() < 10 ** (-0.05 / 20), (ratio.min(), ratio.max())
    assert new.config["presence"] == 4 and new.config["presence_floor_db"] == 30.0
    assert new.macs_per_second() > old.macs_per_second()
    with pytest.raises(ConfigError, match="a model with a presence head cannot become one without"):
        transfer_weights(new, build(old.arch, old.config))


@pytest.mark.parametrize("limit_db", [None, 12.0])
def test_a_closed_presence_head_closes_the_frame_by_its_floor_and_the_attenuation_limit_still_bounds_it(limit_db):
    model = ConvDenoiser(**ASYM, presence=4, presence_floor_db=30.0, attenuation_limit_db=limit_db).eval()
    last = [m for m in model.gate.estimator if isinstance(m, MimoConv1d)][-1]
    head = [m for m in model.gate.presence if isinstance(m, MimoConv1d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(50.0)  # the mask keeps every bin...
        head.bias.fill_(-50.0)  # ...and the head calls every frame noise
    x = np.random.default_rng(22).normal(size=(4000, 1)).astype(np.float32)
    y = _offline(model, x)[200:]
    f = 0.0 if limit_db is None else 10 ** (-limit_db / 20)
    expected = f + (1 - f) * 10 ** (-30 / 20)  # the limit mixes the input back in on top of the closed frame
    assert np.std(y) / np.std(x[200 - model.latency : len(x) - model.latency]) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("sizes", [[1], [16], [17, 1, 250]])
@pytest.mark.parametrize("linked, prange", [(False, [0.0, 1.0]), (True, [0.0, 1.0]), (False, [0.3, 0.6])])
def test_a_denoiser_with_a_presence_head_streams_exactly_and_travels_through_checkpoints(sizes, linked, prange,
                                                                                        tmp_path):
    from rtconv.denoiser import set_linked

    torch.manual_seed(23)
    model = _moved(ConvDenoiser(**ASYM, gru=4, deep_filter=[6, 4, 1], phase_features=6, presence=3,
                                presence_range=prange, attenuation_limit_db=20.0).eval(), 0.5)
    x = np.random.default_rng(24).normal(size=(2000, 2)).astype(np.float32) * 0.1
    if linked:  # a stream's setting, not the checkpoint's: streamed against offline only
        set_linked(model, True)
        ref = _offline(model, x)
        np.testing.assert_allclose(_stream(model, x, sizes), ref, atol=1e-5 * np.abs(ref).max())
        assert np.abs(ref[:, 0] - ref[:, 1]).max() > 1e-3  # the channels differ; their gains do not
        return
    back = _assert_streams_exactly_and_round_trips(model, x, sizes, tmp_path / "p.safetensors")
    assert back.config["presence"] == 3 and back.gate.presence is not None
    assert back.gate.presence_range == tuple(prange)
    assert ("presence_range" in back.config) == (prange != [0.0, 1.0])  # earlier heads' configs stay as they were


def test_a_presence_range_passes_sure_frames_whole_and_closes_unsure_ones_to_the_floor():
    from rtconv.framed import presence_scale

    p = torch.tensor([0.0, 0.3, 0.45, 0.6, 0.9, 1.0])
    pf = 10 ** (-30 / 20)
    torch.testing.assert_close(presence_scale(p, pf), p * (1 - pf) + pf)  # the default: the probability itself
    q = presence_scale(p, pf, 0.3, 0.6)
    torch.testing.assert_close(q, torch.tensor([pf, pf, 0.5 * (1 + pf), 1.0, 1.0, 1.0]))


@pytest.mark.parametrize("kw, message", [
    ({"presence": -1}, "presence"),
    ({"presence": 4, "presence_floor_db": -3}, "presence_floor_db must be a number of dB from 0 to 120, got -3"),
    ({"presence": 4, "presence_floor_db": "30"}, "presence_floor_db must be a number of dB from 0 to 120"),
    ({"presence": 4, "presence_range": [0.6, 0.3]}, r"presence_range must be two probabilities \[lo, hi\] with "
                                                    r"0 <= lo < hi <= 1, got \[0.6, 0.3\]; e.g. \[0.3, 0.6\]"),
    ({"presence": 4, "presence_range": 0.5}, "presence_range must be two probabilities"),
])
def test_bad_presence_settings_are_refused_in_one_sentence(kw, message):
    with pytest.raises(ConfigError, match=message):
        ConvDenoiser(**ASYM, **kw)
