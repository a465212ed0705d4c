"""Waveform classifiers side by side: accuracy, per SNR and per class, confusion matrices.

Every checkpoint given is scored on the same held-out ``classify`` test
split (:class:`rtconv.train.tasks.WaveformDataset`, split ``test``, the
seed and draw ranges of the first model's training run unless given), by
:func:`rtconv.train.report.evaluate_classifier`: each example is classified
by the mean of its probability tracks after the model's warm-up; per-sample
accuracy counts every sample's own decision.  Also each model's size,
receptive field and real-time factor (one thread, 128-sample blocks,
streamed).

Typical use: the causal CNN against the linear baseline, trained with the
same command::

    rtconv train classify --out cnn.safetensors
    rtconv train classify --arch linear_classifier --out linear.safetensors
    rtconv bench classify cnn.safetensors linear.safetensors
"""

from __future__ import annotations

import json
import time

import numpy as np

HELP = "waveform classifiers side by side (e.g. causal CNN vs linear): accuracy, per SNR, confusion"
DESCRIPTION = __doc__


def configure(parser) -> None:
    from ..cli.common import seed

    parser.add_argument("models", nargs="+", metavar="MODEL", help="classifier checkpoints (task classify)")
    parser.add_argument("--examples", type=int, default=2000, help="test examples (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=None, help="test-set seed (default: the first model's)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")


def _rtf(model, block: int = 128, seconds: float = 4.0) -> float:
    from .. import Streamer

    x = np.random.default_rng(0).standard_normal((int(seconds * 16000), 1)).astype(np.float32)
    s = Streamer(model, threads=1, block_size=block)
    blocks = [x[i: i + block] for i in range(0, len(x) - block + 1, block)]
    for b in blocks[:10]:
        s.process(b)
    t = time.perf_counter()
    for b in blocks:
        s.process(b)
    return (time.perf_counter() - t) / (len(blocks) * block / 16000)


def compare(models: dict, examples: int = 2000, seed: int | None = None) -> dict:
    """Score ``models`` (name -> classifier) on one waveform test set; returns per-model metrics."""
    from ..train import losses, tasks
    from ..train.report import evaluate_classifier

    first = next(iter(models.values()))
    opts = dict(((first.metadata or {}).get("provenance") or {}).get("task_options") or {})
    seed = int(opts.get("seed", 0) if seed is None else seed)
    kw = {k: tuple(opts[k]) for k in ("cycles", "snr_db") if opts.get(k)}
    if opts.get("length"):
        kw["length"] = int(opts["length"])
    ds = tasks.WaveformDataset(examples, "test", seed, **kw)
    data = tasks.materialize(ds)
    infos = [ds.info(i) for i in range(len(ds))]
    out = {"test_set": {"examples": examples, "seed": seed, **{k: list(v) if isinstance(v, tuple) else v
                                                               for k, v in kw.items()}}, "models": {}}
    for name, m in models.items():
        r = evaluate_classifier(m, data, losses.cross_entropy, "cpu", list(tasks.WAVEFORMS), infos)
        r.update(arch=m.arch, config=m.config, parameters=m.parameter_count(), receptive_field=m.receptive_field,
                 rtf_16k=_rtf(m))
        out["models"][name] = r
    return out


def format_tables(result: dict) -> str:
    from ..train.report import format_confusion

    names = list(result["models"])
    ms = [result["models"][n] for n in names]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
             "| architecture | " + " | ".join(f"`{m['arch']}`" for m in ms) + " |",
             "| parameters | " + " | ".join(f"{m['parameters']:,}" for m in ms) + " |",
             "| receptive field (samples) | " + " | ".join(str(m["receptive_field"]) for m in ms) + " |",
             "| **accuracy per example** | " + " | ".join(f"**{m['accuracy']:.3f}**" for m in ms) + " |",
             "| accuracy per sample | " + " | ".join(f"{m['sample_accuracy']:.3f}" for m in ms) + " |"]
    for b in ms[0].get("buckets", []):
        lines.append(f"| input SNR {b['bucket']} (n={b['count']}) | " + " | ".join(
            f"{next(x['accuracy'] for x in m['buckets'] if x['bucket'] == b['bucket']):.3f}" for m in ms) + " |")
    for c in ms[0]["classes"]:
        lines.append(f"| recall {c} | " + " | ".join(
            "–" if m["recall"][c] is None else f"{m['recall'][c]:.3f}" for m in ms) + " |")
    lines.append("| RTF at 16 kHz, 128-sample blocks, one thread | " + " | ".join(
        f"{m['rtf_16k']:.4f}" for m in ms) + " |")
    lines.append("")
    for n, m in zip(names, ms, strict=True):
        lines += [f"Confusion, {n} (rows true, columns predicted):", "", format_confusion(m["confusion"], m["classes"]),
                  ""]
    return "\n".join(lines)


def run(args) -> int:
    from .. import checkpoint
    from ..errors import ConfigError

    models = {}
    for path in args.models:
        m = checkpoint.load(checkpoint.resolve(path))
        if (m.metadata or {}).get("task") != "classify":
            raise ConfigError(f"{path!r} is a {m.metadata.get('task')!r} model, not a waveform classifier; pass "
                              "checkpoints written by `rtconv train classify`.")
        models[str(path)] = m
    res = compare(models, args.examples, args.seed)
    ts = res["test_set"]
    print(f"rtconv bench classify: {ts['examples']} held-out waveform examples, seed {ts['seed']}\n")
    text = format_tables(res)
    print(text)
    if args.markdown:
        from pathlib import Path

        Path(args.markdown).write_text(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0
