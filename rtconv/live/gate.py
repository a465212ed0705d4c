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

:class:`SpeechGate` puts a VAD (a :class:`~rtconv.live.chain.ModelChain`)
in front of a :class:`Gate`, with the delay lines that line the audio up with
the VAD's decisions (the VAD needs a whole 10 ms frame before it can judge
it, the denoiser only 4 ms).
"""

from __future__ import annotations

import math

import numpy as np

from ..audio import all_finite
from .rings import DelayLine

__all__ = ["Gate", "SpeechGate", "GATE_DEFAULTS"]

#: The smoother takes its target exactly once within this of it (-120 dB): towards a -inf floor it would
#: otherwise approach 0 for a minute, recomputing its path every block and passing through subnormal
#: gains (slow arithmetic on some CPUs) before it underflowed.
SNAP = 1e-6

#: Default settings: the CLI's and the GUI's.
GATE_DEFAULTS = {"threshold": 0.5, "hysteresis": 0.15, "hold": 0.25, "attack": 0.005, "release": 0.08,
                 "floor_db": float("-inf")}


class Gate:
    """Per-sample gains from a speech-probability track (see the module docstring).

    Parameters
    ----------
    sample_rate : int
        Rate of the track and the audio, Hz.
    max_block : int
        Longest block :meth:`gains` will be given (sizes preallocated tables;
        longer blocks are split internally).
    threshold, hysteresis, hold, attack, release, floor_db
        As in the module docstring; times in seconds.  They are plain
        attributes: change them between blocks.
    """

    def __init__(self, sample_rate: int, max_block: int = 4096, **settings) -> None:
        self.sample_rate = int(sample_rate)
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
        return 1.0 - math.exp(-1.0 / max(1e-9, seconds * self.sample_rate))

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
        if abs(out[-1] - target) <= SNAP:  # arrived: the samples within SNAP of the target take it exactly
            np.copyto(out, target, where=np.abs(out - target) <= SNAP)
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
        return max(0, round(self.hold * self.sample_rate))


class SpeechGate:
    """A VAD in front of a :class:`Gate`: the output of a stream silenced between speech.

    The VAD runs on the mix of the input channels.  While :attr:`on`, the
    output waits :meth:`delay` frames for the VAD's decisions (its latency
    beyond the model's); when a model is slower than the VAD, the decisions
    wait for the model instead.  A VAD that fails opens the gate: it must
    never silence speech.

    Parameters
    ----------
    vad : rtconv.live.chain.ModelChain
        The detector (one probability track) at the device rate.
    channels : int
        Channels of the audio it gates.
    model_latency : int
        The playing model's latency in device frames.
    max_block : int
        Longest block expected (longer ones grow the buffers once).

    Attributes
    ----------
    on : bool
        Gate the output (off: the VAD only feeds the meter and adds no latency).
    threshold, hold, attack, release, floor_db : float
        The :class:`Gate`'s settings, read once per block.
    errors : int
        Blocks the VAD failed (gate left open).
    """

    SETTINGS = ("threshold", "hold", "attack", "release", "floor_db")

    def __init__(self, vad, sample_rate: int, channels: int, model_latency: int, max_block: int = 4096) -> None:
        self.vad = vad
        self.on = False
        for k in self.SETTINGS:
            setattr(self, k, GATE_DEFAULTS[k])
        n = max(int(max_block), 4096)
        self._alloc(n)
        self._gate = Gate(sample_rate, max_block=n)
        self._gate.gain = 1.0  # start open-faded: a gate switched on fades the first noise out
        self._post = DelayLine(vad.latency + n, channels)
        # before the first decisions: open (never silence speech by default)
        self._prob_line = DelayLine(max(0, model_latency - vad.latency) + n, 1, fill=1.0)
        self.errors = 0
        self.last_error = ""
        self.probability = 0.0

    def _alloc(self, n: int) -> None:
        self._mono = np.zeros((n, 1), np.float32)
        self._prob = np.zeros((n, 1), np.float32)
        self._gains = np.zeros(n, np.float64)

    @property
    def latency(self) -> int:
        """The VAD's latency, device frames."""
        return self.vad.latency

    @property
    def opened(self) -> int:
        return self._gate.opened

    @property
    def gain(self) -> float:
        return self._gate.gain

    @property
    def is_open(self) -> bool:
        return self._gate.open

    def delay(self, model_latency: int) -> int:
        """Frames the output waits, beyond ``model_latency``, for the decisions (0 while off)."""
        return max(0, self.vad.latency - model_latency) if self.on else 0

    def line_for(self, model_latency: int):
        """A decision delay line long enough for a model of ``model_latency`` (None: the current one is).

        Called off the audio thread when a model is being swapped in; the line
        goes with the model to the audio thread (:meth:`adopt`).
        """
        need = max(0, model_latency - self.vad.latency) + self._prob.shape[0]
        return DelayLine(need, 1, fill=1.0) if need > self._prob_line.capacity else None

    def adopt(self, line) -> None:
        """Audio thread: take the line :meth:`line_for` made for the model now playing."""
        if line is not None:
            self._prob_line = line

    def process(self, x: np.ndarray, out: np.ndarray, model_latency: int, force_open: bool) -> None:
        """Run the VAD on ``x``'s mix, line ``out`` and the decisions up, and apply the gains to ``out``."""
        n = x.shape[0]
        if n > self._prob.shape[0]:  # once, for an unusually long block (the Gate splits those itself)
            self._alloc(n)
        mono, prob, gains = self._mono[:n], self._prob[:n], self._gains[:n]
        if x.shape[1] > 1:
            np.mean(x, axis=1, out=mono[:, 0])
        else:
            np.copyto(mono, x)
        try:
            self.vad.process(mono, prob)
            ok = all_finite(prob)
        except Exception as e:  # the audio thread must never die of a model
            self.last_error = f"VAD: {type(e).__name__}: {e}"
            ok = False
        if not ok:
            self.errors += 1
            self.vad.reset()
            prob[:] = 1.0  # a broken VAD opens the gate: it must never silence speech
        if n:
            self.probability = float(prob[-1, 0])
        # the output waits for the VAD, or the decisions wait for a slower model (only while gating:
        # switching the gate shifts the output by the difference once, like a swap)
        self._post.process(out, self.delay(model_latency), out)
        self._prob_line.process(prob, max(0, model_latency - self.vad.latency), prob)
        g = self._gate
        g.threshold, g.hold, g.attack, g.release, g.floor_db = (
            float(self.threshold), float(self.hold), float(self.attack), float(self.release), float(self.floor_db))
        g.gains(prob[:, 0], gains, force_open=force_open or not self.on)
        out *= gains[:, None]
