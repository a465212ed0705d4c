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
    "check_output_file",
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


def check_output_file(where: str, path, why: str = "") -> None:
    """Refuse, with a :class:`ConfigError` naming ``where`` (``"--out 'x.safetensors'"``), an output file
    that could only fail to be written: a folder, a missing folder, a folder not writable.  ``why`` ends
    the missing-folder sentence (``" (checked now, so that a finished run is not lost)"``)."""
    import os
    from pathlib import Path

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"{where} is a folder; give a file name in it.")
    if not folder.is_dir():
        raise ConfigError(f"{where}: the folder {str(folder)!r} does not exist; create it first{why}.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: the folder {str(folder)!r} is not writable; choose another.")
