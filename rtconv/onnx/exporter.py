"""Write a model's step model as an ONNX file, checked against the streamer.

:func:`export` traces :class:`~rtconv.onnx.step.StepModel` with
``torch.onnx.export`` (opset 17, fixed shapes), adds the model's metadata,
runs the file in onnxruntime (one thread) block by block against
:class:`rtconv.Streamer` on the same noise, and writes it only if every
output sample agrees to ``1e-4`` of full scale.

The file's convention (what a host needs, nothing rtconv-specific):

* input ``audio_in``: float32 ``(block_size, channels)``, frames-major;
* output ``audio_out``: float32 ``(block_size, out_channels)``;
* every other input ``S`` is a state, with an output ``S_out`` of the same
  shape and type (float32); before the first block all states are zero, after
  each block ``S_out`` becomes the next block's ``S``.

``metadata_props`` (all strings): ``name``, ``task``, ``sample_rate`` (Hz;
absent for a model that is not rate-specific; the host resamples, the step
model does not), ``block_size``, ``channels``, ``out_channels``,
``latency_samples`` (the output lags the input by this many samples, as
:attr:`rtconv.Streamer.latency`), ``receptive_field_samples``,
``architecture``, ``attenuation_limit_db`` (denoisers; the strength baked
in), ``rtconv_version``, ``states`` (comma-separated names) and
``convention`` (the rule above, as one sentence).
"""

from __future__ import annotations

import io
import json
import math
import os as _os
import tempfile as _tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..framed import Framed
from ..models import Model
from .runtime import OnnxStep
from .step import StepModel

__all__ = ["export", "Exported", "step_metadata", "pipewire_config", "read_onnx_metadata", "verify", "trace", "TOLERANCE", "OPSET"]

#: Largest difference to the streamer an export may show, in full-scale units (input in [-1, 1]).
TOLERANCE = 1e-4
OPSET = 17
CONVENTION = (
    "audio_in (block_size, channels) float32 in, audio_out (block_size, out_channels) out; every other input S "
    "is a state whose next value is output S_out; states start at zero"
)


@dataclass
class Exported:
    """What :func:`export` wrote and how it checked it."""

    path: Path
    block_size: int
    channels: int
    out_channels: int
    states: list[tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]
    max_error: float | None = None  # largest |onnx - streamer| seen; None when not verified
    blocks_checked: int = 0
    notes: list[str] = field(default_factory=list)


def _require_onnx():
    try:
        import onnx
    except ModuleNotFoundError:
        raise ConfigError(
            "exporting to ONNX needs the onnx package, which is not installed; "
            "pip install -c constraints.txt -e \".[onnx]\" installs it (and onnxruntime)."
        ) from None
    return onnx


def step_metadata(model: Model, step: StepModel) -> dict[str, str]:
    """The ``metadata_props`` of an exported step model (see the module docstring)."""
    from .. import __version__

    meta = model.metadata or {}
    arch = model.arch or type(model).__name__
    try:
        arch = f"{arch} {json.dumps(model.config, sort_keys=True)}"
    except NotImplementedError:  # a model built in code, not from the registry
        pass
    out = {
        "name": str(meta.get("name") or model.arch or type(model).__name__),
        "task": str(meta.get("task") or ("filter" if model.arch == "fir" else "unknown")),
        "block_size": str(step.n),
        "channels": str(step.channels),
        "out_channels": str(step.out_channels),
        "latency_samples": str(step.latency),
        "receptive_field_samples": str(model.receptive_field),
        "architecture": arch,
        "rtconv_version": __version__,
        "states": ",".join(step.state_names),
        "convention": CONVENTION,
    }
    rate = model.sample_rate or meta.get("sample_rate")
    if rate:
        out["sample_rate"] = str(int(rate))
    if hasattr(type(model), "attenuation_limit_db"):
        limit = model.attenuation_limit_db
        out["attenuation_limit_db"] = "none" if limit is None else f"{float(limit):g}"
    if meta.get("description"):
        out["description"] = str(meta["description"])
    return out


