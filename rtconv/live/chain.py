"""A model made ready to stream at the device's rate.

:class:`ModelChain` is what the live processor plays: a checkpoint resolved
and loaded (:func:`load_model`), its switches applied, compiled by
:class:`rtconv.Streamer`, behind a streaming resampler when the model was
trained at another rate and, for a denoiser or VAD, behind a DC-offset
remover (:class:`rtconv.dcblock.DCBlocker`, no delay) and, for a denoiser,
inside a level guard at the model's rate (:class:`rtconv.levelguard.StreamLevelGuard`:
loud speech goes in lowered to the level it was trained at and comes out
raised back), warmed up and checked
against the block's time budget.  It reports its latency split into the model's and the
resampler's.

A model crosses a process boundary as a checkpoint path plus its switches
(:func:`model_switches`), the same contract the trainer uses: the GUI's
audio process loads the file itself, never a pickled module.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..dcblock import DCBlocker, wants_dc_block
from ..levelguard import stream_guard
from ..models import Model
from ..streaming import Streamer
from ..resample import RateBridge
from .settings import StreamSettings

__all__ = ["ModelChain", "load_model", "model_switches", "apply_switches", "SWITCHES"]

_WARMUP_BLOCKS = 8
_REALTIME_FACTOR = 4  # a model whose fastest block takes 4x the budget could never keep up


def _set_attenuation_limit(model, value) -> None:
    from ..denoiser import set_attenuation_limit

    set_attenuation_limit(model, value)


def _set_linked(model, value) -> None:
    from ..denoiser import set_linked

    set_linked(model, bool(value))


def _attenuation_limit(model) -> tuple[bool, Any]:
    has = hasattr(type(model), "attenuation_limit_db")
    return has, model.attenuation_limit_db if has else None


def _linked(model) -> tuple[bool, Any]:
    from ..framed import MaskGate

    gates = [m for m in model.modules() if isinstance(m, MaskGate)] if hasattr(model, "modules") else []
    return bool(gates), bool(gates[0].linked) if gates else None


#: Per-model switches a user may set without retraining: name -> (read: (has it, value), write).
SWITCHES = {
    "attenuation_limit_db": (_attenuation_limit, _set_attenuation_limit),
    "linked": (_linked, _set_linked),
}


def model_switches(model) -> dict[str, Any]:
    """The switches ``model`` has and their values (a denoiser: attenuation limit, linked channels)."""
    out = {}
    for name, (read, _) in SWITCHES.items():
        has, value = read(model)
        if has:
            out[name] = value
    return out


def apply_switches(model, switches: Mapping[str, Any] | None) -> None:
    """Set ``switches`` on ``model``; an unknown or unsupported one is refused in one sentence."""
    for name, value in (switches or {}).items():
        if name not in SWITCHES:
            raise ConfigError(f"unknown model switch {name!r}; the switches are {', '.join(SWITCHES)}.")
        if value in (None, False) and not SWITCHES[name][0](model)[0]:
            continue  # off on a model without it (a swap carrying a denoiser's unset limit to a FIR): nothing to set
        SWITCHES[name][1](model, value)


def load_model(model, switches: Mapping[str, Any] | None = None) -> Model:
    """``model`` as a :class:`Model`: a model as is, or a checkpoint name/path resolved and loaded; switches set."""
    if isinstance(model, (str, os.PathLike)):
        from .. import checkpoint  # optional at import of rtconv.live

        model = checkpoint.load(checkpoint.resolve(model))
    elif not isinstance(model, Model):
        raise ConfigError(f"expected an rtconv model or a checkpoint path, got {type(model).__name__}.")
    apply_switches(model, switches)
    return model


class ModelChain:
    """One model streaming at the device rate: :class:`Streamer` + :class:`RateBridge`, warmed up.

    Parameters
    ----------
    model : Model or path
        A model, or a checkpoint name/path (:func:`load_model`).
    settings : StreamSettings
        Rate, block size, resampler quality, threads and engine.
    channels : int, optional
        Channels in and out (default ``settings.channels``; a VAD runs on 1).
    switches : mapping, optional
        Model switches to set first (:data:`SWITCHES`).
    realtime_check : bool
        Refuse a model whose fastest warm-up block takes more than four times
        the block's duration.
    threads : bool
        Set torch's (process-wide) thread count from ``settings.threads``; a
        model swapped into a running stream leaves it as it is.

    Attributes
    ----------
    latency : int
        Device frames from input to output: ``model_latency + resampler_latency``.
    warm_frames : int
        Device frames this chain runs unheard when swapped into a stream: the
        model's :meth:`~rtconv.models.Model.history_frames` plus the
        resampler's latency (0 for a stateless model such as a 1-tap gain).
    warmup_ms : float
        The fastest warm-up block, ms.
    """

    def __init__(self, model, settings: StreamSettings, channels: int | None = None, switches=None,
                 realtime_check: bool = True, threads: bool = True, sound: bool = True) -> None:
        self.path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        self.model = load_model(model, switches)
        from ..checkpoint import PROBABILITY_TASKS  # optional at import of rtconv.live

        task = (self.model.metadata or {}).get("task")
        if sound and task in PROBABILITY_TASKS:  # ``sound``: what it outputs is played (not the gate's VAD)
            from ..denoiser import _which

            raise ConfigError(
                f"the model {_which(self.model)} is a {task!r} model whose output is a probability, not sound, and "
                "the live stream would play it; run a denoiser or filter (a VAD keys the gate: --vad with --gate)."
            )
        rate, block = settings.sample_rate, settings.block_size
        channels = settings.channels if channels is None else int(channels)
        self.channels = channels
        self.model_rate = int(self.model.sample_rate or rate)
        # the block size at the model's rate guides the direct/FFT/matmul plan per layer
        model_block = max(1, round(block * self.model_rate / rate))
        self.streamer = Streamer(self.model, channels=channels, threads=settings.threads if threads else None,
                                 block_size=model_block, engine=settings.engine)
        if self.streamer.out_channels != channels:
            raise ConfigError(
                f"this model turns {channels} channel(s) into {self.streamer.out_channels}, but the "
                f"live stream needs {channels} out; use a model with as many outputs as inputs."
            )
        self.bridge = None if self.model_rate == rate else RateBridge(
            rate, self.model_rate, channels, block, settings.resample_quality)
        self.dc = DCBlocker(rate, channels) if settings.dc_block and wants_dc_block(self.model) else None
        # blocks (and a resampler's pieces) reach the model whole: onnxruntime plans each block length anew
        self.guard = stream_guard(self.model, self.model_rate, channels, self.streamer.latency, model_block,
                                  settings.level_guard)
        self.model_latency = round(self.streamer.latency * rate / self.model_rate)  # device frames
        self.resampler_latency = 0 if self.bridge is None else self.bridge.latency
        self.latency = self.model_latency + self.resampler_latency
        self.warm_frames = round(self.model.history_frames(self.model_rate) * rate / self.model_rate) \
            + self.resampler_latency
        self.warmup_ms = self._warm_up(settings, realtime_check)

    @property
    def switches(self) -> dict[str, Any]:
        return model_switches(self.model)

    @property
    def dc_offset(self) -> float | None:
        """The input's DC offset, the mean of its samples so far (full scale 1), or ``None`` when it is not removed."""
        return None if self.dc is None else self.dc.offset

    @property
    def level_gain_db(self) -> float | None:
        """The level guard's input gain now, dB (0: the speech is not loud), or ``None`` when there is no guard."""
        return None if self.guard is None else self.guard.gain_db

    @property
    def level_gain_min_db(self) -> float | None:
        """The lowest input gain the level guard has set since this chain was made, dB, or ``None``."""
        return None if self.guard is None else self.guard.min_gain_db

    def _guarded(self, x: np.ndarray) -> np.ndarray:
        return self.guard.process(x, self.streamer.process)

    @property
    def nonfinite_samples(self) -> int:
        return self.streamer.nonfinite_samples

    @property
    def resampler_underruns(self) -> int:
        return 0 if self.bridge is None else self.bridge.underruns

    def _warm_up(self, settings: StreamSettings, realtime_check: bool) -> float:
        # off the audio thread: first calls allocate buffers and plan kernels
        x = np.zeros((settings.block_size, self.channels), np.float32)
        out = np.zeros_like(x)
        times = []
        for _ in range(_WARMUP_BLOCKS):
            t = time.perf_counter()
            self.process(x, out)
            times.append(time.perf_counter() - t)
        if not np.isfinite(out).all():
            raise ConfigError("the model produces non-finite output on silence, so it was not swapped in.")
        budget = settings.block_size / settings.sample_rate
        if realtime_check and min(times) > _REALTIME_FACTOR * budget:
            raise ConfigError(
                f"the model needs {min(times) * 1e3:.2f} ms for a {settings.block_size}-frame block but "
                f"real time allows {budget * 1e3:.2f} ms; use a larger block size or a smaller model."
            )
        self.reset()
        return min(times) * 1e3

    def reset(self) -> None:
        """Forget the carried state (silence in the history)."""
        self.streamer.reset()
        if self.bridge is not None:
            self.bridge.reset()
        if self.dc is not None:
            self.dc.reset()
        if self.guard is not None:
            self.guard.reset()

    def process(self, x: np.ndarray, out: np.ndarray) -> None:
        """Write the model's output for device block ``x`` into ``out`` (same shape)."""
        if self.dc is not None:
            x = self.dc.process(x)
        run = self.streamer.process if self.guard is None else self._guarded
        if self.bridge is None:
            out[:] = run(x)
        else:
            self.bridge.process(x, run, out)
