"""Models as ONNX step models: one block with explicit state, for hosts outside Python.

Step model
    :class:`StepModel` (``rtconv.onnx.step``): ``forward(audio_in, *states)
    -> (audio_out, *states_out)`` for one block of fixed size; block after
    block it equals :class:`rtconv.Streamer`.  Its layers' nodes come from
    one registry, :func:`register_step` (``rtconv.onnx.nodes``; the
    frame-rate layers' in ``rtconv.onnx.frames``).
Export
    :func:`export` (``rtconv.onnx.exporter``): trace it to an ONNX file with
    the model's metadata, checked in onnxruntime against the streamer;
    :func:`pipewire_config` writes a PipeWire filter-chain drop-in for it;
    ``rtconv export`` on the command line.
Running
    :class:`OnnxStep` (``rtconv.onnx.runtime``): run an exported file block
    by block with its states, in onnxruntime; :class:`OnnxEngine`
    (``rtconv.onnx.engine``): ``Streamer(model, engine="onnx")``, any block
    lengths, the live strength control included.

onnx and onnxruntime (the ``onnx`` extra) are imported only when a file is
written or run; building a :class:`StepModel` needs torch alone.
"""

from __future__ import annotations

from .exporter import Exported, export, pipewire_config, read_onnx_metadata, step_metadata
from .engine import OnnxEngine
from .runtime import OnnxStep
from .nodes import register_step
from .step import StepModel

__all__ = ["StepModel", "register_step", "export", "Exported", "pipewire_config", "read_onnx_metadata",
           "step_metadata", "OnnxStep", "OnnxEngine"]
