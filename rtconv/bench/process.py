"""``rtconv bench process``: real-time factor of file processing, and of batches with --jobs.

Single file (the default).  For each model (the shipped default denoiser,
the classic [40, 40]/[1, 5, 1] MimoCNN and a 1024-tap FIR) it times, in the
same run and on ``--threads`` torch threads:

* ``forward``: one whole-file ``model(x)`` on a tensor already in memory
  (for the FIR, a single ``torch.conv1d``): the compute floor, no file I/O;
* ``process --offline``: :func:`rtconv.files.process_file` with the offline
  reference path (read, chunked forward, write);
* ``process -b N``: the streamed path, in blocks of ``N`` frames: 1024 (a
  live block, the files' default until long blocks were measured), 512 and
  ``default``, the model's own file block (:func:`rtconv.files.file_block_size`).

Real-time factor = audio seconds / wall seconds (median of ``--repeat``).
Targets from issue 3: the MimoCNN processed by ``rtconv process`` (default
block size) at >= 300x real time on one core, and streaming at 512-frame
blocks within 2x of ``--offline``.

Batches (``--batch``).  ``rtconv process`` itself, run as a command (so
every cost a user pays is in: interpreter start, torch import, model load,
worker start-up), on 20 files of 2 s, 8 files of 18 s and 70 files of 18 s
made from ``recordings/demo_noisy.wav`` (noise when it is missing), with the
default model: ``-b 1024 --jobs 1`` (live-sized blocks), ``--jobs 1`` and
``--jobs N`` for each N of ``--jobs``, wall times and ratios side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP = "real-time factor of `rtconv process` (streamed, offline, batches with --jobs) vs a whole-file pass"


def configure(parser: argparse.ArgumentParser) -> None:
    from ..cli.common import positive_int

    parser.add_argument("--seconds", type=positive_int, default=60, help="file length in s (default: %(default)s)")
    parser.add_argument("--rate", type=positive_int, default=48000, help="sample rate in Hz (default: %(default)s)")
    parser.add_argument("--blocks", default="1024,512,default", metavar="N,N",
                        help="streamer block sizes to time; 'default' is each model's file block "
                             "(default: %(default)s)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per case, median reported (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--batch", action="store_true",
                        help="time `rtconv process` on batches of short and long files instead, with --jobs")
    parser.add_argument("--jobs", default="2", metavar="N,N",
                        help="with --batch: the --jobs values to compare with --jobs 1 (default: %(default)s)")


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _numbers(text: str, what: str, default: bool) -> list | None:
    out: list = []
    for b in text.split(","):
        b = b.strip()
        n = "default" if default and b == "default" else int(b) if b.isdigit() and int(b) > 0 else None
        if n is None:
            allowed = "positive frame counts or 'default'" if default else "positive numbers"
            print(f"rtconv: error: --{what} takes {allowed}, got {b!r}.", file=sys.stderr)
            return None
        if n not in out:
            out.append(n)
    return out


def _load_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.1f} at start (timings scale with other load)"


def run(args: argparse.Namespace) -> int:
    return _batch(args) if args.batch else _single(args)


def _single(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from ..checkpoint import load, resolve
    from ..errors import RtconvError
    from ..files import file_block_size, process_file
    from ..models import FIR, MimoCNN

    blocks = _numbers(args.blocks, "blocks", default=True)
    if blocks is None:
        return 2
    torch.set_num_threads(args.threads)
    rate, n = args.rate, args.seconds * args.rate
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
             + 0.05 * rng.standard_normal(n)).astype(np.float32)

    torch.manual_seed(0)
    mimo = MimoCNN([40, 40], [1, 5, 1])
    fir = FIR(rng.standard_normal(1024) / 32)
    models = {"MimoCNN [40,40]/[1,5,1]": mimo, "FIR 1024 taps": fir}
    try:
        shipped = load(resolve(None))
        models = {f"default model ({shipped.arch})": shipped, **models}
    except RtconvError as e:
        print(f"rtconv bench process: note: the default model is left out ({e})", file=sys.stderr)
    for m in models.values():
        m.sample_rate = rate
        m.eval()

    print(f"rtconv bench process: {args.seconds} s mono {rate} Hz PCM_16 WAV, {args.threads} torch thread(s), "
          f"median of {args.repeat}; {_load_note()}")
    print(f"{'model':<30} {'path':<30} {'wall s':>8} {'x real time':>12} {'vs forward':>11}")
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
            own = file_block_size(model)
            for size in dict.fromkeys(own if b == "default" else b for b in blocks):
                cases.append((f"process -b {size}" + (" (default)" if size == own else ""), _time(
                    lambda: process_file(src, out, model, block_size=size, overwrite=True, progress=False,
                                         threads=args.threads), args.repeat)))
            for path, secs in cases:
                results[(label, path)] = secs
                print(f"{label:<30} {path:<30} {secs:8.3f} {args.seconds / secs:11.0f}x {secs / fwd:10.2f}x")
    print()
    mimo_label = "MimoCNN [40,40]/[1,5,1]"
    mine = {lbl: next((p for (m, p) in results if m == lbl and p.endswith("(default)")), None) for lbl in models}
    if mine[mimo_label]:
        rtf = args.seconds / results[(mimo_label, mine[mimo_label])]
        print(f"target: MimoCNN `rtconv process` (default block) >= 300x real time: {rtf:.0f}x "
              f"-> {'met' if rtf >= 300 else 'NOT met'}")
    if 512 in blocks:
        ratio = results[(mimo_label, "process -b 512")] / results[(mimo_label, "process --offline")]
        print(f"target: streaming -b 512 within 2x of --offline: {ratio:.2f}x "
              f"-> {'met' if ratio <= 2 else 'NOT met'}")
    for label in models:
        live = results.get((label, "process -b 1024"))
        if live and mine[label]:
            own = results[(label, mine[label])]
            print(f"  {label}: default block ({mine[label].split()[2]}): {live / own:.2f}x the speed of -b 1024, "
                  f"{results[(label, 'process --offline')] / own:.2f}x that of --offline")
    return 0


def _batch(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    jobs = _numbers(args.jobs, "jobs", default=False)
    if jobs is None:
        return 2
    demo = Path(__file__).resolve().parents[2] / "recordings" / "demo_noisy.wav"
    rate = 48000
    if demo.is_file():
        x, rate = sf.read(str(demo), dtype="float32")
        if x.ndim > 1:
            x = x[:, 0]
        source = demo.name
    else:
        x = (0.05 * np.random.default_rng(0).standard_normal(8 * rate)).astype(np.float32)
        source = "noise"
    configs = [("-b 1024 --jobs 1", ["-b", "1024"]), ("--jobs 1", [])]
    configs += [(f"--jobs {j}", ["--jobs", str(j)]) for j in jobs if j != 1]
    print(f"rtconv bench process --batch: `rtconv process FOLDER -o OUT --quiet` as a command, the default model, "
          f"files cut from {source}, median of {args.repeat}; {_load_note()}")
    head = "".join(f"{name:>20}" for name, _ in configs)
    print(f"{'files':<22}{head}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, count, seconds in (("20 x 2 s", 20, 2), ("8 x 18 s", 8, 18), ("70 x 18 s", 70, 18)):
            folder = Path(tmp) / label.replace(" ", "")
            folder.mkdir()
            long = np.tile(x, -(-seconds * rate // len(x)) + 1)
            for i in range(count):
                start = (i * 7919) % (len(long) - seconds * rate)
                sf.write(str(folder / f"f{i:02d}.wav"), long[start : start + seconds * rate], rate, subtype="PCM_16")
            walls = []
            for _, extra in configs:
                def once(extra=extra):
                    out = Path(tempfile.mkdtemp(dir=tmp))
                    subprocess.run([sys.executable, "-m", "rtconv", "process", str(folder), "-o", str(out), "-q",
                                    *extra], check=True)
                walls.append(_time(once, args.repeat))
            audio = count * seconds
            cells = "".join(f"{f'{w:.2f} s ({audio / w:.0f}x)':>20}" for w in walls)
            print(f"{label:<22}{cells}")
            base = walls[1]
            ratios = "".join(f"{f'{base / w:.2f}x':>20}" for w in walls)
            print(f"{'  speed vs --jobs 1':<22}{ratios}")
    return 0
