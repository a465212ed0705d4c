"""Output names: what rtconv calls an output (``x-denoised.wav``), and how a folder's second run tells its own
outputs from new inputs (their mark, or their name where the format keeps no mark)."""

from __future__ import annotations

import functools as _functools
from pathlib import Path

import numpy as np

from .common import SOFTWARE_TAG, PathLike, _audio_extensions, _sf, quiet_decoders


#: The word an output's name takes from its model's task (other tasks give their own name)
_TASK_WORDS = {"denoise": "denoised", "filter": "filtered", None: "rtconv", "unknown": "rtconv"}


def default_output_path(input_path: PathLike, task: str | None = None, folder: PathLike | None = None) -> Path:
    """Output name derived from the input: ``x.wav`` -> ``x-denoised.wav`` (denoise) or ``x-filtered.wav``.

    Other tasks give ``x-<task>.wav``; ``folder`` replaces the input's folder.
    Formats soundfile cannot write (none today, but MP3 support varies) fall
    back to ``.wav``.
    """
    p = Path(input_path)
    word = _TASK_WORDS.get(task, task)
    word = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(word))
    ext = p.suffix if p.suffix[1:].lower() in _audio_extensions() else ".wav"
    return Path(folder if folder is not None else p.parent) / f"{p.stem}-{word}{ext}"


@_functools.lru_cache(maxsize=None)
def _output_words() -> frozenset[str]:
    """The words :func:`default_output_path` puts after an input's stem (``x-denoised.wav``): its own and the
    trainer's task names (``rtconv.train.choices.TASKS``, which imports nothing)."""
    from ..train.choices import TASKS

    return frozenset({*_TASK_WORDS.values(), *TASKS})


@_functools.lru_cache(maxsize=None)
def keeps_mark(format: str) -> bool:
    """Whether files of ``format`` (soundfile's name) keep rtconv's mark (``software`` tag, or MP3's comment).

    AU, W64, VOC, IRCAM, NIST, PAF, PVF and others hold no text that libsndfile writes: asked once
    per format by writing a little silence in memory and reading its tags back."""
    import io

    if format == "SD2":  # no tags, and writing one (even in memory) leaves a '._' resource fork in the folder
        return False
    sf = _sf()
    buf = io.BytesIO()
    try:
        f = sf.SoundFile(buf, "w", 8000, 1, format=format)
    except Exception:  # a format that cannot be probed so: its tag alone decides, as before
        return True
    with f:
        try:
            f.software = f.comment = SOFTWARE_TAG
        except Exception:  # "File type does not support string data"
            return False
        f.write(np.zeros(64, np.float32))
    buf.seek(0)
    try:
        with sf.SoundFile(buf) as f:
            return bool(f.software or f.comment)
    except Exception:
        return True


def named_as_output(path: PathLike, names: "set[str]") -> bool:
    """Whether ``path`` is named as rtconv names an output (``x-denoised.au``) beside its input ``x.*`` (one of
    ``names``, the file names in its folder) and is of a format that cannot keep rtconv's mark.

    What tells a folder's second run its own outputs from new inputs where no tag can (see
    :func:`written_by_rtconv`); a file of a format with tags is judged by its tag alone.
    """
    p = Path(path)
    stem, dash, word = p.stem.rpartition("-")
    if not dash or not stem or word not in _output_words():
        return False
    if not any(Path(n).stem == stem and n != p.name and Path(n).suffix[1:].lower() in _audio_extensions()
               for n in names):
        return False
    try:
        with quiet_decoders():
            fmt = _sf().info(str(p)).format
    except Exception:  # unreadable files are reported when processed, not here
        return False
    return not keeps_mark(fmt)


def written_by_rtconv(path: PathLike) -> bool:
    """Whether ``path`` is an audio file whose ``software`` tag (MP3: comment) says rtconv wrote it."""
    try:
        with quiet_decoders(), _sf().SoundFile(str(path)) as f:
            return (f.software or "").startswith(SOFTWARE_TAG + " ") or f"[{SOFTWARE_TAG} " in (f.comment or "")
    except Exception:  # unreadable files are reported when processed, not here
        return False
