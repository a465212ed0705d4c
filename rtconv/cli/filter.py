"""``rtconv filter``: write a classic fixed filter as a checkpoint, no training needed."""

from __future__ import annotations

import argparse
import shlex
import sys

HELP = "design a classic FIR filter (low/high/band-pass, moving average, edge) and save it"

DESCRIPTION = """\
Design a fixed FIR filter and write it as an rtconv checkpoint that
`rtconv process`, `rtconv live` and the GUI run like any trained model.

Window-method designs come from scipy.signal.firwin; kernels are stored in
impulse-response order.

Timing.  A linear-phase filter of N taps delays the signal by (N-1)/2
samples.  By default (--padding same) the model declares that delay as its
latency, as the shipped speech-band model does: `rtconv process` removes it,
so a processed file lines up with its input, and live use reports it (a live
stream cannot avoid it).  --padding causal keeps the delay in the output and
declares none.  --phase minimum (low/high/band-pass) makes the minimum-phase
filter with the same magnitude response: causal, latency 0 and only a short,
frequency-dependent delay, for live use where latency matters more than the
waveform's shape.

Taps.  Too few taps for a cutoff make a filter that barely filters.  Each
design is measured half-way from each cutoff to its nearest neighbour (0 Hz,
the Nyquist frequency or the other cutoff): if the stop side is cut by less
than 20 dB or the pass side loses more than 1 dB, a warning gives the
measured gains and the tap count that would do.

examples:
  rtconv filter lowpass --cutoff 2000 --taps 101 --sample-rate 48000 -o lp.safetensors
  rtconv filter highpass --cutoff 80 --taps 1101 -o rumble.safetensors
  rtconv filter highpass --cutoff 80 --taps 1101 --phase minimum -o rumble-live.safetensors
  rtconv filter bandpass --cutoff 300 3400 --taps 201 --sample-rate 16000 -o phone.safetensors
  rtconv filter moving-average --taps 8 -o smooth.safetensors
  rtconv filter edge -o edge.safetensors
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .common import frame_count, frequency_hz, sample_rate_hz, window_spec

    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    def common(p: argparse.ArgumentParser, taps: int | None, rate: int | None) -> None:
        p.add_argument("-o", "--output", required=True, metavar="PATH", help="checkpoint to write (.safetensors)")
        if taps is not None:
            p.add_argument("--taps", type=frame_count, default=taps, metavar="N",
                           help="number of taps (default: %(default)s)")
        p.add_argument("--sample-rate", "-r", type=sample_rate_hz, default=rate, metavar="HZ",
                       help="sample rate the filter is designed for, in Hz (default: "
                            + (f"{rate}" if rate else "none: its taps mean the same at any rate") + ")")
        p.add_argument("--padding", choices=("causal", "same"), default=None,
                       help="same: centred kernel whose group delay is declared as latency, so processed "
                            "files come out aligned (default for linear phase); causal: latency 0, the "
                            "output carries the group delay (default for --phase minimum)")
        p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
        p.add_argument("--name", help="model name stored in the file (default: the file name)")
        p.add_argument("--description", help="one-line description stored in the file")

    def windowed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--window", type=window_spec, default="hamming", metavar="NAME[,PARAM]",
                       help="scipy.signal window: a name, or a name and its parameter (kaiser,8) (default: %(default)s)")
        p.add_argument("--phase", choices=("linear", "minimum"), default="linear",
                       help="linear: symmetric kernel, delay (N-1)/2 samples at every frequency; minimum: "
                            "same magnitude, causal, a short delay for live use (default: %(default)s)")

    p = sub.add_parser("lowpass", help="keep frequencies below --cutoff")
    p.add_argument("--cutoff", type=frequency_hz, required=True, metavar="HZ", help="-6 dB frequency in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("highpass", help="keep frequencies above --cutoff (odd taps)")
    p.add_argument("--cutoff", type=frequency_hz, required=True, metavar="HZ", help="-6 dB frequency in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("bandpass", help="keep frequencies between two cutoffs (odd taps)")
    p.add_argument("--cutoff", type=frequency_hz, nargs=2, required=True, metavar=("LOW", "HIGH"),
                   help="lower and upper -6 dB frequencies in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("moving-average", help="average of --taps samples")
    common(p, 5, None)
    p = sub.add_parser("edge", help="edge detector [1, 0, -1]: y[n] = x[n+1] - x[n-1] (causal: x[n] - x[n-2])")
    common(p, None, None)


def build_filter(args: argparse.Namespace):
    """The FIR model described by parsed ``rtconv filter`` arguments (design warnings go to stderr)."""
    import warnings

    from .. import designs

    rate, padding = args.sample_rate, args.padding
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", designs.FilterDesignWarning)
        if args.kind in ("lowpass", "highpass", "bandpass"):
            cut = dict(zip(("low", "high"), args.cutoff, strict=True)) if args.kind == "bandpass" else {"cutoff": args.cutoff}
            padding = padding or ("causal" if args.phase == "minimum" else "same")
            model = designs.design(args.kind, **cut, taps=args.taps, sample_rate=rate, window=args.window,
                                   phase=args.phase, padding=padding)
        elif args.kind == "moving-average":
            model = designs.moving_average(args.taps, sample_rate=rate, padding=padding or "same")
        else:
            model = designs.edge(sample_rate=rate, padding=padding or "same")
    for w in caught:
        if issubclass(w.category, designs.FilterDesignWarning):
            print(f"rtconv filter: warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover - anything else keeps its usual route
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return model


def _timing(model) -> str:
    """What the output's timing will be, in words, for the summary line."""
    import numpy as np
    from scipy import signal

    taps, rate = model.kernel.size, model.sample_rate
    ms = (lambda n: f" = {1000 * n / rate:.2f} ms") if rate else (lambda n: "")
    d = model.metadata["design"]
    if d.get("phase") == "minimum":
        # the group delay where the filter passes: the geometric centre of its pass band
        lo = d.get("low", d.get("cutoff") if d["kind"] == "highpass" else 20.0)
        hi = d.get("high", d.get("cutoff") if d["kind"] == "lowpass" else 0.45 * rate)
        f = float(np.sqrt(max(lo, 1.0) * hi))
        _, gd = signal.group_delay((model.kernel.astype(np.float64), [1.0]), w=[f], fs=rate)
        return (f"latency 0 samples (minimum phase: group delay {gd[0]:.1f} samples{ms(gd[0])} at {f:.0f} Hz, "
                "more near the cutoff)")
    delay = (taps - 1) / 2
    if model.latency and model.latency == delay:
        return (f"latency {model.latency} samples{ms(model.latency)} (the group delay, declared: "
                "processed files come out aligned)")
    if model.latency:  # an even kernel: its centre lies between two samples
        return (f"latency {model.latency} samples{ms(model.latency)} (of the {delay:g}-sample group delay, "
                "declared: processed files come out aligned to half a sample)")
    if d.get("padding") == "same" and delay:  # two taps: the half-sample delay rounds to no latency
        return (f"latency 0 samples (centred: the {delay:g}-sample group delay is under one sample, so processed "
                "files come out aligned to half a sample)")
    return f"latency 0 samples (causal: the output is delayed by the group delay, {delay:g} samples{ms(delay)})"


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import check_model_path, save
    from ..errors import ConfigError, check_output_file

    output = check_model_path(args.output)
    check_output_file(f"-o {str(output)!r}", output)
    if output.exists() and not args.overwrite:
        raise ConfigError(f"{str(output)!r} exists; pass --overwrite to replace it or name another file with -o.")
    model = build_filter(args)
    command = "rtconv " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["filter"] else None
    prov = {"command": command} if command else {}
    path = save(model, output, task="filter", name=args.name, description=args.description, provenance=prov)
    rate = model.sample_rate
    where = f" at {rate} Hz" if rate else ""
    print(f"wrote {path}: {args.kind}, {model.kernel.size} taps{where}, {_timing(model)}")
    return 0
