"""Classifiers (rtconv.classifier) and the `classify` task: exact streaming, probabilities, metrics, CLI."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import rtconv
from rtconv import ConfigError, Streamer
from rtconv.classifier import ChannelSoftmax, ConvClassifier, LinearClassifier
from rtconv.layers import MimoConv1d
from rtconv.models import Model
from rtconv.train import losses, tasks
from rtconv.train.report import confusion_matrix, evaluate_classifier, format_confusion

from _streams import stream_in_sizes


def _offline(model, x):
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    with torch.no_grad():
        y = model.to(tdt)(torch.from_numpy(np.ascontiguousarray(x.T))[:, None].to(tdt))
    # (channels, classes, T) -> (T, channels * classes), channel-major like the streamer
    return y.reshape(-1, y.shape[-1]).numpy().T


def _stream(model, x, sizes):
    return stream_in_sizes(model, x, sizes)


def _assert_streams_exactly(model, x, sizes):
    ref = _offline(model, x)
    got, s = _stream(model, x, sizes)
    assert s.latency == model.latency
    got = got[s.latency:]
    assert got.shape == ref.shape
    tol = 2e-6 if x.dtype == np.float32 else 1e-12
    assert np.abs(got - ref).max(initial=0.0) <= tol


@pytest.mark.parametrize("sizes", [[1], [3], [7], [128], [4096], [5, 1, 13, 0, 2, 96]])
@pytest.mark.parametrize("make", [
    lambda: ConvClassifier(classes=4, channels=5, layers=3, taps=3, window=9),
    lambda: ConvClassifier(classes=3, channels=4, layers=2, taps=4, window=5, activation="tanh", padding="same"),
    lambda: LinearClassifier(classes=4, taps=17),
    lambda: LinearClassifier(classes=1, taps=8, padding="same"),
], ids=["cnn", "cnn-same", "linear", "linear-1class-same"])
def test_classifiers_stream_exactly_at_awkward_block_sizes(make, sizes):
    torch.manual_seed(0)
    model = make()
    x = np.random.default_rng(1).normal(size=(301, 1)).astype(np.float32)
    _assert_streams_exactly(model, x, sizes)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_mono_classifier_streams_each_channel_of_a_stereo_stream_exactly_in_float64(channels):
    torch.manual_seed(2)
    model = ConvClassifier(classes=4, channels=6, layers=3, window=11).double()
    x = np.random.default_rng(3).normal(size=(500, channels))
    _assert_streams_exactly(model, x, [7, 1, 64])
    assert Streamer(model, channels=channels).out_channels == 4 * channels


class _SoftmaxInside(Model):
    """A centred layer after the softmax: the streamer must feed it the zeros offline padding gives."""

    arch = "_test_softmax_inside"

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(MimoConv1d(1, 3, 5, padding="same"), ChannelSoftmax(),
                                  MimoConv1d(3, 2, 7, padding="same"), ChannelSoftmax())

    @property
    def config(self):
        return {}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 300), st.lists(st.integers(0, 90), min_size=1, max_size=5).filter(lambda p: sum(p) > 0),
       st.integers(0, 2**16))
def test_softmax_between_centred_layers_streams_exactly_for_any_length_and_blocks(length, sizes, seed):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).normal(size=(length, 1))
    _assert_streams_exactly(_SoftmaxInside().double(), x, sizes)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 20), st.integers(1, 400),
       st.lists(st.integers(1, 200), min_size=1, max_size=4), st.integers(0, 2**16))
def test_random_conv_classifiers_stream_exactly(classes, layers, taps, window, length, sizes, seed):
    torch.manual_seed(seed)
    model = ConvClassifier(classes=classes, channels=3, layers=layers, taps=taps, window=window)
    x = np.random.default_rng(seed).normal(size=(length, 1)).astype(np.float32)
    _assert_streams_exactly(model, x, sizes)


@pytest.mark.parametrize("model", [ConvClassifier(classes=4), LinearClassifier(classes=3)], ids=["cnn", "linear"])
def test_several_classes_give_probability_tracks_that_sum_to_one(model):
    y = model(torch.randn(2, 1, 400))
    assert y.shape == (2, model.config["classes"], 400)
    assert torch.all(y >= 0) and torch.allclose(y.sum(1), torch.ones(2, 400), atol=1e-6)


def test_one_class_gives_a_sigmoid_probability():
    y = LinearClassifier(classes=1, taps=4)(torch.randn(1, 1, 100))
    assert y.shape == (1, 1, 100) and torch.all((y > 0) & (y < 1))


def test_receptive_field_and_latency_of_the_cnn():
    m = ConvClassifier(classes=4, channels=4, layers=4, taps=3, window=64)
    assert m.receptive_field == 3 + 2 * (2 + 4 + 8) + 63
    assert m.latency == 0 and m.causal
    assert ConvClassifier(padding="same", window=9, layers=1, taps=3).latency == 1 + 4


@pytest.mark.parametrize("model", [ConvClassifier(classes=4, channels=5, window=9), LinearClassifier(classes=4)],
                         ids=["cnn", "linear"])
def test_classifier_checkpoints_round_trip_with_task_and_stream_the_same(tmp_path, model):
    path = tmp_path / "c.safetensors"
    rtconv.save(model, path, task="classify")
    loaded = rtconv.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.metadata["task"] == "classify" and loaded.out_channels == 4
    x = np.random.default_rng(0).normal(size=(700, 1)).astype(np.float32)
    np.testing.assert_array_equal(Streamer(loaded).process(x), Streamer(model).process(x))


@pytest.mark.parametrize("kwargs,match", [
    ({"classes": 0}, r"classes must be an integer >= 1, got 0"),
    ({"window": 0}, r"window must be an integer >= 1, got 0"),
    ({"activation": "swish"}, r"activation must be one of .* got 'swish'"),
    ({"padding": "valid"}, r"padding must be one of .* got 'valid'"),
])
def test_bad_classifier_arguments_are_refused_in_one_sentence(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ConvClassifier(**kwargs)


# ------------------------------------------------------------------------------ loss

def test_cross_entropy_is_categorical_over_channels_and_binary_for_one():
    p = torch.tensor([[[0.7], [0.2], [0.1]]])
    y = torch.tensor([[[1.0], [0.0], [0.0]]])
    assert float(losses.cross_entropy(p, y)) == pytest.approx(-np.log(0.7), rel=1e-5)
    q, t = torch.tensor([[[0.8, 0.3]]]), torch.tensor([[[1.0, 0.0]]])
    assert float(losses.cross_entropy(q, t)) == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2, rel=1e-5)


def test_cross_entropy_of_a_saturated_wrong_answer_is_finite_with_a_gradient():
    p = torch.tensor([[[0.0], [1.0]]], requires_grad=True)
    loss = losses.cross_entropy(p, torch.tensor([[[1.0], [0.0]]]))
    loss.backward()
    assert torch.isfinite(loss) and loss > 10 and torch.isfinite(p.grad).all()


# ------------------------------------------------------------------------------ data

def test_waveform_examples_are_deterministic_one_hot_and_balanced():
    ds = tasks.WaveformDataset(400, "train", seed=3, length=512)
    x, y = ds[5]
    x2, y2 = ds[5]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (1, 512) and y.shape == (4, 512)
    assert torch.all(y.sum(0) == 1) and torch.all(y == y[:, :1])
    counts = np.bincount([int(ds[i][1][:, 0].argmax()) for i in range(400)], minlength=4)
    assert counts.min() > 70  # uniform draw of four classes


def test_waveform_snr_is_what_the_info_says():
    ds = tasks.WaveformDataset(8, "test", seed=0, length=8192, snr_db=(10.0, 10.0))
    for i in range(8):
        x = ds[i][0][0].numpy().astype(np.float64)
        info = ds.info(i)
        theta_free = x.var()  # wave power + noise power, noise at -10 dB of the wave
        wave_power = info["amplitude"] ** 2 * {"sine": 0.5, "triangle": 1 / 3, "square": 1.0, "sawtooth": 1 / 3}[
            info["class"]]
        assert theta_free == pytest.approx(wave_power * 1.1, rel=0.1)


def test_splits_never_share_examples():
    a = tasks.WaveformDataset(50, "train", seed=0)
    b = tasks.WaveformDataset(50, "test", seed=0)
    assert all(not torch.equal(a[i][0], b[i][0]) for i in range(50))


def test_classify_task_has_four_outputs_and_its_own_metrics():
    td = tasks.make_task("classify", train_examples=4, val_examples=4, test_examples=4)
    assert (td.in_channels, td.out_channels, td.outputs) == (1, 4, list(tasks.WAVEFORMS))
    assert td.default_arch[0] == "conv_classifier" and td.evaluate is not None
    with pytest.raises(ConfigError, match=r"classify variant must be 'waveforms', got 'audio'"):
        tasks.make_task("classify", variant="audio")


# ------------------------------------------------------------------------------ metrics

class _Oracle(Model):
    """Outputs a fixed per-example answer: the test's stand-in for a trained model."""

    arch = "_test_oracle"

    def __init__(self, answers):
        super().__init__()
        self.body = nn.Sequential(MimoConv1d(1, 4, 1))
        self.answers = answers
        self.i = 0

    def forward(self, x):
        out = torch.zeros(x.shape[0], 4, x.shape[-1])
        for b in range(x.shape[0]):
            out[b, self.answers[self.i]] = 1.0
            self.i += 1
        return out


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    text = format_confusion(m, ["a", "b", "c"])
    assert "| a | 1 | 1 | 0 | 0.500 |" in text and "| c | 1 | 0 | 2 | 0.667 |" in text


