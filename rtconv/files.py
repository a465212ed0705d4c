"""Offline processing of audio files and arrays with the same engine that runs live.

:func:`process_file` reads a file in chunks (flat memory for hour-long
recordings), streams it through :class:`rtconv.Streamer` in blocks of
``block_size`` frames (or, with ``offline=True``, through the model's
whole-signal ``forward`` as the reference), and writes the result atomically
(:class:`rtconv.audio.AtomicWriter`).  :func:`process_array` does the same
for a NumPy array in memory (the GUI uses it).

The chain for one file::

    read -> [remove a DC offset] -> [resample to the model's rate] -> model
         -> [drop `latency` frames] -> [resample back to the file's rate]
         -> trim/pad to the input length -> write

* ``both_directions`` (a denoiser's option, files only): the model runs over
  the signal forwards and again backwards (time reversed, a fresh stream),
  and the output is the mean of the two, aligned.  A causal model hears
  only the past of each moment; backwards it hears only the future; the
  mean of the two cleans better (validation: SI-SDRi +3.95 -> +4.33 dB, PESQ
  1.63 -> 1.70, clean speech 26.2 -> 28.9 dB SI-SDR) at twice the time.
  :func:`process_file` keeps memory flat for long files: it copies the
  input to a temporary float file beside the output, reads it backwards
  for the second pass, and writes the mean in order.
* A denoiser's (or VAD's) input has its DC offset removed first
  (:class:`rtconv.dcblock.DCBlocker`, ``dc_block``); filters see the file
  as it is.

* Resampling uses :class:`rtconv.resample.Resampler` (soxr, quality "HQ"),
  the streaming resampler live audio uses too; it only runs
  when the model declares a sample rate different from the file's.
* A mono model runs once per channel; a model with F>1 inputs needs files of
  exactly F channels and mixes them.  The output has the file's channel count
  times the model's outputs (channel-major), so only a model that changes the
  channel count (say a 1->2 band splitter) changes the file's.
* Latency compensation (``align=True``, the default) removes the model's
  latency so the output lines up with the input and has exactly its length;
  ``align=False`` keeps the raw stream a live listener would hear, delayed by
  the latency, plus the ``latency`` frames of tail that flush emits.
* NaN/Inf input samples are replaced by silence (0) and reported, never
  allowed to poison the filter state (policy: sanitise with a warning).
* Files are streamed in long blocks (:func:`file_block_size`, the fastest
  measured for the kind of model): streamed output does not depend on the
  block size, so files need not pay for live-sized blocks.
* A temporary file that a killed run left for the same output (a hard kill
  cannot clean up) is removed by the next run over that output, unless a
  running rtconv still holds it (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np
import torch

from .audio import (READ_CHUNK, SAMPLE_RATE_MODEL_BLOCK, SOFTWARE_TAG, AtomicWriter, Reader, default_output_path,
                    named_as_output, output_format, sndfile_detail, temporary_beside, written_by_rtconv,
                    zero_nonfinite)
from .checkpoint import PROBABILITY_TASKS, load, resolve
from .dcblock import DCBlocker, offset_note, wants_dc_block
from .levelguard import LEVEL_GUARD_DBFS, LevelMeter, guard_gain, level_note, wants_level_guard
from .errors import AudioFileError, ConfigError
from .models import Model
from .resample import Resampler
from .streaming import Streamer

__all__ = [
    "Summary", "process_file", "process_array", "Chain", "file_block_size", "output_path", "audio_files",
    "Found", "remove_stale_temporaries", "audio_progress_bar", "check_both_directions", "BOTH_DIRECTIONS_TASKS",
]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, None, Callable[[int, int], None]]

_READ_CHUNK = READ_CHUNK  # frames read from disk at a time (a module global: tests shrink it)


def _frame_period(model: Model) -> int:
    """Least common multiple of the model's strides (1 for a model that runs at the sample rate)."""
    period = 1
    for m in model.modules():
        stride = getattr(m, "stride", None)
        if isinstance(stride, int) and stride > 1:
            period = math.lcm(period, stride)
    return period


def file_block_size(model: Model) -> int:
    """Streamer block size for files: the fastest measured for this kind of model, in frames.

    Streamed output does not depend on the block size (bit for bit for the
    shipped framed denoiser, to float rounding for models whose planner picks
    another convolution method for long blocks), so files use long blocks,
    which spread the fixed cost of each block's torch calls over more frames,
    instead of a typical live block (1024 frames, the files' default before).
    Measured on 30 s of 48 kHz noise in memory (:func:`process_array`), one
    torch thread, 2-core x86 (x real time at blocks 1024 / 4096 / 16384 / 65536):

    * framed denoiser (96-sample hop): 89 / 210 / 306 / 337 mono,
      73 / 130 / 160 / 165 stereo: its network runs at the frame rate
      (65536 samples are 682 frames), so it takes a whole read chunk;
    * MimoCNN [40, 40] / [1, 5, 1]: 466 / 574 / 559 / 400 mono,
      231 / 273 / 261 / 170 stereo; FIR 511 taps: 741 / 1538 / 1791 / 1631;
      FIR 1024 taps: 711 / 1606 / 1658 / 1673: models at the sample rate
      peak around 16384 frames, beyond which their ``(channels, block)``
      intermediates fall out of cache and the MimoCNN's 5 -> 1 matmul
      passes its planner's size limit (:func:`rtconv.streaming.plan_direct`).
    """
    return _READ_CHUNK if _frame_period(model) > 1 else SAMPLE_RATE_MODEL_BLOCK


