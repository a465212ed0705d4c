"""Audio files in and out, safely: checked readers, atomic writers, output names.

Reading goes through :class:`Reader`, which opens a file with soundfile,
refuses what it cannot trust in one sentence (missing, empty, not audio,
corrupt, absurd sample rate) and yields float32 ``(frames, channels)`` chunks
with NaN/Inf samples replaced by 0 and counted, so memory stays flat for
files of any length.  A file cut short (a recording stopped by a crash) is
read as far as it decodes, and :attr:`Reader.cut_short` is the warning every
command gives for it.

Writing goes through :class:`AtomicWriter`: the audio goes to a hidden
temporary file in the destination folder and is renamed over the final name
only by :meth:`AtomicWriter.commit`; any failure or interruption deletes the
temporary file, so a half-written output never appears under the real name.

:func:`zero_nonfinite` is the one rule for NaN and Inf in input audio (files,
arrays, corpus items, live blocks): such a sample becomes 0 and is counted.
"""

from __future__ import annotations

import contextlib as _contextlib
import dataclasses as _dataclasses
import errno as _errno
import functools as _functools
import math as _math
import os as _os
import shlex as _shlex
import sys as _sys
import tempfile as _tempfile
import threading as _threading
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from . import cutshort
from .errors import AudioFileError

__all__ = [
    "all_finite",
    "zero_nonfinite",
    "temporary_beside",
    "Reader",
    "AtomicWriter",
    "output_format",
    "default_output_path",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "AUDIO_EXTENSIONS",
    "written_by_rtconv",
    "named_as_output",
    "keeps_mark",
    "quiet_decoders",
]

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


#: Lower-case extensions soundfile reads (the module's ``__getattr__`` computes it on first use); declared
#: here so that ``__all__`` names a known attribute (ruff F822) without asking libsndfile at import.
AUDIO_EXTENSIONS: frozenset[str]


def __getattr__(name: str):
    # AUDIO_EXTENSIONS (lower-case extensions soundfile reads) asks libsndfile, on first use
    # only: `rtconv process --help` imports this module for its chunk sizes.
    if name == "AUDIO_EXTENSIONS":
        return _audio_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 32 or b in b"\t\r\n" for b in head)


def _probe(path: Path) -> None:
    with open(path, "rb") as f:
        f.read(1)


def _read_error(path: Path) -> OSError | None:
    """The error the OS gives reading every byte of ``path``, or None: libsndfile says "System error" of a
    disk error, or takes it for the end of the file, and rtconv would blame the file."""
    try:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(1 << 20)
            while f.readinto(buf):
                pass
    except OSError as e:
        return e
    return None


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


