"""``rtconv compare``: your recordings through rtconv and its peers, side by side, to hear and to score."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .common import attenuation_db

HELP = "run your own recordings through rtconv, RNNoise, noisereduce and any command; write each output and score them"

DESCRIPTION = """\
Run each recording through the shipped denoiser (or --model) and its peers,
write every system's output beside the others for listening, and print a table
per recording and, for several, their means.

Systems: rtconv (exactly as `rtconv process` runs it, with its --atten-lim and
--both-directions when given), each --baseline checkpoint, RNNoise and
noisereduce (the bench extra: pip install 'rtconv[bench]'; a missing one is
left out with a note), and each --command: any program that reads a WAV file
and writes one, such as DeepFilterNet's deep-filter, ffmpeg's afftdn or sox's
noisered. In its words {input} is the recording (mono, 16-bit WAV at the
file's rate), {output} the file it must write (any rate and format soundfile
reads; resampled back), or {outdir} an empty folder where it writes one file,
and {rate} the rate; it runs without a shell. Its delay is found by
cross-correlation with the input (up to 0.5 s), removed, and shown in the 'lag
ms' column.

Recordings are compared in mono (channels averaged; a note says so), up to 10
minutes each. Outputs: x.wav gives the folder x-compare/ beside it (or DIR/x/
with -o DIR) holding noisy.wav (the mono input) and one 32-bit float WAV per
system, named after it.

Scores. With --clean (the same recording without the noise: one file, or a
folder holding each input's clean file under the input's name): SI-SDR and its
improvement over the input (dB), wide-band PESQ (over parts of at most 30 s,
averaged) and STOI (with the pesq and pystoi packages). Always, since most
recordings have no clean twin: 'loud' and 'quiet', the output's energy minus
the input's over the loudest and the quietest 20 % of the input's 20 ms frames
(mostly voice, and mostly the noise between words: loud near 0 keeps the
voice, quiet lower is cleaner); '>8k', the loud frames' energy above 8 kHz,
output minus input (strongly negative: the voice is dulled); latency, what
each system would add live at its own rate ('offline': it needs the whole
file; a device at another rate adds a resampler's: rtconv's live resampler
0.11 ms at 44.1 kHz, 0.25 ms at 16 kHz, 0.63 ms at 8 kHz); RTF, each
system's time on this machine over the recording's duration. These proxies are
no verdict on their own: listen to the files.

examples:
  rtconv compare talk.wav
  rtconv compare noisy/ --clean clean/ -o compared/ --json scores.json
  rtconv compare talk.wav --command 'deepfilter=deep-filter {input} -o {outdir}'
  rtconv compare talk.wav --command 'afftdn=ffmpeg -y -i {input} -af afftdn {output}'
  rtconv compare talk.wav --baseline my-denoiser.safetensors --no-noisereduce
  rtconv compare talk.wav --blind     # listen to A.wav, B.wav, ... first; then read .key.txt
