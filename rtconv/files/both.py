"""A denoiser run over a file forwards and backwards, the two passes averaged (``both_directions``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..models import Model
from .chain import Chain
from .output import _disk_full_said, _scratch, _task


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


def _both_directions_file(reader, make_chain, writer, out: Path, mix, step, chunk: int) -> Chain:
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
            for end in range(n, 0, -chunk):
                start = max(0, end - chunk)
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
            for x in fx.blocks(chunk, dtype="float32", always_2d=True):
                y = mean(fwd(x), rb)
                with _disk_full_said(out, y.nbytes, writer):
                    writer.write(mix(x, y) if mix else y)
                step(x.shape[0])
            y = mean(fwd.flush(), rb)
            with _disk_full_said(out, y.nbytes, writer):
                writer.write(mix(None, y) if mix else y)
    return fwd
