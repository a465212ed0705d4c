"""Behaviour of the offline trainer: tasks learn, checkpoints deploy, bad input is refused."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import rtconv
from rtconv import Streamer
from rtconv.checkpoint import read_metadata
from rtconv.errors import ConfigError
from rtconv.train import losses, tasks
from rtconv.train.trainer import TrainConfig, evaluate, pick_device, train

ROOT = Path(__file__).resolve().parents[1]


def _quiet_train(cfg, td=None):
    return train(cfg, td, log=lambda s: None)


def _streams_like_offline(model, seconds_in: np.ndarray, block: int):
    offline = model(torch.from_numpy(seconds_in.T[None].astype(np.float32)))[0].detach().numpy().T
    s = Streamer(model)
    parts = [s.process(seconds_in[i:i + block]) for i in range(0, len(seconds_in), block)]
    parts.append(s.flush())
    streamed = np.concatenate(parts)[model.latency:]
    np.testing.assert_allclose(streamed, offline, rtol=1e-4, atol=1e-5)


@pytest.fixture
def speech_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("speech-cache"))


def _task_cases(cache):
    return {
        "sines": ("sines", {"train_examples": 64, "val_examples": 16, "test_examples": 16}, "adam", 0.02),
        "freqsep-classic": ("freqsep", {"train_examples": 64, "val_examples": 16, "test_examples": 16}, "adam", 0.02),
        "freqsep-audio": ("freqsep", {"variant": "audio", "sample_rate": 16000, "seconds": 0.05,
                                      "train_examples": 32, "val_examples": 8, "test_examples": 8},
                          "adam", 0.005),
        "denoise": ("denoise", {"sample_rate": 8000, "seconds": 0.25, "utterances": 6,
                                "train_examples": 32, "val_examples": 8, "test_examples": 8,
                                "cache_dir": cache}, "adam", 0.01),
    }


@pytest.mark.parametrize("case", ["sines", "freqsep-classic", "freqsep-audio", "denoise"])
def test_each_task_trains_loss_falls_and_checkpoint_streams(case, tmp_path, speech_cache):
    task, opts, optimizer, lr = _task_cases(speech_cache)[case]
    out = tmp_path / f"{case}.safetensors"
    arch = ("mimo_cnn", {"taps": [16], "features": [1, 2]}) if case == "freqsep-audio" else (None, None)
    if case == "denoise":
        arch = ("mimo_cnn", {"taps": [8, 8], "features": [1, 3, 1]})
    cfg = TrainConfig(task=task, task_options=opts, arch=arch[0], arch_config=arch[1],
                      optimizer=optimizer, lr=lr, epochs=4, batch_size=8, out=str(out),
                      command=f"rtconv train {task} (test)", progress=False)
    result = _quiet_train(cfg)
    h = result.history["train_loss"]
    assert h[-1] < h[0], h
    model = rtconv.load(out)
    meta = read_metadata(out)
    assert meta["task"] == task
    assert meta["provenance"]["command"] == f"rtconv train {task} (test)"
    assert meta["metrics"]["test_loss"] == pytest.approx(result.metrics["test_loss"])
    assert "snr_improvement_db" in json.dumps(meta["metrics"])
    with torch.no_grad():
        for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
            torch.testing.assert_close(a, b)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 1)).astype(np.float32) * 0.1
    with torch.no_grad():
        for block in (1, 7, 128):
            _streams_like_offline(model, x, block)


def test_sines_filter_comes_out_low_pass_and_cuts_test_mse():
    cfg = TrainConfig(task="sines", task_options={"train_examples": 512, "val_examples": 64,
                                                  "test_examples": 128},
                      lr=0.01, epochs=6, progress=False)
    r = _quiet_train(cfg)
    k = r.model.kernel
    h = np.abs(np.fft.rfft(k, 256))
    assert h[:5].mean() > 3 * h[64:].mean()  # passes 0-4 cycles, rejects the top half
    assert r.metrics["test"]["mse_reduction"] > 3


def test_best_checkpoint_is_written_before_the_end_and_resume_continues_history(tmp_path):
    out = tmp_path / "s.safetensors"
    opts = {"train_examples": 32, "val_examples": 8, "test_examples": 8}
    _quiet_train(TrainConfig(task="sines", task_options=opts, epochs=2, out=str(out), progress=False))
    first = read_metadata(out)["provenance"]
    assert first["epochs_done"] == 2 and first["final"] is True
    out2 = tmp_path / "s2.safetensors"
    r = _quiet_train(TrainConfig(task="sines", task_options=opts, epochs=3, resume=str(out),
                                 out=str(out2), progress=False))
    assert len(r.history["train_loss"]) == 5
    assert r.history["train_loss"][:2] == first["history"]["train_loss"]


def test_early_stop_ends_training_after_patience_epochs_without_improvement():
    opts = {"train_examples": 16, "val_examples": 8, "test_examples": 8}
    # lr tiny: validation loss stops improving at float resolution almost at once
    r = _quiet_train(TrainConfig(task="sines", task_options=opts, epochs=50, lr=1e-9,
                                 optimizer="sgd", patience=2, progress=False))
    assert r.metrics["epochs_run"] < 50


def test_same_seed_gives_identical_weights():
    opts = {"train_examples": 32, "val_examples": 8, "test_examples": 8}
    a = _quiet_train(TrainConfig(task="freqsep", task_options=opts, epochs=2, seed=3, progress=False))
    b = _quiet_train(TrainConfig(task="freqsep", task_options=opts, epochs=2, seed=3, progress=False))
    np.testing.assert_array_equal(a.model.kernel, b.model.kernel)


@pytest.mark.parametrize("micro", [1, 3, 5])
def test_a_batch_computed_in_pieces_takes_the_step_of_the_whole_batch(micro):
    opts = {"train_examples": 40, "val_examples": 8, "test_examples": 8}
    cfg = dict(task="sines", task_options=opts, epochs=3, batch_size=8, optimizer="adam", lr=0.01, seed=3,
               progress=False)
    whole = _quiet_train(TrainConfig(**cfg))
    pieces = _quiet_train(TrainConfig(**cfg, micro_batch=micro))  # 8 = 3+3+2, 5+3, eight of 1
    for (k, a), b in zip(whole.model.state_dict().items(), pieces.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=k)
    assert pieces.history["train_loss"] == pytest.approx(whole.history["train_loss"], rel=1e-5)


def test_pieces_as_large_as_the_batch_change_nothing_at_all():
    opts = {"train_examples": 24, "val_examples": 8, "test_examples": 8}
    cfg = dict(task="sines", task_options=opts, epochs=2, batch_size=8, seed=4, progress=False)
    a = _quiet_train(TrainConfig(**cfg))
    for micro in (8, 100):
        b = _quiet_train(TrainConfig(**cfg, micro_batch=micro))
        for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            torch.testing.assert_close(y, x, rtol=0, atol=0, msg=k)


def test_a_denoiser_batch_in_pieces_has_the_gradient_of_the_whole_for_terms_averaged_over_examples():
    from rtconv.models import build
    from rtconv.train.trainer import _step

    torch.manual_seed(0)
    model = build("framed_denoiser", {"window": 32, "hop": 16, "channels": 8, "blocks": 2, "gru": 4,
                                      "deep_filter": [4, 3, 1], "phase_features": 4})
    x, y = torch.randn(6, 1, 800) * 0.1, torch.randn(6, 1, 800) * 0.1
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # the step leaves the weights; the gradients stay

    def grads(micro, loss="si_sdr + 5*cmrs"):
        cfg = TrainConfig(loss=loss, micro_batch=micro, clip_grad=None)
        value = _step(model, x, y, losses.get_loss(loss), opt, cfg, (0, 0))
        return value, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    v0, g0 = grads(None)
    v1, g1 = grads(4)  # pieces of 4 and 2
    assert float(v1) == pytest.approx(float(v0), rel=1e-5)
    for a, b in zip(g0, g1):  # float rounding: a tolerance scaled to each tensor's largest gradient
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    # sc is a ratio over the batch: in pieces it is the mean of the pieces' ratios, not the same number
    s0, _ = grads(None, "sc")
    s1, _ = grads(4, "sc")
    assert float(s1) != float(s0) and float(s1) == pytest.approx(float(s0), rel=0.2)


def test_bench_train_times_the_denoiser_step_whole_and_in_pieces_side_by_side(capsys):
    from rtconv.cli import main

    assert main(["bench", "train", "--denoiser", "--batch-size", "4", "--micro-batch", "2", "--micro-batch", "9",
                 "--seconds", "0.25", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("shipped denoiser (242400 parameters), loss si_sdr + 10*sc + 5*cmrs, Adam, batch 4 ")
    rows = [ln.split() for ln in out[2:]]
    assert [r[:2] for r in rows] == [["1", "whole"], ["1", "2"]]  # a piece larger than the batch is no piece
    assert rows[0][-1] == "1.00x" and float(rows[1][-1].rstrip("x")) > 0


def test_bench_train_times_each_loss_term_alone_beside_the_model(capsys, monkeypatch):
    """The cost of a loss term was a one-off script's claim (stoi 1.95 s, pesq 0.69 s a step of 16 four-second
    clips); the bench times every term of a loss alone, turn about with the model's own forward and backward."""
    import time

    from rtconv.cli import main
    from rtconv.train import losses

    si_sdr = losses.TERMS["si_sdr"]

    def slow_si_sdr(estimate, target):
        time.sleep(0.05)
        return si_sdr(estimate, target)

    monkeypatch.setitem(losses.TERMS, "si_sdr", slow_si_sdr)
    assert main(["bench", "train", "--denoiser", "--terms", "--loss", "si_sdr + 4*pesq + 40*stoi", "--batch-size",
                 "2", "--seconds", "1", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("loss 'si_sdr + 4*pesq + 40*stoi': each term alone"), out
    rows = [ln.split() for ln in out[2:]]
    assert [r[1] for r in rows] == ["model", "si_sdr", "pesq", "stoi"], out
    seconds = {r[1]: float(r[-2]) for r in rows}
    assert rows[0][-1] == "1.00x" and all(v > 0 for v in seconds.values()), out
    assert seconds["si_sdr"] >= 0.05 and seconds["si_sdr"] > seconds["stoi"], out  # the sleep is in its row alone


def test_bench_train_loss_options_need_the_denoiser(capsys):
    from rtconv.cli import main

    assert main(["bench", "train", "--terms"]) == 2
    assert capsys.readouterr().err == "rtconv bench train: --loss and --terms time the shipped denoiser; add --denoiser.\n"
    assert main(["bench", "train", "--denoiser", "--terms", "--loss", "si_sdr + 2*nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtconv bench train: ") and "nope" in err and err.count("\n") == 1, err
    # clips too short for a term: one line, and no table begun
    assert main(["bench", "train", "--denoiser", "--terms", "--loss", "stoi", "--seconds", "0.3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("rtconv bench train: STOI needs signals of at least "), captured


def test_report_png_is_written(tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs the train extra (matplotlib)")
    png = tmp_path / "r.png"
    opts = {"variant": "audio", "sample_rate": 8000, "seconds": 0.05, "train_examples": 16,
            "val_examples": 8, "test_examples": 8, "low_band": [50, 500], "high_band": [1000, 3500]}
    r = _quiet_train(TrainConfig(task="freqsep", task_options=opts, arch="mimo_cnn",
                                 arch_config={"taps": [8], "features": [1, 2]}, epochs=1,
                                 report=str(png), progress=False))
    assert r.report == png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_is_zero_or_minimal_for_a_perfect_estimate_and_differentiable(loss):
    fn = losses.get_loss(loss)
    t = torch.randn(2, 1, 1024)
    x = t + 0.5 * torch.randn_like(t)  # the noisy input, for the losses that normalise by it
    e = (t + 0.3 * torch.randn_like(t)).requires_grad_(True)
    bad = losses.apply(fn, e, t, x)
    bad.backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()
    assert float(losses.apply(fn, t, t, x)) < float(bad.detach())


def test_a_weighted_sum_of_terms_is_the_sum_of_the_terms_and_a_named_loss_is_itself():
    torch.manual_seed(1)
    t = torch.randn(2, 1, 4096)
    x = t + 0.5 * torch.randn_like(t)
    e = t + 0.3 * torch.randn_like(t)
    fn = losses.get_loss(" si_sdr + 10*sc +5 * cmrs+0.25*pause ")
    assert fn.needs_input
    want = (losses.si_sdr_loss(e, t) + 10 * losses.spectral_convergence(e, t)
            + 5 * losses.compressed_spectral(e, t, x) + 0.25 * losses.pause_residual(e, t, x))
    assert torch.allclose(losses.apply(fn, e, t, x), want)
    assert torch.allclose(losses.apply(losses.get_loss("si_sdr + 10*sc"), e, t, x),
                          losses.apply(losses.get_loss("si_sdr+sc"), e, t, x))
    assert not losses.get_loss("2*l1 + mse").needs_input
    assert losses.get_loss("si_sdr+sc") is losses.LOSSES["si_sdr+sc"]


def test_training_with_a_weighted_sum_logs_each_term_beside_the_validation_loss(capsys):
    train(TrainConfig(task="sines", loss="l1 + 2*mse", epochs=2, batch_size=16, progress=True,
                      task_options={"train_examples": 32, "val_examples": 8, "test_examples": 8}))
    err = capsys.readouterr().err.replace("\r", "\n").splitlines()
    lines = [ln for ln in err if ln.startswith("epoch ") and " val " in ln]
    assert len(lines) == 2
    for ln in lines:
        val = float(ln.split(" val ")[1].split()[0])
        terms = dict(kv.split() for kv in ln.rsplit("(", 1)[1].rstrip(")").split(", "))
        assert set(terms) == {"l1", "mse"}
        assert val == pytest.approx(float(terms["l1"]) + 2 * float(terms["mse"]), rel=1e-3)
    assert losses.terms(losses.get_loss("mse"), torch.zeros(1, 1, 4), torch.ones(1, 1, 4), torch.ones(1, 1, 4)) == {}


@pytest.mark.parametrize("text, bad", [("si_sdr + x*sc", "'x*sc'"), ("si_sdr + -1*sc", "'-1*sc'"),
                                       ("snr", "unknown loss 'snr'"), ("si_sdr ++ sc", "''"), ("0*l1", "'0*l1'")])
def test_an_unreadable_loss_is_refused_in_one_sentence_naming_the_part(text, bad):
    with pytest.raises(ConfigError) as e:
        losses.get_loss(text)
    assert bad in str(e.value) and "e.g. 'si_sdr + 10*sc + 5*cmrs'" in str(e.value)
    with pytest.raises(ConfigError):
        train(TrainConfig(task="sines", loss=text, epochs=1, progress=False))


def test_pause_residual_counts_the_missing_attenuation_of_noise_dominated_frames_only():
    torch.manual_seed(0)
    noise = torch.randn(1, 1, 9600)
    speech = torch.zeros(1, 1, 9600)
    speech[..., 4800:] = 10.0 * torch.randn(4800)  # second half: speech 20 dB above the noise
    noisy = speech + noise
    # the input passed through: the pause frames miss all 25 dB, the speech frames count zero
    passed = float(losses.pause_residual(noisy, speech, noisy))
    assert 8.0 < passed < 14.0  # about 25 dB on the ~45 % of frames that are pause
    # the noise 40 dB down in the pause and the speech untouched: nothing is missing
    cleaned = speech + 0.01 * noise
    assert float(losses.pause_residual(cleaned, speech, noisy)) == pytest.approx(0.0, abs=1e-6)
    # 15 dB down: 10 dB missing on the pause frames
    half = float(losses.pause_residual(speech + 10 ** (-15 / 20) * noise, speech, noisy))
    assert half == pytest.approx(passed * 10 / 25, rel=0.1)
    # loud speech everywhere: no pause frame, no term, whatever the output does
    assert float(losses.pause_residual(noisy, 10 * noise, noisy)) == 0.0


def test_noise_only_residual_counts_the_noise_only_examples_alone():
    torch.manual_seed(0)
    noise = torch.randn(2, 1, 9600)
    speech = torch.zeros(2, 1, 9600)
    speech[1, :, 4800:] = 10.0 * torch.randn(4800)  # example 1: a mixture with a pause; example 0: noise only
    noisy = speech + noise
    # passed through: example 0's frames miss all 25 dB, the mixture's pause frames count nothing
    passed = float(losses.noise_only_residual(noisy, speech, noisy))
    assert passed == pytest.approx(25.0 / 2, rel=0.02)  # all of example 0's frames, half the batch's frames
    assert float(losses.pause_residual(noisy, speech, noisy)) > passed  # pause also counts the mixture's pause
    # 15 dB down on the noise-only example: 10 dB missing
    quieter = noisy.clone()
    quieter[0] *= 10 ** (-15 / 20)
    assert float(losses.noise_only_residual(quieter, speech, noisy)) == pytest.approx(10.0 / 2, rel=0.02)
    # 40 dB down: nothing missing; the gradient reaches the estimate only where something is missing
    cleaned = noisy.clone()
    cleaned[0] *= 0.01
    assert float(losses.noise_only_residual(cleaned, speech, noisy)) == pytest.approx(0.0, abs=1e-6)
    est = noisy.clone().requires_grad_(True)
    losses.noise_only_residual(est, speech, noisy).backward()
    assert float(est.grad[0].abs().sum()) > 0 and float(est.grad[1].abs().sum()) == 0.0
    # no noise-only example in the batch: zero, and still a graph to backpropagate through
    none = losses.noise_only_residual(est, speech + 1e-3, noisy)
    assert float(none.detach()) == 0.0 and none.requires_grad
    # as a term of a weighted sum
    fn = losses.get_loss("si_sdr + 0.5*silence")
    assert float(fn(cleaned, speech, noisy)) == pytest.approx(float(losses.si_sdr_loss(cleaned, speech)), abs=1e-4)


def test_gap_residual_counts_the_frames_whose_target_is_silent_not_those_with_quiet_speech():
    torch.manual_seed(0)
    noise = torch.randn(1, 1, 14400)
    speech = torch.zeros(1, 1, 14400)
    speech[..., 4800:9600] = 0.03 * torch.randn(4800)  # 30 dB under the noise: pause's, not gap's
    speech[..., 9600:] = 10.0 * torch.randn(4800)  # 20 dB above it
    noisy = speech + noise
    gap = float(losses.gap_residual(noisy, speech, noisy))
    pause = float(losses.pause_residual(noisy, speech, noisy))
    # passed through: gap counts the first third (~25 dB missing on under a third of the frames),
    # pause the first two thirds
    assert 6.0 < gap < 9.0 and pause == pytest.approx(2 * gap, rel=0.15)
    quiet = noisy.clone()
    quiet[..., :4800] *= 0.01  # the silent third 40 dB down: nothing missing for gap, still for pause
    assert float(losses.gap_residual(quiet, speech, noisy)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.pause_residual(quiet, speech, noisy)) > 6.0
    # a noise-only example is all gap
    assert float(losses.gap_residual(noise, 0 * noise, noise)) == pytest.approx(25.0, rel=0.02)


def test_evaluate_reports_input_and_output_snr_per_channel():
    model = rtconv.FIR([1.0])  # identity: no improvement at all
    td = tasks.make_task("freqsep", train_examples=1, val_examples=1, test_examples=16)
    m = evaluate(model, td.test, "mse", outputs=td.outputs)
    assert m["outputs"]["high"]["snr_improvement_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["mse_reduction"] == pytest.approx(1.0)


def test_device_auto_picks_cpu_here_and_unknown_device_is_refused():
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device 'toaster'"):
        pick_device("toaster")


@pytest.mark.parametrize("field,value,message", [
    ("optimizer", "rmsprop", "optimizer must be one of"),
    ("schedule", "wobbly", "schedule must be one of"),
    ("epochs", 0, r"epochs must be a positive integer \(0 epochs only with --resume\), got 0"),
    ("lr", -1.0, "learning rate must be a positive number, got -1.0"),
    ("loss", "l3", "unknown loss 'l3'"),
    ("micro_batch", 0, r"micro batch must be a positive number of examples or None, got 0"),
])
def test_bad_training_choices_are_refused_in_one_sentence(field, value, message):
    with pytest.raises(ConfigError, match=message):
        _quiet_train(TrainConfig(task="sines", **{field: value}, progress=False))


def test_model_with_wrong_channel_count_is_refused():
    with pytest.raises(ConfigError, match="needs a model with 1 input and 2 output"):
        _quiet_train(TrainConfig(task="freqsep", task_options={"variant": "audio", "train_examples": 2},
                                 arch="fir", arch_config={"taps": 5}, progress=False))


def test_crossover_bands_must_be_ordered_below_nyquist():
    with pytest.raises(ConfigError, match=r"bands must satisfy .* got low=\(500, 100\)"):
        tasks.make_task("freqsep", variant="audio", low_band=(500, 100))


def test_unknown_task_and_variant_are_refused():
    with pytest.raises(ConfigError, match="unknown task 'karaoke'"):
        tasks.make_task("karaoke")
    with pytest.raises(ConfigError, match="variant must be 'classic' or 'audio', got 'video'"):
        tasks.make_task("freqsep", variant="video")


def test_examples_are_reproducible_and_splits_differ():
    td = tasks.make_task("sines")
    torch.testing.assert_close(td.train[5][0], td.train[5][0])
    assert not torch.equal(td.train[5][0], td.test[5][0])


def _parse(argv):
    from rtconv.cli import get_parser

    parser, mods = get_parser()
    return parser.parse_args(argv)


def test_lab_recipe_flag_expands_to_the_lab_recipe():
    from rtconv.cli.train import build_config

    cfg = build_config(_parse(["train", "--recipe", "lab"]))
    assert cfg.task == "denoise" and cfg.arch == "mimo_cnn"
    assert cfg.arch_config == {"taps": [40, 40], "features": [1, 5, 1], "activation": "tanh", "bias": False}
    assert (cfg.loss, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == ("l1", "sgd", 0.5, 32, 20)
    assert cfg.task_options["sample_rate"] == 32000 and cfg.task_options["seconds"] == 1.0
    cfg = build_config(_parse(["train", "--recipe", "lab", "--epochs", "3", "--lr", "0.1"]))
    assert (cfg.epochs, cfg.lr) == (3, 0.1)  # explicit flags win over the recipe


def test_train_warmup_flag_reaches_the_config():
    from rtconv.cli.train import build_config

    assert build_config(_parse(["train", "sines"])).train_warmup is False
    assert build_config(_parse(["train", "sines", "--train-warmup"])).train_warmup is True


def test_cli_choices_match_the_training_modules():
    from rtconv.cli import train as cli
    from rtconv.train import trainer

    assert cli.TASKS == tasks.TASKS
    assert cli.LOSSES == tuple(losses.LOSSES)
    assert cli.OPTIMIZERS == trainer.OPTIMIZERS and cli.SCHEDULES == trainer.SCHEDULES


def test_cli_trains_and_stores_the_command_and_metrics(tmp_path, capsys):
    from rtconv.cli import main

    out, js = tmp_path / "m.safetensors", tmp_path / "m.json"
    argv = ["train", "sines", "--epochs", "2", "--train-examples", "32", "--val-examples", "8",
            "--test-examples", "8", "--taps", "9", "--out", str(out), "--metrics-json", str(js), "--quiet"]
    assert main(argv) == 0
    assert re.search(rf"test loss .*; saved to {re.escape(str(out))}$", capsys.readouterr().out.strip())
    meta = read_metadata(out)
    assert meta["architecture"]["config"]["taps"] == 9
    assert meta["metrics"] == json.loads(js.read_text())
    assert "train sines" in meta["provenance"]["command"]


def test_quiet_training_without_out_still_says_the_model_is_not_saved(capsys):
    """-q hides progress, not that an hour of training is about to be thrown away."""
    from rtconv.cli import main

    argv = ["train", "sines", "--epochs", "1", "--train-examples", "16", "--val-examples", "4",
            "--test-examples", "4", "--taps", "5", "--quiet"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "rtconv train: note: no --out given, the trained model will not be saved"
    assert out.strip().endswith("; not saved (no --out)"), out


@pytest.mark.parametrize("argv,message", [
    (["train"], "no task given"),
    (["train", "sines", "--recipe", "lab"], "recipe 'lab' trains task 'denoise', not 'sines'"),
    (["train", "freqsep", "--variant", "audio", "--low-band", "900,1000", "--high-band", "500,2000",
      "--quiet"], "bands must satisfy"),
    (["train", "sines", "--arch", "wavenet", "--quiet"], "unknown architecture 'wavenet'"),
    (["train", "sines", "--train-only", " , ", "--quiet"], "--train-only needs words found in parameter names, got ' , '"),
    (["train", "denoise", "--resume", "models/vad.safetensors", "--epochs", "1", "--train-examples", "1",
      "--val-examples", "1", "--test-examples", "1", "--quiet"],
     "--resume 'models/vad.safetensors' is a 'vad' model and this run trains 'denoise'; resume a 'denoise' checkpoint"),
    (["train", "denoise", "--resume", "models/denoiser.safetensors", "--sample-rate", "16000", "--epochs", "1",
      "--train-examples", "1", "--val-examples", "1", "--test-examples", "1", "--quiet"],
     "was made for 48000 Hz and this run's examples are at 16000 Hz; pass --sample-rate 48000"),
    (["train", "sines", "--corpus", "realistic", "--quiet"],
     "--corpus does not apply to task 'sines', which would train without it (it takes only --seed and the example counts)"),
    (["train", "sines", "--speech-dir", "nosuch", "--variant", "audio", "--quiet"],
     "--variant, --speech-dir do not apply to task 'sines', which would train without them"),
    (["train", "denoise", "--low-band", "1,2", "--quiet"], "--low-band does not apply to task 'denoise'"),
    (["train", "denoise", "--corpus", "realistic", "--noise-families", "pink", "--quiet"],
     "--noise-families does not apply to task 'denoise --corpus realistic'"),
    (["train", "sines", "--quiet", "--metrics-json", "no/such/folder/m.json"],
     "--metrics-json 'no/such/folder/m.json': the folder 'no/such/folder' does not exist; create it first (checked now"),
])
def test_cli_bad_input_exits_1_with_one_line(argv, message, capsys, monkeypatch):
    from rtconv.cli import main

    monkeypatch.chdir(ROOT)  # the shipped models by their paths in the repository

    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtconv train: error: ") and message in err[0]


def test_cli_usage_errors_exit_2(capsys):
    from rtconv.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "sines", "--snr-db", "20,-5"])
    assert e.value.code == 2
    assert "LOW <= HIGH" in capsys.readouterr().err


def test_padding_alone_refines_the_task_default_and_non_causal_states_its_latency(tmp_path):
    opts = {"train_examples": 16, "val_examples": 8, "test_examples": 8}
    r = _quiet_train(TrainConfig(task="sines", task_options=opts, arch_config={"padding": "same"},
                                 epochs=1, out=str(tmp_path / "s.safetensors"), progress=False))
    assert r.model.config["taps"] == 21 and not r.model.causal and r.model.latency == 10
    meta = read_metadata(tmp_path / "s.safetensors")
    assert meta["causal"] is False and meta["latency_samples"] == 10


@pytest.mark.parametrize("argv,arch", [
    (["--arch", "fir", "--taps", "5"], "fir"),
    (["--arch", "mimo_cnn", "--taps", "4,4", "--features", "1,3,1", "--activation", "relu"], "mimo_cnn"),
    (["--arch", "dilated_cnn", "--arch-arg", "channels=3", "--arch-arg", "layers=2"], "dilated_cnn"),
])
def test_cli_builds_any_architecture_by_name_with_its_arguments(argv, arch, tmp_path):
    from rtconv.cli import main

    out = tmp_path / "m.safetensors"
    base = ["train", "sines", "--epochs", "1", "--train-examples", "16", "--val-examples", "4",
            "--test-examples", "4", "--out", str(out), "--quiet"]
    assert main(base + argv) == 0
    model = rtconv.load(out)
    assert model.arch == arch and model.causal
    if arch == "dilated_cnn":
        assert model.config["channels"] == 3 and model.config["layers"] == 2
    x = np.random.default_rng(1).standard_normal((100, 1)).astype(np.float32)
    with torch.no_grad():
        _streams_like_offline(model, x, 7)


@pytest.mark.parametrize("value", [0.0, 1e-40, 1e-44, 1e-20, 0.3])
def test_the_spectral_losses_magnitude_has_a_finite_gradient_at_zero_and_subnormal_values(value):
    # torch.abs of a complex tensor divides by |z| in its backward pass: NaN at subnormal z (a clip's digital
    # silence), which once poisoned a whole training step through cmrs's complex term
    z = torch.tensor([complex(value, value), complex(value, -2 * value)], requires_grad=True)
    m = losses._modulus(torch.view_as_real(z))
    m.square().sum().backward()
    assert torch.isfinite(z.grad).all()
    torch.testing.assert_close(m.detach(), z.detach().abs(), rtol=1e-6, atol=1e-12)


def _spectral_reference(name, estimate, target, noisy):
    """The spectral terms written plainly, autograd through complex STFTs (as they were before
    their gradients were written out by hand)."""
    def mag(z):
        return torch.view_as_real(z).square().sum(-1).add(1e-24).sqrt()

    n, terms = estimate.shape[-1], []
    if name == "sc":
        for fft, hop in ((512, 128), (1024, 256), (256, 64)):
            while fft > n:
                fft, hop = fft // 2, hop // 2
            w = torch.hann_window(fft, dtype=estimate.dtype)
            e, t = (mag(torch.stft(v.reshape(-1, n), fft, hop, fft, w, return_complex=True, pad_mode="constant"))
                    .clamp_min(1e-7) for v in (estimate, target))
            terms.append(torch.linalg.norm(t - e) / torch.linalg.norm(t).clamp_min(1e-7))
        return sum(terms) / 3
    scale = noisy.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-5)
    for fft, hop in ((1024, 256), (512, 128), (256, 64)):
        while fft > n:
            fft, hop = fft // 2, hop // 2
        w = torch.hann_window(fft, dtype=estimate.dtype)
        E, T = (torch.stft((v / scale).reshape(-1, n), fft, hop, fft, w, return_complex=True) for v in (estimate, target))
        me, mt = (mag(E) + 1e-6) ** 0.3, (mag(T) + 1e-6) ** 0.3
        weight = 1.0 + (mt > me).to(me.dtype)
        ce, ct = E * (mag(E) + 1e-6) ** -0.7, T * (mag(T) + 1e-6) ** -0.7
        terms.append((weight * (me - mt) ** 2).mean() + 0.3 * torch.view_as_real(ce - ct).square().sum(-1).mean())
    return sum(terms) / 3


def _spectral_batch(n, dtype=torch.float64, floored=False):
    g = torch.Generator().manual_seed(3)
    target = 0.1 * torch.randn(4, 1, n, generator=g, dtype=dtype)
    noisy = target + 0.1 * torch.randn(4, 1, n, generator=g, dtype=dtype)
    target[1] = 0.0  # a noise-only example
    target[2, :, : n // 3] = 0.0  # digital silence inside a clip
    estimate = 0.6 * noisy + 0.01 * torch.randn(4, 1, n, generator=g, dtype=dtype)
    if floored:  # an output near sc's 1e-7 magnitude floor: bins on both sides of it
        estimate[3] *= 1.5e-7
    return estimate, target, noisy


@pytest.mark.parametrize("name", ["sc", "cmrs"])
def test_the_spectral_terms_equal_autograd_through_complex_stfts_in_value_and_gradient(name):
    estimate, target, noisy = _spectral_batch(9600, floored=True)
    term = losses.get_loss(name)
    got_e = estimate.clone().requires_grad_(True)
    got = losses.apply(term, got_e, target, noisy)
    got.backward()
    want_e = estimate.clone().requires_grad_(True)
    want = _spectral_reference(name, want_e, target, noisy)
    want.backward()
    torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(got_e.grad, want_e.grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", ["sc", "cmrs"])
def test_the_spectral_terms_hand_written_gradients_pass_gradcheck(name):
    estimate, target, noisy = _spectral_batch(300)  # every resolution halved to fit: 256, 128, 64 points
    term = losses.get_loss(name)
    assert torch.autograd.gradcheck(lambda e: losses.apply(term, e, target, noisy),
                                    (estimate.requires_grad_(True),), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("value", [0.0, 1e-40, 1e-20])
def test_the_spectral_terms_have_finite_gradients_on_digital_silence_and_subnormal_signals(value):
    target = torch.zeros(2, 1, 4096)
    target[0, 0, ::7] = value
    estimate = target.clone().requires_grad_(True)
    loss = losses.apply(losses.get_loss("si_sdr + 10*sc + 5*cmrs"), estimate, target, target + 1e-3)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimate.grad).all()


def test_spectral_convergence_is_zero_for_a_match_one_for_silence_and_scale_sensitive():
    t = torch.randn(2, 1, 4096)
    assert float(losses.spectral_convergence(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.spectral_convergence(torch.zeros_like(t), t)) == pytest.approx(1.0, abs=1e-3)
    assert float(losses.spectral_convergence(0.5 * t, t)) == pytest.approx(0.5, abs=1e-3)




def test_resuming_with_another_loss_keeps_epochs_that_beat_the_resumed_weights(tmp_path):
    # multi-resolution STFT losses (~5 here) sit far above MSE values (~0.6): compared with the
    # old MSE history no STFT epoch could ever look better, and the resumed weights came back unchanged
    out = tmp_path / "s.safetensors"
    opts = {"train_examples": 32, "val_examples": 8, "test_examples": 8}
    first = _quiet_train(TrainConfig(task="sines", task_options=opts, epochs=2, loss="mse", lr=0.01,
                                     out=str(out), progress=False))
    before = rtconv.load(out).kernel.copy()
    out2 = tmp_path / "s2.safetensors"
    r = _quiet_train(TrainConfig(task="sines", task_options=opts, epochs=3, resume=str(out), loss="stft",
                                 lr=0.01, out=str(out2), progress=False))
    assert min(r.history["val_loss"][2:]) > min(first.history["val_loss"])  # the trap is set
    assert r.metrics["best_epoch"] > 2
    assert r.metrics["val_loss"] == min(r.history["val_loss"][2:])
    assert not np.allclose(rtconv.load(out2).kernel, before)


def test_test_metrics_average_improvements_over_mixtures_only():
    """A clean-passthrough item (nothing to remove) and a noise-only item (nothing to keep) have no defined
    improvement; the means are over the mixtures and say how many there were."""
    import torch

    from rtconv.train.trainer import evaluate

    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 1, 4000, generator=g)
    n = 0.5 * torch.randn(3, 1, 4000, generator=g)
    x = torch.stack([s[0] + n[0], s[1], n[2]])  # a mixture, clean speech, noise alone
    y = torch.stack([s[0], s[1], torch.zeros_like(s[2])])
    data = torch.utils.data.TensorDataset(x, y)
    model = rtconv.FIR(np.array([0.5], np.float32))  # halves everything: SI-SDR unchanged
    m = evaluate(model, data, "mse", outputs=["speech"])["outputs"]["speech"]
    assert m["mixtures"] == 1
    from rtconv.metrics import snr_improvement_db

    mix = snr_improvement_db(s[0, 0].numpy(), x[0, 0].numpy(), 0.5 * x[0, 0].numpy())
    assert m["snr_improvement_db"] == pytest.approx(mix, abs=1e-3)  # the mixture's own, not the clean item's -150 dB
    assert m["si_sdr_improvement_db"] == pytest.approx(0.0, abs=1e-3)


def test_rtconv_train_reads_a_weighted_loss_and_refuses_a_bad_one_before_training(capsys):
    from rtconv.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "sines", "--loss", "si_sdr + 10*sc + 5*cmrz"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'5*cmrz'" in err and "Traceback" not in err
    from rtconv.cli.train import loss_text
    assert loss_text(" si_sdr + 10*sc ") == "si_sdr + 10*sc"


@pytest.mark.parametrize("epochs", ["1", "2"])
def test_a_run_whose_step_blows_the_weights_up_says_it_diverged_and_leaves_no_files(tmp_path, capsys, epochs):
    from rtconv.cli import main

    out = tmp_path / "n.safetensors"
    argv = ["train", "sines", "--epochs", epochs, "--train-examples", "1", "--val-examples", "1", "--test-examples", "1",
            "--threads", "1", "--quiet", "--lr", "1e30", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtconv train: error: training diverged: ")
    assert "lower the learning rate (now 1e+30)" in err[0]
    assert list(tmp_path.iterdir()) == []
