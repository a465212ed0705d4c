"""Streaming helpers shared by the tests of several model families."""

from __future__ import annotations

import numpy as np

from rtconv import Streamer


def stream_in_sizes(model, x: np.ndarray, sizes, dtype=None, **options) -> tuple[np.ndarray, Streamer]:
    """Stream ``x`` (frames, channels) through ``model`` in blocks of ``sizes`` (cycled), then flush.

    ``options`` go to :class:`Streamer` (``partition``, ``direct``,
    ``block_size`` ...).  Returns the whole output, latency included, and
    the streamer.
    """
    s = Streamer(model, channels=x.shape[1], dtype=x.dtype if dtype is None else dtype, **options)
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(s.process(x[i: i + n]))
        i, k = i + n, k + 1
    out.append(s.flush())
    return np.concatenate(out), s


def kinds(streamer: Streamer) -> set[str]:
    """The algorithms a streamer chose for its layers (see :attr:`Streamer.plan`)."""
    return {p.kind for p in streamer.plan}
