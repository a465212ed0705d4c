"""Models (issue 14): `rtconv info` reads as a summary and finds shipped models by name; weights carry a checksum."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import rtconv
from rtconv import CheckpointError
from rtconv.checkpoint import CHECKSUM_KEY, read_header, stored_checksum, tensors_sha256
from rtconv.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "models").glob("*.safetensors"))


# --- rtconv info --------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_info_on_every_shipped_model_is_a_summary_with_no_line_over_100_characters(name, capsys):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert lines[0] == str(ROOT / "models" / f"{name}.safetensors")
    for label in ("task", "sample rate", "latency", "parameters", "architecture"):
        assert any(line.startswith(f"  {label} ") for line in lines), label
    assert '{"' not in out  # no JSON walls: structured values are spelled out or left to --json


def test_info_of_a_trained_model_says_how_it_was_trained_and_its_headline_metrics(capsys):
    assert main(["info", "lab-denoiser"]) == 0
    out = capsys.readouterr().out
    assert "    loss          train 0.01871, validation 0.01855, test 0.0224 (l1)" in out
    assert "    test MSE      0.003341 -> 0.001895 (1.76x lower)" in out
    assert "    command       rtconv train --recipe lab" in out
    assert "    training      20 epochs (best 20), 2314.3 s, on cpu" in out
    assert "provenance.history: see --json" in out


def test_info_names_the_design_of_a_filter(capsys):
    assert main(["info", "speech-band"]) == 0
    assert "  design          band-pass 100-7000 Hz, 511 taps, hamming window, linear phase, padding same" \
        in capsys.readouterr().out


def test_info_finds_a_shipped_model_by_name_like_model_does(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RTCONV_MODELS", str(tmp_path / "shipped"))
    (tmp_path / "shipped").mkdir()
    rtconv.save(rtconv.FIR([1.0, 0.5]), tmp_path / "shipped" / "mine.safetensors", name="mine")
    monkeypatch.chdir(tmp_path)
    assert main(["info", "mine"]) == 0
    assert capsys.readouterr().out.startswith(str(tmp_path / "shipped" / "mine.safetensors") + "\n")
    assert main(["info", "mine.safetensors", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "mine"


def test_info_json_is_the_full_metadata_for_machines(capsys):
    assert main(["info", "denoiser", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    meta, tensors = read_header(ROOT / "models" / "denoiser.safetensors")
    assert {k: doc[k] for k in meta} == meta  # nothing summarised away
    assert set(doc["tensors"]) == set(tensors) and "weights_sha256" in doc


def test_info_wraps_a_long_description_under_its_label(tmp_path, capsys):
    words = " ".join(f"word{i}" for i in range(80))
    path = rtconv.save(rtconv.FIR([1.0]), tmp_path / "long.safetensors", description=words,
                       provenance={"command": "rtconv train " + " ".join(f"--flag{i} {i}" for i in range(60))})
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100
    i = next(i for i, line in enumerate(lines) if line.startswith("  description     word0 "))
    assert lines[i + 1].startswith(" " * 18 + "word")


# --- checksum -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    return rtconv.save(rtconv.MimoCNN([40, 40], [1, 5, 1]), tmp_path / "m.safetensors", sample_rate=16000)


def _flip_weight_bytes(path: Path, count: int = 400) -> None:
    """XOR the lowest byte of ``count`` float32 weights: still finite, no longer the saved model."""
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    start = 8 + n
    assert len(data) - start >= 4 * count
    for i in range(count):
        data[start + 4 * i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_saved_checkpoint_stores_the_sha256_of_its_tensors(saved):
    assert stored_checksum(saved) == tensors_sha256(load_file(str(saved)))
    assert len(stored_checksum(saved)) == 64


def test_flipped_weight_bytes_are_refused_in_one_sentence_naming_the_file(saved):
    _flip_weight_bytes(saved)
    tensors = load_file(str(saved))
    assert all(torch.isfinite(t).all() for t in tensors.values())  # only the checksum can tell
    with pytest.raises(CheckpointError) as info:
        rtconv.load(saved)
    msg = str(info.value)
    assert msg.startswith(f"the weights in {str(saved)!r} do not match the checksum stored when it was saved")
    assert "\n" not in msg and msg.endswith(".")


def test_info_refuses_damaged_weights_too(saved, capsys):
    _flip_weight_bytes(saved)
    assert main(["info", str(saved)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtconv info: error: the weights in") and "\n" not in err


def test_the_checksum_does_not_depend_on_tensor_order_but_on_every_byte():
    a = {"x": torch.arange(4.0), "y": torch.ones(2, 3)}
    b = {"y": torch.ones(2, 3), "x": torch.arange(4.0)}
    assert tensors_sha256(a) == tensors_sha256(b)
    c = {"x": torch.arange(4.0), "y": torch.ones(3, 2)}  # same bytes, other shape
    assert tensors_sha256(a) != tensors_sha256(c)
    d = {"x": torch.arange(4.0).to(torch.bfloat16), "y": torch.ones(2, 3)}
    assert len(tensors_sha256(d)) == 64


def test_an_older_file_without_a_checksum_loads_with_one_note(saved, tmp_path, caplog):
    meta, _ = read_header(saved)
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(saved)), str(old), metadata={"rtconv": json.dumps(meta)})  # as rtconv wrote before
    assert stored_checksum(old) is None
    with caplog.at_level(logging.INFO, logger="rtconv.checkpoint"):
        first = rtconv.load(old)
        rtconv.load(old)
    notes = [r for r in caplog.records if "no weights checksum" in r.getMessage()]
    assert len(notes) == 1 and repr(str(old)) in notes[0].getMessage()
    np.testing.assert_array_equal(first.body[0].weight.detach(), rtconv.load(saved).body[0].weight.detach())


def test_every_shipped_model_still_loads(caplog):
    for name in SHIPPED:
        model = rtconv.load(ROOT / "models" / f"{name}.safetensors")
        assert model.sample_rate


def test_the_checksum_key_sits_beside_the_rtconv_document_not_in_it(saved):
    meta, _ = read_header(saved)
    assert CHECKSUM_KEY not in meta  # re-saving a loaded model never carries an old checksum along
    again = rtconv.save(rtconv.load(saved), saved.parent / "again.safetensors")
    assert stored_checksum(again) == stored_checksum(saved)
