"""An interrupted training run continues exactly: optimizer, schedule and shuffling included."""

from __future__ import annotations

import pytest
import torch

from rtconv.checkpoint import load, read_metadata
from rtconv.train.trainer import TrainConfig, state_path, train

OPTS = {"train_examples": 96, "val_examples": 16, "test_examples": 16}


def _cfg(out, **kw):
    base = dict(task="sines", task_options=OPTS, optimizer="adam", lr=0.01, schedule="cosine", epochs=4,
                batch_size=8, out=str(out), command="rtconv train sines (test)", progress=False, seed=5)
    base.update(kw)
    return TrainConfig(**base)


class Interrupted(Exception):
    pass


def _stop_at(line_start):
    def log(line):
        if line.startswith(line_start):
            raise Interrupted(line)
    return log


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, stop_after):
    whole = train(_cfg(tmp_path / "whole.safetensors"), log=lambda s: None)
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):  # dies while logging epoch stop_after + 1: its state was not saved
        train(_cfg(part), log=_stop_at(f"epoch {stop_after + 1}:"))
    assert state_path(part).is_file()
    lines = []
    resumed = train(_cfg(tmp_path / "resumed.safetensors", resume=str(part)), log=lines.append)
    assert any(f"exactly after epoch {stop_after} of 4" in ln for ln in lines)
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    assert resumed.history["train_loss"] == pytest.approx(whole.history["train_loss"], rel=1e-6)
    prov = read_metadata(tmp_path / "resumed.safetensors")["provenance"]
    assert prov["epochs_done"] == 4 and prov["chain"] == []  # one run, continued: no extra step


def test_a_finished_run_is_fine_tuned_and_the_chain_records_it(tmp_path):
    first = tmp_path / "first.safetensors"
    train(_cfg(first, epochs=2), log=lambda s: None)
    second = tmp_path / "second.safetensors"
    r = train(_cfg(second, epochs=2, resume=str(first), command="rtconv train sines --resume first"),
              log=lambda s: None)
    assert len(r.history["train_loss"]) == 4  # two more epochs on top of the finished two
    third = tmp_path / "third.safetensors"
    train(_cfg(third, epochs=1, lr=0.001, resume=str(second), command="rtconv train sines --resume second"),
          log=lambda s: None)
    chain = read_metadata(third)["provenance"]["chain"]
    assert chain == ["rtconv train sines (test)", "rtconv train sines --resume first"]
    load(third)  # still an ordinary checkpoint


def test_the_state_file_is_tensors_and_json_not_pickle(tmp_path):
    out = tmp_path / "s.safetensors"
    train(_cfg(out, epochs=1), log=lambda s: None)
    raw = state_path(out).read_bytes()
    assert b"rtconv_train_state" in raw[:20000] and b"\x80\x04" not in raw[:8]  # safetensors header, no pickle


