"""Recording the live input and output without touching the audio thread's time.

The audio callback copies each block into a preallocated lossless
:class:`~rtconv.live.rings.FrameRing` (no allocation, no I/O); a writer
thread drains it into two float WAV files and flushes them every
``flush_s`` seconds, which also rewrites the WAV header, so a crash or a
kill leaves files that open and hold everything up to the last flush.
A write error (full disk) stops recording with a message; the stream goes on.
"""

from __future__ import annotations

import datetime as _dt
import pathlib
import threading
import time

import numpy as np

from ..errors import AudioFileError
from .rings import FrameRing

__all__ = ["Recorder"]


class Recorder:
    """Two WAV files, ``<stem>-input.wav`` and ``<stem>-output.wav``, fed by one ring.

    Parameters
    ----------
    directory : path
        Created if missing.
    sample_rate, channels : int
        Of the stream.
    buffer_s : float
        Seconds of audio the ring holds while the disk is slow.
    flush_s : float
        How often the files are flushed (the most a crash can lose).
    """

    def __init__(self, directory, sample_rate: int, channels: int, buffer_s: float = 10.0, flush_s: float = 0.5, stem: str | None = None) -> None:
        import soundfile as sf

        self.directory = pathlib.Path(directory)
        stem = stem or "rtconv-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            paths = [self.directory / f"{stem}-{k}.wav" for k in ("input", "output")]
            n = 1
            while any(p.exists() for p in paths):  # two runs in the same second
                n += 1
                paths = [self.directory / f"{stem}-{n}-{k}.wav" for k in ("input", "output")]
            self.paths = paths
            self._files = [sf.SoundFile(p, "w", sample_rate, channels, subtype="FLOAT", format="WAV") for p in paths]
        except (FileExistsError, NotADirectoryError):  # the folder, or a folder above it, is a file
            raise AudioFileError(f"cannot record into {str(self.directory)!r}: it is a file, not a folder; give "
                                 "--record a folder (it is made if missing).") from None
        except (OSError, RuntimeError) as e:
            raise AudioFileError(f"cannot create recording files in {str(self.directory)!r} ({e}); choose a writable --record directory.") from None
        self.channels = channels
        self.flush_s = flush_s
        self.ring = FrameRing(int(buffer_s * sample_rate), 2 * channels)
        self.active = True
        self.error: str | None = None
        self.frames_written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rtconv-recorder", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames lost because the ring was full (the disk could not keep up)."""
        return self.ring.dropped

    def push(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """Called from the audio thread: copy one block in, never block."""
        if self.active:
            self.ring.write(indata, outdata)

    def _drain(self) -> None:
        block = self.ring.read()
        if block.shape[0]:
            c = self.channels
            self._files[0].write(block[:, :c])
            self._files[1].write(block[:, c:])
            self.frames_written += block.shape[0]

    def _loop(self) -> None:
        last = time.monotonic()
        while True:
            stopping = self._stop.wait(0.05)
            try:
                self._drain()
                if stopping or time.monotonic() - last >= self.flush_s:
                    for f in self._files:
                        f.flush()
                    last = time.monotonic()
            except Exception as e:  # full disk, file removed, ...
                self.active = False
                self.error = f"recording stopped after {self.frames_written} frames ({e}); the stream keeps running."
                return
            if stopping:
                return

    def close(self) -> None:
        """Write what is left and finalize the files."""
        self._stop.set()
        self._thread.join()
        self.active = False
        for f in self._files:
            try:
                f.close()
            except Exception as e:  # pragma: no cover - finalizing on a full disk
                self.error = self.error or f"closing a recording failed ({e})."
