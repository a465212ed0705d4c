"""``rtconv bench process``: real-time factor of file processing, against a whole-file conv pass.

For each model (the classic [40, 40]/[1, 5, 1] MimoCNN and a 1024-tap FIR) it
times, in the same run and on one torch thread:

* ``forward``: one whole-file ``model(x)`` on a tensor already in memory
  (for the FIR, a single ``torch.conv1d``): the compute floor, no file I/O;
* ``process --offline``: :func:`rtconv.files.process_file` with the offline
  reference path (read, chunked forward, write);
* ``process -b N``: the streamed path, in blocks of ``N`` frames: the
  default block size of ``rtconv process``, 512 and 4096 unless ``--blocks``
  says otherwise.

Real-time factor = audio seconds / wall seconds (median of ``--repeat``).
Targets from issue 3: the MimoCNN processed by ``rtconv process`` (default
block size) at >= 300x real time on one core, and streaming at 512-frame
blocks within 2x of ``--offline``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HELP = "real-time factor of `rtconv process` (streamed, offline) vs one whole-file conv pass"


def configure(parser: argparse.ArgumentParser) -> None:
    from ..cli.common import positive_int

    parser.add_argument("--seconds", type=positive_int, default=60, help="file length in s (default: %(default)s)")
    parser.add_argument("--rate", type=positive_int, default=48000, help="sample rate in Hz (default: %(default)s)")
    parser.add_argument("--blocks", default="default,512,4096", metavar="N,N",
                        help="streamer block sizes to time; 'default' is rtconv process's own "
                             "(default: %(default)s)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per case, median reported (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: %(default)s)")


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from ..files import DEFAULT_BLOCK_SIZE, process_file
    from ..models import FIR, MimoCNN

    torch.set_num_threads(args.threads)
    blocks: list[int] = []
    for b in args.blocks.split(","):
        b = b.strip()
        n = DEFAULT_BLOCK_SIZE if b == "default" else int(b) if b.isdigit() and int(b) > 0 else None
        if n is None:
            print(f"rtconv: error: --blocks takes positive frame counts or 'default', got {b!r}.", file=sys.stderr)
            return 2
        if n not in blocks:
            blocks.append(n)
    rate, n = args.rate, args.seconds * args.rate
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
             + 0.05 * rng.standard_normal(n)).astype(np.float32)

    torch.manual_seed(0)
    mimo = MimoCNN([40, 40], [1, 5, 1])
    fir = FIR(rng.standard_normal(1024) / 32)
    models = {"MimoCNN [40,40]/[1,5,1]": mimo, "FIR 1024 taps": fir}
    for m in models.values():
        m.sample_rate = rate
        m.eval()

    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"rtconv bench process: {args.seconds} s mono {rate} Hz PCM_16 WAV, {args.threads} torch thread(s), "
          f"median of {args.repeat}; {os.cpu_count()} CPUs, load average {load:.1f} at start "
          "(timings scale with other load)")
    print(f"{'model':<26} {'path':<24} {'wall s':>8} {'x real time':>12} {'vs forward':>11}")
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input.wav"
        sf.write(str(src), audio, rate, subtype="PCM_16")
        out = Path(tmp) / "out.wav"
        x = torch.from_numpy(audio)[None, None]
        for label, model in models.items():
            with torch.no_grad():
                model(x[..., :rate])  # warm-up
                fwd = _time(lambda: model(x), args.repeat)
            cases = [("forward (in memory)", fwd)]
            cases.append(("process --offline", _time(
                lambda: process_file(src, out, model, offline=True, overwrite=True, progress=False,
                                     threads=args.threads), args.repeat)))
            for b in blocks:
                cases.append((f"process -b {b}", _time(
                    lambda: process_file(src, out, model, block_size=b, overwrite=True, progress=False,
                                         threads=args.threads), args.repeat)))
            for path, secs in cases:
                results[(label, path)] = secs
                mark = " (default)" if path == f"process -b {DEFAULT_BLOCK_SIZE}" else ""
                print(f"{label:<26} {path + mark:<24} {secs:8.3f} {args.seconds / secs:11.0f}x {secs / fwd:10.2f}x")
    mimo_label = next(iter(models))
    offline = results[(mimo_label, "process --offline")]
    print()
    if DEFAULT_BLOCK_SIZE in blocks:
        rtf = args.seconds / results[(mimo_label, f"process -b {DEFAULT_BLOCK_SIZE}")]
        print(f"target: MimoCNN `rtconv process` (default -b {DEFAULT_BLOCK_SIZE}) >= 300x real time: {rtf:.0f}x "
              f"-> {'met' if rtf >= 300 else 'NOT met'}")
    if 512 in blocks:
        ratio = results[(mimo_label, "process -b 512")] / offline
        print(f"target: streaming -b 512 within 2x of --offline: {ratio:.2f}x "
              f"-> {'met' if ratio <= 2 else 'NOT met'}")
    for b in blocks:
        for label in models:
            r = results[(label, f"process -b {b}")] / results[(label, "process --offline")]
            print(f"  {label}: streamed -b {b} / offline = {r:.2f}")
    return 0
