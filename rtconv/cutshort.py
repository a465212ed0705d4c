"""How much of an audio file cut short libsndfile can tell, for :class:`rtconv.audio.Reader`.

A recording stopped by a crash or a copy not finished keeps a header that announces more than the file
holds.  WAV-family headers give the data's size in bytes (libsndfile logs the difference), FLAC and MP3
(with a Xing/Info frame) give the frames, and Ogg gives nothing but the flag of the page that ends the
stream; :class:`~rtconv.audio.Reader` reads what decodes and says how much is missing.  An MP3 without
a Xing/Info frame says nothing of its length: its frames are counted (:func:`mpeg_frames`), which
also tells an MP3 cut short from one damaged in the middle.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path


def starts_with(path: Path, magic: bytes) -> bool:
    """Whether the file at ``path`` begins with ``magic`` (False where it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


#: libsndfile's log line for a chunk whose header says more bytes than the file has ("data : 288000 (should be
#: 143978)"; RIFF, FORM, SSND, riff, "Riff size", "Data Size" are the same bytes seen from the container)
SHORT_CHUNK = re.compile(r"^\s*[A-Za-z][A-Za-z ]*?\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)


class _Padded(io.RawIOBase):
    """A file read as if ``extra`` zero bytes followed its end (a file cut short, made as long as its header says),
    and, with ``hide=(a, b)``, as if its bytes ``a`` to ``b`` were not there (a length header that would stop reads)."""

    def __init__(self, raw, size: int, extra: int, hide: tuple[int, int] | None = None) -> None:
        self._hide = hide or (size, size)
        gap = self._hide[1] - self._hide[0]
        self._raw, self._size, self._end, self._pos = raw, size - gap, size - gap + extra, 0
        #: The first OSError reading the file raised (a disk error, a network share gone), else None.  It is
        #: kept, not raised: libsndfile calls :meth:`readinto` through a cffi callback, where an exception
        #: prints a traceback and reads as 0 bytes, the end of the file; the reader checks this after each read.
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, offset + (0, self._pos, self._end)[whence])
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:
        if self.error is not None:
            return 0
        n = max(0, min(len(b), self._end - self._pos))
        view, got = memoryview(b), 0
        a, z = self._hide
        try:
            while got < n and self._pos + got < self._size:  # the file's bytes, in at most two runs around the hidden ones
                at = self._pos + got
                run = min(n - got, self._size - at, (a - at) if at < a else n)
                self._raw.seek(at if at < a else at + z - a)
                k = self._raw.readinto(view[got : got + run]) or 0
                got += k
                if k < run:
                    break
        except OSError as e:
            self.error = e
            return 0
        b[got:n] = bytes(n - got)
        self._pos += n
        return n


def missing_frames(f, name: str) -> int:
    """Frames a file's header announces beyond what the file holds (0: whole, or not known).

    libsndfile reads a file cut short (a recording stopped by a crash, an unfinished copy) up to its end
    and says so only in its log, in bytes; sizes of 0 or 2**32 - 1 are the "unknown length" of streamed
    WAVs, not a promise.  The bytes become frames as libsndfile itself counts them, PCM or not (ADPCM's
    blocks, GSM's frames, G.72x's bits): the header is opened again with the missing bytes as zeros
    after it, and only the header is read.
    """
    try:
        log = f.extra_info
    except (RuntimeError, OSError, AttributeError):
        return 0
    extra = max((said - held for said, held in ((int(a), int(b)) for a, b in SHORT_CHUNK.findall(log))
                 if 0 < held < said < 0xFFFFFF00), default=0)
    if not extra:
        return 0
    import soundfile  # imported by the Reader that calls this already

    try:
        with open(name, "rb") as raw:
            padded = _Padded(raw, os.fstat(raw.fileno()).st_size, extra)
            with soundfile.SoundFile(padded) as whole:
                return 0 if padded.error else max(0, whole.frames - f.frames)
    except Exception:  # noqa: BLE001 - a header libsndfile read once and not twice: say nothing rather than guess
        return 0


#: Formats whose frame count libsndfile takes from what the encoder wrote first (FLAC's STREAMINFO, MP3's
#: Xing/Info frame): a file cut short still announces all of it, and decoding fails (FLAC) or gives nothing
#: (MP3) where the file stops (:meth:`rtconv.audio.Reader._decodable_frames`).
COUNTED_FORMATS = {"FLAC", "MP3"}


def ogg_unfinished(name: str) -> bool:
    """Whether an Ogg file lacks the page that ends its stream (its last whole page has no end-of-stream flag).

    Ogg keeps no total length: libsndfile counts a file cut short up to its last whole page, and only
    the missing last page tells.  A page is at most 65307 bytes, so the last 128 KiB hold the last whole one.
    """
    try:
        with open(name, "rb") as g:
            size = g.seek(0, os.SEEK_END)
            start = max(0, size - (1 << 17))
            g.seek(start)
            tail = g.read()
    except OSError:
        return False
    last = None  # header type of the last whole page
    at = tail.find(b"OggS")
    while 0 <= at and at + 27 <= len(tail):
        segments = tail[at + 26]
        end = at + 27 + segments + sum(tail[at + 27 : at + 27 + segments])
        if tail[at + 4] == 0 and end <= len(tail):  # version 0: a page, not "OggS" inside audio data
            last = tail[at + 5]
        at = tail.find(b"OggS", at + 1)
    return last is not None and not last & 0x04


#: Bitrates (kbit/s) of MPEG audio bitrate indexes 1..14, by (MPEG-1?, layer); 0 is free format, 15 invalid
_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
#: Sample rates (Hz) by the header's version bits: MPEG-1, MPEG-2, MPEG-2.5 (1 is reserved)
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
#: What may follow the last frame of a whole MP3: ID3v1, APEv2 and Lyrics3 tags
_TRAILERS = (b"TAG", b"APETAGEX", b"LYRICS")
#: The tags of a length header frame (a Xing/Info tag follows the side information, VBRI's is at byte 36)
_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")


def _trailer_at(data, at: int) -> bool:
    """Whether a trailing tag (:data:`_TRAILERS`) begins at byte ``at``."""
    return any(data[at : at + 8].startswith(t) for t in _TRAILERS)


def _mpeg_frame(header: bytes) -> tuple[tuple[int, int, int], int, int] | None:
    """``((version, layer, rate), bytes, samples)`` of the MPEG audio frame a 4-byte ``header`` begins; ``None``
    where it is not one (or is free format, whose length only the next frame's position tells)."""
    h = int.from_bytes(header, "big")
    version, layer, index, rate = (h >> 19) & 3, 4 - ((h >> 17) & 3), (h >> 12) & 15, (h >> 10) & 3
    if h >> 21 != 0x7FF or version == 1 or layer == 4 or index in (0, 15) or rate == 3:
        return None
    mpeg1, hz, pad = version == 3, _MPEG_RATES[version][rate], (h >> 9) & 1
    bps = 1000 * _KBPS[mpeg1, layer][index - 1]
    if layer == 1:
        return (version, layer, hz), (12 * bps // hz + pad) * 4, 384
    per_frame = 1152 if mpeg1 or layer == 2 else 576
    return (version, layer, hz), per_frame // 8 * bps // hz + pad, per_frame


def _xing_bytes(frame: bytes) -> int | None:
    """The stream's length in bytes a Xing/Info frame gives (its flag 2), None where it gives none."""
    tag = max(frame.find(b"Xing"), frame.find(b"Info"))
    if tag < 0 or len(frame) < tag + 8:
        return None
    flags = int.from_bytes(frame[tag + 4 : tag + 8], "big")
    at = tag + 8 + 4 * (flags & 1)  # after the frame count, where there is one
    return int.from_bytes(frame[at : at + 4], "big") if flags & 2 and len(frame) >= at + 4 else None


def _id3_size(head: bytes) -> int:
    """The bytes of the ID3v2 tag a 10-byte ``head`` begins (its header and footer included), 0 where it begins none."""
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    return 10 + sum((b & 0x7F) << s for b, s in zip(head[6:10], (21, 14, 7, 0), strict=False)) + 10 * bool(head[5] & 0x10)


@dataclass(frozen=True)
class MpegFrames:
    """What an MPEG audio file's frame headers tell (:func:`mpeg_frames`)."""

    #: Samples per channel in the frames found, those after a damaged stretch included (a Xing/Info/VBRI
    #: frame holds none)
    samples: int
    #: Where the first frame lies in the file when it is a Xing/Info/VBRI length header (libsndfile takes
    #: the length from it), else None
    header: tuple[int, int] | None
    #: Samples before the first place the frames stop following one another (bytes that are not a frame:
    #: damage, or junk libmpg123 may or may not skip); None where they run to the end or to a trailing tag
    broken_at: int | None
    #: The file ends inside a frame (cut short there; libmpg123 gives nothing of that frame)
    cut: bool
    #: Bytes after the first frame that are neither frames of the first one's kind nor a trailing tag (junk
    #: skipped, and all that follows the last frame where none are found again: damage, or another MPEG
    #: stream joined on at another sample rate)
    skipped: int = 0
    #: Bytes of the stream a Xing/Info length header announces (its own frame included), where it says
    stream_bytes: int | None = None

    @property
    def length_header(self) -> bool:
        return self.header is not None


#: Frames that must follow one another for a stretch of bytes after a break to count as frames again
_RESYNC_RUN = 4


def _run_at(data, at: int, kind, size: int) -> bool:
    """Whether :data:`_RESYNC_RUN` whole frames of ``kind`` follow one another from byte ``at``, or fewer that end
    exactly at the file's end or at a trailing tag (not where the last one would run past the end: a byte
    pattern in junk that looks like a header is not a frame cut short)."""
    for _ in range(_RESYNC_RUN):
        if at == size or (at < size and _trailer_at(data, at)):
            return True
        frame = _mpeg_frame(data[at : at + 4]) if at + 4 <= size else None
        if frame is None or frame[0] != kind or at + frame[1] > size:
            return False
        at += frame[1]
    return True


class _FileBytes:
    """A file's bytes by offset, for :func:`mpeg_frames`'s scan: slices and ``find``, read as needed through a window
    of ``block`` bytes of the binary file ``f``.  The scan looked through ``mmap``, where a disk error is a SIGBUS
    that kills the process (no sentence, no traceback); here it is an OSError."""

    def __init__(self, f, size: int, block: int = 1 << 20):
        self._f, self._size, self._block = f, size, block
        self._at, self._buf = 0, b""

    def _read(self, start: int, n: int) -> bytes:
        self._f.seek(start)
        return self._f.read(n)

    def _window(self, start: int) -> None:
        self._at, self._buf = start, self._read(start, self._block)

    def __getitem__(self, s: slice) -> bytes:
        start, stop = s.start or 0, self._size if s.stop is None else min(s.stop, self._size)
        if stop <= start:
            return b""
        if not (self._at <= start and stop <= self._at + len(self._buf)):
            if stop - start > self._block:
                return self._read(start, stop - start)
            self._window(start)
        return self._buf[start - self._at : stop - self._at]

    def find(self, sub: bytes, start: int) -> int:
        """The offset of the first ``sub`` at or after ``start``, -1 where there is none."""
        if not (self._at <= start and start + len(sub) <= self._at + len(self._buf)):
            self._window(start)
        while self._buf:
            i = self._buf.find(sub, max(0, start - self._at))
            if i >= 0:
                return self._at + i
            end = self._at + len(self._buf)
            if end >= self._size:
                break
            self._window(end - len(sub) + 1)  # a match may straddle the windows
        return -1


def mpeg_frames(name: str, past_header: bool = False) -> MpegFrames | None:
    """Count an MPEG audio file's frames from their 4-byte headers, and say where they stop following one another.

    libsndfile (through libmpg123) takes an MP3's length from its Xing/Info (or VBRI) frame; without one
    it guesses from the file's size and the first frame's bitrate, which is the length only at a constant
    bitrate, and reads stop at the guess.  Only the headers are read (an ID3v2 tag first is skipped), and the
    scan stops at a length header unless ``past_header``.  Where bytes that are not a frame break the run
    (not a trailing ID3v1/APE/Lyrics3 tag), the next place :data:`_RESYNC_RUN` frames of the first one's
    kind follow one another is found, as a decoder resyncs, and counting goes on from there.  ``None``
    where the file does not begin with a frame (after its ID3v2 tag): damaged there, or not MPEG audio.
    An OSError reading the file (a disk error) is raised: where the scan meets one, decoding would too.
    """
    with open(name, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < 4:
            return None
        data = _FileBytes(f, size)
        at = _id3_size(data[:10])
        first = _mpeg_frame(data[at : at + 4])
        if first is None:
            return None
        kind, samples, broken, cut, skipped = first[0], 0, None, False, 0
        header = None
        if any(t in data[at : at + min(first[1], 48)] for t in _LENGTH_TAGS):
            header = (at, at + first[1])
            if not past_header:
                return MpegFrames(0, header, None, False, stream_bytes=_xing_bytes(data[at : at + first[1]]))
            at += first[1]
        while at + 4 <= size:
            frame = _mpeg_frame(data[at : at + 4])
            if frame is None or frame[0] != kind:
                if _trailer_at(data, at):
                    break
                tag = _id3_size(data[at : at + 10])
                if tag:  # an ID3v2 tag between two files joined, or at the end
                    at += tag
                    continue
                if broken is None:
                    broken = samples
                start, at = at, data.find(b"\xff", at + 1)
                while at >= 0 and not _run_at(data, at, kind, size):
                    at = data.find(b"\xff", at + 1)
                skipped += (size if at < 0 else at) - start
                if at < 0:
                    break
                continue
            if at + frame[1] > size:  # a last frame cut short: libmpg123 gives nothing of it
                cut = True
                break
            samples += frame[2]
            at += frame[1]
    return MpegFrames(samples, header, broken, cut, skipped)