def test_classifier_metrics_score_right_and_wrong_answers():
    data = tasks.materialize(tasks.WaveformDataset(40, "test", seed=1, length=256))
    truth = [int(data[i][1][:, 0].argmax()) for i in range(40)]
    wrong = [(t + 1) % 4 if i < 10 else t for i, t in enumerate(truth)]  # the first ten answered wrong
    r = evaluate_classifier(_Oracle(wrong), data, losses.cross_entropy, "cpu", list(tasks.WAVEFORMS))
    assert r["accuracy"] == pytest.approx(0.75) and r["sample_accuracy"] == pytest.approx(0.75)
    conf = np.array(r["confusion"])
    assert conf.sum() == 40 and np.trace(conf) == 30
    for i in range(10):
        assert conf[truth[i], wrong[i]] >= 1
    assert r["headline"]["test_accuracy"] == pytest.approx(0.75)


def test_classifier_metrics_group_accuracy_by_input_snr():
    ds = tasks.WaveformDataset(30, "test", seed=2, length=256)
    data = tasks.materialize(ds)
    truth = [int(data[i][1][:, 0].argmax()) for i in range(30)]
    infos = [ds.info(i) for i in range(30)]
    answers = [t if info["snr_db"] >= 20 else (t + 1) % 4 for t, info in zip(truth, infos)]
    r = evaluate_classifier(_Oracle(answers), data, losses.cross_entropy, "cpu", list(tasks.WAVEFORMS), infos)
    by = {b["bucket"]: b["accuracy"] for b in r["buckets"]}
    assert by[">= 20 dB"] == 1.0 and all(v == 0.0 for k, v in by.items() if k != ">= 20 dB")


