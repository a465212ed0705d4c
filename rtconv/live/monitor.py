"""What displays read about a running stream: audio snapshots, meters, clips, voice, block times.

:class:`Monitor` is written by the audio thread once per block and read by
anything else, never blocking the writer: the latest input and output in
an overwriting :class:`~rtconv.live.rings.DisplayRing`, meters and counters
in small latest-value arrays.  :meth:`Monitor.share` moves all of it into
one block of shared memory, so a reader in another process (the GUI, with
the stream in its audio process) sees what plays without any pipe traffic;
:meth:`Monitor.attach` builds that reader.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..audio import all_finite
from .rings import DisplayRing

__all__ = ["Monitor"]

_TIMES = 8192  # block times kept for median/p99
_PEAK_FALL_DB_S = 20.0
_RMS_TAU_S = 0.3
_SHARED = ("_meter", "_clips", "_speech", "_times", "_count")  # the arrays that live in shared memory


def _db(x) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.asarray(x, np.float64), 1e-10))


def _levels(a: np.ndarray) -> tuple[list[float], list[float]]:
    """Per channel of a ``(frames, channels)`` block: the peak ``|sample|`` and the sum of squares, as
    floats; NaN and ±Inf samples count as silence (a broken driver's block must not leave the meters
    at NaN for good).  Up to four channels one by one on 1-D views (3 us a channel; NumPy's reductions
    across the channel axis cost 6 us each for two), more at once."""
    if a.shape[1] > 4:
        a = a if all_finite(a) else np.where(np.isfinite(a), a, 0)
        return np.maximum.reduce(np.abs(a), axis=0).tolist(), np.einsum("ij,ij->j", a, a, dtype=np.float64).tolist()
    peaks, energies = [], []
    for c in range(a.shape[1]):
        v = a[:, c]
        e = float(np.dot(v, v))  # also the finiteness check: NaN or Inf make it non-finite
        if not math.isfinite(e):
            v = np.where(np.isfinite(v), v, 0).astype(np.float64)
            e = float(np.dot(v, v))
        peaks.append(float(np.maximum.reduce(np.abs(v))))
        energies.append(e)
    return peaks, energies


class Monitor:
    """Meters, display ring, clip counters, voice state and block times of one stream.

    Parameters
    ----------
    sample_rate : int
        Hz (meter time constants, display length).
    channels : int
        Channels of the stream.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        ch = self.channels
        self.display = DisplayRing(1 << max(12, math.ceil(math.log2(self.sample_rate * 2))), 2 * ch)
        self._meter = np.zeros((4, ch))  # in peak, in mean square, out peak, out mean square
        self._clips = np.zeros(2, np.int64)  # input samples at full scale, output frames limited
        self._speech = np.zeros(6)  # has VAD, probability, gate gain, open, on, threshold
        self._times = np.zeros(_TIMES)  # seconds per block, a ring
        self._count = np.zeros(3, np.int64)  # blocks, frames, slowest block in ns
        self._clips_seen = np.zeros(2, np.int64)  # the reader's own
        self._coefs: dict[int, tuple[float, float]] = {}  # per block length: peak fall, mean-square step

    # ------------------------------------------------------------------ audio thread
    def update(self, x: np.ndarray, out: np.ndarray, limited: int, seconds: float) -> None:
        """One block's input and output, frames the limiter turned down, and the block's compute time."""
        n = x.shape[0]
        if n:
            # meters: peak hold with 20 dB/s fall, mean square with a 300 ms time constant; the few state
            # values in Python floats (NumPy calls on 1-4 values cost 2-6 us each: the meters took 55 us
            # of the callback)
            coef = self._coefs.get(n)
            if coef is None:
                if len(self._coefs) >= 16:
                    self._coefs.clear()
                dur = n / self.sample_rate
                coef = self._coefs[n] = (10 ** (-_PEAK_FALL_DB_S * dur / 20), 1 - math.exp(-dur / _RMS_TAU_S))
            fall, k = coef
            pin, ein = _levels(x)
            pout, eout = _levels(out)
            m = self._meter.tolist()
            self._meter[:] = ([max(p, h * fall) for p, h in zip(pin, m[0], strict=True)],
                              [h + k * (e / n - h) for e, h in zip(ein, m[1], strict=True)],
                              [max(p, h * fall) for p, h in zip(pout, m[2], strict=True)],
                              [h + k * (e / n - h) for e, h in zip(eout, m[3], strict=True)])
            if max(pin) >= 0.999:  # full scale among the finite samples (NaN and Inf count as silence)
                a = np.abs(x)
                self._clips[0] += int(np.count_nonzero((a >= 0.999) & (a < np.inf)))
            self.display.write(x, out)
        self._clips[1] += limited
        self.time_block(n, seconds)

    def time_block(self, frames: int, seconds: float) -> None:
        c = self._count
        self._times[c[0] % _TIMES] = seconds
        c[2] = max(c[2], math.ceil(seconds * 1e9))  # never below the exact time: max >= p99
        c[1] += frames
        c[0] += 1  # last: a reader never sees a count ahead of its time

    def set_speech(self, probability: float, gain: float, is_open: bool, on: bool, threshold: float) -> None:
        s = self._speech
        s[1], s[2], s[3], s[4], s[5] = probability, gain, float(is_open), float(on), threshold
        s[0] = 1.0

    # ------------------------------------------------------------------ readers
    @property
    def blocks(self) -> int:
        return int(self._count[0])

    @property
    def frames(self) -> int:
        return int(self._count[1])

    @property
    def written(self) -> int:
        """Frames ever written to the display ring (changes when new audio arrived)."""
        return self.display.written

    @property
    def display_drops(self) -> int:
        return self.display.dropped

    def read_display(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The most recent ``n`` frames of input and output, each ``(n, channels)``."""
        both = self.display.read_latest(n)
        return both[:, : self.channels], both[:, self.channels :]

    def meters(self) -> dict[str, Any]:
        """Latest levels: peak and RMS in dBFS per channel, and clipping since the last call."""
        m = self._meter.copy()
        c = self._clips.copy()
        clip = c > self._clips_seen
        self._clips_seen = c
        return {
            "in_peak_db": _db(m[0]).tolist(),
            "in_rms_db": _db(np.sqrt(m[1])).tolist(),
            "out_peak_db": _db(m[2]).tolist(),
            "out_rms_db": _db(np.sqrt(m[3])).tolist(),
            "in_clip": bool(clip[0]),
            "out_limited": bool(clip[1]),
        }

    def gate_state(self) -> dict[str, Any] | None:
        """The VAD's probability and the gate's state (gain dB, open, on, threshold); None without a VAD."""
        has, p, g, is_open, on, threshold = self._speech
        if not has:
            return None
        return {"probability": float(p), "gain_db": float(_db(g)), "open": bool(is_open), "on": bool(on),
                "threshold": float(threshold)}

    def block_times(self, block_size: int) -> tuple[dict[str, float], float]:
        """Median, p99 and slowest block time (ms) against the budget, and the CPU load (mean time over budget).

        The budget is that of the mean block the device delivered (``block_size``
        frames asked; a host may deliver others).
        """
        k = min(self.blocks, _TIMES)
        t = np.sort(self._times[:k]) * 1e3 if k else np.zeros(1)
        frames = self.frames / self.blocks if self.blocks else block_size
        budget = frames / self.sample_rate * 1e3
        ms = {"median": float(np.median(t)), "p99": float(t[min(len(t) - 1, int(0.99 * len(t)))]),
              "max": float(self._count[2]) / 1e6, "budget": budget}
        return ms, (float(t.mean()) / budget if k else 0.0)

    # ------------------------------------------------------------------ sharing
    @property
    def nbytes(self) -> int:
        """Bytes :meth:`share` needs."""
        return self.display.nbytes + sum(getattr(self, a).nbytes for a in _SHARED)

    def share(self, memory, carry: bool = True) -> None:
        """Keep everything displays read in ``memory`` (a writable buffer of :attr:`nbytes`).

        Both sides use the same block (e.g. a
        :class:`multiprocessing.shared_memory.SharedMemory`'s ``buf``): the
        writer's monitor carries its content there, a reader's
        (:meth:`attach`) takes what is there.
        """
        mem = memoryview(memory)
        a = self.display.nbytes
        self.display.share(mem[:a], carry)
        for name in _SHARED:
            arr = getattr(self, name)
            view = np.frombuffer(mem[a : a + arr.nbytes], arr.dtype).reshape(arr.shape)
            if carry:
                view[:] = arr
            setattr(self, name, view)
            a += arr.nbytes

    @classmethod
    def attach(cls, memory, sample_rate: int, channels: int, owner=None) -> "Monitor":
        """A reader of the monitor another process shares in ``memory``; ``owner`` (the shared-memory
        object) is kept alive as long as the reader."""
        m = cls(sample_rate, channels)
        m.share(memory, carry=False)
        m._owner = owner
        return m
