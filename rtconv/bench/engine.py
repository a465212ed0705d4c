"""Streaming engine speed per block size, against naive recomputation and lfilter.

For each model and block size (at 48 kHz, one core) it prints the median
and p99 time to process one block as a percentage of that block's
real-time budget (``block / 48000`` s), for:

* ``rtconv``  - :class:`rtconv.Streamer` (carried state, FFT partitions for
  long kernels);
* ``naive``   - torch forward over ``receptive_field - 1`` kept samples plus
  the block, every block (what a stateless implementation does);
* ``lfilter`` - ``scipy.signal.lfilter`` carrying ``zi`` (FIR models only);
* ``pedalboard`` - Spotify pedalboard's ``Convolution`` (JUCE's partitioned
  convolution) called with ``reset=False``, as pedalboard streams (FIR
  models only, where ``pedalboard`` is installed: the ``bench`` extra).

All run in the same process, interleaved per block size, so the ratios
hold even on a busy machine.  For each FIR model a line then says how each
streamed output relates to the exact convolution with the kernel
(``numpy.convolve``): the gain and lag that fit it best and what is left.
pedalboard normalises an impulse response (JUCE scales it to 1/8 of unit
energy), so it filters with the kernel's shape at another gain.
"""

from __future__ import annotations

import time

import numpy as np

HELP = "streaming engine: block time vs budget, against naive recompute and scipy lfilter"
RATE = 48000
BLOCKS = (32, 64, 128, 256, 512, 1024, 2048, 4096)


def configure(parser) -> None:
    parser.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS), metavar="N",
                        help="block sizes in frames (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="audio per measurement, in seconds (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=["mimo", "dilated", "fir1024", "fir4096"],
                        choices=["mimo", "dilated", "fir1024", "fir4096"], help="models to run")


def _models():
    import torch

    from .. import FIR, DilatedCNN, MimoCNN

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    return {
        "mimo": ("MimoCNN [40,40]/[1,5,1] tanh", MimoCNN([40, 40], [1, 5, 1])),
        "dilated": ("DilatedCNN 4x16 taps 3", DilatedCNN(channels=16, layers=4, taps=3)),
        "fir1024": ("FIR 1024 taps", FIR(rng.normal(size=1024) / 32)),
        "fir4096": ("FIR 4096 taps", FIR(rng.normal(size=4096) / 64)),
    }


def _time_blocks(fn, x: np.ndarray, n: int) -> np.ndarray:
    blocks = [x[i : i + n] for i in range(0, len(x) - n + 1, n)]
    for b in blocks[:10]:  # warm-up: caches, allocator, lazy init
        fn(b)
    out = np.empty(len(blocks))
    for i, b in enumerate(blocks):
        t = time.perf_counter()
        fn(b)
        out[i] = time.perf_counter() - t
    return out


def _naive(model):
    import torch

    keep = model.receptive_field - 1
    hist = torch.zeros(1, 1, keep)

    def run(block):
        nonlocal hist
        with torch.inference_mode():
            x = torch.cat([hist, torch.from_numpy(block.T)[None]], dim=-1)
            y = model(x)[..., keep:]
            hist = x[..., x.shape[-1] - keep :] if keep else hist
        return y.numpy().T

    return run


def _pedalboard(kernel: np.ndarray):
    """A block function running ``kernel`` through pedalboard's Convolution, or None without pedalboard."""
    try:
        import pedalboard
    except ImportError:
        return None
    conv = pedalboard.Convolution(np.ascontiguousarray(kernel, np.float32)[None, :], sample_rate=RATE, mix=1.0)

    def run(block):
        return conv.process(np.ascontiguousarray(block.T), RATE, reset=False)

    return run


