"""The voice activity model against an energy detector: frame AUC and accuracy, real-time cost.

Two parts, one run:

1. **Real time on one core.**  At 48 kHz in ``--block-size`` frames, the
   VAD through :class:`rtconv.Streamer`, the energy detector
   (:class:`rtconv.vad.EnergyDetector`) and, when it is there, the shipped
   denoiser, interleaved block by block (so a busy machine slows all of them
   alike).  RTF = total compute / audio duration; median and p99 per block.
2. **Quality on the realistic held-out test set** (:func:`rtconv.data.testset.make_test_set`
   on the test sources, the set ``rtconv bench denoise`` scores): each
   item's 10 ms frames labelled from its clean speech
   (:func:`rtconv.vad.speech_frames`), scored by the model's probability
   and by the frame energy; AUC (threshold-free) and accuracy (the model at
   0.5, the energy detector at the one threshold that is best over the
   whole grid, chosen with hindsight) per input SNR, per noise, per band
   variant, per input level, and false alarms on noise alone.

Needs the corpus (``rtconv data build``) for part 2.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

HELP = "voice activity model vs an energy detector: AUC/accuracy per SNR on the realistic test set, RTF"
DESCRIPTION = __doc__
RATE = 48000
FRAME = 480  # 10 ms at 48 kHz


def configure(parser) -> None:
    from ..cli.common import per_cell, seed

    parser.add_argument("--model", "-m", metavar="PATH", help="VAD checkpoint (default: the shipped vad)")
    parser.add_argument("--block-size", "-b", type=int, default=128, metavar="N",
                        help="frames per streamed block for the timing (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="audio streamed for the timing, in seconds (default: %(default)s)")
    parser.add_argument("--per-cell", type=per_cell, default=1, metavar="N",
                        help="test examples per (SNR, noise) cell (default: %(default)s)")
    parser.add_argument("--split", choices=("test", "val", "dev"), default="test",
                        help="score on the held-out test sources (default) or on a set of the same design to "
                             "choose between models: val (training speakers, other files) or dev (voices no "
                             "model trains on)")
    parser.add_argument("--seed", type=seed, default=0, help="test-set seed (default: %(default)s)")
    parser.add_argument("--cache-dir", metavar="DIR", help="corpus cache root (default: $RTCONV_CACHE or ~/.cache/rtconv)")
    parser.add_argument("--no-quality", action="store_true", help="only the real-time part")
    parser.add_argument("--tables", metavar="PATH", help="also write the Markdown tables here")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")


def _load(path):
    from .. import checkpoint

    return checkpoint.load(checkpoint.resolve(path or "vad"))


def timing(model, block: int, seconds: float, others: dict | None = None) -> dict:
    """RTF, median and p99 per block of the model and ``others`` (name -> process(block) callable), interleaved."""
    import torch

    from .. import Streamer
    from ..vad import EnergyDetector

    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    # speech-like bursts in noise: the network does the same work whatever it hears
    x = (0.05 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * 0.5 * np.arange(n) / RATE))).astype(np.float32)
    x = x[:, None]
    runners = {"vad": Streamer(model, threads=1, block_size=block).process}
    det = EnergyDetector(FRAME)
    runners["energy detector"] = lambda b: det.process(b[:, 0])
    runners.update(others or {})
    blocks = [x[i: i + block] for i in range(0, len(x) - block + 1, block)]
    for b in blocks[:20]:
        for fn in runners.values():
            fn(b)
    times = {k: np.empty(len(blocks)) for k in runners}
    for i, b in enumerate(blocks):
        for k, fn in runners.items():
            t = time.perf_counter()
            fn(b)
            times[k][i] = time.perf_counter() - t
    budget = block / RATE
    return {k: {"rtf": float(v.sum() / (len(blocks) * budget)), "median_ms": float(np.median(v) * 1e3),
                "p99_ms": float(np.percentile(v, 99) * 1e3), "budget_ms": budget * 1e3, "block": block}
            for k, v in times.items()}


def frames_of(model, example) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(model probabilities, energy dB, labels)`` per 10 ms frame of one test example, at 48 kHz.

    Both detectors hear the input as ``rtconv vad`` gives it to the model: its DC offset removed
    (:class:`rtconv.dcblock.DCBlocker`, at the file's rate), then resampled."""
    import torch

    from ..dcblock import DCBlocker
    from ..vad import energy_db, frame_means, speech_frames

    x, clean = example.noisy, example.clean
    x = DCBlocker(example.rate, 1).process(np.asarray(x, np.float32)[:, None])[:, 0]
    if example.rate != RATE:  # the band part's files at 16 and 44.1 kHz: resampled as rtconv vad does
        import soxr

        x = soxr.resample(x, example.rate, RATE, quality="HQ").astype(np.float32)
        clean = soxr.resample(clean, example.rate, RATE, quality="HQ").astype(np.float32)
    with torch.no_grad():
        p = model(torch.from_numpy(np.ascontiguousarray(x, np.float32)).view(1, 1, -1))[0, 0].numpy()
    return frame_means(p, FRAME), energy_db(x, FRAME), speech_frames(clean, RATE, FRAME)


