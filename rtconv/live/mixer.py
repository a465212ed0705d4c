"""What happens to a block after the model: dry/wet, bypass, gain, crossfade, limiter.

:class:`Mixer` is pure NumPy and owns no model: the processor hands it the
model's output (``wet``) and it keeps its own delay line of the input, so
the dry signal lines up with any model's latency.  Controls are plain
attributes, read once per block and ramped across it from the values last
applied (no zipper noise); with steady controls it allocates nothing per block.
"""

from __future__ import annotations

import math

import numpy as np

from .rings import DelayLine

__all__ = ["Mixer", "LIMIT_DB"]

LIMIT_DB = -1.0  # safety limiter ceiling, dBFS
_RELEASE_S = 0.2  # limiter gain recovers from 0 to 1 in this time
_DRY_S = 2.0  # longest model latency the dry path can line up with


class Mixer:
    """Dry/wet, bypass and gain ramps, model crossfades and a -1 dBFS safety limiter.

    Parameters
    ----------
    sample_rate : int
        Hz; sets the limiter's release and the crossfade length in frames.
    channels : int
        Channels of the blocks.
    crossfade_ms : float
        Length of the crossfade from an old model's output to a new one's.

    Attributes
    ----------
    bypass : bool
        Output the input (delayed by the latency, so toggling does not jump).
    wet : float
        0..1 mix of the model output with the input delayed to align with it.
    gain_db : float
        Output gain in dB, applied after the mix.
    limiter : bool
        Safety limiter at -1 dBFS (on by default).
    """

    CONTROLS = ("bypass", "wet", "gain_db", "limiter")

    def __init__(self, sample_rate: int, channels: int, crossfade_ms: float = 20.0) -> None:
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.bypass = False
        self.wet = 1.0
        self.gain_db = 0.0
        self.limiter = True
        self.fade_frames = max(1, int(crossfade_ms * self.sample_rate / 1000))
        self._applied = (0.0, 1.0, 1.0)  # bypass mix, wet, gain as applied at the last block end
        self._env = 1.0
        self._release = 1.0 / (_RELEASE_S * self.sample_rate)
        self._ceiling = 10 ** (LIMIT_DB / 20)
        self._dry = DelayLine(1 << max(12, math.ceil(math.log2(self.sample_rate * _DRY_S))), self.channels)
        self._ramps: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ dry path
    def push_dry(self, x: np.ndarray) -> None:
        """The block's input (finite), once per block before :meth:`dry`."""
        self._dry.write(x)

    def dry(self, delay: int, out: np.ndarray) -> np.ndarray:
        """The input of ``delay`` frames ago, for the block just pushed, into ``out``."""
        return self._dry.read(delay, out)

    # ------------------------------------------------------------------ mixing
    def _ramp(self, n: int) -> np.ndarray:
        r = self._ramps.get(n)
        if r is None:
            r = self._ramps[n] = (np.arange(1, n + 1, dtype=np.float32) / n)[:, None]
        return r

    def crossfade(self, old: np.ndarray, new: np.ndarray, done: int) -> int:
        """Blend ``new`` in place from ``old`` towards itself, ``done`` frames into the fade; frames done after."""
        n = new.shape[0]
        w = np.minimum((done + np.arange(1, n + 1, dtype=np.float32)) / self.fade_frames, 1)[:, None]
        new[:] = old + w * (new - old)
        return done + n

    def mix(self, wet: np.ndarray, dry: np.ndarray, out: np.ndarray) -> None:
        """``out = bypass ? dry : gain * (dry + wet_mix * (wet - dry))``, each control ramped over the block.

        Controls that did not change since the last block (nearly every block) take no ramp: bypass
        copies the dry signal and full wet at unity gain the model's output, exactly; other settings
        cost four in-place operations (the ramp's arithmetic took 21 us of a 2.7 ms block).
        """
        target = (1.0 if self.bypass else 0.0, min(max(float(self.wet), 0.0), 1.0), 10 ** (float(self.gain_db) / 20))
        if target == self._applied:
            byp, mix, gain = target
            if byp:
                out[:] = dry
            elif mix == 1.0 and gain == 1.0:
                out[:] = wet
            else:  # the ramp's float32 arithmetic with constant controls, in its order
                np.subtract(wet, dry, out=out)
                out *= np.float32(mix)
                out += dry
                out *= np.float32(gain)
            return
        r = self._ramp(wet.shape[0])
        s, t = np.array(self._applied), np.array(target)
        a = (s[:, None, None] + (t - s)[:, None, None] * r[None]).astype(np.float32)
        self._applied = target
        byp, mix, gain = a[0], a[1], a[2]
        out[:] = dry + mix * (wet - dry)
        out *= gain
        out += byp * (dry - out)

    def limit(self, y: np.ndarray) -> int:
        """Keep ``y`` under -1 dBFS in place (when :attr:`limiter`); returns the frames it had to turn down."""
        if not self.limiter:
            return 0
        if self._env >= 1.0 and np.maximum.reduce(np.abs(y), axis=None) <= self._ceiling:
            return 0  # nothing over the ceiling, nothing recovering: the usual block, in two calls
        n = y.shape[0]
        a = np.abs(y).max(axis=1).astype(np.float64)
        over = a > self._ceiling
        if not over.any() and self._env >= 1.0:
            return 0
        req = np.ones(n)
        np.divide(self._ceiling, a, out=req, where=over)
        i = np.arange(n)
        rel = self._release
        # env[t] = min(1, req[t], env[t-1] + rel), solved for the whole block at once
        env = np.minimum(np.minimum.accumulate(req - rel * i) + rel * i, self._env + rel * (i + 1))
        np.minimum(env, 1.0, out=env)
        self._env = float(env[-1])
        y *= env[:, None].astype(np.float32)
        return int(np.count_nonzero(over))
