"""Run an exported step model block by block in onnxruntime, carrying its states.

:class:`OnnxStep` is the host side of the convention every exported file
follows (input ``audio_in``, output ``audio_out``, every other input ``S``
a state fed from output ``S_out`` of the previous block, all states zero at
the start).  It is what ``rtconv export`` verifies a file with, what the
tests and ``rtconv bench export`` run, and a model for writing a host in
another language: it uses nothing but the names and shapes in the file.
"""

from __future__ import annotations

import os as _os
from pathlib import Path

import numpy as np

from ..errors import BlockError, ConfigError

__all__ = ["OnnxStep", "require_onnxruntime"]


def require_onnxruntime():
    """Import onnxruntime, or refuse in one sentence naming the extra to install."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ConfigError(
            "running an exported model needs onnxruntime, which is not installed; "
            "pip install -c constraints.txt -e \".[onnx]\" installs it."
        ) from None
    return onnxruntime


class OnnxStep:
    """An exported step model in an onnxruntime session, with its states.

    Parameters
    ----------
    model : path or bytes
        The ``.onnx`` file (or its contents).
    threads : int
        onnxruntime's intra-op threads; 1 (the default) is what live hosts
        such as PipeWire's onnx plugin use.

    Attributes
    ----------
    block_size, channels, out_channels : int
        From the shapes of ``audio_in`` and ``audio_out``.
    state_names : list of str
        The state inputs; each has an output named ``<name>_out``.
    metadata : dict of str
        The file's ``metadata_props`` (see :mod:`rtconv.onnx.exporter`).

    Notes
    -----
    ``session.run`` releases Python's interpreter lock while it computes,
    so another Python thread (a GUI, a recorder) keeps running meanwhile.
    """

    def __init__(self, model: str | _os.PathLike | bytes, threads: int = 1) -> None:
        ort = require_onnxruntime()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(Path(model))
        self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        if "audio_in" not in ins or "audio_out" not in outs:
            raise ConfigError(
                f"{self._label(model)} is not an rtconv step model: it needs an input 'audio_in' and an output "
                f"'audio_out', and has inputs {sorted(ins)!r} and outputs {sorted(outs)!r}."
            )
        self.block_size, self.channels = (int(d) for d in ins["audio_in"].shape)
        self.out_channels = int(outs["audio_out"].shape[1])
        self.state_names = [k for k in ins if k != "audio_in"]
        for k in self.state_names:
            if f"{k}_out" not in outs or list(outs[f"{k}_out"].shape) != list(ins[k].shape):
                raise ConfigError(
                    f"{self._label(model)} has a state input {k!r} without a matching output "
                    f"{k + '_out'!r} of shape {ins[k].shape}; it does not follow the step convention."
                )
        self._shapes = {k: tuple(int(d) for d in ins[k].shape) for k in self.state_names}
        self._outputs = ["audio_out", *(f"{k}_out" for k in self.state_names)]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.reset()

    @staticmethod
    def _label(model) -> str:
        return "the model" if isinstance(model, bytes) else repr(str(model))

    def reset(self) -> None:
        """Zero every state, as at the start of a stream."""
        self.states = {k: np.zeros(s, np.float32) for k, s in self._shapes.items()}

    def process(self, block: np.ndarray) -> np.ndarray:
        """One block ``(block_size, channels)`` float32 in; ``(block_size, out_channels)`` out."""
        if not isinstance(block, np.ndarray) or block.shape != (self.block_size, self.channels):
            shape = getattr(block, "shape", type(block).__name__)
            raise BlockError(
                f"this step model takes blocks of exactly ({self.block_size}, {self.channels}) frames x channels, "
                f"got {shape}; export another block size with rtconv export --block-size."
            )
        feed = {"audio_in": np.ascontiguousarray(block, np.float32), **self.states}
        out = self.session.run(self._outputs, feed)
        self.states = dict(zip(self.state_names, out[1:], strict=True))
        return out[0]