def score(model, examples) -> dict:
    """Tables of frame scores, model against the energy detector, for a test set (see the module docstring).

    Returns ``{"threshold_db": energy threshold, "tables": {title: rows}}``
    with rows from :func:`rtconv.vad.vad_rows`.
    """
    from ..vad import best_accuracy, vad_rows

    parts: dict[str, dict[str, list]] = {}

    def add(table: str, group: str, f) -> None:
        g = parts.setdefault(table, {}).setdefault(group, [[], [], []])
        for k in range(3):
            g[k].append(f[k])

    for ex in examples:
        f = frames_of(model, ex)
        if ex.part == "grid":
            add("per input SNR", ex.group, f)
            add("per input SNR", "all", f)
            add("per noise (grid, every SNR)", str(ex.info.get("noise")), f)
            add("per speech kind (grid)", str(ex.info.get("speech_kind")), f)
            add("reverberation (grid)", "room" if ex.info.get("room") else "dry", f)
        elif ex.part == "band":
            add("band limits, codecs and file rates (5 dB SNR)", ex.group, f)
        elif ex.part == "level":
            add("input level (5 dB SNR)", ex.group, f)
        elif ex.part == "dc":
            add("DC offset (5 dB SNR, speech peak -30 dBFS)", ex.group, f)
        elif ex.part == "clean":
            add("clean speech and noise only", "clean speech", f)
        elif ex.part == "noise":
            add("clean speech and noise only", "noise only", f)
    joined = {t: {g: tuple(np.concatenate(v[k]) for k in range(3)) for g, v in groups.items()}
              for t, groups in parts.items()}
    grid = joined.get("per input SNR", {}).get("all")
    thr = best_accuracy(grid[1], grid[2])[0] if grid is not None else None

    def order(t: str, names) -> list:
        if t == "per input SNR":
            return sorted((n for n in names if n != "all"), key=lambda n: float(n.split()[-1])) + ["all"]
        if t == "input level (5 dB SNR)":
            return sorted(names, key=lambda n: -float(n.split()[1]))
        return list(names)

    tables = {t: vad_rows(g, order(t, g), thr) for t, g in joined.items()}
    return {"threshold_db": thr, "tables": tables}


