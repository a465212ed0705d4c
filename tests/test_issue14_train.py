"""Training report and help (issue 14): 'higher' when it is higher, no shipped model as the suggested output."""

from __future__ import annotations

import pytest

from rtconv.cli import main
from rtconv.train.trainer import mse_change


@pytest.mark.parametrize("before, after, words", [
    (0.003341, 0.003551, "1.06x higher"),  # the run the issue quotes ("0.94x lower")
    (0.003341, 0.001895, "1.76x lower"),
    (0.4175, 0.0790, "5.28x lower"),
    (0.5, 0.5, "unchanged"),
    (0.0, 0.1, "ratio undefined"),
])
def test_the_mse_change_says_lower_or_higher_as_it_is(before, after, words):
    assert mse_change(before, after) == words


def test_train_help_suggests_no_output_inside_the_shipped_models_folder(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--out models/" not in text and "--report models/" not in text
    assert "--recipe lab --out my-lab-denoiser.safetensors" in text


def test_train_refuses_a_non_safetensors_out_before_training(tmp_path, capsys):
    """``rtconv train --out model.wav`` is refused in one sentence at once, not after training."""
    from rtconv.cli import main

    code = main(["train", "sines", "--epochs", "50", "--out", str(tmp_path / "model.wav")])
    err = capsys.readouterr().err
    assert code != 0 and ".safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "model.wav").exists()
    assert "epoch" not in err and "rtconv train: task" not in err  # refused before any training


@pytest.mark.parametrize("flags, words", [
    (["--out", "{tmp}/nowhere/m.safetensors"], "--out '{tmp}/nowhere/m.safetensors': the folder '{tmp}/nowhere' does not exist"),
    (["--report", "{tmp}/r.txt"], "--report '{tmp}/r.txt': a report cannot be written as .txt; name it .png"),
    (["--report", "{tmp}/nowhere/r.png"], "--report '{tmp}/nowhere/r.png': the folder '{tmp}/nowhere' does not exist"),
    (["--report", "{tmp}"], "--report '{tmp}' is a folder"),
])
def test_train_refuses_an_output_it_could_not_write_before_training(tmp_path, capsys, flags, words):
    """These failed only when the run had finished (a matplotlib traceback for the report's format): the run was lost."""
    flags = [f.format(tmp=tmp_path) for f in flags]
    code = main(["train", "sines", "--epochs", "50", *flags])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"rtconv train: error: {words.format(tmp=tmp_path)}" in err
    assert "epoch" not in err and not list(tmp_path.iterdir())  # refused before any training, nothing written
