"""Clean speech for training and honest evaluation, synthesized with espeak-ng.

A denoiser must be judged on speech it never heard, so everything here comes
in two disjoint **splits**:

``"train"``
    English voices :data:`TRAIN_VOICES` with variants :data:`TRAIN_VARIANTS`,
    sentences built from the ``seed`` stream of :func:`sentences`.
``"test"``
    Other voices (:data:`TEST_VOICES`) and variants (:data:`TEST_VARIANTS`)
    that never appear in training, and sentences that are checked not to
    occur in the training stream.

Pitch (``-p``) and rate (``-s``) are drawn at random per utterance.  Each
utterance is synthesized once at espeak's native 22.05 kHz, resampled with
soxr, trimmed of silence, normalised to a fixed RMS and cached on disk as
``.npy`` (default ``~/.cache/rtconv/speech``, or ``$RTCONV_CACHE/speech``),
so later runs load instead of synthesizing.

Note that espeak-ng output has no content above ~11 kHz: at 32 or 48 kHz the
top band is empty in training speech.

Public API
----------
:class:`Utterance`, :func:`utterances`, :func:`synthesize`,
:func:`speech_corpus`, :func:`load_folder`, :func:`default_cache_dir`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = [
    "Utterance",
    "TRAIN_VOICES",
    "TEST_VOICES",
    "TRAIN_VARIANTS",
    "TEST_VARIANTS",
    "SPLITS",
    "sentences",
    "utterances",
    "synthesize",
    "speech_corpus",
    "load_folder",
    "default_cache_dir",
    "espeak_available",
    "TARGET_RMS",
]

SPLITS = ("train", "test")

#: Voices (accents) used for training speech.
TRAIN_VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-gb-x-rp", "en-029")
#: Voices kept out of training, for held-out evaluation.
TEST_VOICES: tuple[str, ...] = ("en-gb-scotland", "en-gb-x-gbcwmd", "en-gb-x-gbclan")
#: espeak voice variants (timbres) used in training.
TRAIN_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt", "klatt2", "adam", "Alicia",
    "Andy", "belinda", "david", "linda", "max", "steph", "robert", "Annie",
)
#: Variants kept out of training, for held-out evaluation.
TEST_VARIANTS: tuple[str, ...] = (
    "m6", "m7", "f4", "f5", "klatt3", "edward", "Michael", "Andrea", "quincy", "shelby",
)

#: RMS every utterance is normalised to (about -23 dBFS, leaves room for gain and noise).
TARGET_RMS = 0.07

_PITCH = (25, 75)  # espeak -p range, 0..99
_RATE = (130, 200)  # espeak -s range, words per minute
_ESPEAK_RATE = 22050

_SUBJECTS = (
    "the old man", "my sister", "a young doctor", "the tired driver", "our neighbour",
    "the small child", "a quiet student", "the farmer", "her brother", "the pilot",
    "every teacher", "the baker", "a stranger", "the captain", "his friend", "the nurse",
    "the musician", "a careful painter", "the manager", "my grandmother",
)
_VERBS = (
    "carried", "painted", "found", "opened", "sold", "watched", "cleaned", "borrowed",
    "repaired", "described", "counted", "dropped", "moved", "lifted", "ordered", "packed",
    "measured", "followed", "covered", "noticed",
)
_OBJECTS = (
    "a wooden box", "the green door", "seven apples", "the broken clock", "a heavy bag",
    "the last letter", "two silver coins", "the kitchen table", "a long rope", "the map",
    "three yellow pencils", "the paper boat", "a warm blanket", "the garden gate",
    "an empty bottle", "the blue bicycle", "a bright lamp", "the radio", "a jar of honey",
    "the winter coat",
)
_PLACES = (
    "near the river", "before dinner", "at the station", "after the storm", "in the morning",
    "behind the school", "during the game", "on the bridge", "beside the market",
    "under the stairs", "at midnight", "by the lake", "in the library", "after lunch",
    "outside the bank", "on a cold day", "in the village", "at the harbour",
    "before sunrise", "near the hospital",
)
_QUESTIONS = ("has", "why has", "where has", "when has")


def default_cache_dir() -> Path:
    """Where synthesized speech is cached: ``$RTCONV_CACHE/speech`` or ``~/.cache/rtconv/speech``."""
    root = os.environ.get("RTCONV_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "rtconv"
    return base / "speech"


def espeak_available() -> bool:
    """True if the ``espeak-ng`` program is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


