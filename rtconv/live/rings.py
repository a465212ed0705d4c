"""Hand-off primitives between the audio thread and everything else.

Both rings are single-producer single-consumer and lock-free: each side
writes only its own counter (a Python int assignment is atomic under the
GIL), the data lives in one preallocated NumPy array, and neither side ever
waits for the other.  Losses are counted, never hidden.

* :class:`FrameRing` is *lossless and bounded*: a write that does not fit is
  refused whole and counted in :attr:`FrameRing.dropped` (recording, the
  worker-thread pipeline).
* :class:`DelayLine` is a fixed delay (the dry path, the gate's wait); it
  lives on the audio thread alone.
* :class:`DisplayRing` *overwrites*: it always holds the most recent audio;
  a reader asking for frames that were overwritten meanwhile counts them in
  :attr:`DisplayRing.dropped` (spectra and scopes in the GUI).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FrameRing", "DisplayRing", "DelayLine"]


class FrameRing:
    """Bounded lossless FIFO of ``(frames, channels)`` float32 audio.

    Parameters
    ----------
    capacity : int
        Frames the ring holds.
    channels : int
        Columns per frame.
    """

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), np.float32)
        self._w = 0  # frames ever written (producer only)
        self._r = 0  # frames ever read (consumer only)
        self.dropped = 0  # frames refused because the ring was full (producer only)

    @property
    def available(self) -> int:
        """Frames written and not yet read."""
        return self._w - self._r

    @property
    def free(self) -> int:
        return self.capacity - (self._w - self._r)

    def write(self, *parts: np.ndarray) -> bool:
        """Append one block made of column groups ``parts`` (same frame count).

        Returns False, and counts the frames as dropped, if the block does
        not fit; nothing is written then.
        """
        n = parts[0].shape[0]
        if n > self.capacity - (self._w - self._r):
            self.dropped += n
            return False
        start = self._w % self.capacity
        first = min(n, self.capacity - start)
        col = 0
        for p in parts:
            c = p.shape[1]
            self._buf[start : start + first, col : col + c] = p[:first]
            if first < n:
                self._buf[: n - first, col : col + c] = p[first:]
            col += c
        self._w += n  # publish only after the data is in place
        return True

    def read_into(self, out: np.ndarray) -> bool:
        """Fill ``out`` (frames, channels) from the ring; False if not enough is there."""
        n = out.shape[0]
        if self._w - self._r < n:
            return False
        start = self._r % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < n:
            out[first:] = self._buf[: n - first]
        self._r += n
        return True

    def clear(self) -> None:
        """Drop everything written and not read (for a single-threaded owner: it moves the reader)."""
        self._r = self._w

    def read(self, n: int | None = None) -> np.ndarray:
        """Take up to ``n`` frames (all available by default) as a new array."""
        avail = self._w - self._r
        n = avail if n is None else min(n, avail)
        out = np.empty((n, self.channels), np.float32)
        self.read_into(out)
        return out


class DisplayRing:
    """Overwriting ring of the most recent ``(frames, channels)`` audio.

    The audio thread calls :meth:`write`; any other thread calls
    :meth:`read_latest`, which copies and never blocks the writer.  The
    samples and the write count live in two arrays that :meth:`share` can
    move into shared memory, so a reader may sit in another process (the
    GUI's, see :mod:`rtconv.live.host`).
    """

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), np.float32)
        self._count = np.zeros(1, np.int64)  # frames ever written
        self._seen = 0  # reader's position, for counting frames it never saw
        self.dropped = 0

    @property
    def nbytes(self) -> int:
        """Bytes :meth:`share` needs: the samples and the 8-byte count."""
        return self._buf.nbytes + 8

    def share(self, memory, carry: bool = True) -> None:
        """Keep samples and count in ``memory`` (a writable buffer of :attr:`nbytes`).

        ``carry``: copy the content there (the writer's side); False reads what
        ``memory`` already holds (a reader in another process).
        """
        count = np.frombuffer(memory, np.int64, 1, 0)
        buf = np.frombuffer(memory, np.float32, self._buf.size, 8).reshape(self._buf.shape)
        if carry:
            buf[:] = self._buf
            count[0] = self._count[0]
        self._buf, self._count = buf, count

    @property
    def written(self) -> int:
        """Frames ever written."""
        return int(self._count[0])

    def write(self, *parts: np.ndarray) -> None:
        n = parts[0].shape[0]
        w = int(self._count[0])
        if n > self.capacity:  # only the tail can be kept
            parts = tuple(p[-self.capacity :] for p in parts)
            w += n - self.capacity
            n = self.capacity
        start = w % self.capacity
        first = min(n, self.capacity - start)
        col = 0
        for p in parts:
            c = p.shape[1]
            self._buf[start : start + first, col : col + c] = p[:first]
            if first < n:
                self._buf[: n - first, col : col + c] = p[first:]
            col += c
        self._count[0] = w + n  # after the samples: a reader never sees a count ahead of them

    def read_latest(self, n: int) -> np.ndarray:
        """Copy of the most recent ``n`` frames (zeros before the stream began)."""
        n = max(0, min(int(n), self.capacity))
        for _ in range(3):
            w = self.written
            idx = (np.arange(w - n, w) % self.capacity)
            out = self._buf[idx]
            if self.written - w <= self.capacity - n:  # the writer did not lap the copy
                break
        else:  # pragma: no cover - only under extreme starvation of the reader
            self.dropped += n
        if w < n:
            out[: n - w] = 0
        gap = w - self._seen - self.capacity
        if gap > 0:  # frames overwritten before any reader looked at them
            self.dropped += gap
        self._seen = w
        return out


class DelayLine:
    """A fixed-capacity delay of ``(frames, channels)`` float32 audio, no allocation per block.

    ``process(x, delay, out)`` writes ``x`` and fills ``out`` with the input of
    ``delay`` frames ago (``fill`` before the start).  ``delay + len(x)`` must fit
    in ``capacity``.
    """

    def __init__(self, capacity: int, channels: int, fill: float = 0.0) -> None:
        self.capacity = 1 << max(4, math.ceil(math.log2(max(2, int(capacity)))))
        self.fill = float(fill)
        self._buf = np.full((self.capacity, int(channels)), self.fill, np.float32)
        self._w = 0

    def reset(self) -> None:
        self._buf[:] = self.fill
        self._w = 0

    def write(self, x: np.ndarray) -> None:
        """Append ``x``; :meth:`read` then reaches back from its end."""
        n = x.shape[0]
        cap, w = self.capacity, self._w
        start = w % cap
        first = min(n, cap - start)
        self._buf[start : start + first] = x[:first]
        if first < n:
            self._buf[: n - first] = x[first:]
        self._w = w + n

    def read(self, delay: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` with the last ``len(out)`` frames written, ``delay`` frames ago."""
        n = out.shape[0]
        if delay + n > self.capacity:
            raise ValueError(f"a delay of {delay} frames and a block of {n} exceed the line's {self.capacity}.")
        cap = self.capacity
        r = (self._w - n - delay) % cap
        first = min(n, cap - r)
        out[:first] = self._buf[r : r + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        return out

    def process(self, x: np.ndarray, delay: int, out: np.ndarray) -> None:
        """Write ``x`` and fill ``out`` with the input of ``delay`` frames ago."""
        self.write(x)
        self.read(delay, out[: x.shape[0]])
