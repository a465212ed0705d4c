"""Audio files in and out, safely: checked readers, atomic writers, output names.

Reading goes through :class:`Reader`, which opens a file with soundfile,
refuses what it cannot trust in one sentence (missing, empty, not audio,
corrupt, absurd sample rate) and yields float32 ``(frames, channels)`` chunks
with NaN/Inf samples replaced by 0 and counted, so memory stays flat for
files of any length.  A file cut short (a recording stopped by a crash) is
read as far as it decodes, and :attr:`Reader.cut_short` is the warning every
command gives for it.

Writing goes through :class:`AtomicWriter`: the audio goes to a hidden
temporary file in the destination folder and is renamed over the final name
only by :meth:`AtomicWriter.commit`; any failure or interruption deletes the
temporary file, so a half-written output never appears under the real name.

:func:`zero_nonfinite` is the one rule for NaN and Inf in input audio (files,
arrays, corpus items, live blocks): such a sample becomes 0 and is counted.
"""

# the rest of rtconv imports these from rtconv.audio, beside the public names of __all__
from .common import (FLOAT_SUBTYPES, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE,  # noqa: F401
                     READ_CHUNK, SAMPLE_RATE_MODEL_BLOCK, SOFTWARE_TAG, TAGS, PathLike, _audio_extensions, all_finite,
                     quiet_decoders, sndfile_detail, zero_nonfinite)
from .names import default_output_path, keeps_mark, named_as_output, written_by_rtconv
from .reader import Reader
from .writer import AtomicWriter, output_format, temporary_beside

__all__ = [
    "all_finite",
    "zero_nonfinite",
    "temporary_beside",
    "Reader",
    "AtomicWriter",
    "output_format",
    "default_output_path",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "AUDIO_EXTENSIONS",
    "written_by_rtconv",
    "named_as_output",
    "keeps_mark",
    "quiet_decoders",
]

#: Lower-case extensions soundfile reads (the module's ``__getattr__`` computes it on first use); declared
#: here so that ``__all__`` names a known attribute (ruff F822) without asking libsndfile at import.
AUDIO_EXTENSIONS: frozenset[str]


def __getattr__(name: str):
    # AUDIO_EXTENSIONS (lower-case extensions soundfile reads) asks libsndfile, on first use
    # only: `rtconv process --help` imports this module for its chunk sizes.
    if name == "AUDIO_EXTENSIONS":
        return _audio_extensions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