def _sentence(rng: np.random.Generator) -> str:
    s, v, o, p = (c[rng.integers(len(c))] for c in (_SUBJECTS, _VERBS, _OBJECTS, _PLACES))
    form = rng.integers(4)
    if form == 0:
        q = _QUESTIONS[rng.integers(len(_QUESTIONS))]
        return f"{q} {s} {v} {o} {p}?".capitalize()
    if form == 1:
        return f"{p.capitalize()}, {s} {v} {o}."
    if form == 2:
        s2 = _SUBJECTS[rng.integers(len(_SUBJECTS))]
        return f"{s.capitalize()} {v} {o}, and {s2} {p}."
    return f"{s.capitalize()} {v} {o} {p}."


def sentences(split: str, count: int, seed: int = 0) -> list[str]:
    """``count`` distinct sentences; test sentences never occur in the training stream.

    Training sentences come from stream ``(seed, 0)``; test sentences from
    stream ``(seed, 1)`` with any sentence that the first 20 000 training
    sentences contain removed, so the two splits are disjoint.
    """
    split = _check_split(split)
    count = _check_count(count)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    banned: set[str] = set()
    if split == "test":
        train_rng = np.random.default_rng([seed, 0])
        banned = {_sentence(train_rng) for _ in range(20000)}
    out: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 200 * count + 1000:
            raise ConfigError(f"could only make {len(out)} distinct {split} sentences of {count} asked.")
        text = _sentence(rng)
        if text not in seen and text not in banned:
            seen.add(text)
            out.append(text)
    return out


@dataclass(frozen=True)
class Utterance:
    """One espeak-ng rendering: what is said, by which voice, how.

    Attributes
    ----------
    text : str
    voice : str
        espeak voice with variant, e.g. ``"en-us+f3"``.
    pitch : int
        espeak ``-p`` (0..99).
    rate : int
        espeak ``-s`` in words per minute.
    """

    text: str
    voice: str
    pitch: int
    rate: int

    def key(self) -> str:
        """Stable cache key (hash of every field)."""
        blob = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha1(blob).hexdigest()[:20]


