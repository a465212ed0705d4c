"""Writing an audio file atomically: :class:`AtomicWriter` writes beside the output and renames on commit;
:func:`output_format` chooses the format and subtype."""

from __future__ import annotations

import errno as _errno
import functools as _functools
import os as _os
import tempfile as _tempfile
from pathlib import Path

import numpy as np

from ..errors import AudioFileError
from .common import (FLOAT_SUBTYPES, MAX_CHANNELS, PathLike, _EXT_ALIASES, _F2S, _formats, _oserror_text, _sf,
                     sndfile_detail)


def output_format(path: PathLike, like_format: str | None = None, like_subtype: str | None = None,
                  subtype: str | None = None) -> tuple[str, str]:
    """The soundfile ``(format, subtype)`` to write ``path`` with.

    The format follows the output's extension; the subtype is ``subtype``
    when given, else the input's (``like_subtype``) when that format can hold
    it (MPEG audio only in .mp3), else, for PCM or float input, the deepest of the shallower PCM subtypes
    it can (float to FLAC: 24-bit), else the format's default.
    """
    sf = _sf()
    path = Path(path)
    ext = path.suffix[1:].upper()
    fmt = _EXT_ALIASES.get(ext, ext)
    if fmt not in _formats() or fmt == "RAW":
        raise AudioFileError(
            f"cannot tell the audio format of output {str(path)!r} from its extension {path.suffix!r}; "
            "use .wav, .flac, .ogg or another extension soundfile knows."
        )
    if ext == "OPUS" and subtype is None:
        subtype = "OPUS"
    if subtype is not None:
        subtype = subtype.upper()
        if not sf.check_format(fmt, subtype):
            raise AudioFileError(
                f"format {fmt} cannot store subtype {subtype!r}; choose one of "
                f"{', '.join(sf.available_subtypes(fmt))}."
            )
        return fmt, subtype
    # libsndfile reads MPEG audio inside WAV, and check_format says yes to it, but writes it only as .mp3
    if like_subtype and sf.check_format(fmt, like_subtype) and (fmt == "MP3" or not like_subtype.startswith("MPEG_")):
        return fmt, like_subtype
    if like_subtype in _DEPTHS:
        # a format that cannot hold the input's samples gets the deepest of the next ones it can
        # (float or 32-bit WAV to FLAC: 24-bit, not the format's default 16 bits)
        for deeper in _DEPTHS[_DEPTHS.index(like_subtype) + 1:]:
            if sf.check_format(fmt, deeper):
                return fmt, deeper
    return fmt, sf.default_subtype(fmt)


_DEPTHS = ("DOUBLE", "FLOAT", "PCM_32", "PCM_24", "PCM_16")  # deepest first


def temporary_beside(path: PathLike) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, named ``.<name>.<8 characters>.part``: ``(fd, name)``
    (:func:`tempfile.mkstemp`).  The writer's own and the scratch files of ``rtconv process
    --both-directions`` are made so, and a later run over ``path`` recognises a killed run's by the name."""
    path = Path(path)
    return _tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent if str(path.parent) else ".")


def _unwritable(format: str, subtype: str, sample_rate: int, path: Path) -> str | None:
    """Why ``format`` cannot hold this output as it is, in one sentence, or ``None``.

    libsndfile writes some formats it cannot give back: SD2 keeps its header in a resource fork, a
    second ``._`` file that a rename leaves behind (the output does not open), and XI, WVE and HTK
    store a rate of their own (44100, 8000, 48076 Hz for 48000), so the file would play at the wrong
    speed.  A little silence is written in memory and read back to tell (once per format and rate)."""
    where = f"the output {str(path)!r}"
    if format == "SD2":
        return (f"{where} cannot be written as SD2: libsndfile keeps its header in a separate resource-fork file "
                "that does not travel with it; write .aiff or .wav instead.")
    stored = _stored_rate(format, subtype, sample_rate)
    if stored is not None and abs(stored - sample_rate) > 1e-4 * sample_rate:
        return (f"{format} files cannot store {sample_rate} Hz (they would say {stored} Hz, and {where} would play "
                "at the wrong speed); write it as .wav or .flac.")
    return None


@_functools.lru_cache(maxsize=64)
def _stored_rate(format: str, subtype: str, sample_rate: int) -> int | None:
    """The rate a ``format`` file written at ``sample_rate`` says it has; ``None`` when the probe fails."""
    import io

    sf = _sf()
    buf = io.BytesIO()
    try:
        with sf.SoundFile(buf, "w", samplerate=sample_rate, channels=1, format=format, subtype=subtype) as f:
            f.write(np.zeros(1152, np.float32))  # one MPEG frame: every format gives its header back
        buf.seek(0)
        with sf.SoundFile(buf) as f:
            stored = f.samplerate
    except Exception:  # noqa: BLE001 - not this check's to judge: opening the file itself says what is wrong
        return None
    return stored


