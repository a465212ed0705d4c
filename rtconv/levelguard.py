"""Keeping a loud file's speech inside the levels a denoiser was trained at.

The shipped denoiser was trained on speech at active levels from -61 to -20
dBFS (``--level-db=-35,6`` around -26 dBFS).  Louder, its mask closes on the
speech itself: clean speech normalised to peak -1 dBFS (an active level
near -15 dBFS, as a mastered recording has) came out 1.9 dB quieter at 16.3
dB SI-SDR against the input on the validation speakers, the synthetic voices
2.8 dB quieter at 13.7 dB (at peak -30 dBFS: -0.2 dB and 28.6 dB).

A file is known whole before it is processed, so its level can be set
exactly, with no compressor's pumping.  :class:`LevelMeter` measures active
levels (a simplified ITU-T P.56, as the corpus mixer sets its levels: the
RMS of the 10 ms frames within 35 dB of the loudest, each frame's own mean
removed so a DC offset does not count; the channels' powers averaged).  A
file whose active level is at most :data:`LEVEL_GUARD_DBFS` is processed as
it is.  A louder one is first run through the model once, only to measure
the level of what the model keeps: its speech.  When that is above the
threshold too, the whole file goes into the model scaled by one constant
gain that brings its speech there, and the output is scaled back by the
inverse.  The speech, not the file, sets the gain: loud noise with quiet
speech in it is left at its level, where the model removes more of it (on
the validation design, guarding by the file's own level cost 0.5 dB of
SI-SDR improvement at -5 dB SNR; guarding by the speech's cost nothing
anywhere on the grid).  Quieter files are never raised.  The threshold,
-26 dBFS (the corpus's nominal speech level), was chosen on the validation
design: speech normalised to peak -1 dBFS then passes at -0.74 dB and 23.3
dB SI-SDR (synthetic voices -0.53 dB, 30.8 dB), and noisy mixtures peaking
at 0 dBFS gain 0.65 dB of SI-SDR improvement (PESQ -0.02); -24 dBFS did a
little less of both.  A loud file costs one extra pass of the model.

Live audio has no future to measure, so streams do not get it.  Which models
get it (:func:`wants_level_guard`): those whose task is ``denoise``
(:data:`LEVEL_GUARDED_TASKS`); ``rtconv process --keep-level`` turns it off.
"""

from __future__ import annotations

import math

import numpy as np

from .dcblock import by_task

__all__ = ["LEVEL_GUARD_DBFS", "LEVEL_GUARDED_TASKS", "LEVEL_NOTE_DB", "LevelMeter", "guard_gain",
           "wants_level_guard", "level_note"]

#: A file whose speech's active level is above this (dBFS) goes into the model lowered to it.
LEVEL_GUARD_DBFS = -26.0
#: Tasks whose models get the guard unless told otherwise.
LEVEL_GUARDED_TASKS = ("denoise",)
#: A gain at least this far from 0 dB is worth telling the user about.
LEVEL_NOTE_DB = 1.0
#: Frames within this many dB of the loudest count as active (as :func:`rtconv.data.mix.active_level_db`).
ACTIVE_RANGE_DB = 35.0


def wants_level_guard(model, level_guard: bool | None = None) -> bool:
    """Whether a file's level is guarded for ``model``: ``level_guard`` if given, else by its task."""
    return by_task("level_guard", level_guard, model, LEVEL_GUARDED_TASKS)


class LevelMeter:
    """The active level of ``(frames, channels)`` audio fed in chunks of any size (see the module docstring).

    Parameters
    ----------
    sample_rate : int
        Rate of the audio, Hz (frames of 10 ms: ``sample_rate // 100`` samples).
    channels : int
        Channels per chunk.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.frame = max(1, int(sample_rate) // 100)
        self.channels = int(channels)
        self._rest = np.zeros((0, self.channels))
        self._powers: list[np.ndarray] = []

    def add(self, x: np.ndarray) -> None:
        """Count the next chunk."""
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            x = x[:, None]
        x = np.concatenate([self._rest, x]) if self._rest.shape[0] else x
        n = x.shape[0] // self.frame
        self._rest = x[n * self.frame:]
        if n:
            f = x[: n * self.frame].reshape(n, self.frame, x.shape[1])
            self._powers.append(f.var(axis=1).mean(axis=1))  # each frame's own mean removed

    def level_db(self) -> float:
        """Active level in dBFS of everything counted (``-inf`` for silence or less than one frame)."""
        e = np.concatenate(self._powers) if self._powers else np.zeros(0)
        if e.size == 0 or e.max() <= 0:
            return -math.inf
        active = e[e >= e.max() * 10 ** (-ACTIVE_RANGE_DB / 10)]
        return 10 * math.log10(float(active.mean()))


def guard_gain(level_db: float, target_dbfs: float = LEVEL_GUARD_DBFS) -> float:
    """The gain (linear, at most 1) that brings speech of active level ``level_db`` down to ``target_dbfs``."""
    if not math.isfinite(level_db) or level_db <= target_dbfs:
        return 1.0
    return 10 ** ((target_dbfs - level_db) / 20)


def level_note(gain: float | None, level_db: float | None) -> str | None:
    """The sentence ``rtconv process`` prints about a guarded level (``level_db``: the speech's), if worth one."""
    if gain is None or level_db is None or gain >= 10 ** (-LEVEL_NOTE_DB / 20):
        return None
    return (f"the speech is loud (active level {level_db:.0f} dBFS): the model heard the file "
            f"{-20 * math.log10(gain):.0f} dB quieter and its output was raised back (--keep-level: as it is)")