@dataclass
class Summary:
    """What :func:`process_file` did, for the summary line and for callers."""

    input: Path | None
    output: Path | None
    model: str
    frames: int
    sample_rate: int
    channels: int
    out_channels: int
    model_rate: int
    mode: str
    latency: int
    aligned: bool
    elapsed_s: float
    nonfinite_samples: int = 0
    clipped_samples: int = 0
    output_frames: int = 0
    primed_frames: int = 0
    #: the mean DC offset removed before the model (full scale 1), None when not blocked
    dc_offset: float | None = None
    #: run forwards and backwards, averaged (``both_directions``)
    both_directions: bool = False
    #: the level guard's measure (dBFS): its speech's active level when the file was loud enough for the model's
    #: first pass, else the file's own; None when not guarded (filters, --keep-level); and the gain on the input
    level_db: float | None = None
    level_gain: float = 1.0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Length of the input in seconds."""
        return self.frames / self.sample_rate

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio processed per second of wall time."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else math.inf

    @property
    def resampled(self) -> bool:
        return self.model_rate != self.sample_rate

    def line(self) -> str:
        """The one-line summary ``rtconv process`` prints."""
        src = self.input.name if self.input else "array"
        dst = str(self.output) if self.output else "array"
        return (
            f"{src} -> {dst}: {self.duration_s:.2f} s, {self.sample_rate} Hz, "
            f"{self.channels}->{self.out_channels} ch, {self.model}, {self.mode}, "
            f"{self.elapsed_s:.2f} s ({self.realtime_factor:.0f}x real time)"
        )


# --- the processing chain -------------------------------------------------------


class _Stream:
    """The model run by :class:`Streamer` in blocks of at most ``block`` frames."""

    def __init__(self, model: Model, channels: int, block: int, threads: int | None) -> None:
        self.s = Streamer(model, channels=channels, threads=threads, block_size=block)
        self.block = block
        self.out_channels = self.s.out_channels

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b = self.block
        if x.shape[0] <= b:
            return self.s.process(x)
        return np.concatenate([self.s.process(x[i : i + b]) for i in range(0, x.shape[0], b)])

    def flush(self) -> np.ndarray:
        return self.s.flush()


class _Offline:
    """The model's whole-signal ``forward``, computed in exact overlapping chunks.

    Output ``[a, b)`` of a convolutional stack depends on input
    ``[a - (R-1), b + latency)`` only (``R`` = receptive field), so each
    chunk is computed with that much real context on both sides and the
    context outputs are dropped: the result equals one ``forward`` over the
    whole signal (to float rounding) while memory stays bounded.  Like the
    streamer, it emits the output delayed by ``latency`` (leading zeros), so
    both paths share alignment code.  Not for recurrent models (their state
    reaches back to the start): :class:`Chain` streams those instead.
    """

    def __init__(self, model: Model, channels: int, chunk: int = 1 << 18) -> None:
        self.model = model
        self.mono = model.in_channels == 1
        self.out_channels = (channels if self.mono else 1) * model.out_channels
        # framed models (strided encoders) see frames at absolute positions
        # (j+1)*stride - 1: chunks must start on a multiple of every stride
        self.period = _frame_period(model)
        ctx = model.receptive_field + 2 * model.latency + self.period
        self.ctx = -(-ctx // self.period) * self.period
        self.chunk = max(-(-chunk // self.period) * self.period, 4 * self.ctx)
        self.buf = np.zeros((0, channels), np.float32)
        self.pos = 0  # index in buf of the next output frame
        self.lead = model.latency

    def _forward(self, seg: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(seg.T))
        x = x[:, None, :] if self.mono else x[None]
        with torch.no_grad():
            y = self.model(x)
        return y.reshape(-1, y.shape[-1]).T.numpy()

    def _emit(self, end: int, final: bool) -> np.ndarray:
        start = max(0, self.pos - self.ctx)
        stop = self.buf.shape[0] if final else min(self.buf.shape[0], end + self.ctx)
        y = self._forward(self.buf[start:stop])[self.pos - start : end - start]
        self.pos = end
        keep = max(0, self.pos - self.ctx)  # drop history no future chunk needs
        self.buf, self.pos = self.buf[keep:], self.pos - keep
        return y

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x.copy()
        outs = []
        if self.lead:
            outs.append(np.zeros((self.lead, self.out_channels), np.float32))
            self.lead = 0
        while self.buf.shape[0] - self.pos >= self.chunk + self.ctx:
            outs.append(self._emit(self.pos + self.chunk, final=False))
        return np.concatenate(outs) if outs else np.zeros((0, self.out_channels), np.float32)

    def flush(self) -> np.ndarray:
        head = self(np.zeros((0, self.buf.shape[1]), np.float32))
        if self.buf.shape[0] > self.pos:
            return np.concatenate([head, self._emit(self.buf.shape[0], final=True)])
        return head


def prime_frames(model: Model, rate: int) -> int:
    """Frames of history :class:`_Primed` gives ``model`` (at its ``rate``) before a file's first frame:
    :meth:`~rtconv.models.Model.history_frames` (its reach; for a recurrent state at least a quarter second, at most two)."""
    return model.history_frames(rate)


class _Primed:
    """Start ``core`` from history instead of silence.

    Before the first frame, ``core`` is fed the signal's next ``n`` frames played backwards
    (the reflection ``x[n], ..., x[1]``, as :func:`scipy.signal.filtfilt` pads a signal), and
    what it makes of them is dropped.  A recurrent denoiser started from silence misjudges
    its first fraction of a second (the shipped v8 is louder than its input for 0.1 s);
    primed, a file's start is treated like the rest of it.  A file shorter than ``n + 1``
    frames is reflected whole.
    """

    def __init__(self, core, n: int, channels: int) -> None:
        self.core, self.n, self.channels = core, n, channels
        self.out_channels = core.out_channels
        self.pending: list[np.ndarray] = []
        self.have = 0
        self.drop: int | None = None  # output frames still to drop, once started
        self.used = 0  # frames it was primed with: n, or fewer for a shorter file

    def _take(self, y: np.ndarray | None) -> np.ndarray:
        if y is None:
            return np.zeros((0, self.out_channels), np.float32)
        if self.drop:
            d = min(self.drop, y.shape[0])
            self.drop -= d
            y = y[d:]
        return y

    def _start(self) -> np.ndarray:
        x = np.concatenate(self.pending) if self.pending else np.zeros((0, self.channels), np.float32)
        self.pending = []
        k = max(0, min(self.n, x.shape[0] - 1))
        self.drop = self.used = k
        return self._take(self.core(np.concatenate([x[1 : k + 1][::-1], x])))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.drop is not None:
            return self._take(self.core(x))
        self.pending.append(x)
        self.have += x.shape[0]
        if self.have <= self.n:
            return np.zeros((0, self.out_channels), np.float32)
        return self._start()

    def flush(self) -> np.ndarray:
        head = self._start() if self.drop is None else np.zeros((0, self.out_channels), np.float32)
        return np.concatenate([head, self._take(self.core.flush())])


class _Blocks:
    """A stateful block processor (``process(x)``) as a chain stage with nothing owed at the end."""

    def __init__(self, proc) -> None:
        self.proc = proc

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.proc.process(x)

    def flush(self) -> None:
        return None


class _Skip:
    """Drop the first ``n`` frames (latency compensation)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.n:
            k = min(self.n, x.shape[0])
            self.n -= k
            x = x[k:]
        return x

    def flush(self) -> np.ndarray | None:
        return None


