"""The shipped denoiser against RNNoise and noisereduce: quality, latency, real-time cost.

Two parts, one run:

1. **Real time on one core.**  The model streams 48 kHz audio in blocks of
   ``--block-size`` frames through :class:`rtconv.Streamer` with one thread,
   on the torch engine and (with onnxruntime installed) the onnx one; each
   block's compute time is compared with its budget (``block / 48000`` s).
   RTF = total compute / audio duration.  RNNoise (480-sample frames) runs in
   the same loop on the same audio as a reference.
2. **Quality on a held-out test set** (:mod:`rtconv.bench.heldout`): SI-SDR
   improvement, wide-band PESQ and STOI of the unprocessed input, rtconv,
   RNNoise (lag-compensated) and noisereduce, overall, per input-SNR bucket
   and per noise family.

Needs the ``bench`` extra (``pip install rtconv[bench]``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..resample import LIVE_QUALITY

HELP = "shipped denoiser vs RNNoise and noisereduce: SI-SDRi/PESQ/STOI table, latency, RTF"
# Plain text for --help (the module docstring is reStructuredText, which argparse would print raw).
DESCRIPTION = """\
The shipped denoiser against RNNoise and noisereduce: quality, latency and
real-time cost, measured side by side in one run.

1. Real time on one core.  The model streams 48 kHz audio in blocks of
   --block-size frames through rtconv.Streamer with one thread, on the torch
   engine and (with onnxruntime installed) the onnx one (`rtconv live
   --engine onnx`); each block's compute time is compared with its budget
   (block / 48000 s).  RTF = total compute / audio duration.  RNNoise
   (480-sample frames) runs in the same loop on the same audio, so a busy
   machine slows every system alike.  Then, reported beside: the live
   chain (DC remover, level guard, torch engine) and RNNoise each alone, in alternating
   one-second stretches; and the same again paced as a live callback (each
   block sleeps until its audio is due: --seconds of audio take twice as
   long), which on a virtual machine costs up to twice a hot loop's time.
2. Latency.  The model's algorithmic latency, alone and with the live
   resampler at 16, 44.1 and 48 kHz device rates, against RNNoise's 30 ms
   (its 480-sample frame plus its 960-sample output lag at 48 kHz).
3. Quality on a held-out test set (rtconv.bench.heldout): SI-SDR improvement,
   wide-band PESQ and STOI of the unprocessed input, rtconv, RNNoise (its
   lag measured and removed) and noisereduce, overall, per input-SNR bucket
   and per noise family; then rtconv minus each other system (--baseline
   checkpoints included) item by item on the same grid items, with 95 %
   bootstrap intervals.  --no-quality skips this part.

Needs the bench extra: pip install 'rtconv[bench]'.  The realistic set needs
the corpus first: rtconv data build.

examples:
  rtconv bench denoise --no-quality --seconds 20
  rtconv bench denoise --tables tables.md --json bench.json
  rtconv bench denoise --split val --model candidate.safetensors
