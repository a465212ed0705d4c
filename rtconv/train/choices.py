"""The named choices and defaults of a training run, in a module that imports nothing.

The trainer, the tasks, the losses and the distributed launcher check their
arguments against these; ``rtconv train`` offers them as ``--help`` choices
and defaults.  Nothing is imported here so that ``rtconv --help`` reads
them without loading torch.
"""

from __future__ import annotations

__all__ = ["TASKS", "LOSS_NAMES", "OPTIMIZERS", "SCHEDULES", "DIST_BACKENDS", "DEFAULTS"]

#: What ``rtconv train`` can learn (:func:`rtconv.train.tasks.make_task`).
TASKS = ("sines", "freqsep", "denoise", "classify", "vad")
#: Names of :data:`rtconv.train.losses.LOSSES`, in its order (it refuses to import if they differ).
LOSS_NAMES = ("l1", "mse", "stft", "si_sdr", "l1+stft", "si_sdr+sc", "si_sdr+sc+pause", "cmrs", "cmrs+si_sdr", "ce")
OPTIMIZERS = ("sgd", "adam")
#: Learning-rate schedules.
SCHEDULES = ("none", "cosine", "step", "plateau")
#: Collective backends under torchrun; ``auto`` is nccl for CUDA devices, gloo otherwise.
DIST_BACKENDS = ("auto", "gloo", "nccl")

#: :class:`rtconv.train.trainer.TrainConfig`'s defaults for the choices ``rtconv train`` names in its help.
DEFAULTS = {
    "loss": "mse",
    "optimizer": "adam",
    "lr": 1e-2,
    "batch_size": 32,
    "epochs": 20,
    "schedule": "none",
    "dist_backend": "auto",
    "dist_timeout": 1800.0,
}
