"""Noise generators for denoiser training and held-out evaluation.

Every generator returns float32 noise of unit RMS (the mixer sets the SNR)
and draws all its randomness from the ``numpy.random.Generator`` it is
given, so a dataset index plus a seed reproduces an example exactly.

Families (:data:`NOISE_FAMILIES`)
    ``white``, ``pink`` (1/f), ``brown`` (1/f^2), ``hum`` (mains fundamental
    with random harmonics and drift), ``babble`` (several speakers at once),
    ``bursts`` (non-stationary gated noise), ``clicks`` (sparse impulses),
    ``fan`` (band-limited noise with blade tones and slow modulation),
    ``keyboard`` (typing: a press and a release click per key, each a short
    resonant burst, at a typist's irregular rhythm), ``tones`` (pitched
    sounds that are not a voice: plucked and struck notes, bells, UI beeps
    and chimes, held notes; harmonic or inharmonic partials at a steady
    pitch, often one sample repeated; a training-only family of the realistic
    corpus's mixer, never in a test set).

Train/test separation
    ``split="train"`` and ``split="test"`` draw parameters from disjoint
    ranges (e.g. hum at 50/60 Hz in training, 52-58 Hz in test; spectral
    slopes near 1 and 2 in training, in between in test), and the ``fan``
    family is held out of :data:`TRAIN_FAMILIES` altogether
    (:data:`HELD_OUT_FAMILIES`), so evaluation sees a noise type the model
    never heard.  Babble must be built from speech of the same split.

Public API
----------
:func:`generate`, :class:`NoiseSource`, :data:`NOISE_FAMILIES`,
:data:`TRAIN_FAMILIES`, :data:`TEST_FAMILIES`, :data:`HELD_OUT_FAMILIES`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import signal

from ..errors import ConfigError

__all__ = [
    "NOISE_FAMILIES",
    "TRAIN_FAMILIES",
    "TEST_FAMILIES",
    "HELD_OUT_FAMILIES",
    "generate",
    "NoiseSource",
    "crop",
]

NOISE_FAMILIES: tuple[str, ...] = (
    "white", "pink", "brown", "hum", "babble", "bursts", "clicks", "fan", "keyboard", "tones",
)
#: Families kept out of training so that evaluation includes an unseen noise type.
HELD_OUT_FAMILIES: tuple[str, ...] = ("fan",)
#: The espeak-ng recipe's families (``keyboard`` came later, with the realistic corpus of
#: :mod:`rtconv.data`; leaving it out here keeps that recipe and its test set reproducible).
_ESPEAK_RECIPE: tuple[str, ...] = NOISE_FAMILIES[:8]
TRAIN_FAMILIES: tuple[str, ...] = tuple(f for f in _ESPEAK_RECIPE if f not in HELD_OUT_FAMILIES)
TEST_FAMILIES: tuple[str, ...] = _ESPEAK_RECIPE


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x / rms if rms > 0 else x).astype(np.float32)


def _colored(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^alpha (shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0  # the DC bin keeps the gain of the lowest bin, never infinity
    spec *= f ** (-alpha / 2.0)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def _pick(rng: np.random.Generator, ranges: Sequence[tuple[float, float]]) -> float:
    lo, hi = ranges[rng.integers(len(ranges))]
    return float(rng.uniform(lo, hi))


def crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample excerpt of ``x``, looped if ``x`` is shorter."""
    if len(x) >= n:
        start = int(rng.integers(len(x) - n + 1))
        return x[start:start + n]
    reps = -(-n // len(x)) + 1
    start = int(rng.integers(len(x)))
    return np.tile(x, reps)[start:start + n]


# Parameter ranges per split: disjoint, so test noise is never a training draw.
_SLOPE = {
    "pink": {"train": [(0.85, 1.15)], "test": [(0.55, 0.85)]},
    "brown": {"train": [(1.85, 2.15)], "test": [(1.4, 1.85)]},
}
_HUM_F0 = {"train": [(49.5, 50.5), (59.5, 60.5)], "test": [(52.0, 58.0)]}


def _white(n, sr, rng, split, speech):
    return rng.standard_normal(n)


def _pink(n, sr, rng, split, speech):
    return _colored(n, _pick(rng, _SLOPE["pink"][split]), rng)


def _brown(n, sr, rng, split, speech):
    return _colored(n, _pick(rng, _SLOPE["brown"][split]), rng)


def _hum(n, sr, rng, split, speech):
    f0 = _pick(rng, _HUM_F0[split])
    t = np.arange(n) / sr
    # slow drift of the fundamental, as on a real mains line (a few 0.1 Hz)
    drift = 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 + drift) / sr
    x = np.zeros(n)
    harmonics = int(rng.integers(3, 12))
    for h in range(1, harmonics + 1):
        if h * f0 >= sr / 2:
            break
        amp = rng.uniform(0.2, 1.0) / h ** rng.uniform(0.3, 1.2)
        x += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return x + 0.01 * rng.standard_normal(n)