# ------------------------------------------------------------------------------ training

def test_training_a_classifier_writes_accuracy_and_confusion_into_the_checkpoint(tmp_path, capsys):
    from rtconv.cli import main

    out = tmp_path / "w.safetensors"
    rc = main(["train", "classify", "--epochs", "1", "--train-examples", "32", "--val-examples", "8",
               "--test-examples", "16", "--arch-arg", "channels=4", "--arch-arg", "window=8", "--threads", "1",
               "--quiet", "--out", str(out)])
    assert rc == 0
    meta = rtconv.load(out).metadata
    t = meta["metrics"]["test"]
    assert meta["task"] == "classify" and meta["metrics"]["loss"] == "ce"
    assert 0.0 <= meta["metrics"]["test_accuracy"] <= 1.0 and np.array(t["confusion"]).sum() == 16
    assert rc == 0 and "test_accuracy" in json.dumps(meta["metrics"])


def test_the_report_of_a_classifier_is_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs the train extra (matplotlib)")
    from rtconv.train.trainer import TrainConfig, train

    png = tmp_path / "r.png"
    r = train(TrainConfig(task="classify", task_options={"train_examples": 16, "val_examples": 8,
                                                         "test_examples": 8, "length": 256},
                          arch_config={"channels": 3, "window": 4}, loss="ce", epochs=1, report=str(png),
                          progress=False))
    assert r.report == png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.metrics["test"]["kind"] == "classification"


def test_the_linear_baseline_trains_through_the_same_command(tmp_path):
    from rtconv.cli.train import build_config, configure
    import argparse

    p = argparse.ArgumentParser()
    configure(p)
    cfg = build_config(p.parse_args(["classify", "--arch", "linear_classifier", "--arch-arg", "taps=32"]))
    assert (cfg.task, cfg.arch, cfg.loss, cfg.arch_config) == ("classify", "linear_classifier", "ce", {"taps": 32})
