"""A training run's choices (:class:`TrainConfig`, checked before any work by :func:`_check`), its result
(:class:`TrainResult`) and the device it runs on (:func:`pick_device`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, check_output_file
from ..models import Model
from . import losses as _losses
from .choices import DEFAULTS, KEEP, OPTIMIZERS, SCHEDULES


@dataclass
class TrainConfig:
    """Every choice of a training run (JSON-able; stored in the checkpoint).

    Attributes
    ----------
    task : str
        ``"sines"``, ``"freqsep"`` or ``"denoise"``.
    task_options : dict
        Passed to :func:`rtconv.train.tasks.make_task` (``seed`` is added).
    arch, arch_config : str, dict, optional
        Architecture registry name and constructor arguments; default: the
        task's own default.
    loss : str
        A key of :data:`rtconv.train.losses.LOSSES`.
    optimizer : {"sgd", "adam"}
    lr, momentum, weight_decay : float
    batch_size, epochs : int
    schedule : {"none", "cosine", "step", "plateau"}
    clip_grad : float or None
        Max gradient norm.
    patience : int or None
        Early stop after this many epochs without a better validation loss.
    seed : int
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    out : str or None
        Checkpoint path.
    report : str or None
        PNG report path.
    resume : str or None
        Checkpoint to continue from.
    name, description : str or None
        Stored in the checkpoint.
    command : str or None
        The exact command line (default: ``sys.argv``).
    progress : bool
        Show tqdm bars.
    workers : int
        Processes that generate the examples before training (0 or 1: this
        one); the examples do not depend on it.
    micro_batch : int or None
        Examples per forward and backward pass: each step's batch (on each
        rank: its share) is computed in pieces of this many and their
        gradients summed, weighted by size, into one optimizer step.  Terms
        that average over examples (``si_sdr``, ``cmrs``, ``l1``, ``mse``)
        give the step of the whole batch to float rounding; ``sc``, a ratio
        over the batch, becomes the mean of the pieces' ratios, as it does
        over the ranks under torchrun.  For speed where a large batch
        overflows the CPU's caches, or for memory; ``None``: the whole batch.
    train_only : list of str or None
        Train only the parameters whose names contain one of these words
        (e.g. ``["presence"]``: a presence head on a frozen mask network);
        the rest keep their values.  ``None``: every trainable parameter.
    time_budget : float or None
        Minutes the whole run may take (data, training, test): after the
        examples are made, a few training steps are timed (then undone; their
        time counts) and ``epochs`` is lowered to what fits, so the learning-rate
        schedule ends with the run.  It is a deadline too: the epoch under way
        stops in time for its validation and the test split's evaluation.  The
        epochs run are in the checkpoint's history.
    train_warmup : bool
        Train on every output sample, the warm-up included (the first
        ``receptive_field - 1``, which a model with a recurrent part or a long
        reach meets at the start of every file it processes), rather than
        skipping them.  The test metrics skip them either way.
    fresh_examples : bool
        Mix a new set of ``train_examples`` for every epoch instead of
        repeating one: epoch ``e`` trains on examples ``e * N ... e * N + N - 1``
        of the split's stream (:func:`rtconv.train.tasks.shifted`), mixed
        before the epoch starts.  More data than memory holds at once, at the
        cost of the mixing time each epoch; the examples still follow from the
        seed alone, so an interrupted run continues exactly.  Generated
        datasets only (every task's are).
    calibrate_gain : bool
        After training, fold one least-squares output gain, measured on the
        validation split's clean and near-clean examples (input SNR at least
        25 dB; never the test split), into a denoiser's decoder: a
        scale-invariant loss (SI-SDR) leaves the output level free.  With
        ``epochs=0`` and ``resume`` a checkpoint is only calibrated.
    keep : {"best", "last"}
        Which weights the checkpoint holds: ``"best"``, those of the epoch with
        the lowest validation loss (the resumed weights count as a candidate,
        scored on this run's validation set, so a run none of whose epochs beats
        them returns them unchanged, and says so); ``"last"``, the last
        epoch's, for a stage whose weights are judged downstream (a benchmark
        rather than the loss), saved after every epoch.
    dist_backend : {"auto", "gloo", "nccl"}
        Under torchrun: the collective backend (auto: nccl on CUDA, gloo on CPU).
    dist_timeout : float
        Under torchrun: seconds a rank waits for a silent one before the job stops.
    """

    task: str = "sines"
    task_options: dict = field(default_factory=dict)
    arch: str | None = None
    arch_config: dict | None = None
    loss: str = DEFAULTS["loss"]
    optimizer: str = DEFAULTS["optimizer"]
    lr: float = DEFAULTS["lr"]
    momentum: float = DEFAULTS["momentum"]
    weight_decay: float = DEFAULTS["weight_decay"]
    batch_size: int = DEFAULTS["batch_size"]
    epochs: int = DEFAULTS["epochs"]
    schedule: str = DEFAULTS["schedule"]
    clip_grad: float | None = None
    patience: int | None = None
    seed: int = DEFAULTS["seed"]
    device: str = DEFAULTS["device"]
    out: str | None = None
    report: str | None = None
    resume: str | None = None
    name: str | None = None
    description: str | None = None
    command: str | None = None
    progress: bool = True
    workers: int = 0
    micro_batch: int | None = None
    train_only: list | None = None
    train_warmup: bool = False
    fresh_examples: bool = False
    time_budget: float | None = None
    calibrate_gain: bool = False
    keep: str = "best"
    dist_backend: str = DEFAULTS["dist_backend"]
    dist_timeout: float = DEFAULTS["dist_timeout"]


@dataclass
class TrainResult:
    """What :func:`train` returns (on ranks other than 0: no test metrics, no files)."""

    model: Model
    history: dict
    metrics: dict
    checkpoint: Path | None
    report: Path | None
    task: Any
    seconds: float
    rank: int = 0


def pick_device(name: str = "auto") -> torch.device:
    """CUDA if available, else Apple MPS, else CPU; or exactly the device named."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here; use --device auto or cpu.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r} was asked for but MPS is not available here; use --device auto or cpu.")
    return dev