def _babble(n, sr, rng, split, speech):
    if not speech:
        raise ConfigError(
            "babble noise needs a pool of speech (babble_speech=...) of the same split; "
            "pass speech or leave 'babble' out of the noise families."
        )
    talkers = int(rng.integers(3, 9))
    x = np.zeros(n)
    for _ in range(talkers):
        s = speech[int(rng.integers(len(speech)))]
        x += rng.uniform(0.5, 1.0) * crop(s, n, rng)
    return x


def _bursts(n, sr, rng, split, speech):
    base = _colored(n, rng.uniform(0.0, 1.5), rng)
    env = np.zeros(n)
    pos = 0
    while pos < n:
        gap = int(rng.uniform(0.02, 0.4) * sr)
        length = int(rng.uniform(0.02, 0.3) * sr)
        start = pos + gap
        if start >= n:
            break
        seg = np.minimum(length, n - start)
        attack = max(1, int(rng.uniform(0.001, 0.02) * sr))
        shape = np.minimum(1.0, np.arange(seg) / attack) * np.exp(
            -np.arange(seg) / max(1.0, rng.uniform(0.3, 1.0) * seg))
        env[start:start + seg] += rng.uniform(0.3, 1.0) * shape
        pos = start + seg
    x = base * env
    return x if np.any(x) else base


def _clicks(n, sr, rng, split, speech):
    x = np.zeros(n)
    count = max(1, int(rng.uniform(2, 30) * n / sr))
    for pos in rng.integers(0, n, count):
        width = int(rng.integers(1, max(2, sr // 2000)))
        tail = np.exp(-np.arange(width * 4) / width) * rng.choice([-1.0, 1.0])
        end = min(n, pos + tail.size)
        x[pos:end] += rng.uniform(0.2, 1.0) * tail[: end - pos]
    return x + 1e-3 * rng.standard_normal(n)


def _fan(n, sr, rng, split, speech):
    nyq = sr / 2
    centre = rng.uniform(150.0, min(3000.0, 0.4 * nyq))
    width = rng.uniform(0.3, 1.2) * centre
    lo, hi = max(20.0, centre - width / 2), min(0.95 * nyq, centre + width / 2)
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n))
    x = x / (np.std(x) + 1e-12)
    t = np.arange(n) / sr
    blade = rng.uniform(40.0, 300.0)
    for h in range(1, 4):
        if h * blade < nyq:
            x += rng.uniform(0.1, 0.6) / h * np.sin(2 * np.pi * h * blade * t + rng.uniform(0, 6.3))
    am = 1.0 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(0.2, 4.0) * t)
    return x * am


_KEY_RATE = {"train": [(2.0, 4.5), (6.0, 9.0)], "test": [(4.5, 6.0)]}  # keys per second


