"""The DSP core of live audio: model, mix, gain, limiter, meters, stats.

:class:`LiveProcessor` knows nothing about devices: ``process(block)`` is
what an audio callback calls, and everything else (swap, parameters,
meters, displays, stats) is meant for other threads.  See :mod:`rtconv.live`
for the real-time contract it keeps.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, RtconvError
from ..models import Model
from ..streaming import Streamer
from .gate import GATE_DEFAULTS, DelayLine, Gate
from .resample import RateBridge
from .rings import DisplayRing

__all__ = ["LiveProcessor"]

_LIMIT_DB = -1.0  # safety limiter ceiling, dBFS
_RELEASE_S = 0.2  # limiter gain recovers from 0 to 1 in this time
_STATS_WINDOW = 8192  # block times kept for median/p99


def _db(x) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.asarray(x, np.float64), 1e-10))


class _Chain:
    """One model ready to stream at the device rate: resampler + streamer."""

    def __init__(self, model: Model, rate: int, channels: int, block_size: int, threads, quality: str,
                 engine: str = "torch") -> None:
        if not isinstance(model, Model):
            raise ConfigError(f"the live processor needs an rtconv model, got {type(model).__name__}.")
        self.model = model
        # the block size at the model's rate guides the direct/FFT/matmul plan per layer
        model_block = max(1, round(block_size * int(model.sample_rate or rate) / rate))
        self.streamer = Streamer(model, channels=channels, threads=threads, block_size=model_block, engine=engine)
        if self.streamer.out_channels != channels:
            raise ConfigError(
                f"this model turns {channels} channel(s) into {self.streamer.out_channels}, but the "
                f"live stream needs {channels} out; use a model with as many outputs as inputs."
            )
        self.model_rate = int(model.sample_rate or rate)
        self.bridge = None if self.model_rate == rate else RateBridge(rate, self.model_rate, channels, block_size, quality)
        self.model_latency = round(self.streamer.latency * rate / self.model_rate)  # device frames
        self.resampler_latency = 0 if self.bridge is None else self.bridge.latency
        self.latency = self.model_latency + self.resampler_latency

    def reset(self) -> None:
        self.streamer.reset()
        if self.bridge is not None:
            self.bridge.reset()

    def process(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.bridge is None:
            out[:] = self.streamer.process(x)
        else:
            self.bridge.process(x, self.streamer.process, out)


class LiveProcessor:
    """Run a model on live audio blocks, with mix, gain, limiter and hot swap.

    Parameters
    ----------
    model : rtconv.models.Model or path
        The model to start with (a path is loaded with :func:`rtconv.load`).
    samplerate : int
        Device sample rate in Hz; a model trained at another rate runs
        behind streaming resamplers (:mod:`rtconv.live.resample`).
    channels : int
        Audio channels in and out.  A mono model runs once per channel.
    block_size : int
        Device frames per call (any size works; this sizes buffers).
    threads : int
        Torch threads for the model (process-wide setting).
    crossfade_ms : float
        Length of the crossfade when a new model is swapped in, ms.
    resample_quality : str
        soxr quality used when the model rate differs from ``samplerate``.
    realtime_check : bool
        Refuse a model whose fastest warm-up block takes more than four
        times the block's duration (it could never keep up); turn off to
        use the processor offline.
    engine : {"torch", "onnx"}
        What computes each block (:class:`rtconv.Streamer`'s ``engine``):
        ``"onnx"`` runs the model's exported step in onnxruntime (the
        ``onnx`` extra), 1.3-1.5x faster per block for the denoiser in
        ``rtconv bench export``; swapped-in models use it too.
    vad : rtconv.models.Model or path, optional
        A voice-activity model (task ``vad``, one probability track; the
        shipped one is ``models/vad.safetensors``) run on the mix of the
        input channels: :attr:`speech_probability` shows it and :attr:`gate`
        silences the output between speech.  While the gate is on the whole
        output waits for the VAD's decisions: :attr:`latency` becomes the
        larger of the model's and the VAD's (9.98 ms for the shipped one);
        with the gate off the VAD only feeds the meter and adds nothing.

    Attributes
    ----------
    bypass : bool
        Output the input (delayed by the latency, so toggling does not jump).
    wet : float
        0..1 mix of the model output with the input delayed to align with it.
    gain_db : float
        Output gain in dB, applied after the mix.
    limiter : bool
        Safety limiter at -1 dBFS on the output (on by default).
    gate : bool
        With a ``vad``: silence the output between speech (off by default).
    gate_threshold, gate_hold, gate_attack, gate_release, gate_floor_db : float
        The gate opens at this probability (rising with a ``gate_attack``-second
        time constant) and closes after it stayed below ``gate_threshold - 0.15``
        for ``gate_hold`` seconds, fading with a ``gate_release``-second time
        constant to ``gate_floor_db`` (``-inf``: silence); see
        :class:`rtconv.live.gate.Gate`.
    """

    def __init__(
        self,
        model,
        samplerate: int,
        channels: int = 1,
        block_size: int = 128,
        threads: int = 1,
        crossfade_ms: float = 20.0,
        resample_quality: str = "LQ",
        realtime_check: bool = True,
        engine: str = "torch",
        vad=None,
    ) -> None:
        for name, v in (("samplerate", samplerate), ("channels", channels), ("block_size", block_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}.")
        self.samplerate, self.channels, self.block_size = int(samplerate), int(channels), int(block_size)
        self.threads = threads
        self.crossfade_ms = float(crossfade_ms)
        self.resample_quality = resample_quality
        self.realtime_check = realtime_check
        self.engine = engine
        self._chain = self._build(self._load(model), threads)
        self._pending: tuple[int, _Chain] | None = None  # (sequence, chain): written by swappers only
        self._taken = 0  # last sequence picked up: written by the audio thread only
        self._seq = 0
        self._swap_lock = threading.Lock()  # serializes swappers, never taken by the audio thread
        self._fade: tuple[_Chain, int] | None = None  # (old chain, frames of fade done)
        self._retired: list[_Chain] = []
        self.swaps = 0

        self.bypass = False
        self.wet = 1.0
        self.gain_db = 0.0
        self.limiter = True
        self._state = np.array([0.0, 1.0, 1.0])  # bypass mix, wet, gain as applied at the last block end
        self._env = 1.0
        self._release = 1.0 / (_RELEASE_S * self.samplerate)
        self._ceiling = 10 ** (_LIMIT_DB / 20)

        ch = self.channels
        self._dry = DisplayRing(1 << max(12, math.ceil(math.log2(self.samplerate * 2))), ch)
        self.display_ring = DisplayRing(1 << max(12, math.ceil(math.log2(self.samplerate * 2))), 2 * ch)
        self._times = np.zeros(_STATS_WINDOW)
        self._max_ms = 0.0
        self._meter = np.full((4, ch), 0.0)  # in peak, in mean square, out peak, out mean square
        self._clips = np.zeros(2, np.int64)  # input samples at full scale, output samples limited or clipped
        self._clips_seen = np.zeros(2, np.int64)
        self.blocks = 0
        self.frames = 0
        self.input_overflows = 0
        self.output_underflows = 0
        self.model_errors = 0
        self.internal_errors = 0
        self.last_error = ""
        self.device_latency = (0.0, 0.0)  # seconds, set by the stream
        self.buffering_latency = 0  # frames, set by the stream (worker-thread safety blocks)
        self._warned_errors = 0
        self._last_warn = 0.0
        self._ramps: dict[int, np.ndarray] = {}
        self._out = np.zeros((max(self.block_size, 4096), ch), np.float32)
        self._wet_out = np.zeros_like(self._out)
        self._new_out = np.zeros_like(self._out)

        self.gate = False
        self.gate_threshold = GATE_DEFAULTS["threshold"]
        self.gate_hold = GATE_DEFAULTS["hold"]
        self.gate_release = GATE_DEFAULTS["release"]
        self.gate_attack = GATE_DEFAULTS["attack"]
        self.gate_floor_db = GATE_DEFAULTS["floor_db"]
        self._speech = np.zeros(3)  # latest probability, gate gain, gate open: shared with displays
        self.vad_errors = 0
        self._vad = None if vad is None else self._build_vad(vad)
        self.vad_path = os.fspath(vad) if isinstance(vad, (str, os.PathLike)) else None

    # ------------------------------------------------------------------ voice activity
    def _build_vad(self, vad) -> _Chain:
        what = f" {os.fspath(vad)!r}" if isinstance(vad, (str, os.PathLike)) else ""
        try:
            model = self._load(vad)
            if (getattr(model, "metadata", None) or {}).get("task") not in ("vad", None):
                raise ConfigError(f"it is a {model.metadata['task']!r} model, not a voice-activity detector (task 'vad')")
            chain = _Chain(model, self.samplerate, 1, self.block_size, None, self.resample_quality, self.engine)
        except ConfigError as e:
            msg = str(e).rstrip(".")
            raise ConfigError(f"the VAD{what} cannot gate this stream: {msg[:1].lower() + msg[1:]}; "
                              "use models/vad.safetensors or a model trained with `rtconv train vad`.") from None
        except RtconvError as e:
            raise type(e)(f"the VAD{what} cannot gate this stream: {e}") from None
        n = max(self.block_size, 4096)
        self._mono = np.zeros((n, 1), np.float32)
        self._prob = np.zeros((n, 1), np.float32)
        self._gains = np.zeros(n, np.float64)
        self._gate = Gate(self.samplerate, max_block=n)
        self._gate.gain = 1.0  # start open-faded: a gate switched on fades the first noise out
        self._post = DelayLine(chain.latency + n, self.channels)
        # before the first decisions: open (never silence speech by default)
        self._prob_line = DelayLine(max(0, self._chain.latency - chain.latency) + n, 1, fill=1.0)
        warm = np.zeros((self.block_size, 1), np.float32)
        for _ in range(4):
            chain.process(warm, self._prob[: self.block_size])
        chain.reset()
        return chain

    @property
    def has_vad(self) -> bool:
        return self._vad is not None

    @property
    def vad_latency(self) -> int:
        """Device frames the VAD needs before it judges a sample (0 without one)."""
        return 0 if self._vad is None else self._vad.latency

    @property
    def gate_delay(self) -> int:
        """Frames the output waits, beyond the model's latency, for the VAD's decisions (while :attr:`gate` is on)."""
        return 0 if self._vad is None or not self.gate else max(0, self._vad.latency - self._chain.latency)

    @property
    def speech_probability(self) -> float | None:
        """The VAD's latest probability (None without a VAD)."""
        return None if self._vad is None else float(self._speech[0])

    def gate_state(self) -> dict[str, Any] | None:
        """The gate's latest state for displays: probability, gain in dB, open; None without a VAD."""
        if self._vad is None:
            return None
        p, g, is_open = self._speech
        return {"probability": float(p), "gain_db": float(_db(g)), "open": bool(is_open),
                "on": bool(self.gate)}

    # ------------------------------------------------------------------ models
    def _load(self, model_or_path) -> Model:
        if isinstance(model_or_path, Model):
            return model_or_path
        if isinstance(model_or_path, (str, os.PathLike)):
            from .. import checkpoint  # the checkpoint module is optional at import of rtconv.live

            return checkpoint.load(model_or_path)
        raise ConfigError(f"expected an rtconv model or a checkpoint path, got {type(model_or_path).__name__}.")

    def _build(self, model: Model, threads) -> _Chain:
        chain = _Chain(model, self.samplerate, self.channels, self.block_size, threads, self.resample_quality,
                       self.engine)
        # Warm up off the audio thread: first calls allocate buffers and plan kernels.
        x = np.zeros((self.block_size, self.channels), np.float32)
        out = np.zeros_like(x)
        times = []
        for _ in range(8):
            t = time.perf_counter()
            chain.process(x, out)
            times.append(time.perf_counter() - t)
        if not np.isfinite(out).all():
            raise ConfigError("the model produces non-finite output on silence, so it was not swapped in.")
        budget = self.block_size / self.samplerate
        chain.warmup_ms = min(times) * 1e3
        if self.realtime_check and min(times) > 4 * budget:
            raise ConfigError(
                f"the model needs {min(times) * 1e3:.2f} ms for a {self.block_size}-frame block but "
                f"real time allows {budget * 1e3:.2f} ms; use a larger block size or a smaller model."
            )
        chain.reset()
        return chain

    @property
    def model(self) -> Model:
        """The model currently playing."""
        return self._chain.model

    @property
    def latency(self) -> int:
        """Device frames from input to output: the wet path (model + resampler), or the VAD's when longer."""
        return self._chain.latency + self.gate_delay

    @property
    def swap_pending(self) -> bool:
        p = self._pending
        return p is not None and p[0] > self._taken

    def request_swap(self, model_or_path) -> None:
        """Load, validate and warm up a model here, then hand it to the audio thread.

        The audio thread switches at the next block boundary with a
        crossfade of ``crossfade_ms``.  If the model cannot be loaded or does
        not fit this stream, :class:`rtconv.RtconvError` says why and the
        running model keeps playing.
        """
        what = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None
        try:
            model = self._load(model_or_path)
            chain = self._build(model, None)
            if self._vad is not None:  # the VAD's decisions wait for a slower model: room to delay them
                need = max(0, chain.latency - self._vad.latency) + self._prob.shape[0]
                if need > self._prob_line.capacity:
                    chain.prob_line = DelayLine(need, 1, fill=1.0)
        except RtconvError as e:
            where = f" {os.fspath(what)!r}" if what is not None else ""
            raise type(e)(f"model{where} not swapped in, the running one keeps playing: {e}") from None
        except Exception as e:  # a broken model must not take the caller down
            raise CheckpointError(f"model not swapped in ({type(e).__name__}: {e}); the running one keeps playing.") from None
        with self._swap_lock:
            self._retired.clear()  # freed here, not on the audio thread
            self._seq += 1
            self._pending = (self._seq, chain)

    def adopt_pending(self) -> None:
        """Take a requested swap now, without a crossfade.

        For a processor that does not play: when the stream runs in an audio
        process (:mod:`rtconv.live.host`), the copy there crossfades, and
        this one only has to show the same model.
        """
        pend = self._pending
        if pend is not None and pend[0] > self._taken:
            self._taken = pend[0]
            self._chain = pend[1]
            self._fade = None
            self.swaps += 1

    def wait_swapped(self, timeout: float = 5.0) -> bool:
        """Block (in a non-audio thread) until a requested swap took effect."""
        end = time.monotonic() + timeout
        while self.swap_pending or self._fade is not None:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    # ------------------------------------------------------------------ audio thread
    def _ramp(self, n: int) -> np.ndarray:
        r = self._ramps.get(n)
        if r is None:
            r = self._ramps[n] = (np.arange(1, n + 1, dtype=np.float32) / n)[:, None]
        return r

    def _run(self, chain: _Chain, x: np.ndarray, out: np.ndarray) -> bool:
        try:
            chain.process(x, out)
            if np.isfinite(out).all():
                return True
            self.last_error = "the model produced NaN or Inf"
        except Exception as e:  # the audio thread must never die of a model
            self.last_error = f"{type(e).__name__}: {e}"
        self.model_errors += 1
        chain.reset()  # NaN in the history would poison every later block
        return False

    def process(self, indata: np.ndarray) -> np.ndarray:
        """Process one device block ``(frames, channels)``; return the output block.

        Never raises.  The returned array is reused by the next call: copy it
        (``outdata[:] = ...``) before calling again.
        """
        t0 = time.perf_counter()
        n = indata.shape[0]
        try:
            if n > self._out.shape[0]:
                for name in ("_out", "_wet_out", "_new_out"):
                    setattr(self, name, np.zeros((n, self.channels), np.float32))
            if self._vad is not None and n > self._prob.shape[0]:  # Gate splits long blocks itself
                self._mono, self._prob = np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32)
                self._gains = np.zeros(n, np.float64)
            out = self._out[:n]
            x = indata if indata.dtype == np.float32 else indata.astype(np.float32)
            self._process(x, out)
        except Exception as e:  # pragma: no cover - a bug here must not stop the audio
            self.internal_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            out = self._out[:n]
            out[:] = 0
        dt = time.perf_counter() - t0
        self._times[self.blocks % _STATS_WINDOW] = dt
        if dt > self._max_ms / 1e3:
            self._max_ms = dt * 1e3
        self.blocks += 1
        self.frames += n
        return out

    def _process(self, x: np.ndarray, out: np.ndarray) -> None:
        n = x.shape[0]
        pend = self._pending
        if pend is not None and pend[0] > self._taken and self._fade is None:
            self._taken = pend[0]
            self._fade = (self._chain, 0)
            self._chain = pend[1]
            line = getattr(pend[1], "prob_line", None)
            if line is not None:
                self._prob_line = line
        chain = self._chain
        wet = self._wet_out[:n]
        ok = self._run(chain, x, wet)
        fade_len = max(1, int(self.crossfade_ms * self.samplerate / 1000))
        clean = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) if not np.isfinite(x).all() else x
        self._dry.write(clean)
        dry = self._delayed(chain.latency, n)
        if self._fade is not None:
            old, done = self._fade
            prev = self._new_out[:n]
            ok_old = self._run(old, x, prev)
            if not ok_old:
                prev[:] = self._delayed(old.latency, n)
            if not ok:
                wet[:] = dry
            w = np.minimum((done + np.arange(1, n + 1, dtype=np.float32)) / fade_len, 1)[:, None]
            wet[:] = prev + w * (wet - prev)
            done += n
            if done >= fade_len:
                self._retired.append(old)
                self._fade = None
                self.swaps += 1
            else:
                self._fade = (old, done)
        elif not ok:
            wet[:] = dry
        # parameter ramps over the block, from the last applied values
        r = self._ramp(n)
        target = np.array([1.0 if self.bypass else 0.0, min(max(float(self.wet), 0.0), 1.0), 10 ** (float(self.gain_db) / 20)])
        a = (self._state[:, None, None] + (target - self._state)[:, None, None] * r[None]).astype(np.float32)
        self._state = target
        byp, mix, gain = a[0], a[1], a[2]
        # out = bypass ? dry : gain * (dry + mix * (wet - dry))
        out[:] = dry + mix * (wet - dry)
        out *= gain
        out += byp * (dry - out)
        if self._vad is not None:
            self._speech_gate(clean, out)
        if self.limiter:
            self._limit(out)
        # meters: peak hold with 20 dB/s fall, mean square with a 300 ms time constant
        dur = n / self.samplerate
        fall = 10 ** (-20 * dur / 20)
        k = 1 - math.exp(-dur / 0.3)
        m = self._meter
        for i, blk in ((0, x), (2, out)):
            pk = np.abs(blk).max(axis=0) if n else 0.0
            np.maximum(pk, m[i] * fall, out=m[i])
            m[i + 1] += k * ((blk.astype(np.float64) ** 2).mean(axis=0) - m[i + 1]) if n else 0.0
        self._clips[0] += int(np.count_nonzero(np.abs(x) >= 0.999))
        self.display_ring.write(x, out)

    def _speech_gate(self, x: np.ndarray, out: np.ndarray) -> None:
        """Run the VAD on the input's mix, line output and decisions up, apply the gate's gains."""
        n = x.shape[0]
        vad = self._vad
        mono, prob, gains = self._mono[:n], self._prob[:n], self._gains[:n]
        if x.shape[1] > 1:
            np.mean(x, axis=1, out=mono[:, 0])
        else:
            np.copyto(mono, x)
        try:
            vad.process(mono, prob)
            ok = bool(np.isfinite(prob).all())
        except Exception as e:  # the audio thread must never die of a model
            self.last_error = f"VAD: {type(e).__name__}: {e}"
            ok = False
        if not ok:
            self.vad_errors += 1
            vad.reset()
            prob[:] = 1.0  # a broken VAD opens the gate: it must never silence speech
        self._speech[0] = prob[-1, 0] if n else self._speech[0]
        # the output waits for the VAD, or the decisions wait for a slower model
        # (only while gating: a VAD that only feeds a meter costs no latency; switching the gate
        # shifts the output by the difference once, like a swap to a model of another latency)
        self._post.process(out, self.gate_delay, out)
        self._prob_line.process(prob, max(0, self._chain.latency - vad.latency), prob)
        g = self._gate
        g.threshold, g.hold, g.attack, g.release, g.floor_db = (
            float(self.gate_threshold), float(self.gate_hold), float(self.gate_attack), float(self.gate_release),
            float(self.gate_floor_db))
        g.gains(prob[:, 0], gains, force_open=self.bypass or not self.gate)
        out *= gains[:, None]
        self._speech[1] = g.gain
        self._speech[2] = 1.0 if g.open else 0.0

    def _delayed(self, delay: int, n: int) -> np.ndarray:
        ring = self._dry
        w = ring.written
        idx = np.arange(w - n - delay, w - delay) % ring.capacity
        d = ring._buf[idx]
        if w - delay - n < 0:
            d[: min(n, n + delay - w)] = 0
        return d

    def _limit(self, y: np.ndarray) -> None:
        n = y.shape[0]
        a = np.abs(y).max(axis=1).astype(np.float64)
        over = a > self._ceiling
        if not over.any() and self._env >= 1.0:
            return
        req = np.ones(n)
        np.divide(self._ceiling, a, out=req, where=over)
        i = np.arange(n)
        rel = self._release
        # env[t] = min(1, req[t], env[t-1] + rel), solved for the whole block at once
        env = np.minimum(np.minimum.accumulate(req - rel * i) + rel * i, self._env + rel * (i + 1))
        np.minimum(env, 1.0, out=env)
        self._env = float(env[-1])
        self._clips[1] += int(np.count_nonzero(over))
        y *= env[:, None].astype(np.float32)

    # ------------------------------------------------------------------ observers
    def note_status(self, input_overflow: bool = False, output_underflow: bool = False) -> None:
        """Count device-reported xruns (called by the stream callback)."""
        self.input_overflows += bool(input_overflow)
        self.output_underflows += bool(output_underflow)

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

    @property
    def shared_nbytes(self) -> int:
        """Bytes :meth:`share` needs: display ring, meters and clip counters."""
        return self.display_ring.nbytes + self._meter.nbytes + self._clips.nbytes + self._speech.nbytes

    def share(self, memory) -> None:
        """Keep what displays read (display ring, meters, clips) in ``memory``.

        ``memory`` is a writable buffer of :attr:`shared_nbytes`, e.g. a
        :class:`multiprocessing.shared_memory.SharedMemory`'s ``buf``.  The
        audio process and the GUI's process each call this on their own
        processor with the same block, so :meth:`read_display` and
        :meth:`meters` in one show what the other plays.
        """
        mem = memoryview(memory)
        a = self.display_ring.nbytes
        b = a + self._meter.nbytes
        self.display_ring.share(mem[:a])
        meter = np.frombuffer(mem[a:b], np.float64).reshape(self._meter.shape)
        c = b + self._clips.nbytes
        clips = np.frombuffer(mem[b:c], np.int64)
        speech = np.frombuffer(mem[c : c + self._speech.nbytes], np.float64)
        meter[:], clips[:], speech[:] = self._meter, self._clips, self._speech
        self._meter, self._clips, self._speech = meter, clips, speech

    def read_display(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The most recent ``n`` frames of input and output, each ``(n, channels)``."""
        both = self.display_ring.read_latest(n)
        return both[:, : self.channels], both[:, self.channels :]

    @property
    def display_drops(self) -> int:
        return self.display_ring.dropped

    def stats(self) -> dict[str, Any]:
        """Counters, block times against the budget, CPU load and the latency breakdown."""
        k = min(self.blocks, _STATS_WINDOW)
        t = np.sort(self._times[:k]) * 1e3 if k else np.zeros(1)
        budget = self.block_size / self.samplerate * 1e3
        avg_block = self.frames / self.blocks if self.blocks else self.block_size
        chain = self._chain
        ms = lambda frames: frames / self.samplerate * 1e3  # noqa: E731
        dev_in, dev_out = self.device_latency
        lat = {
            "model_ms": ms(chain.model_latency),
            "resampler_ms": ms(chain.resampler_latency),
            "gate_ms": ms(self.gate_delay),
            "buffering_ms": ms(self.buffering_latency),
            "device_in_ms": dev_in * 1e3,
            "device_out_ms": dev_out * 1e3,
        }
        lat["total_ms"] = sum(lat.values())
        bridge = chain.bridge
        return {
            "blocks": self.blocks,
            "frames": self.frames,
            "seconds": self.frames / self.samplerate,
            "samplerate": self.samplerate,
            "model_rate": chain.model_rate,
            "block_size": self.block_size,
            "channels": self.channels,
            "input_overflows": self.input_overflows,
            "output_underflows": self.output_underflows,
            "model_errors": self.model_errors,
            "internal_errors": self.internal_errors,
            "nonfinite_samples": chain.streamer.nonfinite_samples,
            "resampler_underruns": 0 if bridge is None else bridge.underruns,
            "swaps": self.swaps,
            "display_drops": self.display_ring.dropped,
            "block_ms": {
                "median": float(np.median(t)),
                "p99": float(t[min(len(t) - 1, int(0.99 * len(t)))]),
                "max": float(self._max_ms),
                "budget": budget * avg_block / self.block_size,
            },
            "cpu_load": float(t.mean() / (budget * avg_block / self.block_size)) if k else 0.0,
            "latency": lat,
            "latency_frames": self.latency + self.buffering_latency,
            "gate": None if self._vad is None else {
                **self.gate_state(), "opened": self._gate.opened, "vad_errors": self.vad_errors,
                "vad_latency_ms": ms(self._vad.latency)},
            "last_error": self.last_error,
        }

    def poll_warnings(self, interval: float = 1.0) -> list[str]:
        """New problems as sentences, at most once per ``interval`` seconds (call from a non-audio thread)."""
        now = time.monotonic()
        if now - self._last_warn < interval:
            return []
        out = []
        errors = self.model_errors + self.internal_errors
        if errors > self._warned_errors:
            out.append(
                f"{errors - self._warned_errors} block(s) passed dry because the model failed "
                f"({self.last_error}); the stream keeps running."
            )
            self._warned_errors = errors
        if out:
            self._last_warn = now
        return out
