"""Training on several processes: real torchrun jobs of 1 and 2 CPU ranks (gloo), a rank killed mid-run.

The jobs are started as a user starts them, ``python -m torch.distributed.run
--standalone --nproc_per_node N -m rtconv train ...``, on a tiny task (noisy
sines, a 2-layer MimoCNN) so that each takes seconds.  The reference for "the
same weights" is ``--nproc_per_node 1``: a plain ``rtconv train`` keeps its own
shuffling generator and so draws another order of examples.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from rtconv import Streamer
from rtconv.checkpoint import load, read_metadata
from rtconv.errors import ConfigError
from rtconv.train.distributed import Context, Shards, split_batch
from rtconv.train.trainer import state_path

# 401 examples in batches of 8: the last batch has one example, so one rank gets none (weight 0)
TASK = ["sines", "--arch", "mimo_cnn", "--taps", "5,5", "--features", "1,3,1", "--train-examples", "401",
        "--val-examples", "16", "--test-examples", "16", "--batch-size", "8", "--optimizer", "adam",
        "--lr", "0.01", "--schedule", "cosine", "--seed", "3", "--quiet"]
EPOCHS = 6


def _launch(ranks: int, args: list[str], cwd: Path, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RTCONV_TEST_JOB": uuid.uuid4().hex}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
            "-m", "rtconv", "train", *args]
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen), env["RTCONV_TEST_JOB"]


def _run(ranks: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc, _ = _launch(ranks, args, cwd)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _rank_pid(job: str, rank: int) -> int | None:
    """The process of ``rank`` in torchrun job ``job`` (found by the environment torchrun gave it)."""
    want = {f"RTCONV_TEST_JOB={job}".encode(), f"RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= env:
                return int(entry.name)
    return None


def _weights(path) -> dict:
    return load(path).state_dict()


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """The same training on 1 rank and on 2 ranks, run to the end."""
    folder = tmp_path_factory.mktemp("ddp")
    done = {}
    for ranks in (1, 2):
        out = folder / f"ranks{ranks}.safetensors"
        r = _run(ranks, [*TASK, "--epochs", str(EPOCHS), "--out", str(out)], folder)
        assert r.returncode == 0, r.stderr[-3000:]
        done[ranks] = (out, r)
    return folder, done


def test_two_ranks_with_half_the_batch_end_with_the_weights_of_one_with_all_of_it(jobs):
    _, done = jobs
    one, two = _weights(done[1][0]), _weights(done[2][0])
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    h1, h2 = (read_metadata(done[n][0])["provenance"]["history"] for n in (1, 2))
    assert h2["val_loss"] == pytest.approx(h1["val_loss"], rel=1e-5)  # the same best epoch on every rank count


def test_two_ranks_computing_their_share_in_pieces_end_with_the_weights_of_one_rank(jobs):
    folder, done = jobs
    out = folder / "ranks2-micro.safetensors"
    # each rank's 4 examples in pieces of 3 and 1: only the last piece's backward pass averages the ranks
    r = _run(2, [*TASK, "--epochs", str(EPOCHS), "--micro-batch", "3", "--out", str(out)], folder)
    assert r.returncode == 0, r.stderr[-3000:]
    one, pieces = _weights(done[1][0]), _weights(out)
    for k in one:
        torch.testing.assert_close(pieces[k], one[k], rtol=1e-5, atol=1e-6, msg=k)


def test_two_ranks_on_fresh_examples_every_epoch_end_with_the_weights_of_one_rank(tmp_path):
    """Each epoch's new examples reach every rank, and the shards are cut from them."""
    outs = {}
    for ranks in (1, 2):
        outs[ranks] = tmp_path / f"fresh{ranks}.safetensors"
        r = _run(ranks, [*TASK, "--epochs", "3", "--fresh-examples", "--out", str(outs[ranks])], tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = _weights(outs[1]), _weights(outs[2])
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    h = read_metadata(outs[2])["provenance"]["history"]["train_loss"]
    repeated = _run(1, [*TASK, "--epochs", "3", "--out", str(tmp_path / "same.safetensors")], tmp_path)
    assert repeated.returncode == 0, repeated.stderr[-3000:]
    assert read_metadata(tmp_path / "same.safetensors")["provenance"]["history"]["train_loss"][1:] != \
        pytest.approx(h[1:], rel=1e-4)  # the later epochs trained on other examples


def test_the_provenance_records_the_ranks_backend_and_both_batch_sizes(jobs):
    _, done = jobs
    prov = read_metadata(done[2][0])["provenance"]
    assert prov["distributed"] == {"world_size": 2, "backend": "gloo", "batch_size": 8, "batch_size_per_rank": 4,
                                   "shuffle": "seed+epoch"}
    assert prov["final"] and prov["epochs_done"] == EPOCHS
    assert prov["command"].startswith("rtconv train sines")


def test_only_rank_0_reports(jobs):
    _, done = jobs
    r = done[2][1]
    assert r.stdout.count("test loss") == 1, r.stdout
    assert "error" not in r.stderr.lower()


def test_the_checkpoint_of_a_distributed_run_loads_and_streams_like_offline(jobs):
    _, done = jobs
    model = load(done[2][0])
    x = np.random.default_rng(0).normal(size=(1000, 1)).astype(np.float32)
    offline = model(torch.from_numpy(x.T[None]))[0].detach().numpy().T
    s = Streamer(model)
    streamed = np.concatenate([s.process(x[i:i + 7]) for i in range(0, len(x), 7)] + [s.flush()])
    np.testing.assert_allclose(streamed[model.latency:], offline, rtol=1e-4, atol=1e-5)


def test_a_killed_rank_stops_the_job_in_one_sentence_and_resume_finishes_it_exactly_on_any_rank_count(jobs):
    folder, done = jobs
    part = folder / "killed.safetensors"
    proc, job = _launch(2, [*TASK, "--epochs", str(EPOCHS), "--out", str(part)], folder)
    try:
        deadline = time.monotonic() + 180
        while not state_path(part).is_file():  # rank 0 finished its first epoch
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.01)
        pid = _rank_pid(job, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    said = [ln for ln in err.splitlines() if ln.startswith("rtconv train: error:")]
    assert len(said) == 1, err[-3000:]
    assert said[0].startswith("rtconv train: error: rank 0 of 2 stopped in epoch ")
    assert f"--resume {part} continues after the last completed one." in said[0]
    # no partial file: the checkpoint loads (its checksum holds) and no temporary file is left
    assert read_metadata(part)["provenance"]["final"] is False
    load(part)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    whole = _weights(done[2][0])
    for ranks in (2, 1):  # the order needs no generator state: another rank count continues it too
        resumed = folder / f"resumed-on-{ranks}.safetensors"
        r = _run(ranks, [*TASK, "--epochs", str(EPOCHS), "--resume", str(part), "--out", str(resumed)], folder)
        assert r.returncode == 0, r.stderr[-3000:]
        again = _weights(resumed)
        for k in whole:
            torch.testing.assert_close(again[k], whole[k], rtol=1e-5, atol=1e-6, msg=k)
        prov = read_metadata(resumed)["provenance"]
        assert prov["epochs_done"] == EPOCHS and prov["chain"] == []  # one run, continued
        assert prov["distributed"]["world_size"] == ranks


def _refusals(args: list[str], cwd: Path) -> list[str]:
    """The error lines of a two-rank job that must fail."""
    r = _run(2, [*TASK, *args], cwd)
    assert r.returncode != 0
    return [ln for ln in r.stderr.splitlines() if ln.startswith("rtconv train: error:")]


def test_a_batch_size_the_ranks_cannot_share_is_refused_once_in_one_sentence(tmp_path):
    said = _refusals(["--batch-size", "7", "--epochs", "1"], tmp_path)
    assert said == ["rtconv train: error: --batch-size 7 is the effective batch of all 2 ranks and must split "
                    "evenly among them; use a multiple of 2 (6 or 8)."]


def test_a_time_budget_under_torchrun_is_refused_once_in_one_sentence(tmp_path):
    said = _refusals(["--time-budget", "1", "--epochs", "1"], tmp_path)
    assert said == ["rtconv train: error: --time-budget sizes a run from this process's step time; under torchrun "
                    "give --epochs instead (every rank must run the same number)."]


@pytest.mark.parametrize("batch, world", [(4, 3), (1, 2), (30, 4)])
def test_split_batch_refuses_an_uneven_split_and_names_the_nearest_multiples(batch, world):
    with pytest.raises(ConfigError, match=f"multiple of {world}"):
        split_batch(batch, world)


@pytest.mark.parametrize("count, batch, world", [(401, 8, 2), (10, 6, 3), (7, 4, 4), (3, 8, 4), (64, 16, 1)])
def test_every_example_is_seen_by_exactly_one_rank_per_epoch(count, batch, world):
    x = torch.arange(count)[:, None].float()
    per_rank = [list(Shards((x, x), batch, seed=1, ctx=Context(r, world, backend="gloo")).indices(4))
                for r in range(world)]
    steps = {len(p) for p in per_rank}
    assert steps == {-(-count // batch)}  # every rank takes the same number of steps
    seen = np.concatenate([idx for p in per_rank for idx, w, _ in p if w > 0])
    assert sorted(seen.tolist()) == list(range(count))
    for step in zip(*per_rank):
        # DDP averages w * (mean loss of the rank's examples): the whole batch's mean when w = world * n_r / n
        n = step[0][2]
        assert sum(len(idx) for idx, w, _ in step if w) == n
        for idx, w, _ in step:
            assert w == 0 or w == pytest.approx(world * len(idx) / n)


def test_the_order_depends_on_seed_and_epoch_only():
    ctx = Context(0, 2, backend="gloo")
    x = torch.zeros(50, 1)
    a, b = Shards((x, x), 10, 5, ctx), Shards((x, x), 10, 5, ctx)
    assert np.array_equal(a.order(3), b.order(3)) and not np.array_equal(a.order(3), a.order(4))
    assert not np.array_equal(a.order(3), Shards((x, x), 10, 6, ctx).order(3))


def test_the_cli_offers_the_backends_the_trainer_knows():
    from rtconv.cli import train as cli
    from rtconv.train import distributed

    assert cli.DIST_BACKENDS == distributed.BACKENDS
