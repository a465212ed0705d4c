"""The training loop: from a task and an architecture to a tested checkpoint.

:class:`TrainConfig` holds every choice (it is stored in the checkpoint's
provenance together with the exact command line); :func:`train` runs it:

1. seeds NumPy and torch, picks the device (CUDA, then MPS, then CPU unless
   ``device`` says otherwise) and builds the datasets and the model;
2. trains with SGD or Adam, an optional learning-rate schedule and gradient
   clipping, showing a tqdm bar with the running loss;
3. after each epoch measures the validation loss; the best weights so far
   are written to ``out`` at once (so an interrupted run still leaves the
   best model), and training stops early after ``patience`` epochs without
   improvement;
4. evaluates the best weights on the held-out test split (loss, MSE,
   SNR and SI-SDR improvements per input-SNR bucket) and writes the final
   checkpoint with those metrics, plus an optional PNG report.

Causal filters start from silence, so the first ``receptive_field - 1``
output samples of every example are a warm-up that a running stream never
shows (it has history); loss and metrics skip them (and the same number at
the end for non-causal models).  A file, though, and a stream's first
moments start from silence too: ``train_warmup`` trains on those samples as
well (the test metrics still skip them, to stay comparable across runs).

Resume, two kinds:

- **continue an interrupted run exactly.**  After every epoch the trainer
  also writes ``<out>.state.safetensors`` (weights of the last epoch,
  optimizer moments, the schedule's position, the shuffling generator, the
  best-so-far bookkeeping; tensors + JSON, no pickle).  ``resume=PATH``
  with that file beside ``PATH`` and the same training choices runs the
  remaining epochs of the original plan and gives the weights an
  uninterrupted run would have given (tested).
- **fine-tune.**  Otherwise ``resume=PATH`` starts from the checkpoint's
  weights and runs ``epochs`` more with fresh optimizer moments (another
  loss, data or seed).  An epoch is kept as best only if it beats the
  resumed weights' validation loss measured at the start on this run's
  split and loss, so a different loss or seed cannot make every new epoch
  look worse than the old run's numbers.

Either way the checkpoint's provenance keeps ``chain``: the commands of
every run it was resumed from, oldest first, so a shipped model can be
reproduced from the repository alone.

Several processes.  Started by ``torchrun``, every rank runs :func:`train`
with DistributedDataParallel (gloo on CPU, nccl on CUDA, ``dist_backend``
overrides); ``batch_size`` is the effective batch, split evenly among the
ranks; the epoch's order comes from ``(seed, epoch)`` so an exact resume
needs no generator state (it also continues on another number of ranks);
only rank 0 writes and logs.  :mod:`rtconv.train.distributed` states the
contract.  A plain single process keeps its own shuffling generator, so its
results do not change; ``torchrun --nproc_per_node 1`` takes the
distributed order, and N ranks give its weights to float tolerance.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..models import Model, build, load_extra_architectures, transfer_weights
from . import distributed as _dist
from . import losses as _losses
from . import tasks as _tasks
from .choices import OPTIMIZERS, SCHEDULES
from .config import TrainConfig, TrainResult, _check, pick_device
from .evaluate import _cut, _trim, evaluate, mse_change
from .state import _load_state, _plan, _save, _save_state, _sha256, _unfinished, _unfinished_note, state_path

__all__ = ["TrainConfig", "TrainResult", "train", "pick_device", "evaluate", "mse_change", "OPTIMIZERS", "SCHEDULES",
           "state_path"]


def _freeze_all_but(model, words, log) -> None:
    """Leave only the parameters whose names contain one of ``words`` trainable (``--train-only``)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    keep = [n for n in names if any(w in n for w in words)]
    if not keep:
        raise ConfigError(
            f"--train-only {','.join(words)} names no trainable parameter of {model.arch!r}; its parameters are "
            f"named like {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}.")
    for n, p in model.named_parameters():
        if n not in keep:
            p.requires_grad_(False)
    count = sum(p.numel() for n, p in model.named_parameters() if n in keep)
    log(f"training only {len(keep)} tensors ({count} parameters) whose names contain {', '.join(words)}; "
        "the rest stay as they are")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_resumable(path, model, td) -> None:
    """Refuse to fine-tune a checkpoint of another task, or one made for another sample rate: the run
    would finish and write a model whose name, task and filterbank disagree (a 48 kHz VAD trained as a
    32 kHz denoiser).  A designed filter (``rtconv filter``) or a model saved without a task may start
    any task at its own rate."""
    task, rate = (model.metadata or {}).get("task"), model.sample_rate
    if task not in (None, "unknown", td.name, "filter"):
        raise ConfigError(f"--resume {str(path)!r} is a {task!r} model and this run trains {td.name!r}; resume a "
                          f"{td.name!r} checkpoint, or leave --resume out to start a new model.")
    if rate and td.sample_rate and int(rate) != int(td.sample_rate):
        raise ConfigError(f"--resume {str(path)!r} was made for {int(rate)} Hz and this run's examples are at "
                          f"{int(td.sample_rate)} Hz; pass --sample-rate {int(rate)}, or leave --resume out.")


