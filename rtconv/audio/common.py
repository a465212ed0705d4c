"""What reading and writing share: rtconv's limits and chunk sizes, the formats soundfile knows, the rule for
NaN and Inf samples, libsndfile's and the OS's errors put in words, and the decoders kept quiet."""

from __future__ import annotations

import contextlib as _contextlib
import errno as _errno
import functools as _functools
import math as _math
import os as _os
import sys as _sys
import threading as _threading
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from ..errors import AudioFileError

PathLike = Union[str, "_os.PathLike[str]"]

#: Sample rates rtconv agrees to read, in Hz.  8 kHz telephone audio and
#: 384 kHz studio audio are inside; below 1 kHz or above 768 kHz a file is
#: almost certainly mislabelled, and resampling it would only hide that.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: libsndfile's limit on channels per file (SF_MAX_CHANNELS).
MAX_CHANNELS = 1024

# Chunk sizes of file processing (:mod:`rtconv.files`), defined here so that
# `rtconv process --help` states them without importing torch.
#: Frames read from a file at a time; also the streamer block of a framed model.
READ_CHUNK = 65536
#: Samples per channel in an MPEG-1 Layer III frame: the unit of an MP3's length and of a decoder's slack
_MP3_FRAME = 1152
#: Streamer block for files of models that run at the sample rate (:func:`rtconv.files.file_block_size`).
SAMPLE_RATE_MODEL_BLOCK = 16384

_EXT_ALIASES = {"AIF": "AIFF", "OGA": "OGG", "OPUS": "OGG", "SND": "AU"}
#: String tags soundfile can read and write (copied from input to output).
TAGS = ("title", "copyright", "software", "artist", "comment", "date", "album", "license", "tracknumber", "genre")
#: Prefix of the ``software`` tag file processing writes, so folders can skip earlier outputs
#: (live recordings and other tools are not skipped).
SOFTWARE_TAG = "rtconv process"

# Subtypes that store floats; everything else (PCM, Vorbis, MP3...) must be clipped to [-1, 1].
FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
# 16-bit PCM <-> float: samples are k / 32768 (libsndfile's reading scale), and written
# back as round(x * 32768) clipped to [-32768, 32767], so a file passed through unchanged
# comes back bit-identical.  Done in NumPy (libsndfile's float I/O is ~3x slower, and its
# float -> int16 rounding differs between its versions).
_S2F = np.float32(1.0 / 0x8000)
_F2S = np.float32(0x8000)


def _sf():
    import soundfile

    return soundfile


@_contextlib.contextmanager
def quiet_decoders(active: bool = True) -> Iterator[None]:
    """Keep what libsndfile's decoders print themselves off stderr while the block runs.

    libmpg123 writes its own diagnostics of a damaged or cut-short MP3 ("Note: Trying to resync...",
    "[src/libmpg123/parse.c:...] error: Giving up resync...") to file descriptor 2, from C, in between
    rtconv's one-sentence messages about the same file: fd 2 goes to the null device around the calls
    that open and read a file, and is always given back.  fd 2 belongs to the whole process, so what any
    thread writes to it meanwhile is lost too: this acts only when called from the main thread, where
    ``rtconv process`` and ``rtconv vad`` read and nothing else writes; a file read on a worker thread
    (the GUI's) keeps the decoder's lines rather than swallow the other threads' output.
    """
    saved = None
    if active and _threading.current_thread() is _threading.main_thread():
        try:
            _sys.stderr.flush()  # what Python holds for stderr goes out now, not to the null device
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = _os.dup(2)
        except OSError:  # no stderr to keep quiet
            saved = None
    if saved is None:
        yield
        return
    try:
        null = _os.open(_os.devnull, _os.O_WRONLY)
        try:
            _os.dup2(null, 2)
        finally:
            _os.close(null)
        yield
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)


def _formats() -> dict[str, str]:
    return _sf().available_formats()


@_functools.lru_cache(maxsize=None)
def _audio_extensions() -> frozenset[str]:
    exts = {f.lower() for f in _formats()} | {a.lower() for a in _EXT_ALIASES}
    return frozenset(exts - {"raw"})  # headerless: rate and channels would be guesses


def _disk_error(path: Path, e: OSError, frames: int = 0, rate: int = 0) -> AudioFileError:
    """The sentence for a disk error ``e`` under the input file ``path``, met after ``frames`` frames at ``rate``."""
    where = f" after {frames / rate:.2f} s ({frames} frames)" if frames else ""
    return AudioFileError(f"cannot read input file {str(path)!r}: {_oserror_text(e)}{where}; nothing was written: "
                          "check the disk, or copy the file elsewhere and process the copy.")


def _oserror_text(e: OSError) -> str:
    if e.errno == _errno.ENOSPC:
        return "the disk is full"
    return e.strerror or str(e)


def all_finite(x: np.ndarray) -> bool:
    """Whether every sample of ``x`` is finite: the check a live block pays at every hand-off.

    One BLAS dot product of the samples with themselves, which NaN or ±Inf make non-finite:
    1.7 us for a 128-sample block here against 4.2 for ``np.isfinite(x).all()``.  A sum of squares
    that overflows (samples beyond ~1e18) is checked sample by sample.  Integer arrays are always finite;
    complex ones are checked sample by sample.
    """
    if x.dtype.kind != "f":
        return x.dtype.kind != "c" or bool(np.isfinite(x).all())
    return _math.isfinite(np.vdot(x, x)) or bool(np.isfinite(x).all())


def zero_nonfinite(x: np.ndarray, *, copy: bool = True) -> tuple[np.ndarray, int]:
    """``x`` with its NaN and ±Inf samples set to 0, and how many there were.

    Input audio with such samples (a damaged file, a broken driver, a bug
    upstream) would poison every later sample of a recurrent or streaming
    model; silence in their place loses only those samples.  All-finite input
    (nearly always) costs one check and comes back as ``x`` itself.  With
    ``copy=False`` the samples are zeroed in ``x``, a buffer the caller
    owns; otherwise a zeroed copy is returned and ``x`` is left alone.
    Integer arrays are always finite.
    """
    if all_finite(x):
        return x, 0
    bad = ~np.isfinite(x)
    if copy:
        x = x.copy()
    x[bad] = 0
    return x, int(np.count_nonzero(bad))


def sndfile_detail(e: BaseException) -> str:
    """The reason in a soundfile/libsndfile error, without the path it repeats and the final period
    (``Error opening 'x.wav': Format not recognised.`` -> ``Format not recognised``), for a sentence of ours."""
    return str(e).split(": ", 1)[-1].strip().rstrip(".") if str(e) else type(e).__name__
