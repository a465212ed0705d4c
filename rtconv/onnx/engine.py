"""``Streamer(model, engine="onnx")``: the step model in onnxruntime behind the streamer's API.

An ONNX step model has one block size; a streamer takes blocks of any
length.  :class:`OnnxEngine` therefore keeps one onnxruntime session per
block length it has seen (the ``block_size`` given up front is built at
once, another length on its first block: 0.1-0.9 s here, so a live callback
should keep its length), all exported with the same states (every framed
layer carries its phase), so they take turns on one stream.  A denoiser's
floor (its strength) is an input read from the model's mask gates on every
block, so changing ``attenuation_limit_db`` reaches a running stream as it
does with the torch engine.  The weights are copied when the engine is
built, as the torch engine copies them.

onnxruntime computes with one intra-op thread by default and releases
Python's interpreter lock for the whole block.  Only float32; the streamer
refuses the engine for a model whose :meth:`~rtconv.Streamer.flush` it could
not give exactly (a masked layer before the model's last delay: centred
layers stacked).
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import ConfigError
from ..models import Model
from .runtime import require_onnxruntime
from .step import StepModel

__all__ = ["OnnxEngine"]


class OnnxEngine:
    """Block-by-block onnxruntime execution of ``model`` with carried state, any block length.

    Parameters
    ----------
    model : rtconv.models.Model
        The model (weights copied now; mask-gate floors read live).
    channels : int
        Stream channels, as :class:`rtconv.Streamer` takes them.
    block_size : int
        The block length to build a session for at once.
    threads : int
        onnxruntime intra-op threads.
    """

    _SESSIONS = 8  # block lengths kept; the least recently used goes first

    def __init__(self, model: Model, channels: int, block_size: int = 128, threads: int = 1) -> None:
        self._ort = require_onnxruntime()
        self._model = copy.deepcopy(model).eval()  # later block lengths are built from these weights
        self._live = model  # whose mask-gate floors are read on every block
        self.channels, self.threads = channels, threads
        first = self._build(block_size)
        if not first["step"].exact_flush:
            raise ConfigError(
                "engine='onnx' cannot end this model's stream exactly: it has centred (padding='same') layers "
                "before its last delay, whose end the torch engine masks; use engine='torch' for it."
            )
        self.state_names = first["step"].state_names
        self._shapes = dict(zip(self.state_names, first["step"].state_shapes, strict=True))
        self._gates = [model.get_submodule(k.removesuffix(".floor")) for k in first["step"].control_names]
        self.block_size = block_size
        self._sessions = {block_size: first}
        self.reset()

    def _build(self, n: int) -> dict:
        from .exporter import trace

        step = StepModel(self._model, n, self.channels, phase=True, controls=True).eval()
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        data = trace(step, controls=step.initial_controls(self._model))
        session = self._ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        return {"step": step, "session": session, "controls": step.control_names,
                "outputs": ["audio_out", *(f"{k}_out" for k in step.state_names)]}

    def _session(self, n: int) -> dict:
        s = self._sessions.pop(n, None)
        if s is None:
            s = self._build(n)
            if len(self._sessions) >= self._SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
        self._sessions[n] = s  # most recently used last
        return s

    def reset(self) -> None:
        """Zero every state, as at the start of a stream."""
        self.states = {k: np.zeros(s, np.float32) for k, s in self._shapes.items()}

    def process(self, block: np.ndarray) -> np.ndarray:
        """A checked float32 block ``(n, channels)`` in, ``(n, out_channels)`` out (a new array)."""
        s = self._session(block.shape[0])
        feed = {"audio_in": np.ascontiguousarray(block, np.float32), **self.states}
        for name, gate in zip(s["controls"], self._gates, strict=True):
            feed[name] = np.array([gate.floor], np.float32)
        out = s["session"].run(s["outputs"], feed)
        self.states = dict(zip(self.state_names, out[1:], strict=True))
        return out[0]

    def flush(self, frames: int) -> np.ndarray:
        """The next ``frames`` (at least 1) output frames for zero input, in blocks of the built length."""
        n = self.block_size
        zeros = np.zeros((n, self.channels), np.float32)
        out = [self.process(zeros) for _ in range(-(-frames // n))]
        return np.concatenate(out)[:frames]

