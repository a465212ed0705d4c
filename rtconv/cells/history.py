"""One history buffer for every cell: the last ``span`` steps of a stream, in one linear buffer.

Sample-rate cells keep ``(batch, channels, time)`` histories ("time last");
frame-rate cells that work row-major keep ``(time, batch, channels)`` ones
("time first"), so that a frame's channels for every batch item are one
contiguous row.  Both are the same buffer with the time axis in another
place.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["History"]


class History:
    """``span`` past steps of a stream, kept in one linear buffer.

    Blocks are written after the history at a moving write position, so a
    block costs one copy; only when the buffer is full are the last ``span``
    steps moved back to the front (amortised: once per ``room`` steps).
    The buffer is a NumPy array and cells get torch views of it (``tbuf``):
    slicing and copying small blocks costs ~0.5 us in NumPy against ~2.5 us
    in torch, measured per call at 512 frames.

    Parameters
    ----------
    batch, channels : int
        The stream's shape besides time.
    span : int
        Steps of history kept (0 is allowed: then a push returns the block).
    dtype : torch.dtype
    time_first : bool
        Lay the buffer out ``(time, batch, channels)`` instead of
        ``(batch, channels, time)``.
    """

    def __init__(self, batch: int, channels: int, span: int, dtype: torch.dtype, time_first: bool = False) -> None:
        self.shape = (batch, channels)
        self.span = span
        self.time_first = time_first
        self.np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.buf: np.ndarray | None = None
        # frame-rate streams see a few frames per block: a smaller first room does
        self._alloc(max(256 if time_first else 4096, 2 * span))

    def _t(self, a: int, b: int) -> tuple:
        """Index of time steps ``[a, b)`` in the buffer."""
        return (slice(a, b),) if self.time_first else (Ellipsis, slice(a, b))

    def _alloc(self, room: int) -> None:
        shape = (self.span + room, *self.shape) if self.time_first else (*self.shape, self.span + room)
        new = np.zeros(shape, self.np_dtype)
        if self.buf is not None:  # keep the history when a larger block arrives
            new[self._t(0, self.span)] = self.buf[self._t(self.pos - self.span, self.pos)]
        self.buf, self.room, self.pos = new, room, self.span
        self.tbuf = torch.from_numpy(new)
        self._views: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def reset(self) -> None:
        self.buf[:] = 0
        self.pos = self.span

    def _append(self, x: np.ndarray, n: int) -> tuple[int, int]:
        s = self.span
        if n > self.room:
            self._alloc(max(n, 2 * self.room))
        if self.pos + n > s + self.room:  # full: move the history to the front
            if s:
                tail = self.buf[self._t(self.pos - s, self.pos)]
                if self.pos - s < s:  # overlapping ranges (only when room < span)
                    tail = tail.copy()
                self.buf[self._t(0, s)] = tail
            self.pos = s
        p = self.pos
        if self.time_first:  # no index tuple built per block: ~0.3 us of a small block's budget
            self.buf[p : p + n] = x
        else:
            self.buf[..., p : p + n] = x
        self.pos = p + n
        return p - s, p + n

    def push_np(self, x: np.ndarray) -> np.ndarray:
        """Append ``x`` (time last); return ``history + x`` as a NumPy view valid until the next push."""
        a, b = self._append(x, x.shape[-1])
        return self.buf[..., a:b]

    def push_views(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``x`` (time last); return ``history + x`` as torch views ``(B, C, L)`` and ``(C, L)`` (item 0).

        With steady block sizes the write position cycles through a few
        values, so the views are made once per position and reused (making
        one costs ~1 us per block otherwise).
        """
        key = self._append(x, x.shape[-1])
        v = self._views.get(key)
        if v is None:
            if len(self._views) >= 64:
                self._views.clear()
            full = self.tbuf[..., key[0] : key[1]]
            v = self._views[key] = (full, full[0])
        return v

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Append ``x`` (time last); return ``history + x`` as a torch view valid until the next push."""
        return self.push_views(x.numpy())[0]

    def push_rows(self, x: np.ndarray) -> int:
        """Append time-major NumPy rows ``x`` ``(m*B, C)`` (time first); return the index just past them in ``buf``."""
        m = x.shape[0] // self.shape[0]
        p = self.pos
        if p + m <= self.span + self.room:  # room left: the common case, without _append's bookkeeping
            self.buf[p : p + m] = x.reshape(m, *self.shape)
            self.pos = p + m
            return p + m
        return self._append(x.reshape(m, *self.shape), m)[1]