def test_calibrate_gain_sets_the_output_level_on_the_validation_split(tmp_path):
    from rtconv.train import tasks

    opts = {"train_examples": 8, "val_examples": 8, "test_examples": 4, "sample_rate": 16000, "seconds": 0.5,
            "utterances": 8}
    cfg = TrainConfig(task="denoise", task_options=opts, arch="framed_denoiser",
                      arch_config={"channels": 8, "blocks": 1, "window": 32, "hop": 16, "learn_filterbank": False},
                      loss="si_sdr", epochs=1, batch_size=4, progress=False, calibrate_gain=True,
                      out=str(tmp_path / "c.safetensors"))
    r = train(cfg, log=lambda s: None)
    g = r.metrics["calibration_gain"]
    assert g is not None and g > 0
    # calibrating again on the same split finds nothing left to correct
    from rtconv.denoiser import calibrate_gain

    td = tasks.make_task("denoise", seed=0, **opts)
    pairs = [(td.val[i][0][0].numpy(), td.val[i][1][0].numpy()) for i in range(len(td.val))]
    assert calibrate_gain(r.model, pairs) == pytest.approx(1.0, abs=1e-3)
    # epochs=0 with resume: calibrate (and evaluate) a checkpoint without training it
    again = train(TrainConfig(**{**cfg.__dict__, "epochs": 0, "resume": cfg.out,
                                 "out": str(tmp_path / "c0.safetensors")}), log=lambda s: None)
    assert again.metrics["calibration_gain"] == pytest.approx(1.0, abs=1e-3)
    for a, b in zip(again.model.state_dict().values(), r.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_a_fine_tuning_run_records_its_start_and_continues_exactly(tmp_path):
    """The provenance names the resumed file by hash and says where this run's epochs begin,
    so its config (this run's lr) and the history (every run's lr) do not contradict."""
    import hashlib

    first = tmp_path / "first.safetensors"
    train(_cfg(first, epochs=2), log=lambda s: None)
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    second = tmp_path / "second.safetensors"
    train(_cfg(second, epochs=1, lr=0.001, resume=str(first)), log=lambda s: None)
    prov = read_metadata(second)["provenance"]
    assert prov["resumed_from"] == {"path": str(first), "sha256": digest, "epochs_before": 2}
    assert prov["config"]["lr"] == 0.001 and prov["history"]["lr"][2] == pytest.approx(0.001)
    assert "resumed_from" not in read_metadata(first)["provenance"]
    # an interrupted fine-tuning run, continued exactly, keeps the original starting point
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(_cfg(part, epochs=3, resume=str(first)), log=_stop_at("epoch 4:"))
    lines = []
    done = train(_cfg(tmp_path / "done.safetensors", epochs=3, resume=str(part)), log=lines.append)
    assert any("exactly after epoch 3 of 5" in ln for ln in lines), lines  # not a new fine-tuning run
    assert read_metadata(tmp_path / "done.safetensors")["provenance"]["resumed_from"]["sha256"] == digest
    whole = train(_cfg(tmp_path / "whole.safetensors", epochs=3, resume=str(first)), log=lambda s: None)
    for (k, a), b in zip(whole.model.state_dict().items(), done.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_rerunning_an_interrupted_command_says_how_to_continue_it_instead_of_starting_over(tmp_path):
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(_cfg(part), log=_stop_at("epoch 3:"))
    lines = []
    train(_cfg(part, epochs=4), log=lines.append)  # the same command again: starts over, and says so
    note = [ln for ln in lines if ln.startswith("note:")]
    assert len(note) == 1 and "after epoch 2 of 4" in note[0] and f"--resume {part}" in note[0], lines
    lines = []
    with pytest.raises(Interrupted):
        train(_cfg(part), log=_stop_at("epoch 2:"))
    train(_cfg(part, resume=str(part)), log=lines.append)  # the way to continue: no note
    assert not any(ln.startswith("note:") for ln in lines) and any("exactly after epoch 1" in ln for ln in lines)
    other = tmp_path / "other.safetensors"
    train(_cfg(other, epochs=1), log=lines.append)
    assert not any(ln.startswith("note:") for ln in lines)


def test_a_time_budget_lowers_the_epochs_to_what_fits_and_the_sizing_steps_leave_no_trace(tmp_path):
    lines = []
    short = train(_cfg(tmp_path / "short.safetensors", epochs=100000, time_budget=0.04), log=lines.append)
    said = [ln for ln in lines if ln.startswith("time budget 0.04 min:") and "left after the data" in ln]
    assert len(said) == 1 and "of 100000 epochs" in said[0]
    ran = len(short.history["train_loss"])
    planned = int(said[0].split(" per epoch: ")[1].split(" of ")[0])
    # a busy machine may end the plan early (the budget is also a deadline), and then says so
    assert 1 <= ran <= planned < 100000
    assert ran == planned or any(ln.startswith("time budget 0.04 min: reached") for ln in lines)
    # the schedule ends with the run: cosine reached its last step
    assert short.history["lr"][-1] < short.history["lr"][0] or ran == 1
    # a budget that holds every epoch changes nothing: the timed steps were undone
    roomy = train(_cfg(tmp_path / "roomy.safetensors", epochs=2, time_budget=60.0), log=lambda s: None)
    plain = train(_cfg(tmp_path / "plain.safetensors", epochs=2), log=lambda s: None)
    for (k, a), b in zip(plain.model.state_dict().items(), roomy.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert read_metadata(tmp_path / "roomy.safetensors")["provenance"]["config"]["time_budget"] == 60.0


def test_a_time_budget_holds_when_the_steps_run_slower_than_they_were_timed(tmp_path, monkeypatch):
    # The thirty-seventh session's GPU call: two runs on one machine each timed their steps alone, then
    # ran ten times slower; both overran the budget inside their first epoch and nothing was saved.
    import time

    from rtconv.train import trainer

    slow = {"on": False}
    step = trainer._step

    def slower_step(*a, **kw):
        loss = step(*a, **kw)
        if slow["on"]:
            time.sleep(0.4)  # 12 steps an epoch: about 5 s, where the budget is 3 s in all
        return loss
    monkeypatch.setattr(trainer, "_step", slower_step)
    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("time budget 0.05 min:") and "left after the data" in line:
            slow["on"] = True  # the sizing steps are done: from here the machine is busier
    out = tmp_path / "cut.safetensors"
    t = time.perf_counter()
    r = train(_cfg(out, epochs=1000, time_budget=0.05), log=log)
    took = time.perf_counter() - t
    cut = [ln for ln in lines if "reached in epoch 1 after" in ln]
    assert len(cut) == 1 and "of 96 examples" in cut[0], lines
    assert len(r.history["train_loss"]) == 1 and out.is_file() and state_path(out).is_file()
    assert took < 3.0 + 4.0  # the budget, and room for a slow machine; uncut it runs hundreds of 5-s epochs


def test_a_time_budget_charges_its_timed_steps_and_keeps_time_for_the_validation_of_the_epoch_it_cuts(
        tmp_path, monkeypatch):
    # A CPU run with the stoi term (18 s a step of 64) took 218 s for a 2-minute budget: four steps were timed
    # outside the budget, and the first epoch ran to the budget's end with no time kept for its validation.
    # Here a step takes 0.2 s and a validation pass half a step per batch of examples, 1.2 s for 96.
    import time

    from rtconv.train import trainer

    step, val_loss = trainer._step, trainer._val_loss
    calls = {"steps": 0}

    def slow_step(*a, **kw):
        calls["steps"] += 1
        time.sleep(0.2)
        return step(*a, **kw)

    def slow_val_loss(model, loader, *a, **kw):
        time.sleep(0.1 * len(loader.dataset) / 8)
        return val_loss(model, loader, *a, **kw)

    monkeypatch.setattr(trainer, "_step", slow_step)
    monkeypatch.setattr(trainer, "_val_loss", slow_val_loss)
    lines = []

    def log(line):
        lines.append(line)
        if "left after the data" in line:
            calls["sizing"] = calls["steps"]

    opts = dict(OPTS, val_examples=96)
    out = tmp_path / "cut.safetensors"
    t = time.perf_counter()
    r = train(_cfg(out, task_options=opts, epochs=1000, time_budget=0.05), log=log)
    took = time.perf_counter() - t
    said = [ln for ln in lines if "left after the data" in ln]
    assert calls["sizing"] == 1 and "and 1 timed step(s)" in said[0], said  # a 0.2-s step is a fiftieth of 3 s
    assert float(said[0].split(" min: ")[1].split(" s left")[0]) <= 3.0 - 0.2, said  # the step is charged to the budget
    assert len(r.history["train_loss"]) == 1 and out.is_file()
    # it ran past 4 s (the validation began where the budget ended); 2.8-3.3 s here since
    assert took < 3.0 + 0.8, (took, lines)


def test_a_time_budget_does_not_begin_mixing_fresh_examples_it_has_no_time_left_for(tmp_path, monkeypatch):
    # With --fresh-examples each epoch mixes its own clips before its first step, and mixing cannot be cut:
    # an epoch begun with less time left than its mixing takes ran past the budget by the whole mixing.
    import time

    from rtconv.train import trainer

    slow = {"on": False, "mixes": 0}
    materialize = trainer._tasks.materialize

    def slower_materialize(*a, **kw):
        data = materialize(*a, **kw)
        if slow["on"]:  # only the epochs' own examples are mixed after the sizing
            slow["mixes"] += 1
            time.sleep(4.5)  # a second one cannot fit in a 9 s budget after the first
        return data
    monkeypatch.setattr(trainer._tasks, "materialize", slower_materialize)
    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("time budget 0.15 min:"):  # on after the sizing; off once the run ends (the test split)
            slow["on"] = "left after the data" in line
    out = tmp_path / "fresh.safetensors"
    r = train(_cfg(out, epochs=1000, time_budget=0.15, fresh_examples=True), log=log)
    assert slow["mixes"] == 1, lines  # epoch 2's; before, epoch 3's began too and ended past the budget
    ended = [ln for ln in lines if "reached before epoch 3" in ln]
    assert len(ended) == 1 and "mixing its examples takes about 5 s" in ended[0], lines
    assert len(r.history["train_loss"]) == 2 and out.is_file()


def test_a_time_budget_that_is_not_a_positive_number_is_one_sentence(tmp_path):
    from rtconv.errors import ConfigError

    with pytest.raises(ConfigError, match=r"time budget must be a positive number of minutes, got -1"):
        train(_cfg(tmp_path / "x.safetensors", time_budget=-1), log=lambda s: None)


def _presence_cfg(out, **kw):
    opts = {"train_examples": 8, "val_examples": 4, "test_examples": 4, "sample_rate": 16000, "seconds": 0.5,
            "utterances": 8}
    base = dict(task="denoise", task_options=opts, arch="framed_denoiser", loss="si_sdr + 0.5*silence",
                arch_config={"channels": 8, "blocks": 1, "window": 32, "hop": 16, "learn_filterbank": False,
                             "gru": 4, "presence": 3},
                optimizer="adam", lr=0.01, epochs=3, batch_size=4, progress=False, out=str(out), seed=9,
                train_only=["presence"], command="rtconv train denoise --train-only presence (test)")
    base.update(kw)
    return TrainConfig(**base)


def test_train_only_moves_the_named_parameters_alone_and_an_interrupted_run_continues_exactly(tmp_path):
    from rtconv.models import build

    torch.manual_seed(0)
    start = build("framed_denoiser", _presence_cfg(tmp_path / "x").arch_config)
    from rtconv import checkpoint

    checkpoint.save(start, tmp_path / "start.safetensors", sample_rate=16000)
    lines = []
    whole = train(_presence_cfg(tmp_path / "whole.safetensors", resume=str(tmp_path / "start.safetensors")),
                  log=lines.append)
    assert any(ln.startswith("training only 8 tensors") and "presence" in ln for ln in lines), lines
    before = dict(start.state_dict())
    moved = {k for k, v in whole.model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all("presence" in k for k in moved)  # the head learned; nothing else changed
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(_presence_cfg(part, resume=str(tmp_path / "start.safetensors")), log=_stop_at("epoch 3:"))
    lines = []
    done = train(_presence_cfg(tmp_path / "done.safetensors", resume=str(part)), log=lines.append)
    assert any("exactly after epoch 2 of 3" in ln for ln in lines), lines
    for (k, a), b in zip(whole.model.state_dict().items(), done.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_train_only_naming_no_parameter_is_refused_in_one_sentence(tmp_path):
    from rtconv.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--train-only nothing names no trainable parameter of 'framed_denoiser'; "
                                          r"its parameters are named like body\.0\.body\.estimator"):
        train(_presence_cfg(tmp_path / "n.safetensors", train_only=["nothing"]), log=lambda s: None)


def test_the_presence_term_trains_the_head_toward_speech_activity_and_an_interrupted_run_continues_exactly(tmp_path):
    from rtconv import checkpoint
    from rtconv.models import build

    def cfg(out, **kw):
        opts = {"train_examples": 16, "val_examples": 8, "test_examples": 4, "sample_rate": 16000, "seconds": 1.0,
                "utterances": 8}
        return _presence_cfg(out, loss="presence", epochs=4, lr=0.03, task_options=opts, **kw)

    torch.manual_seed(0)
    start = build("framed_denoiser", _presence_cfg(tmp_path / "x").arch_config)
    checkpoint.save(start, tmp_path / "start.safetensors", sample_rate=16000)
    lines = []
    whole = train(cfg(tmp_path / "whole.safetensors", resume=str(tmp_path / "start.safetensors")), log=lines.append)
    first = [float(ln.split("val ")[1].split()[0]) for ln in lines if ln.startswith("resumed after")]
    vals = [float(ln.split("val ")[1].split()[0]) for ln in lines if ln.startswith("epoch ") and "val " in ln]
    assert len(first) == 1 and len(vals) == 4 and vals[-1] < 0.5 * first[0], lines  # the cross-entropy falls
    before = dict(start.state_dict())
    moved = {k for k, v in whole.model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all("presence" in k for k in moved)
    assert whole.metrics["test_loss"] > 0  # evaluated over every test batch through the same probe
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in whole.model.modules())  # the probe is gone
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(cfg(part, resume=str(tmp_path / "start.safetensors")), log=_stop_at("epoch 3:"))
    done = train(cfg(tmp_path / "done.safetensors", resume=str(part)), log=lambda s: None)
    for (k, a), b in zip(whole.model.state_dict().items(), done.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_the_presence_term_on_a_model_without_a_head_is_refused_in_one_sentence(tmp_path):
    from rtconv.errors import ConfigError

    cfg = _presence_cfg(tmp_path / "n.safetensors", loss="si_sdr + presence", train_only=None)
    cfg.arch_config = {k: v for k, v in cfg.arch_config.items() if k != "presence"}
    with pytest.raises(ConfigError, match=r"the presence loss term trains a denoiser's speech-presence head, and "
                                          r"'framed_denoiser' .* has 0; grow one first \(--resume MODEL "
                                          r"--arch-arg presence=32\) or drop the term\."):
        train(cfg, log=lambda s: None)


def test_evaluate_scores_the_presence_term_over_every_batch_and_leaves_no_hooks():
    from rtconv.models import build
    from rtconv.train import tasks
    from rtconv.train.trainer import evaluate

    torch.manual_seed(1)
    cfg = _presence_cfg("unused")
    model = build("framed_denoiser", cfg.arch_config)
    td = tasks.make_task("denoise", seed=2, **{**cfg.task_options, "test_examples": 70})
    data = tasks.materialize(td.test, 1)
    m = evaluate(model, data, "presence", outputs=["speech"])  # 70 examples: two batches of the evaluation
    assert m["examples"] == 70 and 0 < m["loss"] < 20
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in model.modules())


def test_train_warmup_puts_the_first_samples_of_each_example_into_the_loss(tmp_path):
    """A file starts from silence: with ``train_warmup`` the loss covers the warm-up the default skips."""
    from rtconv import checkpoint
    from rtconv.checkpoint import read_metadata
    from rtconv.models import build
    from rtconv.train import losses, tasks

    cfg0 = _presence_cfg(tmp_path / "x", loss="si_sdr", train_only=None)
    torch.manual_seed(0)
    start = build("framed_denoiser", cfg0.arch_config).eval()
    checkpoint.save(start, tmp_path / "start.safetensors", sample_rate=16000)
    td = tasks.make_task("denoise", seed=3, **cfg0.task_options)
    x, y = map(torch.stack, zip(*[td.val[i] for i in range(len(td.val))]))
    with torch.no_grad():
        out = start(x)
    w = start.receptive_field - 1
    loss = losses.get_loss("si_sdr")
    whole = float(losses.apply(loss, out, y, x))
    skipped = float(losses.apply(loss, out[..., w:], y[..., w:], x[..., w:]))
    assert 0 < w < x.shape[-1] and abs(whole - skipped) > 0.01  # the warm-up weighs in
    for flag, want in ((False, skipped), (True, whole)):
        lines = []
        out_path = tmp_path / f"warmup-{flag}.safetensors"
        train(_presence_cfg(out_path, loss="si_sdr", train_only=None, epochs=1, train_warmup=flag,
                            resume=str(tmp_path / "start.safetensors")), task_data=td, log=lines.append)
        got = [float(ln.split("val ")[1].split()[0]) for ln in lines if ln.startswith("resumed after")]
        assert got == pytest.approx([want], abs=1e-3), lines  # logged to 5 significant digits
        assert read_metadata(out_path)["provenance"]["config"]["train_warmup"] is flag


def test_a_shifted_dataset_is_the_same_stream_further_along():
    from rtconv.errors import ConfigError
    from rtconv.train.tasks import SinesDataset, shifted

    long = SinesDataset(24, "train", seed=3)
    head, tail = SinesDataset(8, "train", seed=3), shifted(SinesDataset(8, "train", seed=3), 16)
    assert len(tail) == 8 and head.offset == 0  # the original is left as it was
    for i in range(8):
        torch.testing.assert_close(head[i][0], long[i][0], rtol=0, atol=0)
        torch.testing.assert_close(tail[i][0], long[16 + i][0], rtol=0, atol=0)
        assert not torch.equal(tail[i][0], head[i][0])
    with pytest.raises(IndexError):
        tail[8]  # still 8 examples long
    with pytest.raises(ConfigError, match="fixed set"):
        shifted(torch.utils.data.TensorDataset(torch.zeros(2, 1)), 2)
    with pytest.raises(ConfigError, match="non-negative integer"):
        shifted(head, -1)


def test_fresh_examples_mix_each_epoch_its_own_set(tmp_path, monkeypatch):
    import rtconv.train.tasks as tasks

    offsets = []
    real = tasks.materialize

    def spy(ds, workers=0):
        if ds.split == "train":
            offsets.append(ds.offset)
        return real(ds, workers)

    monkeypatch.setattr(tasks, "materialize", spy)
    fresh = train(_cfg(tmp_path / "fresh.safetensors", epochs=3, fresh_examples=True), log=lambda s: None)
    assert offsets == [0, 96, 192]  # train_examples = 96: epoch e draws examples 96e ... 96e + 95
    offsets.clear()
    same = train(_cfg(tmp_path / "same.safetensors", epochs=3), log=lambda s: None)
    assert offsets == [0]  # without the option one set, made once
    assert fresh.history["train_loss"][0] == pytest.approx(same.history["train_loss"][0], rel=1e-6)
    assert fresh.history["train_loss"][1:] != pytest.approx(same.history["train_loss"][1:], rel=1e-3)
    # a fine-tuning run numbers its epochs after the resumed ones, and so its examples: none seen before
    offsets.clear()
    train(_cfg(tmp_path / "more.safetensors", epochs=2, fresh_examples=True, resume=str(tmp_path / "fresh.safetensors")),
          log=lambda s: None)
    assert offsets == [288, 384]
    assert read_metadata(tmp_path / "more.safetensors")["provenance"]["config"]["fresh_examples"] is True


@pytest.mark.parametrize("stop_after", [1, 2])
def test_an_interrupted_run_on_fresh_examples_continues_exactly(tmp_path, stop_after):
    whole = train(_cfg(tmp_path / "whole.safetensors", fresh_examples=True), log=lambda s: None)
    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(_cfg(part, fresh_examples=True), log=_stop_at(f"epoch {stop_after + 1}:"))
    lines = []
    resumed = train(_cfg(tmp_path / "resumed.safetensors", resume=str(part), fresh_examples=True), log=lines.append)
    assert any(f"exactly after epoch {stop_after} of 4" in ln for ln in lines), lines
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    assert resumed.history["train_loss"] == pytest.approx(whole.history["train_loss"], rel=1e-6)
    # the same state does not continue a run without the option: its examples would differ
    lines = []
    train(_cfg(tmp_path / "plain.safetensors", resume=str(part)), log=lines.append)
    assert not any("exactly after" in ln for ln in lines)


def _weights(path):
    return {k: v.clone() for k, v in load(path).state_dict().items()}


def test_a_resumed_run_that_beats_none_of_its_start_says_so_and_keep_last_keeps_its_last_epoch(tmp_path):
    start = tmp_path / "start.safetensors"
    train(_cfg(start, epochs=3), log=lambda s: None)
    # a learning rate far too high: the one epoch is worse than the weights it started from
    lines = []
    best = tmp_path / "best.safetensors"
    r = train(_cfg(best, epochs=1, optimizer="sgd", lr=2.0, clip_grad=1.0, schedule="none", resume=str(start),
                   command="rtconv train sines --resume start"), log=lines.append)
    assert r.metrics["best_epoch"] == 3 and r.metrics["kept_epoch"] == 3
    note = [ln for ln in lines if ln.startswith("no epoch of this run beat")]
    assert len(note) == 1 and str(state_path(best)) in note[0] and "--keep last" in note[0]
    for k, v in _weights(start).items():  # unchanged: the resumed weights themselves
        torch.testing.assert_close(_weights(best)[k], v, rtol=0, atol=0, msg=k)
    last = tmp_path / "last.safetensors"
    lines = []
    r = train(_cfg(last, epochs=1, optimizer="sgd", lr=2.0, clip_grad=1.0, schedule="none", resume=str(start), keep="last",
                   command="rtconv train sines --resume start --keep last"), log=lines.append)
    assert r.metrics["best_epoch"] == 3 and r.metrics["kept_epoch"] == 4
    assert not any(ln.startswith("no epoch of this run beat") for ln in lines)
    assert any(ln.startswith("epoch 4:") and "(saved)" in ln for ln in lines)
    got, old = _weights(last), _weights(start)
    assert any((got[k] - old[k]).abs().max() > 0 for k in old)  # the last epoch's weights, not the start's
    from safetensors.torch import load_file
    state = load_file(state_path(last))
    for k, v in got.items():  # the same as the state file's last epoch
        torch.testing.assert_close(v, state["model." + k], rtol=0, atol=0, msg=k)
    assert read_metadata(last)["metrics"]["kept_epoch"] == 4


def test_an_improving_run_keeps_the_same_weights_either_way_and_a_bad_keep_is_one_sentence(tmp_path):
    a = train(_cfg(tmp_path / "a.safetensors", epochs=2), log=lambda s: None)
    b = train(_cfg(tmp_path / "b.safetensors", epochs=2, keep="last"), log=lambda s: None)
    assert a.metrics["best_epoch"] == 2  # the last epoch is the best here, so both keep the same weights
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)
    from rtconv.errors import ConfigError
    with pytest.raises(ConfigError, match=r"keep must be one of \('best', 'last'\).*got 'first'"):
        train(_cfg(tmp_path / "c.safetensors", keep="first"), log=lambda s: None)


def test_keep_last_on_the_command_line_is_in_the_summary_line_and_the_recorded_command(tmp_path, capsys):
    from rtconv.cli import main

    out = tmp_path / "k.safetensors"
    rc = main(["train", "sines", "--epochs", "2", "--train-examples", "32", "--val-examples", "8",
               "--test-examples", "8", "--keep", "last", "--threads", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "kept the last, 2," in text
    meta = read_metadata(out)
    assert meta["metrics"]["kept_epoch"] == 2 and meta["provenance"]["config"]["keep"] == "last"
    assert "--keep" in meta["provenance"]["command"]
    with pytest.raises(SystemExit):
        main(["train", "sines", "--keep", "first"])
    assert "invalid choice: 'first'" in capsys.readouterr().err


def test_a_resumed_run_takes_the_resumed_model_s_rate_and_loss_unless_told_otherwise(tmp_path, capsys):
    """`rtconv train denoise --resume denoiser` fine-tunes the shipped denoiser at its 48 kHz on its own loss; before,
    it was refused for the task's default 32 kHz, and with --sample-rate given it trained on MSE."""
    from rtconv.cli import main

    small = ["--arch", "fir", "--taps", "4", "--train-examples", "4", "--val-examples", "2", "--test-examples", "2",
             "--seconds", "0.25", "--batch-size", "2", "--quiet"]
    first = tmp_path / "first.safetensors"
    assert main(["train", "denoise", *small, "--sample-rate", "16000", "--loss", "l1", "--epochs", "1",
                 "--out", str(first)]) == 0
    second = tmp_path / "second.safetensors"
    assert main(["train", "denoise", *small, "--epochs", "1", "--resume", str(first), "--out", str(second)]) == 0
    meta = read_metadata(second)
    assert meta["sample_rate"] == 16000 and meta["provenance"]["config"]["loss"] == "l1"
    # the recorded command says what it took, so it reruns alike whatever the resumed file becomes
    assert meta["provenance"]["command"].endswith("--sample-rate 16000 --loss l1")
    # flags given win; a rate the model was not made for is still refused in one sentence
    third = tmp_path / "third.safetensors"
    assert main(["train", "denoise", *small, "--epochs", "1", "--resume", str(first), "--loss", "mse",
                 "--out", str(third)]) == 0
    assert read_metadata(third)["provenance"]["config"]["loss"] == "mse"
    capsys.readouterr()
    assert main(["train", "denoise", *small, "--resume", str(first), "--sample-rate", "32000"]) == 1
    assert "was made for 16000 Hz" in capsys.readouterr().err


def test_resume_takes_a_shipped_model_s_name():
    from rtconv.checkpoint import models_dir
    from rtconv.cli import get_parser
    from rtconv.cli.train import build_config

    parser, _ = get_parser()
    cfg = build_config(parser.parse_args(["train", "denoise", "--resume", "denoiser", "--quiet"]))
    assert cfg.resume == str(models_dir() / "denoiser.safetensors")
    assert cfg.task_options["sample_rate"] == 48000
    assert cfg.loss == read_metadata(models_dir() / "denoiser.safetensors")["provenance"]["config"]["loss"]
