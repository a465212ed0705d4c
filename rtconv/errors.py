"""The rtconv exception hierarchy.

Every error rtconv raises on purpose derives from :class:`RtconvError`, and
each also subclasses the builtin it refines, so ``except ValueError`` keeps
working for callers who do not know rtconv.  Messages are one complete
sentence: what is wrong, with which value (``repr``), what is allowed, and
what to do.
"""

from __future__ import annotations

__all__ = [
    "RtconvError",
    "ConfigError",
    "BlockError",
    "CheckpointError",
    "AudioFileError",
    "DeviceError",
]


class RtconvError(Exception):
    """Base class of every error rtconv raises deliberately."""


class ConfigError(RtconvError, ValueError):
    """A model or processor configuration that makes no sense."""


class BlockError(RtconvError, ValueError):
    """An audio block of the wrong shape, dtype or channel count."""


class CheckpointError(RtconvError, ValueError):
    """A model file that cannot be trusted or understood."""


class AudioFileError(RtconvError, OSError):
    """An audio file that cannot be read or written."""


class DeviceError(RtconvError, RuntimeError):
    """An audio device that cannot be found or opened."""
