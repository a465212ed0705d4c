"""How much of an audio file cut short libsndfile can tell, for :class:`rtconv.audio.Reader`.

A recording stopped by a crash or a copy not finished keeps a header that announces more than the file
holds.  WAV-family headers give the data's size in bytes (libsndfile logs the difference), FLAC and MP3
(with a Xing/Info frame) give the frames, and Ogg gives nothing but the flag of the page that ends the
stream; :class:`~rtconv.audio.Reader` reads what decodes and says how much is missing.
"""

from __future__ import annotations

import io
import os
import re
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
    """A file read as if ``extra`` zero bytes followed its end: a file cut short, made as long as its header says."""

    def __init__(self, raw, size: int, extra: int) -> None:
        self._raw, self._size, self._end, self._pos = raw, size, size + extra, 0

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
        n = max(0, min(len(b), self._end - self._pos))
        self._raw.seek(self._pos)
        got = self._raw.readinto(memoryview(b)[: max(0, min(n, self._size - self._pos))]) or 0
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
        with open(name, "rb") as raw, soundfile.SoundFile(_Padded(raw, os.fstat(raw.fileno()).st_size, extra)) as whole:
            return max(0, whole.frames - f.frames)
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
