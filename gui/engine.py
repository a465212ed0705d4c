"""The one place the GUI touches rtconv's engine, checkpoints, files and live audio.

Widgets never import :mod:`rtconv.live` or :mod:`rtconv.checkpoint`
themselves: they call these functions, so the wiring to the engine is one
small module to read (and to change when the engine changes).
sounddevice/PortAudio is imported lazily by :mod:`rtconv.live`, never here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from rtconv.errors import CheckpointError, DeviceError, RtconvError

__all__ = [
    "load_model",
    "read_metadata",
    "default_model_path",
    "shipped_models",
    "describe_model",
    "stream_settings",
    "model_switches",
    "apply_switches",
    "make_session",
    "model_watcher",
    "list_hostapis",
    "list_devices",
    "engines",
    "process_array",
]


def _live():
    try:
        return importlib.import_module("rtconv.live")
    except ModuleNotFoundError as e:  # pragma: no cover - only before rtconv.live exists
        raise DeviceError(
            f"live audio is unavailable because rtconv.live could not be imported ({e}); "
            "reinstall rtconv."
        ) from None


def _checkpoint():
    return importlib.import_module("rtconv.checkpoint")


def load_model(path: str | Path):
    """Read a checkpoint; raises :class:`CheckpointError` with a one-sentence reason."""
    import rtconv

    return rtconv.load(path)


def read_metadata(path: str | Path) -> dict:
    return _checkpoint().read_metadata(path)


def default_model_path() -> Path | None:
    """The shipped default model, or None when the install ships none."""
    try:
        path = Path(_checkpoint().default_model_path())
    except (RtconvError, OSError, AttributeError, ModuleNotFoundError):
        return None
    return path if path.exists() else None


def models_dir() -> Path:
    """``models/`` beside the package (or ``$RTCONV_MODELS``): shipped and trained models."""
    return Path(_checkpoint().models_dir())


def resolve_model(name_or_path) -> Path:
    """The checkpoint a name or path means, found the way ``--model`` finds it (:func:`rtconv.checkpoint.resolve`)."""
    return Path(_checkpoint().resolve(name_or_path))


def shipped_models(directory: str | Path | None = None) -> list[Path]:
    """Checkpoints in ``directory`` (default :func:`models_dir`), sorted by name."""
    d = Path(directory) if directory is not None else models_dir()
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.safetensors") if p.is_file())


def describe_model(model, sample_rate: float | None = None) -> dict[str, Any]:
    """What the model panel shows, from the model and its checkpoint card.

    Latency and receptive field are samples at the model's own rate, and so are their ms: a stream at another
    rate resamples around the model, which adds the resampler's latency (the session's stats, as ``rtconv live``
    reports it) and changes nothing in the model's.  ``sample_rate`` (Hz, the device's) is used only for a model
    that states no rate: it runs at the device's.
    """
    meta = dict(getattr(model, "metadata", {}) or {})
    rate = getattr(model, "sample_rate", None) or meta.get("sample_rate") or sample_rate
    ms = (lambda n: 1000.0 * n / rate) if rate else (lambda n: None)
    layers = model.conv_layers()
    return {
        "name": meta.get("name") or type(model).__name__,
        "task": meta.get("task") or "—",
        "description": meta.get("description") or "",
        "architecture": _arch_text(model.arch, layers),
        "parameters": int(model.parameter_count()),
        "sample_rate": getattr(model, "sample_rate", None) or meta.get("sample_rate"),
        "latency": int(model.latency),
        "latency_ms": ms(model.latency),
        "receptive_field": int(model.receptive_field),
        "receptive_field_ms": ms(model.receptive_field),
        "causal": bool(model.causal),
        "metrics": dict(meta.get("metrics") or {}),
    }


def _arch_text(arch: str, layers) -> str:
    if len(layers) <= 4:
        return f"{arch} ({', '.join(_layer_text(l) for l in layers)})"
    return f"{arch} ({len(layers)} conv layers: {_layer_text(layers[0])} … {_layer_text(layers[-1])})"


def _layer_text(layer) -> str:
    d = f"·d{layer.dilation}" if getattr(layer, "dilation", 1) > 1 else ""
    return f"{layer.in_features}→{layer.out_features}×{layer.taps}{d}"


def default_vad_path() -> Path | None:
    """The shipped voice-activity detector (``vad`` in ``models/``), or None when absent."""
    path = resolve_model("vad")
    return path if path.is_file() else None


def stream_settings(choice: dict, record_dir=None):
    """The :class:`rtconv.live.StreamSettings` for the audio set-up's ``choice``; a bad value is one sentence."""
    return _live().StreamSettings(**choice, record_dir=record_dir)


