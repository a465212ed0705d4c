"""Streaming sample-rate conversion: the one resampling chain of files and live audio.

:class:`Resampler` is a stream with carried state (``__call__`` per chunk,
``flush`` at the end, ``reset``); :func:`rtconv.files.process_file` runs a
model between two of them (soxr, quality ``"HQ"``).  Live, the device runs
at its rate and the model at the rate it was trained for; a
:class:`RateBridge` converts each device block to the model rate through a
:class:`Resampler`, lets a function process it there, and converts back
through another.  The output side keeps a FIFO prefilled with just enough
silence (found by running the same block size through fresh resamplers at
construction) that every device block can be answered in full.

Quality is a trade-off of delay against the filter.  ``"LL"`` (live's
default) is rtconv's own: a minimum-phase polyphase FIR (designed by
:mod:`scipy.signal`, :class:`MinimumPhaseResampler`) that releases every
output sample as soon as its input is in, flat to 90 % of the lower rate's
Nyquist frequency and 75 dB down beyond it, about 0.1 ms of delay per
direction.  soxr's qualities are linear-phase and release output in chunks:
``"QQ"`` (cubic) adds little delay but aliases; ``"LQ"`` adds about 20 ms per
direction at 48 kHz <-> 16 kHz; ``"HQ"``/``"VHQ"`` 35 ms or more.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

from .errors import ConfigError

__all__ = ["Resampler", "RateBridge", "MinimumPhaseResampler", "QUALITIES", "LIVE_QUALITY"]

#: ``"LL"`` (rtconv's minimum-phase filter, the least delay), then soxr's qualities, fastest first.
QUALITIES = ("LL", "QQ", "LQ", "MQ", "HQ", "VHQ")

#: what live audio and its benchmarks use unless told otherwise
LIVE_QUALITY = "LL"

#: most phases (the reduced ratio's numerator) of a minimum-phase bank; rates whose ratio does not
#: reduce that far (47999 -> 48000 Hz needs 48000) resample with soxr "LQ" instead
MAX_PHASES = 1024


@lru_cache(maxsize=16)
def _minimum_phase_bank(in_rate: int, out_rate: int) -> tuple[np.ndarray, int, int, float]:
    """The polyphase bank of ``in_rate -> out_rate``: ``(bank, L, M, delay)``.

    ``bank[p, r]`` is tap ``p + r*L`` of a minimum-phase low-pass at ``in_rate * L`` (``L/M`` the
    reduced ratio), scaled so that every phase passes DC at unit gain; ``delay`` is its group delay
    at 1 kHz in output samples.  The linear-phase prototype is a Kaiser-window design for 160 dB (the
    homomorphic minimum-phase step halves the dB: 75 dB and more past the lower Nyquist frequency),
    flat to 90 % of it.  Cached (the 44.1 <-> 48 kHz bank, 160 phases of 106 taps, takes 0.1 s).
    """
    from scipy import signal

    g = math.gcd(in_rate, out_rate)
    L, M = out_rate // g, in_rate // g
    fs = in_rate * L
    nyquist = min(in_rate, out_rate) / 2
    n, beta = signal.kaiserord(160.0, 0.1 * nyquist / (fs / 2))
    h = signal.firwin(n | 1, 0.95 * nyquist, window=("kaiser", beta), fs=fs)
    # an FFT 16x the filter (scipy's default is 100x: 2 s for 44.1 kHz) keeps the response to 0.001 dB
    h = signal.minimum_phase(h, method="homomorphic", n_fft=1 << math.ceil(math.log2(16 * len(h))))
    _, gd = signal.group_delay((h, [1.0]), w=[1000.0], fs=fs)
    R = -(-len(h) // L)
    taps = np.zeros(R * L)
    taps[: len(h)] = h
    bank = taps.reshape(R, L).T  # bank[p, r] = h[p + r*L]
    bank = bank / bank.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(bank, np.float32), L, M, float(gd[0]) / M


class MinimumPhaseResampler:
    """A causal polyphase resampler with soxr's stream interface, for the least delay.

    Output sample ``m`` is at input time ``m * in_rate / out_rate``; it is computed, from the
    input samples up to that time only, as soon as they are in (no chunks, nothing withheld),
    so after ``N`` input frames exactly ``ceil(N * out_rate / in_rate)`` output frames have
    come out, whatever the chunk sizes.  :attr:`delay`: the filter's group delay at 1 kHz in
    output frames (a minimum-phase filter's delay is least at low frequencies and grows
    towards its cutoff).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int) -> None:
        self._bank, self._L, self._M, self.delay = _minimum_phase_bank(int(in_rate), int(out_rate))
        self._rev = np.ascontiguousarray(self._bank[:, ::-1])  # oldest tap first, as a window holds them
        self.channels = int(channels)
        self.clear()

    def clear(self) -> None:
        R = self._bank.shape[1]
        self._hist = np.zeros((R - 1, self.channels), np.float32)  # input before the chunk, oldest first
        self._n_in = 0  # input frames taken
        self._n_out = 0  # output frames given

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        x = x[:, None] if x.ndim == 1 else x  # (frames, channels); other channel counts fail to concatenate
        R = self._bank.shape[1]
        buf = np.concatenate([self._hist, x]) if x.shape[0] else self._hist
        self._n_in += x.shape[0]
        first = self._n_in - x.shape[0] - (R - 1)  # input index of buf[0]
        end = -(-self._n_in * self._L // self._M)  # outputs whose input time is in: m*M <= (n_in - 1)*L + L - 1
        m = np.arange(self._n_out, end, dtype=np.int64)
        self._n_out = end
        self._hist = buf[buf.shape[0] - (R - 1):].copy()
        if m.size == 0:
            return np.zeros((0, self.channels), np.float32)
        t = m * self._M
        start = t // self._L - first - (R - 1)  # window (buf rows start .. start + R - 1) each output uses
        phase = t - (t // self._L) * self._L
        windows = np.lib.stride_tricks.sliding_window_view(buf, R, axis=0)  # (rows, channels, R), no copy
        if self._L > 8:  # 44.1 <-> 48 kHz: 147-160 phases, about one output each per block
            return np.einsum("ncr,nr->nc", windows[start], self._rev[phase], dtype=np.float32)
        # few phases (16/32 <-> 48 kHz): outputs L apart share a phase and their windows are M rows apart
        y = np.empty((m.size, self.channels), np.float32)
        for k in range(min(self._L, m.size)):
            s0, n = int(start[k]), len(range(k, m.size, self._L))
            y[k::self._L] = windows[s0: s0 + self._M * (n - 1) + 1: self._M] @ self._rev[phase[k]]
        return y


class Resampler:
    """``in_rate`` -> ``out_rate`` for ``(frames, channels)`` float32 chunks, state carried between calls.

    Parameters
    ----------
    in_rate, out_rate : int
        Hz.
    channels : int
    quality : str
        One of :data:`QUALITIES`: ``"LL"`` (:class:`MinimumPhaseResampler`) or a soxr quality.
        ``"LL"`` between rates whose ratio needs more than :data:`MAX_PHASES` phases becomes
        ``"LQ"`` (:attr:`quality` says which ran).

    Attributes
    ----------
    delay : float
        Output frames by which the filter delays what it releases at once (``"LL"``: its
        group delay at 1 kHz); 0 for soxr, which withholds its (linear-phase) delay instead.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ") -> None:
        if quality not in QUALITIES:
            raise ConfigError(f"resampler quality must be one of {', '.join(QUALITIES)}, got {quality!r}.")
        self.in_rate, self.out_rate, self.channels = int(in_rate), int(out_rate), int(channels)
        if quality == "LL" and self.out_rate // math.gcd(self.in_rate, self.out_rate) > MAX_PHASES:
            quality = "LQ"  # a bank of that many phases would take minutes to design
        self.quality = quality
        if quality == "LL":
            self._rs = MinimumPhaseResampler(self.in_rate, self.out_rate, self.channels)
            self.delay = self._rs.delay
        else:
            import soxr

            self._rs = soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32",
                                           quality=quality)
            self.delay = 0.0

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
        One of :data:`QUALITIES`.

    Attributes
    ----------
    latency : int
        Device frames from input to output: the FIFO's prefill (what the resamplers withhold)
        plus the filters' delay (:attr:`Resampler.delay` of both directions), rounded.
    """

    def __init__(self, device_rate: int, model_rate: int, channels: int, block_size: int, quality: str = LIVE_QUALITY) -> None:
        from .live.rings import FrameRing

        if quality not in QUALITIES:
            raise ConfigError(f"resampler quality must be one of {', '.join(QUALITIES)}, got {quality!r}.")
        if not (0.05 <= model_rate / device_rate <= 20):
            raise ConfigError(
                f"the model runs at {model_rate} Hz and the device at {device_rate} Hz, a ratio "
                "beyond 20; open the device at a rate closer to the model's (--sample-rate)."
            )
        self.device_rate, self.model_rate = int(device_rate), int(model_rate)
        self.channels = int(channels)
        self._mk = lambda a, b: Resampler(a, b, self.channels, quality)
        self._down = self._mk(self.device_rate, self.model_rate)
        self._up = self._mk(self.model_rate, self.device_rate)
        self.quality = self._down.quality  # "LL" may have fallen back to soxr at an awkward ratio
        self._withheld = self._calibrate(block_size)
        self.latency = self._withheld + round(self._down.delay * self.device_rate / self.model_rate + self._up.delay)
        self._fifo = FrameRing(self._withheld + 64 * block_size + 8192, self.channels)
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
        if self._withheld:
            self._fifo.write(np.zeros((self._withheld, self.channels), np.float32))

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