def _check(cfg: TrainConfig) -> None:
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {cfg.optimizer!r}.")
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {SCHEDULES}, got {cfg.schedule!r}.")
    for name in ("batch_size", "epochs"):
        v = getattr(cfg, name)
        if name == "epochs" and v == 0 and cfg.resume:
            continue  # evaluate (and calibrate) a checkpoint without training it
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer (0 epochs only with --resume), got {v!r}.")
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ConfigError(f"learning rate must be a positive number, got {cfg.lr!r}.")
    if cfg.keep not in KEEP:
        raise ConfigError(f"keep must be one of {KEEP} (which epoch's weights the checkpoint holds), got {cfg.keep!r}.")
    if cfg.clip_grad is not None and not cfg.clip_grad > 0:
        raise ConfigError(f"clip_grad must be a positive gradient norm or None, got {cfg.clip_grad!r}.")
    if cfg.patience is not None and cfg.patience < 1:
        raise ConfigError(f"patience must be at least 1 epoch or None, got {cfg.patience!r}.")
    if cfg.micro_batch is not None and (isinstance(cfg.micro_batch, bool) or not isinstance(cfg.micro_batch, int)
                                        or cfg.micro_batch < 1):
        raise ConfigError(f"micro batch must be a positive number of examples or None, got {cfg.micro_batch!r}.")
    if cfg.time_budget is not None and not (isinstance(cfg.time_budget, (int, float))
                                            and math.isfinite(cfg.time_budget) and cfg.time_budget > 0):
        raise ConfigError(f"time budget must be a positive number of minutes, got {cfg.time_budget!r}.")
    if cfg.train_only is not None and (not isinstance(cfg.train_only, (list, tuple)) or not cfg.train_only
                                       or not all(isinstance(w, str) and w for w in cfg.train_only)):
        raise ConfigError(f"train_only must be a list of words in parameter names, got {cfg.train_only!r}; "
                          "e.g. ['presence'].")
    _losses.get_loss(cfg.loss)
    for flag, path in (("--out", cfg.out), ("--report", cfg.report)):
        if path:
            _check_output(flag, Path(path))


def _check_output(flag: str, path: Path) -> None:
    """Refuse, before any training, an output the run could only fail to write at its end."""
    where = f"{flag} {str(path)!r}"
    check_output_file(where, path, " (checked now, so that a finished run is not lost)")
    if flag == "--report":
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:  # write_report says what to install
            return
        kinds = FigureCanvasBase.get_supported_filetypes()
        ext = path.suffix[1:].lower()
        if ext not in kinds:
            raise ConfigError(f"{where}: a report cannot be written as {('.' + ext) if ext else 'a file without an extension'}; "
                              f"name it .png (or .{', .'.join(k for k in ('pdf', 'svg') if k in kinds)}).")
