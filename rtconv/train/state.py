"""What a training run writes: the checkpoint with its provenance (:func:`_save`) and, after every epoch, the
resumable state beside it (:func:`state_path`: weights, optimizer moments, schedule, generator, bookkeeping;
tensors + JSON) that lets ``--resume`` continue an interrupted run exactly."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..models import Model
from . import distributed as _dist
from .config import TrainConfig


_STATE_KEYS = ("task", "task_options", "arch", "arch_config", "loss", "optimizer", "lr", "momentum",
               "weight_decay", "batch_size", "epochs", "schedule", "clip_grad", "seed", "train_only",
               "train_warmup", "fresh_examples")


def state_path(out) -> Path:
    """The resumable-state file written beside checkpoint ``out``."""
    out = Path(out)
    return out.with_name(out.stem + ".state.safetensors")


def _plan(cfg: TrainConfig) -> dict:
    plan = {k: getattr(cfg, k) for k in _STATE_KEYS}
    if plan["train_only"] is None:  # as states written before the option had it
        del plan["train_only"]
    for k in ("train_warmup", "fresh_examples"):  # likewise
        if not plan[k]:
            del plan[k]
    return json.loads(json.dumps(plan, default=str))


def _save_state(model, opt, sched, gen, cfg, bookkeeping: dict) -> None:
    """Everything an exact continuation needs, as tensors + JSON (written atomically)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"opt.{pid}.{k}"] = t.detach().cpu().contiguous()
    tensors["generator"] = gen.get_state()
    meta = {"plan": _plan(cfg), "param_groups": osd["param_groups"],
            "scheduler": sched.state_dict() if sched is not None else None, **bookkeeping}
    path = state_path(cfg.out)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"rtconv_train_state": json.dumps(meta, default=float)})
    tmp.replace(path)


def _load_state(path: Path, tensors: bool = True) -> tuple[dict, dict]:
    """A state file's JSON and (unless ``tensors`` is false) its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["rtconv_train_state"])
        return meta, ({k: f.get_tensor(k) for k in f.keys()} if tensors else {})


def _unfinished(meta: dict, cfg: TrainConfig) -> bool:
    """The state is of an interrupted run with ``cfg``'s choices: one that ``cfg`` can continue exactly."""
    return meta.get("plan") == _plan(cfg) and meta["epoch"] < meta.get("end", cfg.epochs)


def _unfinished_note(cfg: TrainConfig) -> str | None:
    """What to say when ``<out>.state`` holds an interrupted run of these choices that this one
    will replace: rerunning the same command starts over; ``--resume <out>`` continues it."""
    sp = state_path(cfg.out)
    if not sp.is_file() or (cfg.resume and Path(cfg.resume).resolve() == Path(cfg.out).resolve()):
        return None
    try:
        meta, _ = _load_state(sp, tensors=False)
        if not _unfinished(meta, cfg):
            return None
    except Exception:  # noqa: BLE001 - not a state file of ours: nothing to say
        return None
    return (f"note: {sp} holds an interrupted run of these choices (after epoch {meta.get('epoch')} of "
            f"{meta.get('end', cfg.epochs)}); this run starts over and replaces it. To continue that one "
            f"exactly instead, run again with --resume {cfg.out}.")


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(model: Model, cfg: TrainConfig, td, history: dict, metrics: dict, command: str,
          device, final: bool, chain: list | None = None, origin: dict | None = None,
          layout: dict | None = None) -> Path | None:
    if not cfg.out:
        return None
    from ..checkpoint import save

    prov = {
        "command": command,
        "trainer": "rtconv.train",
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("command", "progress", "workers")},
        "task_options": td.options,
        "task_description": td.description,
        "outputs": td.outputs,
        "device": str(device),
        "torch_version": torch.__version__,
        "epochs_done": len(history["train_loss"]),
        "history": history,
        "final": final,
        "chain": chain or [],
        # world_size, backend, effective and per-rank batch (distributed.Context.provenance)
        "distributed": layout or _dist.Context().provenance(cfg.batch_size),
    }
    if origin:
        # which file this run started from, exactly, and where its own epochs begin in the
        # history: ``config`` holds this run's choices (its lr ...), the history all runs'
        prov["resumed_from"] = origin
    cpu = copy.deepcopy(model).cpu()
    cpu.sample_rate = td.sample_rate
    return save(cpu, cfg.out, sample_rate=td.sample_rate, task=td.name, name=cfg.name,
                description=cfg.description or td.description, provenance=prov, metrics=metrics)
