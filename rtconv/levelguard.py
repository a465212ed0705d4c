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
it is.  A louder one is first run through the model once, lowered to the
threshold by its own level and raised back, only to measure the level of
what the model keeps: its speech.  (Measured at the file's own level, the
speech came out as low as the model's closing made it, and the gain fell
short: clean speech at peak -1 dBFS then passed at -0.74 dB on the
validation speakers, -0.53 dB for the synthetic voices; measured lowered,
-0.42 and -0.08 dB, for 0.07 dB of SI-SDR improvement at -5 dB SNR, where a
loud mixture's kept noise now counts a little more, and every other grid
row to the digit.)  When that is above the
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

A stream has no future to measure.  :class:`StreamLevelGuard` runs the same
rule on what the stream has already put out: the active level of its last
two seconds of output sets a slow input gain (at most 20 dB a second down, 3
up), undone at the output.  On the validation speakers, clean speech at peak
-1 dBFS through v8 live went from -1.36 dB and 16.4 dB SI-SDR to -0.72 dB
and 20.5 dB (synthetic voices: -2.26 dB and 14.2 dB to -0.54 dB and 26.4
dB), mixtures peaking at 0 dBFS from +3.24 to +3.65 dB SI-SDR improvement,
and the SNR grid at the nominal level was unchanged (+3.95, +3.94).