def utterances(
    split: str,
    count: int,
    seed: int = 0,
    voices: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> list[Utterance]:
    """``count`` utterances of the split, with random voice, variant, pitch and rate.

    ``voices``/``variants`` override the split's defaults (e.g. to study one
    accent); ``seed`` picks sentences and voice parameters reproducibly.
    """
    split = _check_split(split)
    voices = list(voices or (TRAIN_VOICES if split == "train" else TEST_VOICES))
    variants = list(variants or (TRAIN_VARIANTS if split == "train" else TEST_VARIANTS))
    texts = sentences(split, count, seed)
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    out = []
    for text in texts:
        voice = f"{voices[rng.integers(len(voices))]}+{variants[rng.integers(len(variants))]}"
        out.append(Utterance(text, voice, int(rng.integers(*_PITCH)), int(rng.integers(*_RATE))))
    return out


def _espeak(utt: Utterance) -> np.ndarray:
    import soundfile as sf

    if not espeak_available():
        raise ConfigError(
            "espeak-ng is not installed, so no speech can be synthesized; install it "
            "(apt-get install espeak-ng) or pass --speech-dir with your own clean speech."
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        cmd = ["espeak-ng", "-v", utt.voice, "-p", str(utt.pitch), "-s", str(utt.rate),
               "-w", str(wav), utt.text]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.exists():
            raise ConfigError(
                f"espeak-ng failed for voice {utt.voice!r}: {proc.stderr.strip() or proc.returncode}."
            )
        x, sr = sf.read(str(wav), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x


def _trim_normalise(x: np.ndarray, sample_rate: int) -> np.ndarray:
    frame = max(1, sample_rate // 100)
    n = len(x) // frame
    if n == 0:
        return x.astype(np.float32)
    e = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    active = np.flatnonzero(e > 0.02 * max(e.max(), 1e-12))
    if active.size:
        x = x[active[0] * frame: (active[-1] + 1) * frame]
    rms = float(np.sqrt(np.mean(x**2)))
    if rms > 0:
        x = x * (TARGET_RMS / rms)
    return x.astype(np.float32)


def synthesize(utt: Utterance, sample_rate: int, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Speech of ``utt`` at ``sample_rate`` Hz, float32 mono, RMS :data:`TARGET_RMS`.

    Leading and trailing silence is trimmed.  The result is cached under
    ``cache_dir`` (default :func:`default_cache_dir`) as ``<rate>/<key>.npy``,
    written atomically so parallel runs can share one cache.
    """
    import soxr

    sample_rate = _check_count(sample_rate, "sample_rate")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / str(sample_rate) / f"{utt.key()}.npy"
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # a torn write from an interrupted run: synthesize again
    x = _espeak(utt)
    if sample_rate != _ESPEAK_RATE:
        x = soxr.resample(x, _ESPEAK_RATE, sample_rate, quality="HQ")
    x = _trim_normalise(np.asarray(x, dtype=np.float32), sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, path)
    return x


def speech_corpus(
    split: str,
    count: int,
    sample_rate: int,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    voices: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``count`` synthesized utterances of ``split`` at ``sample_rate`` (cached).

    Returns a list of float32 1-D arrays of varying length.
    """
    return [synthesize(u, sample_rate, cache_dir)
            for u in utterances(split, count, seed, voices, variants)]


_AUDIO_EXT = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def load_folder(
    folder: str | os.PathLike,
    sample_rate: int,
    normalise: bool = True,
    min_seconds: float = 0.05,
) -> list[np.ndarray]:
    """Every audio file under ``folder`` (recursively), mono float32 at ``sample_rate``.

    Used for user corpora of clean speech or of noise.  Stereo files are
    averaged to mono; files are resampled with soxr; with ``normalise`` each
    file is scaled to RMS :data:`TARGET_RMS`.  Files shorter than
    ``min_seconds`` are skipped.
    """
    import soundfile as sf
    import soxr

    from ..audio import sndfile_detail
    from ..errors import AudioFileError

    root = Path(folder)
    if not root.is_dir():
        raise AudioFileError(f"audio folder {str(root)!r} does not exist or is not a directory.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _AUDIO_EXT and p.is_file())
    out = []
    for f in files:
        try:
            x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises RuntimeError/LibsndfileError subclasses
            detail = sndfile_detail(e)
            raise AudioFileError(f"cannot read {str(f)!r} in the audio folder {str(root)!r} ({detail}); "
                                 "convert it to WAV or FLAC, or move it out of the folder.") from None
        x = x.mean(axis=1)
        if sr != sample_rate:
            x = soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32)
        if len(x) < min_seconds * sample_rate:
            continue
        if normalise:
            rms = float(np.sqrt(np.mean(x**2)))
            if rms > 0:
                x = x * (TARGET_RMS / rms)
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    if not out:
        raise AudioFileError(
            f"audio folder {str(root)!r} holds no readable audio of at least {min_seconds:g} s "
            f"(looked for {', '.join(_AUDIO_EXT)})."
        )
    return out


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}.")
    return split


def _check_count(value, name: str = "count") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
