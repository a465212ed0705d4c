"""The named choices and defaults of a training run, in a module that imports nothing.

The trainer, the tasks, the losses and the distributed launcher check their
arguments against these; ``rtconv train`` offers them as ``--help`` choices
and defaults.  Nothing is imported here so that ``rtconv --help`` reads
them without loading torch.
"""

from __future__ import annotations

__all__ = ["TASKS", "LOSS_NAMES", "LOSS_TERMS", "parse_loss", "OPTIMIZERS", "SCHEDULES", "DIST_BACKENDS", "DEFAULTS", "TASK_LOSSES",
           "WAVEFORMS", "TASK_OPTIONS", "TASK_READS", "TASK_ARCHS", "task_key", "default_arch"]

#: What ``rtconv train`` can learn (:func:`rtconv.train.tasks.make_task`).
TASKS = ("sines", "freqsep", "denoise", "classify", "vad")
#: Names of :data:`rtconv.train.losses.LOSSES`, in its order (it refuses to import if they differ).
LOSS_NAMES = ("l1", "mse", "stft", "si_sdr", "l1+stft", "si_sdr+sc", "si_sdr+sc+pause", "cmrs", "cmrs+si_sdr", "ce")
#: Terms a loss can be written as a weighted sum of (``"si_sdr + 10*sc + 5*cmrs"``): the names of
#: :data:`rtconv.train.losses.TERMS`, in its order.
LOSS_TERMS = ("l1", "mse", "stft", "si_sdr", "sc", "cmrs", "pause", "silence", "gap", "ce", "presence", "pesq", "stoi")
OPTIMIZERS = ("sgd", "adam")
#: Learning-rate schedules.
SCHEDULES = ("none", "cosine", "step", "plateau")
#: which epoch's weights a checkpoint holds (``TrainConfig.keep``, ``--keep``)
KEEP = ("best", "last")
#: Collective backends under torchrun; ``auto`` is nccl for CUDA devices, gloo otherwise.
DIST_BACKENDS = ("auto", "gloo", "nccl")

def parse_loss(text: str) -> tuple[tuple[float, str], ...]:
    """A loss as ``((weight, term), ...)``: a named loss of :data:`LOSS_NAMES` is one term of weight 1
    (itself); anything else is read as a sum of ``[weight*]term`` over :data:`LOSS_TERMS`, e.g.
    ``"si_sdr + 10*sc + 5*cmrs"``.  Raises :class:`ValueError` with one sentence otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a loss must be a name or a sum of weighted terms, got {text!r}.")
    name = text.strip()
    if name in LOSS_NAMES:
        return ((1.0, name),)
    parts = []
    for raw in name.split("+"):
        part = raw.strip()
        weight, _, term = part.rpartition("*")
        term = term.strip()
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            w = float("nan")
        if term not in LOSS_TERMS or not (w > 0 and w < float("inf")):
            if "+" not in name and "*" not in name:
                raise ValueError(
                    f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}, or write a sum of "
                    f"[weight*]term over {', '.join(LOSS_TERMS)}, e.g. 'si_sdr + 10*sc + 5*cmrs'.")
            raise ValueError(
                f"cannot read {part!r} in the loss {text!r}: write a named loss ({', '.join(LOSS_NAMES)}) "
                f"or a sum of [weight*]term with a positive weight and a term among {', '.join(LOSS_TERMS)}, "
                "e.g. 'si_sdr + 10*sc + 5*cmrs'.")
        parts.append((w, term))
    return tuple(parts)


#: :class:`rtconv.train.config.TrainConfig`'s defaults for the choices ``rtconv train`` names in its help.
DEFAULTS = {
    "loss": "mse",
    "optimizer": "adam",
    "lr": 1e-2,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 20,
    "schedule": "none",
    "seed": 0,
    "device": "auto",
    "dist_backend": "auto",
    "dist_timeout": 1800.0,
}

#: Tasks whose default loss is another than ``DEFAULTS["loss"]``: classifiers output probabilities.
TASK_LOSSES = {"classify": "ce", "vad": "ce"}

#: Classes of the ``classify`` task, in output-channel order.
WAVEFORMS = ("sine", "triangle", "square", "sawtooth")

#: Defaults of task options (:func:`rtconv.train.tasks.make_task`) by :func:`task_key`: the
#: datasets are built from these and ``rtconv train --help`` quotes them.  The audio crossover's
#: high band runs from ``high_band_low`` Hz to ``high_band_top`` x the sample rate.
TASK_OPTIONS = {
    "sines": {"cycles": (0.0, 8.0), "noise_std": (0.2, 1.0)},
    "freqsep": {"length": 256},
    "freqsep/audio": {"sample_rate": 48000, "seconds": 0.1, "low_band": (40.0, 700.0),
                      "high_band_low": 1400.0, "high_band_top": 0.45},
    "denoise": {"sample_rate": 32000, "seconds": 1.0, "snr_db": (-5.0, 20.0), "gain_db": (-12.0, 6.0),
                "utterances": 200},
    "vad": {"noise_seconds": 120.0},
}

#: The options each task reads (:func:`rtconv.train.tasks.make_task`), by :func:`task_key`, besides the
#: seed and the example counts every task takes; ``rtconv train`` refuses the others rather than
#: training without them.
TASK_READS = {
    "sines": frozenset(),
    "freqsep": frozenset({"variant"}),
    "freqsep/audio": frozenset({"variant", "sample_rate", "seconds", "low_band", "high_band"}),
    "denoise": frozenset({"corpus", "sample_rate", "seconds", "snr_db", "gain_db", "utterances", "cache_dir",
                          "speech_dir", "noise_dir", "noise_families"}),
    "denoise/realistic": frozenset({"corpus", "sample_rate", "seconds", "snr_db", "level_db", "cache_dir", "kinds",
                                    "bands", "noise_sources", "speech_kinds", "speech_subsonic", "val_split"}),
    "classify": frozenset({"variant", "length", "cycles", "snr_db"}),
    "vad": frozenset({"sample_rate", "mix_rate", "noise_seconds", "seconds", "snr_db", "level_db", "label_db",
                      "cache_dir", "speech_subsonic", "kinds", "noise_sources"}),
}

#: The architecture and constructor options each task trains when none is named, by :func:`task_key`.
TASK_ARCHS = {
    "sines": ("fir", {"taps": 21}),
    "freqsep": ("fir", {"taps": 21}),
    "freqsep/audio": ("mimo_cnn", {"taps": [256], "features": [1, 2]}),
    "denoise": ("mimo_cnn", {"taps": [40, 40], "features": [1, 5, 1], "activation": "tanh"}),
    "denoise/realistic": ("framed_denoiser", {}),
    "classify": ("conv_classifier", {"classes": len(WAVEFORMS)}),
    "vad": ("framed_vad", {}),
}


def task_key(task: str, variant: str | None = None, corpus: str | None = None) -> str:
    """The key of :data:`TASK_OPTIONS` and :data:`TASK_ARCHS` for a task, its variant and its corpus."""
    if task == "freqsep" and variant == "audio":
        return "freqsep/audio"
    if task == "denoise" and corpus == "realistic":
        return "denoise/realistic"
    return task


def default_arch(task: str, variant: str | None = None, corpus: str | None = None) -> tuple[str, dict]:
    """The architecture name and a fresh copy of its options that ``task`` trains when none is named."""
    arch, conf = TASK_ARCHS[task_key(task, variant, corpus)]
    return arch, {k: list(v) if isinstance(v, list) else v for k, v in conf.items()}
