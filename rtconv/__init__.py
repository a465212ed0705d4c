"""rtconv: causal convolutional filters for real-time audio.

One set of weights, two ways to run them: offline ``model(x)`` on whole
``(batch, channels, time)`` tensors (training, reference), and
:class:`Streamer` on consecutive NumPy blocks ``(frames, channels)`` with
carried state (live audio, file processing).  The two agree to float
rounding at any block size.

Models
    :class:`FIR`, :class:`MimoCNN`, :class:`DilatedCNN` (``rtconv.models``);
    fixed designs in :mod:`rtconv.designs`; layers in :mod:`rtconv.layers`.
Streaming
    :class:`Streamer` (``rtconv.streaming``).
Model files
    :func:`save`, :func:`load` (``rtconv.checkpoint``): safetensors + JSON metadata.
Semantics
    :mod:`rtconv.semantics`: convolution vs correlation, modes, output-length
    formulas, transposed convolution, as plain NumPy references.
Errors
    :class:`RtconvError` and its subclasses (``rtconv.errors``).

Conventions: audio blocks are float32 ``(frames, channels)``; tensors are
``(batch, channels, time)``; kernels are in impulse-response order (tap 0
acts on the current sample).  Nothing here imports Qt or sounddevice.
"""

from __future__ import annotations

from .errors import (
    AudioFileError,
    BlockError,
    CheckpointError,
    ConfigError,
    DeviceError,
    RtconvError,
)
from .models import ARCHITECTURES, FIR, DilatedCNN, MimoCNN, Model, build
from .streaming import Streamer
from .checkpoint import load, save

__version__ = "0.1.0"

__all__ = [
    "FIR",
    "MimoCNN",
    "DilatedCNN",
    "Model",
    "Streamer",
    "save",
    "load",
    "build",
    "ARCHITECTURES",
    "RtconvError",
    "ConfigError",
    "BlockError",
    "CheckpointError",
    "AudioFileError",
    "DeviceError",
    "__version__",
]
