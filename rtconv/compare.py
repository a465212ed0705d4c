"""Denoisers side by side on a user's own recordings: rtconv beside RNNoise, noisereduce and any command.

``rtconv bench denoise`` judges the shipped model on the project's held-out
test set; this module answers the question users ask of their own audio:
what does each denoiser make of *this* recording, and how do they score?

A *system* is ``f(x, rate) -> y``: mono float32 audio in, the same length
out, aligned with the input (:func:`systems`):

``rtconv``
    The model exactly as ``rtconv process`` runs it
    (:func:`rtconv.data.scoring.model_system`); ``--baseline`` checkpoints
    likewise, each under its file's name.
``rnnoise``, ``noisereduce``
    The peers of ``rtconv bench denoise`` (the ``bench`` extra): RNNoise at
    48 kHz through soxr with its output lag removed, noisereduce's
    non-stationary gating over the whole file.
a :class:`Command`
    Any program that reads a WAV file and writes one (DeepFilterNet's
    ``deep-filter``, ffmpeg's ``afftdn``/``arnndn``, sox's ``noisered``):
    its output is resampled back to the input's rate and its delay, found by
    cross-correlation with the input (up to :data:`MAX_COMMAND_LAG_S`), is
    removed and reported.

Measures (:class:`Measure`), per file and system:

with a clean reference (the same recording without the noise)
    ``si_sdr`` of the output and ``si_sdr_i`` (its improvement over the
    input), in dB; wide-band ``pesq`` (over parts of at most
    :data:`PESQ_SEGMENT_S`, averaged) and ``stoi`` at 16 kHz when the
    ``pesq`` and ``pystoi`` packages are installed.
always (no reference needed; proxies, named for what they measure)
    ``loud_db``: output minus input energy over the loudest
    :data:`FRAME_SHARE` of the input's 20 ms frames, mostly speech: near 0
    when a system keeps the voice.  ``quiet_db``: the same over the quietest
    share, mostly the noise between words: lower is cleaner.  ``hf_db``: the
    loud frames' energy above 8 kHz, output minus input (files above 16 kHz):
    strongly negative when a system dulls the voice.  ``rtf``: the system's
    time on this machine over the file's duration.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .audio import zero_nonfinite
from .errors import AudioFileError, ConfigError

__all__ = ["Command", "parse_command", "systems", "Measure", "read_mono", "pair_references", "MAX_SECONDS",
           "MIN_SECONDS", "FRAME_SHARE", "MAX_COMMAND_LAG_S", "PLACEHOLDERS"]

#: The longest recording compared: each system's output is held in memory beside it (a 5-minute recording
#: peaked at 0.9 GB with rtconv and RNNoise, 1.1 GB with noisereduce too)
MAX_SECONDS = 10 * 60.0
#: The shortest recording compared: the measures take 20 ms frames by the dozen, PESQ a quarter second of speech
MIN_SECONDS = 0.5
#: The share of the input's 20 ms frames taken as its loudest (mostly speech) and its quietest (mostly noise)
FRAME_SHARE = 0.2
#: The most delay a command's output may have behind its input to be found and removed
MAX_COMMAND_LAG_S = 0.5
#: What a command's words may hold: the input WAV rtconv writes, the output file it reads (or an empty folder
#: where the program writes one audio file, for programs that take an output folder), the input's rate
PLACEHOLDERS = ("{input}", "{output}", "{outdir}", "{rate}")
#: Names the built-in systems take; a command may not take one
BUILT_IN = ("noisy", "rtconv", "rnnoise", "noisereduce")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HF_HZ = 8000.0

System = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Command:
    """An external denoiser run as a program: ``words`` with :data:`PLACEHOLDERS` filled per file.

    Calling it writes the input as a 16-bit WAV in a temporary folder, runs the
    program (no shell), reads what it wrote at ``{output}`` (or the one audio
    file it wrote in ``{outdir}``), resamples that to the input's rate, and
    removes its delay; :attr:`lag` holds the delay in samples found on the
    last call.
    """

    name: str
    words: list[str]
    lag: int = field(default=0, init=False)

    def __call__(self, x: np.ndarray, rate: int) -> np.ndarray:
        import soundfile as sf
        import soxr

        from .bench.heldout import _shift, measure_lag

        with tempfile.TemporaryDirectory(prefix="rtconv-compare-") as tmp:
            src, dst, folder = Path(tmp) / "input.wav", Path(tmp) / "output.wav", Path(tmp) / "out"
            folder.mkdir()
            sf.write(src, np.clip(x, -1.0, 1.0), rate, subtype="PCM_16")
            fill = {"{input}": str(src), "{output}": str(dst), "{outdir}": str(folder), "{rate}": str(rate)}
            argv = [_fill(w, fill) for w in self.words]
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      errors="replace")
            except OSError as e:
                raise ConfigError(f"command {self.name!r} could not start {argv[0]!r} ({e.strerror}); check that "
                                  "the program is installed and on PATH.") from None
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
                raise ConfigError(f"command {self.name!r} failed with exit status {done.returncode} "
                                  f"({last.strip()[:200]}); try it by hand on a WAV file: {shlex.join(self.words)}")
            dst = self._written(dst, folder)
            try:
                y, r = sf.read(dst, dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as e:
                raise ConfigError(f"command {self.name!r} wrote an output soundfile cannot read ({e}); have it "
                                  "write a WAV file.") from None
        y = y.mean(axis=1)
        if r != rate:
            y = soxr.resample(y, r, rate, quality="HQ").astype(np.float32)
        self.lag = measure_lag(x, y, max_lag=int(MAX_COMMAND_LAG_S * rate)) if len(y) and np.any(x) else 0
        return _shift(y, self.lag, len(x)).astype(np.float32)

    def _written(self, dst: Path, folder: Path) -> Path:
        """The file the program wrote: ``dst`` ({output}), else the one file in ``folder`` ({outdir})."""
        if dst.is_file() and dst.stat().st_size:
            return dst
        from .audio import AUDIO_EXTENSIONS

        there = sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size
                       and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)  # a log beside it is no output
        if len(there) == 1:
            return there[0]
        said = f"{len(there)} audio files in {{outdir}}" if there else "no audio file"
        raise ConfigError(f"command {self.name!r} exited having written {said}; put {{output}} where the program "
                          "takes its output file, or {outdir} where it takes an output folder (one file in it).")


def _fill(word: str, fill: dict[str, str]) -> str:
    for k, v in fill.items():
        word = word.replace(k, v)
    return word


def parse_command(text: str) -> Command:
    """``NAME=COMMAND`` -> :class:`Command`; one sentence for what is wrong with it."""
    name, sep, cmd = text.partition("=")
    name = name.strip()
    if not sep or not cmd.strip():
        raise ConfigError(f"--command {text!r} is not NAME=COMMAND; write e.g. --command "
                          "'lowpass=sox {input} {output} lowpass 4000'.")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"--command name {name!r} must be letters, digits, '.', '_' or '-' (it names the "
                          "output file and the table's row), e.g. 'deepfilter'.")
    if name in BUILT_IN:
        raise ConfigError(f"--command name {name!r} is a built-in system's; choose another name.")
    try:
        words = shlex.split(cmd)
    except ValueError as e:
        raise ConfigError(f"--command {name!r}: cannot split {cmd!r} into words ({e}); check its quotes.") from None
    joined = " ".join(words)
    if "{input}" not in joined or ("{output}" not in joined and "{outdir}" not in joined):
        missing = "{input}" if "{input}" not in joined else "{output} or {outdir}"
        raise ConfigError(f"--command {name!r} has no {missing}: rtconv writes the recording to {{input}} and "
                          "reads the result from {output} (a file) or {outdir} (a folder), e.g. 'sox {input} "
                          "{output} noisered profile.txt 0.2' or 'deep-filter {input} -o {outdir}'.")
    return Command(name, words)


def systems(model=None, baselines: dict | None = None, rnnoise: bool = True, noisereduce: bool = True,
            commands: Sequence[Command] = (), both_directions: bool = False) -> tuple[dict[str, System], list[str]]:
    """The systems to compare, in table order, and a note for each peer that is not installed.

    ``model`` and the ``baselines`` (column name -> loaded model) run as
    ``rtconv process`` runs them (``model`` with ``--both-directions`` when
    ``both_directions``); ``rnnoise``/``noisereduce`` ask for the peers
    (skipped with a note when their package is missing); ``commands`` follow.
    """
    import importlib.util

    from .data import scoring

    notes = []
    if rnnoise and importlib.util.find_spec("pyrnnoise") is None:
        notes.append("RNNoise is not installed (pip install pyrnnoise, or rtconv[bench]); its row is left out.")
        rnnoise = False
    if noisereduce and importlib.util.find_spec("noisereduce") is None:
        notes.append("noisereduce is not installed (pip install noisereduce, or rtconv[bench]); its row is left "
                     "out.")
        noisereduce = False
    peers = scoring.systems(None, rnnoise=rnnoise, noisereduce=noisereduce)
    out: dict[str, System] = {"noisy": peers.pop("noisy")}
    if model is not None:
        if both_directions:
            from .files.both import check_both_directions

            check_both_directions(model, "rtconv's")
        out["rtconv"] = scoring.model_system(model, both_directions=both_directions)
    for name, m in (baselines or {}).items():
        if name in BUILT_IN or name in out:
            raise ConfigError(f"baseline {name!r} would be a second row named {name!r}; copy its checkpoint to a "
                              "file of another name.")
        out[name] = scoring.model_system(m)
    out.update(peers)
    for c in commands:
        if c.name in out:
            raise ConfigError(f"--command {c.name!r} would be a second row named {c.name!r}; give it another name.")
        out[c.name] = c
    return out, notes


def read_mono(path: Path) -> tuple[np.ndarray, int, int, list[str]]:
    """A whole file as mono float32 (channels averaged): ``(x, rate, channels, warnings)``."""
    from .audio import Reader

    with Reader(path) as r:
        if r.frames > MAX_SECONDS * r.sample_rate:
            raise AudioFileError(
                f"input file {str(path)!r} is {r.frames / r.sample_rate / 60:.1f} minutes long; rtconv compare "
                f"holds every system's output in memory and takes up to {MAX_SECONDS / 60:g} minutes: compare "
                "a part (e.g. sox IN part.wav trim 0 600), and clean the whole with rtconv process.")
        chunks = list(r.chunks())
        x = np.concatenate(chunks) if chunks else np.zeros((0, r.channels), np.float32)
        warnings = list(r.warnings)
        if r.nonfinite_samples:
            warnings.append(f"{r.nonfinite_samples} NaN/Inf sample(s) were replaced by silence")
        rate, channels = r.sample_rate, r.channels
    if len(x) < MIN_SECONDS * rate:
        raise AudioFileError(f"input file {str(path)!r} holds {len(x) / rate:.3f} s of audio; rtconv compare needs "
                             f"at least {MIN_SECONDS:g} s to measure a system on it.")
    return x.mean(axis=1).astype(np.float32), rate, channels, warnings


def pair_references(inputs: Sequence[Path], clean: Path) -> dict[Path, Path]:
    """Each input's clean reference: ``clean`` itself for one input, else the file of the same name (or
    the same name but its extension) in the folder ``clean``."""
    import glob

    from .audio import AUDIO_EXTENSIONS

    if not clean.exists():
        raise AudioFileError(f"--clean {str(clean)!r} does not exist; give the clean recording, or the folder "
                             "that holds one per input under the input's name.")
    if clean.is_file():
        if len(inputs) != 1:
            raise ConfigError(f"--clean {str(clean)!r} is one file for {len(inputs)} inputs; give a folder that "
                              "holds each input's clean recording under the input's name.")
        return {inputs[0]: clean}
    out = {}
    for p in inputs:
        same = clean / p.name
        if same.is_file():
            out[p] = same
            continue
        like = sorted(q for q in clean.glob(glob.escape(p.stem) + ".*")
                      if q.is_file() and q.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)
        if len(like) != 1:
            found = "none" if not like else ", ".join(repr(q.name) for q in like)
            raise AudioFileError(f"no single clean reference for {str(p)!r} in {str(clean)!r} (looked for "
                                 f"{p.stem!r} with an audio extension; found {found}); name each clean file as "
                                 "its noisy one.")
        out[p] = like[0]
    return out


def reference_for(x: np.ndarray, rate: int, ref_path: Path, noisy_path: Path) -> tuple[np.ndarray, list[str]]:
    """The clean reference as mono at the input's rate and length, refused when it is not the same recording."""
    import soxr

    c, r, _, warnings = read_mono(ref_path)
    notes = [f"clean reference: {w}" for w in warnings]
    if r != rate:
        c = soxr.resample(c, r, rate, quality="HQ").astype(np.float32)
        notes.append(f"clean reference resampled from {r} to {rate} Hz")
    diff = (len(c) - len(x)) / rate
    if abs(diff) > 0.05:
        raise AudioFileError(
            f"clean reference {str(ref_path)!r} is {len(c) / rate:.2f} s long and {str(noisy_path)!r} "
            f"{len(x) / rate:.2f} s; a reference must be the same recording without the noise, of the same "
            "length and aligned with it.")
    if len(c) != len(x):
        notes.append(f"clean reference {'cut' if diff > 0 else 'padded'} by {abs(diff) * 1000:.0f} ms to the "
                     "input's length")
        c = np.pad(c, (0, max(0, len(x) - len(c))))[: len(x)]
    off = _offset(c, x, rate)
    if off:
        notes.append(f"the noisy recording {'lags' if off > 0 else 'leads'} its clean reference by "
                     f"{abs(off) / rate * 1000:.1f} ms ({abs(off)} samples); the scores with a reference assume "
                     "the two are aligned, so shift one before trusting them")
    return c, notes