def fidelity(fn, kernel: np.ndarray, block: int = 128, seconds: float = 0.5) -> tuple[float, int, float]:
    """How the stream ``fn`` (a block function, fresh) relates to ``numpy.convolve(x, kernel)``: the least-squares
    gain, the lag (output samples late, 0..len(kernel)) and the largest error left after both, relative to the
    convolution's peak."""
    x = np.random.default_rng(2).normal(size=(int(seconds * RATE), 1)).astype(np.float32) * 0.1
    y = np.concatenate([np.asarray(fn(x[i : i + block])).reshape(-1) for i in range(0, len(x), block)])
    ref = np.convolve(x[:, 0].astype(np.float64), kernel.astype(np.float64))[: len(y)]
    lags = range(0, min(len(kernel), len(y) // 2))
    lag = max(lags, key=lambda d: abs(np.dot(y[d:], ref[: len(y) - d])))
    a, b = y[lag:], ref[: len(y) - lag]
    gain = float(np.dot(a, b) / np.dot(b, b))
    return gain, lag, float(np.abs(a - gain * b).max() / np.abs(b).max())


def _lfilter(kernel: np.ndarray):
    from scipy import signal

    zi = np.zeros(len(kernel) - 1, np.float32)
    b = kernel.astype(np.float32)

    def run(block):
        nonlocal zi
        y, zi = signal.lfilter(b, [1.0], block[:, 0], zi=zi)
        return y

    return run


def run(args) -> int:
    import torch

    from .. import FIR, Streamer

    torch.set_num_threads(1)
    models = _models()
    rng = np.random.default_rng(1)
    print(f"rtconv bench engine: 48 kHz, one thread, {args.seconds:g} s of audio per cell;")
    print("block time as % of the real-time budget (median / p99); lower is better\n")
    head = (f"{'model':<30} {'block':>5} {'budget':>8} | {'rtconv':>15} | {'naive':>15} | {'lfilter':>15} | "
            f"{'pedalboard':>15} | naive/rtconv lfilter/rtconv pedalboard/rtconv (p99)")
    print(head)
    print("-" * len(head))
    for key in args.models:
        label, model = models[key]
        model.eval()
        for n in args.blocks:
            budget = n / RATE
            frames = max(int(args.seconds * RATE), 30 * n)
            x = rng.normal(size=(frames, 1)).astype(np.float32) * 0.1
            s = Streamer(model, threads=1, block_size=n)
            impls = {"rtconv": s.process, "naive": _naive(model)}
            if isinstance(model, FIR):
                impls["lfilter"] = _lfilter(model.kernel)
                board = _pedalboard(model.kernel)
                if board is not None:
                    impls["pedalboard"] = board
            res = {k: _time_blocks(f, x, n) / budget * 100 for k, f in impls.items()}

            def cell(k):
                if k not in res:
                    return f"{'-':>15}"
                return f"{np.median(res[k]):6.2f} / {np.percentile(res[k], 99):6.2f}"

            p99 = {k: np.percentile(v, 99) for k, v in res.items()}
            ratios = f"{p99['naive'] / p99['rtconv']:8.1f}x"
            if "lfilter" in p99:
                ratios += f" {p99['lfilter'] / p99['rtconv']:12.1f}x"
            if "pedalboard" in p99:
                ratios += f" {p99['pedalboard'] / p99['rtconv']:15.1f}x"
            print(f"{label:<30} {n:>5} {budget * 1e3:6.2f}ms | {cell('rtconv')} | {cell('naive')} | {cell('lfilter')} | "
                  f"{cell('pedalboard')} | {ratios}")
        if isinstance(model, FIR):
            said = []
            for name, fn in (("rtconv", Streamer(model, threads=1, block_size=128).process),
                             ("pedalboard.Convolution", _pedalboard(model.kernel))):
                if fn is None:
                    said.append(f"{name}: not installed (pip install pedalboard, or the bench extra)")
                    continue
                gain, lag, err = fidelity(fn, model.kernel)
                said.append(f"{name}: gain {gain:.4f}, lag {lag}, error {err:.1e} of the peak after them")
            print(f"{label}, streamed in 128-frame blocks, against numpy.convolve with its kernel: " + "; ".join(said))
        print()
    return 0
