"""What a live stream is opened with, in one frozen value.

:class:`StreamSettings` is built once, from the CLI's arguments or the GUI's
choices, and handed whole to everything that needs a rate, a channel count
or a block size: the processor, the PortAudio stream, the GUI's audio
process (it pickles as plain values).  Nothing else carries those numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from ..errors import ConfigError
from ..resample import LIVE_QUALITY, QUALITIES  # soxr itself is imported on first use

__all__ = ["StreamSettings", "ENGINES", "DEVICE_LATENCIES", "MAX_DEVICE_LATENCY_S", "device_latency_seconds_ok"]

#: What computes each block (:class:`rtconv.Streamer`'s ``engine``).
ENGINES = ("torch", "onnx")

#: PortAudio's named device latencies; any other ``device_latency`` is seconds, above 0 and at most
#: :data:`MAX_DEVICE_LATENCY_S` (the CLI's ``--device-latency`` checks the same rule)
DEVICE_LATENCIES = ("low", "high")
MAX_DEVICE_LATENCY_S = 2.0
#: The largest live audio block: 16384 frames, 341 ms at 48 kHz (JACK's periods stop at 8192); the CLI's
#: ``--block-size`` and the dropout advice keep to it
MAX_BLOCK = 16384


def device_latency_seconds_ok(v) -> bool:
    """Whether ``v`` is a device latency in seconds rtconv asks PortAudio for."""
    return 0 < v <= MAX_DEVICE_LATENCY_S

Device = Union[int, str, None]


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        try:  # NumPy integers are fine
            import numpy as np

            if isinstance(v, np.integer) and v >= 1:
                return int(v)
        except ImportError:  # pragma: no cover
            pass
        raise ConfigError(f"{name} must be a positive integer, got {v!r}.")
    return int(v)


@dataclass(frozen=True)
class StreamSettings:
    """A live stream's format, devices and resources.

    Parameters
    ----------
    sample_rate : int
        Device rate in Hz; a model trained at another rate runs behind
        streaming resamplers (their delay is reported).
    channels : int
        Channels in and out; a mono model runs once per channel.
    block_size : int
        Frames per audio callback: the latency/CPU trade-off.
    hostapi, input_device, output_device : int, str or None
        Index or part of a name (``None``: the default one).
    output_channels : int or None
        Channels opened on the output device; ``None`` plays a mono stream on
        both channels of a stereo output (headphones get both ears).
    resample_quality : str
        Resampler when model and device rates differ, one of
        :data:`QUALITIES`: ``"LL"`` (the default) a minimum-phase filter with
        about 0.1 ms of delay per direction, or a soxr quality (linear phase,
        10-70 ms per round trip).
    threads : int
        Torch threads for the model (a process-wide setting).
    engine : str
        ``"torch"`` or ``"onnx"`` (the model's exported step in onnxruntime).
    crossfade_ms : float
        Length of the crossfade when a model is swapped in, ms.
    record_dir : str or None
        Record input and output there while the stream runs.
    device_latency : str or float
        What PortAudio is asked to buffer on each device: ``"low"`` (the
        default: a few blocks, the least delay the device offers), ``"high"``,
        or seconds.  More buffering costs delay and spares dropouts where the
        path to the device is not realtime (a sound server's ALSA bridge).
    dc_block : bool
        Remove the input's DC offset before a denoiser or VAD
        (:class:`rtconv.dcblock.DCBlocker`: no delay); ``False`` gives them
        the device's samples as they are (``rtconv live --keep-dc``).
    level_guard : bool
        Keep loud speech inside the levels a denoiser was trained at
        (:class:`rtconv.levelguard.StreamLevelGuard`: a slow input gain set
        from the speech it put out, undone at its output); ``False`` gives
        the model the device's level (``rtconv live --keep-level``).
    """

    sample_rate: int = 48000
    channels: int = 1
    block_size: int = 128
    hostapi: Device = None
    input_device: Device = None
    output_device: Device = None
    output_channels: int | None = None
    resample_quality: str = LIVE_QUALITY
    threads: int = 1
    engine: str = "torch"
    crossfade_ms: float = 20.0
    record_dir: str | None = None
    device_latency: Union[str, float] = "low"
    dc_block: bool = True
    level_guard: bool = True

    def __post_init__(self) -> None:
        for name in ("sample_rate", "channels", "block_size", "threads"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if self.resample_quality not in QUALITIES:
            raise ConfigError(f"resample_quality must be one of {', '.join(QUALITIES)}, got {self.resample_quality!r}.")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}.")
        oc = self.output_channels
        if oc is not None and (isinstance(oc, bool) or not isinstance(oc, int) or oc < 1
                               or (self.channels > 1 and oc != self.channels)):
            raise ConfigError(
                f"output_channels must be {self.channels} for a {self.channels}-channel stream"
                + (" (or 2+ to play mono on several outputs)" if self.channels == 1 else "")
                + f", got {oc!r}.")
        if isinstance(self.crossfade_ms, bool) or not isinstance(self.crossfade_ms, (int, float)) \
                or not self.crossfade_ms >= 0:
            raise ConfigError(f"crossfade_ms must be a number of milliseconds >= 0, got {self.crossfade_ms!r}.")
        object.__setattr__(self, "crossfade_ms", float(self.crossfade_ms))
        lat = self.device_latency
        if isinstance(lat, str):
            if lat not in DEVICE_LATENCIES:
                raise ConfigError(f"device_latency must be 'low', 'high' or seconds, got {lat!r}.")
        elif isinstance(lat, bool) or not isinstance(lat, (int, float)) or not device_latency_seconds_ok(lat):
            raise ConfigError(f"device_latency must be 'low', 'high' or seconds above 0 and at most "
                              f"{MAX_DEVICE_LATENCY_S:g}, got {lat!r}.")
        else:
            object.__setattr__(self, "device_latency", float(lat))
        for name in ("dc_block", "level_guard"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.record_dir is not None:
            import os

            object.__setattr__(self, "record_dir", os.fspath(self.record_dir))

    def replace(self, **changes) -> "StreamSettings":
        """A copy with ``changes`` (validated like a new one)."""
        return dataclasses.replace(self, **changes)
