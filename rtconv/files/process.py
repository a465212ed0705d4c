"""Processing a file (:func:`process_file`) or an array in memory (:func:`process_array`) through a :class:`Chain`."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np

from ..audio import READ_CHUNK, SOFTWARE_TAG, AtomicWriter, PathLike, Reader, output_format, zero_nonfinite
from ..checkpoint import PROBABILITY_TASKS, load, resolve
from ..errors import AudioFileError, ConfigError
from ..levelguard import LEVEL_GUARD_DBFS, LevelMeter, guard_gain, wants_level_guard
from ..models import Model
from . import progress as _bars
from .both import _both_directions_file, check_both_directions
from .chain import Chain, _DryWet
from .output import _disk_full_said, _held, output_path, remove_stale_temporaries
from .summary import Summary, _mode, _notes

Progress = Union[bool, None, Callable[[int, int], None]]

_READ_CHUNK = READ_CHUNK  # frames read from disk at a time (a module global: tests shrink it)


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


@contextlib.contextmanager
def _strength(model, limit_db):
    """Run with a denoiser's attenuation limit set to ``limit_db``, then restore it (``"model"``: as is)."""
    if limit_db == "model":
        yield
        return
    from ..denoiser import set_attenuation_limit

    old = getattr(model, "attenuation_limit_db", None)
    set_attenuation_limit(model, limit_db)
    try:
        yield
    finally:
        model.attenuation_limit_db = old


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
    label: str | None = None,
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
    label : str, optional
        What the progress bar calls the input; default: its file name (``rtconv process -``, whose input is
        a temporary copy of standard input, says "standard input").

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
        show = progress if isinstance(progress, bool) else (progress is None and _bars._stderr_tty())
        if show:
            bar = _bars.audio_progress_bar(passes * reader.frames / reader.sample_rate,
                                     (label or input.name) + (" (both directions)" if both_directions else ""))
        passed = 0

        def step(frames: int) -> None:
            nonlocal passed
            passed += frames
            if bar is not None:
                bar.update(frames / reader.sample_rate)
            if callable(progress):
                progress(passed, passes * reader.frames)

        try:
            from .. import __version__

            tags = dict(reader.tags)
            tags["software"] = f"{SOFTWARE_TAG} {__version__}, model {mname}, {mode}"
            with _disk_full_said(out), AtomicWriter(out, reader.sample_rate, chain.out_channels, fmt, sub,
                                                    tags) as writer, _held(writer):
                if both_directions:
                    chain = _both_directions_file(reader, make_chain, writer, out, mix, step, _READ_CHUNK)
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
