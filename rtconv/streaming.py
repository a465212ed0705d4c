"""Block-by-block execution of rtconv models with carried state.

:class:`Streamer` turns any :class:`rtconv.models.Model` into a stateful
processor of NumPy blocks shaped ``(frames, channels)`` (the layout of
soundfile and sounddevice).  Feeding a signal in blocks of any sizes gives
the offline ``model(x)`` output delayed by :attr:`Streamer.latency` samples
(zero for causal models), to float rounding.

How it works: the model's layer tree is compiled once into *cells*
(:mod:`rtconv.cells`), one per layer, each holding the history it needs in
preallocated buffers.  Long kernels run as FFT convolutions, short ones
directly, chosen per layer by a cost estimate (:func:`plan_conv`,
:func:`plan_direct`); :attr:`Streamer.plan` says what was chosen.
``"same"``-padded layers are streamed causally and their outputs masked to
zero before their start and, at :meth:`Streamer.flush`, after the end, so
the next layer sees exactly the zero padding the offline pass sees.

Weights are copied into the cells when the streamer is built: later changes
to the model do not reach a running streamer (build a new one to swap).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from .audio import all_finite
from .cells import Context, LayerPlan, numpy_root, plan_conv, plan_direct, register_cell
from .errors import BlockError, ConfigError
from .models import Model

__all__ = ["Streamer", "LayerPlan", "plan_conv", "plan_direct", "register_cell", "stream_channels"]


def stream_channels(model, channels: int | None, hint: str = "") -> int:
    """The channel count of a stream through ``model`` (default: its inputs), checked in one sentence.

    A mono model runs once per channel; a model that mixes ``F`` input
    channels needs a stream of exactly ``F``.  ``hint`` ends that refusal
    (e.g. how the caller's user sets the count).
    """
    f0 = model.in_channels
    channels = f0 if channels is None else channels
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"channels must be a positive integer, got {channels!r}.")
    if f0 > 1 and channels != f0:
        raise ConfigError(
            f"this model mixes {f0} input channels, so the stream must have {f0} channels, not {channels}"
            f"{'; ' + hint if hint else ''}."
        )
    return channels


_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _limit_numpy_blas(threads: int) -> None:
    """Hold NumPy's BLAS to ``threads`` threads, as ``torch.set_num_threads`` holds torch's.

    A framed model's frame-rate body computes its products in NumPy
    (:mod:`rtconv.cells.rows`); OpenBLAS would otherwise start a thread per
    core for the larger ones (a file's long blocks).  Process-wide, like
    torch's setting; OpenBLAS keeps one count for every calling thread.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


class Streamer:
    """Run a model on consecutive audio blocks with carried state.

    Parameters
    ----------
    model : rtconv.models.Model
        The model; its weights are copied at construction.
    channels : int, optional
        Channels of the audio stream.  Defaults to the model's input
        channels.  A mono model (one input channel) on ``channels > 1``
        runs once per channel with independent state; a model with more
        input channels must match them exactly (it mixes them, MIMO).
    dtype : numpy float dtype
        Precision of the computation and of the returned blocks.
    threads : int or None
        Sets ``torch.set_num_threads`` (and NumPy's BLAS threads, which a
        framed model's frame-rate body uses) when given; 1 suits live use, where
        one core must do a block in a fraction of its time.  The count is
        re-applied on whichever thread calls :meth:`process` (OpenMP keeps
        it per thread, so an audio callback thread would otherwise run with
        the default).
    partition : int or "block", optional
        Force FFT partition size ``P`` for every layer longer than ``P``
        taps, or ``"block"`` for a whole-block FFT on every layer with
        history (for tests and benchmarks); by default :func:`plan_conv`
        decides.
    direct : {"auto", "conv", "gemm"}
        How directly convolved layers run (for tests and benchmarks); by
        default :func:`plan_direct` decides per layer.
    block_size : int
        Typical block length the caller will feed, in frames; it only
        guides the direct-vs-FFT choice (any length still works).
    engine : {"torch", "onnx"}
        ``"torch"``: rtconv's cells (:mod:`rtconv.cells`), torch for
        sample-rate layers and NumPy for a framed layer's frame-rate body,
        where a block's one or two frames make every call's overhead count.
        ``"onnx"`` runs the model's exported step model in onnxruntime
        (:mod:`rtconv.onnx.engine`; needs the ``onnx`` extra): the same
        output, about 3x faster for sample-rate conv nets, slower for long
        FIRs and for framed models such as the denoiser (README, "A second
        engine"); float32 only, and a block length other than ``block_size``
        builds its own session on first use.

    Attributes
    ----------
    latency : int
        Samples by which the output lags the offline output.
    receptive_field : int
        Input samples behind one output sample (recurrent memory aside).
    out_channels : int
        Channels of the returned blocks (a mono model's outputs per stream channel).
    plan : tuple of LayerPlan
        How each layer streams, in signal-flow order: its path in the model,
        type, algorithm (``kind``), FFT partition, latency and receptive
        field (``engine="torch"`` only; empty for ``"onnx"``).
    path : str
        What a block travels through: ``"numpy"`` for a model that is one
        framed layer whose frame network runs row-major (the denoiser, the
        VAD: no torch call per block, which after another program ran costs
        more than the arithmetic), ``"torch"`` for the engine's other cells,
        ``"onnx"`` for that engine.
    nonfinite_samples : int
        Input samples replaced by 0 so far.

    Notes
    -----
    Non-finite input samples (NaN, +-Inf) are replaced by 0 before they
    reach the state, and counted in :attr:`nonfinite_samples`, so one bad
    block cannot poison all later output.
    """

    def __init__(
        self,
        model: Model,
        channels: int | None = None,
        dtype=np.float32,
        threads: int | None = 1,
        partition: int | str | None = None,
        block_size: int = 128,
        direct: str = "auto",
        engine: str = "torch",
    ) -> None:
        if not isinstance(model, Model):
            raise ConfigError(f"Streamer needs an rtconv model, got {type(model).__name__}.")
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}.")
        f0 = model.in_channels
        channels = stream_channels(model, channels)
        if threads is not None:
            torch.set_num_threads(threads)
            _limit_numpy_blas(threads)
        # OpenMP's thread count is per OS thread: a block arriving on another thread
        # (an audio callback, a worker) would otherwise run with the default count,
        # measured 3.5x slower. process() re-applies it when the calling thread changes.
        self._threads = torch.get_num_threads() if threads is None else threads
        self._thread_id: int | None = threading.get_ident()
        self.model = model
        self.channels = channels
        self._batch = channels if f0 == 1 else 1
        self._model_out = model.out_channels
        self.out_channels = self._batch * self._model_out
        self.latency: int = model.latency
        self.receptive_field: int = model.receptive_field
        self.nonfinite_samples = 0
        self._t = 0
        self._tdtype = _DTYPES[self.dtype]
        self.engine, self._onnx = engine, None
        if engine == "onnx":
            if self.dtype != np.float32 or partition is not None or direct != "auto":
                raise ConfigError(
                    "engine='onnx' computes in float32 with its own convolutions; leave dtype, partition "
                    "and direct at their defaults with it."
                )
            from .onnx.engine import OnnxEngine

            self._onnx = OnnxEngine(model, channels, max(1, int(block_size)), self._threads)
            self.plan = ()
            self.path = "onnx"
            return
        if engine != "torch":
            raise ConfigError(f"engine must be 'torch' or 'onnx', got {engine!r}.")
        ctx = Context(self._batch, self._tdtype, block=max(1, int(block_size)), partition=partition,
                      direct=direct, mask=self.latency > 0)
        with torch.no_grad():
            self._cell = ctx.compile(model.body)
        self.plan = tuple(ctx.plan)
        # a model that is one row-major framed layer (the denoiser, the VAD) streams without torch
        self._np_cell = numpy_root(self._cell)
        self.path = "numpy" if self._np_cell is not None else "torch"

    def buffers(self) -> list:
        """The arrays (NumPy or torch) that hold the stream's state, for inspection.

        The same objects from block to block while the block size does not
        grow: the audio thread does not reallocate them.  Empty with
        ``engine="onnx"``.
        """
        return [] if self._onnx is not None else self._cell.buffers()

    def reset(self) -> None:
        """Forget all history, as if the stream started now."""
        (self._cell if self._onnx is None else self._onnx).reset()
        self._t = 0

    def _check(self, block) -> np.ndarray:
        if not isinstance(block, np.ndarray):
            raise BlockError(f"a block must be a NumPy array, got {type(block).__name__}.")
        if block.ndim != 2:
            raise BlockError(
                f"a block must be 2-D (frames, channels), got shape {block.shape}; "
                "for mono audio use block[:, None]."
            )
        if block.shape[1] != self.channels:
            raise BlockError(
                f"this streamer expects {self.channels} channel(s), got a block of shape "
                f"{block.shape} with {block.shape[1]}."
            )
        if block.dtype.kind != "f":
            raise BlockError(
                f"a block must hold floats (float32 or float64 in [-1, 1]), got dtype "
                f"{block.dtype}; convert integer PCM with x / 32768."
            )
        if block.dtype != self.dtype:
            block = block.astype(self.dtype)
        if not all_finite(block):
            bad = ~np.isfinite(block)
            self.nonfinite_samples += int(bad.sum())
            block = np.where(bad, 0, block).astype(self.dtype)
        return block

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block ``(frames, channels)``; return ``(frames, out_channels)``."""
        block = self._check(block)
        if threading.get_ident() != self._thread_id:
            torch.set_num_threads(self._threads)
            self._thread_id = threading.get_ident()
        n = block.shape[0]
        if n == 0:
            return np.zeros((0, self.out_channels), self.dtype)
        if self._onnx is not None:
            self._t += n
            return self._onnx.process(block)
        # layout changes on the NumPy side: ~3 us cheaper per block than torch views
        x = block.T.reshape(self._batch, -1, n)
        if self._np_cell is not None:
            y = self._np_cell.process_np(x)
        else:
            y = self._cell.process(torch.from_numpy(x)).numpy()
        self._t += n
        # always a fresh array: a cell may return a view of its own buffers,
        # which the next block overwrites
        return np.array(y.reshape(self.out_channels, n).T, order="C", copy=True)

    def flush(self) -> np.ndarray:
        """End the signal: return the last :attr:`latency` output frames, then reset.

        After ``process`` over a whole signal, ``flush`` emits what the
        model still owes for it (nothing for causal models); together they
        equal the offline output delayed by ``latency``.
        """
        if self._onnx is None:
            self._cell.end(self._t)
            tail = self.process(np.zeros((self.latency, self.channels), self.dtype))
        else:  # whole blocks of zeros through the built session: no session for the tail's length
            tail = self._onnx.flush(self.latency) if self.latency else np.zeros((0, self.out_channels), self.dtype)
        self.reset()
        return tail

    def __repr__(self) -> str:
        return (
            f"Streamer({type(self.model).__name__}, channels={self.channels}, "
            f"out_channels={self.out_channels}, latency={self.latency}, dtype={self.dtype})"
        )
