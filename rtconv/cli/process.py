"""``rtconv process``: run a model over audio files, safely."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path

HELP = "process audio files with a model (streamed like live, or the offline reference)"
# SIGTERM (kill, timeout, a service manager) takes Ctrl-C's way out (rtconv.cli.main):
# KeyboardInterrupt, so the output being written is deleted, not left as a .part file.
STOP_SIGNALS = (signal.SIGTERM,)

DESCRIPTION = """\
Run a model over one or more audio files (any format soundfile reads: WAV
16/24/32-bit or float, FLAC, OGG, AIFF...) and write the results.

The file is read in chunks and streamed through the same engine as live
audio, in blocks of --block-size frames, so memory stays flat for hour-long
recordings.  --offline runs the model's whole-signal forward pass instead;
both give the same output to float rounding.

Model and rates: the default model is the shipped denoiser in models/
(denoiser.safetensors, else lab-denoiser.safetensors, else the speech-band
filter); `rtconv info` with no argument shows which.  --model takes a path or
the name of a shipped model (`--model speech-band`).  When the
file's sample rate differs from the model's, the audio is resampled (soxr,
high quality) to the model's rate and back, and a note says so.  Files from
1 kHz to 768 kHz are accepted, e.g. 8 kHz telephone audio or 384 kHz studio
masters (content above the model's Nyquist frequency is lost then).

Channels: a mono model filters each channel separately; a multi-input model
needs a file with exactly its channel count.  The output keeps the input's
channels, rate and sample format unless the model changes the channel count.

Timing: by default the model's latency is removed, so the output lines up
with the input and has exactly its length; --keep-latency writes the raw
stream a live listener hears (delayed, plus the latency's worth of tail).

Safety: output goes to a hidden temporary file in the destination folder and
is renamed into place only when complete; a failure or Ctrl-C leaves no
partial output, and the input is never modified.  NaN/Inf samples in float
files are replaced by silence with a warning.  An existing output is kept
unless --overwrite is given.

Output names: `x.wav` becomes `x-denoised.wav` (denoiser), `x-filtered.wav`
(filter) or `x-<task>.wav`, beside the input or in the folder given by -o.
With exactly two paths where the second does not exist, the second is the
output file (`rtconv process in.wav out.flac`); two existing files are two
inputs, so replace an existing output with `-o out.wav --overwrite`.

Several files or folders: each is processed in turn (or by --jobs worker
processes); a bad file is reported on one line and skipped, and the exit
status is 1 if any failed.

examples:
  rtconv process noisy.wav                     # -> noisy-denoised.wav
  rtconv process noisy.wav clean.flac --model my.safetensors
  rtconv process recordings/ -o cleaned/ --jobs 2
  rtconv process talk.wav --offline --quiet
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .common import add_block_args, add_model_args, attenuation_db, positive_int, unit_fraction

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files or folders (a trailing non-existent path is the OUTPUT)")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="output file (one input) or existing folder (default: beside each input)")
    add_model_args(parser, "the shipped denoiser, else the speech-band filter; see `rtconv info`")
    add_block_args(parser, 1024)  # = rtconv.files.DEFAULT_BLOCK_SIZE, not imported here (torch loads slowly)
    g = parser.add_argument_group("processing")
    g.add_argument("--offline", action="store_true",
                   help="run the whole-signal forward pass (the reference) instead of streaming")
    g.add_argument("--keep-latency", action="store_true",
                   help="keep the raw delayed stream instead of aligning the output with the input")
    g.add_argument("--subtype", metavar="NAME",
                   help="output sample format, e.g. PCM_16, PCM_24, FLOAT (default: the input's)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    g.add_argument("--atten-lim", type=attenuation_db, metavar="DB",
                   help="denoiser strength: attenuate no band by more than DB dB (default: the model's own)")
    g.add_argument("--wet", type=unit_fraction, default=1.0, metavar="X",
                   help="dry/wet mix, 0 (input) .. 1 (processed) (default: %(default)s)")
    g.add_argument("--jobs", "-j", type=positive_int, default=1, metavar="N",
                   help="worker processes for several files (default: %(default)s)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary lines")


def _split_output(args: argparse.Namespace) -> tuple[list[str], str | None]:
    inputs, output = list(args.inputs), args.output
    if output is None and len(inputs) == 2 and Path(inputs[0]).exists() and not Path(inputs[1]).exists():
        output = inputs.pop()
    return inputs, output


def _one(job: tuple) -> tuple[str, object, list[str] | None, tuple[float, float]]:
    """Process one file; return (input, summary line or error, warnings, (audio s, wall s))."""
    from ..errors import RtconvError
    from ..files import process_file

    path, output, model, kw = job
    try:
        s = process_file(path, output, model, **kw)
    except RtconvError as e:
        return str(path), e, None, (0.0, 0.0)
    return str(path), s.line(), s.warnings, (s.duration_s, s.elapsed_s)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load, resolve
    from ..errors import AudioFileError
    from ..files import audio_files

    inputs, output = _split_output(args)
    files, skipped = audio_files(inputs)
    if skipped and not args.quiet:
        print(f"rtconv process: note: skipped {len(skipped)} file(s) that rtconv wrote "
              f"({', '.join(p.name for p in skipped[:3])}{', ...' if len(skipped) > 3 else ''}); "
              "name them explicitly to process them again", file=sys.stderr)
    if not files:
        raise AudioFileError(f"no audio files found in {', '.join(map(repr, inputs))}.")
    if output is not None and output.endswith(("/", os.sep)) and not Path(output).is_dir():
        raise AudioFileError(f"output folder {output!r} does not exist; create it first.")
    if len(files) > 1 and output is not None and not Path(output).is_dir():
        raise AudioFileError(
            f"{len(files)} inputs need an existing output folder, but {output!r} is not one; create it first."
        )
    if args.model:  # a bad model fails once, before any file
        args.model = str(resolve(args.model))
    model = load(args.model) if args.model else None
    kw = dict(block_size=args.block_size, offline=args.offline, align=not args.keep_latency,
              subtype=args.subtype, overwrite=args.overwrite, threads=args.threads,
              progress=False if (args.quiet or args.jobs > 1) else None, wet=args.wet,
              attenuation_limit_db="model" if args.atten_lim is None else args.atten_lim)
    if args.atten_lim is not None and model is not None:  # refuse a model without a strength once, up front
        from ..denoiser import set_attenuation_limit

        set_attenuation_limit(model, args.atten_lim)
    # workers load the checkpoint themselves: a path crosses the process boundary, not a module
    ref = args.model if args.jobs > 1 else model
    jobs = [(f, output, ref, kw) for f in files]
    failed = 0
    audio_s = 0.0

    def report(result) -> None:
        nonlocal failed, audio_s
        path, res, warnings, (dur, _) = result
        audio_s += dur
        if isinstance(res, Exception):
            failed += 1
            print(f"rtconv process: error: {res}", file=sys.stderr)
            return
        for w in warnings or ():
            print(f"rtconv process: warning: {Path(path).name}: {w}", file=sys.stderr)
        if not args.quiet:
            print(res)

    t0 = time.perf_counter()
    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn: forking a process that already ran torch threads can deadlock
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for result in pool.map(_one, jobs):
                report(result)
    else:
        for job in jobs:
            report(_one(job))
    wall = time.perf_counter() - t0
    if len(jobs) > 1 and not args.quiet and failed < len(jobs):
        print(f"{len(jobs) - failed} file(s), {audio_s:.1f} s of audio in {wall:.1f} s "
              f"({audio_s / wall:.0f}x real time)")
    if failed and len(jobs) > 1:
        print(f"rtconv process: {failed} of {len(jobs)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0
