"""ONNX step models (rtconv export): onnxruntime, block by block, equals rtconv.Streamer.

Every round trip writes the file without the exporter's own check (``check=False``)
and compares it here, in plain onnxruntime with one thread, against a Streamer
fed the same blocks.
"""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import rtconv  # noqa: E402
from rtconv import FIR, ConfigError, DilatedCNN, MimoCNN, Streamer  # noqa: E402
from rtconv.checkpoint import models_dir  # noqa: E402
from rtconv.cli import main  # noqa: E402
from rtconv.denoiser import ConvDenoiser  # noqa: E402
from rtconv.framed import Framed, FrameGRU, MaskGate, PairPower, StridedConv1d, TransposedConv1d  # noqa: E402
from rtconv.layers import Activation, MimoConv1d, Residual  # noqa: E402
from rtconv.models import Model  # noqa: E402
from rtconv.onnx import OnnxStep, StepModel, export, pipewire_config, read_onnx_metadata, register_step  # noqa: E402
from rtconv.onnx.nodes import Node  # noqa: E402

TOL = 1e-4  # of full scale: the bar
SHIPPED = ("denoiser", "freqsep", "lab-denoiser", "speech-band")
few = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _blocks(rng, n, channels, count):
    """Full-scale noise, with a silent block and an impulse among them."""
    out = [rng.uniform(-1.0, 1.0, size=(n, channels)).astype(np.float32) for _ in range(count)]
    if count > 3:
        out[1][:] = 0
        out[2][:] = 0
        out[2][n // 2] = 1.0
    return out


def roundtrip(model, n, channels=None, tmp_path=None, blocks=None, seed=0):
    """Export ``model`` at block size ``n``; return the largest |onnxruntime - Streamer| over the blocks."""
    path = tmp_path / "m.onnx"
    model.eval()
    exported = export(model, path, n, channels, check=False)
    run = OnnxStep(path)
    s = Streamer(model, channels=exported.channels, block_size=n)
    assert (run.block_size, run.channels, run.out_channels) == (n, s.channels, s.out_channels)
    if blocks is None:
        blocks = max(6, -(-(model.receptive_field + model.latency + 200) // n))
    err = 0.0
    for x in _blocks(np.random.default_rng(seed), n, s.channels, blocks):
        err = max(err, float(np.abs(run.process(x) - s.process(x)).max()))
    return err


# ---------------------------------------------------------------- every architecture


@st.composite
def mimo_cnns(draw):
    layers = draw(st.integers(1, 3))
    taps = draw(st.lists(st.integers(1, 48), min_size=layers, max_size=layers))
    features = draw(st.lists(st.integers(1, 5), min_size=layers + 1, max_size=layers + 1))
    dilations = draw(st.lists(st.integers(1, 6), min_size=layers, max_size=layers))
    padding = draw(st.sampled_from(["causal", "same"]))
    activation = draw(st.sampled_from(["tanh", "relu", "sigmoid", "leaky_relu"]))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    return MimoCNN(taps, features, activation, dilations, padding=padding)


@few
@given(mimo_cnns(), st.sampled_from([1, 3, 7, 64, 333]), st.integers(1, 2))
def test_random_mimo_cnns_export_and_match_the_streamer(tmp_path, model, n, channels):
    channels = channels if model.in_channels == 1 else model.in_channels
    assert roundtrip(model, n, channels, tmp_path) <= TOL


@few
@given(st.integers(1, 3), st.integers(1, 2), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from(["causal", "same"]), st.booleans(), st.sampled_from([1, 5, 128, 200]), st.integers(0, 99))
def test_random_dilated_cnns_export_and_match_the_streamer(tmp_path, fin, fout, width, layers, taps, padding, residual,
                                                           n, seed):
    torch.manual_seed(seed)
    model = DilatedCNN(fin, fout, width, layers, taps, residual=residual, padding=padding)
    assert roundtrip(model, n, fin, tmp_path) <= TOL


@pytest.mark.parametrize("padding", ["causal", "same"])
@pytest.mark.parametrize("n", [128, 1000])
def test_long_firs_export_and_match_the_streamer_fft(tmp_path, padding, n):
    kernel = np.random.default_rng(3).normal(size=4096) / 64
    assert roundtrip(FIR(kernel, padding=padding), n, 1, tmp_path) <= TOL


@few
@given(st.sampled_from([(16, 8), (16, 6), (12, 5), (8, 8)]), st.integers(1, 12), st.integers(0, 2), st.sampled_from([0, 5]),
       st.sampled_from([1, 3, 7, 8, 16, 50, 128]), st.integers(1, 2), st.integers(0, 99))
def test_random_denoisers_export_at_any_block_size(tmp_path, window_hop, width, blocks, gru, n, channels, seed):
    """Block sizes that are and are not multiples of the hop, shorter and longer than it; with and without a GRU."""
    window, hop = window_hop
    torch.manual_seed(seed)
    model = ConvDenoiser(window=window, hop=hop, channels=width, blocks=blocks, gru=gru, activation="tanh",
                         attenuation_limit_db=[None, 12.0][seed % 2])
    with torch.no_grad():  # leave the pass-through start: let the mask and the GRU branch act
        for p in model.gate.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    assert roundtrip(model, n, channels, tmp_path) <= TOL


@pytest.mark.parametrize("n", [1, 7, 8, 50])
def test_a_denoiser_with_a_long_analysis_window_exports_at_any_block_size(tmp_path, n):
    torch.manual_seed(n)
    model = ConvDenoiser(window=16, hop=8, channels=6, blocks=1, gru=4, activation="tanh", learn_filterbank=False,
                         analysis_window=48)
    with torch.no_grad():
        for p in model.gate.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    assert roundtrip(model, n, 1, tmp_path) <= TOL


@pytest.mark.parametrize("n, channels, limit, presence, prange", [
    (1, 1, None, 0, None), (7, 2, 12.0, 0, None), (8, 1, None, 0, None), (50, 2, None, 0, None), (1, 1, None, 3, None),
    (7, 2, 12.0, 3, None), (7, 1, None, 3, [0.3, 0.6])])
def test_a_denoiser_with_a_deep_filter_exports_at_any_block_size(tmp_path, n, channels, limit, presence, prange):
    torch.manual_seed(n)
    extra = {} if prange is None else {"presence_range": prange}
    model = ConvDenoiser(window=16, hop=8, channels=6, blocks=1, gru=4, activation="tanh", learn_filterbank=False,
                         deep_filter=[3, 4, 2], phase_features=n % 4, attenuation_limit_db=limit, presence=presence,
                         **extra)
    with torch.no_grad():
        for p in model.gate.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    assert roundtrip(model, n, channels, tmp_path) <= TOL


class _Framed(Model):
    """A Framed layer with what the denoiser does not use: encoder bias, a plain Sequential body, odd windows."""

    arch = "_test_export_framed"

    def __init__(self, enc_taps, dec_taps, stride, width=6):
        super().__init__()
        est = nn.Sequential(PairPower(), MimoConv1d(width // 2, 4, 2), Activation("tanh"),
                            Residual(nn.Sequential(FrameGRU(4, 3), MimoConv1d(3, 4, 1))),
                            Residual(nn.Sequential(MimoConv1d(4, 4, 3, 2), Activation("relu"))),
                            MimoConv1d(4, width // 2, 1), Activation("sigmoid"))
        self.body = nn.Sequential(
            MimoConv1d(1, 1, 5, padding="same"),
            Framed(StridedConv1d(1, width, enc_taps, stride, bias=True), MaskGate(est, floor=0.1),
                   TransposedConv1d(width, 1, dec_taps, stride)),
            Activation("tanh"),
        )


@pytest.mark.parametrize("enc_taps,dec_taps,stride", [(12, 8, 4), (3, 5, 4), (5, 2, 3), (1, 1, 1), (7, 7, 7)])
@pytest.mark.parametrize("n", [1, 5, 12, 64])
def test_framed_layers_with_bias_short_windows_and_delays_around_them_export(tmp_path, enc_taps, dec_taps, stride, n):
    torch.manual_seed(enc_taps + 10 * dec_taps)
    assert roundtrip(_Framed(enc_taps, dec_taps, stride), n, 1, tmp_path) <= TOL


@pytest.mark.parametrize("build,n", [
    ("ConvClassifier()", 128), ("ConvClassifier(classes=3, padding='same')", 100),
    ("LinearClassifier(classes=1)", 64), ("FramedVAD(gru=8)", 128), ("FramedVAD()", 480),
])
def test_the_classifiers_and_the_vad_export(tmp_path, build, n):
    from rtconv.classifier import ConvClassifier, FramedVAD, LinearClassifier  # noqa: F401

    torch.manual_seed(7)
    assert roundtrip(eval(build), n, 1, tmp_path) <= TOL


# ---------------------------------------------------------------- shipped models


@pytest.mark.parametrize("n", [128, 480])
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_exports_and_matches_the_streamer(tmp_path, name, n):
    model = rtconv.load(models_dir() / f"{name}.safetensors")
    assert roundtrip(model, n, 1, tmp_path) <= TOL


def test_a_mono_shipped_model_exports_for_stereo_with_independent_channels(tmp_path):
    model = rtconv.load(models_dir() / "freqsep.safetensors")
    assert roundtrip(model, 256, 2, tmp_path) <= TOL  # four outputs, channel-major like the streamer


def test_every_shipped_model_has_its_metadata_in_the_file(tmp_path):
    for name in SHIPPED:
        model = rtconv.load(models_dir() / f"{name}.safetensors")
        exported = export(model, tmp_path / f"{name}.onnx", 256, check=False)
        meta = read_onnx_metadata(tmp_path / f"{name}.onnx")
        assert meta == exported.metadata
        assert meta["name"] == name
        assert meta["task"] == model.metadata["task"]
        assert int(meta["sample_rate"]) == model.sample_rate
        assert int(meta["block_size"]) == 256
        assert int(meta["latency_samples"]) == model.latency
        assert meta["rtconv_version"] == rtconv.__version__
        assert meta["states"].split(",") == [k for k, _ in exported.states] != [""]
        assert OnnxStep(tmp_path / f"{name}.onnx").metadata == meta


# ---------------------------------------------------------------- the convention


def test_every_other_input_is_a_state_with_an_output_of_the_same_shape_starting_at_zero(tmp_path):
    import onnx

    model = ConvDenoiser(window=16, hop=6, channels=4, blocks=2, gru=3)
    export(model, tmp_path / "m.onnx", 50, check=False)
    graph = onnx.load(str(tmp_path / "m.onnx")).graph

    def shape(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = {v.name: v for v in graph.input}
    outs = {v.name: v for v in graph.output}
    assert shape(ins["audio_in"]) == [50, 1] and shape(outs["audio_out"]) == [50, 1]
    states = [k for k in ins if k != "audio_in"]
    assert {"time", "body.0.phase", "body.0.input", "body.0.overlap"} <= set(states)
    assert set(outs) == {"audio_out", *(f"{k}_out" for k in states)}
    for k in states:
        assert shape(outs[f"{k}_out"]) == shape(ins[k])
        assert ins[k].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # hosts copy states as floats


def test_the_comparison_fails_when_states_are_not_fed_back(tmp_path):
    """The round trip can fail: a host that forgets the states does not match the streamer."""
    model = rtconv.load(models_dir() / "lab-denoiser.safetensors")
    export(model, tmp_path / "m.onnx", 16, check=False)
    run, s = OnnxStep(tmp_path / "m.onnx"), Streamer(model, block_size=16)
    errs = []
    for x in _blocks(np.random.default_rng(0), 16, 1, 8):
        run.reset()
        errs.append(np.abs(run.process(x) - s.process(x)).max())
    assert max(errs) > 100 * TOL


def test_nonfinite_input_is_zeroed_like_the_streamer_does(tmp_path):
    model = rtconv.load(models_dir() / "lab-denoiser.safetensors")
    export(model, tmp_path / "m.onnx", 32, check=False)
    run, s = OnnxStep(tmp_path / "m.onnx"), Streamer(model, block_size=32)
    for k, x in enumerate(_blocks(np.random.default_rng(1), 32, 1, 6)):
        if k == 2:
            x[[3, 9, 20], 0] = [np.nan, np.inf, -np.inf]
        got = run.process(x)
        assert np.isfinite(got).all()
        assert np.abs(got - s.process(x)).max() <= TOL


def test_garbage_in_the_counters_does_not_break_later_blocks(tmp_path):
    """PipeWire's plugin does not zero the tensors it allocates: counters read from junk must still index safely."""
    model = ConvDenoiser(window=16, hop=6, channels=4, blocks=1, gru=3)
    export(model, tmp_path / "m.onnx", 50, check=False)
    run = OnnxStep(tmp_path / "m.onnx")
    run.states = {k: np.full_like(v, np.nan if k == "time" else 1e9) for k, v in run.states.items()}
    for x in _blocks(np.random.default_rng(2), 50, 1, 5):
        assert run.process(x).shape == (50, 1)  # junk history may give junk audio for a while, never an error
    assert 0 <= float(run.states["body.0.phase"][0]) < 6 and 0 <= float(run.states["time"][0]) <= model.latency


def test_a_step_model_in_torch_equals_its_onnx_file(tmp_path):
    model = ConvDenoiser(window=16, hop=6, channels=4, blocks=2, gru=3)
    step = StepModel(model, 20)
    export(model, tmp_path / "m.onnx", 20, check=False)
    run = OnnxStep(tmp_path / "m.onnx")
    states = step.initial_states()
    for x in _blocks(np.random.default_rng(3), 20, 1, 10):
        with torch.no_grad():
            y, *states = step(torch.from_numpy(x), *states)
        assert np.abs(run.process(x) - y.numpy()).max() <= 1e-5


# ---------------------------------------------------------------- a layer of one's own


class _Gain(nn.Module):
    """A layer rtconv does not ship: taught to the streamer and the step model by registering it."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain


class _GainCell(rtconv.cells.Cell):
    kind = "pointwise"

    def __init__(self, gain):
        self.gain = gain

    def process(self, x):
        return x.mul_(self.gain)


class _GainNode(Node):
    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, x, flow, valid):
        return x * self.gain


def test_a_layer_registered_for_both_engines_exports_and_matches_the_streamer(tmp_path):
    rtconv.cells.register_cell(_Gain, lambda module, ctx: ctx.masked(_GainCell(module.gain), module))
    register_step(_Gain, lambda module, ctx: ctx.masked(_GainNode(module.gain), module))
    torch.manual_seed(11)
    model = _Odd(nn.Sequential(MimoConv1d(1, 2, 5, padding="same"), _Gain(-0.5), MimoConv1d(2, 1, 3)))
    assert roundtrip(model, 7, 1, tmp_path) <= TOL


@pytest.mark.parametrize("body,layer", [
    (nn.Sequential(MimoConv1d(1, 2, 3), PairPower()), "PairPower"),  # frame-rate layers at the sample rate
    (nn.Sequential(MimoConv1d(1, 2, 3), FrameGRU(2, 2)), "FrameGRU"),
    (Framed(StridedConv1d(1, 4, 8, 4), nn.Sequential(MimoConv1d(4, 4, 1), TransposedConv1d(4, 4, 2, 2)),
            TransposedConv1d(4, 1, 8, 4)), "TransposedConv1d"),  # a rate change inside a framed body
    (type("Stack", (nn.Sequential,), {})(MimoConv1d(1, 1, 3)), "Stack"),  # its forward may not be Sequential's
])
def test_a_layer_where_it_has_no_step_is_refused_by_name(body, layer):
    with pytest.raises(ConfigError) as e:
        StepModel(_Odd(body), 64)
    assert str(e.value).startswith(f"a {layer} layer cannot be exported to a step model;") and _one_sentence(str(e.value))


# ---------------------------------------------------------------- refusals


def _one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and not re.search(r"\. [A-Z]", message)


class _Odd(Model):
    arch = "_test_export_odd"

    def __init__(self, body):
        super().__init__()
        self.body = body


@pytest.mark.parametrize("body,words", [
    (nn.Sequential(MimoConv1d(1, 2, 3), nn.GELU()), "a GELU layer cannot be exported"),
    (nn.Sequential(StridedConv1d(1, 4, 8, 4)), "outside a Framed"),
    (nn.Sequential(Framed(StridedConv1d(1, 4, 8, 4), MimoConv1d(4, 4, 3, padding="same"), TransposedConv1d(4, 1, 8, 4))),
     "must be causal"),
])
def test_a_model_that_cannot_export_is_refused_in_one_sentence(tmp_path, body, words):
    with pytest.raises(ConfigError) as e:
        export(_Odd(body), tmp_path / "m.onnx", 64)
    assert words in str(e.value) and _one_sentence(str(e.value))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kw,words", [
    ({"block_size": 0}, "block_size must be a positive number of frames, got 0"),
    ({"block_size": 64, "channels": 3}, "mixes 2 input channels, so the stream must have 2 channels, not 3"),
])
def test_bad_block_sizes_and_channel_counts_are_refused(tmp_path, kw, words):
    with pytest.raises(ConfigError, match=words):
        export(MimoCNN([3], [2, 1]), tmp_path / "m.onnx", **kw)


def test_an_output_that_is_not_onnx_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        export(MimoCNN([3], [1, 1]), tmp_path / "m.safetensors", 64)


def test_a_file_that_fails_the_check_is_not_written(tmp_path, monkeypatch):
    import rtconv.onnx.exporter as ex

    monkeypatch.setattr(ex, "verify", lambda *a, **k: 0.5)
    with pytest.raises(ConfigError, match="differs from rtconv.Streamer by 0.5 of full scale"):
        export(MimoCNN([3], [1, 1]), tmp_path / "m.onnx", 64)
    assert list(tmp_path.iterdir()) == []


def test_blocks_of_another_size_are_refused_by_the_runner(tmp_path):
    export(MimoCNN([3], [1, 1]), tmp_path / "m.onnx", 64, check=False)
    with pytest.raises(rtconv.BlockError, match=r"exactly \(64, 1\)"):
        OnnxStep(tmp_path / "m.onnx").process(np.zeros((63, 1), np.float32))


# ---------------------------------------------------------------- command line and PipeWire


def test_the_command_exports_a_shipped_model_by_name(tmp_path, capsys):
    out = tmp_path / "lab.onnx"
    assert main(["export", "lab-denoiser", "-o", str(out), "--block-size", "64"]) == 0
    text = capsys.readouterr().out
    assert "checked" in text and "largest difference" in text
    assert read_onnx_metadata(out)["name"] == "lab-denoiser"
    assert main(["export", "lab-denoiser", "-o", str(out), "-b", "64"]) == 1  # exists
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["export", "lab-denoiser", "-o", str(out), "-b", "64", "--overwrite"]) == 0


def test_the_command_bakes_the_attenuation_limit_into_a_denoiser(tmp_path):
    out = tmp_path / "d.onnx"
    assert main(["export", "denoiser", "-o", str(out), "-b", "96", "--atten-lim", "6"]) == 0
    assert read_onnx_metadata(out)["attenuation_limit_db"] == "6"
    model = rtconv.load(models_dir() / "denoiser.safetensors")
    model.attenuation_limit_db = 6.0
    run, s = OnnxStep(out), Streamer(model, block_size=96)
    for x in _blocks(np.random.default_rng(4), 96, 1, 8):
        assert np.abs(run.process(x) - s.process(x)).max() <= TOL


def test_the_pipewire_config_names_every_tensor_with_its_shape(tmp_path):
    out, conf = tmp_path / "d.onnx", tmp_path / "d.conf"
    assert main(["export", "denoiser", "-o", str(out), "-b", "480", "--pipewire", str(conf)]) == 0
    text = conf.read_text()
    run = OnnxStep(out)
    assert f'filename  = "{out.resolve()}"' in text and "blocksize = 480" in text
    assert "type  = onnx" in text and "media.class    = Audio/Source" in text and 'node.latency     = "480/48000"' in text
    assert '"audio_in" = { dimensions = [ 480 1 ] data = "port:in" }' in text
    assert '"audio_out" = { dimensions = [ 480 1 ] data = "port:out" }' in text
    for k, v in run.states.items():
        dims = " ".join(map(str, v.shape))
        assert f'"{k}" = {{ dimensions = [ {dims} ] data = "tensor:{k}_out" }}' in text
        assert f'"{k}_out" = {{ dimensions = [ {dims} ] }}' in text
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("flag", ["-o", "--pipewire"])
def test_an_output_in_a_missing_folder_is_refused_before_anything_is_written(tmp_path, capsys, flag):
    onnx, conf = tmp_path / "sb.onnx", tmp_path / "sb.conf"
    bad = tmp_path / "nodir" / ("x.onnx" if flag == "-o" else "x.conf")
    args = ["-o", str(bad if flag == "-o" else onnx), "--pipewire", str(bad if flag == "--pipewire" else conf)]
    assert main(["export", "speech-band", "-b", "128", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"rtconv export: error: {flag} {str(bad)!r}: the folder {str(bad.parent)!r} does not exist; "
                   "create it first.")
    assert list(tmp_path.iterdir()) == []


def test_a_pipewire_microphone_is_refused_for_a_detector_whose_output_is_not_sound(tmp_path, capsys):
    args = ["export", "vad", "-o", str(tmp_path / "v.onnx"), "-b", "480", "--pipewire", str(tmp_path / "v.conf")]
    assert main(args) == 1
    assert "is a 'vad' model whose output is a probability, not sound; export it without --pipewire." in \
        capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_pipewire_config_is_refused_for_a_model_with_two_outputs(tmp_path, capsys):
    args = ["export", "freqsep", "-o", str(tmp_path / "f.onnx"), "-b", "128", "--pipewire", str(tmp_path / "f.conf")]
    assert main(args) == 1
    assert "--pipewire needs a one-channel model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    exported = export(rtconv.load(models_dir() / "freqsep.safetensors"), tmp_path / "f.onnx", 128, check=False)
    with pytest.raises(ConfigError, match="only for a one-channel step model"):
        pipewire_config(exported)


# ---------------------------------------------------------------- Streamer(engine="onnx")


def _both(model, sizes, channels=None, blocks=30, seed=0, change=None):
    """Largest |onnx engine - torch engine| over blocks of ``sizes`` (cycled) and the flushed tails."""
    t = Streamer(model, channels=channels, block_size=sizes[0])
    o = Streamer(model, channels=channels, block_size=sizes[0], engine="onnx")
    rng = np.random.default_rng(seed)
    err = 0.0
    for k in range(blocks):
        if change is not None and k == blocks // 2:
            change(model)
        x = rng.uniform(-1.0, 1.0, size=(sizes[k % len(sizes)], t.channels)).astype(np.float32)
        y = o.process(x)
        assert y.dtype == np.float32 and y.shape == (len(x), t.out_channels)
        err = max(err, float(np.abs(y - t.process(x)).max(initial=0.0)))
    tail_t, tail_o = t.flush(), o.flush()
    assert tail_o.shape == tail_t.shape == (model.latency, t.out_channels)
    return max(err, float(np.abs(tail_o - tail_t).max(initial=0.0)))


@pytest.mark.parametrize("name,sizes,channels", [
    ("denoiser", [128], 1), ("denoiser", [96, 7, 300, 128], 2), ("speech-band", [1024, 33], 1),
    ("freqsep", [256, 1], 2), ("lab-denoiser", [128, 0, 5], 1),
])
def test_the_onnx_engine_streams_like_the_torch_engine_at_any_block_lengths(name, sizes, channels):
    model = rtconv.load(models_dir() / f"{name}.safetensors")
    assert _both(model, sizes, channels) <= TOL


def test_the_onnx_engine_follows_a_strength_change_in_a_running_stream():
    model = rtconv.load(models_dir() / "denoiser.safetensors")
    assert _both(model, [128], change=lambda m: setattr(m, "attenuation_limit_db", 6.0)) <= TOL


def test_the_onnx_engine_resets_and_keeps_weights_it_was_built_with():
    model = ConvDenoiser(window=16, hop=6, channels=4, blocks=1, gru=3)
    o, t = Streamer(model, block_size=10, engine="onnx"), Streamer(model, block_size=10)
    x = np.random.default_rng(5).uniform(-1, 1, size=(10, 1)).astype(np.float32)
    o.process(x)
    o.reset()
    with torch.no_grad():
        model.encoder.weight.mul_(2.0)  # a running streamer keeps its copy, with either engine
    assert np.abs(o.process(x) - t.process(x)).max() <= TOL
    assert np.abs(o.process(x[:3]) - t.process(x[:3])).max() <= TOL  # a new length, built from the copy


@pytest.mark.parametrize("kw,words", [
    ({"engine": "tensorrt"}, "engine must be 'torch' or 'onnx', got 'tensorrt'"),
    ({"engine": "onnx", "dtype": np.float64}, "engine='onnx' computes in float32"),
])
def test_the_engine_choice_is_checked(kw, words):
    with pytest.raises(ConfigError, match=words):
        Streamer(MimoCNN([3], [1, 1]), **kw)


def test_the_onnx_engine_refuses_a_model_whose_end_it_cannot_give_exactly():
    with pytest.raises(ConfigError, match="cannot end this model's stream exactly") as e:
        Streamer(MimoCNN([5, 5], [1, 2, 1], padding="same"), engine="onnx")
    assert _one_sentence(str(e.value))
