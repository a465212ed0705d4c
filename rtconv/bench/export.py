"""Exported step models in onnxruntime against the torch Streamer, block by block.

For each model and block size it exports the step model (``rtconv export``),
then feeds the same noise to both engines, alternating which goes first on
every block, and prints the median and p99 time per block in microseconds
and as a percentage of the block's real-time budget at the model's rate,
with the ratio torch / onnxruntime (above 1: onnxruntime is faster).  Both
run on one thread (``torch.set_num_threads(1)``; onnxruntime with one
intra-op thread, as PipeWire's plugin runs it).  Both numbers include each
engine's Python call (``Streamer.process``, ``OnnxStep.process``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

HELP = "exported ONNX step model in onnxruntime vs the torch Streamer: block time, side by side"
MODELS = ("lab-denoiser", "dilated", "fir1024", "fir4096", "speech-band", "denoiser", "denoiser-gru")


def configure(parser) -> None:
    parser.add_argument("--blocks", type=int, nargs="+", default=[128, 1024], metavar="N",
                        help="block sizes in frames (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="audio per measurement, in seconds (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="NAME",
                        help=f"models to run (default: all of {', '.join(MODELS)})")


def _model(key: str):
    import torch

    from .. import FIR, DilatedCNN, load
    from ..checkpoint import models_dir
    from ..denoiser import ConvDenoiser
    from ..models import transfer_weights

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if key in ("lab-denoiser", "speech-band", "denoiser"):
        return f"{key} (shipped)", load(models_dir() / f"{key}.safetensors")
    if key == "dilated":
        return "DilatedCNN 4x16 taps 3", DilatedCNN(channels=16, layers=4, taps=3)
    if key.startswith("fir"):
        taps = int(key[3:])
        return f"FIR {taps} taps", FIR(rng.normal(size=taps) / np.sqrt(taps))
    shipped = load(models_dir() / "denoiser.safetensors")  # the shipped one grown by a 64-unit GRU branch
    grown = ConvDenoiser(**{**shipped.config, "gru": 64})
    transfer_weights(shipped, grown)
    with torch.no_grad():  # a trained branch is not silent: give its output layer weights
        for m in grown.gate.estimator:
            if hasattr(m, "body") and hasattr(m.body[0], "gru"):
                m.body[-1].weight.normal_(0, 0.05)
    grown.sample_rate = shipped.sample_rate
    return "denoiser + GRU 64 (gru=64)", grown


def _measure(engines: dict, x: np.ndarray, n: int, warmup: int = 20) -> dict[str, np.ndarray]:
    names = list(engines)
    times = {k: [] for k in names}
    for i, start in enumerate(range(0, len(x) - n + 1, n)):
        block = x[start : start + n]
        for k in (names if i % 2 == 0 else names[::-1]):  # neither engine always runs first
            t = time.perf_counter()
            engines[k](block)
            times[k].append(time.perf_counter() - t)
    return {k: np.asarray(v[warmup:]) for k, v in times.items()}


def run(args) -> int:
    import torch

    from .. import Streamer
    from ..onnx import OnnxStep, export

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    print(f"rtconv bench export: one thread each, {args.seconds:g} s of audio per cell, engines alternating per block;")
    print("time per block in us and as % of its real-time budget at the model's rate (median / p99)\n")
    head = (f"{'model':<28} {'block':>5} {'budget':>9} | {'onnxruntime us':>15} {'%':>13} | "
            f"{'torch Streamer us':>17} {'%':>13} | torch/onnx (median, p99)")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            label, model = _model(key)
            model.eval()
            rate = model.sample_rate or 48000
            for n in args.blocks:
                path = Path(tmp) / f"{key}-{n}.onnx"
                export(model, path, n)
                engines = {"onnx": OnnxStep(path).process, "torch": Streamer(model, block_size=n).process}
                frames = max(int(args.seconds * rate), 60 * n)
                x = (rng.uniform(-1, 1, size=(frames, 1)) * 0.3).astype(np.float32)
                res = _measure(engines, x, n)
                budget = n / rate
                med = {k: np.median(v) for k, v in res.items()}
                p99 = {k: np.percentile(v, 99) for k, v in res.items()}

                def cell(k):
                    return (f"{med[k] * 1e6:7.1f} / {p99[k] * 1e6:7.1f} "
                            f"{med[k] / budget * 100:5.2f} / {p99[k] / budget * 100:5.2f}")

                print(f"{label:<28} {n:>5} {budget * 1e3:6.2f} ms | {cell('onnx')} | {cell('torch'):>31} | "
                      f"{med['torch'] / med['onnx']:5.2f}x {p99['torch'] / p99['onnx']:5.2f}x", flush=True)
            print()
    return 0
