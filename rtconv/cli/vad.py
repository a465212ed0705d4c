"""``rtconv vad``: where a recording holds speech, as segments and an Audacity label file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..vad import DETECT_BLOCK_SIZE, FRAME_SECONDS, SPEECH_LABEL, THRESHOLD
from .common import nonnegative_seconds, positive_int, probability

HELP = "find the speech in a recording: segments in seconds, optionally an Audacity label file"

DESCRIPTION = f"""\
Run a voice activity model (default: the shipped models/vad.safetensors) over
an audio file and print its speech segments, one per line: start and end in
seconds, separated by a tab.  The file is streamed in blocks (memory stays
flat), mixed down to mono and resampled to the model's rate when needed; the
model's latency is removed, so the times refer to the file.

A {1000 * FRAME_SECONDS:g} ms frame is speech when the model's probability is at least
--threshold; gaps shorter than --min-silence are closed, then segments
shorter than --min-speech are dropped.

Examples
  rtconv vad talk.wav
  rtconv vad talk.wav --labels talk-speech.txt      # Audacity: File > Import > Labels
  rtconv vad talk.flac --threshold 0.8 --min-silence 0.3 --min-speech 0.1
  ffmpeg -i talk.mp4 -f wav - | rtconv vad -       # - : standard input
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN",
                        help="audio file (WAV, FLAC, OGG, ...; any rate, any channels), or - for standard input")
    parser.add_argument("--model", "-m", metavar="PATH",
                        help="voice activity checkpoint, a path or a shipped model's name (default: vad)")
    parser.add_argument("--threshold", "-t", type=probability, default=THRESHOLD, metavar="P",
                        help="speech when the probability is at least P (default: %(default)s)")
    parser.add_argument("--min-speech", type=nonnegative_seconds, default=0.0, metavar="SECONDS",
                        help="drop segments shorter than this (default: %(default)s)")
    parser.add_argument("--min-silence", type=nonnegative_seconds, default=0.0, metavar="SECONDS",
                        help="close gaps shorter than this between segments (default: %(default)s)")
    parser.add_argument("--labels", "-l", metavar="TXT",
                        help="also write the segments as an Audacity label file (start<TAB>end<TAB>speech)")
    parser.add_argument("--label", default=SPEECH_LABEL, help="text of each label (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the --labels file if it exists")
    parser.add_argument("--keep-dc", dest="dc_block", action="store_false", default=None,
                        help="give the detector the samples as they are; by default a DC offset (a microphone's "
                             "constant bias, which it never met in training) is removed first")
    parser.add_argument("--no-prime", dest="prime", action="store_false", default=None,
                        help="start the detector from silence; by default a recurrent one starts from the file's "
                             "first quarter second played backwards, as `rtconv process` starts a denoiser")
    parser.add_argument("--block-size", "-b", type=positive_int, default=DETECT_BLOCK_SIZE, metavar="N",
                        help="frames per streamed block (default: %(default)s)")


def _model(name: str | None):
    from .. import checkpoint
    from ..errors import ConfigError

    path = checkpoint.resolve(name or "vad")
    model = checkpoint.load(path)
    task = (model.metadata or {}).get("task")
    if task not in (None, "vad") or model.out_channels != 1:
        raise ConfigError(
            f"model {str(path)!r} is a {task!r} model with {model.out_channels} output(s), not a voice activity "
            "model; pass one trained with `rtconv train vad`, such as the shipped vad."
        )
    return model


def run(args) -> int:
    from ..errors import AudioFileError
    from . import pipes
    from ..vad import detect, segments, write_labels

    if args.labels:
        folder = Path(args.labels).resolve().parent
        if not folder.is_dir():
            raise AudioFileError(f"cannot write the label file {args.labels!r}: its folder {str(folder)!r} does "
                                 "not exist; create it or choose another path.")
        if Path(args.labels).resolve() == Path(args.input).resolve():
            raise AudioFileError(f"--labels {args.labels!r} is the input file itself; choose another path.")
        if Path(args.labels).is_dir():
            raise AudioFileError(f"--labels {args.labels!r} is a folder; name the label file to write in it.")
        if Path(args.labels).exists() and not args.overwrite:
            raise AudioFileError(f"--labels {args.labels!r} exists; pass --overwrite to replace it or choose "
                                 "another path.")
    stdin = args.input == pipes.STDIO
    if stdin:  # before the model loads: the user is waiting at a terminal
        pipes.refuse_terminal_input()
    model = _model(args.model)
    with pipes.standard_input() if stdin else contextlib.nullcontext(args.input) as src:
        probs, info = detect(src, model, block_size=args.block_size, dc_block=args.dc_block, prime=args.prime)
    name = "standard input" if stdin else Path(args.input).name
    for said in info["warnings"]:  # in `rtconv process`'s words
        print(f"rtconv vad: warning: {name}: {said}", file=sys.stderr)
    segs = segments(probs, FRAME_SECONDS, args.threshold, args.min_speech, args.min_silence)
    for a, b in segs:
        print(f"{a:.3f}\t{b:.3f}")
    speech = sum(b - a for a, b in segs)
    duration = info["duration"]
    print(f"rtconv vad: {len(segs)} segment(s), {speech:.2f} s of speech in {duration:.2f} s"
          + (f" ({100 * speech / duration:.0f}%)" if duration else "")
          + f", threshold {args.threshold:g}", file=sys.stderr)
    if args.labels:
        write_labels(args.labels, segs, args.label)
        print(f"rtconv vad: wrote {args.labels}", file=sys.stderr)
    return 0