"""
RATE = 48000
# A card's hand-written part (verdict, notes) starts at this line; --card rewrites the numbers above it only.
CARD_KEEP = "<!-- written by hand below this line: rtconv bench denoise --card keeps it -->"


def configure(parser) -> None:
    import argparse

    from ..cli.common import per_cell, seed

    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the numbered list as written
    parser.add_argument("--model", "-m", metavar="PATH",
                        help="denoiser checkpoint, a path or a shipped model's name (default: the shipped one)")
    parser.add_argument("--block-size", "-b", type=int, default=128, metavar="N",
                        help="frames per streamed block for the timing (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="audio streamed for the timing, in seconds (default: %(default)s)")
    parser.add_argument("--set", dest="test_set", choices=("realistic", "espeak"), default="realistic",
                        help="realistic: the held-out test sources of the corpus (`rtconv data build` "
                             "first); espeak: the old in-domain espeak-ng set (default: %(default)s)")
    parser.add_argument("--per-cell", type=per_cell, default=None, metavar="N",
                        help="test examples per (SNR, noise) cell (default: 1 realistic, 2 for --split dev, "
                             "which chooses between models whose differences are small; 3 espeak)")
    parser.add_argument("--split", choices=("test", "val", "dev"), default="test",
                        help="realistic set: score on the held-out test sources (default), or on a set of the "
                             "same design to choose between models without looking at the test sources: "
                             "val (the validation items: training speakers, other files) or dev (voices and noise "
                             "of packages no model trains on: `rtconv data build --split dev`)")
    parser.add_argument("--baseline", action="append", default=[], metavar="PATH",
                        help="realistic set: also score this denoiser checkpoint (a path or a shipped model's "
                             "name), as a column named after its file, in the same run; repeatable. "
                             "The 'best' column and the goals still compare with RNNoise and noisereduce only")
    parser.add_argument("--from-silence", action="store_true",
                        help="realistic set: also score the model started from silence (`rtconv process "
                             "--no-prime`), as a column 'from-silence' in the same run")
    parser.add_argument("--keep-dc", action="store_true",
                        help="realistic set: also score the model given its input's DC offset (`rtconv process "
                             "--keep-dc`), as a column 'keep-dc' in the same run")
    parser.add_argument("--keep-level", action="store_true",
                        help="realistic set: also score the model given loud files at their own level (`rtconv "
                             "process --keep-level`), as a column 'keep-level' in the same run")
    parser.add_argument("--both-directions", action="store_true",
                        help="realistic set: also score the model run over each file forwards and backwards, "
                             "averaged (`rtconv process --both-directions`), as a column 'both-directions' in "
                             "the same run")
    parser.add_argument("--tables", metavar="PATH", help="also write the realistic set's Markdown tables here")
    parser.add_argument("--cache-dir", metavar="DIR", help="corpus cache root (default: ~/.cache/rtconv)")
    parser.add_argument("--seed", type=seed, default=0, help="test-set seed (default: %(default)s)")
    parser.add_argument("--attenuation-limit", type=float, default=None, metavar="DB",
                        help="strength control to evaluate with (default: the model's own)")
    parser.add_argument("--no-quality", action="store_true", help="only the latency/RTF part")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    parser.add_argument("--card", metavar="PATH",
                        help="also write a Markdown model card with these numbers (e.g. models/denoiser.md); "
                             "what an existing card holds below its line '" + CARD_KEEP + "' (a verdict, "
                             "notes) is kept")


def _load(path):
    from .. import checkpoint

    model = checkpoint.load(checkpoint.resolve(path))  # a path, a shipped name, or None: the default
    if model.sample_rate not in (None, RATE):
        print(f"note: the model runs at {model.sample_rate} Hz; timing it at that rate")
    return model


def _timing(model, block: int, seconds: float) -> dict:
    """Per-block compute time of the model on each engine and of RNNoise, interleaved on the same audio.

    Block ``i`` goes through the torch streamer and the onnxruntime one (when
    onnxruntime is installed), in alternating order, and every 480 samples
    through RNNoise, all in one loop, so a busy machine slows every system
    alike.  The top-level ``rtf``, ``median_ms`` and ``p99_ms`` are the torch
    engine's (the default of ``rtconv live``); ``engines`` holds each engine's.
    """
    import contextlib

    import torch

    from .. import Streamer
    from ..errors import RtconvError
    from .heldout import _RNNoise, make_test_set

    torch.set_num_threads(1)
    rate = model.sample_rate or RATE
    ex = make_test_set(per_cell=1, families=["pink"], snrs=[5.0], sample_rate=rate, seed=99)[0]
    reps = int(np.ceil(seconds * rate / len(ex.noisy)))
    x = np.tile(ex.noisy, reps)[: int(seconds * rate)][:, None].astype(np.float32)
    blocks = [x[i : i + block] for i in range(0, len(x) - block + 1, block)]
    engines, skipped = {"torch": Streamer(model, threads=1, block_size=block)}, {}
    try:
        engines["onnx"] = Streamer(model, threads=1, block_size=block, engine="onnx")
    except RtconvError as e:  # onnxruntime missing, or a model the engine refuses
        skipped["onnx"] = str(e)
    for s in engines.values():
        for b in blocks[:20]:
            s.process(b)
        s.reset()
    rn = None
    if rate == RATE:
        try:
            rn = _RNNoise()
        except Exception as e:  # the comparison is optional
            skipped["rnnoise"] = str(e)
    scaled = x[:, 0] * 32768.0
    times = {k: np.empty(len(blocks)) for k in engines}
    # the DC remover files and live put in front of either engine, timed in the same loop
    from ..dcblock import DCBlocker

    dc, t_dc = DCBlocker(rate, 1), np.empty(len(blocks))
    dc.process(blocks[0])  # warmed up, as a live chain is
    dc.reset()
    t_rn, done = [], 0
    names = list(engines)
    with rn.state() if rn is not None else contextlib.nullcontext() as st:
        for i, b in enumerate(blocks):
            for k in (names if i % 2 == 0 else names[::-1]):
                t = time.perf_counter()
                engines[k].process(b)
                times[k][i] = time.perf_counter() - t
            t = time.perf_counter()
            dc.process(b)
            t_dc[i] = time.perf_counter() - t
            while st is not None and done + rn.frame <= (i + 1) * block:  # RNNoise's frames as they fill
                t = time.perf_counter()
                st.step(scaled[done : done + rn.frame])
                t_rn.append(time.perf_counter() - t)
                done += rn.frame
    audio_s = len(blocks) * block / rate
    per = {k: _block_times(t, audio_s) for k, t in times.items()}
    out = {"block": block, "rate": rate, "budget_ms": block / rate * 1e3, **per["torch"], "engines": per,
           "skipped": skipped, "dc_block_rtf": float(t_dc.sum() / audio_s),
           "dc_block_median_us": float(np.median(t_dc) * 1e6),
           "alone": _timing_alone(model, blocks, scaled, rate, block, rn),
           "paced": _timing_alone(model, blocks, scaled, rate, block, rn, paced=True),
           **_rnnoise_times(t_rn, done, block)}
    if out["rnnoise_rtf"] is None and "rnnoise" in skipped:
        out["rnnoise_error"] = skipped["rnnoise"]
    return out


def _block_times(t: np.ndarray, audio_s: float) -> dict:
    """Median and p99 of per-block times ``t`` (s) in ms, and their sum over ``audio_s`` seconds of audio (RTF)."""
    return {"median_ms": float(np.median(t) * 1e3), "p99_ms": float(np.percentile(t, 99) * 1e3),
            "rtf": float(np.sum(t) / audio_s)}


def _rnnoise_times(t_rn: list, done: int, block: int) -> dict:
    """RNNoise's RTF and p99 per frame from its per-frame times over ``done`` samples (``None`` when it did not run),
    and its p99 per ``block``-sample block: what a stream of such blocks would spend in each, a frame's time
    falling in the block that completes it (one block in 3.75 at 128 samples, none in the others)."""
    if not t_rn:
        return {"rnnoise_rtf": None}
    t = np.asarray(t_rn)
    frame = done // len(t)
    # every block the frames span, the last one too when it is partly filled
    per_block = np.bincount((np.arange(1, len(t) + 1) * frame - 1) // block, weights=t, minlength=-(-done // block))
    return {"rnnoise_rtf": float(t.sum() / (done / RATE)), "rnnoise_p99_ms": float(np.percentile(t, 99) * 1e3),
            "rnnoise_block_p99_ms": float(np.percentile(per_block, 99) * 1e3)}


def _timing_alone(model, blocks: list, scaled: np.ndarray, rate: int, block: int, rn, paced: bool = False) -> dict:
    """The chain ``rtconv live`` runs for a denoiser (DC remover, then the torch engine inside the level guard),
    timed per block
    with nothing else between its blocks, and RNNoise likewise, in alternating one-second stretches.

    Interleaved block by block (:func:`_timing`), each system finds the caches as the others left them,
    which no live stream meets (it runs one engine) and which slowed the torch engine by 1.4-1.9x here;
    here each runs as it would alone, the garbage collector frozen as a live stream freezes it, and the
    stretches alternate so that a busy machine still slows both alike.

    ``paced``: each block (and each RNNoise frame) waits, sleeping, until the audio it holds would have
    arrived, as a live callback waits for its period; the pass then takes as long as the audio.  On this
    project's virtual machine a block after such a wait took about twice the time of one run back to back
    (the live soaks' block times agree), which a loop without waits does not show.
    """
    import contextlib
    import gc

    from .. import Streamer
    from ..dcblock import DCBlocker
    from ..levelguard import stream_guard

    # ModelChain's stages, without its warm-up blocks (this loop warms them, counted by the tests)
    streamer, dc = Streamer(model, threads=1, block_size=block), DCBlocker(rate, 1)
    guard = stream_guard(model, rate, 1, streamer.latency, block)

    def run(b):
        return streamer.process(b) if guard is None else guard.process(b, streamer.process)

    for b in blocks[:20]:
        run(dc.process(b))
    streamer.reset()
    dc.reset()
    if guard is not None:
        guard.reset()
    stretch = max(1, round(rate / block))
    t_chain, t_rn, done = np.empty(len(blocks)), [], 0
    gc.collect()
    gc.freeze()  # rtconv.live.LiveStream's freeze_gc
    due = time.perf_counter()  # paced: when the next block's (or frame's) audio is in

    def wait(samples: int) -> None:
        nonlocal due
        due += samples / rate
        if paced:
            time.sleep(max(0.0, due - time.perf_counter()))

    try:
        with rn.state() if rn is not None else contextlib.nullcontext() as st:
            for s in range(0, len(blocks), stretch):
                for i in range(s, min(s + stretch, len(blocks))):
                    wait(block)
                    t = time.perf_counter()
                    run(dc.process(blocks[i]))
                    t_chain[i] = time.perf_counter() - t
                end = min(s + stretch, len(blocks)) * block
                while st is not None and done + rn.frame <= end:
                    wait(rn.frame)
                    t = time.perf_counter()
                    st.step(scaled[done : done + rn.frame])
                    t_rn.append(time.perf_counter() - t)
                    done += rn.frame
    finally:
        gc.unfreeze()
    return {**_block_times(t_chain, len(blocks) * block / rate), **_rnnoise_times(t_rn, done, block)}


def _rnnoise_block_p99(t: dict, tm: dict, report: bool = False) -> str:
    """RNNoise's p99 per block of the stream (its frames where they complete): ", p99 N% of the block" for the
    goal row and the card, or the printed report's longer phrase; "" when it was not measured."""
    ms = t.get("rnnoise_block_p99_ms")
    if ms is None:
        return ""
    pct = ms / tm["budget_ms"] * 100
    if report:
        return (f"per {tm['block']}-frame block (each frame's time in the block that completes it): p99 "
                f"{ms:.3f} ms = {pct:.0f}% of budget")
    return f", p99 {pct:.0f}% of the block"


def _meets_real_time(t: dict, budget_ms: float) -> bool:
    """The issue's real-time goal: RTF <= 0.3 and p99 block time <= 30 % of the block's budget."""
    return t["rtf"] <= 0.3 and t["p99_ms"] <= 0.3 * budget_ms


def _device_rates(model, block: int) -> list[dict]:
    """Model + resampling latency when the device runs at 16, 44.1 or 48 kHz (what `rtconv live` adds)."""
    from ..resample import RateBridge

    rate = model.sample_rate or RATE
    out = []
    for dev in (16000, 44100, 48000):
        res = RateBridge(dev, rate, 1, block).latency / dev * 1e3 if dev != rate else 0.0
        out.append({"device_rate": dev, "model_ms": model.latency / rate * 1e3, "resampler_ms": res,
                    "total_ms": model.latency / rate * 1e3 + res})
    return out


def run(args) -> int:
    from . import heldout as ev

    if (args.baseline or args.from_silence or args.keep_dc or args.keep_level or args.both_directions) and (
            args.test_set != "realistic" or args.no_quality):
        from ..errors import ConfigError

        flag = ("--baseline" if args.baseline else "--from-silence" if args.from_silence
                else "--keep-dc" if args.keep_dc else "--keep-level" if args.keep_level else "--both-directions")
        raise ConfigError(f"{flag} adds columns to the realistic set's tables; drop it, or drop "
                          f"{'--no-quality' if args.no_quality else '--set ' + args.test_set}.")
    if args.card and args.split != "test":
        from ..errors import ConfigError

        raise ConfigError(f"--card writes the held-out test set's numbers into a model card; drop --split "
                          f"{args.split} (a set to choose models on is not reported), or drop --card.")
    model = _load(args.model)
    if args.test_set == "realistic" and not args.no_quality:  # a missing corpus is said before the timing
        from ..data import corpus

        corpus.split_items(args.split, corpus.corpus_dir(args.cache_dir))
    if args.attenuation_limit is not None and hasattr(model, "attenuation_limit_db"):
        model.attenuation_limit_db = args.attenuation_limit
    rate = model.sample_rate or RATE
    macs = model.macs_per_second(rate) if hasattr(model, "macs_per_second") else None
    lat_ms = model.latency / rate * 1e3
    print(f"rtconv bench denoise: {model.arch} {model.config}")
    print(f"  parameters {model.parameter_count()}, "
          + (f"{macs / 1e6:.0f} M MAC/s, " if macs else "")
          + f"latency {model.latency} samples = {lat_ms:.2f} ms at {rate} Hz "
          f"(RNNoise: {ev.RNNOISE_LATENCY_MS:g} ms = 480-sample frame + 960-sample lag; "
          f"ratio {lat_ms / ev.RNNOISE_LATENCY_MS:.2f})")
    tm = _timing(model, args.block_size, args.seconds)
    print(f"\nreal time, one thread, {tm['block']}-frame blocks at {tm['rate']} Hz "
          f"(budget {tm['budget_ms']:.3f} ms/block; engines and RNNoise interleaved on the same audio):")
    for name, t in tm["engines"].items():
        flag = " (rtconv live --engine onnx)" if name == "onnx" else ""
        print(f"  rtconv {name:<5} RTF {t['rtf']:.3f}   median {t['median_ms']:.3f} ms   p99 {t['p99_ms']:.3f} ms "
              f"= {t['p99_ms'] / tm['budget_ms'] * 100:.0f}% of budget   "
              f"[{'meets' if _meets_real_time(t, tm['budget_ms']) else 'misses'} RTF <= 0.3, p99 <= 30% of budget]"
              + flag)
    for name, why in tm["skipped"].items():
        print(f"  {name}: not timed ({why})")
    print(f"  DC remover   RTF {tm['dc_block_rtf']:.4f}   median {tm['dc_block_median_us']:.0f} us per block = "
          f"{tm['dc_block_rtf'] / tm['rtf'] * 100:.1f}% of the torch engine's time (in front of either engine)")
    if tm.get("rnnoise_rtf") is not None:
        print(f"  RNNoise      RTF {tm['rnnoise_rtf']:.3f}   p99 {tm['rnnoise_p99_ms']:.3f} ms per 480-sample frame;"
              f" {_rnnoise_block_p99(tm, tm, report=True)}")
    al = tm["alone"]
    print("each alone, as a live stream runs it (alternating one-second stretches of the same audio):")
    print(f"  rtconv live's chain (DC remover + level guard + torch engine) RTF {al['rtf']:.3f}   median {al['median_ms']:.3f} ms   "
          f"p99 {al['p99_ms']:.3f} ms = {al['p99_ms'] / tm['budget_ms'] * 100:.0f}% of budget   "
          f"[{'meets' if _meets_real_time(al, tm['budget_ms']) else 'misses'} RTF <= 0.3, p99 <= 30% of budget]")
    if al.get("rnnoise_rtf") is not None:  # RNNoise ran in both passes or in neither
        print(f"  RNNoise      RTF {al['rnnoise_rtf']:.3f}   p99 {al['rnnoise_p99_ms']:.3f} ms per 480-sample frame;"
              f" {_rnnoise_block_p99(al, tm, report=True)}   (rtconv's chain takes {al['rtf'] / al['rnnoise_rtf']:.1f}x RNNoise's time; interleaved, the "
              f"torch engine {tm['rtf'] / tm['rnnoise_rtf']:.1f}x)")
    pc = tm.get("paced")
    if pc is not None:
        print("each alone and paced as a live callback (sleeping until each block's audio is due):")
        print(f"  rtconv live's chain RTF {pc['rtf']:.3f}   median {pc['median_ms']:.3f} ms   p99 {pc['p99_ms']:.3f} ms = "
              f"{pc['p99_ms'] / tm['budget_ms'] * 100:.0f}% of budget"
              + (f";   RNNoise RTF {pc['rnnoise_rtf']:.3f}, {_rnnoise_block_p99(pc, tm, report=True)}"
                 if pc.get("rnnoise_rtf") is not None else ""))
    rates = _device_rates(model, args.block_size)
    print(f"\nalgorithmic latency at common device rates ({args.block_size}-frame blocks, live resampler {LIVE_QUALITY}):")
    for r in rates:
        print(f"  {r['device_rate']:>6} Hz: model {r['model_ms']:.2f} ms + resampling {r['resampler_ms']:.2f} ms "
              f"= {r['total_ms']:.2f} ms")
    tm["device_rates"] = rates
    result = {"model": {"arch": model.arch, "config": model.config, "parameters": model.parameter_count(),
                        "macs_per_second": macs, "latency_samples": model.latency, "latency_ms": lat_ms},
              "timing": tm}
    if not args.no_quality and args.test_set == "realistic":
        result.update(_realistic(model, args, _speed_goals(model, tm)))
    elif not args.no_quality:
        args.per_cell = args.per_cell or 3
        lag = ev.rnnoise_lag()
        print(f"\nRNNoise output lag measured by cross-correlation: {lag} samples "
              f"({lag / RATE * 1e3:.1f} ms), removed before scoring")
        t0 = time.perf_counter()
        examples = ev.make_test_set(per_cell=args.per_cell, sample_rate=rate, seed=args.seed)
        systems = {"noisy": lambda x: x, "rtconv": ev.model_denoiser(model)}
        if rate == RATE:
            systems["rnnoise"] = ev.rnnoise(RATE)
        systems["noisereduce"] = ev.noisereduce(rate)
        rows = ev.evaluate(systems, examples, rate, progress=True)
        summary = ev.summarize(rows)
        print(f"\nheld-out test set: {len(examples)} utterances (test voices and sentences), "
              f"SNRs {', '.join(f'{s:g}' for s in ev.SNRS)} dB, scored in {time.perf_counter() - t0:.0f} s")
        print("SI-SDRi in dB (higher is better), PESQ wide band 1-4.5, STOI 0-1\n")
        print(ev.format_table(summary, list(systems), ours="rtconv"))
        result.update(rnnoise_lag=lag, summary=summary, rows=rows)
    if args.card:
        _write_card(args.card, model, result, args)
        print(f"wrote {args.card}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def _column(path) -> str:
    """A baseline's column name: its checkpoint's file name without the suffix."""
    from .. import checkpoint

    return Path(checkpoint.resolve(path)).name.removesuffix(".safetensors")


def _with_baselines(systems: dict, paths, first: dict | None = None) -> dict:
    """``systems`` with a column per baseline checkpoint after ``rtconv``, each run as ``rtconv process`` runs it;
    the columns of ``first`` (name -> system) come right after ``rtconv``, before the baselines."""
    extra = dict(first or {})
    if not paths and not extra:
        return systems
    from .. import checkpoint
    from ..data.scoring import model_system
    from ..errors import ConfigError

    for p in paths:
        name = _column(p)
        if name in systems or name in extra:
            raise ConfigError(f"baseline {p!r} would be a second column named {name!r}; copy it to a file "
                              "of another name.")
        extra[name] = model_system(checkpoint.load(checkpoint.resolve(p)))
    order = ["noisy", "rtconv", *extra, *(k for k in systems if k not in ("noisy", "rtconv"))]
    merged = {**systems, **extra}
    return {k: merged[k] for k in order if k in merged}


def _speed_goals(model, tm: dict) -> list[tuple[str, str, bool]]:
    """The issue's latency and real-time goals as goal rows (``(goal, measured, met)``), from ``_timing``."""
    rate = tm["rate"]
    lat = model.latency / rate * 1e3
    rows = [("algorithmic latency <= 5 ms", f"{lat:.2f} ms at {rate} Hz", lat <= 5.0)]
    per = tm["engines"]
    parts = [f"{k} RTF {t['rtf']:.3f}, p99 {t['p99_ms'] / tm['budget_ms'] * 100:.0f}% of the block"
             for k, t in per.items()]
    if tm.get("rnnoise_rtf") is not None:
        parts.append(f"RNNoise RTF {tm['rnnoise_rtf']:.3f}" + _rnnoise_block_p99(tm, tm))
    ok = [k for k, t in per.items() if _meets_real_time(t, tm["budget_ms"])]
    measured = "; ".join(parts) + (f" (met with {', '.join(ok)})" if ok else "")
    al = tm.get("alone")
    if al is not None:  # reported beside the judged, interleaved figures, not judged
        measured += (f"; each alone: live chain (DC remover + level guard + torch) RTF {al['rtf']:.3f}, p99 "
                     f"{al['p99_ms'] / tm['budget_ms'] * 100:.0f}% of the block"
                     + (f", RNNoise RTF {al['rnnoise_rtf']:.3f}" + _rnnoise_block_p99(al, tm)
                        if al.get("rnnoise_rtf") is not None else ""))
    pc = tm.get("paced")
    if pc is not None:  # also reported, not judged: what a live callback meets after waiting for its period
        measured += (f"; paced as a live callback: chain RTF {pc['rtf']:.3f}, p99 {pc['p99_ms'] / tm['budget_ms'] * 100:.0f}% "
                     "of the block" + (f", RNNoise RTF {pc['rnnoise_rtf']:.3f}" + _rnnoise_block_p99(pc, tm)
                                       if pc.get("rnnoise_rtf") is not None else ""))
    rows.append((f"real time on one thread, {tm['block']}-sample blocks: RTF <= 0.3, p99 <= 30% of the block",
                 measured, bool(ok)))
    return rows


def _realistic(model, args, extra_goals=()) -> dict:
    """Score the model, RNNoise and noisereduce on the realistic held-out set (one run); ``extra_goals``
    (latency, real time) join the quality goals' table."""
    from ..data import corpus, scoring
    from ..data.testset import SCORED_SPLITS, fingerprint, make_test_set, source_fingerprints

    root = corpus.corpus_dir(args.cache_dir)
    items = corpus.read_manifest(root)
    t0 = time.perf_counter()
    pool = corpus.Pool.load(args.split, RATE, root, items)
    # dev chooses between candidates a few hundredths apart: at one item per cell a40 - v9's SI-SDRi interval
    # was +-0.18 dB, at two +-0.11 (models/denoiser-history.md, fortieth session)
    examples = make_test_set(pool, seed=args.seed, per_cell=args.per_cell or (2 if args.split == "dev" else 1))
    fp = fingerprint(examples)
    test_sources = sorted({it["source"] for it in items if it["split"] == args.split})
    print(f"\n{SCORED_SPLITS[args.split]}: {len(examples)} items, seed {args.seed}, fingerprint {fp}")
    if args.split != "val":
        print(f"  {args.split} sources: {', '.join(test_sources)}")
    # from-silence, keep-dc, keep-level, both-directions: the same model without the priming, the DC blocker or
    # the level guard files get, or run both ways
    variants = {}
    if args.from_silence:
        variants["from-silence"] = scoring.model_system(model, prime=False)
    if args.keep_dc:
        variants["keep-dc"] = scoring.model_system(model, dc_block=False)
    if args.keep_level:
        variants["keep-level"] = scoring.model_system(model, level_guard=False)
    if args.both_directions:
        variants["both-directions"] = scoring.model_system(model, both_directions=True)
    systems = _with_baselines(scoring.systems(model), args.baseline, variants)
    rows = scoring.evaluate(systems, examples, progress=True)
    summary = scoring.summary_rows(rows)
    text = scoring.tables(summary, list(systems), ours="rtconv",
                          rivals=[n for n in ("rnnoise", "noisereduce") if n in systems])
    goal_rows = scoring.goals(summary) + list(extra_goals)
    # the model against every other column (baselines, variants, the rivals) item by item: whether a
    # lead in the means is more than the items drawn
    pairs = scoring.paired(rows, "rtconv", [n for n in systems if n not in ("noisy", "rtconv")])
    text = ("### Goals\n\n" + scoring.format_goals(goal_rows) + "\n\n"
            + (scoring.format_paired(pairs) + "\n" if pairs else "") + text)
    print(f"scored in {time.perf_counter() - t0:.0f} s\n")
    print(text)
    if args.tables:
        what = ("Realistic held-out test set" if args.split == "test" else
                SCORED_SPLITS[args.split][0].upper() + SCORED_SPLITS[args.split][1:])
        Path(args.tables).write_text(
            f"{what}, seed {args.seed}, {len(examples)} items, fingerprint {fp}; "
            f"{args.split} sources: {', '.join(test_sources)}.\n\n" + text + "\n")
        print(f"wrote {args.tables}")
    return {"test_set": {"seed": args.seed, "items": len(examples), "fingerprint": fp,
                         "sources": test_sources, "source_fingerprints": source_fingerprints(examples)},
            "realistic": summary, "realistic_tables": text, "paired": pairs,
            "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in goal_rows],
            "realistic_rows": rows}


def _data_summary(prov: dict, args) -> list[str]:
    """The training corpus's manifest summary, when the model was trained on it and it is built here."""
    if (prov.get("task_options") or {}).get("corpus") != "realistic":
        return []
    from ..data import corpus
    from ..errors import ConfigError

    try:
        items = corpus.read_manifest(corpus.corpus_dir(args.cache_dir))
    except ConfigError:
        return []
    return ["## Training data (`rtconv data summary`)", "",
            "Speech and noise per split; the `test` rows are the held-out sources above, never trained on; "
            "the `dev` rows are voices and noise no model trains on either, kept to choose between models.",
            "", corpus.format_summary(corpus.summarize(items)), ""]


def _deep_filter_phrase(cfg: dict, analysis_window: int) -> str:
    """The card's words for a deep filter (``""`` without one)."""
    if not cfg.get("deep_filter"):
        return ""
    bins, order, dilation = cfg["deep_filter"]
    apart = f" {dilation} hops apart" if dilation > 1 else ""
    phase = ", which also see their phase advance" if cfg.get("phase_features") else ""
    return (f" and a deep filter (complex FIR over {order} frames{apart}) for bins 1-{bins} "
            f"(up to {bins * 48 / analysis_window:g} kHz){phase}")


def _write_card(path, model, result, args) -> None:
    from . import heldout as ev

    meta = model.metadata or {}
    prov = meta.get("provenance") or {}
    m, tm = result["model"], result["timing"]
    cfg = m["config"]
    bank = ("A fixed sqrt-Hann DFT filterbank (strided convolution," if cfg.get("learn_filterbank") is False
            else "A learned filterbank (strided convolution initialised as a sqrt-Hann DFT,")
    windows = f"window {cfg.get('window')}, hop {cfg.get('hop')})"
    if cfg.get("analysis_window"):
        bank = "A fixed asymmetric DFT filterbank (strided convolution,"
        windows = (f"analysis window {cfg['analysis_window']} = {1000 * cfg['analysis_window'] / 48000:g} ms, "
                   f"{48000 / cfg['analysis_window']:g} Hz bins; synthesis window {cfg.get('window')}, hop "
                   f"{cfg.get('hop')}: the latency of the short window)")
    lines = [
        f"# {meta.get('name') or 'denoiser'}: causal speech denoiser, {m['latency_ms']:.2f} ms latency",
        "",
        f"The default model of `rtconv process` and `rtconv live`. {bank}",
        f"{windows}, a causal dilated CNN"
        + (f" with a {cfg['gru']}-unit GRU branch (memory beyond the convolutions' "
           f"{1000 * model.receptive_field / 48000:.0f} ms)" if cfg.get("gru") else "")
        + " predicting one gain per",
        "frequency pair" + _deep_filter_phrase(cfg, model.encoder.taps)
        + ", and an overlap-add transposed-convolution decoder. Runs at 48 kHz with no",
        "resampler; streamed by `rtconv.Streamer` exactly (equal to the offline forward delayed by",
        "the latency) at any block size.",
        "",
        "## Numbers",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{m['arch']}` {json.dumps(m['config'])} |",
        f"| parameters | {m['parameters']:,} |",
        f"| compute | {m['macs_per_second'] / 1e6:.0f} M multiply-accumulates per second of audio |",
        f"| algorithmic latency | {m['latency_samples']} samples = {m['latency_ms']:.2f} ms at 48 kHz "
        f"(RNNoise: {ev.RNNOISE_LATENCY_MS:g} ms = 480-sample frame + 960-sample lag) |",
    ]
    for name, t in tm["engines"].items():
        lines.append(f"| real-time factor, one thread, {tm['block']}-sample blocks, {name} engine | {t['rtf']:.3f} "
                     f"(median {t['median_ms']:.3f} ms, p99 {t['p99_ms']:.3f} ms per {tm['budget_ms']:.3f} ms "
                     "block) |")
    if tm.get("rnnoise_rtf") is not None:
        lines.append(f"| RNNoise RTF, same run (interleaved) | {tm['rnnoise_rtf']:.3f}{_rnnoise_block_p99(tm, tm)} |")
    al = tm.get("alone")
    if al is not None:
        lines.append(f"| each alone, as a live stream runs it: DC remover + level guard + torch engine | RTF {al['rtf']:.3f} (median "
                     f"{al['median_ms']:.3f} ms, p99 {al['p99_ms']:.3f} ms per block)"
                     + (f"; RNNoise RTF {al['rnnoise_rtf']:.3f}" + _rnnoise_block_p99(al, tm)
                        if al.get("rnnoise_rtf") is not None else "")
                     + "; alternating one-second stretches |")
    pc = tm.get("paced")
    if pc is not None:
        lines.append(f"| the same, paced as a live callback (each block waits, sleeping, until its audio is due) | RTF "
                     f"{pc['rtf']:.3f} (median {pc['median_ms']:.3f} ms, p99 {pc['p99_ms']:.3f} ms per block)"
                     + (f"; RNNoise RTF {pc['rnnoise_rtf']:.3f}" + _rnnoise_block_p99(pc, tm)
                        if pc.get("rnnoise_rtf") is not None else "") + " |")
    for r in tm.get("device_rates", []):
        if r["resampler_ms"]:
            lines.append(f"| latency with a {r['device_rate']} Hz device (live resampler, {LIVE_QUALITY}) | "
                         f"{r['total_ms']:.2f} ms = model {r['model_ms']:.2f} + resampling {r['resampler_ms']:.2f} |")
    lines += ["", "## Held-out evaluation", ""]
    if "realistic_tables" in result:
        ts = result["test_set"]
        lines += [
            f"The realistic test set of `rtconv data` (seed {ts['seed']}, {ts['items']} items, fingerprint "
            f"`{ts['fingerprint']}`): speakers, voices, packages and noise recordings that training never",
            f"uses ({', '.join(ts['sources'])}), mixed with the corpus's held-out noise, music, babble and",
            "the generated families' test ranges; SNR -5..20 dB, a third reverberant; paired band-limit,",
            "codec, file-rate, level and DC-offset variants; clean-speech and noise-only items. SI-SDRi at the file's",
            "rate, PESQ wide band and STOI at 16 kHz; pause residual = output over input energy where the",
            "clean speech pauses. rtconv runs through `rtconv.files.process_array` (as `rtconv process`);",
            "RNNoise (pyrnnoise, lag removed) and noisereduce (non-stationary, whole file) in the same run.",
            "Measured by `rtconv bench denoise --card models/denoiser.md"
            + "".join(f" --baseline {b}" for b in args.baseline) + (" --from-silence" if args.from_silence else "")
            + (" --keep-dc" if args.keep_dc else "") + (" --keep-level" if args.keep_level else "")
            + (" --both-directions" if args.both_directions else "")
            + "`"
            + (f"; the column{'s' if len(args.baseline) > 1 else ''} "
               + ", ".join(f"`{_column(b)}`" for b in args.baseline)
               + " score earlier models in the same run." if args.baseline else ".")
            + (" The `both-directions` column is the same model run over each file forwards and backwards and "
               "averaged (`rtconv process --both-directions`: files only, twice the time); the goals judge the "
               "one-way output, which live audio gets." if args.both_directions else "")
            + (" The `keep-level` column is the same model given loud files at their own level (`rtconv process "
               "--keep-level`); `rtconv` lowers a file whose speech is above -26 dBFS active level to it "
               "before the model and raises the output back (live streams, which have no future to measure, "
               "get a running guard set by the speech already put out: `rtconv live --keep-level`)."
               if args.keep_level else ""),
            "",
            result["realistic_tables"],
            "",
            "The earlier espeak-ng test set (`rtconv bench denoise --set espeak`) is in-domain for this",
            "model (the same synthesizer as its training speech) and is kept only as such.",
        ]
    elif "summary" in result:
        systems = list(next(iter(result["summary"].values())))
        lines += [
            f"Test set: {args.per_cell} utterance(s) per (input SNR, noise family) pair, SNRs "
            f"{', '.join(f'{s:g}' for s in ev.SNRS)} dB; espeak-ng voices, variants and sentences of the",
            "test split (never in training), noise from the test parameter ranges, including the `fan`",
            "family that training never hears. SI-SDRi in dB at 48 kHz; PESQ wide band and STOI at 16 kHz.",
            f"RNNoise (pyrnnoise, 48 kHz, 480-sample frames, int16 scale) lags by {result['rnnoise_lag']} samples",
            "(measured by cross-correlation), removed before scoring. noisereduce: non-stationary",
            "spectral gating over the whole file (offline, not causal). Measured in one run by",
            f"`rtconv bench denoise --per-cell {args.per_cell} --card models/denoiser.md`.",
            "",
            ev.format_table(result["summary"], systems, ours="rtconv"),
        ]
    else:
        lines.append("(not measured: run without --no-quality)")
    lines += [
        "",
        "## Training",
        "",
        f"Task `{meta.get('task')}`: {prov.get('task_description', '')}.",
        "",
        "Commands, oldest first (the checkpoint's provenance `chain`, then its own `command`; each step",
        "resumes the one before it):",
        "",
        "```",
        *[str(c) for c in (prov.get("chain") or [])],
        str(prov.get("command", "(unknown)")),
        "```",
        "",
        *([f"The last step started from `{prov['resumed_from']['path']}` (sha256 "
           f"`{prov['resumed_from']['sha256'][:16]}…`, after {prov['resumed_from']['epochs_before']} epochs of "
           "the runs before it); `config` in the provenance is that step's, `history` covers every step.", ""]
          if prov.get("resumed_from") else []),
        *_data_summary(prov, args),
        "## Strength control",
        "",
        "`model.attenuation_limit_db = 12` (or `rtconv.build('framed_denoiser', {..., 'attenuation_limit_db': 12})`)",
        "caps the attenuation of every band at 12 dB; `None` (default) lets the mask close fully. It takes",
        "effect immediately, also in a running `Streamer` built from the model, and needs no retraining.",
        "",
    ]
    Path(path).write_text("\n".join(lines) + _hand_written(path))


def _hand_written(path) -> str:
    """What the card at ``path`` holds from its line :data:`CARD_KEEP` on (``""`` when it has none),
    so a rewrite of the measured part keeps the verdict and notes written under it."""
    try:
        old = Path(path).read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return ""
    at = old.find("\n" + CARD_KEEP + "\n")
    return old[at:] if at >= 0 else ""
