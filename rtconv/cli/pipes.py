"""rtconv in a pipeline: audio from standard input (an INPUT of ``-``: ``rtconv process``, ``rtconv vad``) and to
standard output (``rtconv process -o -``).

libsndfile seeks in what it reads (a header's length, an MP3's frames) and in what it writes (a WAV header
is finished at the end), so neither end of a pipe can be streamed through it.  Standard input is copied
to a temporary file first and read from there like any file; the output is written to a temporary file
and copied to standard output only once it is complete, so a program reading the pipe gets the whole
file or nothing.  Each lives in a folder of its own under ``$TMPDIR`` (the system's temporary folder),
removed at the end whatever happens.  Everything rtconv says goes to standard error when the audio goes to
standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import AudioFileError, ConfigError, RtconvError

#: The name that means standard input as an INPUT and standard output as the OUTPUT.
STDIO = "-"
_IN, _OUT = "standard input", "standard output"
_EXAMPLE = "`ffmpeg -i talk.mp4 -f wav - | rtconv process - -o talk.wav`"


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line names standard input or standard output."""
    return STDIO in args.inputs or args.output == STDIO


def refuse_format(args: argparse.Namespace) -> None:
    """Refuse ``--format`` where the output is a file (its extension says its format), in one sentence."""
    if args.format is not None:
        raise ConfigError(f"--format {args.format} sets the format of audio written to {_OUT} (-o -); an output "
                          "file's format follows its extension, so leave --format out.")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _ends(args: argparse.Namespace) -> tuple[str, str | None]:
    """The one input and the output (``-`` for standard output; None: beside the input), refused in one sentence
    when ``-`` is one of several inputs or standard output would get several files."""
    inputs, output = list(args.inputs), args.output
    if output is None and len(inputs) == 2 and (inputs[0] == STDIO or inputs[1] == STDIO):
        output = inputs.pop()  # `- out.wav`, `in.wav -`, `- -`
    if len(inputs) > 1:
        if STDIO in inputs:
            raise ConfigError(f"'-' ({_IN}) is read as the only input; process it alone, or name files and "
                              "folders without '-'.")
        raise ConfigError(f"'-o -' ({_OUT}) takes one file's audio and {len(inputs)} inputs were given; give "
                          "one input, or an output folder with -o for several.")
    if output is None and inputs[0] == STDIO:
        output = STDIO  # a filter in a pipe: `... | rtconv process - | ...`
    if output != STDIO:
        refuse_format(args)
    if inputs[0] != STDIO and Path(inputs[0]).is_dir():
        raise ConfigError(f"'-o -' ({_OUT}) takes one file's audio and {inputs[0]!r} is a folder; name one file, "
                          "or give an output folder with -o.")
    return inputs[0], output


def refuse_terminal_input() -> None:
    """Refuse, in one sentence, to wait for audio typed at a terminal (an INPUT of ``-`` with nothing piped in)."""
    if _isatty(sys.stdin):
        raise AudioFileError(f"{_IN} is a terminal, not audio; pipe a file in ({_EXAMPLE}, or < in.wav) "
                             "or name the input file.")


def _spool(folder: Path) -> Path:
    """Standard input copied into ``folder``, named with its format's extension where libsndfile knows it."""
    import soundfile as sf

    from ..audio import quiet_decoders

    refuse_terminal_input()
    raw = folder / "stdin"
    try:
        with open(raw, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise AudioFileError(f"cannot copy {_IN} to the temporary folder {str(folder.parent)!r}: "
                                 f"{os.strerror(errno.ENOSPC)}; point TMPDIR at a disk with room.") from None
        raise AudioFileError(f"cannot read {_IN}: {e.strerror or e}; nothing was written.") from None
    if raw.stat().st_size == 0:
        raise AudioFileError(f"{_IN} was empty: there is no audio to process; pipe a file in, e.g. {_EXAMPLE}.")
    try:
        with quiet_decoders():
            fmt = sf.info(str(raw)).format
    except Exception:  # noqa: BLE001 - not audio libsndfile knows: the reader says so in one sentence
        return raw
    return raw.rename(raw.with_suffix("." + fmt.lower()))


@contextlib.contextmanager
def standard_input() -> Iterator[Path]:
    """Standard input as a file (for a command whose INPUT is ``-``): its copy in a temporary folder, removed
    afterwards; an rtconv error raised meanwhile names it "standard input" rather than the copy."""
    with tempfile.TemporaryDirectory(prefix="rtconv-") as tmp:
        src = _spool(Path(tmp))
        try:
            yield src
        except RtconvError as e:
            raise type(e)(_named(e, src, True, src, False)) from None


def _format(args: argparse.Namespace, src: Path) -> str:
    """The extension of the audio written to standard output: ``--format``, else the input's, else WAV."""
    from ..audio import AUDIO_EXTENSIONS

    ext = (args.format or src.suffix[1:] or "wav").lower().lstrip(".")
    if ext not in AUDIO_EXTENSIONS:
        raise ConfigError(f"--format {ext!r} is no audio format libsndfile writes; use wav, flac, ogg, mp3 or "
                          "another extension of `rtconv process --help`'s formats.")
    return ext


def _named(e: RtconvError, src: Path, stdin: bool, dest: Path, stdout: bool) -> str:
    """``e``'s sentence with the temporary files it names called what they stand for."""
    text = str(e)
    if stdin:
        text = text.replace(f"input file {str(src)!r}", _IN).replace(repr(str(src)), _IN).replace(str(src), _IN)
    if stdout:
        text = text.replace(repr(str(dest)), _OUT).replace(str(dest), _OUT)
    return text


def run(args: argparse.Namespace, console, load_model, process_kw) -> int:
    """``rtconv process`` with ``-`` as its input or output (see the module docstring).

    ``load_model(args)`` gives the checked model; ``process_kw(args)`` the keywords of
    :func:`rtconv.files.process_file` (both from :mod:`rtconv.cli.process`, shared with files).
    """
    from ..files import output_path, process_file

    source, output = _ends(args)
    stdin, stdout = source == STDIO, output == STDIO
    if stdout and _isatty(sys.stdout):
        raise AudioFileError(f"{_OUT} is a terminal, where audio would only garble the screen; redirect it "
                             "(> out.wav, or | another program) or name an output file with -o.")
    if stdin:  # before the model loads: the user is waiting at a terminal
        refuse_terminal_input()
    model = load_model(args)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(standard_input()) if stdin else Path(source)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rtconv-")))
        if stdout:
            dest = folder / f"stdout.{_format(args, src)}"
        else:
            dest = output_path(Path(src.name) if stdin else src, output, model)
        show = None if not args.quiet else False  # a bar on a terminal's standard error, as for files
        try:
            s = process_file(src, dest, model, progress=show, label=_IN if stdin else None, **process_kw(args))
        except RtconvError as e:
            raise type(e)(_named(e, src, False, dest, stdout)) from None
        if stdout:
            with open(dest, "rb") as f:
                sys.stdout.flush()
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
                sys.stdout.buffer.flush()
    s = dataclasses.replace(s, input=Path(_IN) if stdin else s.input, output=Path(_OUT) if stdout else s.output)
    name = s.input.name
    for w in s.warnings:
        console.say(f"rtconv process: warning: {name}: {w}", err=True)
    if not args.quiet:
        console.say(s.line(), err=stdout)
        for n in s.notes:
            console.say(f"rtconv process: note: {name}: {n}", err=True)
    return 0