def trace(step: StepModel, controls: list[torch.Tensor] | None = None) -> bytes:
    """``step`` as ONNX bytes (opset 17, fixed shapes; no metadata, no check).

    ``controls``: values of ``step.control_names`` to trace with, when it has any.
    """
    args = (torch.zeros(step.n, step.channels), *step.initial_states(), *(controls or []))
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and GRU notes
        torch.onnx.export(
            step, args, buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["audio_in", *step.state_names, *step.control_names],
            output_names=["audio_out", *(f"{k}_out" for k in step.state_names)],
        )
    return buf.getvalue()


def _check_blocks(model: Model, step: StepModel) -> int:
    """Blocks enough to fill every history, pass the start-up masks and cycle the frame phase twice."""
    hops = [m.encoder.stride for m in model.modules() if isinstance(m, Framed)]
    period = max((h // math.gcd(step.n, h) for h in hops), default=1)
    reach = model.receptive_field + step.latency
    return int(min(max(8, -(-reach // step.n) + 2 * period + 4), 3000))


def verify(onnx_model: bytes | str | _os.PathLike, model: Model, blocks: int, seed: int = 0) -> float:
    """Largest ``|onnxruntime - Streamer|`` over ``blocks`` blocks of full-scale noise."""
    from ..streaming import Streamer

    run = OnnxStep(onnx_model)
    s = Streamer(model, channels=run.channels, block_size=run.block_size)
    rng = np.random.default_rng(seed)
    err = 0.0
    for _ in range(blocks):
        x = rng.uniform(-1.0, 1.0, size=(run.block_size, run.channels)).astype(np.float32)
        err = max(err, float(np.abs(run.process(x) - s.process(x)).max()))
    return err


def export(
    model: Model,
    path: str | _os.PathLike,
    block_size: int,
    channels: int | None = None,
    *,
    check: bool = True,
) -> Exported:
    """Write ``model`` as an ONNX step model of ``block_size`` frames to ``path``.

    Parameters
    ----------
    model : rtconv.models.Model
        The model as it is now (a denoiser's attenuation limit included).
    path : path
        The ``.onnx`` file to write; replaced if it exists.  Written to a
        hidden temporary file beside it and renamed only when complete and
        checked.
    block_size : int
        Frames per block; the host must call the model with exactly this many.
    channels : int, optional
        Stream channels (a mono model runs once per channel); default: the
        model's input channels.
    check : bool
        Run the file in onnxruntime against :class:`rtconv.Streamer` first
        and refuse to write it if any sample differs by more than
        :data:`TOLERANCE` (needs onnxruntime).

    Raises
    ------
    ConfigError
        A model, block size or channel count that cannot be exported (one
        sentence saying which and why), or a file that fails the check.
    """
    onnx = _require_onnx()
    from .. import __version__

    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"the output {str(path)!r} must end in .onnx, the extension ONNX hosts look for.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist; create it first.")
    was_training = model.training
    model.eval()
    try:
        step = StepModel(model, block_size, channels).eval()
        proto = onnx.load_from_string(trace(step))
        shapes = {"audio_out": (step.n, step.out_channels),
                  **{f"{k}_out": s for k, s in zip(step.state_names, step.state_shapes, strict=True)}}
        for v in proto.graph.output:  # the tracer leaves some dims symbolic; hosts read them from the file
            dims = v.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[v.name]:
                dims.add().dim_value = d
        meta = step_metadata(model, step)
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        proto.producer_name, proto.producer_version = "rtconv", __version__
        proto.doc_string = f"rtconv step model: {CONVENTION}."
        proto.graph.name = meta["name"]
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
        result = Exported(path, step.n, step.channels, step.out_channels,
                          list(zip(step.state_names, step.state_shapes, strict=True)), meta)
        if check:
            result.blocks_checked = _check_blocks(model, step)
            result.max_error = verify(data, model, result.blocks_checked)
            if not result.max_error <= TOLERANCE:
                raise ConfigError(
                    f"the exported step model differs from rtconv.Streamer by {result.max_error:.3g} of full scale "
                    f"(allowed {TOLERANCE:g}) for this model at block size {block_size}, so {str(path)!r} was not "
                    "written; this is a bug in rtconv's exporter, please report it with the model."
                )
    finally:
        model.train(was_training)
    try:
        fd, tmp = _tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise ConfigError(f"cannot write {str(path)!r}: the folder {str(folder)!r} cannot be written to "
                          f"({e.strerror or e}); choose another folder.") from None
    try:
        with _os.fdopen(fd, "wb") as f:
            f.write(data)
        mask = _os.umask(0)
        _os.umask(mask)
        _os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; give the usual mode
        _os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"cannot write {str(path)!r}: {e.strerror or e}.") from None
    finally:
        if _os.path.exists(tmp):
            _os.unlink(tmp)
    return result


def read_onnx_metadata(path: str | _os.PathLike) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict (reads only the model, runs nothing)."""
    onnx = _require_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def pipewire_config(exported: Exported, description: str | None = None) -> str:
    """A PipeWire (1.6+) filter-chain drop-in that runs ``exported`` as a virtual microphone.

    Only a mono step model (``channels = out_channels = 1``) maps onto the
    plugin's ports, which carry one channel each.  See the README section
    "Export to ONNX / PipeWire" for what was and was not checked.
    """
    if exported.channels != 1 or exported.out_channels != 1:
        raise ConfigError(
            f"a PipeWire config is written only for a one-channel step model, and this one takes "
            f"{exported.channels} and gives {exported.out_channels} channels; export a mono model with --channels 1."
        )
    meta, n = exported.metadata, exported.block_size
    rate = meta.get("sample_rate")
    if rate is None:
        raise ConfigError(
            f"the model {meta.get('name')!r} states no sample rate, and PipeWire must be told one; "
            "save it with rtconv.save(..., sample_rate=...) and export it again."
        )
    name = "".join(c if c.isalnum() else "_" for c in meta["name"])
    desc = description or f"rtconv {meta['name']} (ONNX)"
    src = str(exported.path.resolve()).replace("\\", "\\\\").replace('"', '\\"')

    def dims(shape) -> str:
        return "[ " + " ".join(str(d) for d in shape) + " ]"

    ins = [f'                            "audio_in" = {{ dimensions = {dims((n, 1))} data = "port:in" }}']
    outs = [f'                            "audio_out" = {{ dimensions = {dims((n, 1))} data = "port:out" }}']
    for k, shape in exported.states:
        ins.append(f'                            "{k}" = {{ dimensions = {dims(shape)} data = "tensor:{k}_out" }}')
        outs.append(f'                            "{k}_out" = {{ dimensions = {dims(shape)} }}')
    nl = "\n"
    return f"""\
# PipeWire filter-chain drop-in written by rtconv export {meta['rtconv_version']} (needs PipeWire 1.6+
# with its onnx filter-graph plugin, libspa-filter-graph-plugin-onnx).
# Model {meta['name']!r}: {rate} Hz, blocks of {n} samples, latency {meta['latency_samples']} samples.
# Put it in ~/.config/pipewire/pipewire.conf.d/ and restart PipeWire, or run: pipewire -c filter-chain.conf
# with it in ~/.config/pipewire/filter-chain.conf.d/.
context.modules = [
{{  name = libpipewire-module-filter-chain
    args = {{
        node.description = "{desc}"
        media.name       = "{desc}"
        audio.rate       = {rate}
        node.latency     = "{n}/{rate}"
        filter.graph = {{
            nodes = [
                {{
                    type  = onnx
                    name  = rtconv
                    label = {{
                        filename  = "{src}"
                        blocksize = {n}
                        input-tensors = {{
{nl.join(ins)}
                        }}
                        output-tensors = {{
{nl.join(outs)}
                        }}
                    }}
                }}
            ]
        }}
        capture.props = {{
            node.name      = "capture.rtconv_{name}"
            audio.position = [ MONO ]
            node.passive   = true
            # the plugin runs the model on exactly {n} samples per cycle: hold the graph there
            node.force-quantum = {n}
        }}
        playback.props = {{
            node.name      = "rtconv_{name}"
            media.class    = Audio/Source
            audio.position = [ MONO ]
        }}
    }}
}}
]
"""
