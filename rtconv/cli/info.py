"""``rtconv info``: what a checkpoint holds, without running it."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

HELP = "show a checkpoint's task, rates, latency, parameters, metrics and how it was made"

DESCRIPTION = """\
Print what a model file holds, as a summary a person can read: task, sample
rate, channels, parameter count, latency and receptive field (in samples and
milliseconds), the architecture and its arguments, headline test metrics,
how the model was made (training command, data, epochs, or the filter
design), the weights checksum, and per-layer kernel shapes.  Long values are
wrapped; structured data (per-epoch history, full training config, per-bucket
metrics) is named and left to --json, which prints the complete metadata.

MODEL is a path or the name of a shipped model (`speech-band`,
`denoiser`, ...), found the way `--model NAME` finds it.  The file is fully
checked (weights and checksum included) before anything is printed; a
damaged or foreign file is refused in one line.

examples:
  rtconv info speech-band
  rtconv info my-denoiser.safetensors --json | jq .metrics
  rtconv info            # the default model rtconv process would use
"""

#: Longest line the summary prints (values are wrapped below their label).
WIDTH = 100
_LABEL = 16  # label column: "  receptive field " fits


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="MODEL",
                        help="checkpoint file or shipped model name (default: the shipped default model)")
    parser.add_argument("--json", action="store_true",
                        help="print the complete metadata, tensor shapes and checksum as JSON (for machines)")


def _ms(samples: int, rate: int | None) -> str:
    return f" ({1000 * samples / rate:.2f} ms at {rate} Hz)" if rate else ""


def _num(v) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _short(v) -> bool:
    """A value that reads well on one line (scalars, short lists)."""
    return not isinstance(v, (dict, list)) or len(json.dumps(v)) <= 60


def _plain(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_plain(x)}" for k, x in v.items())
    return _num(v)


class _Lines:
    """The summary being built: labelled rows whose values wrap under the value column."""

    def __init__(self) -> None:
        self.rows: list[str] = []

    def head(self, text: str, indent: int = 2) -> None:
        self.rows += textwrap.wrap(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + 2))

    def row(self, label: str, value, indent: int = 2) -> None:
        text = value if isinstance(value, str) else _plain(value)
        first = " " * indent + f"{label:<{_LABEL - indent + 2}}" if len(label) < _LABEL - indent + 2 \
            else " " * indent + label + " "
        pad = " " * len(first) if len(first) <= 40 else " " * (indent + 4)
        lines = textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=pad,
                              break_on_hyphens=False) or [first.rstrip()]
        self.rows += lines


def _test_metrics(out: _Lines, metrics: dict) -> set:
    """The headline numbers (losses, test MSE, per-output SNR); returns the metric keys it covered."""
    losses = [(w, metrics[k]) for w, k in (("train", "train_loss"), ("validation", "val_loss"), ("test", "test_loss"))
              if isinstance(metrics.get(k), (int, float))]
    if losses:
        loss = metrics.get("loss")
        out.row("loss", ", ".join(f"{w} {_num(v)}" for w, v in losses) + (f" ({loss})" if loss else ""), 4)
    covered = {"train_loss", "val_loss", "test_loss", "loss"}
    t = metrics.get("test")
    if not isinstance(t, dict):
        return covered if losses else set()
    if "examples" in t:
        out.row("test set", f"{t['examples']} held-out examples", 4)
    a, b = t.get("input_mse"), t.get("output_mse")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
        change = f"{a / b:.2f}x lower" if b <= a else f"{b / a:.2f}x higher"
        out.row("test MSE", f"{a:.4g} -> {b:.4g} ({change})", 4)
    for name, e in (t.get("outputs") or {}).items():
        if not isinstance(e, dict):
            continue
        text = (f"SNR {e.get('input_snr_db', float('nan')):.2f} -> {e.get('output_snr_db', float('nan')):.2f} dB "
                f"({e.get('snr_improvement_db', float('nan')):+.2f} dB), "
                f"SI-SDR {e.get('si_sdr_improvement_db', float('nan')):+.2f} dB")
        buckets = [b for b in e.get("buckets", []) if isinstance(b, dict)]
        if buckets:
            text += "; SI-SDR by input SNR: " + ", ".join(
                f"{b.get('bucket')} {b.get('si_sdr_improvement_db', float('nan')):+.1f} dB (n={b.get('count')})"
                for b in buckets)
        out.row(f"test {name}", text, 4)
    return covered | {"test"}


def _training(out: _Lines, prov: dict, metrics: dict, description: str) -> set:
    """How a trained model was made; returns the provenance keys it covered."""
    done = set()
    if prov.get("command"):
        out.row("command", prov["command"], 4)
        done.add("command")
    data = prov.get("dataset") or prov.get("task_description")
    if data:
        if data != description:
            out.row("data", data, 4)
        done |= {"dataset"} if prov.get("dataset") else {"task_description"}
    epochs = prov.get("epochs_done", metrics.get("epochs_run"))
    if epochs is not None:
        parts = [f"{epochs} epochs"]
        if metrics.get("best_epoch"):
            parts[0] += f" (best {metrics['best_epoch']})"
        if metrics.get("train_seconds") is not None:
            parts.append(f"{metrics['train_seconds']:.1f} s")
        if prov.get("device"):
            parts.append(f"on {prov['device']}" + (f", torch {prov['torch_version']}" if prov.get("torch_version") else ""))
        out.row("training", ", ".join(parts), 4)
        done |= {"epochs_done", "device", "torch_version"}
    chain = prov.get("chain")
    if isinstance(chain, list) and chain:
        out.row("resumed from", f"{len(chain)} earlier run(s); their commands are provenance.chain in --json", 4)
        done.add("chain")
    return done


def _design(d: dict) -> str:
    kind = d.get("kind", "?")
    if kind == "bandpass":
        what = f"band-pass {d.get('low', 0):g}-{d.get('high', 0):g} Hz"
    elif kind in ("lowpass", "highpass"):
        what = f"{kind[:-4]}-pass at {d.get('cutoff', 0):g} Hz"
    else:
        what = kind
    parts = [what, f"{d.get('taps', '?')} taps"]
    if d.get("window"):
        parts.append(f"{d['window']} window")
    parts.append(f"{d.get('phase', 'linear')} phase")
    if d.get("padding"):
        parts.append(f"padding {d['padding']}")
    return ", ".join(parts)


def format_info(path, model, checksum: str | None = None) -> str:
    """Human-readable summary of a loaded checkpoint, no line over :data:`WIDTH` characters."""
    meta = model.metadata
    rate = model.sample_rate
    prov = dict(meta.get("provenance") or {})
    metrics = dict(meta.get("metrics") or {})
    out = _Lines()
    out.head(str(path), 0)
    out.row("name", meta.get("name", ""))
    if meta.get("description"):
        out.row("description", meta["description"])
    out.row("task", meta.get("task", "unknown"))
    out.row("sample rate", f"{rate} Hz (other rates are resampled)" if rate else "any (not rate-specific)")
    out.row("channels", f"{model.in_channels} in -> {model.out_channels} out"
            + ("  (mono: runs once per channel of a multi-channel stream)" if model.in_channels == 1 else ""))
    out.row("parameters", f"{model.parameter_count():,}")
    out.row("latency", f"{model.latency} samples{_ms(model.latency, rate)}")
    out.row("receptive field", f"{model.receptive_field} samples{_ms(model.receptive_field, rate)}"
            + (" of convolutions, plus a recurrent state that remembers further back" if model.recurrent else ""))
    out.row("causal", "yes" if model.causal else "no (centred layers; their delay is the latency)")
    out.row("architecture", f"{model.arch}: {_plain(model.config)}")
    out.row("kernels", f"{meta.get('kernel_convention', 'impulse-response')} order")
    out.row("weights", f"sha256 {checksum[:16]}..., checked on load" if checksum
            else "no checksum (saved by an older rtconv; save it again to add one)")

    design = meta.get("design") or prov.get("design")
    if isinstance(design, dict):
        out.row("design", _design(design))

    card = Path(path).with_suffix(".md")
    if card.is_file():
        out.row("model card", f"{card} (benchmarks, limits, how it was made)")

    left_metrics = []
    if metrics:
        out.head("metrics")
        covered = _test_metrics(out, metrics)
        if prov:  # shown with the training run
            covered |= {"best_epoch", "epochs_run", "train_seconds"}
        for key, value in metrics.items():
            if key in covered:
                continue
            if _short(value):
                out.row(key, _num(value) if not isinstance(value, (list, dict)) else _plain(value), 4)
            else:
                left_metrics.append(key)

    left_prov = []
    shown = {"created", "rtconv_version", "design", "final", "trainer", "outputs"}
    if prov:
        out.head("provenance")
        shown |= _training(out, prov, metrics, meta.get("description", ""))
        for key, value in prov.items():
            if key in shown:
                continue
            if _short(value):
                out.row(key, _plain(value), 4)
            else:
                left_prov.append(key)
        out.row("created", f"{prov.get('created', '?')} by rtconv {prov.get('rtconv_version', '?')}", 4)
    if left_metrics or left_prov:
        names = [f"metrics.{k}" for k in left_metrics] + [f"provenance.{k}" for k in left_prov]
        out.row("more", f"{', '.join(names)}: see --json", 4)

    layers = list(model.conv_layers())
    names = {id(m): n for n, m in model.named_modules()}
    out.head(f"layers ({len(layers)})")
    width = min(32, max((len(names.get(id(lay), "")) for lay in layers), default=0))
    for layer in layers:
        text = (f"{names.get(id(layer), ''):<{width}} {type(layer).__name__} {layer.in_features}->"
                f"{layer.out_features}, {layer.taps} taps"
                + (f", dilation {layer.dilation}" if layer.dilation != 1 else "")
                + (", centred" if getattr(layer, "padding", "causal") == "same" else "")
                + f", weight {tuple(layer.weight.shape)}")
        out.head(text, 4)
    return "\n".join(out.rows)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load, read_header, resolve, stored_checksum

    path = resolve(args.path)
    model = load(path)
    checksum = stored_checksum(path)
    if args.json:
        meta, tensors = read_header(path)
        doc = dict(meta)
        doc["path"] = str(path)
        doc["tensors"] = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in tensors.items()}
        doc["weights_sha256"] = checksum
        print(json.dumps(doc, indent=2))
    else:
        print(format_info(path, model, checksum))
    return 0
