"""Checkpoints: round trips for every architecture, and every bad file refused in one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import rtconv
from rtconv import CheckpointError, designs
from rtconv.checkpoint import (
    FORMAT_VERSION,
    default_model_path,
    read_header,
    read_metadata,
)

ARCHS = {
    "fir": lambda: rtconv.FIR(np.hanning(33)),
    "fir_same": lambda: rtconv.FIR(np.hanning(33), padding="same"),
    "fir_learnable": lambda: rtconv.FIR(taps=9, learnable=True, bias=True),
    "mimo_cnn": lambda: rtconv.MimoCNN([40, 40], [1, 5, 1]),
    "mimo_cnn_same_dilated": lambda: rtconv.MimoCNN([5, 3], [1, 4, 2], dilations=[2, 3], padding="same"),
    "mimo_cnn_stereo_in": lambda: rtconv.MimoCNN([7], [2, 1], activation="relu"),
    "dilated_cnn": lambda: rtconv.DilatedCNN(channels=4, layers=3),
    "dilated_cnn_same": lambda: rtconv.DilatedCNN(channels=3, layers=2, padding="same", residual=False),
}


def _stream(model, x):
    s = rtconv.Streamer(model, dtype=np.float64)
    return np.concatenate([s.process(x[i : i + 37]) for i in range(0, len(x), 37)] + [s.flush()])


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_round_trip_gives_identical_weights_and_streamed_output(tmp_path, kind):
    torch.manual_seed(0)
    model = ARCHS[kind]()
    path = rtconv.save(model, tmp_path / "m.safetensors", sample_rate=16000, task="denoise",
                       provenance={"epochs": 3}, metrics={"snr_db": 1.5})
    loaded = rtconv.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = np.random.default_rng(1).standard_normal((300, model.in_channels))
    np.testing.assert_array_equal(_stream(model, x), _stream(loaded, x))
    assert loaded.sample_rate == 16000
    assert loaded.latency == model.latency


def test_metadata_describes_the_model_completely(tmp_path):
    model = rtconv.MimoCNN([40, 40], [1, 5, 1])
    path = rtconv.save(model, tmp_path / "m.safetensors", sample_rate=48000, task="denoise",
                       name="demo", description="a test", provenance={"command": "rtconv train x",
                       "dataset": "noise", "epochs": 4}, metrics={"val_loss": np.float32(0.25)})
    meta = read_metadata(path)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["architecture"] == {"name": "mimo_cnn", "config": model.config}
    assert (meta["sample_rate"], meta["in_channels"], meta["out_channels"]) == (48000, 1, 1)
    assert meta["task"] == "denoise" and meta["kernel_convention"] == "impulse-response"
    assert meta["latency_samples"] == 0 and meta["receptive_field_samples"] == 79
    assert meta["parameter_count"] == model.parameter_count() == 406
    assert [lay["weight_shape"] for lay in meta["layers"]] == [[5, 1, 40], [1, 5, 40]]
    prov = meta["provenance"]
    assert prov["command"] == "rtconv train x" and prov["epochs"] == 4
    assert prov["rtconv_version"] == rtconv.__version__ and prov["created"].startswith("20")
    assert meta["metrics"] == {"val_loss": 0.25}
    assert (meta["name"], meta["description"]) == ("demo", "a test")


def test_designed_filter_keeps_its_design_and_sample_rate(tmp_path):
    path = rtconv.save(designs.bandpass(300, 3400, taps=51, sample_rate=8000), tmp_path / "bp.safetensors")
    model = rtconv.load(path)
    assert model.sample_rate == 8000 and model.metadata["task"] == "filter"
    assert model.metadata["provenance"]["design"]["kind"] == "bandpass"
    assert model.metadata["design"]["high"] == 3400
    np.testing.assert_allclose(model.kernel, designs.bandpass(300, 3400, taps=51, sample_rate=8000).kernel)


def test_saving_again_after_loading_keeps_provenance(tmp_path):
    a = rtconv.save(rtconv.FIR([1.0, 0.5]), tmp_path / "a.safetensors", provenance={"dataset": "x"})
    b = rtconv.save(rtconv.load(a), tmp_path / "b.safetensors", metrics={"m": 1})
    meta = read_metadata(b)
    assert meta["provenance"]["dataset"] == "x" and meta["metrics"] == {"m": 1}


def test_save_refuses_nan_weights_and_leaves_no_file(tmp_path):
    model = rtconv.FIR(taps=4)
    with torch.no_grad():
        model.body[0].weight[0, 0, 2] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf weights"):
        rtconv.save(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; create it first"):
        rtconv.save(rtconv.FIR([1.0]), tmp_path / "nope" / "m.safetensors")


def test_save_into_a_folder_that_refuses_files_says_so_in_one_sentence(tmp_path, monkeypatch):
    import tempfile

    def refused(*args, **kwargs):  # what a read-only folder does for a user who is not root
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(CheckpointError) as e:
        rtconv.save(rtconv.FIR([1.0]), tmp_path / "m.safetensors")
    assert str(e.value) == (f"cannot save {str(tmp_path / 'm.safetensors')!r}: the folder {str(tmp_path)!r} cannot be "
                            "written to (Permission denied); choose another folder.")


def test_a_training_state_file_is_named_as_such_with_its_model(tmp_path):
    from safetensors.torch import save_file

    state = tmp_path / "run.state.safetensors"
    save_file({"x": torch.zeros(2)}, str(state), metadata={"rtconv_state": "{}"})
    with pytest.raises(CheckpointError) as e:
        rtconv.load(state)
    model = str(tmp_path / "run.safetensors")
    assert str(e.value) == (f"{str(state)!r} is the training state `rtconv train` keeps to continue a run "
                            f"(--resume {model!r}), not a model; load {model!r} instead.")


# --- files that must be refused -------------------------------------------------


@pytest.fixture
def good(tmp_path):
    return rtconv.save(rtconv.MimoCNN([3], [1, 2]), tmp_path / "good.safetensors", sample_rate=48000)


def _rewrite(src, dst, edit_meta=None, edit_tensors=None):
    meta, _ = read_header(src)
    from safetensors.torch import load_file

    tensors = load_file(str(src))
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(dst), metadata={"rtconv": json.dumps(meta)})
    return dst


def _bad_files(tmp_path, good):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my notes, not a model\n" * 20)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    pickle_file = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, pickle_file)
    data = good.read_bytes()
    cut_data = tmp_path / "cut_data.safetensors"
    cut_data.write_bytes(data[:-5])
    cut_head = tmp_path / "cut_head.safetensors"
    cut_head.write_bytes(data[:40])
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))

    def arch(m):
        m["architecture"]["name"] = "transformer9000"

    def newer(m):
        m["format_version"] = FORMAT_VERSION + 1

    def badcfg(m):
        m["architecture"]["config"]["taps"] = "many"

    def drop(t):
        del t["body.0.bias"]

    def reshape(t):
        t["body.0.weight"] = torch.zeros(2, 1, 4)

    def nan(t):
        t["body.0.weight"][0, 0, 1] = float("inf")

    def add(t):
        t["body.9.weight"] = torch.zeros(1)

    return [
        (tmp_path / "missing.safetensors", "does not exist"),
        (tmp_path, "is a folder"),
        (text, "not a safetensors file"),
        (empty, "is empty"),
        (tiny, "not a safetensors file"),
        (pickle_file, "not a safetensors file"),
        (cut_data, "is truncated"),
        (cut_head, "is truncated"),
        (plain, "not an rtconv checkpoint"),
        (_rewrite(good, tmp_path / "arch.safetensors", edit_meta=arch), "unknown architecture 'transformer9000'"),
        (_rewrite(good, tmp_path / "newer.safetensors", edit_meta=newer), f"format version {FORMAT_VERSION + 1}, newer"),
        (_rewrite(good, tmp_path / "cfg.safetensors", edit_meta=badcfg), "cannot be rebuilt"),
        (_rewrite(good, tmp_path / "drop.safetensors", edit_tensors=drop), "lacks tensor(s) body.0.bias"),
        (_rewrite(good, tmp_path / "add.safetensors", edit_tensors=add), "unexpected tensor(s) body.9.weight"),
        (_rewrite(good, tmp_path / "shape.safetensors", edit_tensors=reshape), "has shape (2, 1, 4) but"),
        (_rewrite(good, tmp_path / "nan.safetensors", edit_tensors=nan), "NaN/Inf weight"),
    ]


def test_every_bad_file_is_refused_with_one_sentence_naming_it(tmp_path, good):
    for path, expected in _bad_files(tmp_path, good):
        with pytest.raises(CheckpointError) as info:
            rtconv.load(path)
        msg = str(info.value)
        assert expected in msg, (path, msg)
        assert repr(str(path)) in msg, msg
        assert "\n" not in msg and msg.endswith("."), msg


def test_loading_a_pickle_never_unpickles_it(tmp_path, monkeypatch):
    import pickle

    path = tmp_path / "evil.safetensors"
    torch.save(rtconv.FIR([1.0]), path)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        rtconv.load(path)


def test_architecture_registered_later_loads(tmp_path):
    from rtconv.models import ARCHITECTURES, MimoCNN, register

    @register
    class Twin(MimoCNN):
        arch = "test_twin"

    try:
        path = rtconv.save(Twin([3], [1, 1]), tmp_path / "t.safetensors")
        assert type(rtconv.load(path)) is Twin
    finally:
        ARCHITECTURES.pop("test_twin")
    with pytest.raises(CheckpointError, match="unknown architecture 'test_twin'"):
        rtconv.load(path)


# --- default model ----------------------------------------------------------------


def test_a_missing_models_folder_is_named_as_missing_and_the_advice_fits_every_command(tmp_path, monkeypatch, capsys):
    """It said "no default model found in '...'" and "pass --model PATH", an option `rtconv info` does not have."""
    from rtconv.cli import main

    monkeypatch.setenv("RTCONV_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match=r"RTCONV_MODELS names '.*nowhere', which does not exist"):
        default_model_path()
    assert main(["info"]) != 0
    err = capsys.readouterr().err
    assert "`rtconv info PATH`" in err and "Traceback" not in err


def test_default_model_prefers_denoiser_then_lab_then_filter(tmp_path, monkeypatch):
    monkeypatch.setenv("RTCONV_MODELS", str(tmp_path))
    with pytest.raises(CheckpointError, match="no default model found"):
        default_model_path()
    rtconv.save(designs.lowpass(4000, 31, 48000), tmp_path / "speech-band.safetensors")
    assert default_model_path().name == "speech-band.safetensors"
    rtconv.save(rtconv.MimoCNN([3], [1, 1]), tmp_path / "lab-denoiser.safetensors", task="denoise")
    assert default_model_path().name == "lab-denoiser.safetensors"
    # a file called denoiser that is not a denoiser is skipped
    rtconv.save(rtconv.FIR([1.0]), tmp_path / "denoiser.safetensors", task="filter")
    assert default_model_path().name == "lab-denoiser.safetensors"
    rtconv.save(rtconv.MimoCNN([3], [1, 1]), tmp_path / "denoiser.safetensors", task="denoise")
    assert default_model_path().name == "denoiser.safetensors"


def test_shipped_default_model_loads():
    model = rtconv.load(default_model_path())
    assert model.sample_rate and model.metadata["task"] in {"denoise", "filter"}


def test_a_shipped_model_can_be_named_without_its_folder(tmp_path, monkeypatch):
    from rtconv.checkpoint import resolve

    monkeypatch.setenv("RTCONV_MODELS", str(tmp_path))
    rtconv.save(rtconv.FIR([1.0]), tmp_path / "mine.safetensors")
    monkeypatch.chdir(tmp_path.parent)
    assert resolve("mine") == resolve("mine.safetensors") == tmp_path / "mine.safetensors"
    with pytest.raises(CheckpointError, match=r"does not exist; check the path or name a shipped model \(mine\)"):
        rtconv.load(resolve("other"))