def _keyboard(n, sr, rng, split, speech):
    """Typing: key presses at ``rate`` per second, each a press and a release transient."""
    x = np.zeros(n)
    rate = _pick(rng, _KEY_RATE[split])
    # each key has its own body resonance; a keyboard has a handful of distinct sounds
    bodies = [(rng.uniform(1500.0, min(7000.0, 0.4 * sr)), rng.uniform(0.002, 0.012)) for _ in range(6)]
    t = float(rng.exponential(1.0 / rate))
    while t * sr < n:
        for delay, amp in ((0.0, 1.0), (rng.uniform(0.06, 0.16), rng.uniform(0.3, 0.7))):
            pos = int((t + delay) * sr)
            if pos >= n:
                break
            f0, decay = bodies[int(rng.integers(len(bodies)))]
            length = min(n - pos, int(6 * decay * sr) + 1)
            k = np.arange(length) / sr
            burst = np.sin(2 * np.pi * f0 * k + rng.uniform(0, 6.3)) * np.exp(-k / decay)
            burst += 0.5 * rng.standard_normal(length) * np.exp(-k / (0.3 * decay))
            x[pos:pos + length] += amp * rng.uniform(0.5, 1.0) * burst
        t += float(rng.lognormal(math.log(1.0 / rate), 0.5))
    return x + 1e-3 * rng.standard_normal(n)