"""

_COLUMNS = [  # (key, heading, format), in table order; the reference columns only with --clean
    ("si_sdr", "SI-SDR", "{:+.2f}"), ("si_sdr_i", "SI-SDRi", "{:+.2f}"), ("pesq", "PESQ", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"), ("loud_db", "loud dB", "{:+.2f}"), ("quiet_db", "quiet dB", "{:+.2f}"),
    ("hf_db", ">8k dB", "{:+.2f}"), ("lag_ms", "lag ms", "{:.1f}"), ("latency_ms", "latency ms", "{:.1f}"),
    ("rtf", "RTF", "{:.3f}"),
]
_REFERENCE = ("si_sdr", "si_sdr_i", "pesq", "stoi")
_BLIND_LETTERS = [chr(ord("A") + i) for i in range(26)]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="NOISY", help="recordings or folders of them (not recursive)")
    parser.add_argument("--clean", metavar="PATH",
                        help="the clean reference: a file (one input) or a folder with one per input, same name")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="write x.wav's outputs to DIR/x/ (default: x-compare/ beside x.wav)")
    parser.add_argument("--model", "-m", metavar="PATH",
                        help="the rtconv denoiser, a path or a shipped model's name (default: the shipped one)")
    parser.add_argument("--atten-lim", type=attenuation_db, metavar="DB",
                        help="rtconv's strength, as for rtconv process: attenuate no band by more than DB dB")
    parser.add_argument("--both-directions", action="store_true",
                        help="run rtconv as rtconv process --both-directions (forwards and backwards, averaged)")
    parser.add_argument("--baseline", action="append", default=[], metavar="PATH",
                        help="another rtconv checkpoint as a row named after its file; repeatable")
    parser.add_argument("--command", dest="commands", action="append", default=[], metavar="NAME=COMMAND",
                        help="a program as a row: words with {input} and {output} or {outdir} (and {rate}); repeatable")
    parser.add_argument("--no-rnnoise", dest="rnnoise", action="store_false", help="leave RNNoise out")
    parser.add_argument("--no-noisereduce", dest="noisereduce", action="store_false", help="leave noisereduce out")
    parser.add_argument("--scores-only", action="store_true", help="print the scores; write no audio")
    parser.add_argument("--blind", action="store_true",
                        help="name the outputs A.wav, B.wav, ... in a random order (the input among them), for "
                             "listening without knowing which is which; the key is in .key.txt beside them")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier comparison")
    parser.add_argument("--json", metavar="PATH", help="also write every score as JSON")


def _outputs(inputs: list[Path], folder: str | None) -> dict[Path, Path]:
    from ..errors import ConfigError

    out = {}
    seen: dict[Path, Path] = {}
    for p in inputs:
        d = Path(folder) / p.stem if folder else p.with_name(f"{p.stem}-compare")
        key = d.resolve()
        if key in seen:
            raise ConfigError(f"{str(seen[key])!r} and {str(p)!r} would both write to {str(d)!r}; compare them "
                              "in two runs, or rename one.")
        seen[key] = p
        out[p] = d
    return out


def _check_writable(folders: dict[Path, Path], names: list[str], overwrite: bool) -> None:
    from ..errors import AudioFileError

    for p, d in folders.items():
        if d.exists() and not d.is_dir():
            raise AudioFileError(f"output folder {str(d)!r} for {str(p)!r} is a file; move it or choose -o DIR.")
        there = [n for n in names if (d / f"{n}.wav").exists()]
        if there and not overwrite:
            raise AudioFileError(f"{str(d / (there[0] + '.wav'))!r} exists from an earlier comparison; pass "
                                 "--overwrite to replace it, or choose -o DIR.")


def _model(path):
    from .. import checkpoint
    from ..errors import ConfigError

    p = checkpoint.resolve(path)
    model = checkpoint.load(p)
    if model.in_channels != 1 or model.out_channels != 1:
        raise ConfigError(f"model {str(p)!r} has {model.in_channels} input(s) and {model.out_channels} output(s); "
                          "rtconv compare takes a one-in, one-out model such as a denoiser.")
    return model


def _latencies(model, baselines: dict, both_directions: bool) -> dict:
    """Each system's algorithmic latency live, in ms (``"offline"``: it needs the whole file); a command's is not
    known (its 'lag ms' is the delay of its file output, not what it would add live)."""
    from ..bench.heldout import RNNOISE_LATENCY_MS

    def ms(m):
        return 1000 * m.latency / m.sample_rate if m.sample_rate else None

    return {"rtconv": "offline" if both_directions else ms(model), **{n: ms(m) for n, m in baselines.items()},
            "rnnoise": RNNOISE_LATENCY_MS, "noisereduce": "offline"}


def _cell(value, fmt: str) -> str:
    if isinstance(value, str):
        return value
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)


def _table(rows: dict[str, dict], keys: list[tuple[str, str, str]]) -> str:
    head = ["system"] + [h for _, h, _ in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        lines.append("| " + " | ".join([name] + [_cell(r.get(k), f) for k, _, f in keys]) + " |")
    return "\n".join(lines)


def _blind_names(names: list[str]) -> dict[str, str]:
    """System -> ``A``, ``B``, ... in a random order (not reproducible: a listener must not learn it)."""
    import random
    import string

    letters = list(string.ascii_uppercase[: len(names)])
    random.SystemRandom().shuffle(letters)
    return dict(zip(names, letters, strict=True))


def _write(folder: Path, name: str, y, rate: int, blind: bool = False) -> Path:
    from .. import __version__
    from ..audio import SOFTWARE_TAG, AtomicWriter

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wav"
    # tagged as rtconv's output, so that `rtconv process` over the folder later leaves it alone (a blind file's
    # tag does not say which system made it)
    said = "rtconv compare" + ("" if blind else f": {name}")
    with AtomicWriter(path, rate, 1, "WAV", "FLOAT", tags={"software": f"{SOFTWARE_TAG} {__version__}, {said}"}) as w:
        w.write(y[:, None])
        w.commit()
    return path


def run(args) -> int:
    from .. import compare
    from ..bench.denoise import _column
    from ..errors import AudioFileError, ConfigError, RtconvError
    from ..files import audio_files

    commands = [compare.parse_command(c) for c in args.commands]
    if "-" in args.inputs:
        raise ConfigError("rtconv compare reads files, not standard input: save it to a file first (e.g. ffmpeg -i "
                          "IN talk.wav) and compare that.")
    missing = [p for p in args.inputs if not Path(p).exists()]
    if missing:  # before the models load
        raise AudioFileError(f"input {missing[0]!r} does not exist; check the path.")
    found = audio_files(args.inputs)
    inputs = [p for p, _ in found.files]
    if not inputs:
        raise ConfigError(f"no audio files in {', '.join(map(repr, args.inputs))}; give recordings or "
                          "folders that hold them.")
    refs = compare.pair_references(inputs, Path(args.clean)) if args.clean else {}
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise AudioFileError(f"cannot write --json {args.json!r}: its folder does not exist; create it or "
                             "choose another path.")
    baselines = {_column(b): _model(b) for b in args.baseline}
    model = _model(args.model)
    if args.atten_lim is not None:
        from ..denoiser import set_attenuation_limit

        set_attenuation_limit(model, args.atten_lim)
    latency = _latencies(model, baselines, args.both_directions)
    systems, notes = compare.systems(model, baselines, args.rnnoise, args.noisereduce, commands,
                                     both_directions=args.both_directions)
    folders = {} if args.scores_only else _outputs(inputs, args.output)
    if len(systems) > 26 and args.blind:
        raise ConfigError(f"--blind names the outputs A to Z, and this comparison has {len(systems)}; leave some "
                          "systems out.")
    if folders:
        _check_writable(folders, _BLIND_LETTERS[: len(systems)] if args.blind else list(systems), args.overwrite)
    for n in notes:
        print(f"rtconv compare: note: {n}", file=sys.stderr)
    how = [f"--atten-lim {args.atten_lim:g}"] if args.atten_lim is not None else []
    how += ["--both-directions"] if args.both_directions else []
    if how:
        print(f"rtconv compare: rtconv runs with {' '.join(how)}", file=sys.stderr)
    keys = [c for c in _COLUMNS if (args.clean or c[0] not in _REFERENCE) and (commands or c[0] != "lag_ms")]
    rows: list[dict] = []
    failed = 0
    for p in inputs:
        try:
            x, rate, channels, warnings = compare.read_mono(p)
            clean, said = compare.reference_for(x, rate, refs[p], p) if p in refs else (None, [])
        except RtconvError as e:
            print(f"rtconv compare: error: {e}", file=sys.stderr)
            failed += 1
            continue
        if channels > 1:
            said.append(f"{channels} channels averaged to mono")
        for w in warnings + said:
            print(f"rtconv compare: note: {p}: {w}", file=sys.stderr)
        per: dict[str, dict] = {}
        outs = {}
        measure = compare.Measure(x, rate, clean)
        print(f"rtconv compare: {p.name} ({len(x) / rate:.1f} s):", end="", file=sys.stderr, flush=True)
        for name, f in systems.items():
            if name != "noisy":
                print(f" {name}", end="", file=sys.stderr, flush=True)
            try:
                y, took = compare.run_system(f, x, rate)
            except RtconvError as e:
                print(f"\nrtconv compare: error: {p}: {e}", file=sys.stderr)
                failed += 1
                continue
            r = {"file": str(p), "system": name, **measure(y),
                 "latency_ms": latency.get(name), "rtf": took / (len(x) / rate)}
            if isinstance(f, compare.Command):
                r["lag_ms"] = 1000 * f.lag / rate
            per[name] = r
            outs[name] = y
        print(file=sys.stderr)
        rows.extend(per.values())
        written = ""
        if folders and args.blind:
            letters = _blind_names(list(outs))
            for name, y in outs.items():
                _write(folders[p], letters[name], y, rate, blind=True)
            key = folders[p] / ".key.txt"
            key.write_text("".join(f"{letters[n]}.wav\t{n}\n" for n in sorted(outs, key=letters.get)))
            written = f"; outputs A-{max(letters.values())}.wav in {folders[p]}/, in a random order (the key: {key})"
        elif folders:
            for name, y in outs.items():
                _write(folders[p], name, y, rate)
            written = f"; outputs in {folders[p]}/"
        ref = f", reference {refs[p]}" if p in refs else ", no reference"
        print(f"\n{p} ({len(x) / rate:.2f} s at {rate} Hz{ref}{written})\n")
        print(_table(per, keys))
    if len(inputs) > 1 and rows:
        means = compare.mean_rows(rows, [k for k, _, _ in keys])
        print(f"\nmean over {len({r['file'] for r in rows})} recording(s)\n")
        print(_table(means, keys))
    if args.json:
        finite = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                  for r in rows]  # JSON has no NaN: a measure that could not be taken is null
        Path(args.json).write_text(json.dumps({"systems": list(systems), "notes": notes, "rows": finite},
                                              indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failed else 0