Which models get either (:func:`wants_level_guard`): those whose task is
``denoise`` (:data:`LEVEL_GUARDED_TASKS`); ``rtconv process --keep-level``
and ``rtconv live --keep-level`` turn it off.
"""

from __future__ import annotations

import math

import numpy as np

from .dcblock import by_task

__all__ = ["LEVEL_GUARD_DBFS", "LEVEL_GUARDED_TASKS", "LEVEL_NOTE_DB", "LevelMeter", "StreamLevelGuard",
           "guard_gain", "lead_for", "wants_level_guard", "level_note", "stream_guard", "stream_level_note"]

#: A file whose speech's active level is above this (dBFS) goes into the model lowered to it.
LEVEL_GUARD_DBFS = -26.0
#: Tasks whose models get the guard unless told otherwise.
LEVEL_GUARDED_TASKS = ("denoise",)
#: A gain at least this far from 0 dB is worth telling the user about.
LEVEL_NOTE_DB = 1.0
#: Frames within this many dB of the loudest count as active (as :func:`rtconv.data.mix.active_level_db`).
ACTIVE_RANGE_DB = 35.0
_ACTIVE_FLOOR = 10 ** (-ACTIVE_RANGE_DB / 10)


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
        return _active_db(np.concatenate(self._powers) if self._powers else np.zeros(0))


def _active_db(powers: np.ndarray) -> float:
    """The active level (dBFS) of 10 ms frames' ``powers``: the mean of those within :data:`ACTIVE_RANGE_DB` of
    the loudest (``-inf`` when there are none, or all are silent)."""
    if powers.size == 0:
        return -math.inf
    top = powers.max()
    if not top > 0:
        return -math.inf
    return 10 * math.log10(float(powers[powers >= top * _ACTIVE_FLOOR].mean()))


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


def lead_for(block_frames: int, sample_rate: int) -> int:
    """The :class:`StreamLevelGuard` lead that passes every block of up to ``2 * block_frames`` frames (a
    resampler's pieces vary around the block) to the model whole."""
    frame = max(1, int(sample_rate) // 100)
    return max(2, -(-2 * int(block_frames) // frame) + 1)


def stream_guard(model, sample_rate: int, channels: int, latency: int, block_frames: int,
                 level_guard: bool = True) -> "StreamLevelGuard | None":
    """The :class:`StreamLevelGuard` a stream of ``block_frames``-frame blocks at the model's ``sample_rate``
    puts around ``model`` (lead from :func:`lead_for`), or ``None`` when ``level_guard`` is off or the model's
    task does not get one (:func:`wants_level_guard`)."""
    if not (level_guard and wants_level_guard(model)):
        return None
    return StreamLevelGuard(sample_rate, channels, latency, lead=lead_for(block_frames, sample_rate))


def stream_level_note(min_gain_db: float | None) -> str | None:
    """The sentence ``rtconv live`` prints when its level guard lowered loud speech, if worth one."""
    if min_gain_db is None or min_gain_db > -LEVEL_NOTE_DB:
        return None
    return (f"the speech was loud: the model heard it up to {-min_gain_db:.0f} dB quieter and its output was "
            f"raised back (--keep-level: as it is)")


class StreamLevelGuard:
    """The level guard for a stream, which has no future to measure: the same rule, run on what came out.

    A file's guard measures the speech the model keeps before it processes
    the file.  A stream can only measure what it has already put out.  After
    each 10 ms frame of output (at the model's side, raised back: what the
    listener gets), the active level of the last ``window_s`` seconds of it
    (:class:`LevelMeter`'s rule) is the speech's; the input gain moves toward
    the one that brings that level to ``target_dbfs`` (never above 0 dB), by
    at most ``down_db_s`` dB a second down and ``up_db_s`` up.  Frame ``k``'s
    input gain is set by the output up to frame ``k - lead``, so a block of
    up to ``lead - 1`` frames runs in one call (:func:`lead_for` gives the
    lead that keeps a stream's blocks whole: an engine that plans per block
    length, as onnxruntime does, must not see them cut) and a longer one is
    split at frame boundaries; for a given lead the output is the same at any
    block size.  Within a frame the gain moves in a straight line from the
    last frame's value to its own, so a model's window never straddles a
    step (through a 383-tap FIR, steps left 62 dB below the signal of error
    while the gain moved; the line, 110 dB).  Each output sample
    is divided by the gain its input sample had (``latency`` samples
    earlier), so a level change reaches the listener only as the model's own
    response to it.  While the model closes on loud speech the output
    underestimates it; the gain then lowers the input further, the model
    keeps more, and the estimate rises to the true level.

    Parameters
    ----------
    sample_rate : int
        The model's rate, Hz.
    channels : int
        Channels per block (one gain for all, their powers averaged).
    latency : int
        The model's latency in samples (input to output).
    lead : int
        Frames between the output that sets a gain and the input frame it is
        set for (at least 2).
    target_dbfs, window_s, down_db_s, up_db_s : float
        The speech level it holds the model's input under, the history the
        level is measured over, and the gain's fastest moves.
    """

    def __init__(self, sample_rate: int, channels: int, latency: int, lead: int = 2,
                 target_dbfs: float = LEVEL_GUARD_DBFS, window_s: float = 2.0, down_db_s: float = 20.0,
                 up_db_s: float = 3.0) -> None:
        self.frame = max(1, int(sample_rate) // 100)
        self.channels = int(channels)
        self.latency = int(latency)
        self.lead = max(2, int(lead))
        self.target_dbfs = float(target_dbfs)
        self._window = max(1, round(window_s * int(sample_rate) / self.frame))
        self._down = float(down_db_s) * self.frame / int(sample_rate)
        self._up = float(up_db_s) * self.frame / int(sample_rate)
        self._ring = self.latency // self.frame + self.lead + 6  # input frames' gains: the latency back, lead ahead
        self._buf_in = np.ones((self.lead * self.frame, 1), np.float32)  # a piece is at most lead frames long
        self._buf_out = np.ones((self.lead * self.frame, 1), np.float32)
        self._ramp = (np.arange(1, self.frame + 1) / self.frame).astype(np.float32)  # 1/f .. 1 across a frame
        self.min_gain_db = 0.0  # the lowest gain set since the guard was made (a reset keeps it)
        self.reset()

    def reset(self) -> None:
        """Forget the history: 0 dB, nothing measured (:attr:`min_gain_db` stays)."""
        self._n = 0  # samples in (and out)
        self._frames_out = 0  # output frames measured
        self._gain_db = np.zeros(self._ring)  # input frame k's gain at k % ring
        self._lin = np.ones(self._ring, np.float32)  # the same, linear
        self._powers = np.zeros(self._window)  # the last output frames' powers, at j % window
        self._acc = np.zeros((self.frame, self.channels))
        self._fill = 0

    @property
    def gain_db(self) -> float:
        """The input gain now, dB (0: not guarding)."""
        return float(self._gain_db[(self._n // self.frame) % self._ring])

    def _span(self, start: int, n: int, buf: np.ndarray) -> np.ndarray | None:
        """Samples ``start .. start + n``'s linear gains ``(n, 1)`` (before 0: 1), written into ``buf``, or
        ``None`` when all are 1.  Within frame ``k`` the gain moves in a straight line from frame ``k - 1``'s
        value to its own, so it has no steps for a model to smear across its window."""
        f, lin, ring = self.frame, self._lin, self._ring
        ks = range(max(start // f, 0), (start + n - 1) // f + 1)
        ends = [(lin[(k - 1) % ring] if k > 0 else np.float32(1.0), lin[k % ring]) for k in ks]
        if all(a == 1.0 and b == 1.0 for a, b in ends):
            return None
        g = buf[:n]
        if start < 0:
            g[: -start] = 1.0
        for k, (a, b) in zip(ks, ends, strict=True):
            lo, hi = max(k * f - start, 0), min((k + 1) * f - start, n)
            if a == b:
                g[lo:hi] = b
            else:
                np.multiply(self._ramp[start + lo - k * f: start + hi - k * f], b - a, out=g[lo:hi, 0])
                g[lo:hi, 0] += a
        return g

    def _measure(self, y: np.ndarray) -> None:
        pos = 0
        while pos < y.shape[0]:
            m = min(self.frame - self._fill, y.shape[0] - pos)
            self._acc[self._fill:self._fill + m] = y[pos:pos + m]
            self._fill += m
            pos += m
            if self._fill < self.frame:
                break
            j = self._frames_out
            p = float(self._acc.var(axis=0).mean())
            self._powers[j % self._window] = p if math.isfinite(p) else 0.0
            want = min(0.0, self.target_dbfs - _active_db(self._powers))  # silence (-inf): 0 dB
            k = j + self.lead  # the input frame this output frame sets
            g = self._gain_db[(k - 1) % self._ring]
            g = g + min(self._up, max(-self._down, want - g))
            self._gain_db[k % self._ring] = g
            self._lin[k % self._ring] = 10 ** (g / 20)
            self.min_gain_db = min(self.min_gain_db, g)
            self._frames_out = j + 1
            self._fill = 0

    def process(self, x: np.ndarray, model) -> np.ndarray:
        """``model(x * gain) / gain`` for block ``x`` ``(frames, channels)``.

        ``model`` maps a chunk to as many frames (a :meth:`rtconv.Streamer.process`); a block longer than
        the input gains already set is passed to it in pieces that end on 10 ms frame boundaries.  While
        the gains are 0 dB, the block goes to the model as it came and its output comes back as it is.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"the level guard takes blocks of shape (frames, {self.channels}), got {x.shape}.")
        out = np.empty((x.shape[0], self.channels), np.float32)
        pos = 0
        while pos < x.shape[0]:
            n0 = self._n
            m = min(x.shape[0] - pos, (self._frames_out + self.lead) * self.frame - n0)  # input gains set up to there
            chunk = x[pos:pos + m]
            g_in = self._span(n0, m, self._buf_in)
            y = model(chunk if g_in is None else (chunk * g_in).astype(x.dtype, copy=False))
            g_out = self._span(n0 - self.latency, m, self._buf_out)  # each output sample's input had this gain
            if g_out is None:
                out[pos:pos + m] = y
            else:
                np.divide(y, g_out, out=out[pos:pos + m])
            self._measure(out[pos:pos + m])
            self._n = n0 + m  # after the gains it needs are set: another thread may read gain_db
            pos += m
        return out
