"""Offline processing of audio files and arrays with the same engine that runs live.

:func:`process_file` reads a file in chunks (flat memory for hour-long
recordings), streams it through :class:`rtconv.Streamer` in blocks of
``block_size`` frames (or, with ``offline=True``, through the model's
whole-signal ``forward`` as the reference), and writes the result atomically
(:class:`rtconv.audio.AtomicWriter`).  :func:`process_array` does the same
for a NumPy array in memory (the GUI uses it).

The chain for one file::

    read -> [resample to the model's rate] -> model -> [drop `latency` frames]
         -> [resample back to the file's rate] -> trim/pad to the input length -> write

* Resampling uses soxr's streaming resampler (quality "HQ"); it only runs
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
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np
import torch

from .audio import SOFTWARE_TAG, AtomicWriter, Reader, default_output_path, output_format, written_by_rtconv
from .checkpoint import load, resolve
from .errors import AudioFileError, ConfigError
from .models import Model
from .streaming import Streamer

__all__ = ["Summary", "process_file", "process_array", "Chain", "DEFAULT_BLOCK_SIZE"]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, None, Callable[[int, int], None]]

#: Streamer block size for files: a typical live block, the default quantum of PipeWire
#: and the default JACK period of qjackctl (21.3 ms at 48 kHz).  Any size gives the same
#: output to float rounding; larger blocks only spread the fixed per-block cost of the
#: torch calls over more frames (``rtconv bench process``).
DEFAULT_BLOCK_SIZE = 1024
_READ_CHUNK = 65536  # frames read from disk at a time


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
    warnings: list[str] = field(default_factory=list)

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


class _Resample:
    def __init__(self, in_rate: int, out_rate: int, channels: int) -> None:
        import soxr

        self.rs = soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")
        self.channels = channels

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros((0, self.channels), np.float32)
        return self.rs.resample_chunk(np.ascontiguousarray(x), last=False).reshape(-1, self.channels)

    def flush(self) -> np.ndarray:
        return self.rs.resample_chunk(np.zeros((0, self.channels), np.float32), last=True).reshape(-1, self.channels)


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
    both paths share alignment code.
    """

    def __init__(self, model: Model, channels: int, chunk: int = 1 << 18) -> None:
        self.model = model
        self.mono = model.in_channels == 1
        self.out_channels = (channels if self.mono else 1) * model.out_channels
        # framed models (strided encoders) see frames at absolute positions
        # (j+1)*stride - 1: chunks must start on a multiple of every stride
        self.period = 1
        for m in model.modules():
            stride = getattr(m, "stride", None)
            if isinstance(stride, int) and stride > 1:
                self.period = math.lcm(self.period, stride)
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
    block_size : int
        Streamer block size in frames at the model's rate.
    offline : bool
        Use the whole-signal forward pass instead of the streamer.
    align : bool
        Remove the model's latency.
    threads : int or None
        Torch threads (process-wide), as for :class:`Streamer`.
    """

    def __init__(self, model: Model, sample_rate: int, channels: int, frames: int, *,
                 block_size: int = DEFAULT_BLOCK_SIZE, offline: bool = False, align: bool = True,
                 threads: int | None = 1) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive number of frames, got {block_size!r}.")
        f0 = model.in_channels
        if f0 > 1 and channels != f0:
            raise AudioFileError(
                f"the model mixes {f0} input channels but the audio has {channels}; "
                f"give it a {f0}-channel file or use a mono model."
            )
        rate = model.sample_rate or sample_rate
        self.model_rate = rate
        self.latency = model.latency
        stages: list = []
        if rate != sample_rate:
            stages.append(_Resample(sample_rate, rate, channels))
        core = _Offline(model, channels) if offline else _Stream(model, channels, block_size, threads)
        if offline and threads is not None:
            torch.set_num_threads(threads)
        stages.append(core)
        self.out_channels = core.out_channels
        if align:
            stages.append(_Skip(model.latency))
        if rate != sample_rate:
            stages.append(_Resample(rate, sample_rate, self.out_channels))
        extra = 0 if align else round(model.latency * sample_rate / rate)
        stages.append(_Fit(frames + extra, self.out_channels))
        self.stages = stages

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


# --- public API -------------------------------------------------------------------


def _resolve_model(model: Model | PathLike | None) -> tuple[Model, str]:
    if isinstance(model, Model):
        return model, model.metadata.get("name") or type(model).__name__
    path = resolve(model)
    m = load(path)
    return m, m.metadata.get("name") or path.stem


def _mode(offline: bool, block_size: int) -> str:
    return "offline forward" if offline else f"streamed in {block_size}-frame blocks"


def _notes(summary: Summary) -> None:
    w = summary.warnings
    if summary.resampled:
        note = f"resampled {summary.sample_rate} Hz -> {summary.model_rate} Hz for the model and back"
        if summary.model_rate < summary.sample_rate:
            note += f"; content above {summary.model_rate // 2} Hz was removed"
        w.append(note)
    if summary.out_channels != summary.channels:
        per = summary.out_channels // summary.channels if summary.out_channels % summary.channels == 0 else None
        how = f"{per} model outputs per input channel, channel-major" if per else "the model mixes the channels"
        w.append(f"the output has {summary.out_channels} channel(s) for {summary.channels} input channel(s) ({how})")
    if summary.nonfinite_samples:
        w.append(f"{summary.nonfinite_samples} NaN/Inf input sample(s) were replaced by silence (0)")
    if summary.clipped_samples:
        w.append(f"{summary.clipped_samples} output sample(s) exceeded full scale and were clipped to [-1, 1]")


def process_file(
    input: PathLike,
    output: PathLike | None = None,
    model: Model | PathLike | None = None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    offline: bool = False,
    align: bool = True,
    subtype: str | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    threads: int | None = 1,
    wet: float = 1.0,
    attenuation_limit_db: float | None | str = "model",
) -> Summary:
    """Process one audio file with a model and write the result atomically.

    Parameters
    ----------
    input : path
        Any file soundfile reads.  It is opened read-only and never modified.
    output : path, optional
        Output file, or an existing folder to put the default name in.
        Default: beside the input, ``x-denoised.wav`` for a denoiser,
        ``x-filtered.wav`` for a filter, ``x-<task>.wav`` otherwise.
    model : Model or path, optional
        A loaded model or a checkpoint path; default
        :func:`rtconv.checkpoint.default_model_path`.
    block_size : int
        Streamer block size in frames (default 1024, a typical live block).
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
        ``True`` shows a tqdm bar, ``None`` shows one only on a terminal,
        a callable is called as ``progress(frames_done, frames_total)`` after
        each chunk (raise from it to cancel; nothing is written then).
    threads : int or None
        Torch threads (process-wide); 1 by default.
    wet : float
        Dry/wet mix, 0..1: ``wet * processed + (1 - wet) * input``, sample
        aligned (needs ``align=True`` and as many output as input channels).
    attenuation_limit_db : float, None or "model"
        A denoiser's strength: the most any band is attenuated, in dB
        (``None``: unlimited); ``"model"`` keeps the checkpoint's own.  The
        model's setting is restored afterwards.

    Returns
    -------
    Summary
        Duration, timing, real-time factor and warnings.

    Raises
    ------
    AudioFileError
        Unreadable input, unwritable output (the message says which and why).
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
    m, mname = _resolve_model(model)
    with _strength(m, attenuation_limit_db), Reader(input, chunk=_READ_CHUNK) as reader:
        task = m.metadata.get("task") or ("filter" if m.arch == "fir" else None)
        if output is not None and str(output).endswith(("/", os.sep)) and not Path(output).is_dir():
            raise AudioFileError(
                f"output folder {str(output)!r} does not exist; create it or choose another output path."
            )
        if output is None:
            out = default_output_path(input, task)
        elif Path(output).is_dir():
            out = default_output_path(input, task, folder=output)
        else:
            out = Path(output)
        if out.exists() and out.resolve() == input.resolve():
            raise AudioFileError(
                f"output {str(out)!r} is the input file; rtconv never overwrites its input, choose another output name."
            )
        if out.exists() and not overwrite:
            raise AudioFileError(f"output {str(out)!r} already exists; pass --overwrite to replace it or choose another name.")
        chain = Chain(m, reader.sample_rate, reader.channels, reader.frames, block_size=block_size,
                      offline=offline, align=align, threads=threads)
        if wet < 1.0 and chain.out_channels != reader.channels:
            raise ConfigError(f"a dry/wet mix needs as many output as input channels; this model turns "
                              f"{reader.channels} into {chain.out_channels}, so leave --wet out.")
        mix = _DryWet(wet) if wet < 1.0 else None
        fmt, sub = output_format(out, reader.format, reader.subtype, subtype)
        bar = None
        show = progress if isinstance(progress, bool) else (progress is None and _stderr_tty())
        if show:
            from tqdm import tqdm

            bar = tqdm(total=reader.frames, unit="frame", unit_scale=True, desc=input.name, leave=False)
        try:
            from . import __version__

            tags = dict(reader.tags)
            tags["software"] = f"{SOFTWARE_TAG} {__version__}, model {mname}, {_mode(offline, block_size)}"
            with AtomicWriter(out, reader.sample_rate, chain.out_channels, fmt, sub, tags) as writer:
                for x in reader.chunks():
                    y = chain(x)
                    writer.write(mix(x, y) if mix else y)
                    if bar is not None:
                        bar.update(x.shape[0])
                    if callable(progress):
                        progress(reader.frames_read, reader.frames)
                y = chain.flush()
                writer.write(mix(None, y) if mix else y)
                writer.commit()
        finally:
            if bar is not None:
                bar.close()
    summary = Summary(
        input=input, output=out, model=mname, frames=reader.frames_read, sample_rate=reader.sample_rate,
        channels=reader.channels, out_channels=chain.out_channels, model_rate=chain.model_rate,
        mode=_mode(offline, block_size), latency=chain.latency, aligned=align,
        elapsed_s=time.perf_counter() - t0, nonfinite_samples=reader.nonfinite_samples,
        clipped_samples=writer.clipped_samples, output_frames=writer.frames,
    )
    if reader.frames_read < reader.frames:
        summary.warnings.append(
            f"the file ended after {reader.frames_read} of the {reader.frames} frames its header "
            "announces (truncated?); the rest of the output is silence"
        )
    _notes(summary)
    return summary


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
    block_size: int = DEFAULT_BLOCK_SIZE,
    offline: bool = False,
    align: bool = True,
    threads: int | None = 1,
) -> np.ndarray:
    """Process audio in memory exactly as :func:`process_file` processes a file.

    Parameters
    ----------
    audio : ndarray
        ``(frames,)`` mono or ``(frames, channels)`` float audio in [-1, 1].
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
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    m, _ = _resolve_model(model)
    chain = Chain(m, int(sample_rate), x.shape[1], x.shape[0], block_size=block_size,
                  offline=offline, align=align, threads=threads)
    outs = [chain(x[i : i + _READ_CHUNK]) for i in range(0, x.shape[0], _READ_CHUNK)]
    outs.append(chain.flush())
    return np.concatenate(outs)


def audio_files(paths: Iterable[PathLike]) -> tuple[list[Path], list[Path]]:
    """Expand folders to the audio files directly inside them (sorted); keep files as given.

    Returns ``(files, skipped)``: files found in folders that rtconv itself
    wrote (their ``software`` tag says so) are skipped, so processing a
    folder twice does not process its own outputs; files named explicitly
    are always kept.
    """
    from .audio import AUDIO_EXTENSIONS

    out: list[Path] = []
    skipped: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for q in sorted(p.iterdir()):
                if q.is_file() and not q.name.startswith(".") and q.suffix[1:].lower() in AUDIO_EXTENSIONS:
                    (skipped if written_by_rtconv(q) else out).append(q)
        else:
            out.append(p)
    return out, skipped
