"""A speech gate for live audio: a VAD's probability track turned into an output gain.

:class:`Gate` is the state machine and the gain smoother, pure NumPy and
block-size independent (the same gains for any split of the same track):

* **open** when the speech probability reaches ``threshold``;
* while open, every sample at or above ``threshold - hysteresis`` restarts
  the **hold** timer; the gate **closes** when the probability has stayed
  below that for ``hold`` seconds;
* the gain follows a one-pole smoother towards 1 (open, time constant
  ``attack``) or towards the floor (closed, time constant ``release``;
  -26 dB of the way after three of them).  The floor is ``floor_db`` below
  unity, or silence for ``-inf``.

:class:`DelayLine` is the preallocated delay the processor uses to line the
audio up with the VAD's decisions (the VAD needs a whole 10 ms frame before
it can judge it, the denoiser only 4 ms).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Gate", "DelayLine", "GATE_DEFAULTS"]

#: Default settings: the CLI's and the GUI's.
GATE_DEFAULTS = {"threshold": 0.5, "hysteresis": 0.15, "hold": 0.25, "attack": 0.005, "release": 0.08,
                 "floor_db": float("-inf")}


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

    def process(self, x: np.ndarray, delay: int, out: np.ndarray) -> None:
        n = x.shape[0]
        if delay + n > self.capacity:
            raise ValueError(f"a delay of {delay} frames and a block of {n} exceed the line's {self.capacity}.")
        cap, w = self.capacity, self._w
        start = w % cap
        first = min(n, cap - start)
        self._buf[start : start + first] = x[:first]
        if first < n:
            self._buf[: n - first] = x[first:]
        self._w = w + n
        r = (w - delay) % cap
        first = min(n, cap - r)
        out[:first] = self._buf[r : r + first]
        if first < n:
            out[first:n] = self._buf[: n - first]


class Gate:
    """Per-sample gains from a speech-probability track (see the module docstring).

    Parameters
    ----------
    samplerate : int
        Rate of the track and the audio, Hz.
    max_block : int
        Longest block :meth:`gains` will be given (sizes preallocated tables;
        longer blocks are split internally).
    threshold, hysteresis, hold, attack, release, floor_db
        As in the module docstring; times in seconds.  They are plain
        attributes: change them between blocks.
    """

    def __init__(self, samplerate: int, max_block: int = 4096, **settings) -> None:
        self.samplerate = int(samplerate)
        self.max_block = max(1, int(max_block))
        for k, v in GATE_DEFAULTS.items():
            setattr(self, k, float(settings.pop(k, v)))
        if settings:
            raise TypeError(f"unknown gate settings: {', '.join(sorted(settings))}")
        self._k = np.arange(1, self.max_block + 1, dtype=np.float64)
        self._pow = np.empty(self.max_block, np.float64)
        self.reset()

    def reset(self) -> None:
        """Closed, at the floor: the gate opens on the first speech."""
        self.open = False
        self._hold_left = 0
        self.gain = self.floor
        self.opened = 0  # times the gate opened (a counter for stats)

    @property
    def floor(self) -> float:
        return 0.0 if self.floor_db == float("-inf") else 10.0 ** (self.floor_db / 20.0)

    def _coef(self, seconds: float) -> float:
        return 1.0 - math.exp(-1.0 / max(1e-9, seconds * self.samplerate))

    def _approach(self, target: float, out: np.ndarray) -> None:
        """Fill ``out`` with the smoother's path from ``self.gain`` towards ``target``."""
        n = out.shape[0]
        if n == 0:
            return
        g0 = self.gain
        if g0 == target:
            out[:] = target
            return
        c = self._coef(self.attack if target > g0 else self.release)
        p = self._pow[:n]
        np.power(1.0 - c, self._k[:n], out=p)
        out[:] = target + (g0 - target) * p
        self.gain = float(out[-1])

    def gains(self, probability: np.ndarray, out: np.ndarray, force_open: bool = False) -> None:
        """Gains for one block of ``probability`` (1-D) into ``out`` (same length).

        ``force_open`` (bypass, gate switched off) keeps the gate open and
        ramps to unity, still advancing its state so it resumes smoothly.
        """
        n = probability.shape[0]
        start = 0
        while start < n:  # blocks longer than the tables: in pieces
            stop = min(n, start + self.max_block)
            self._block(probability[start:stop], out[start:stop], force_open)
            start = stop

    def _block(self, p: np.ndarray, out: np.ndarray, force_open: bool) -> None:
        n = p.shape[0]
        if force_open:
            if not self.open:
                self.opened += 1
            self.open, self._hold_left = True, self._hold_samples
            self._approach(1.0, out)
            return
        on, off = self.threshold, self.threshold - self.hysteresis
        floor = self.floor
        hold = self._hold_samples
        # the track is piecewise constant (one VAD decision per 10 ms frame): walk its runs
        edges = np.flatnonzero(p[1:] != p[:-1]) + 1
        i = 0
        for j in (*edges.tolist(), n):
            v = float(p[i])
            seg = out[i:j]
            if v >= on:
                if not self.open:
                    self.opened += 1
                self.open, self._hold_left = True, hold
                self._approach(1.0, seg)
            elif v >= off and self.open:
                self._hold_left = hold
                self._approach(1.0, seg)
            elif self.open:
                m = j - i
                keep = min(m, self._hold_left)
                self._hold_left -= keep
                self._approach(1.0, seg[:keep])
                if keep < m:
                    self.open = False
                    self._approach(floor, seg[keep:])
            else:
                self._approach(floor, seg)
            i = j

    @property
    def _hold_samples(self) -> int:
        return max(0, round(self.hold * self.samplerate))
