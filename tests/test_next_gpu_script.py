"""models/denoiser-next-gpu.sh: the prepared GPU step must be a command the trainer accepts.

It cannot run here (no CUDA, no pack), so the script is run with a stand-in ``python3`` on PATH that
records what it was called with; that command is then parsed and configured by rtconv's own CLI, as
`python3 -m rtconv train ...` would be on the GPU machine, short of mixing and training.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rtconv.cli import get_parser
from rtconv.cli.train import build_config
from rtconv.train.choices import parse_loss
from rtconv.train.config import _check

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "models" / "denoiser-next-gpu.sh"

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["RECORD"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "cache": os.environ.get("RTCONV_CACHE"), "cwd": os.getcwd()}}, f)
"""


def _record(tmp_path, *args, env=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "python3"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(0o755)
    record = tmp_path / "record.json"
    # the script's overrides come from ``env`` alone, never from the shell the tests run in
    full_env = {k: v for k, v in os.environ.items() if k not in ("DEVICE", "WORKERS", "EXAMPLES", "LR", "SEED", "RESUME", "LOSS")}
    full_env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record), **(env or {}))
    done = subprocess.run(["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60)
    return done, (json.loads(record.read_text()) if record.exists() else None)


def test_the_script_runs_the_trainer_on_the_pack_with_a_command_rtconv_accepts(tmp_path):
    done, rec = _record(tmp_path, "runs/pack", str(tmp_path / "out"), "8")
    assert done.returncode == 0, done.stderr
    assert rec["cache"] == "runs/pack" and Path(rec["cwd"]) == ROOT
    assert rec["argv"][:3] == ["-m", "rtconv", "train"]
    parser, _ = get_parser()
    args = parser.parse_args(rec["argv"][2:])
    cfg = build_config(args)
    _check(cfg)
    parse_loss(cfg.loss)
    # v9's own loss and the term for what every GPU stage without it lost (STOI), unless LOSS says otherwise
    assert cfg.loss == "si_sdr + 10*sc + 5*cmrs + 4*pesq + 40*stoi"
    assert cfg.task == "denoise" and cfg.task_options["corpus"] == "realistic"
    assert cfg.task_options["val_split"] == "dev"  # the kept epoch is chosen on voices no model trained on
    assert cfg.device == "cuda" and cfg.workers == 15 and cfg.time_budget == 8.0
    assert (ROOT / cfg.resume).resolve() == (ROOT / "models" / "denoiser.safetensors").resolve()
    assert cfg.out == str(tmp_path / "out" / "gpu.safetensors") and (tmp_path / "out").is_dir()
    # what the step is for: low-cut channels and noise-only clips beyond v9's own shares
    assert cfg.task_options["bands"]["hp300"] > 0 and cfg.task_options["kinds"]["noise"] > 0.08
    assert cfg.task_options["sample_rate"] == 48000  # the shipped model's rate


def test_the_overrides_make_a_small_cpu_dry_run(tmp_path):
    done, rec = _record(tmp_path, "p", str(tmp_path / "o"), "2",
                        env={"DEVICE": "cpu", "WORKERS": "2", "EXAMPLES": "64"})
    assert done.returncode == 0, done.stderr
    cfg = build_config(get_parser()[0].parse_args(rec["argv"][2:]))
    assert (cfg.device, cfg.workers, cfg.task_options["train_examples"], cfg.time_budget) == ("cpu", 2, 64, 2.0)


def test_a_second_run_beside_the_first_takes_its_own_learning_rate_and_seed(tmp_path):
    done, rec = _record(tmp_path, "p", str(tmp_path / "b"), "8", env={"LR": "1e-4", "SEED": "312"})
    assert done.returncode == 0, done.stderr
    cfg = build_config(get_parser()[0].parse_args(rec["argv"][2:]))
    assert (cfg.lr, cfg.seed) == (1e-4, 312)
    plain = build_config(get_parser()[0].parse_args(_record(tmp_path, "p", str(tmp_path / "a"), "8")[1]["argv"][2:]))
    assert (plain.lr, plain.seed) == (5e-5, 311)


@pytest.mark.parametrize("args", [(), ("runs/pack",), ("a", "b", "c", "d")])
def test_the_script_says_how_to_call_it_and_runs_nothing_when_called_wrong(tmp_path, args):
    done, rec = _record(tmp_path, *args)
    assert done.returncode == 2 and rec is None
    assert "usage: bash models/denoiser-next-gpu.sh PACK_DIR OUT_DIR MINUTES" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, shlex.quote(done.stderr)


def test_the_step_draws_snrs_beyond_the_test_grids_top_bucket(tmp_path):
    # the 20 dB bucket is a missed goal; training only up to 20 dB left it at the edge (thirty-first session)
    _, rec = _record(tmp_path, "runs/pack", str(tmp_path / "out"), "8")
    cfg = build_config(get_parser()[0].parse_args(rec["argv"][2:]))
    low, high = cfg.task_options["snr_db"]
    assert low <= -5 and high >= 30


def test_a_call_that_continues_an_earlier_run_names_its_checkpoint_instead_of_editing_a_copy(tmp_path):
    # thirty-eighth session: a copy of the script with its --resume edited, saved in /tmp, ran from /
    # (the script works from its own folder's parent) and found no pack; two calls were lost
    done, rec = _record(tmp_path, "runs/pack", str(tmp_path / "c"), "3",
                        env={"RESUME": "runs/a/gpu.safetensors", "LOSS": "si_sdr + 10*sc"})
    assert done.returncode == 0, done.stderr
    cfg = build_config(get_parser()[0].parse_args(rec["argv"][2:]))
    assert cfg.resume == "runs/a/gpu.safetensors" and Path(rec["cwd"]) == ROOT
    assert cfg.loss == "si_sdr + 10*sc"  # a loss to try is a variable too, not an edited copy
