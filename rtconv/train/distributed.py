"""Training on several processes: ranks, each rank's share of the data, and failures.

``torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] $(which rtconv) train ...``
starts N processes (ranks) per machine; :func:`start` sees torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``), joins
the process group and returns a :class:`Context`; without it the trainer
runs as one plain process and nothing here is used.

The contract
    - **Batch size is the effective (global) batch**: ``--batch-size 32`` on
      4 ranks is 8 examples per rank and step, so the learning rate and the
      schedule keep their meaning when the job is scaled.  A batch size the
      world size does not divide is refused (:func:`split_batch`).
    - **Each rank sees its own share of every batch** (:class:`Shards`): the
      epoch's order is a permutation drawn from ``(seed, epoch)`` alone, cut
      into global batches, each split into consecutive per-rank slices, so no
      two ranks see the same example in an epoch and exact resume needs no
      generator state.  DDP averages the ranks' gradients, so a step on W
      ranks is the step one process takes on the whole batch (for losses that
      are means over examples: l1, mse, si_sdr, cmrs; ``stft`` and the ``sc``
      term normalise over the batch and differ slightly).  A last, short
      batch is split as evenly as it goes and each rank's loss weighted by
      its share; a rank left without an example runs one with weight 0 so
      the ranks stay in step.
    - **Decisions are the same everywhere**: training and validation losses
      are summed over the ranks (:meth:`Context.mean`) and broadcast from
      rank 0, so the best epoch and early stopping agree on every rank.
    - **Only rank 0 writes** checkpoints, the state file, the report and the
      log.  Writes are atomic (temporary file, then rename), so a job killed
      at any moment leaves the last complete checkpoint, never half of one.
    - **A failing rank stops the job**: a rank that crashes, is killed or
      loses its machine makes the others' next collective fail (gloo: at
      once; a vanished machine: after ``--dist-timeout``), and torchrun
      stops the rest with SIGTERM; either way each surviving rank raises
      :class:`DistributedError`, one sentence naming the rank, the epoch and
      how to continue (``--resume``).  torchrun's own summary follows it.

Data.  Every rank builds (generates, synthesizes, reads) and holds the whole
training and validation set, since the shuffle gives each rank other
examples every epoch: generation time is paid by every rank in parallel
(the same wall time as one process) and memory once per rank (a machine
with 8 ranks holds 8 copies).  ``--resume`` and the data folders must be
readable on every machine; only rank 0's machine gets ``--out``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import signal
import time
from typing import Iterator

import numpy as np
import torch

from ..errors import ConfigError, RtconvError
from .choices import DIST_BACKENDS as BACKENDS

__all__ = ["Context", "DistributedError", "Shards", "start", "launched", "env_rank", "split_batch", "said_once",
           "BACKENDS"]


class DistributedError(RtconvError, RuntimeError):
    """A rank of a distributed training job failed or was stopped."""


def launched() -> bool:
    """True when this process was started by torchrun (or another ``env://`` launcher)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def env_rank() -> int:
    """This process's rank according to torchrun's environment (0 for a plain process)."""
    return int(os.environ["RANK"]) if launched() else 0


def split_batch(batch_size: int, world_size: int) -> int:
    """The per-rank share of the effective batch ``batch_size``; refused unless it divides evenly."""
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        raise ConfigError(
            f"--batch-size {batch_size} is the effective batch of all {world_size} ranks and must split "
            f"evenly among them; use a multiple of {world_size} "
            f"({f'{lower} or ' if lower else ''}{lower + world_size})."
        )
    return batch_size // world_size


@contextlib.contextmanager
def said_once(rank: int) -> Iterator[None]:
    """Around checks that fail alike on every rank: only rank 0 prints the refusal.

    The other ranks wait before they exit: torchrun stops every rank as soon as one fails, and a
    rank that exited first could get rank 0 stopped before it printed (seen once in the suite).
    Rank 0's exit ends the wait.
    """
    try:
        yield
    except ConfigError:
        if rank != 0:
            time.sleep(_QUIET_RANK_WAIT_S)
            raise SystemExit(1) from None
        raise


#: Seconds a rank other than 0 waits after a refusal, so that rank 0's sentence is printed first.
_QUIET_RANK_WAIT_S = 20.0


class Context:
    """Where this process stands in a job: rank, world size, device, backend.

    ``Context()`` is the plain single process (``enabled`` is False).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 backend: str | None = None, device: torch.device | None = None, owned: bool = False):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.backend, self.device, self.owned = backend, device, owned
        self.stage = "before training"  # for failure messages: "in epoch 3", ...
        self.out: str | None = None
        self._old_sigterm = None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    def provenance(self, batch_size: int) -> dict:
        """What the checkpoint records about the job's layout."""
        return {"world_size": self.world_size, "backend": self.backend, "batch_size": batch_size,
                "batch_size_per_rank": batch_size // self.world_size,
                "shuffle": "seed+epoch" if self.enabled else "generator"}

    def mean(self, total: float, count: float) -> float:
        """``total / count`` summed over every rank, the same float on all of them."""
        if not self.enabled:
            return total / max(1, count)
        import torch.distributed as dist

        t = torch.tensor([total, count], dtype=torch.float64, device=self.device)
        with self.watch():
            dist.all_reduce(t)
            dist.broadcast(t, 0)  # one rounding, rank 0's, for every rank's decisions
        return float(t[0]) / max(1.0, float(t[1]))

    def check_same(self, choices: dict) -> None:
        """Refuse ranks started with different training choices (different commands per machine)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        text = json.dumps(choices, sort_keys=True, default=str)
        h = int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")
        t = torch.tensor([h, -h], dtype=torch.int64, device=self.device)
        with self.watch():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if int(t[0]) != -int(t[1]):
            with said_once(self.rank):
                raise ConfigError(
                    f"the {self.world_size} ranks were started with different training choices; start "
                    "every rank (every machine) with the same rtconv train command."
                )

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` inside DistributedDataParallel (its weights broadcast from rank 0)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        with self.watch():
            return DistributedDataParallel(model, device_ids=ids)

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Turn a collective's failure (a peer crashed, was killed, vanished) into one sentence."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as e:
            if not self.enabled or not _is_peer_failure(e):
                raise
            self._quiet()
            raise DistributedError(self._sentence(
                f"another rank failed or could not be reached ({_short(e)}; torchrun's summary below "
                "names which)")) from None

    def _sentence(self, cause: str) -> str:
        after = (f"the checkpoint keeps the best completed epoch and --resume {self.out} continues after the "
                 "last completed one" if self.out else "nothing was saved (no --out)")
        return f"{self} stopped {self.stage} because {cause}; {after}."

    def _on_sigterm(self, signum, frame) -> None:
        self._quiet()
        raise DistributedError(self._sentence(
            "torchrun stopped it (SIGTERM), as it does when another rank fails or the job is cancelled "
            "(its summary below says which)"))

    def _quiet(self) -> None:
        # the launcher's SIGTERM usually follows a peer's failure within milliseconds: let the
        # sentence already on its way be printed instead of being cut off by a second one
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def stop(self) -> None:
        """Leave the process group (if this context made it) and restore SIGTERM."""
        if self._old_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.owned:
            import torch.distributed as dist

            if dist.is_initialized():
                if self.enabled:
                    # leave together: a rank that tears gloo down while a peer is still between
                    # its last collective and its own teardown can abort ("terminate called
                    # without an active exception", seen once in 3 runs of the 2-rank tests)
                    with contextlib.suppress(RuntimeError):
                        dist.barrier()
                dist.destroy_process_group()
            self.owned = False


_PEER = re.compile(r"gloo|nccl|connection|peer|timed? ?out|socket|broken pipe", re.I)


def _is_peer_failure(e: BaseException) -> bool:
    import torch.distributed as dist

    return isinstance(e, getattr(dist, "DistError", ())) or bool(_PEER.search(str(e)))


def _short(e: BaseException) -> str:
    """The gist of a backend error: no source path, first sentence only."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return text.split(". ")[0].rstrip(".")


def _rank_device(name: str, local_rank: int, local_world: int) -> torch.device:
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda under torchrun.") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"device {name!r} cannot train under torchrun (DistributedDataParallel runs on cpu "
                          "and cuda); use --device cpu or cuda.")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu.")
    if dev.index is not None:
        if local_world > 1:
            raise ConfigError(f"--device {name} names one GPU, but {local_world} ranks run on this machine; "
                              "use --device cuda (each rank takes the GPU of its LOCAL_RANK).")
        return dev
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                          f"start at most {torch.cuda.device_count()} ranks per machine (--nproc_per_node).")
    return torch.device("cuda", local_rank)