def _tone_event(sr, rng, seconds):
    """One pitched event of ``seconds``: a pluck, a bell, a beep or a held note (no vibrato, no formants)."""
    m = max(1, int(seconds * sr))
    t = np.arange(m) / sr
    kind = int(rng.integers(4))  # 0 pluck, 1 bell, 2 beep, 3 held note
    f0 = float(np.exp(rng.uniform(np.log(90.0), np.log(1800.0 if kind != 1 else 3000.0))))
    if kind == 1:  # struck metal: a few inharmonic partials
        ratios = np.array([1.0, 2.0, 2.4, 3.0, 4.2, 5.4, 6.8])[: int(rng.integers(3, 8))]
        ratios = ratios * rng.uniform(0.97, 1.03, ratios.size)
    else:
        count = int(rng.integers(1, 4)) if kind == 2 else int(rng.integers(2, 16))
        ratios = np.arange(1, count + 1) * (1 + rng.uniform(0, 0.002) * np.arange(count) ** 2)  # slight stretch
    tilt = rng.uniform(0.3, 2.0)
    decay = {0: rng.uniform(0.08, 1.5), 1: rng.uniform(0.3, 3.0), 2: 1e9, 3: 1e9}[kind]
    x = np.zeros(m)
    for k, r in enumerate(ratios):
        f = f0 * r
        if f >= 0.45 * sr:
            break
        # higher partials die sooner in a pluck or bell
        x += rng.uniform(0.3, 1.0) / (k + 1) ** tilt * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * np.exp(
            -t * (1 + 0.5 * k) / decay)
    attack = max(1, int(rng.uniform(0.001, 0.03 if kind != 3 else 0.15) * sr))
    release = max(1, min(m // 2, int(rng.uniform(0.005, 0.1) * sr)))
    env = np.minimum(1.0, np.arange(m) / attack) * np.minimum(1.0, (m - np.arange(m)) / release)
    return x * env


def _tones(n, sr, rng, split, speech):
    """Pitched non-speech: events of one of four kinds at a steady pitch, with gaps; often one event looped
    (a short sample or UI sound repeated, as a looped noise file is)."""
    x = np.zeros(n)
    loop = rng.random() < 0.5
    event = None
    pos = int(rng.uniform(0.0, 0.5) * sr)
    while pos < n:
        if event is None or not loop:
            event = _tone_event(sr, rng, rng.uniform(0.08, 2.5))
        end = min(n, pos + event.size)
        x[pos:end] += rng.uniform(0.5, 1.0) * event[: end - pos]
        pos += event.size + int(rng.uniform(0.0, 0.3 if loop else 0.8) * sr)  # a loop repeats with shorter gaps
    return x + 1e-3 * rng.standard_normal(n)


_GENERATORS: dict[str, Callable] = {
    "white": _white,
    "pink": _pink,
    "brown": _brown,
    "hum": _hum,
    "babble": _babble,
    "bursts": _bursts,
    "clicks": _clicks,
    "fan": _fan,
    "keyboard": _keyboard,
    "tones": _tones,
}


def generate(
    family: str,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    split: str = "train",
    babble_speech: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """``n`` samples of unit-RMS float32 noise of ``family``.

    Parameters
    ----------
    family : str
        One of :data:`NOISE_FAMILIES`.
    n : int
        Length in samples.
    sample_rate : int
        In Hz (sets hum and fan frequencies, burst and click timing).
    rng : numpy.random.Generator
        Source of all randomness.
    split : {"train", "test"}
        Which parameter ranges to draw from (disjoint between splits).
    babble_speech : sequence of ndarray, optional
        Speech signals babble is mixed from (required for ``"babble"``).
    """
    if family not in _GENERATORS:
        raise ConfigError(f"unknown noise family {family!r}; known: {', '.join(NOISE_FAMILIES)}.")
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}.")
    return _unit_rms(_GENERATORS[family](int(n), int(sample_rate), rng, split, babble_speech))


class NoiseSource:
    """Draws noise for a split: a random family per example, optionally user files.

    Parameters
    ----------
    sample_rate : int
        In Hz.
    split : {"train", "test"}
    families : sequence of str, optional
        Defaults to :data:`TRAIN_FAMILIES` or :data:`TEST_FAMILIES`.
    babble_speech : sequence of ndarray, optional
        Speech for babble; without it ``babble`` is dropped from the default families.
    files : sequence of ndarray, optional
        User noise recordings (see :func:`rtconv.train.speech.load_folder`);
        when given they join the draw as family ``"file"``.
    second_prob : float
        Probability of adding a second, quieter family to an example.
    """

    def __init__(
        self,
        sample_rate: int,
        split: str = "train",
        families: Sequence[str] | None = None,
        babble_speech: Sequence[np.ndarray] | None = None,
        files: Sequence[np.ndarray] | None = None,
        second_prob: float = 0.25,
    ) -> None:
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {split!r}.")
        if families is None:
            families = TRAIN_FAMILIES if split == "train" else TEST_FAMILIES
            if not babble_speech:
                families = tuple(f for f in families if f != "babble")
        families = list(families)
        for f in families:
            if f not in _GENERATORS:
                raise ConfigError(f"unknown noise family {f!r}; known: {', '.join(NOISE_FAMILIES)}.")
        if "babble" in families and not babble_speech:
            raise ConfigError("noise family 'babble' needs babble_speech (speech of the same split).")
        self.files = [np.asarray(f, dtype=np.float32) for f in (files or [])]
        if self.files:
            families.append("file")
        if not families:
            raise ConfigError("a NoiseSource needs at least one noise family or noise file.")
        self.sample_rate = int(sample_rate)
        self.split = split
        self.families = tuple(families)
        self.babble_speech = list(babble_speech or [])
        self.second_prob = float(second_prob)

    def _one(self, family: str, n: int, rng: np.random.Generator) -> np.ndarray:
        if family == "file":
            return _unit_rms(crop(self.files[int(rng.integers(len(self.files)))], n, rng))
        return generate(family, n, self.sample_rate, rng, self.split, self.babble_speech)

    def __call__(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """Unit-RMS noise of ``n`` samples and a label naming its family (``"a+b"`` when mixed)."""
        family = self.families[int(rng.integers(len(self.families)))]
        x = self._one(family, n, rng)
        if len(self.families) > 1 and rng.random() < self.second_prob:
            other = self.families[int(rng.integers(len(self.families)))]
            if other != family:
                x = _unit_rms(x + rng.uniform(0.2, 0.6) * self._one(other, n, rng))
                family = f"{family}+{other}"
        return x, family
