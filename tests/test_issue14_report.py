"""The training report (issue 14): 'higher' when the MSE rose, and kernels one per stem plot."""

from __future__ import annotations

import pytest

from rtconv.train.trainer import TrainConfig, train

pytest.importorskip("matplotlib", reason="the report needs the train extra (matplotlib)")


def test_the_report_says_higher_when_the_test_mse_rose():
    from rtconv.train.report import _summary

    text = _summary({"train_loss": 0.02, "test_loss": 0.022, "loss": "l1",
                     "test": {"input_mse": 0.003341, "output_mse": 0.003551, "mse_reduction": 0.9408}})
    assert "test MSE 0.003341 -> 0.003551  (1.06x higher)" in text and "lower" not in text


def test_the_kernel_panel_draws_each_kernel_in_its_own_plot(tmp_path, monkeypatch):
    from matplotlib.container import StemContainer
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self), save(self, *a, **k))[1])
    png = tmp_path / "r.png"
    train(TrainConfig(task="sines", arch="mimo_cnn", arch_config={"taps": [9, 9], "features": [1, 5, 1]},
                      task_options={"train_examples": 16, "val_examples": 8, "test_examples": 8},
                      epochs=1, report=str(png), progress=False), log=lambda s: None)
    axes = figures[0].get_axes() + [ax for sf in figures[0].subfigs for ax in sf.get_axes()]
    stems = [ax for ax in set(axes) if any(isinstance(c, StemContainer) for c in ax.containers)]
    assert len(stems) == 10  # 5 kernels in layer 0 (1 -> 5), 5 in layer 1 (5 -> 1)
    assert all(sum(isinstance(c, StemContainer) for c in ax.containers) == 1 for ax in stems)
    assert {ax.get_title() for ax in stems} >= {"L0 0→0", "L1 4→0"}