class _Scale:
    """Multiply every sample by a constant (a file's level guard, :mod:`rtconv.levelguard`)."""

    def __init__(self, gain: float) -> None:
        self.gain = np.float32(gain)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * self.gain

    def flush(self) -> None:
        return None


class _Fit:
    """Cut or zero-pad the stream to exactly ``n`` frames (resampler rounding)."""

    def __init__(self, n: int, channels: int) -> None:
        self.left, self.channels = n, channels

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x[: self.left]
        self.left -= x.shape[0]
        return x

    def flush(self) -> np.ndarray:
        pad = np.zeros((self.left, self.channels), np.float32)
        self.left = 0
        return pad


class Chain:
    """File-rate audio in, processed file-rate audio out, block by block.

    Parameters
    ----------
    model : Model
        The model; ``model.sample_rate`` (if set) is the rate it runs at.
    sample_rate : int
        Rate of the audio fed in, Hz.
    channels : int
        Channels of the audio fed in.
    frames : int
        Total input length, needed to produce exactly that many output frames
        (``align=True``) or ``frames + latency`` (``align=False``).
    block_size : int or None
        Streamer block size in frames at the model's rate; ``None``:
        :func:`file_block_size`.
    offline : bool
        Use the whole-signal forward pass instead of the streamer.
    align : bool
        Remove the model's latency.
    threads : int or None
        Torch threads (process-wide), as for :class:`Streamer`.
    prime : bool or None
        Start the model from the signal's first frames played backwards instead of from
        silence (:class:`_Primed`); ``None`` (default): for models with a recurrent state.
        A primed chain's output is not the zero-history convolution of the signal.
    dc_block : bool or None
        Remove a DC offset before the model (:class:`rtconv.dcblock.DCBlocker`); ``None``
        (default): for denoisers and VADs (:func:`rtconv.dcblock.wants_dc_block`).
    level_gain : float
        A constant gain in (0, 1] on the model's input, undone on its output: a loud file's
        level guard (:mod:`rtconv.levelguard`); 1 (default): none.
    """

    def __init__(self, model: Model, sample_rate: int, channels: int, frames: int, *,
                 block_size: int | None = None, offline: bool = False, align: bool = True,
                 threads: int | None = 1, prime: bool | None = None, dc_block: bool | None = None,
                 level_gain: float = 1.0) -> None:
        if block_size is None:
            block_size = file_block_size(model)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive number of frames, got {block_size!r}.")
        f0 = model.in_channels
        if f0 > 1 and channels != f0:
            raise AudioFileError(
                f"the model mixes {f0} input channels but the audio has {channels}; "
                f"give it a {f0}-channel file or use a mono model."
            )
        rate = model.sample_rate or sample_rate
        self.block_size = block_size
        self.model_rate = rate
        self.latency = model.latency
        stages: list = []
        self._dc = DCBlocker(sample_rate, channels) if wants_dc_block(model, dc_block) else None
        if self._dc is not None:
            stages.append(_Blocks(self._dc))
        if not (isinstance(level_gain, (int, float)) and 0 < level_gain <= 1):
            raise ConfigError(f"level_gain must be in (0, 1], got {level_gain!r}.")
        self.level_gain = float(level_gain)
        if self.level_gain != 1.0:
            stages.append(_Scale(self.level_gain))
        if rate != sample_rate:
            stages.append(Resampler(sample_rate, rate, channels, "HQ"))
        if offline and model.recurrent:
            # a recurrent state reaches back to the signal's start: overlapping chunks cannot
            # reproduce it, one pass from the start can, and the streamer is that pass
            core = _Stream(model, channels, max(block_size, 1 << 16), threads)
        else:
            core = _Offline(model, channels) if offline else _Stream(model, channels, block_size, threads)
        if offline and threads is not None:
            torch.set_num_threads(threads)
        if prime is None:
            prime = model.recurrent
        want = prime_frames(model, rate) if prime else 0
        self._primed = _Primed(core, want, channels) if want else None
        if self._primed is not None:
            core = self._primed
        stages.append(core)
        self.out_channels = core.out_channels
        if align:
            stages.append(_Skip(model.latency))
        if self.level_gain != 1.0:
            stages.append(_Scale(1.0 / self.level_gain))
        if rate != sample_rate:
            stages.append(Resampler(rate, sample_rate, self.out_channels, "HQ"))
        extra = 0 if align else round(model.latency * sample_rate / rate)
        stages.append(_Fit(frames + extra, self.out_channels))
        self.stages = stages

    @property
    def primed_frames(self) -> int:
        """Model-rate frames the model was started from, played backwards: the plan's until the file's start
        is known, then what it had (a file shorter than the plan is reflected whole); 0 when not primed."""
        p = self._primed
        return 0 if p is None else p.n if p.drop is None else p.used

    @property
    def dc_offset(self) -> float | None:
        """The input's DC offset, the mean of its samples so far (the largest channel's, full scale 1), or ``None`` when not blocked."""
        return None if self._dc is None else self._dc.offset

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Process the next ``(frames, channels)`` float32 chunk."""
        for s in self.stages:
            x = s(x)
        return x

    def flush(self) -> np.ndarray:
        """End of input: everything still owed, through the rest of the chain."""
        out = np.zeros((0, self.out_channels), np.float32)
        for i, s in enumerate(self.stages):
            tail = s.flush()
            if tail is None or tail.shape[0] == 0:
                continue
            for later in self.stages[i + 1 :]:
                tail = later(tail)
            out = np.concatenate([out, tail])
        return out


#: Tasks whose models may run over a file in both directions (``both_directions``): a denoiser's
#: output is the sound itself; a filter's would lose its phase, a detector's its timing.
BOTH_DIRECTIONS_TASKS = ("denoise",)


def check_both_directions(model: Model, name: str, align: bool = True) -> None:
    """Refuse ``both_directions`` for ``model`` (called ``name`` in the message) unless it is a denoiser
    and the output is aligned (:class:`rtconv.errors.ConfigError`, one sentence); the CLI asks once, up front."""
    task = _task(model)
    if task not in BOTH_DIRECTIONS_TASKS:
        raise ConfigError(f"--both-directions averages a denoiser's passes forwards and backwards over a file; "
                          f"this model ({name}) is {'a ' + task if task else 'not a denoiser'}, whose output "
                          "would lose its meaning (a filter's phase, a detector's timing), so leave it out.")
    if not align:
        raise ConfigError("--both-directions needs the output aligned with the input; leave out --keep-latency.")


@contextlib.contextmanager
def _scratch(output: Path):
    """A temporary file beside ``output`` (:func:`rtconv.audio.temporary_beside`, so a killed run's is
    removed by the next run over that output), locked while in use (:func:`_lock`), removed after."""
    fd, name = temporary_beside(output)
    try:
        _lock(fd)
        yield Path(name)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _both_directions_file(reader, make_chain, writer, out: Path, mix, step) -> "Chain":
    """The two passes of :func:`process_file` with ``both_directions``, memory flat.

    The input is copied to a float scratch file (``reader``'s chunks, NaN already silenced); the
    backward pass reads it from the end, chunk by chunk reversed, and writes its output in its
    own (reversed) order to a second scratch file; the forward pass then pairs each of its output
    chunks with the backward output of the same frames and writes their mean. ``step(frames)``
    is told of the frames each pass gets through.  Returns the forward chain.
    """
    import soundfile as sf

    kw = dict(samplerate=reader.sample_rate, subtype="FLOAT", format="W64")
    with _scratch(out) as px, _scratch(out) as pb:
        with sf.SoundFile(px, "w", channels=reader.channels, **kw) as fx:
            for x in reader.chunks():
                with _disk_full_said(out, x.nbytes, writer):
                    fx.write(x)
        n = reader.frames_read
        back = make_chain(n)
        with sf.SoundFile(px) as fx, sf.SoundFile(pb, "w", channels=back.out_channels, **kw) as fb:
            for end in range(n, 0, -_READ_CHUNK):
                start = max(0, end - _READ_CHUNK)
                fx.seek(start)
                x = fx.read(end - start, dtype="float32", always_2d=True)[::-1]
                with _disk_full_said(out, x.nbytes, writer):
                    fb.write(back(np.ascontiguousarray(x)))
                step(end - start)
            with _disk_full_said(out, 0, writer):
                fb.write(back.flush())
        fwd = make_chain(reader.frames)  # as the one-way chain: padded to the header's length
        done = 0  # output frames written

        def mean(y: np.ndarray, rb) -> np.ndarray:
            nonlocal done
            k = max(0, min(y.shape[0], n - done))  # frames the backward pass has (not a truncated file's rest)
            if k:
                rb.seek(n - done - k)
                b = rb.read(k, dtype="float32", always_2d=True)[::-1]
                y = y.copy()
                y[:k] = 0.5 * (y[:k] + b)
            done += y.shape[0]
            return y

        with sf.SoundFile(px) as fx, sf.SoundFile(pb) as rb:
            for x in fx.blocks(_READ_CHUNK, dtype="float32", always_2d=True):
                y = mean(fwd(x), rb)
                with _disk_full_said(out, y.nbytes, writer):
                    writer.write(mix(x, y) if mix else y)
                step(x.shape[0])
            y = mean(fwd.flush(), rb)
            with _disk_full_said(out, y.nbytes, writer):
                writer.write(mix(None, y) if mix else y)
    return fwd


# --- public API -------------------------------------------------------------------


def _level_guard(model: Model, level_guard: bool | None, chunks: Callable[[], Iterable[np.ndarray]], rate: int,
                 channels: int, frames: int, chain_kw: dict) -> tuple[float | None, float]:
    """A file's level guard (:mod:`rtconv.levelguard`): ``(speech level dBFS or None, gain on the model's input)``.

    ``chunks()`` gives the file's audio again from its start each time it is called.  A file whose
    active level is at most the threshold costs one pass of the level meter and is left alone; a
    louder one is run through the model once more, lowered to the threshold by its own level (where
    the model keeps its speech whole) and raised back, to measure the level of what the model keeps
    (its speech), and that sets the gain.
    """
    if not wants_level_guard(model, level_guard):
        return None, 1.0
    meter = LevelMeter(rate, channels)
    for x in chunks():
        meter.add(x)
    level = meter.level_db()
    if not level > LEVEL_GUARD_DBFS:
        return level, 1.0
    chain = Chain(model, rate, channels, frames, level_gain=guard_gain(level), **chain_kw)
    kept = LevelMeter(rate, chain.out_channels)
    for x in chunks():
        kept.add(chain(x))
    kept.add(chain.flush())
    speech = kept.level_db()
    return speech, guard_gain(speech)


def _load_model(model: Model | PathLike | None) -> tuple[Model, str]:
    """The model ``model`` means (a loaded one as is; a path, name or None through :func:`resolve`) and its name."""
    if isinstance(model, Model):
        return model, model.metadata.get("name") or type(model).__name__
    path = resolve(model)
    m = load(path)
    return m, m.metadata.get("name") or path.stem


def _mode(offline: bool, block_size: int) -> str:
    return "offline forward" if offline else f"streamed in {block_size}-frame blocks"


def _notes(summary: Summary) -> None:
    """Fill ``warnings`` (something was lost or changed) and ``notes`` (how it was done)."""
    w = summary.warnings
    if summary.resampled:
        note = f"resampled {summary.sample_rate} Hz -> {summary.model_rate} Hz for the model and back"
        if summary.model_rate < summary.sample_rate:  # a loss: a warning
            w.append(note + f"; content above {summary.model_rate // 2} Hz was removed")
        else:  # a 44.1 kHz file through a 48 kHz model loses nothing: a note
            summary.notes.append(note)
    if summary.out_channels != summary.channels:
        per = summary.out_channels // summary.channels if summary.out_channels % summary.channels == 0 else None
        how = f"{per} model outputs per input channel, channel-major" if per else "the model mixes the channels"
        summary.notes.append(
            f"the output has {summary.out_channels} channel(s) for {summary.channels} input channel(s) ({how})")
    if summary.primed_frames:
        ms = 1000 * summary.primed_frames / summary.model_rate
        summary.notes.append(
            f"each pass started from the first {ms:.0f} ms it meets played backwards (the file's start forwards, "
            "its end backwards) rather than from silence (--no-prime: from silence)" if summary.both_directions else
            f"the model started from the file's first {ms:.0f} ms played backwards rather than from silence "
            "(--no-prime: from silence)")
    dc = offset_note(summary.dc_offset)
    if dc:
        summary.notes.append(dc)
    lv = level_note(summary.level_gain, summary.level_db)
    if lv:
        summary.notes.append(lv)
    if summary.nonfinite_samples:
        w.append(f"{summary.nonfinite_samples} NaN/Inf input sample(s) were replaced by silence (0)")
    if summary.clipped_samples:
        w.append(f"{summary.clipped_samples} output sample(s) exceeded full scale and were clipped to [-1, 1]")


def _task(model: Model) -> str | None:
    return model.metadata.get("task") or ("filter" if model.arch == "fir" else None)


def output_path(input: PathLike, output: PathLike | None = None, model: Model | None = None) -> Path:
    """Where :func:`process_file` writes the result for ``input``.

    ``output`` is the output file, or an existing folder for the default name
    (``x-denoised.wav`` for a denoiser, ``x-filtered.wav`` for a filter,
    ``x-<task>.wav`` otherwise, from ``model``'s task), or ``None`` for the
    default name beside the input.
    """
    input = Path(input)
    task = _task(model) if model is not None else None
    if output is not None and str(output).endswith(("/", os.sep)) and not Path(output).is_dir():
        raise AudioFileError(
            f"output folder {str(output)!r} does not exist; create it or choose another output path."
        )
    if output is None:
        return default_output_path(input, task)
    if Path(output).is_dir():
        return default_output_path(input, task, folder=output)
    return Path(output)


def process_file(
    input: PathLike,
    output: PathLike | None = None,
    model: Model | PathLike | None = None,
    *,
    block_size: int | None = None,
    offline: bool = False,
    align: bool = True,
    subtype: str | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    threads: int | None = 1,
    wet: float = 1.0,
    attenuation_limit_db: float | None | str = "model",
    prime: bool | None = None,
    dc_block: bool | None = None,
    both_directions: bool = False,
    level_guard: bool | None = None,
) -> Summary:
    """Process one audio file with a model and write the result atomically.

    Parameters
    ----------
    input : path
        Any file soundfile reads.  It is opened read-only and never modified.
    output : path, optional
        Output file, or an existing folder to put the default name in
        (:func:`output_path`).  Default: beside the input, ``x-denoised.wav``
        for a denoiser, ``x-filtered.wav`` for a filter, ``x-<task>.wav``
        otherwise.
    model : Model or path, optional
        A loaded model, or a checkpoint path or shipped model name as
        :func:`rtconv.checkpoint.resolve` finds it; default: the default model.
    block_size : int, optional
        Streamer block size in frames; default :func:`file_block_size`, the
        fastest for the model (any size gives the same output).
    offline : bool
        Use the whole-signal forward pass (the reference) instead of streaming.
    align : bool
        Remove the model's latency so the output lines up with the input and
        has its length (default); ``False`` keeps the raw delayed stream plus
        its ``latency``-frame tail.
    subtype : str, optional
        soundfile subtype of the output (``"FLOAT"``, ``"PCM_24"``...);
        default the input's when the output format can hold it.
    overwrite : bool
        Replace an existing output file (never the input).
    progress : bool, None or callable
        ``True`` shows a tqdm bar in audio time, ``None`` shows one only on a
        terminal, a callable is called as ``progress(frames_done,
        frames_total)`` after each chunk (raise from it to cancel; nothing is
        written then).  The total is what the file holds (of a FLAC or MP3 cut
        short, what decodes); a read that ends early calls it once more with
        the total corrected to what was read, so that progress ends at 100 %.
    threads : int or None
        Torch threads (process-wide); 1 by default.
    wet : float
        Dry/wet mix, 0..1: ``wet * processed + (1 - wet) * input``, sample
        aligned (needs ``align=True`` and as many output as input channels).
    attenuation_limit_db : float, None or "model"
        A denoiser's strength: the most any band is attenuated, in dB
        (``None``: unlimited); ``"model"`` keeps the checkpoint's own.  The
        model's setting is restored afterwards.
    prime : bool or None
        Start the model from the file's first fraction of a second played backwards rather
        than from silence, so the start of the file is processed like the rest (``None``,
        the default: for models with a recurrent state, such as the shipped denoiser;
        ``False`` keeps the zero-history output, e.g. to compare with a stream's first block).
    dc_block : bool or None
        Remove a DC offset (a microphone's constant bias) before the model
        (:class:`rtconv.dcblock.DCBlocker`: a 1 Hz high-pass started from the running
        mean, no latency); ``None``, the default: for denoisers and VADs, whose training
        had none; ``False`` gives the model the samples as they are (``--keep-dc``).
    both_directions : bool
        A denoiser's option: run it over the file forwards and backwards and write the mean
        of the two (see the module docstring): cleaner, at twice the time; two temporary
        float copies of the file's length are kept beside the output meanwhile.
    level_guard : bool or None
        When the file's speech (what the model keeps of it, measured in a first pass run only
        for a file louder than :data:`rtconv.levelguard.LEVEL_GUARD_DBFS`) is above that
        active level, run the model on the file scaled down to it by one constant gain and
        scale the output back (:mod:`rtconv.levelguard`); ``None``, the default: for
        denoisers; ``False`` gives the model the file's level (``--keep-level``).

    Returns
    -------
    Summary
        Duration, timing, real-time factor and warnings.

    Raises
    ------
    AudioFileError
        Unreadable input, unwritable output, a full disk (the message says
        which file and why).
    CheckpointError
        The model file cannot be loaded.
    """
    t0 = time.perf_counter()
    input = Path(input)
    if isinstance(wet, bool) or not isinstance(wet, (int, float)) or not 0.0 <= wet <= 1.0:
        raise ConfigError(f"wet must be a number from 0 (dry) to 1 (processed), got {wet!r}.")
    if wet < 1.0 and not align:
        raise ConfigError(f"a dry/wet mix (wet={wet!r}) needs the output aligned with the input; "
                          "leave out --keep-latency.")
    m, mname = _load_model(model)
    task = (getattr(m, "metadata", None) or {}).get("task")
    if wet < 1.0 and task in PROBABILITY_TASKS:
        raise ConfigError(f"--wet mixes audio into the output, but this model ({mname}, task {task!r}) writes "
                          "probabilities, not audio; leave --wet out.")
    if both_directions:
        check_both_directions(m, mname, align)
    with _strength(m, attenuation_limit_db), Reader(input, chunk=_READ_CHUNK) as reader:
        out = output_path(input, output, m)
        if out.exists() and out.resolve() == input.resolve():
            raise AudioFileError(
                f"output {str(out)!r} is the input file; rtconv never overwrites its input, choose another output name."
            )
        stale = remove_stale_temporaries(out)
        if out.exists() and not overwrite:
            raise AudioFileError(f"output {str(out)!r} already exists; pass --overwrite to replace it, "
                                 "--skip-existing to keep it, or choose another name.")
        def chunks():
            with Reader(input, chunk=_READ_CHUNK) as pre:
                yield from pre.chunks()

        kw = dict(block_size=block_size, offline=offline, align=align, threads=threads, prime=prime,
                  dc_block=dc_block)
        level_db, gain = _level_guard(m, level_guard, chunks, reader.sample_rate, reader.channels, reader.frames, kw)

        def make_chain(frames: int) -> Chain:
            return Chain(m, reader.sample_rate, reader.channels, frames, level_gain=gain, **kw)

        chain = make_chain(reader.frames)
        if wet < 1.0 and chain.out_channels != reader.channels:
            raise ConfigError(f"a dry/wet mix needs as many output as input channels; this model turns "
                              f"{reader.channels} into {chain.out_channels}, so leave --wet out.")
        mix = _DryWet(wet) if wet < 1.0 else None
        fmt, sub = output_format(out, reader.format, reader.subtype, subtype)
        mode = _mode(offline, chain.block_size) + (", both directions" if both_directions else "")
        passes = 2 if both_directions else 1
        bar = None
        show = progress if isinstance(progress, bool) else (progress is None and _stderr_tty())
        if show:
            bar = audio_progress_bar(passes * reader.frames / reader.sample_rate,
                                     input.name + (" (both directions)" if both_directions else ""))
        passed = 0

        def step(frames: int) -> None:
            nonlocal passed
            passed += frames
            if bar is not None:
                bar.update(frames / reader.sample_rate)
            if callable(progress):
                progress(passed, passes * reader.frames)

        try:
            from . import __version__

            tags = dict(reader.tags)
            tags["software"] = f"{SOFTWARE_TAG} {__version__}, model {mname}, {mode}"
            with _disk_full_said(out), AtomicWriter(out, reader.sample_rate, chain.out_channels, fmt, sub,
                                                    tags) as writer, _held(writer):
                if both_directions:
                    chain = _both_directions_file(reader, make_chain, writer, out, mix, step)
                else:
                    for x in reader.chunks():
                        y = chain(x)
                        with _disk_full_said(out, y.nbytes, writer):
                            writer.write(mix(x, y) if mix else y)
                        step(x.shape[0])
                    y = chain.flush()
                    with _disk_full_said(out, y.nbytes, writer):
                        writer.write(mix(None, y) if mix else y)
                if passed != passes * reader.frames:  # the read ended early: the total is what was read
                    if bar is not None:
                        bar.total = passed / reader.sample_rate
                        bar.refresh()
                    if callable(progress):
                        progress(passed, passed)
                with _disk_full_said(out, 0, writer):
                    writer.commit()
        finally:
            if bar is not None:
                bar.close()
    summary = Summary(
        input=input, output=out, model=mname, frames=reader.frames_read, sample_rate=reader.sample_rate,
        channels=reader.channels, out_channels=chain.out_channels, model_rate=chain.model_rate,
        mode=mode, latency=chain.latency, aligned=align,
        elapsed_s=time.perf_counter() - t0, nonfinite_samples=reader.nonfinite_samples,
        clipped_samples=writer.clipped_samples, output_frames=writer.frames,
        primed_frames=chain.primed_frames, dc_offset=chain.dc_offset, both_directions=both_directions,
        level_db=level_db, level_gain=gain,
    )
    summary.warnings.extend(reader.warnings)
    if reader.frames_read < reader.frames:
        summary.warnings.append(
            f"the file ended after {reader.frames_read} of the {reader.frames} frames its header "
            "announces (truncated?); the rest of the output is silence"
        )
    if stale:
        summary.warnings.append(
            f"removed {len(stale)} temporary file(s) an interrupted run had left for this output "
            f"({', '.join(p.name for p in stale)})"
        )
    _notes(summary)
    return summary


# --- output safety: full disks, temporaries of killed runs ---------------------------

#: Free space under which a failed write counts as a full disk (a write is a chunk or less).
_FULL_DISK_MARGIN = 1 << 20


def _free_bytes(folder: Path) -> float:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return math.inf
    blocks = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail  # root may use the reserve
    return blocks * st.f_frsize


@contextlib.contextmanager
def _disk_full_said(out: Path, nbytes: int = 0, writer: AtomicWriter | None = None):
    """Turn a failed write to ``out`` that a full disk caused into one sentence that says so.

    The OS says ENOSPC, but libsndfile reports it as its generic "System
    error", so without an errno the file system is asked how much room is
    left (while the temporary file still holds its share of it).
    """
    try:
        yield
    except (AudioFileError, RuntimeError) as e:
        # AudioFileError: the writer's, with the OS or soundfile error as its context; RuntimeError: soundfile's
        # own, from a scratch file of --both-directions, which is written directly
        scratch = not isinstance(e, AudioFileError)
        import soundfile as sf

        if scratch and not isinstance(e, sf.LibsndfileError):
            raise  # a model's own error inside the block, not a failed write
        cause = e if scratch else e.__context__
        if isinstance(cause, OSError) and not isinstance(cause, AudioFileError):
            full = cause.errno == errno.ENOSPC
        else:
            full = ((scratch or writer is not None) and getattr(cause, "code", None) == 2  # libsndfile's SFE_SYSTEM
                    and _free_bytes(out.parent) < max(_FULL_DISK_MARGIN, nbytes))
        if full:
            room = " (its scratch copies need about three times the output's size in float)" if scratch else ""
            raise AudioFileError(
                f"cannot write output {str(out)!r}: {os.strerror(errno.ENOSPC)}{room}; nothing was saved, free "
                "some space there or choose an output folder on another disk with -o."
            ) from None
        if not scratch:
            raise
        detail = sndfile_detail(e)
        raise AudioFileError(f"cannot write the scratch copy beside {str(out)!r} ({detail}); nothing was saved, "
                             "choose another output folder with -o.") from None


def _temporary_pattern(output: Path) -> re.Pattern:
    # rtconv.audio.temporary_beside's names: tempfile.mkstemp(prefix=".<name>.", suffix=".part"), 8 random characters
    return re.compile(r"\." + re.escape(output.name) + r"\.[a-z0-9_]{8}\.part\Z")


@contextlib.contextmanager
def _held(writer: AtomicWriter):
    """Hold an advisory lock (:func:`_lock`) on the writer's temporary file while it is written."""
    try:  # AtomicWriter has no public name for its temporary file yet: its private one
        fd = os.open(writer._tmp, os.O_RDONLY)
    except (OSError, TypeError):
        yield
        return
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    """Lock the file open as ``fd`` until it is closed.

    A later run takes a temporary file it can lock for one a killed run left
    behind (:func:`remove_stale_temporaries`); one still locked is in use.
    Without ``flock`` (Windows) nothing is locked, and nothing removed either.
    """
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_stale_temporaries(output: PathLike, min_age_s: float = 2.0) -> list[Path]:
    """Delete the temporary files a killed run left for ``output``; return their paths.

    Only names of the writer's own pattern for this output
    (``.<output name>.<8 characters>.part`` in its folder) are considered,
    and of those only files that no running rtconv holds locked and that are
    at least ``min_age_s`` seconds old (a file created a moment ago may not
    be locked yet).  Without ``fcntl`` (Windows) nothing is removed.
    """
    try:
        import fcntl
    except ImportError:
        return []
    output = Path(output)
    folder = output.parent if str(output.parent) else Path(".")
    pattern = _temporary_pattern(output)
    try:
        names = sorted(n for n in os.listdir(folder) if pattern.match(n))
    except OSError:
        return []
    removed = []
    for name in names:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and time.time() - st.st_mtime >= min_age_s):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a running rtconv is writing it
                continue
            try:
                os.unlink(path)
            except OSError:
                continue
            removed.append(path)
        finally:
            os.close(fd)
    return removed


# --- progress in audio time -------------------------------------------------------------


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def audio_progress_bar(total_s: float, desc: str, **kw):
    """A tqdm bar counting seconds of audio (``update(seconds)``), on stderr.

    It reads ``desc:  40%|####      | 0:01:12 of 0:03:00 audio [00:02<00:03, 36x real time]``.
    """
    from tqdm import tqdm

    class AudioBar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            n, elapsed = d.get("n") or 0, d.get("elapsed") or 0
            d.update(audio=_hms(n), audio_total=_hms(d.get("total") or 0),
                     speed=f"{n / elapsed:.0f}x real time" if n and elapsed > 0 else "? x real time")
            return d

    kw.setdefault("leave", False)
    return AudioBar(total=total_s, desc=desc, bar_format="{desc}: {percentage:3.0f}%|{bar}| {audio} of "
                    "{audio_total} audio [{elapsed}<{remaining}, {speed}]", **kw)


@contextlib.contextmanager
def _strength(model, limit_db):
    """Run with a denoiser's attenuation limit set to ``limit_db``, then restore it (``"model"``: as is)."""
    if limit_db == "model":
        yield
        return
    from .denoiser import set_attenuation_limit

    old = getattr(model, "attenuation_limit_db", None)
    set_attenuation_limit(model, limit_db)
    try:
        yield
    finally:
        model.attenuation_limit_db = old


class _DryWet:
    """``wet * y + (1 - wet) * x`` for an aligned output: output frame k pairs with input frame k."""

    def __init__(self, wet: float) -> None:
        self.wet = float(wet)
        self.pending: list[np.ndarray] = []  # input frames not yet matched by output frames

    def __call__(self, x: np.ndarray | None, y: np.ndarray) -> np.ndarray:
        if x is not None and len(x):
            self.pending.append(np.asarray(x, np.float32))
        n = y.shape[0]
        if n == 0:
            return y
        dry = np.concatenate(self.pending) if self.pending else np.zeros((0, y.shape[1]), np.float32)
        if dry.shape[0] < n:  # never for an aligned chain; kept so a short read cannot misalign the rest
            dry = np.concatenate([dry, np.zeros((n - dry.shape[0], dry.shape[1]), np.float32)])
        self.pending = [dry[n:]] if dry.shape[0] > n else []
        return (self.wet * y + (1.0 - self.wet) * dry[:n]).astype(np.float32)


def _stderr_tty() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def process_array(
    audio: np.ndarray,
    sample_rate: int,
    model: Model | PathLike | None = None,
    *,
    block_size: int | None = None,
    offline: bool = False,
    align: bool = True,
    threads: int | None = 1,
    prime: bool | None = None,
    dc_block: bool | None = None,
    both_directions: bool = False,
    level_guard: bool | None = None,
) -> np.ndarray:
    """Process audio in memory exactly as :func:`process_file` processes a file (``prime``, ``dc_block``,
    ``both_directions`` and ``level_guard`` as there).

    Parameters
    ----------
    audio : ndarray
        ``(frames,)`` mono or ``(frames, channels)`` float audio in [-1, 1], or integer
        samples (int16, int32, uint8, as ``scipy.io.wavfile.read`` gives them), scaled to it.
    sample_rate : int
        Its rate in Hz (resampled to the model's rate and back if they differ).

    Returns
    -------
    ndarray
        float32 ``(frames, out_channels)`` (``frames + latency`` when
        ``align=False``).  NaN/Inf input samples are treated as 0.
    """
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise ConfigError(f"audio must be a (frames,) or (frames, channels) array, got shape {x.shape}.")
    x = _full_scale_float(x)
    x, _ = zero_nonfinite(x, copy=False)  # _full_scale_float made the copy
    m, name = _load_model(model)
    if both_directions:
        check_both_directions(m, name, align)
    kw = dict(block_size=block_size, offline=offline, align=align, threads=threads, prime=prime, dc_block=dc_block)
    _, gain = _level_guard(m, level_guard, lambda: (x[i: i + _READ_CHUNK] for i in range(0, len(x), _READ_CHUNK)),
                           int(sample_rate), x.shape[1], x.shape[0], kw)

    def run(a: np.ndarray) -> np.ndarray:
        chain = Chain(m, int(sample_rate), a.shape[1], a.shape[0], level_gain=gain, **kw)
        outs = [chain(a[i : i + _READ_CHUNK]) for i in range(0, a.shape[0], _READ_CHUNK)]
        outs.append(chain.flush())
        return np.concatenate(outs)

    y = run(x)
    if both_directions:  # the same frames backwards, in chunks counted from the end as process_file reads them
        y += run(np.ascontiguousarray(x[::-1]))[::-1]
        y *= 0.5
    return y


#: A float array peaking above this is integer samples stored as floats (int16 scale), not audio in [-1, 1]
_FLOAT_PEAK_LIMIT = 64.0


def _full_scale_float(x: np.ndarray) -> np.ndarray:
    """``x`` as a float32 copy in [-1, 1] full scale: integer samples (``scipy.io.wavfile.read``'s int16,
    int32, uint8) divided by their type's full scale as soundfile reads them; floats as they are, refused
    in one sentence when they peak far above full scale (integer samples cast to float)."""
    if x.dtype.kind == "f":
        y = x.astype(np.float32)
        finite = y[np.isfinite(y)]
        peak = float(np.max(np.abs(finite))) if finite.size else 0.0
        if peak > _FLOAT_PEAK_LIMIT:
            raise ConfigError(
                f"the audio peaks at {peak:g}, {20 * math.log10(peak):.0f} dB above the full scale of 1.0 that float "
                "audio has: it looks like integer samples stored as floats; divide 16-bit samples by 32768 "
                "(or pass the integer array itself, which is scaled).")
        return y
    info = np.iinfo(x.dtype)
    if x.dtype.kind == "u":  # unsigned: silence is the middle of the range (8-bit WAV)
        mid = (int(info.max) + 1) // 2
        return ((x.astype(np.float64) - mid) / mid).astype(np.float32)
    return (x.astype(np.float64) / -float(info.min)).astype(np.float32)


@dataclass
class Found:
    """What :func:`audio_files` found."""

    #: ``(file, sub-folder)``: each audio file with its folder relative to the
    #: folder it was found in (``Path(".")`` for files given by name or found
    #: directly inside a folder given), so outputs can mirror the tree.
    files: list[tuple[Path, Path]] = field(default_factory=list)
    #: Files skipped because rtconv wrote them (their ``software`` tag says so).
    written: list[Path] = field(default_factory=list)
    #: Files skipped because they are named as rtconv names an output, beside their input, in a format that
    #: keeps no tag to tell (AU, W64...: :func:`rtconv.audio.named_as_output`).
    named: list[Path] = field(default_factory=list)
    #: Sub-folders not entered (without ``recursive``).
    folders: list[Path] = field(default_factory=list)


def _is_audio_name(name: str) -> bool:
    from .audio import AUDIO_EXTENSIONS

    return not name.startswith(".") and Path(name).suffix[1:].lower() in AUDIO_EXTENSIONS


def audio_files(paths: Iterable[PathLike], recursive: bool = False, exclude: Iterable[PathLike] = ()) -> Found:
    """Expand folders to the audio files in them (sorted); keep files as given.

    Files found in folders that rtconv itself wrote (their ``software`` tag
    says so, or, in a format without tags, their name beside their input:
    ``x-denoised.au`` next to ``x.au``) are skipped, so processing a folder
    twice does not process its own outputs; files named explicitly are
    always kept.  With
    ``recursive``, sub-folders are searched too (hidden ones, symbolic links
    to folders and the ``exclude`` folders, say the output folder, are not
    entered); without it they are counted in :attr:`Found.folders`.
    """
    found = Found()
    skip = set()
    for e in exclude:
        with contextlib.suppress(OSError):
            skip.add(Path(e).resolve())

    def enters(d: Path) -> bool:
        return not d.name.startswith(".") and not d.is_symlink() and d.resolve() not in skip

    for root in map(Path, paths):
        if not root.is_dir():
            found.files.append((root, Path(".")))
            continue
        for folder, dirs, names in os.walk(root):
            folder = Path(folder)
            dirs[:] = sorted(d for d in dirs if enters(folder / d))
            if not recursive:
                found.folders.extend(folder / d for d in dirs)
                dirs[:] = []
            here = set(names)
            for name in sorted(names):
                q = folder / name
                if _is_audio_name(name) and q.is_file():
                    if written_by_rtconv(q):
                        found.written.append(q)
                    elif named_as_output(q, here):
                        found.named.append(q)
                    else:
                        found.files.append((q, folder.relative_to(root)))
    return found
