"""Streaming sample-rate conversion: the one resampling chain of files and live audio.

:class:`Resampler` is a soxr stream with carried state (``__call__`` per
chunk, ``flush`` at the end, ``reset``); :func:`rtconv.files.process_file`
runs a model between two of them (quality ``"HQ"``).  Live, the device runs
at its rate and the model at the rate it was trained for; a
:class:`RateBridge` converts each device block to the model rate through a
:class:`Resampler`, lets a function process it there, and converts back
through another.  soxr withholds output until its filter is
primed and then releases it in chunks, so the output side keeps a FIFO
prefilled with just enough silence (:attr:`RateBridge.latency` device
frames, found by running the same block size through fresh resamplers at
construction) that every device block can be answered in full.

Quality is a trade-off: ``"QQ"`` (cubic) adds almost no delay but aliases;
``"LQ"`` (the default) adds about 20 ms per direction at 48 kHz <-> 16 kHz;
``"HQ"``/``"VHQ"`` add 35 ms or more.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .errors import ConfigError

__all__ = ["Resampler", "RateBridge", "QUALITIES"]

#: soxr qualities, fastest first.
QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class Resampler:
    """``in_rate`` -> ``out_rate`` for ``(frames, channels)`` float32 chunks, state carried between calls.

    Parameters
    ----------
    in_rate, out_rate : int
        Hz.
    channels : int
    quality : str
        soxr quality, one of :data:`QUALITIES`.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ") -> None:
        import soxr

        if quality not in QUALITIES:
            raise ConfigError(f"resampler quality must be one of {', '.join(QUALITIES)}, got {quality!r}.")
        self.in_rate, self.out_rate, self.channels, self.quality = int(in_rate), int(out_rate), int(channels), quality
        self._rs = soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32", quality=quality)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The converted frames available so far (soxr withholds some until its filter is primed)."""
        if x.shape[0] == 0:
            return np.zeros((0, self.channels), np.float32)
        return self._rs.resample_chunk(np.ascontiguousarray(x, np.float32), last=False).reshape(-1, self.channels)

    def flush(self) -> np.ndarray:
        """End of input: the frames still held."""
        return self._rs.resample_chunk(np.zeros((0, self.channels), np.float32), last=True).reshape(-1, self.channels)

    def reset(self) -> None:
        self._rs.clear()



class RateBridge:
    """Device-rate blocks in, device-rate blocks out, processing at ``model_rate``.

    Parameters
    ----------
    device_rate, model_rate : int
        Sample rates in Hz.
    channels : int
        Channels on both sides.
    block_size : int
        Device frames per call, used to size the FIFO.
    quality : str
        soxr quality, one of :data:`QUALITIES`.
    """

    def __init__(self, device_rate: int, model_rate: int, channels: int, block_size: int, quality: str = "LQ") -> None:
        from .live.rings import FrameRing

        if quality not in QUALITIES:
            raise ConfigError(f"resampler quality must be one of {', '.join(QUALITIES)}, got {quality!r}.")
        if not (0.05 <= model_rate / device_rate <= 20):
            raise ConfigError(
                f"the model runs at {model_rate} Hz and the device at {device_rate} Hz, a ratio "
                "beyond 20; open the device at a rate closer to the model's (--sample-rate)."
            )
        self.device_rate, self.model_rate = int(device_rate), int(model_rate)
        self.channels, self.quality = int(channels), quality
        self._mk = lambda a, b: Resampler(a, b, self.channels, quality)
        self._down = self._mk(self.device_rate, self.model_rate)
        self._up = self._mk(self.model_rate, self.device_rate)
        self.latency = self._calibrate(block_size)
        self._fifo = FrameRing(self.latency + 64 * block_size + 8192, self.channels)
        self._prefill()
        self.underruns = 0  # device frames answered with silence because the FIFO ran dry

    def _calibrate(self, block_size: int) -> int:
        """Largest shortfall of converted frames over 2 s of blocks, in device frames."""
        down, up = self._mk(self.device_rate, self.model_rate), self._mk(self.model_rate, self.device_rate)
        x = np.zeros((block_size, self.channels), np.float32)
        made = short = 0
        for i in range(1, max(4, math.ceil(2 * self.device_rate / block_size)) + 1):
            made += up(down(x)).shape[0]
            short = max(short, i * block_size - made)
        return int(short)

    def _prefill(self) -> None:
        if self.latency:
            self._fifo.write(np.zeros((self.latency, self.channels), np.float32))

    def reset(self) -> None:
        self._down.reset()
        self._up.reset()
        self._fifo.clear()
        self._prefill()

    def process(self, block: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], out: np.ndarray) -> None:
        """Write ``fn`` applied at the model rate to ``block`` into ``out`` (same shape)."""
        m = self._down(block)
        if m.shape[0]:
            y = self._up(fn(m))
            if y.shape[0]:
                self._fifo.write(y)  # cannot overflow at a fixed block size; FrameRing counts it if it does
        if not self._fifo.read_into(out):
            n = self._fifo.available
            self._fifo.read_into(out[:n])
            out[n:] = 0
            self.underruns += out.shape[0] - n