class Reader:
    """A checked, chunked reader of one audio file.

    Parameters
    ----------
    path : str or path-like
        Any file soundfile (libsndfile) reads: WAV (16/24/32-bit int,
        float), FLAC, OGG/Vorbis, AIFF, MP3...
    chunk : int
        Frames per chunk yielded by :meth:`chunks`.

    Attributes
    ----------
    frames, sample_rate, channels : int
        From the file header (``frames``: what the file holds; of a FLAC cut short, what decodes).
    missing_frames : int
        Frames the header announces beyond the end of the file (a file cut short), 0 for a whole one.
    cut_short : str or None
        The warning for a file cut short, a clause without the file's name; ``None`` for a whole one.
        Told for WAV, W64, RF64, AIFF, AU and SVX of any subtype (their header gives the data's size),
        FLAC and MP3 with a Xing/Info frame (their header gives the frames), Ogg Vorbis/Opus (the page
        that ends the stream is missing; how much audio went with it is not known) and an MP3 without a
        Xing/Info frame that ends inside a frame (how much is missing is not known either; it is counted
        from its frames and read to the last whole one, see :meth:`_past_guess`).  Not told where the
        header says nothing libsndfile checks (NIST, IRCAM, VOC, PAF, MAT, AVR, PVF, XI, SD2, MPC2K,
        WVE) or for an MP3 without a Xing/Info frame cut between two frames; a DWVW file cut short decodes
        not one frame and is refused as corrupt, and an MP3 that stops decoding where its frames go on is
        refused as damaged (:meth:`_mp3_damage`).
    format, subtype : str
        soundfile's names (``"WAV"``, ``"PCM_24"``...).
    nonfinite_samples : int
        NaN/Inf samples seen so far (replaced by 0).
    """

    def __init__(self, path: PathLike, chunk: int = READ_CHUNK) -> None:
        sf = _sf()
        self.path = Path(path)
        name = str(self.path)
        if not self.path.exists():
            raise AudioFileError(f"input file {name!r} does not exist; check the path.")
        if self.path.is_dir():
            raise AudioFileError(f"input {name!r} is a folder, not an audio file.")
        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise AudioFileError(f"cannot read input file {name!r}: {_oserror_text(e)}.") from None
        if size == 0:
            raise AudioFileError(f"input file {name!r} is empty (0 bytes); there is no audio to process.")
        try:  # libsndfile reports an unreadable file as "System error": ask the OS first
            _probe(self.path)
        except OSError as e:
            raise AudioFileError(f"cannot read input file {name!r}: {_oserror_text(e)}; check its permissions.") from None
        # zero bytes shown after the file's end (_past_guess), bytes hidden (_past_header), its file, the view
        self._extra, self._hide, self._raw, self._padded = 0, None, None, None
        self._joined = None  # (frames the length header announces, frames all the frames hold): _past_header
        try:
            with quiet_decoders():  # libmpg123 finds what is wrong with an MP3 already when it opens it
                self._f = sf.SoundFile(name, "r")
        except OSError as e:  # includes soundfile.LibsndfileError in soundfile >= 0.13
            raise self._unreadable(e) from None
        except RuntimeError as e:
            raise self._unreadable(e) from None
        f = self._f
        self.frames, self.sample_rate, self.channels = f.frames, f.samplerate, f.channels
        self.format, self.subtype = f.format, f.subtype
        self.missing_frames = cutshort.missing_frames(f, name)
        self._end = None  # reads stop here: where a file cut short stops decoding
        self.tags = {}
        for key in TAGS:
            try:
                value = getattr(f, key)
            except (RuntimeError, OSError, AttributeError):
                continue
            if value:
                self.tags[key] = value
        self.chunk = int(chunk)
        self.nonfinite_samples = 0
        self.frames_read = 0
        self._pcm16 = self.subtype == "PCM_16"
        self._quiet = self.format == "MP3"  # the one decoder that prints (quiet_decoders)
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            self.close()
            raise AudioFileError(
                f"input file {name!r} claims a sample rate of {self.sample_rate} Hz, outside the "
                f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz rtconv accepts; the header is probably wrong, "
                "fix it with sox or your editor."
            )
        self._mpeg = None  # what the MP3's frame headers tell (_past_guess, _mp3_damage)
        if self.format == "MP3":
            self._past_guess()
        # cut short by an unknown amount: an Ogg without the page that ends its stream, an MP3 without a length
        # header that ends inside a frame
        self._unfinished = ((self.format == "OGG" and cutshort.ogg_unfinished(name))
                            or (self._mpeg is not None and not self._mpeg.length_header and self._mpeg.cut))
        if self.frames <= 0:
            self.close()
            if self.missing_frames:
                raise self._none_decodes()
            if self._unfinished:
                raise AudioFileError(f"input file {name!r} is cut short before the end of its first block of audio; "
                                     "there is nothing to process.")
            raise AudioFileError(f"input file {name!r} holds no audio (0 frames); there is nothing to process.")
        if self.format in cutshort.COUNTED_FORMATS:
            with quiet_decoders(self._quiet):
                held = self._decodable_frames()
            self._raise_read_error(probe=held < self.frames)  # a disk error reads as frames that do not decode
            if self.format == "MP3":
                self._mp3_damage(held)
            if held < self.frames:
                self.missing_frames, self.frames, self._end = self.frames - held, held, held
            if not held:
                self.close()
                raise self._none_decodes()

    def _past_guess(self) -> None:
        """Read an MP3 without a length header to its last frame, not to libsndfile's guess of its length.

        Without a Xing/Info frame libmpg123 guesses an MP3's length from the file's size and the first
        frame's bitrate: right at a constant bitrate, and at a variable one short (31507 of 147456 frames
        where the first 0.1 s are at 320 kbit/s and the rest at 56) or long (810020 the other way round,
        and the file looked cut short), and reads stop at the guess with no error.  The
        frames' own headers tell the length (:func:`cutshort.mpeg_frames`).  libmpg123 decodes on past
        its guess when the file is shown to it with zeros after its end, enough of them for the guess to
        cover every frame; reads then stop at the last frame.  Where even so it would not reach the end,
        the file is refused rather than read in part.
        """
        name = str(self.path)
        self._mpeg = scan = self._mpeg_frames()
        if scan is not None and scan.length_header:
            scan = self._past_header(scan)  # None, or MP3s joined end to end, now without their length header
        if scan is None or scan.length_header or not scan.samples:
            return
        held = scan.samples
        if held == self.frames:
            return
        if held > self.frames:
            # the guess grows with the size: enough zeros for it to reach `held`, and a margin
            size = self.path.stat().st_size - (self._hide[1] - self._hide[0] if self._hide else 0)
            self._extra = size * held // max(1, self.frames) - size + (1 << 16)
            self._f.close()
            try:
                with quiet_decoders(self._quiet):
                    self._f = self._open()
                padded = self._f.frames
            except (RuntimeError, OSError):
                padded = 0
            self._raise_read_error()
            if padded < held:
                self.close()
                sr, flac = self.sample_rate, _shlex.quote(str(self.path.with_suffix(".flac")))
                raise AudioFileError(
                    f"input file {name!r} is a variable-bitrate MP3 without a length header (Xing/Info): "
                    f"libsndfile would read {self.frames / sr:.2f} s of its {held / sr:.2f} s; convert it first, "
                    f"e.g. `ffmpeg -i {_shlex.quote(name)} {flac}`, and process that."
                )
        self.frames = self._end = held

    def _past_header(self, scan):  # -> cutshort.MpegFrames | None
        """Read MP3s joined end to end (``cat a.mp3 b.mp3``) whole, not only as far as the first one's header says.

        The joined file keeps the first one's Xing/Info header, libmpg123 stops where it says, and all after
        the first was lost without a word.  Its frames are counted only where the file is more than 8 KiB
        longer than the stream the header announces (room for tags after it); where they go on past it, the
        file is shown to libsndfile without that header, as an MP3 without one (:meth:`_past_guess` reads it to
        its last frame), and the frames found are returned.  The first part's encoder delay is then not
        trimmed, as the later parts' never are: the joins keep a few tens of ms of silence, as in a player.
        """
        if not scan.stream_bytes or self.path.stat().st_size - scan.stream_bytes <= 8192:
            return None
        whole = self._mpeg_frames(past_header=True)
        if whole is None or whole.samples <= self.frames + 3 * _MP3_FRAME:  # the encoder's delay, padding
            return None
        announced, self._hide = self.frames, whole.header
        self._f.close()
        try:
            with quiet_decoders(self._quiet):
                self._f = self._open()
        except (RuntimeError, OSError) as e:
            raise self._unreadable(e) from None
        self._raise_read_error()
        self.frames, self._joined = self._f.frames, (announced, whole.samples)  # libsndfile's guess, from the size
        self._mpeg = _dataclasses.replace(whole, header=None)  # hidden: libsndfile reads it as it reads none
        return self._mpeg

    @property
    def warnings(self) -> list[str]:
        """What every command says of this file beside its output: :attr:`cut_short` and :attr:`joined`, where
        given (clauses without the file's name)."""
        return [said for said in (self.cut_short, self.joined) if said]

    @property
    def joined(self) -> str | None:
        """The note for MP3s joined end to end, read whole (:meth:`_past_header`); ``None`` for any other file."""
        if self._joined is None:
            return None
        announced, held = (n / self.sample_rate for n in self._joined)
        return (f"the file holds MP3s joined end to end: its length header (Xing/Info) announces {announced:.2f} s "
                f"and its frames hold {held:.2f} s; all of it was read, as one stream")

    def _mp3_damage(self, held: int) -> None:
        """Refuse an MP3 that stops decoding at ``held`` frames where its frames, or more than a few KiB of bytes
        that are not audio, go on: damaged there (or joined to another stream), not cut short.

        libmpg123 skips up to 1 KiB of bytes that are not a frame, and past more it gives nothing, without an
        error; nor does it go on where frames of another sample rate follow.  Such a file read as cut short lost
        all its audio after the damage under a warning that blamed a crash, or, without a length header, lost
        it without a word.  Its frames tell which it is (:func:`cutshort.mpeg_frames`, read past the length
        header where decoding stopped short of it): a break in them where decoding stopped (within two frames).
        """
        scan = self._mpeg
        if scan is None or scan.length_header:
            if held >= self.frames:  # a length header, and all of it decodes
                return
            scan = self._mpeg_frames(past_header=True)
        margin = 2 * _MP3_FRAME
        if scan is None or scan.broken_at is None or not scan.broken_at - margin <= held <= scan.broken_at + margin:
            return
        frames_after, tail = scan.samples > scan.broken_at + margin, scan.skipped > 4096
        if not (frames_after or tail):  # a little junk after the last frame
            return
        self.close()
        name, flac = str(self.path), _shlex.quote(str(self.path.with_suffix(".flac")))
        fix = (f"nothing was written: convert it with a decoder that skips damaged frames, e.g. "
               f"`ffmpeg -i {_shlex.quote(name)} {flac}`, and process that.")
        if frames_after:
            raise AudioFileError(
                f"input file {name!r} is damaged at about {held / self.sample_rate:.2f} s (frame {held} of about "
                f"{scan.samples}) and does not decode from there; {fix}"
            )
        raise AudioFileError(
            f"input file {name!r} stops decoding at about {held / self.sample_rate:.2f} s (frame {held}), where "
            f"{scan.skipped // 1024} KiB that are not audio of its kind follow (damage, or another MP3 joined on at "
            f"another sample rate); {fix}"
        )

    def _open(self):  # -> soundfile.SoundFile
        """A new libsndfile handle on the file (with :attr:`_extra` zero bytes after its end, see _past_guess, and
        without the bytes :attr:`_hide` names, see _past_header)."""
        sf = _sf()
        if not self._extra and not self._hide:
            return sf.SoundFile(str(self.path))
        if self._raw is not None:
            self._raw.close()
        self._raw = open(self.path, "rb")  # noqa: SIM115 - open as long as the reader is; close() closes it
        self._padded = cutshort._Padded(self._raw, _os.fstat(self._raw.fileno()).st_size, self._extra, self._hide)
        return sf.SoundFile(self._padded)

    def _raise_read_error(self, probe: bool = False) -> None:
        """Refuse the file in one sentence where reading it failed on the disk: through :meth:`_open`'s view,
        which keeps the error, or (``probe``: where libsndfile failed or stopped early) as the OS reads the
        file.  libsndfile took the failure for the end of the file or for damage, and what came before it is
        not the file's audio."""
        e = None if self._padded is None else self._padded.error
        if e is None and probe:
            e = _read_error(self.path)
        if e is None:
            return
        raise self._cannot_read(e)

    def _cannot_read(self, e: OSError) -> AudioFileError:
        """The file closed, and the sentence for a disk error ``e`` met after :attr:`frames_read` frames."""
        self.close()
        return _disk_error(self.path, e, self.frames_read, self.sample_rate)

    def _mpeg_frames(self, past_header: bool = False):  # -> cutshort.MpegFrames | None
        """:func:`cutshort.mpeg_frames` of the file, a disk error met in the scan refused in one sentence (the scan
        reads every frame header, where libsndfile may stop at its guess of the length and never meet it)."""
        try:
            return cutshort.mpeg_frames(str(self.path), past_header=past_header)
        except OSError as e:
            raise self._cannot_read(e) from None

    def _none_decodes(self) -> AudioFileError:
        return AudioFileError(f"input file {str(self.path)!r} is cut short: its header announces {self._announced} "
                              "and not one frame of it can be decoded; there is nothing to process.")

    def _decodable_frames(self) -> int:
        """How many of the frames the header announces libsndfile decodes, the file left at its start.

        All of them for a whole file (one seek and a one-frame read).  A file cut short decodes up to some
        frame and not from there on; that frame is found by bisection (~27 probes for an hour at 48 kHz).
        A failed read leaves libsndfile's FLAC decoder unable to seek: the file is opened again after one.
        """
        def decodes(k: int) -> bool:
            try:
                self._f.seek(k)
                return self._f.read(1, dtype="float32").shape[0] == 1
            except (RuntimeError, OSError):
                try:
                    self._reopen()
                except AudioFileError:  # a disk error, said as such
                    raise
                except (RuntimeError, OSError) as e:
                    raise self._unreadable(e) from None
                return False

        if decodes(self.frames - 1):
            good = self.frames - 1
        else:
            good, bad = -1, self.frames - 1
            while bad - good > 1:
                mid = (good + bad) // 2
                if decodes(mid):
                    good = mid
                else:
                    bad = mid
        if good >= 0:  # else the file is refused
            self._f.seek(0)
        return good + 1

    def _damage_at(self, start: int, count: int, step: int = 1024) -> int | None:
        """Where decoding fails in the ``count`` frames from ``start`` (a read of all of them failed), to
        ``step`` frames: libsndfile throws a failed read away whole, so "after 0 frames" was all a file damaged
        0.5 s in could be told of. Read again from ``start`` in pieces; ``None`` where that cannot be done."""
        try:
            self._reopen()
            self._f.seek(start)
        except (RuntimeError, OSError):
            return None
        done = 0
        try:
            while done < count:
                got = self._f.read(min(step, count - done), dtype="float32").shape[0]
                if got == 0:
                    return None
                done += got
        except (RuntimeError, OSError):
            return start + done
        return None  # it decoded this time: say what libsndfile said

    def _reopen(self) -> None:
        """Open the file again: after a failed read, libsndfile's FLAC decoder can no longer seek.  Not where the
        read failed on the disk (the new view would forget it): that is refused (:meth:`_raise_read_error`)."""
        self._raise_read_error()
        self._f.close()
        self._f = self._open()

    @property
    def _announced(self) -> str:
        n = self.frames + self.missing_frames
        return f"{n / self.sample_rate:.2f} s ({n} frames)"

    @property
    def cut_short(self) -> str | None:
        """The warning every command gives for a file cut short (see the class's attributes)."""
        held, why = self.frames, "what it holds was processed (a recording stopped by a crash, or a copy not finished?)"
        if self.missing_frames:
            return (f"the file is cut short: its header announces {self._announced} and it holds "
                    f"{held / self.sample_rate:.2f} s ({held}); {why}")
        if self._unfinished:
            return (f"the file is cut short: it holds {held / self.sample_rate:.2f} s ({held} frames) and does not "
                    f"say how much more it had; {why}")
        return None

    def _unreadable(self, e: Exception) -> AudioFileError:
        name = str(self.path)
        detail = sndfile_detail(e)
        disk = _read_error(self.path)
        if disk is not None:
            return _disk_error(self.path, disk)
        if cutshort.starts_with(self.path, b"OggS") and cutshort.ogg_unfinished(name):  # libsndfile: "file is malformed"
            return AudioFileError(f"input file {name!r} is cut short before the end of its first block of audio; "
                                  "there is nothing to process.")
        if _looks_like_text(self.path):
            return AudioFileError(
                f"input file {name!r} is a text file, not audio ({detail}); pass a WAV, FLAC, OGG or other sound file."
            )
        return AudioFileError(
            f"input file {name!r} is not audio that soundfile can read, or it is corrupt ({detail}); "
            "check that it plays in another program."
        )

    def chunks(self) -> Iterator[np.ndarray]:
        """Yield float32 ``(frames, channels)`` chunks with non-finite samples zeroed."""
        name = str(self.path)
        while True:
            # a file cut short is read up to where it decodes, never into the block that fails: the failure
            # throws the whole read away
            n = self.chunk if self._end is None else min(self.chunk, self._end - self.frames_read)
            if n <= 0:
                break
            try:
                with quiet_decoders(self._quiet):
                    if self._pcm16:  # see _S2F
                        x = self._f.read(n, dtype="int16", always_2d=True).astype(np.float32)
                        x *= _S2F
                    else:
                        x = self._f.read(n, dtype="float32", always_2d=True)
            except (RuntimeError, OSError) as e:
                detail = sndfile_detail(e)
                self._raise_read_error(probe=True)  # a disk error, not damage: before the search for where damage is
                with quiet_decoders(self._quiet):
                    at = self._damage_at(self.frames_read, n)
                if at is None:
                    raise AudioFileError(
                        f"input file {name!r} is corrupt after {self.frames_read} frames ({detail}); "
                        "nothing was written."
                    ) from None
                fix = ("decode it with `flac -d -F` (which skips the damaged frames) and process that"
                       if self.format == "FLAC" else "repair or re-encode it, or cut it before that point")
                raise AudioFileError(
                    f"input file {name!r} is damaged at about {at / self.sample_rate:.2f} s (frame {at} of "
                    f"{self.frames}) and does not decode from there ({detail}); nothing was written: {fix}."
                ) from None
            self._raise_read_error(probe=x.shape[0] < n and self.frames_read + x.shape[0] < self.frames)
            if x.shape[0] == 0:
                break
            if not self._pcm16:  # integers read as int16 cannot be NaN
                x, bad = zero_nonfinite(x, copy=False)
                self.nonfinite_samples += bad
            self.frames_read += x.shape[0]
            yield x

    def close(self) -> None:
        self._f.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sndfile_detail(e: BaseException) -> str:
    """The reason in a soundfile/libsndfile error, without the path it repeats and the final period
    (``Error opening 'x.wav': Format not recognised.`` -> ``Format not recognised``), for a sentence of ours."""
    return str(e).split(": ", 1)[-1].strip().rstrip(".") if str(e) else type(e).__name__


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


@_functools.lru_cache(maxsize=None)
def _output_words() -> frozenset[str]:
    """The words :func:`default_output_path` puts after an input's stem (``x-denoised.wav``): its own and the
    trainer's task names (``rtconv.train.choices.TASKS``, which imports nothing)."""
    from .train.choices import TASKS

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
