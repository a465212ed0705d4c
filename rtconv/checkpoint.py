"""The rtconv model file: safetensors weights plus a JSON description, in one file.

A checkpoint is a ``.safetensors`` file whose tensors are the model's
``state_dict`` and whose header metadata holds one key, ``"rtconv"``, a JSON
document describing the model (architecture and its constructor arguments,
sample rate, channels, task, latency, provenance, metrics).  Loading parses
JSON and copies raw tensor bytes; nothing in the file is ever executed (no
pickle), so a checkpoint from a stranger is as safe to open as a WAV file.

Public API
    :func:`save`, :func:`load` (also ``rtconv.save`` / ``rtconv.load``),
    :func:`read_metadata`, :func:`read_header`, :func:`stored_checksum`,
    :func:`describe`, :func:`resolve`, :func:`default_model_path`,
    :func:`models_dir`, :func:`check_model_path`, :func:`tensors_sha256`.

Every refusal is a :class:`rtconv.errors.CheckpointError` whose message is
one sentence naming the file, what is wrong and what to do.

Integrity.  :func:`save` also stores, under the header metadata key
``"rtconv_sha256"``, the SHA-256 of the tensors (each tensor's name, dtype,
shape and little-endian bytes, tensors in sorted name order); :func:`load`
recomputes it and refuses a file whose weights changed.  Files written
before the checksum existed still load, with one logged note per file.

Metadata keys (format version 1)
    ``format`` ("rtconv-checkpoint"), ``format_version`` (1), ``name``,
    ``description``, ``task`` ("denoise", "freqsep", "filter", ...),
    ``sample_rate`` (Hz or null), ``architecture`` (``{"name", "config"}``,
    rebuilt with :func:`rtconv.build`), ``in_channels``, ``out_channels``,
    ``kernel_convention`` ("impulse-response"), ``latency_samples``,
    ``receptive_field_samples``, ``causal``, ``parameter_count``, ``layers``
    (per conv layer: features, taps, dilation, padding, weight shape),
    ``provenance`` (command or design, dataset, epochs..., plus ``created``
    and ``rtconv_version``), ``metrics``; any other key found in
    ``model.metadata`` at save time is carried through unchanged.  Readers
    refuse a ``format_version`` newer than :data:`FORMAT_VERSION`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib as _hashlib
import json as _json
import logging as _logging
import os as _os
import struct as _struct
import tempfile as _tempfile
from pathlib import Path
from typing import Any, Union

import torch

from .errors import CheckpointError, ConfigError
from .models import ARCHITECTURES, Model, build, load_extra_architectures

__all__ = [
    "PROBABILITY_TASKS",
    "FORMAT",
    "FORMAT_VERSION",
    "KERNEL_CONVENTION",
    "save",
    "load",
    "read_metadata",
    "read_header",
    "describe",
    "default_model_path",
    "models_dir",
    "resolve",
    "check_model_path",
    "tensors_sha256",
    "stored_checksum",
    "DEFAULT_MODELS",
]

PathLike = Union[str, "_os.PathLike[str]"]

FORMAT = "rtconv-checkpoint"
FORMAT_VERSION = 1
KERNEL_CONVENTION = "impulse-response"
METADATA_KEY = "rtconv"
#: Header metadata key of the weights checksum (hex SHA-256, see :func:`tensors_sha256`).
CHECKSUM_KEY = "rtconv_sha256"
SUFFIX = ".safetensors"

#: Tasks whose models write a probability track, not sound: refused where their output would be heard
#: or mixed with audio (``--wet``, the live stream, a PipeWire virtual microphone)
PROBABILITY_TASKS = ("vad", "classify")

_log = _logging.getLogger(__name__)
_UNCHECKED_NOTED: set[str] = set()  # files whose missing checksum was already noted

#: Files :func:`default_model_path` looks for, best first.
DEFAULT_MODELS = ("denoiser.safetensors", "lab-denoiser.safetensors", "speech-band.safetensors")

# A safetensors header is JSON describing tensors; anything far larger than
# this is not one (it protects against reading gigabytes from a random file).
_MAX_HEADER = 100 * 1024 * 1024

# Keys save() computes from the model itself; any other key found in
# model.metadata (e.g. "design" from rtconv.designs) is carried through.
_COMPUTED = {
    "format", "format_version", "architecture", "sample_rate", "in_channels", "out_channels",
    "task", "kernel_convention", "latency_samples", "receptive_field_samples", "causal",
    "parameter_count", "layers", "name", "description", "provenance", "metrics",
}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _layers(model: Model) -> list[dict]:
    out = []
    names = {id(m): n for n, m in model.named_modules()}
    for layer in model.conv_layers():
        out.append({
            "name": names.get(id(layer), ""),
            "type": type(layer).__name__,
            "in_features": int(layer.in_features),
            "out_features": int(layer.out_features),
            "taps": int(layer.taps),
            "dilation": int(layer.dilation),
            "padding": getattr(layer, "padding", "causal"),
            "weight_shape": list(layer.weight.shape),
            "bias": getattr(layer, "bias", None) is not None,
        })
    return out


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict: name, dtype, shape and bytes of each tensor, in sorted name order."""
    h = _hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(_json.dumps([key, str(t.dtype).removeprefix("torch."), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_model_path(path: PathLike) -> Path:
    """``path`` as a checkpoint file name, refused unless it ends in ``.safetensors``.

    For commands that write a model (``rtconv filter -o``), so that
    ``-o out.wav`` says what is wrong instead of writing a model named like audio.
    """
    if not str(path).strip():
        raise CheckpointError(f"the output name is empty; name the model file to write, e.g. 'filter{SUFFIX}'.")
    p = Path(path)
    if p.suffix.lower() != SUFFIX:
        raise CheckpointError(
            f"the output {str(p)!r} is not a model file name: rtconv writes models as "
            f"{SUFFIX} files, so name it e.g. {str(p.with_suffix(SUFFIX) if p.suffix else Path(str(p) + SUFFIX))!r}."
        )
    return p


def describe(model: Model) -> dict:
    """The computed part of a model's metadata (architecture, channels, latency, layers)."""
    return {
        "architecture": {"name": model.arch, "config": model.config},
        "in_channels": int(model.in_channels),
        "out_channels": int(model.out_channels),
        "kernel_convention": KERNEL_CONVENTION,
        "latency_samples": int(model.latency),
        "receptive_field_samples": int(model.receptive_field),
        "causal": bool(model.causal),
        "parameter_count": int(model.parameter_count()),
        "layers": _layers(model),
    }


def save(
    model: Model,
    path: PathLike,
    *,
    sample_rate: int | None = None,
    task: str | None = None,
    name: str | None = None,
    description: str | None = None,
    provenance: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write ``model`` to one ``.safetensors`` checkpoint file.

    Parameters
    ----------
    model : rtconv.models.Model
        Any registered architecture; its ``state_dict`` is stored.
    path : str or path-like
        Destination.  Written to a temporary file in the same folder and
        renamed into place, so a failed save never leaves a broken file.
    sample_rate : int, optional
        Rate in Hz the model is meant for; default ``model.sample_rate``.
    task : str, optional
        What the model does (``"denoise"``, ``"freqsep"``, ``"filter"``, ...);
        default ``model.metadata["task"]``, else ``"filter"`` for an FIR and
        ``"unknown"`` otherwise.
    name, description : str, optional
        Human-readable name and one-paragraph description.
    provenance : dict, optional
        How the model was made: training command or design parameters,
        dataset description, epochs...  Merged over
        ``model.metadata["provenance"]``; creation time and rtconv version
        are added.
    metrics : dict, optional
        Final metrics (e.g. ``{"val_snr_db": 12.3}``).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from . import __version__

    if not isinstance(model, Model):
        raise CheckpointError(f"rtconv.save needs an rtconv model, got {type(model).__name__}.")
    if model.arch not in ARCHITECTURES:
        raise CheckpointError(
            f"architecture {model.arch!r} of {type(model).__name__} is not registered, so it could "
            "not be loaded again; decorate the class with rtconv.models.register."
        )
    path = Path(path)
    old = dict(model.metadata or {})
    tensors: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        t = t.detach().cpu()
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(
                f"refusing to save {str(path)!r}: tensor {key!r} holds NaN or Inf weights; "
                "the model diverged, retrain or lower the learning rate."
            )
        tensors[key] = t.contiguous().clone()

    rate = sample_rate if sample_rate is not None else model.sample_rate
    if rate is None:
        rate = old.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise CheckpointError(f"sample_rate must be a positive integer in Hz or None, got {rate!r}.")
    if task is None:
        task = old.get("task") or ("filter" if model.arch == "fir" else "unknown")
    prov = dict(old.get("provenance") or {})
    if "design" in old and "design" not in prov:
        prov["design"] = old["design"]
    prov.update(provenance or {})
    prov["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    prov["rtconv_version"] = __version__

    meta = {k: v for k, v in old.items() if k not in _COMPUTED}
    meta.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name if name is not None else old.get("name", path.stem),
        "description": description if description is not None else old.get("description", ""),
        "task": str(task),
        "sample_rate": rate,
        **describe(model),
        "provenance": prov,
        "metrics": dict(metrics if metrics is not None else old.get("metrics") or {}),
    })
    try:
        text = _json.dumps(meta, default=_jsonable, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"cannot save {str(path)!r}: its metadata is not plain JSON ({e}); pass numbers, "
            "strings, lists and dicts in provenance and metrics."
        ) from None

    from safetensors.torch import save_file

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(
            f"cannot save {str(path)!r}: the folder {str(folder)!r} does not exist; create it first."
        )
    try:
        fd, tmp = _tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise CheckpointError(f"cannot save {str(path)!r}: the folder {str(folder)!r} cannot be written to "
                              f"({e.strerror or e}); choose another folder.") from None
    _os.close(fd)
    try:
        save_file(tensors, tmp, metadata={METADATA_KEY: text, CHECKSUM_KEY: tensors_sha256(tensors)})
        _os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        _os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {e.strerror or e}.") from None
    finally:
        if _os.path.exists(tmp):
            _os.unlink(tmp)
    return path


def _umask() -> int:
    mask = _os.umask(0)
    _os.umask(mask)
    return mask


def read_header(path: PathLike) -> tuple[dict, dict]:
    """Read and check a checkpoint's header without loading its weights.

    Returns
    -------
    metadata : dict
        The parsed ``"rtconv"`` JSON document.
    tensors : dict
        ``{name: {"dtype": str, "shape": [..], "data_offsets": [a, b]}}``
        as stored in the safetensors header.
    """
    meta, header, _ = _read_header(path)
    return meta, header


def stored_checksum(path: PathLike) -> str | None:
    """The weights checksum stored in a checkpoint's header (hex SHA-256), None for older files."""
    return _read_header(path)[2]


def _read_header(path: PathLike) -> tuple[dict, dict, str | None]:
    path = Path(path)
    name = str(path)
    if not path.exists():
        have = sorted(q.stem for q in models_dir().glob("*.safetensors")) if models_dir().is_dir() else []
        hint = f" or name a shipped model ({', '.join(have)})" if have else ""
        raise CheckpointError(f"model file {name!r} does not exist; check the path{hint}.")
    if path.is_dir():
        raise CheckpointError(f"model path {name!r} is a folder, not a .safetensors checkpoint file.")
    not_st = (
        f"{name!r} is not an rtconv checkpoint: it is not a safetensors file; "
        "rtconv only loads .safetensors files written by rtconv.save, `rtconv filter` or `rtconv train`."
    )
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                if size == 0:
                    raise CheckpointError(f"model file {name!r} is empty (0 bytes); it is not a checkpoint.")
                raise CheckpointError(not_st)
            (n,) = _struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER:
                raise CheckpointError(not_st)
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"cannot read model file {name!r}: {e.strerror or e}.") from None
    if not raw.lstrip()[:1] == b"{":
        raise CheckpointError(not_st)
    if len(raw) < n:
        raise CheckpointError(
            f"model file {name!r} is truncated (its header is cut short); copy or download it again."
        )
    try:
        header = _json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(not_st) from None
    if not isinstance(header, dict):
        raise CheckpointError(not_st)
    extra = header.pop("__metadata__", None) or {}
    if not isinstance(extra, dict):
        raise CheckpointError(not_st)
    raw_meta, checksum = extra.get(METADATA_KEY), extra.get(CHECKSUM_KEY)
    end = 0
    for t in header.values():
        try:
            end = max(end, int(t["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(not_st) from None
    if 8 + n + end > size:
        raise CheckpointError(
            f"model file {name!r} is truncated ({size} bytes, the header promises {8 + n + end}); "
            "copy or download it again."
        )
    if raw_meta is None and path.name.endswith(".state.safetensors"):
        model = path.with_name(path.name[: -len(".state.safetensors")] + SUFFIX)
        raise CheckpointError(
            f"{name!r} is the training state `rtconv train` keeps to continue a run (--resume {str(model)!r}), "
            f"not a model; load {str(model)!r} instead."
        )
    if raw_meta is None:
        raise CheckpointError(
            f"{name!r} is a safetensors file but not an rtconv checkpoint (it has no 'rtconv' "
            "metadata); save models with rtconv.save."
        )
    try:
        meta = _json.loads(raw_meta)
        if not isinstance(meta, dict):
            raise ValueError
    except ValueError:
        raise CheckpointError(f"the rtconv metadata in {name!r} is not valid JSON; the file is damaged.") from None
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{name!r} has an invalid format_version {version!r}; the file is damaged.")
    if version > FORMAT_VERSION:
        from . import __version__

        raise CheckpointError(
            f"{name!r} uses checkpoint format version {version}, newer than the {FORMAT_VERSION} "
            f"this rtconv {__version__} reads; upgrade rtconv."
        )
    return meta, header, checksum if isinstance(checksum, str) else None


def read_metadata(path: PathLike) -> dict:
    """The JSON metadata of a checkpoint, checked but without loading weights."""
    return read_header(path)[0]


def load(path: PathLike) -> Model:
    """Rebuild a model from a checkpoint; returns it in eval mode.

    The model's ``sample_rate`` and ``metadata`` (the full JSON document) are
    filled in.  Raises :class:`CheckpointError` for anything that is not a
    complete, finite checkpoint of a known architecture.
    """
    path = Path(path)
    name = str(path)
    meta, header, checksum = _read_header(path)
    arch_info = meta.get("architecture")
    if not isinstance(arch_info, dict) or not isinstance(arch_info.get("name"), str):
        raise CheckpointError(f"{name!r} does not say which architecture it holds; the file is damaged.")
    arch = arch_info["name"]
    config = arch_info.get("config") or {}
    if arch not in ARCHITECTURES:
        load_extra_architectures()
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{name!r} holds an unknown architecture {arch!r} (known: "
            f"{', '.join(sorted(ARCHITECTURES))}); it was made by a newer or extended rtconv."
        )
    if not isinstance(config, dict):
        raise CheckpointError(f"{name!r} has an invalid architecture config {config!r}; the file is damaged.")
    try:
        model = build(arch, config)
    except ConfigError as e:
        raise CheckpointError(f"{name!r} cannot be rebuilt: {str(e).rstrip('.')}.") from None

    expected = model.state_dict()
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing:
        raise CheckpointError(
            f"{name!r} lacks tensor(s) {', '.join(missing)} that architecture {arch!r} needs; "
            "the file is damaged or was edited."
        )
    if extra:
        raise CheckpointError(
            f"{name!r} has unexpected tensor(s) {', '.join(extra)} for architecture {arch!r}; "
            "the file is damaged or was edited."
        )
    for key, t in expected.items():
        shape = list(header[key].get("shape", []))
        if shape != list(t.shape):
            raise CheckpointError(
                f"tensor {key!r} in {name!r} has shape {tuple(shape)} but architecture {arch!r} "
                f"needs {tuple(t.shape)}; the file is damaged or was edited."
            )

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot read the weights in {name!r}: {e}.") from None
    if checksum is None:
        _note_unchecked(path)
    elif tensors_sha256(tensors) != checksum:
        raise CheckpointError(
            f"the weights in {name!r} do not match the checksum stored when it was saved, so the file "
            "was damaged or edited after saving; copy or download it again."
        )
    for key, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"tensor {key!r} in {name!r} holds {bad} NaN/Inf weight(s); the model is broken, "
                "retrain it or use another checkpoint."
            )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {name!r} do not fit architecture {arch!r}: {e}.") from None
    for field, actual in (("in_channels", model.in_channels), ("out_channels", model.out_channels)):
        if field in meta and meta[field] != actual:
            raise CheckpointError(
                f"{name!r} says {field}={meta[field]!r} but its architecture has {actual}; "
                "the file is damaged or was edited."
            )
    rate = meta.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise CheckpointError(f"{name!r} has an invalid sample_rate {rate!r}; the file is damaged.")
    model.sample_rate = rate
    model.metadata = meta
    model.eval()
    return model


def _note_unchecked(path: Path) -> None:
    key = str(path.resolve())
    if key not in _UNCHECKED_NOTED:
        _UNCHECKED_NOTED.add(key)
        _log.warning("note: %r has no weights checksum (an older file), so damage cannot be detected; "
                     "save it again to add one.", str(path))


def models_dir() -> Path:
    """The folder of shipped models: ``$RTCONV_MODELS``, else ``models/`` beside the package."""
    env = _os.environ.get("RTCONV_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "models"


def resolve(model: PathLike | None) -> Path:
    """The checkpoint a user means: a path, a name in :func:`models_dir`, or the default.

    The one place a model argument becomes a file: ``rtconv info``, every
    ``--model``, :func:`rtconv.files.process_file`, the live processor and
    the benchmarks call it, so a name means the same file everywhere.  A
    path that exists, or has a folder part, is taken as it is;
    ``"speech-band"`` or ``"speech-band.safetensors"`` finds
    ``models/speech-band.safetensors`` when no such file exists in the
    current folder; ``None`` gives :func:`default_model_path`.  A name
    found nowhere comes back unchanged, for :func:`load` to refuse in one
    sentence that lists the shipped names.
    """
    if model is None:
        return default_model_path()
    p = Path(model)
    if p.exists() or p.parent != Path("."):
        return p
    for cand in (models_dir() / p.name, models_dir() / f"{p.name}.safetensors"):
        if cand.is_file():
            return cand
    return p


def default_model_path() -> Path:
    """The model rtconv runs when none is given.

    The competitive denoiser ``denoiser.safetensors`` when it exists and is a
    denoiser, else the lab denoiser ``lab-denoiser.safetensors``, else the
    shipped fixed speech-band filter ``speech-band.safetensors``, all in
    :func:`models_dir`.
    """
    folder = models_dir()
    for fname in DEFAULT_MODELS:
        p = folder / fname
        if not p.is_file():
            continue
        if fname == "denoiser.safetensors":
            try:
                if read_metadata(p).get("task") != "denoise":
                    continue
            except CheckpointError:
                continue
        return p
    if not folder.is_dir():
        where = "RTCONV_MODELS names" if _os.environ.get("RTCONV_MODELS") else "the models folder"
        raise CheckpointError(
            f"no default model: {where} {str(folder)!r}, which does not exist; name a model file "
            "(`rtconv info PATH`, --model PATH elsewhere) or set RTCONV_MODELS to a folder that has one."
        )
    raise CheckpointError(
        f"no default model found in {str(folder)!r} (looked for {', '.join(DEFAULT_MODELS)}); name a model "
        "file (`rtconv info PATH`, --model PATH elsewhere) or set RTCONV_MODELS to a folder that has one."
    )