def model_switches(model) -> dict:
    """The switches ``model`` has (a denoiser's ``attenuation_limit_db``) and their values."""
    from rtconv.live.chain import model_switches as switches

    return switches(model)


def runs_both_directions(model) -> bool:
    """Whether ``model`` may run over a recording both ways (``--both-directions``: denoisers)."""
    from rtconv.files import BOTH_DIRECTIONS_TASKS

    return (getattr(model, "metadata", None) or {}).get("task") in BOTH_DIRECTIONS_TASKS


def apply_switches(model, switches: dict) -> None:
    """Set ``switches`` on ``model`` (the window's copy, shown while the session's plays)."""
    from rtconv.live.chain import apply_switches as apply

    apply(model, switches)


def make_session(model_path, settings, host=None, **kwargs):
    """A live session (not started) playing the checkpoint ``model_path`` with ``settings``.

    With ``host`` (an :class:`rtconv.live.host.AudioHost`) it plays in that
    audio process (:class:`rtconv.live.host.RemoteSession`), so painting
    never delays the audio; without, in this process
    (:class:`rtconv.live.LocalSession`).  ``kwargs``: ``switches``, ``vad``,
    ``controls``, ``warn``.  Raises :class:`RtconvError` in one sentence.
    """
    if host is not None:
        from rtconv.live.host import RemoteSession

        return RemoteSession(host, model_path, settings, **kwargs)
    return _live().LocalSession(model_path, settings, **kwargs)


def model_watcher(path, on_new):
    """A started :class:`rtconv.live.ModelWatcher` calling ``on_new(path)`` (from its thread) per new version."""
    return _live().ModelWatcher(path, on_new, on_event=lambda message, swapped=False: None).start()


def audio_host():
    """A (not yet started) :class:`rtconv.live.host.AudioHost`: the process the GUI's streams run in."""
    from rtconv.live.host import AudioHost

    return AudioHost()


def list_hostapis() -> list[dict]:
    return list(_live().list_hostapis())


def list_devices(hostapi=None) -> list[dict]:
    return list(_live().list_devices(hostapi=hostapi))


def find_hostapi(query) -> str:
    """The name of the host API ``query`` (index or part of its name) means, found as ``rtconv live --hostapi``
    finds it; raises :class:`DeviceError` in the same sentence when none or several match."""
    live = _live()
    return live.list_hostapis()[live.find_hostapi(query)]["name"]


def find_device(query, kind: str, hostapi=None) -> dict:
    """The :func:`list_devices` entry of the ``kind`` (input/output) device ``query`` (index or part of its name)
    means, found as ``rtconv live --input-device/--output-device`` finds it; raises :class:`DeviceError` in the same
    sentence when none or several match."""
    live = _live()
    index = live.find_device(query, kind, hostapi)
    return next(d for d in live.list_devices() if d["index"] == index)


def engines() -> dict[str, str | None]:
    """What can compute the live blocks: engine name -> ``None`` where usable, else why not (one sentence).

    ``onnx`` (:class:`rtconv.Streamer`'s onnxruntime engine: about 3x faster per
    block for sample-rate convolution nets, slower for the framed denoiser, whose
    body the torch engine runs in NumPy) needs the ``onnx`` extra; whether it is
    installed is looked up without importing it.
    """
    import importlib.util

    from rtconv.live.settings import ENGINES

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    why = (f"needs {' and '.join(missing)}: pip install -c constraints.txt -e \".[onnx]\"" if missing else None)
    return {e: (why if e == "onnx" else None) for e in ENGINES}


def process_array(model, audio: np.ndarray, sample_rate: int, both_directions: bool = False) -> np.ndarray:
    """Run ``model`` over a whole recording ``(frames, channels)``, time-aligned.

    :func:`rtconv.files.process_array`: the engine ``rtconv process`` uses,
    resampling to the model's rate and back, latency removed; ``both_directions``
    as ``rtconv process --both-directions`` (denoisers only).
    """
    from rtconv.files import process_array as run

    return np.asarray(run(audio, int(sample_rate), model, both_directions=both_directions))


__all__ += ["models_dir", "resolve_model", "default_vad_path", "find_hostapi", "find_device", "CheckpointError"]