def _offset(clean: np.ndarray, noisy: np.ndarray, rate: int) -> int:
    """Samples by which ``noisy`` lags ``clean`` (negative: leads), up to 50 ms either way; 0 when aligned."""
    from .bench.heldout import measure_lag

    if not np.any(clean) or not np.any(noisy):
        return 0
    most = int(0.05 * rate)
    late, early = measure_lag(clean, noisy, most), measure_lag(noisy, clean, most)
    return late if late else -early


def _frame_energies(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    return np.sum(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)


def _ratio_db(out: float, inp: float) -> float:
    if inp <= 0:
        return float("nan")
    return 10 * math.log10(max(out, 1e-20) / inp)


class Measure:
    """The measures of each system's output for one input ``x`` (see the module docstring).

    What depends on the input alone (its frame energies and their loudest and quietest shares, its energy
    above 8 kHz, the clean reference at 16 kHz and the input's SI-SDR) is computed once here, not once per
    system: a ten-minute recording is scored for every row.
    """

    def __init__(self, x: np.ndarray, rate: int, clean: np.ndarray | None = None) -> None:
        self.rate, self.clean = rate, clean
        self.frame = max(1, rate // 50)
        ex = _frame_energies(x, self.frame)
        self.loud = self.quiet = self.sos = None
        if len(ex) >= 5:
            k = max(1, int(round(FRAME_SHARE * len(ex))))
            order = np.argsort(ex, kind="stable")
            self.loud, self.quiet = order[-k:], order[:k]
            self.ex_loud, self.ex_quiet = float(ex[self.loud].sum()), float(ex[self.quiet].sum())
            if rate > 2 * _HF_HZ:  # a band above 8 kHz exists
                from scipy import signal

                self.sos = signal.butter(8, _HF_HZ, "highpass", fs=rate, output="sos")
                self.hx_loud = float(self._high(x)[self.loud].sum())
        if clean is not None:
            from .metrics import si_sdr_db

            self.si_sdr_in = float(si_sdr_db(clean, x))
            self.clean16 = _at_16k(clean, rate)

    def _high(self, y: np.ndarray) -> np.ndarray:
        from scipy import signal

        return _frame_energies(signal.sosfilt(self.sos, y.astype(np.float64)), self.frame)

    def __call__(self, y: np.ndarray) -> dict:
        out = {"loud_db": float("nan"), "quiet_db": float("nan"), "hf_db": float("nan")}
        if self.loud is not None:
            ey = _frame_energies(y, self.frame)
            out["loud_db"] = _ratio_db(float(ey[self.loud].sum()), self.ex_loud)
            out["quiet_db"] = _ratio_db(float(ey[self.quiet].sum()), self.ex_quiet)
            if self.sos is not None:
                out["hf_db"] = _ratio_db(float(self._high(y)[self.loud].sum()), self.hx_loud)
        if self.clean is not None:
            from .metrics import si_sdr_db

            out["si_sdr"] = float(si_sdr_db(self.clean, y))
            out["si_sdr_i"] = out["si_sdr"] - self.si_sdr_in
            out.update(_perceptual(self.clean16, _at_16k(y, self.rate)))
        return out


def _at_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` at 16 kHz in float64, where PESQ and STOI score."""
    import soxr

    return (soxr.resample(x, rate, 16000) if rate != 16000 else x).astype(np.float64)


def _perceptual(clean16: np.ndarray, y16: np.ndarray) -> dict:
    """Wide-band PESQ and STOI of 16 kHz audio, each ``nan`` when its package is missing or it cannot score."""
    import importlib.util

    out = {"pesq": float("nan"), "stoi": float("nan")}
    if importlib.util.find_spec("pesq") is not None:
        out["pesq"] = _pesq_segments(clean16, y16)
    if importlib.util.find_spec("pystoi") is not None:
        import pystoi

        out["stoi"] = float(pystoi.stoi(clean16, y16, 16000, extended=False))
    return out


#: PESQ scores a recording in parts of at most this long, averaged by length: P.862 was made for utterances of
#: seconds, and the pesq package crashes the interpreter (a segmentation fault) on a part of about two minutes
PESQ_SEGMENT_S = 30.0


def _pesq_segments(clean16: np.ndarray, estimate16: np.ndarray) -> float:
    """Wide-band PESQ at 16 kHz over equal parts of at most :data:`PESQ_SEGMENT_S`, weighted by length; the parts
    pesq cannot score (no utterance in them) are left out, ``nan`` when none can be scored."""
    import pesq

    n = len(clean16)
    parts = max(1, math.ceil(n / (PESQ_SEGMENT_S * 16000)))
    edges = np.linspace(0, n, parts + 1).astype(int)
    scores, weights = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        try:
            scores.append(float(pesq.pesq(16000, clean16[a:b], estimate16[a:b], "wb")))
            weights.append(b - a)
        except Exception:  # pesq raises on a part with no utterance it can find, or shorter than 0.25 s
            continue
    return float(np.average(scores, weights=weights)) if scores else float("nan")


def run_system(f: System, x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """``f``'s output for ``x`` (checked: the input's length, finite) and the seconds it took."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # a peer's NumPy warnings on silence: not the user's
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.asarray(f(x, rate), np.float32)
    took = time.perf_counter() - t0
    if y.shape != x.shape:
        raise ConfigError(f"a system returned {y.shape} for an input of {x.shape}; it must return aligned audio of "
                          "the same length.")
    y, _ = zero_nonfinite(y, copy=False)  # the one rule for NaN and Inf in audio: silence
    return y, took


def mean_rows(rows: Sequence[dict], keys: Sequence[str]) -> dict[str, dict]:
    """Per system, the mean of each measure over the files (``nan`` where no file has it; a text such as
    ``"offline"`` as it is)."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["system"] for r in rows):
        sel = [r for r in rows if r["system"] == name]
        out[name] = {"files": len(sel)}
        for k in keys:
            texts = {r[k] for r in sel if isinstance(r.get(k), str)}
            if texts:
                out[name][k] = texts.pop() if len(texts) == 1 else None
                continue
            v = [r[k] for r in sel if k in r and r[k] is not None and np.isfinite(r[k])]
            out[name][k] = float(np.mean(v)) if v else float("nan")
    return out
