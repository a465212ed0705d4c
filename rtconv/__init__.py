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
__version__ = "0.1.0"

# The engine needs torch, which takes a second or two to import: the names below load it on
# first use (PEP 562), so `rtconv --help`, error messages and the errors module stay instant.
_LAZY = {
    "ARCHITECTURES": "models", "FIR": "models", "DilatedCNN": "models", "MimoCNN": "models",
    "Model": "models", "build": "models", "Streamer": "streaming", "load": "checkpoint", "save": "checkpoint",
}


def __getattr__(name: str):
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if not name.startswith("_"):  # a submodule: `import rtconv; rtconv.designs.lowpass(...)` as before
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'rtconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

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