class AtomicWriter:
    """Write audio to a temporary file beside ``path``; rename into place on :meth:`commit`.

    Use as a context manager: leaving the block without ``commit()`` (an
    exception, Ctrl-C) deletes the temporary file.
    """

    def __init__(self, path: PathLike, sample_rate: int, channels: int, format: str, subtype: str,
                 tags: dict[str, str] | None = None) -> None:
        sf = _sf()
        self.path = Path(path)
        self.subtype = subtype
        self.clip = subtype not in FLOAT_SUBTYPES
        self.pcm16 = subtype == "PCM_16"
        self.clipped_samples = 0
        self.frames = 0
        folder = self.path.parent if str(self.path.parent) else Path(".")
        self._tmp: str | None = None
        if channels > MAX_CHANNELS:
            raise AudioFileError(
                f"output {str(self.path)!r} would have {channels} channels, more than the {MAX_CHANNELS} "
                "an audio file can hold; split the input into fewer channels first."
            )
        self._f = None
        why = _unwritable(format, subtype, sample_rate, self.path)
        if why:
            raise AudioFileError(why)
        if not folder.exists():
            raise AudioFileError(
                f"output folder {str(folder)!r} does not exist; create it or choose another output path."
            )
        if not folder.is_dir():
            raise AudioFileError(f"output folder {str(folder)!r} is not a folder; choose another output path.")
        try:
            fd, self._tmp = temporary_beside(self.path)
            _os.close(fd)
        except OSError as e:
            if e.errno == _errno.ENAMETOOLONG:  # the output's own name fits; ".<name>.<8>.part" does not
                try:
                    room = _os.pathconf(folder, "PC_NAME_MAX") - len(".") - len(".12345678.part")
                except (OSError, ValueError):
                    room = 255 - 15
                raise AudioFileError(
                    f"cannot write {self.path.name!r}: its name ({len(self.path.name)} characters) is too long "
                    f"for the temporary file written beside it first; name the output {room} characters "
                    "or fewer (-o NAME), or rename the input."
                ) from None
            raise AudioFileError(
                f"cannot write to output folder {str(folder)!r}: {_oserror_text(e)}; "
                "choose a writable folder with -o."
            ) from None
        try:
            self._f = sf.SoundFile(self._tmp, "w", samplerate=sample_rate, channels=channels,
                                   format=format, subtype=subtype)
        except (RuntimeError, OSError) as e:
            self.abort()
            # libsndfile refuses a second channel of XI, HTK, SDS, SVX, WVE as "Format not recognised":
            # the one-channel file _unwritable wrote in memory says whether that was the reason
            if channels > 1 and _stored_rate(format, subtype, sample_rate) is not None:
                raise AudioFileError(
                    f"{format} files hold one channel and the output {str(self.path)!r} has {channels}; "
                    "write it as .wav or .flac, or give a mono input."
                ) from None
            detail = sndfile_detail(e)
            raise AudioFileError(
                f"cannot create {format}/{subtype} output {str(self.path)!r} with {channels} channel(s) "
                f"at {sample_rate} Hz ({detail}); choose another format with a different extension."
            ) from None
        tags = dict(tags or {})
        if format == "MP3" and tags.get("software"):
            # libsndfile writes MP3's ID3 title, artist, album, date and comment, and drops software
            # without an error: the comment carries the mark that lets folder runs skip this file
            tags["comment"] = f"{tags['comment']} [{tags['software']}]" if tags.get("comment") else f"[{tags['software']}]"
        for key, value in tags.items():
            try:
                setattr(self._f, key, value)
            except (RuntimeError, OSError, ValueError):  # a format without that tag: not worth failing for
                pass

    def write(self, y: np.ndarray) -> None:
        """Append float frames ``(frames, channels)``; integer formats are clipped to [-1, 1]."""
        if y.shape[0] == 0:
            return
        if self.clip:
            over = np.abs(y) > 1.0
            if over.any():
                self.clipped_samples += int(over.sum())
                y = np.clip(y, -1.0, 1.0)
        if self.pcm16:  # y is within [-1, 1] here (see above)
            y = np.minimum(np.rint(y * _F2S), 32767).astype(np.int16)
        try:
            self._f.write(y)
        except OSError as e:
            raise AudioFileError(
                f"cannot write output {str(self.path)!r}: {_oserror_text(e)}; nothing was saved "
                "(free some space or choose another folder)."
            ) from None
        except RuntimeError as e:
            detail = sndfile_detail(e)
            raise AudioFileError(f"cannot write output {str(self.path)!r} ({detail}); nothing was saved.") from None
        self.frames += y.shape[0]

    def commit(self) -> Path:
        """Finish the file and move it to its final name."""
        try:
            self._f.close()
            mask = _os.umask(0)
            _os.umask(mask)
            _os.chmod(self._tmp, 0o666 & ~mask)  # mkstemp makes 0600
            _os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise AudioFileError(
                f"cannot finish output {str(self.path)!r}: {_oserror_text(e)}; nothing was saved."
            ) from None
        except RuntimeError as e:
            self.abort()
            raise AudioFileError(f"cannot finish output {str(self.path)!r} ({e}); nothing was saved.") from None
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (idempotent)."""
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # closing a broken file must not mask the real error
                pass
        if self._tmp is not None:
            try:
                _os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    def __enter__(self) -> "AtomicWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self.abort()
