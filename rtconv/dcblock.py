"""Removing a microphone's DC offset before a speech model sees it.

Cheap microphones and sound cards add a constant offset to what they record
(-60 to -40 dBFS is common).  The shipped denoiser never met one in
training, and through its analysis window the offset leaks into the lowest
bins' features: under speech peaking at -30 dBFS, an offset of -46 dBFS
took its SI-SDR improvement from +2.4 dB to -1.5 dB (the offset itself does
not count: SI-SDR removes each signal's mean).  RNNoise high-passes its input
for the same reason.

:class:`DCBlocker` subtracts a running estimate of the offset, per channel::

    est[n] = sum(x[0..n]) / max(n + 1, M)          for n < N
    est[n] = est[n-1] + (x[n] - est[n-1]) / N      after
    y[n]   = x[n] - est[n]

with ``N = round(rate / (2 pi cutoff_hz))`` and ``M`` the samples of
``start_ms``.  For its first ``N`` samples (0.16 s at the default 1 Hz) the
estimate is the mean of everything so far, counted over at least 10 ms: a
constant offset is gone after 10 ms, with no step to settle, and a file
that starts in the middle of a word is not high-passed by the mean of its
first few samples (counted from one sample, that cost 0.45 dB of SI-SDR on
average over 20 validation items, 6 dB on one; counted over 10 ms, 0.11,
and the offset rows of the test set stay within 0.2 dB).  After that it is
an exponential average with a time constant of ``N`` samples, a one-pole
high-pass that follows a drifting offset.  Below the voice's lowest pitch
it changes almost nothing and has no latency.  The one-pole runs in closed
form, ``est[i] = r^(i+1) (est0 + sum_j<=i r^-(j+1) x[j] / N)`` with ``r = 1 -
1/N``, over chunks of up to :data:`CHUNK` samples (a cumulative sum instead
of ``scipy.signal.lfilter``'s per-call cost: 17-22 % less time per 128-sample
block here), in float64: any split of the signal into blocks gives the same
output to float32 rounding (tested), as the engine's framed models do.

Which models get it (:func:`wants_dc_block`): those whose task is
``denoise`` or ``vad`` (:data:`DC_BLOCKED_TASKS`), the ones trained on
speech without an offset; filters and classifiers see their input
unchanged, so a kernel's semantics stay exact.  ``rtconv process
--keep-dc`` and ``rtconv live --keep-dc`` turn it off.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError

__all__ = ["DCBlocker", "DC_BLOCK_HZ", "DC_START_MS", "DC_BLOCKED_TASKS", "DC_NOTE_LEVEL", "wants_dc_block",
           "offset_dbfs", "noted_offset_dbfs", "offset_note"]

#: Default cutoff, Hz: a time constant of 0.16 s.
DC_BLOCK_HZ = 1.0
#: The running mean at the start counts at least this much signal, ms.
DC_START_MS = 10.0

#: Tasks whose models get their input DC-blocked unless told otherwise.
DC_BLOCKED_TASKS = ("denoise", "vad")


#: The longest stretch the one-pole's closed form covers in one go, samples (longer blocks take several).
CHUNK = 4096

#: A removed offset at least this large (full scale 1: -60 dBFS) is worth telling the user about.
DC_NOTE_LEVEL = 1e-3


def offset_dbfs(offset: float | None) -> float | None:
    """An offset (full scale 1) in dBFS; ``None`` stays ``None``, zero is ``-inf``."""
    if offset is None:
        return None
    return 20 * math.log10(offset) if offset > 0 else -math.inf


def noted_offset_dbfs(offset: float | None) -> float | None:
    """A removed offset in dBFS if it is worth telling the user about (:data:`DC_NOTE_LEVEL`), else ``None``."""
    return None if offset is None or offset < DC_NOTE_LEVEL else offset_dbfs(offset)


def offset_note(offset: float | None) -> str | None:
    """The sentence ``rtconv process`` and ``rtconv live`` print about a removed offset, if it is worth one."""
    db = noted_offset_dbfs(offset)
    return None if db is None else f"a DC offset of {db:.0f} dBFS was removed before the model (--keep-dc: keep it)"


def by_task(name: str, choice: bool | None, model, tasks: tuple[str, ...]) -> bool:
    """``choice`` if given (refused in one sentence unless a bool), else whether ``model``'s task is in ``tasks``:
    the rule of the input stages that are on by default for some models (this one, the level guard)."""
    if choice is not None:
        if not isinstance(choice, (bool, np.bool_)):
            raise ConfigError(f"{name} must be True, False or None (by the model's task), got {choice!r}.")
        return bool(choice)
    meta = getattr(model, "metadata", None) or {}
    return meta.get("task") in tasks


def wants_dc_block(model, dc_block: bool | None = None) -> bool:
    """Whether ``model``'s input is DC-blocked: ``dc_block`` if given, else by its task."""
    return by_task("dc_block", dc_block, model, DC_BLOCKED_TASKS)