def _fmt(v, digits=3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_tables(result: dict) -> str:
    """The tables as Markdown: frames, speech share, AUC and accuracy of both detectors, false alarms."""
    out = []
    for title, rows in result["tables"].items():
        out += [f"#### {title}", "",
                "| group | frames | speech | **VAD AUC** | energy AUC | VAD accuracy | energy accuracy | "
                "VAD false alarms | energy false alarms |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            better = r["auc"] > r["energy_auc"] if not math.isnan(r["auc"]) else False
            auc = f"**{_fmt(r['auc'])}**" if better else _fmt(r["auc"])
            out.append(f"| {r['group']} | {r['frames']} | {_fmt(r['speech'], 2)} | {auc} | {_fmt(r['energy_auc'])} | "
                       f"{_fmt(r['accuracy'])} | {_fmt(r['energy_accuracy'])} | {_fmt(r['false_alarm'])} | "
                       f"{_fmt(r['energy_false_alarm'])} |")
        out.append("")
    return "\n".join(out)


def goals(result: dict) -> list[tuple[str, str, bool]]:
    """The issue's goal: AUC >= 0.90 and above the energy detector in every input-SNR bucket."""
    rows = [r for r in result["tables"].get("per input SNR", []) if r["group"] != "all"]
    out = []
    for r in rows:
        ok = r["auc"] >= 0.90 and r["auc"] > r["energy_auc"]
        out.append((f"{r['group']}: AUC >= 0.90 and above the energy detector",
                    f"{r['auc']:.3f} vs {r['energy_auc']:.3f}", bool(ok)))
    return out


def run(args) -> int:
    model = _load(args.model)
    if not args.no_quality:  # a missing corpus is said before the timing, not after it
        from ..data import corpus

        corpus.split_items(args.split, corpus.corpus_dir(args.cache_dir))
    rate = model.sample_rate or RATE
    if rate != RATE:
        print(f"note: the model runs at {rate} Hz; the timing and test set are at {RATE} Hz")
    from ..classifier import macs_per_second

    lat_ms = model.latency / RATE * 1e3
    print(f"rtconv bench vad: {model.arch} {model.config}")
    print(f"  parameters {model.parameter_count():,}, {macs_per_second(model, RATE) / 1e6:.1f} M MAC/s, "
          f"latency {model.latency} samples = {lat_ms:.2f} ms at {RATE} Hz")
    others = {}
    try:
        from .. import Streamer, checkpoint

        den = checkpoint.load(checkpoint.resolve(None))
        if den.metadata.get("task") == "denoise":
            others["shipped denoiser (reference)"] = Streamer(den, threads=1, block_size=args.block_size).process
            # what `rtconv live --gate` adds to a live block: the VAD, its delay lines, the gate's gains
            from ..live import LiveProcessor, StreamSettings

            settings = StreamSettings(sample_rate=RATE, block_size=args.block_size)
            plain = LiveProcessor(den, settings, realtime_check=False)
            gated = LiveProcessor(den, settings, realtime_check=False, vad=model)
            gated.set_controls(gate=True)
            others["live: denoiser"] = plain.process
            others["live: denoiser + gate"] = gated.process
    except Exception:  # noqa: BLE001 - the reference is optional
        pass
    tm = timing(model, args.block_size, args.seconds, others)
    print(f"\nreal time, one thread, {args.block_size}-frame blocks at {RATE} Hz, interleaved block by block:")
    for k, v in tm.items():
        print(f"  {k:<30} RTF {v['rtf']:.4f}   median {v['median_ms']:.3f} ms   p99 {v['p99_ms']:.3f} ms "
              f"(budget {v['budget_ms']:.3f} ms)")
    if "live: denoiser + gate" in tm:
        extra = tm["live: denoiser + gate"]["rtf"] - tm["live: denoiser"]["rtf"]
        print(f"  the gate adds RTF {extra:.4f} to a live denoiser block "
              f"({tm['live: denoiser + gate']['rtf'] / tm['live: denoiser']['rtf']:.2f}x)")
    print(f"  [{'meets' if tm['vad']['rtf'] <= 0.02 else 'misses'} RTF <= 0.02, "
          f"{'meets' if lat_ms <= 10 else 'misses'} latency <= 10 ms]")
    result = {"model": {"arch": model.arch, "config": model.config, "parameters": model.parameter_count(),
                        "latency_samples": model.latency, "latency_ms": lat_ms,
                        "macs_per_second": macs_per_second(model, RATE)}, "timing": tm}
    if not args.no_quality:
        from ..data import corpus
        from ..data.testset import SCORED_SPLITS, fingerprint, make_test_set

        t0 = time.perf_counter()
        root = corpus.corpus_dir(args.cache_dir)
        items = corpus.read_manifest(root)
        pool = corpus.Pool.load(args.split, RATE, root, items)
        examples = make_test_set(pool, seed=args.seed, per_cell=args.per_cell)
        del pool
        fp = fingerprint(examples)
        sources = sorted({it["source"] for it in items if it["split"] == args.split})
        print(f"\n{SCORED_SPLITS[args.split]}: {len(examples)} items, seed {args.seed}, fingerprint {fp}; "
              f"sources: {', '.join(sources)}")
        res = score(model, examples)
        text = format_tables(res)
        g = goals(res)
        goal_text = "\n".join(f"- {'met' if ok else 'NOT met'}: {name} ({m})" for name, m, ok in g)
        print(f"scored in {time.perf_counter() - t0:.0f} s; energy detector threshold {res['threshold_db']:.1f} dB "
              "(best accuracy over the grid, chosen with hindsight)\n")
        print(goal_text + "\n")
        print(text)
        result.update(test_set={"seed": args.seed, "items": len(examples), "fingerprint": fp, "sources": sources,
                                "split": args.split},
                      quality=res, goals=[{"goal": n, "measured": m, "met": ok} for n, m, ok in g])
        if args.tables:
            from pathlib import Path

            Path(args.tables).write_text(
                f"Realistic {dict(test='held-out test', val='validation', dev='dev')[args.split]} set, seed {args.seed}, "
                f"{len(examples)} items, fingerprint {fp}. Energy detector threshold "
                f"{res['threshold_db']:.1f} dB.\n\n{goal_text}\n\n{text}\n")
            print(f"wrote {args.tables}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=float)
        print(f"wrote {args.json}")
    return 0
