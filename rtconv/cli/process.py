"""``rtconv process``: run a model over audio files, safely."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path

# STOP_SIGNALS: read here by rtconv.cli.main, which makes them interrupt the command from its start
from .batch import (STOP_SIGNALS, _Batch, _catch, _Console, _Job, _restore, _signal_name, _Stop, _switch, cpu_cores,
                    plan_workers)

HELP = "process audio files with a model (streamed like live, or the offline reference)"
_WHY = {"SIGINT": "Ctrl-C", "SIGTERM": "a request to terminate", "SIGHUP": "the terminal was closed"}

DESCRIPTION = """\
Run a model over one or more audio files (any format soundfile reads: WAV
16/24/32-bit or float, FLAC, OGG, AIFF...) and write the results.

The file is read in chunks and streamed through the same engine as live
audio, so memory stays flat for hour-long recordings.  Files are streamed in
long blocks (the fastest for the model; --block-size sets another): the
output is the same at any block size.  --offline runs the model's
whole-signal forward pass instead; both give the same output to float
rounding.

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
is renamed into place only when complete; a failure, Ctrl-C, SIGTERM or a
closed terminal (SIGHUP) leaves no partial output (exit status 128 + the
signal's number), and the input is never modified.  A temporary file left by
a run that was killed outright (SIGKILL) is removed by the next run over the
same output.  A full disk is reported as such, and nothing is saved.
NaN/Inf samples in float files are replaced by silence with a warning.  An
existing output is kept unless --overwrite is given.

Output names: `x.wav` becomes `x-denoised.wav` (denoiser), `x-filtered.wav`
(filter) or `x-<task>.wav`, beside the input or in the folder given by -o.
With exactly two paths where the second does not exist yet, or is a file
rtconv wrote, the second is the output file (`rtconv process in.wav
out.flac`; run again, it says the output exists); two existing files are
otherwise two inputs.  An -o ending in / names a folder, made if missing.

Pipes: `-` as the INPUT reads standard input and `-o -` writes standard
output (the input's format, or --format's); `rtconv process -` alone is a
filter.  Both are spooled through a temporary folder under $TMPDIR, so the
output reaches the pipe only once it is complete.

Several files or folders: a folder gives the audio files directly in it;
with --recursive also those in its sub-folders, whose structure is mirrored
under -o.  A bad file is reported on one line and skipped, and the exit
status is 1 if any failed.  An interrupted batch resumes with
--skip-existing, which leaves finished outputs alone.  --jobs N processes N
files at a time in worker processes that each load the model once; the
progress bar counts audio time over all files.

examples:
  rtconv process noisy.wav                     # -> noisy-denoised.wav
  rtconv process noisy.wav clean.flac --model my.safetensors
  rtconv process recordings/ -o cleaned/ --recursive --jobs 2
  rtconv process recordings/ -o cleaned/ --skip-existing   # resume
  rtconv process talk.wav --offline --quiet
  ffmpeg -i talk.mp4 -f wav - | rtconv process - -o talk.flac
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from ..audio import READ_CHUNK, SAMPLE_RATE_MODEL_BLOCK
    from .common import add_model_args, attenuation_db, positive_int, unit_fraction

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio files or folders (a trailing non-existent path is the OUTPUT)")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="output file (one input) or existing folder (default: beside each input)")
    add_model_args(parser, "the shipped denoiser, else the speech-band filter; see `rtconv info`")
    # not common.add_block_args: for files both defaults depend on the model and on --jobs
    s = parser.add_argument_group("streaming")
    s.add_argument("--block-size", "-b", type=positive_int, metavar="N",
                   help="frames per block handed to the streamer (default: the fastest for the model, "
                        f"{SAMPLE_RATE_MODEL_BLOCK}, or {READ_CHUNK} for a framed denoiser; the output is the same "
                        "at any size)")
    s.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch threads per process (default: 1; fewer when --jobs processes times N "
                        "would exceed the CPU cores)")
    g = parser.add_argument_group("processing")
    g.add_argument("--offline", action="store_true",
                   help="run the whole-signal forward pass (the reference) instead of streaming")
    g.add_argument("--keep-latency", action="store_true",
                   help="keep the raw delayed stream instead of aligning the output with the input")
    g.add_argument("--no-prime", dest="prime", action="store_false", default=None,
                   help="start a model with a recurrent state (the shipped denoiser) from silence, as a live "
                        "stream starts; by default it starts from the file's first fraction of a second "
                        "played backwards, so that the file's start is cleaned like the rest")
    g.add_argument("--keep-dc", dest="dc_block", action="store_false", default=None,
                   help="give a denoiser the samples as they are; by default a DC offset (a microphone's "
                        "constant bias, which the denoisers never met in training) is removed first by a "
                        "1 Hz high-pass that starts from the running mean")
    g.add_argument("--keep-level", dest="level_guard", action="store_false", default=None,
                   help="give a denoiser a loud file at its own level; by default a file whose speech (what the "
                        "model keeps of it, measured in a first pass) is above -26 dBFS active level goes into "
                        "the model that much quieter (one gain for the whole file) and comes out raised back, "
                        "since the denoiser was trained on quieter speech and takes loud speech for noise "
                        "(clean speech at peak -1 dBFS: 1.9 dB lost, up to 6 dB for synthetic voices)")
    g.add_argument("--both-directions", action="store_true",
                   help="denoisers: run the model over each file forwards and again backwards and write the mean "
                        "of the two; cleaner (validation: PESQ 1.63 -> 1.70, SI-SDRi +3.95 -> +4.33 dB) at twice "
                        "the time, with two temporary copies of the file beside the output meanwhile; not for live")
    g.add_argument("--format", metavar="EXT",
                   help="format of the audio written to standard output (-o -), by its extension: wav, flac, ogg, "
                        "mp3... (default: the input's)")
    g.add_argument("--subtype", metavar="NAME",
                   help="output sample format, e.g. PCM_16, PCM_24, FLOAT (default: the input's, or the deepest "
                        "the output format holds: float WAV to FLAC is 24-bit)")
    exists = g.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    exists.add_argument("--skip-existing", action="store_true",
                        help="leave inputs whose output already exists alone (resume an interrupted batch)")
    g.add_argument("--recursive", "-r", action="store_true",
                   help="also process the audio files in sub-folders, mirroring them under -o")
    g.add_argument("--atten-lim", type=attenuation_db, metavar="DB",
                   help="denoiser strength: attenuate no band by more than DB dB (default: the model's own)")
    g.add_argument("--linked", action="store_true",
                   help="stereo and wider files: one denoiser gain for all channels, so the image stays where it was "
                        "(default: each channel on its own)")
    g.add_argument("--wet", type=unit_fraction, default=1.0, metavar="X",
                   help="dry/wet mix, 0 (input) .. 1 (processed) (default: %(default)s)")
    g.add_argument("--jobs", "-j", type=positive_int, default=1, metavar="N",
                   help="files processed at a time, by worker processes (default: %(default)s)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary lines")


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:  # a name too long for the file system: said in one sentence where it is used
        return False


def _split_output(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """``IN OUT`` as an input and its output: when OUT does not exist yet, or is a file rtconv wrote
    (the same command run again must say the output exists, not process its own output as an input).
    In a format that keeps no mark (AU, W64...) OUT is known by its name, the input's output name
    (``x.au x-denoised.au``); another name there is read as a second input, as before."""
    from ..audio import named_as_output, written_by_rtconv

    inputs, output = list(args.inputs), args.output
    if output is None and len(inputs) == 2 and _exists(Path(inputs[0])):
        first, second = Path(inputs[0]), Path(inputs[1])
        if not _exists(second) or (second.is_file() and (
                written_by_rtconv(second) or (first.is_file() and named_as_output(second, {first.name})))):
            output = inputs.pop()
    return inputs, output


def _too_long(e: OSError) -> str:
    name = os.fsdecode(e.filename) if e.filename is not None else "a file name"
    short = name if len(name) <= 60 else f"{name[:28]}...{name[-28:]}"
    return (f"the name {short!r} ({len(Path(name).name)} characters) is too long for this file system; "
            "rename the input or give a shorter output name with -o.")


def run(args: argparse.Namespace) -> int:
    console = _Console(args.quiet)
    stops = (signal.SIGINT, *STOP_SIGNALS)
    old = _catch(stops)
    batch: list[_Batch] = []  # filled once the files are known, for the stop message
    try:
        return _run(args, console, batch)
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        from ..errors import AudioFileError

        raise AudioFileError(_too_long(e)) from None
    except KeyboardInterrupt as e:
        _catch(stops, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        signum = e.signum if isinstance(e, _Stop) else signal.SIGINT
        name = _signal_name(signum)
        done = f" with {batch[0].finished} of {len(batch[0].jobs)} file(s) done" if batch else ""
        console.say(f"rtconv process: stopped by {name} ({_WHY.get(name, 'a signal')}){done}; "
                    "no partial output was left.", err=True)
        return 128 + signum
    finally:
        _restore(old)


def _run(args: argparse.Namespace, console: _Console, batches: list) -> int:
    from ..errors import AudioFileError
    from . import pipes

    if pipes.wanted(args):
        return pipes.run(args, console, lambda a: _load_checked(a)[0],
                         lambda a: _process_kw(a, plan_workers(1, 1, a.threads)[1]))
    pipes.refuse_format(args)
    inputs, output = _split_output(args)
    made: list[Path] = []
    if output is not None and output.endswith(("/", os.sep)) and not Path(output).is_dir():
        if _exists(Path(output)):
            raise AudioFileError(f"output folder {output!r} is a file, not a folder; give the output file "
                                 "without the trailing slash, or another folder.")
        made = _make_dirs(Path(output))  # named as a folder: made like the folders of an output file
    try:
        return _run_in(args, console, batches, inputs, output)
    finally:
        _remove_empty(made)  # nothing was written into it (no files found, every file failed)


def _load_checked(args: argparse.Namespace):
    """The model of ``--model`` with the command line's switches set, and its path; a model without a strength or
    a mask, or one that must not run backwards, is refused here in one sentence, before any file."""
    from ..checkpoint import load, resolve

    model_path = str(resolve(args.model))
    model = load(model_path)
    _switch(model, args.atten_lim, args.linked)
    if args.both_directions:
        from ..files import check_both_directions

        check_both_directions(model, model.metadata.get("name") or Path(model_path).stem, not args.keep_latency)
    return model, model_path


def _process_kw(args: argparse.Namespace, threads: int | None) -> dict:
    """The keywords of :func:`rtconv.files.process_file` the command line sets."""
    return dict(block_size=args.block_size, offline=args.offline, align=not args.keep_latency,
                subtype=args.subtype, overwrite=args.overwrite, threads=threads, wet=args.wet,
                attenuation_limit_db="model" if args.atten_lim is None else args.atten_lim, prime=args.prime,
                dc_block=args.dc_block, both_directions=args.both_directions, level_guard=args.level_guard)


def _run_in(args: argparse.Namespace, console: _Console, batches: list, inputs: list[str], output: str | None) -> int:
    from ..errors import AudioFileError
    from ..files import audio_files

    out_dir = output is not None and Path(output).is_dir()
    found = audio_files(inputs, recursive=args.recursive, exclude=[output] if out_dir else [])
    def few(paths: list[Path]) -> str:
        return ", ".join(p.name for p in paths[:3]) + (", ..." if len(paths) > 3 else "")

    if found.written:
        console.note(f"skipped {len(found.written)} file(s) that rtconv wrote ({few(found.written)}); "
                     "name them explicitly to process them again")
    if found.named:
        console.note(f"skipped {len(found.named)} file(s) named as rtconv's outputs beside their inputs "
                     f"({few(found.named)}), in formats that keep no tag to tell; name them explicitly to process them")
    if found.folders:
        console.note(f"skipped {len(found.folders)} sub-folder(s) ({found.folders[0]}"
                     f"{', ...' if len(found.folders) > 1 else ''}); pass --recursive to include them")
    if not found.files:
        raise AudioFileError(f"no audio files found in {', '.join(map(repr, inputs))}"
                             + ("; sub-folders were not searched, pass --recursive to include them."
                                if found.folders else "."))
    if len(found.files) > 1 and output is not None and not out_dir:
        raise AudioFileError(
            f"{len(found.files)} inputs need an existing output folder, but {output!r} is not one; create it first."
        )
    model, model_path = _load_checked(args)  # once, here: a bad model fails once, before any file
    switches = (args.atten_lim, args.linked)
    jobs, existing = _plan(found.files, output, out_dir, model, args.skip_existing)
    if existing:
        console.note(f"skipped {len(existing)} file(s) whose output already exists (--skip-existing)")
    if not jobs:
        return 0
    workers, threads = plan_workers(args.jobs, len(jobs), args.threads)
    if args.jobs > workers + 1 and len(jobs) > workers + 1:
        console.note(f"--jobs {args.jobs}: {workers + 1} process(es) at a time, one per CPU core")
    if args.threads and threads < args.threads:
        console.note(f"--threads {args.threads}: {threads} per process, so that {workers + 1} process(es) "
                     f"fit on {cpu_cores()} CPU core(s)")
    kw = _process_kw(args, threads)
    batch = _Batch(jobs, console)
    batches.append(batch)
    made = _make_folders(jobs)
    t0 = time.perf_counter()
    try:
        if not args.quiet and _stderr_tty():
            batch.show_progress()
        batch.run(model, kw, workers, model_path, switches)
    finally:
        batch.close()
        _remove_empty(made)
    wall = time.perf_counter() - t0
    if len(jobs) > 1 and not args.quiet and batch.finished:
        console.say(f"{batch.finished} file(s), {batch.audio_s:.1f} s of audio in {wall:.1f} s "
                    f"({batch.audio_s / wall:.0f}x real time"
                    + (f", {workers + 1} processes x {threads} thread(s))" if batch.workers else ")"))
    if batch.failed and len(jobs) > 1:
        console.say(f"rtconv process: {batch.failed} of {len(jobs)} file(s) failed", err=True)
    return 1 if batch.failed else 0


def _plan(files, output, out_dir: bool, model, skip_existing: bool) -> tuple[list[_Job], list[Path]]:
    """Each input's output path (mirroring sub-folders under an output folder) and audio length."""
    import soundfile as sf

    from ..audio import quiet_decoders
    from ..files import output_path

    jobs: list[_Job] = []
    existing: list[Path] = []
    for src, sub in files:
        dest = output_path(src, output, model)
        if out_dir and sub != Path("."):
            dest = dest.parent / sub / dest.name
        if skip_existing and dest.exists():
            existing.append(dest)
            continue
        try:
            with quiet_decoders():  # libmpg123 says what it finds wrong with an MP3 itself: the reader says it once
                info = sf.info(str(src))
            rate = max(0, info.samplerate)
            seconds = info.frames / rate if rate and info.frames > 0 else 0.0
        except Exception:  # unreadable: process_file says why, in one sentence
            rate, seconds = 0, 0.0
        jobs.append(_Job(len(jobs), src, dest, seconds, rate))
    return jobs, existing


def _make_folders(jobs: list[_Job]) -> list[Path]:
    """Create the mirrored output sub-folders that are missing; return them, deepest first."""
    from ..errors import AudioFileError

    made: list[Path] = []
    for job in jobs:
        try:
            made[:0] = _make_dirs(job.output.parent)
        except AudioFileError:
            _remove_empty(made)
            raise
    return made


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those made, deepest first."""
    from ..errors import AudioFileError

    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except OSError as e:
            _remove_empty(made[::-1])
            raise AudioFileError(f"cannot create output folder {str(d)!r}: {e.strerror or e}; "
                                 "choose a writable output folder with -o.") from None
        made.append(d)
    return made[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Remove output sub-folders this run created and left empty (every file in them failed)."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            pass


def _stderr_tty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