class DCBlocker:
    """A running DC-offset remover for ``(frames, channels)`` blocks (see the module docstring).

    Parameters
    ----------
    sample_rate : int
        Rate of the audio, Hz.
    channels : int
        Channels per block.
    cutoff_hz : float
        Corner of the one-pole high-pass it becomes after its first
        ``rate / (2 pi cutoff_hz)`` samples.
    start_ms : float
        The running mean at the start counts at least this much signal, ms
        (0: from the first sample).
    """

    def __init__(self, sample_rate: int, channels: int, cutoff_hz: float = DC_BLOCK_HZ,
                 start_ms: float = DC_START_MS) -> None:
        if not (isinstance(cutoff_hz, (int, float)) and 0 < cutoff_hz < sample_rate / 20):
            raise ConfigError(f"cutoff_hz must be above 0 and below a twentieth of the rate "
                              f"({sample_rate / 20:g} Hz), got {cutoff_hz!r}.")
        self.sample_rate, self.channels, self.cutoff_hz = int(sample_rate), int(channels), float(cutoff_hz)
        self.N = max(1, round(sample_rate / (2 * math.pi * cutoff_hz)))
        if not (isinstance(start_ms, (int, float)) and 0 <= start_ms * sample_rate / 1000 <= self.N):
            raise ConfigError(f"start_ms must be at least 0 and at most the time constant "
                              f"({1000 * self.N / sample_rate:g} ms), got {start_ms!r}.")
        self.M = max(1, round(start_ms * sample_rate / 1000))
        r = 1.0 - 1.0 / self.N  # N >= 3 (the cutoff is below a twentieth of the rate): r >= 2/3
        # the one-pole in closed form over chunks of up to L samples: est[i] = r^(i+1) * (est0 + sum_j<=i
        # r^-(j+1) x[j] / N), with r^-L at most 1e4 (4096 samples at the default 1 Hz: r^-4096 = 1.7)
        L = int(min(CHUNK, math.log(1e4) / -math.log(r)))
        j = np.arange(1, L + 1, dtype=np.float64)
        self._up = (r**-j / self.N)[:, None]  # r^-(j+1) / N
        self._down = (r**j)[:, None]  # r^(j+1)
        self.reset()

    @property
    def offset(self) -> float:
        """The input's offset: the mean of every sample so far (the largest channel's, full scale 1).

        The mean, not the estimate of the moment: under noise with much energy below 1 Hz (brown
        noise, wind) the estimate wanders by +-0.08 around a mean of nothing, and that is no offset.
        """
        if not self._seen:
            return 0.0
        return float(np.abs(self._seen_sum / self._seen).max(initial=0.0))

    def reset(self) -> None:
        """Forget the estimate: the next sample starts a new running mean."""
        self.total = np.zeros(self.channels)  # the running mean's sum, carried in order (any split agrees)
        self.est = np.zeros(self.channels)
        self._seen_sum = np.zeros(self.channels)
        self._seen = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """``x`` less the offset estimated up to each sample, float32 ``(frames, channels)``.

        Non-finite samples leave the estimate alone and come out as they went in,
        so the model's own guard still counts and silences them.
        """
        x = np.asarray(x)
        xs = x.astype(np.float64)
        col = xs.sum(axis=0)  # also the cheap test for NaN and inf (they make it non-finite)
        clean = all(map(math.isfinite, col.tolist()))  # 0.4 us for a channel or two, np.isfinite 3.6
        if not clean:
            finite = np.isfinite(x)
            xs[~finite] = 0.0
            col = xs.sum(axis=0)
        est = np.empty_like(xs)
        i, n, seen = 0, len(xs), self._seen
        if seen < self.N and n:  # the running mean over the first N samples
            k = min(self.N - seen, n)
            sums = np.cumsum(np.concatenate([self.total[None], xs[:k]]), axis=0)[1:]
            counts = np.maximum(np.arange(seen + 1, seen + k + 1, dtype=np.float64), self.M)
            est[:k] = sums / counts[:, None]
            self.total, i = sums[-1], k
            self.est = est[k - 1].copy()  # est is overwritten by the output below
        L = len(self._up)
        while i < n:  # then the exponential average, in closed form chunk by chunk (no per-sample loop)
            k = min(L, n - i)
            e = np.multiply(xs[i : i + k], self._up[:k], out=est[i : i + k])
            e[0] += self.est  # est0 in the first term of the sum: one row, not a broadcast over k rows
            np.cumsum(e, axis=0, out=e)
            e *= self._down[:k]
            self.est = e[-1].copy()
            i += k
        self._seen_sum += col
        self._seen += n
        np.subtract(xs, est, out=est)
        y = est.astype(np.float32)
        if not clean:
            y[~finite] = x[~finite]
        return y