def start(backend: str = "auto", device: str = "auto", batch_size: int = 1,
          timeout_s: float = 1800.0, out: str | None = None) -> Context:
    """Join torchrun's process group, or return the plain single-process :class:`Context`.

    Parameters
    ----------
    backend : {"auto", "gloo", "nccl"}
        ``auto``: nccl when the ranks train on CUDA, gloo on CPU.
    device : str
        The ``--device`` choice; under torchrun ``auto`` and ``cuda`` mean
        ``cuda:LOCAL_RANK`` (CPU without CUDA).
    batch_size : int
        The effective batch, checked to split evenly among the ranks.
    timeout_s : float
        How long a collective waits for a silent rank (a machine that
        vanished) before the job stops, in seconds.
    out : str, optional
        The checkpoint path, named in failure messages.
    """
    import torch.distributed as dist

    if not (launched() or dist.is_initialized()):
        return Context()
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    with said_once(rank):
        if backend not in BACKENDS:
            raise ConfigError(f"--dist-backend must be one of {BACKENDS}, got {backend!r}.")
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ConfigError(f"--dist-timeout must be a positive number of seconds, got {timeout_s!r}.")
        split_batch(batch_size, world)
    dev = _rank_device(device, local_rank, local_world)
    chosen = ("nccl" if dev.type == "cuda" else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and dev.type != "cuda":
        raise ConfigError(f"--dist-backend nccl needs CUDA, but {rank=} trains on {str(dev)!r}; "
                          "use --dist-backend gloo (or auto).")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owned = not dist.is_initialized()
    if owned:
        kw = {"device_id": dev} if chosen == "nccl" else {}
        dist.init_process_group(chosen, timeout=datetime.timedelta(seconds=timeout_s), **kw)
    else:
        chosen = dist.get_backend()
    ctx = Context(rank, world, local_rank, chosen, dev, owned)
    ctx.out = out
    try:
        ctx._old_sigterm = signal.signal(signal.SIGTERM, ctx._on_sigterm)
    except ValueError:  # not the main thread: torchrun's plain SIGTERM applies
        pass
    return ctx


class Shards:
    """This rank's share of each global batch, epoch by epoch (seed + epoch decide the order).

    Parameters
    ----------
    tensors : tuple of torch.Tensor
        The materialized training set ``(inputs, targets)``.
    batch_size : int
        The effective batch (all ranks together).
    seed : int
    ctx : Context
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, ctx: Context):
        self.tensors, self.batch_size, self.seed, self.ctx = tensors, batch_size, seed, ctx
        self.count = len(tensors[0])

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's permutation of every example index (the same on every rank)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.count)

    def indices(self, epoch: int) -> Iterator[tuple[np.ndarray, float, int]]:
        """``(this rank's indices, loss weight, examples in the global batch)`` per step."""
        order, w = self.order(epoch), self.ctx.world_size
        for begin in range(0, self.count, self.batch_size):
            batch = order[begin: begin + self.batch_size]
            mine = np.array_split(batch, w)[self.ctx.rank]
            if len(mine) == 0:  # a short last batch left this rank out: keep in step, add nothing
                yield batch[:1], 0.0, len(batch)
            else:
                # 1.0 for a full batch; the gradient DDP averages is the whole batch's mean-loss gradient
                yield mine, len(mine) * w / len(batch), len(batch)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float, int]]:
        """``(inputs, targets, weight, global count)`` for each step of ``epoch`` (0-based)."""
        for idx, weight, seen in self.indices(epoch):
            i = torch.from_numpy(idx)
            yield self.tensors[0][i], self.tensors[1][i], weight, seen
