"""Where a file's output goes and how it is kept whole: the output's name, full disks said in one
sentence, scratch files and the temporaries a killed run left behind."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import stat
import time
from pathlib import Path

from ..audio import AtomicWriter, PathLike, default_output_path, sndfile_detail, temporary_beside
from ..errors import AudioFileError
from ..models import Model


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
