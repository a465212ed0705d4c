"""The chain a file's audio runs through: file-rate blocks in, processed file-rate blocks out.

:class:`Chain` strings the stages together (DC remover, level guard's gain, resampler, the model
streamed or whole-signal, latency drop, resampler back, fit to length); each stage is a callable
with ``flush()`` for what it owes at the end.  :class:`_DryWet` mixes the input back in after it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..audio import READ_CHUNK, SAMPLE_RATE_MODEL_BLOCK
from ..dcblock import DCBlocker, wants_dc_block
from ..errors import AudioFileError, ConfigError
from ..models import Model
from ..resample import Resampler
from ..streaming import Streamer


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
    return READ_CHUNK if _frame_period(model) > 1 else SAMPLE_RATE_MODEL_BLOCK


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
