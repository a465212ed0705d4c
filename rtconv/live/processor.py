"""The audio callback's work: a model chain, a mixer and a monitor, with hot swap.

:class:`LiveProcessor` knows nothing about devices: ``process(block)`` is
what an audio callback calls, and everything else (swap, controls, stats)
is meant for other threads.  Its three parts each have one job:

* :class:`~rtconv.live.chain.ModelChain`: the model streaming at the device
  rate (checkpoint, resampler, latency, warm-up);
* :class:`~rtconv.live.mixer.Mixer`: dry/wet, bypass, gain, crossfade,
  limiter;
* :class:`~rtconv.live.monitor.Monitor`: what displays read (meters,
  display ring, voice state, block times), shareable with another process.

See :mod:`rtconv.live` for the real-time contract it keeps.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import numpy as np

from ..audio import all_finite, zero_nonfinite
from ..errors import CheckpointError, ConfigError, RtconvError
from ..models import Model
from .chain import ModelChain, apply_switches, load_model, model_switches
from .gate import SpeechGate
from .mixer import Mixer
from .monitor import Monitor
from .settings import MAX_BLOCK, StreamSettings

__all__ = ["LiveProcessor", "CONTROLS"]

# the gate's controls and the SpeechGate attributes they set
_GATE = {"gate": "on", "gate_threshold": "threshold", "gate_hold": "hold", "gate_release": "release",
         "gate_attack": "attack", "gate_floor_db": "floor_db"}
#: The controls :meth:`LiveProcessor.set_controls` takes (the CLI's and the GUI's knobs).
CONTROLS = Mixer.CONTROLS + tuple(_GATE)
# a swapped-in model warms up unheard beside the playing one only while the two fastest blocks together
# take at most this share of a block: typical blocks run about twice the fastest, and a quarter second of
# blocks over the budget is a quarter second of dropouts
_WARM_SHARE = 0.5


def _lower(a: float | None, b: float | None) -> float | None:
    """The lower of two gains, either of which may be missing (``None``: no level guard)."""
    return b if a is None else a if b is None else min(a, b)


class LiveProcessor:
    """Run a model on live audio blocks, with mix, gain, limiter, speech gate and hot swap.

    Parameters
    ----------
    model : rtconv.models.Model or path
        The model to start with (a name or path is resolved and loaded).
    settings : StreamSettings
        Rate, channels, block size, resampler quality, threads, engine and
        crossfade length.
    switches : mapping, optional
        Model switches (``attenuation_limit_db``, ``linked``) set on ``model``.
    vad : rtconv.models.Model or path, optional
        A voice-activity model (task ``vad``; the shipped one is
        ``models/vad.safetensors``) run on the mix of the input channels:
        the monitor shows its probability and the ``gate`` control silences
        the output between speech.  While the gate is on, the whole output
        waits for the VAD's decisions (:attr:`latency` becomes the larger of
        the model's and the VAD's); with the gate off it adds nothing.
    realtime_check : bool
        Refuse a model whose fastest warm-up block takes more than four times
        the block's duration (it could never keep up), and swap a model in
        without its unheard warm-up where the playing and the new model
        together would not keep up during it (:meth:`request_swap`).

    Attributes
    ----------
    chain : ModelChain
        The model playing now.
    mixer : Mixer
    monitor : Monitor
    speech : SpeechGate or None
    """

    def __init__(self, model, settings: StreamSettings, *, switches=None, vad=None,
                 realtime_check: bool = True) -> None:
        if not isinstance(settings, StreamSettings):
            raise ConfigError(f"settings must be a StreamSettings, got {type(settings).__name__}.")
        self.settings = settings
        self.realtime_check = realtime_check
        self.chain = ModelChain(model, settings, switches=switches, realtime_check=realtime_check)
        self.mixer = Mixer(settings.sample_rate, settings.channels, settings.crossfade_ms)
        self.monitor = Monitor(settings.sample_rate, settings.channels)
        self.speech = None if vad is None else self._speech_gate(vad)
        if self.speech is not None:
            self.monitor.set_speech(0.0, self.speech.gain, False, False, self.speech.threshold)
        self.vad_path = os.fspath(vad) if isinstance(vad, (str, os.PathLike)) else None

        self._pending: tuple[int, ModelChain, Any] | None = None  # (sequence, chain, decision line): swappers
        self._taken = 0  # last sequence picked up: written by the audio thread only
        self._seq = 0
        self._swap_lock = threading.Lock()  # serializes swappers, never taken by the audio thread
        self._fade: tuple[ModelChain, int] | None = None  # (old chain, frames of fade done)
        # (sequence, chain, decision line, frames heard so far): a swapped-in chain running unheard
        # until its history is filled (ModelChain.warm_frames); audio thread only
        self._warming: tuple[int, ModelChain, Any, int] | None = None
        self._retired: list[ModelChain] = []
        self._level_min_db: float | None = None  # the level guard's lowest gain in chains swapped out
        self.swaps = 0

        ch = settings.channels
        n = max(settings.block_size, 4096)
        self._out = np.zeros((n, ch), np.float32)
        self._wet = np.zeros_like(self._out)
        self._old = np.zeros_like(self._out)
        self._unheard = np.zeros_like(self._out)
        self._dry = np.zeros_like(self._out)
        self.input_overflows = 0
        self.output_underflows = 0
        self.dropouts = 0  # blocks the device reported an overflow or an underflow for (one xrun flags both)
        self.model_errors = 0
        self.internal_errors = 0
        self.last_error = ""
        self.device_latency = (0.0, 0.0)  # seconds, set by the stream
        self._warned_errors = 0
        self._warned_xruns = 0
        self._last_warn = 0.0
        self._notes: list[str] = []  # sentences for poll_warnings, appended by non-audio threads

    def _speech_gate(self, vad) -> SpeechGate:
        what = f" {os.fspath(vad)!r}" if isinstance(vad, (str, os.PathLike)) else ""
        try:
            # what it is comes first: a separator's two outputs are not why it cannot gate
            model = load_model(vad)
            task = (getattr(model, "metadata", None) or {}).get("task")
            if task not in ("vad", None):
                raise ConfigError(f"it is a {task!r} model, not a voice-activity detector (task 'vad')")
            chain = ModelChain(model, self.settings, channels=1, realtime_check=False, threads=False, sound=False)
        except ConfigError as e:
            msg = str(e).rstrip(".")
            raise ConfigError(f"the VAD{what} cannot gate this stream: {msg[:1].lower() + msg[1:]}; "
                              "use models/vad.safetensors or a model trained with `rtconv train vad`.") from None
        except RtconvError as e:
            raise type(e)(f"the VAD{what} cannot gate this stream: {e}") from None
        s = self.settings
        return SpeechGate(chain, s.sample_rate, s.channels, self.chain.latency, s.block_size)

    # ------------------------------------------------------------------ controls
    def set_controls(self, **controls) -> None:
        """Set any of :data:`CONTROLS` (plain assignments the audio thread reads at its next block)."""
        for k, v in controls.items():
            if k in Mixer.CONTROLS:
                setattr(self.mixer, k, v)
            elif k in _GATE:
                if self.speech is not None:
                    setattr(self.speech, _GATE[k], v)
            else:
                raise ConfigError(f"unknown control {k!r}; the controls are {', '.join(CONTROLS)}.")
        sg = self.speech
        if sg is not None:  # displays show a switched gate at once, not at the next block
            self.monitor.set_speech(sg.probability, sg.gain, sg.is_open, sg.on, sg.threshold)

    def controls(self) -> dict[str, Any]:
        """The controls as set now (the gate's only with a VAD)."""
        out = {k: getattr(self.mixer, k) for k in Mixer.CONTROLS}
        if self.speech is not None:
            out.update({k: getattr(self.speech, a) for k, a in _GATE.items()})
        return out

    def set_switches(self, **switches) -> None:
        """Change the playing model's switches (a denoiser's attenuation limit) without a swap.

        A model swapped in but not heard yet (waiting, or warming up unheard)
        gets them too where it has them, so a knob turned during a swap holds.
        """
        apply_switches(self.chain.model, switches)
        p = self._pending  # the newest request; one still warming is this one or dropped at the next block
        if p is not None and p[0] > self._taken:
            try:
                apply_switches(p[1].model, switches)
            except ConfigError:  # a switch the coming model lacks: its own setting stays
                pass

    # ------------------------------------------------------------------ models
    @property
    def model(self) -> Model:
        """The model currently playing."""
        return self.chain.model

    @property
    def switches(self) -> dict[str, Any]:
        return model_switches(self.chain.model)

    @property
    def gate_delay(self) -> int:
        """Frames the output waits, beyond the model's latency, for the VAD's decisions (while the gate is on)."""
        return 0 if self.speech is None else self.speech.delay(self.chain.latency)

    @property
    def latency(self) -> int:
        """Device frames from input to output: the wet path (model + resampler), or the VAD's when longer."""
        return self.chain.latency + self.gate_delay

    @property
    def swap_pending(self) -> bool:
        """A requested model is not heard yet (waiting for a block, or warming up unheard)."""
        p = self._pending
        return p is not None and p[0] > self._taken

    def request_swap(self, model, switches=None) -> None:
        """Load, validate and warm up a model here, then hand it to the audio thread.

        ``model`` is a model or a checkpoint name/path; ``switches`` are set on
        it.  The audio thread picks it up at the next block boundary, runs it
        unheard beside the playing one until its history is the stream's own
        (:attr:`ModelChain.warm_frames`), then crossfades with the settings'
        crossfade.  With ``realtime_check``, where the two models' fastest
        blocks together take over half a block, it is heard at once instead
        (started from silence, not from dropouts) and :meth:`poll_warnings`
        says so.  If the model cannot be loaded or does not fit this stream,
        :class:`rtconv.RtconvError` says why and the running model keeps
        playing.
        """
        where = f" {os.fspath(model)!r}" if isinstance(model, (str, os.PathLike)) else ""
        try:
            chain = ModelChain(model, self.settings, switches=switches, realtime_check=self.realtime_check,
                               threads=False)
            line = None if self.speech is None else self.speech.line_for(chain.latency)
        except RtconvError as e:
            raise type(e)(f"model{where} not swapped in, the running one keeps playing: {e}") from None
        except Exception as e:  # a broken model must not take the caller down
            raise CheckpointError(f"model{where} not swapped in ({type(e).__name__}: {e}); "
                                  "the running one keeps playing.") from None
        s = self.settings
        budget_ms = s.block_size / s.sample_rate * 1e3
        both_ms = self.chain.warmup_ms + chain.warmup_ms
        if self.realtime_check and chain.warm_frames and both_ms > _WARM_SHARE * budget_ms:
            # two models in one block would not keep up: heard at once, from silence, rather than dropouts
            cold_ms = chain.warm_frames / s.sample_rate * 1e3
            chain.warm_frames = 0
            self._notes.append(
                f"model{where} swapped in without warming up: the playing and the new model together take "
                f"{both_ms:.2f} ms of a {budget_ms:.2f} ms block, so it starts from silence and may let "
                f"noise through for its first {cold_ms:.0f} ms; "
                f"a larger block size ({2 * s.block_size} frames) lets it warm up unheard.")
        with self._swap_lock:
            self._retired.clear()  # freed here, not on the audio thread
            self._seq += 1
            self._pending = (self._seq, chain, line)

    def wait_swapped(self, timeout: float = 5.0) -> bool:
        """Block (in a non-audio thread) until a requested swap took effect."""
        end = time.monotonic() + timeout
        while self.swap_pending or self._fade is not None:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    # ------------------------------------------------------------------ audio thread
    def _run(self, chain: ModelChain, x: np.ndarray, out: np.ndarray) -> bool:
        try:
            chain.process(x, out)
            if all_finite(out):
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
        x = indata
        try:
            if n > self._out.shape[0]:  # once, for an unusually long block
                for name in ("_out", "_wet", "_old", "_dry", "_unheard"):
                    setattr(self, name, np.zeros((n, self.settings.channels), np.float32))
            x = indata if indata.dtype == np.float32 else indata.astype(np.float32)
            out = self._out[:n]
            limited = self._process(x, out)
        except Exception as e:  # pragma: no cover - a bug here must not stop the audio
            self.internal_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            out = self._out[:n]
            out[:] = 0
            limited = 0
        self.monitor.update(x, out, limited, time.perf_counter() - t0)
        return out

    def _process(self, x: np.ndarray, out: np.ndarray) -> int:
        n = x.shape[0]
        pend, warming = self._pending, self._warming
        if pend is not None and pend[0] > max(self._taken, -1 if warming is None else warming[0]):
            if warming is not None:  # a newer request replaces the one still warming
                self._retired.append(warming[1])
            warming = self._warming = (pend[0], pend[1], pend[2], 0)
        if warming is not None and warming[3] >= warming[1].warm_frames and self._fade is None:
            # its history is the stream's own now: heard from this block on, faded in
            self._warming = None
            self._taken = warming[0]
            self._fade = (self.chain, 0)
            self._level_min_db = _lower(self._level_min_db, self.chain.level_gain_min_db)
            self.chain = warming[1]
            if self.speech is not None:
                self.speech.adopt(warming[2])
        elif warming is not None:  # unheard: a model started from silence would let noise through
            self._run(warming[1], x, self._unheard[:n])
            self._warming = (warming[0], warming[1], warming[2], warming[3] + n)
        chain, mixer = self.chain, self.mixer
        wet = self._wet[:n]
        ok = self._run(chain, x, wet)
        clean, _ = zero_nonfinite(x)  # the streamer counts them; no copy when all is finite
        mixer.push_dry(clean)
        dry = mixer.dry(chain.latency, self._dry[:n])
        if not ok:
            wet[:] = dry
        if self._fade is not None:
            old, done = self._fade
            prev = self._old[:n]
            if not self._run(old, x, prev):
                mixer.dry(old.latency, prev)
            done = mixer.crossfade(prev, wet, done)
            if done >= mixer.fade_frames:
                self._retired.append(old)
                self._fade = None
                self.swaps += 1
            else:
                self._fade = (old, done)
        mixer.mix(wet, dry, out)
        sg = self.speech
        if sg is not None:
            sg.process(clean, out, chain.latency, force_open=mixer.bypass)
            self.monitor.set_speech(sg.probability, sg.gain, sg.is_open, sg.on, sg.threshold)
        return mixer.limit(out)

    # ------------------------------------------------------------------ observers
    def note_status(self, input_overflow: bool = False, output_underflow: bool = False) -> None:
        """Count device-reported xruns (called by the stream callback)."""
        self.input_overflows += bool(input_overflow)
        self.output_underflows += bool(output_underflow)
        self.dropouts += bool(input_overflow or output_underflow)

    def stats(self) -> dict[str, Any]:
        """Counters, block times against the budget, CPU load and the latency breakdown."""
        s, chain, mon = self.settings, self.chain, self.monitor
        b, load = mon.block_times(s.block_size)
        ms = lambda frames: frames / s.sample_rate * 1e3  # noqa: E731
        dev_in, dev_out = self.device_latency
        lat = {"model_ms": ms(chain.model_latency), "resampler_ms": ms(chain.resampler_latency),
               "gate_ms": ms(self.gate_delay), "device_in_ms": dev_in * 1e3, "device_out_ms": dev_out * 1e3}
        lat["total_ms"] = sum(lat.values())
        sg = self.speech
        return {
            "blocks": mon.blocks,
            "frames": mon.frames,
            "seconds": mon.frames / s.sample_rate,
            "sample_rate": s.sample_rate,
            "model_rate": chain.model_rate,
            "block_size": s.block_size,
            "channels": s.channels,
            "dropouts": self.dropouts,
            "input_overflows": self.input_overflows,
            "output_underflows": self.output_underflows,
            "model_errors": self.model_errors,
            "internal_errors": self.internal_errors,
            "nonfinite_samples": chain.nonfinite_samples,
            "dc_offset": chain.dc_offset,  # full scale 1; None: the input goes to the model as it is
            "level_gain_db": chain.level_gain_db,  # the level guard's input gain now; None: no guard
            "level_gain_min_db": _lower(self._level_min_db, chain.level_gain_min_db),  # since the stream started
            "resampler_underruns": chain.resampler_underruns,
            "swaps": self.swaps,
            "display_drops": mon.display_drops,
            "block_ms": b,
            "cpu_load": load,
            "latency": lat,
            "latency_frames": self.latency,
            "gate": None if sg is None else {
                **mon.gate_state(), "on": bool(sg.on), "opened": sg.opened, "vad_errors": sg.errors,
                "vad_latency_ms": ms(sg.latency)},
            "last_error": self.last_error,
        }

    def _dropout_advice(self, n: int) -> str:
        """What ``n`` new device xruns mean, from the block times: the model too slow, or something else."""
        s = self.settings
        b, _ = self.monitor.block_times(s.block_size)
        took = f"{b['median']:.2f} ms (p99 {b['p99']:.2f} ms) of the {b['budget']:.2f} ms"
        if b["p99"] > 0.5 * b["budget"]:
            # onnxruntime wins on sample-rate convolutions; a framed model's body runs faster in the
            # torch engine's NumPy rows than in onnxruntime (README, "A second engine"), so it is not offered there
            rows = any(p.kind == "framed:rows" for p in self.chain.streamer.plan)
            onnx = " or the onnx engine (--engine onnx)" if s.engine == "torch" and not rows else ""
            # a block's time is mostly fixed cost at small sizes: a block whose budget is twice today's p99
            need = max(2 * s.block_size, math.ceil(2 * b["p99"] * 1e-3 * s.sample_rate))
            size = min(MAX_BLOCK, 1 << (need - 1).bit_length())
            return (f"{n} dropout(s): the model takes {took} a {s.block_size}-frame block allows, too close to "
                    f"keep up under load; a larger block size ({size} frames or more){onnx} gives it more room.")
        more = (" If they repeat, more device buffering (rtconv live --device-latency 0.02, the GUI's "
                "Buffering) trades a few milliseconds of delay for fewer." if s.device_latency == "low" else "")
        return (f"{n} dropout(s) reported by the audio device while the model kept up ({took} a block allows): "
                f"another program or the system held the CPU or the device.{more}")

    def poll_warnings(self, interval: float = 1.0) -> list[str]:
        """New problems as sentences, at most once per ``interval`` seconds (call from a non-audio thread)."""
        now = time.monotonic()
        if now - self._last_warn < interval:
            return []
        out = []
        while self._notes:
            out.append(self._notes.pop(0))
        errors = self.model_errors + self.internal_errors
        if errors > self._warned_errors:
            out.append(
                f"{errors - self._warned_errors} block(s) passed dry because the model failed "
                f"({self.last_error}); the stream keeps running."
            )
            self._warned_errors = errors
        xruns = self.dropouts
        if xruns > self._warned_xruns:
            out.append(self._dropout_advice(xruns - self._warned_xruns))
            self._warned_xruns = xruns
        if out:
            self._last_warn = now
        return out
