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
impulse-response order.  A linear-phase filter of N taps delays the signal by
(N-1)/2 samples.  With --padding causal (the default) that delay is part of
the output, as in any analogue-style filter; with --padding same the model
declares it as its latency, so `rtconv process` removes it (output aligned
with the input) and live use reports it.

examples:
  rtconv filter lowpass --cutoff 2000 --taps 101 --sample-rate 48000 -o lp.safetensors
  rtconv filter highpass --cutoff 80 --taps 255 -o rumble.safetensors
  rtconv filter bandpass --cutoff 300 3400 --taps 201 --sample-rate 16000 -o phone.safetensors
  rtconv filter moving-average --taps 8 -o smooth.safetensors
  rtconv filter edge -o edge.safetensors
"""


def _hz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frequency in Hz, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive frequency in Hz, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    from .common import positive_int

    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    def common(p: argparse.ArgumentParser, taps: int | None, rate: int | None) -> None:
        p.add_argument("-o", "--output", required=True, metavar="PATH", help="checkpoint to write (.safetensors)")
        if taps is not None:
            p.add_argument("--taps", type=positive_int, default=taps, metavar="N",
                           help="number of taps (default: %(default)s)")
        p.add_argument("--sample-rate", "-r", type=positive_int, default=rate, metavar="HZ",
                       help="sample rate the filter is designed for, in Hz (default: %(default)s)")
        p.add_argument("--padding", choices=("causal", "same"), default="causal",
                       help="causal: zero model latency, the output carries the group delay; same: "
                            "centred kernel whose delay is declared as latency (default: %(default)s)")
        p.add_argument("--name", help="model name stored in the file (default: the file name)")
        p.add_argument("--description", help="one-line description stored in the file")

    def windowed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--window", default="hamming", help="scipy window name (default: %(default)s)")

    p = sub.add_parser("lowpass", help="keep frequencies below --cutoff")
    p.add_argument("--cutoff", type=_hz, required=True, metavar="HZ", help="-6 dB frequency in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("highpass", help="keep frequencies above --cutoff (odd taps)")
    p.add_argument("--cutoff", type=_hz, required=True, metavar="HZ", help="-6 dB frequency in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("bandpass", help="keep frequencies between two cutoffs (odd taps)")
    p.add_argument("--cutoff", type=_hz, nargs=2, required=True, metavar=("LOW", "HIGH"),
                   help="lower and upper -6 dB frequencies in Hz")
    common(p, 101, 48000)
    windowed(p)
    p = sub.add_parser("moving-average", help="average of the last --taps samples")
    common(p, 5, None)
    p = sub.add_parser("edge", help="edge detector [1, 0, -1]: y[n] = x[n] - x[n-2]")
    common(p, None, None)


def build_filter(args: argparse.Namespace):
    """The FIR model described by parsed ``rtconv filter`` arguments."""
    from .. import designs
    from ..models import FIR

    rate = args.sample_rate
    if args.kind in ("lowpass", "highpass"):
        model = designs.design(args.kind, cutoff=args.cutoff, taps=args.taps, sample_rate=rate, window=args.window)
    elif args.kind == "bandpass":
        lo, hi = args.cutoff
        model = designs.bandpass(lo, hi, taps=args.taps, sample_rate=rate, window=args.window)
    elif args.kind == "moving-average":
        model = designs.moving_average(args.taps, sample_rate=rate)
    else:
        model = designs.edge(sample_rate=rate)
    if args.padding == "same":
        same = FIR(model.kernel, padding="same")
        same.sample_rate, same.metadata = model.sample_rate, model.metadata
        model = same
    model.metadata["design"]["padding"] = args.padding
    return model


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import save

    model = build_filter(args)
    command = "rtconv " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["filter"] else None
    prov = {"command": command} if command else {}
    path = save(model, args.output, task="filter", name=args.name, description=args.description, provenance=prov)
    taps = model.kernel.size
    rate = model.sample_rate
    delay = (taps - 1) / 2
    where = f" at {rate} Hz" if rate else ""
    ms = f" = {1000 * delay / rate:.2f} ms" if rate else ""
    print(
        f"wrote {path}: {args.kind}, {taps} taps{where}, latency {model.latency} samples "
        f"(group delay {delay:g} samples{ms})"
    )
    return 0
