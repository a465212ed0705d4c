"""Reading an audio file safely: :class:`Reader` refuses what it cannot trust in one sentence and yields
float32 chunks, a file cut short read as far as it decodes."""

from __future__ import annotations

import dataclasses as _dataclasses
import os as _os
import shlex as _shlex
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import cutshort
from ..errors import AudioFileError
from .common import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, PathLike, READ_CHUNK, TAGS, _MP3_FRAME, _S2F,
                     _disk_error, _oserror_text, _sf, quiet_decoders, sndfile_detail, zero_nonfinite)


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
