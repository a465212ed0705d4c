"""``rtconv info``: what a checkpoint holds, without running it."""

from __future__ import annotations

import argparse
import json

HELP = "show a checkpoint's metadata, latency, receptive field and layer shapes"

DESCRIPTION = """\
Print what a model file holds: architecture and its arguments, task, sample
rate, channels, parameter count, latency and receptive field (in samples and
milliseconds), per-layer kernel shapes, and how the model was made
(training command or filter design, dataset, epochs, final metrics).

The file is fully checked (weights included) before anything is printed;
a damaged or foreign file is refused in one line.

examples:
  rtconv info models/speech-band.safetensors
  rtconv info my-denoiser.safetensors --json | jq .metrics
  rtconv info            # the default model rtconv process would use
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="checkpoint file (default: the shipped default model)")
    parser.add_argument("--json", action="store_true", help="print the full metadata as JSON")


def _ms(samples: int, rate: int | None) -> str:
    return f" ({1000 * samples / rate:.2f} ms at {rate} Hz)" if rate else ""


def format_info(path, model) -> str:
    """Human-readable multi-line description of a loaded checkpoint."""
    meta = model.metadata
    rate = model.sample_rate
    prov = meta.get("provenance") or {}
    lines = [
        f"{path}",
        f"  name            {meta.get('name', '')}",
    ]
    if meta.get("description"):
        lines.append(f"  description     {meta['description']}")
    lines += [
        f"  task            {meta.get('task', 'unknown')}",
        f"  architecture    {model.arch} {json.dumps(model.config)}",
        f"  sample rate     {f'{rate} Hz' if rate else 'any (not rate-specific)'}",
        f"  channels        {model.in_channels} in -> {model.out_channels} out"
        + ("  (mono: runs once per channel of a multi-channel stream)" if model.in_channels == 1 else ""),
        f"  parameters      {model.parameter_count():,}",
        f"  latency         {model.latency} samples{_ms(model.latency, rate)}",
        f"  receptive field {model.receptive_field} samples{_ms(model.receptive_field, rate)}",
        f"  causal          {'yes' if model.causal else 'no (centred layers; their delay is the latency)'}",
        f"  kernels         {meta.get('kernel_convention', 'impulse-response')} order",
        "  layers",
    ]
    names = {id(m): n for n, m in model.named_modules()}
    for layer in model.conv_layers():
        lines.append(
            f"    {names.get(id(layer), ''):<16} {type(layer).__name__} {layer.in_features}->"
            f"{layer.out_features}, {layer.taps} taps, dilation {layer.dilation}, "
            f"{getattr(layer, 'padding', 'causal')}, weight {tuple(layer.weight.shape)}"
        )
    shown = {"created", "rtconv_version"}
    if prov:
        lines.append("  provenance")
        for key, value in prov.items():
            if key not in shown:
                lines.append(f"    {key:<14} {value if isinstance(value, str) else json.dumps(value)}")
        lines.append(f"    {'created':<14} {prov.get('created', '?')} by rtconv {prov.get('rtconv_version', '?')}")
    metrics = meta.get("metrics") or {}
    if metrics:
        lines.append("  metrics")
        for key, value in metrics.items():
            lines.append(f"    {key:<14} {value if isinstance(value, str) else json.dumps(value)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import default_model_path, load, read_header

    path = args.path or default_model_path()
    model = load(path)
    if args.json:
        meta, tensors = read_header(path)
        doc = dict(meta)
        doc["path"] = str(path)
        doc["tensors"] = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in tensors.items()}
        print(json.dumps(doc, indent=2))
    else:
        print(format_info(path, model))
    return 0