def _grow(model: Model, changes: dict, log) -> Model:
    """The resumed model with architecture options changed, its weights carried over.

    For fine-tuning into a larger architecture (``--resume PATH --arch-arg
    gru=64``): every old tensor is copied (:func:`rtconv.models.transfer_weights`),
    new layers keep their initialisation, and the log says whether the grown
    model still computes the old model's function before training.
    """
    config = {**model.config, **changes}
    if config == model.config:
        return model
    grown = build(model.arch, config)
    copied, fresh = transfer_weights(model, grown)
    grown.metadata = getattr(model, "metadata", {})
    probe = torch.randn(1, model.in_channels, 8192, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        same = torch.allclose(grown(probe), model(probe), atol=1e-6)
    log(f"grew {model.arch} {model.config} -> {config}: {copied} tensors carried over, {fresh} new; "
        f"{'same' if same else 'a different'} output before training")
    return grown


def _make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_schedule(cfg: TrainConfig, opt, epochs: int):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.3)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None


def _command(cfg: TrainConfig) -> str:
    if cfg.command:
        return cfg.command
    argv = list(sys.argv)
    if argv and argv[0].endswith(("rtconv", "__main__.py")):
        argv[0] = "rtconv"
    return shlex.join(argv)


def _step(model, x, y, loss_fn, opt, cfg, trim, weight=1.0) -> torch.Tensor:
    """One optimizer step on the batch (x, y); its loss (unweighted).

    With ``cfg.micro_batch`` below the batch, the batch is computed in pieces whose gradients add up,
    each weighted by its share of the batch; under DistributedDataParallel only the last piece's
    backward pass averages the ranks' gradients."""
    opt.zero_grad(set_to_none=True)
    n = x.shape[0]  # at least one: a rank without examples runs one at weight 0
    size = min(cfg.micro_batch or n, n)
    total = 0.0
    for start in range(0, n, size):
        xs, ys = x[start:start + size], y[start:start + size]
        share = xs.shape[0] / n
        last = start + size >= n
        with (model.no_sync() if not last and hasattr(model, "no_sync") else contextlib.nullcontext()):
            loss = _losses.apply(loss_fn, _cut(model(xs), trim), _cut(ys, trim), _cut(xs, trim))
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"training diverged: the {cfg.loss} loss became {loss.item()!r}; lower the "
                    f"learning rate (now {cfg.lr!r}) or add gradient clipping (--clip-grad 1)."
                )
            factor = weight * share
            (loss if factor == 1.0 else loss * factor).backward()
        total = total + loss.detach() * share
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
    opt.step()
    return total


def _epoch(model, loader, loss_fn, opt, cfg, device, trim, bar, stop_at: float | None = None) -> tuple[float, int, int]:
    """One pass over ``loader``: the summed loss, the examples it covers and the examples stepped on
    (every rank's). With ``stop_at`` (a ``time.perf_counter()`` value) the pass ends at the first step
    that would begin after it, so a time budget holds when the steps run slower than they were timed."""
    model.train()
    total, count, stepped = 0.0, 0, 0
    for batch in loader:
        if stop_at is not None and stepped and time.perf_counter() >= stop_at:
            break
        x, y = batch[0].to(device), batch[1].to(device)
        # under torchrun: this rank's loss weight and the examples of the whole step (distributed.Shards)
        weight, seen = (batch[2], batch[3]) if len(batch) > 2 else (1.0, x.shape[0])
        loss = _step(model, x, y, loss_fn, opt, cfg, trim, weight)
        if weight:
            total += loss.item() * x.shape[0]
            count += x.shape[0]
        stepped += seen
        if bar is not None:
            bar.update(seen)
            bar.set_postfix(loss=f"{total / max(1, count):.4g}")
    return total, count, stepped


@dataclass
class _Sizing:
    """What :func:`_fit_epochs` planned: the epochs, and the seconds a validation pass and the test split's
    evaluation are expected to take (kept free before the budget's end)."""

    epochs: int
    val_seconds: float
    test_seconds: float


#: A forward pass (no gradient) costs at most this share of a training step on as many examples: backward
#: alone costs about twice the forward, and the loss's own terms (pesq, stoi) run once either way
_FORWARD_SHARE = 0.5


def _fit_epochs(model, opt, loss_fn, cfg, device, trim, train_data, val_loader, deadline: float, log,
                mixing: float = 0.0, n_test: int = 0) -> _Sizing:
    """How many of ``cfg.epochs`` fit before ``deadline`` (a ``time.perf_counter()`` value, the budget's end):
    training steps on the first batch are timed after one warm-up, then the weights and the optimizer are
    put back as they were; ``mixing``: seconds each epoch spends making its examples (fresh examples every
    epoch); ``n_test``: examples the test split holds, evaluated after the last epoch.

    The timing is charged to the budget: where the warm-up step alone takes a fiftieth of what is left
    (a CPU with a heavy loss: 18 s a step), it is the step's time and three more are not run."""
    weights, moments = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    x, y = (t[: cfg.batch_size].to(device) for t in train_data.tensors)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.train()
    t = time.perf_counter()
    _step(model, x, y, loss_fn, opt, cfg, trim)
    sync()
    per_step = time.perf_counter() - t
    timed = 1
    if per_step < (deadline - time.perf_counter()) / 50:
        t = time.perf_counter()
        for _ in range(3):
            _step(model, x, y, loss_fn, opt, cfg, trim)
        sync()
        per_step, timed = (time.perf_counter() - t) / 3, 4
    model.load_state_dict(weights)
    opt.load_state_dict(moments)
    opt.zero_grad(set_to_none=True)
    steps = math.ceil(len(train_data) / cfg.batch_size)
    per_example = _FORWARD_SHARE * per_step / cfg.batch_size  # evaluated, not trained on
    val_seconds, test_seconds = per_example * len(val_loader.dataset), per_example * n_test
    per_epoch = per_step * steps + val_seconds + mixing
    seconds_left = deadline - time.perf_counter()
    # a twentieth of the budget is kept for the checkpoint, and the test split's evaluation
    fit = int((0.95 * seconds_left - test_seconds) // per_epoch) if per_epoch > 0 else cfg.epochs
    epochs = max(1, min(cfg.epochs, fit))
    log(f"time budget {cfg.time_budget:g} min: {seconds_left:.1f} s left after the data and {timed} timed step(s), "
        f"{per_step * 1e3:.0f} ms "
        f"per step of {cfg.batch_size}{f' in pieces of {cfg.micro_batch}' if cfg.micro_batch and cfg.micro_batch < cfg.batch_size else ''}, about {per_epoch:.3g} s per epoch: {epochs} of {cfg.epochs} epochs"
        f"{' (fewer than one fits: one runs)' if fit < 1 else ''}")
    return _Sizing(epochs, val_seconds, test_seconds)


def _val(model, loader, loss_fn, device, trim, ctx, parts: dict | None = None) -> float:
    """The validation loss over every rank's share of the split (the same float on each rank);
    a weighted-sum loss's unweighted terms go into ``parts`` (averaged the same way)."""
    v, t = _val_loss(model, loader, loss_fn, device, trim)
    n = len(loader.dataset)
    if parts is not None:
        parts.update({k: ctx.mean(x * n, n) if ctx.enabled else x for k, x in t.items()})
    return ctx.mean(v * n, n) if ctx.enabled else v


@torch.no_grad()
def _val_loss(model, loader, loss_fn, device, trim) -> tuple[float, dict[str, float]]:
    model.eval()
    total, count, terms = 0.0, 0, {}
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        value, parts = _losses.loss_and_terms(loss_fn, _cut(model(x), trim), _cut(y, trim), _cut(x, trim))
        total += float(value) * x.shape[0]
        for k, v in parts.items():
            terms[k] = terms.get(k, 0.0) + v * x.shape[0]
        count += x.shape[0]
    return total / max(1, count), {k: v / max(1, count) for k, v in terms.items()}


def _terms_text(parts: dict) -> str:
    return f"  ({', '.join(f'{k} {v:.4g}' for k, v in parts.items())})" if parts else ""


def train(cfg: TrainConfig, task_data=None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Run one training configuration end to end (see the module docstring).

    ``task_data`` may pass ready-made :class:`rtconv.train.tasks.TaskData`
    (tests, the denoiser's own scripts); ``log`` receives progress lines
    (default: ``print`` to stderr when ``cfg.progress``).
    """
    from tqdm.auto import tqdm

    with _dist.said_once(_dist.env_rank()):
        _check(cfg)
        if cfg.time_budget and _dist.launched():  # refused before any rank builds its data
            raise ConfigError("--time-budget sizes a run from this process's step time; under torchrun give "
                              "--epochs instead (every rank must run the same number).")
    ctx = _dist.start(cfg.dist_backend, cfg.device, cfg.batch_size, cfg.dist_timeout, cfg.out)
    if log is None:
        log = (lambda s: print(s, file=sys.stderr)) if cfg.progress else (lambda s: None)
    if not ctx.is_main:
        log = lambda s: None  # noqa: E731  rank 0 speaks for the job
    t0 = time.perf_counter()
    _seed_all(cfg.seed)
    device = ctx.device if ctx.enabled else pick_device(cfg.device)
    command = _command(cfg)
    td = task_data or _tasks.make_task(cfg.task, seed=cfg.seed, **cfg.task_options)
    history: dict = {"train_loss": [], "val_loss": [], "lr": [], "seconds": []}
    chain: list = []
    origin = None  # the file a fine-tuning run started from: path, sha256, epochs before it
    exact = None  # (meta, tensors) of an interrupted run this one continues exactly
    note = _unfinished_note(cfg) if cfg.out else None
    if note:
        log(note)
    if cfg.resume:
        from ..checkpoint import load

        if ctx.enabled and not Path(cfg.resume).is_file():
            raise ConfigError(f"{ctx} cannot read --resume {cfg.resume!r}: under torchrun every machine "
                              "needs the checkpoint and its .state file (a shared folder, or a copy).")
        model = load(cfg.resume)
        _check_resumable(cfg.resume, model, td)
        prov = model.metadata.get("provenance", {})
        history = {k: list(v) for k, v in (prov.get("history") or history).items()}
        chain = list(prov.get("chain") or []) + ([prov["command"]] if prov.get("command") else [])
        origin = {"path": str(cfg.resume), "sha256": _sha256(cfg.resume),
                  "epochs_before": len(history.get("train_loss", []))}
        sp = state_path(cfg.resume)
        if sp.is_file():
            meta, tensors = _load_state(sp)
            # "end": the epoch the interrupted run would have stopped at (a fine-tuning run's
            # epochs are numbered after the ones it resumed from)
            if not prov.get("final") and _unfinished(meta, cfg):
                exact = (meta, tensors)
                history = meta["history"]
                chain = chain[:-1]  # the same run, continued: not a separate step
                origin = prov.get("resumed_from")  # ... which started where the interrupted one did
                log(f"continuing {cfg.resume} exactly after epoch {meta['epoch']} of {meta.get('end', cfg.epochs)}")
                shuffle, before = ctx.provenance(cfg.batch_size)["shuffle"], meta.get("shuffle", "generator")
                if shuffle != before:
                    log(f"note: the interrupted run shuffled by {before} and this one by {shuffle} (a plain "
                        "process and torchrun differ), so the examples come in another order from here on")
            elif not prov.get("final"):
                log(f"note: {sp.name} belongs to a run with other choices; fine-tuning from the weights instead")
        if exact is None and cfg.arch_config:
            model = _grow(model, cfg.arch_config, log)
    else:
        arch, conf = td.default_arch
        load_extra_architectures()
        if cfg.arch and cfg.arch != arch:
            arch, conf = cfg.arch, {}
        # options given for the task's own architecture refine its defaults (e.g. only padding)
        model = build(arch, {**conf, **(cfg.arch_config or {})})
    if model.in_channels != td.in_channels or model.out_channels != td.out_channels:
        raise ConfigError(
            f"task {td.name!r} needs a model with {td.in_channels} input and {td.out_channels} output "
            f"channel(s), but {model.arch!r} {model.config} has {model.in_channels} and {model.out_channels}."
        )
    model.to(device)
    if cfg.train_only:
        _freeze_all_but(model, list(cfg.train_only), log)
    trim = _trim(model, cfg.train_warmup)
    loss_fn = _losses.get_loss(cfg.loss, td.sample_rate)
    if _losses.needs_probe(loss_fn):  # the presence term reads the model's presence head
        loss_fn = _losses.bind_probe(loss_fn, _losses.presence_probe(model, trim[0]))
    layout = ctx.provenance(cfg.batch_size)
    ranks = (f"; {ctx.world_size} ranks ({ctx.backend}), batch {cfg.batch_size} = "
             f"{ctx.world_size} x {layout['batch_size_per_rank']}") if ctx.enabled else ""
    log(f"rtconv train: task {td.name} ({td.description}); model {model.arch} {model.config}, "
        f"{model.parameter_count()} parameters, latency {model.latency} samples"
        f"{f' = {1e3 * model.latency / td.sample_rate:.2f} ms' if td.sample_rate else ''}"
        f"{'' if model.causal else ' (non-causal: centred taps see the future)'}; device {device}{ranks}")
    start = len(history["train_loss"])  # epochs are numbered on from the resumed run's (an exact one's too)

    def epoch_data(epoch: int):
        """The training examples of ``epoch``: always the same set, or its own with fresh examples."""
        return _tasks.materialize(_tasks.shifted(td.train, epoch * len(td.train)) if cfg.fresh_examples
                                  else td.train, cfg.workers)

    tm = time.perf_counter()
    train_data, data_epoch = epoch_data(start), start
    mixing = time.perf_counter() - tm if cfg.fresh_examples else 0.0
    val_data = _tasks.materialize(td.val, cfg.workers)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_data, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    val_loader = DataLoader(val_data, batch_size=max(cfg.batch_size, 64))
    shards = None
    if ctx.enabled:
        ctx.check_same(_plan(cfg))
        shards = _dist.Shards(train_data.tensors, cfg.batch_size, cfg.seed, ctx)
        # each rank validates every world_size-th example; Context.mean sums over the ranks
        val_loader = DataLoader(torch.utils.data.Subset(val_data, range(ctx.rank, len(val_data), ctx.world_size)),
                                batch_size=max(layout["batch_size_per_rank"], 64))
    net = ctx.wrap(model)  # what the training steps call: DDP averages the ranks' gradients
    opt = _make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    epochs = cfg.epochs
    # the budget is a wall-clock limit, not only a plan: the steps were timed alone, and a machine that
    # gets busier (another run on the same GPU, data workers) must not carry the run past it. A
    # twentieth is kept for the checkpoint, and time for the test split and one validation pass for the
    # last epoch.
    deadline = t0 + 0.95 * 60.0 * cfg.time_budget if cfg.time_budget else None
    sizing = None
    if cfg.time_budget and exact is None and cfg.epochs:
        sizing = _fit_epochs(model, opt, loss_fn, cfg, device, trim, train_data, val_loader,
                             t0 + 60.0 * cfg.time_budget, log, mixing, len(td.test))
        epochs = sizing.epochs
        deadline -= sizing.test_seconds
    sched = _make_schedule(cfg, opt, epochs)
    best, best_epoch = math.inf, 0
    stale = 0
    end = start + epochs
    # the last validation pass's time, kept free before the budget's end (before the first: the sizing's guess)
    val_seconds = sizing.val_seconds if sizing is not None else 0.0
    if exact is not None:
        meta, tensors = exact
        best_state = copy.deepcopy(model.state_dict())  # the checkpoint holds the best weights so far
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        osd = {"state": {}, "param_groups": meta["param_groups"]}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, key = k.split(".", 2)
                osd["state"].setdefault(int(pid), {})[key] = v
        opt.load_state_dict(osd)
        if sched is not None and meta.get("scheduler") is not None:
            sched.load_state_dict(meta["scheduler"])
        gen.set_state(tensors["generator"])
        best, best_epoch, stale = meta["best"], meta["best_epoch"], meta["stale"]
        start, end = meta["epoch"], meta.get("end", cfg.epochs)
    elif cfg.resume:
        # the bar to beat is the resumed weights on *this* run's validation set and loss: the
        # old history's values may come from another loss or another split, not comparable
        start_parts: dict = {}
        tv = time.perf_counter()
        best, best_epoch = _val(model, val_loader, loss_fn, device, trim, ctx, start_parts), start
        val_seconds = time.perf_counter() - tv
        log(f"resumed after epoch {start}: val {best:.5g} on this run's validation set ({cfg.loss})"
            f"{_terms_text(start_parts)}")
    if exact is None:
        best_state = copy.deepcopy(model.state_dict())
    for epoch in range(start, end):
        te = time.perf_counter()
        ctx.stage = f"in epoch {epoch + 1}"
        stop_at = None if deadline is None else deadline - val_seconds
        remix = cfg.fresh_examples and epoch != data_epoch
        # fresh examples are mixed before the epoch's first step, and mixing cannot be cut: an epoch whose
        # mixing (as long as the last one's) would reach the budget's end is not begun
        if stop_at is not None and epoch > start and te + (mixing if remix else 0.0) >= stop_at:
            log(f"time budget {cfg.time_budget:g} min: reached before epoch {epoch + 1}"
                f"{f' (mixing its examples takes about {mixing:.0f} s)' if remix and te < stop_at else ''}; "
                f"the run ends after {epoch - start} epoch(s)")
            break
        if remix:  # this epoch's own examples (the last ones freed first)
            del loader, train_data
            shards = None  # it holds the old set's tensors too
            tm = time.perf_counter()
            train_data, data_epoch = epoch_data(epoch), epoch
            mixing = time.perf_counter() - tm
            loader = DataLoader(train_data, batch_size=cfg.batch_size, shuffle=True, generator=gen)
            shards = _dist.Shards(train_data.tensors, cfg.batch_size, cfg.seed, ctx) if ctx.enabled else None
        bar = tqdm(total=len(train_data), desc=f"epoch {epoch + 1}/{end}", unit="ex",
                   leave=False, disable=not (cfg.progress and ctx.is_main), file=sys.stderr)
        with ctx.watch():  # DDP's gradient all-reduce runs inside backward()
            tr_total, tr_count, stepped = _epoch(net, shards.epoch(epoch) if shards else loader,
                                                 loss_fn, opt, cfg, device, trim, bar, stop_at)
        tr_loss = ctx.mean(tr_total, tr_count)
        bar.close()
        cut = stop_at is not None and stepped < len(train_data)
        if cut:
            log(f"time budget {cfg.time_budget:g} min: reached in epoch {epoch + 1} after {stepped} of "
                f"{len(train_data)} examples (the steps ran slower than they were timed); that epoch is "
                f"validated and kept as any other, and the run ends with it")
        va_parts: dict = {}
        tv = time.perf_counter()
        va_loss = _val(model, val_loader, loss_fn, device, trim, ctx, va_parts)
        val_seconds = time.perf_counter() - tv
        if not math.isfinite(va_loss):  # the last step's loss was finite; the step itself blew the weights up
            raise ConfigError(
                f"training diverged: after epoch {epoch + 1} the validation loss is {va_loss!r}; lower the learning "
                f"rate (now {cfg.lr!r}) or add gradient clipping (--clip-grad 1)."
            )
        history["train_loss"].append(tr_loss)
        history["val_loss"].append(va_loss)
        history["lr"].append(opt.param_groups[0]["lr"])
        history["seconds"].append(time.perf_counter() - te)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(va_loss)
        elif sched is not None:
            sched.step()
        improved = va_loss < best
        saved = bool(cfg.out) and (improved or cfg.keep == "last")
        tags = ", ".join(t for t, on in (("best", improved), ("saved", saved)) if on)
        log(f"epoch {epoch + 1}: train {tr_loss:.5g}  val {va_loss:.5g}{f'  ({tags})' if tags else ''}"
            f"  {history['seconds'][-1]:.1f} s{_terms_text(va_parts)}")
        if improved:
            best, best_epoch, stale = va_loss, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if saved and ctx.is_main:
            _save(model, cfg, td, history, {"best_val_loss": best, "best_epoch": best_epoch, "kept_epoch": epoch + 1},
                  command, device, final=False, chain=chain, origin=origin, layout=layout)
        if cfg.out and ctx.is_main:
            _save_state(model, opt, sched, gen, cfg, {"epoch": epoch + 1, "end": end, "best": best,
                                                      "best_epoch": best_epoch, "stale": stale, "history": history,
                                                      "shuffle": layout["shuffle"]})
        if cut:
            break
        if not improved and cfg.patience and stale >= cfg.patience:
            log(f"early stop: no better validation loss for {stale} epochs")
            break
    kept_epoch = len(history["train_loss"]) if cfg.keep == "last" else best_epoch
    if cfg.keep == "best":
        model.load_state_dict(best_state)
        if cfg.resume and exact is None and best_epoch == start and end > start and ctx.is_main:
            log(f"no epoch of this run beat the weights it resumed from on this run's validation loss "
                f"({best:.5g}): {'the checkpoint holds' if cfg.out else 'the result is'} them unchanged"
                f"{f'; the last epoch is in {state_path(cfg.out)}, and --keep last keeps it' if cfg.out else ''}")
    ctx.stop()  # no collective after the last epoch: rank 0 alone tests, calibrates and writes
    if not ctx.is_main:
        model.cpu().eval()
        return TrainResult(model, history, {"train_loss": history["train_loss"][-1] if history["train_loss"] else None,
                                            "val_loss": best if math.isfinite(best) else None,
                                            "best_epoch": best_epoch, "epochs_run": len(history["train_loss"])},
                           None, None, td, time.perf_counter() - t0, ctx.rank)
    calibration = None
    if cfg.calibrate_gain:
        from ..denoiser import calibrate_gain

        if not hasattr(model, "decoder"):
            raise ConfigError(f"--calibrate-gain needs a denoiser with a decoder; {model.arch!r} has none.")
        pairs = [(val_data[i][0][0].numpy(), val_data[i][1][0].numpy()) for i in range(len(val_data))]
        # on speech with (almost) nothing to remove, so clean speech keeps its level: a gain fitted on
        # noisy mixtures comes out below 1 (it trades speech level for less residual noise)
        clean = [(x, y) for x, y in pairs if np.any(y) and np.sum(y**2) >= 10 ** 2.5 * np.sum((x - y) ** 2)]
        calibration = calibrate_gain(model.cpu(), clean if len(clean) >= 4 else pairs)
        model.to(device)
        log(f"calibrated the output level on the validation split: gain {calibration:.4f} "
            f"({20 * math.log10(calibration):+.2f} dB)")
    labels = None
    if isinstance(td.test, _tasks.DenoiseDataset):
        labels = [td.test.info(i)["noise"] for i in range(len(td.test))]
    test = _tasks.materialize(td.test, cfg.workers)
    # classifiers bring their own test metrics (accuracy, confusion matrix, AUC) instead of SNRs
    custom = getattr(td, "evaluate", None)
    result = custom(model, test, loss_fn, device) if custom else evaluate(model, test, loss_fn, device,
                                                                          td.outputs, labels)
    if getattr(loss_fn, "probe", None) is not None:  # the returned model runs without the presence term's hooks
        loss_fn.probe.close()
    metrics = {
        "train_loss": history["train_loss"][-1] if history["train_loss"] else None,
        "val_loss": best if math.isfinite(best) else None,
        "test_loss": result["loss"],
        "best_epoch": best_epoch,
        "kept_epoch": kept_epoch,
        "calibration_gain": calibration,
        "epochs_run": len(history["train_loss"]),
        "loss": cfg.loss,
        "train_seconds": round(time.perf_counter() - t0, 2),
        **result.get("headline", {}),
        "test": result,
    }
    if custom:
        log(result["summary"])
    else:
        log(f"test: loss {result['loss']:.5g}, MSE {result['input_mse']:.4g} -> {result['output_mse']:.4g} "
            f"({mse_change(result['input_mse'], result['output_mse'])})")
        for nm, e in result["outputs"].items():
            log(f"  {nm}: SNR {e['input_snr_db']:.2f} -> {e['output_snr_db']:.2f} dB "
                f"({e['snr_improvement_db']:+.2f}), SI-SDR {e['si_sdr_improvement_db']:+.2f} dB")
    model.sample_rate = td.sample_rate
    path = _save(model, cfg, td, history, metrics, command, device, final=True, chain=chain, origin=origin,
                 layout=layout)
    report = None
    if cfg.report:
        from .report import write_report

        report = write_report(cfg.report, model.cpu(), history, test, td, metrics)
        log(f"report: {report}")
    model.cpu().eval()
    if path is not None:
        log(f"checkpoint: {path}")
    return TrainResult(model, history, metrics, path, report, td, time.perf_counter() - t0)
