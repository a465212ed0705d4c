"""Training tasks: what goes in, what should come out, for train/val/test.

Each task is a set of ``torch.utils.data.Dataset`` objects whose items are
``(input, target)`` float32 tensors shaped ``(channels, time)``.  Examples
are generated on the fly from ``numpy.random.default_rng([seed, split,
index])``, so an index always yields the same example, and the three splits
(train / val / test) never share a random stream.

``sines``
    Clean sines of 0-8 cycles per 256 samples and random phase plus Gaussian
    noise of std in [0.2, 1.0] -> the clean sine.
``freqsep`` (``variant="classic"``)
    Low tone (amp 1, 2-6 cycles) + high tone (amp 0.5, 12-20 cycles) + noise
    (std 0.5) over 256 samples -> the high tone.
``freqsep`` (``variant="audio"``)
    At a real sample rate: random tones in a low band and a high band plus
    noise -> two channels (low band, high band): a crossover.
``denoise``
    Speech in noise -> speech (see :class:`DenoiseDataset`).
``classify`` (``variant="waveforms"``)
    A sine, triangle, square or sawtooth wave of random frequency, phase and
    amplitude in white noise -> four probability tracks, one-hot on the
    wave's class at every sample (see :class:`WaveformDataset`).
``vad``
    A realistic mixture from the built corpus -> the probability of speech
    per sample, 1 on every 10 ms frame whose clean speech is within
    ``label_db`` of the clip's active level (see :class:`VADDataset`).

:func:`make_task` builds a :class:`TaskData` from a task name and options.
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..vad import FRAMES_PER_SECOND, LABEL_DB
from . import noise as _noise
from . import speech as _speech
from .choices import TASK_OPTIONS, TASKS, WAVEFORMS, default_arch

__all__ = [
    "TASKS",
    "SPLIT_IDS",
    "SinesDataset",
    "FreqSepDataset",
    "CrossoverDataset",
    "DenoiseDataset",
    "CorpusDenoiseDataset",
    "WaveformDataset",
    "VADDataset",
    "WAVEFORMS",
    "TaskData",
    "make_task",
    "materialize",
    "shifted",
]

#: Random-stream id of each split; a split's examples come from rng([seed, id, index]).
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])


class _Generated(Dataset):
    """Base: ``count`` examples generated from (seed, split, index)."""

    #: added to every index before it seeds the example: :func:`shifted` sets it, so one dataset
    #: object can stand for any run of ``count`` consecutive examples of its stream
    offset = 0

    def __init__(self, count: int, split: str, seed: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"example count must be a positive integer, got {count!r}.")
        if split not in SPLIT_IDS:
            raise ConfigError(f"split must be one of {tuple(SPLIT_IDS)}, got {split!r}.")
        self.count, self.split, self.seed = count, split, int(seed)

    def __len__(self) -> int:
        return self.count

    def _rng_at(self, index: int) -> np.random.Generator:
        """The generator of example ``index`` (its place in the stream: ``offset + index``)."""
        return _rng(self.seed, self.split, self.offset + index)

    def _pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        x, y = self._pair(self._rng_at(index))
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))


class SinesDataset(_Generated):
    """Noisy sine -> clean sine; ``length`` samples, frequency in cycles per 256 samples."""

    def __init__(self, count: int, split: str = "train", seed: int = 0, length: int = 256,
                 cycles: tuple[float, float] = TASK_OPTIONS["sines"]["cycles"],
                 noise_std: tuple[float, float] = TASK_OPTIONS["sines"]["noise_std"]) -> None:
        super().__init__(count, split, seed)
        self.length, self.cycles, self.noise_std = int(length), cycles, noise_std

    def _pair(self, rng):
        t = np.arange(self.length)
        f = rng.uniform(*self.cycles) / 256.0
        clean = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        noisy = clean + rng.uniform(*self.noise_std) * rng.standard_normal(self.length)
        return noisy[None], clean[None]


class FreqSepDataset(_Generated):
    """Classic band separation: low tone + high tone + noise -> high tone (256 samples)."""

    def __init__(self, count: int, split: str = "train", seed: int = 0,
                 length: int = TASK_OPTIONS["freqsep"]["length"], low: tuple[float, float] = (2.0, 6.0),
                 high: tuple[float, float] = (12.0, 20.0),
                 low_amp: float = 1.0, high_amp: float = 0.5, noise_std: float = 0.5) -> None:
        super().__init__(count, split, seed)
        self.length, self.low, self.high = int(length), low, high
        self.low_amp, self.high_amp, self.noise_std = low_amp, high_amp, noise_std

    def _pair(self, rng):
        t = np.arange(self.length) / 256.0
        lo = self.low_amp * np.sin(2 * np.pi * rng.uniform(*self.low) * t + rng.uniform(0, 6.3))
        hi = self.high_amp * np.sin(2 * np.pi * rng.uniform(*self.high) * t + rng.uniform(0, 6.3))
        x = lo + hi + self.noise_std * rng.standard_normal(self.length)
        return x[None], hi[None]


_CROSSOVER = TASK_OPTIONS["freqsep/audio"]


def _high_band(sample_rate: int) -> tuple[float, float]:
    """The crossover's default high band at ``sample_rate``, in Hz."""
    return (_CROSSOVER["high_band_low"], _CROSSOVER["high_band_top"] * sample_rate)


def _tones(rng, n: int, sample_rate: int, band: tuple[float, float], count: int,
           split: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` tones in ``band``; returns their (low, high) shares.

    Without ``split`` all of a tone goes to the low share.  With ``split =
    (f_lo, f_hi)`` a tone at ``f`` goes to the low share with weight
    ``w = (1 + cos(pi u)) / 2``, ``u = log(f / f_lo) / log(f_hi / f_lo)``, and
    to the high share with ``1 - w``: an amplitude-complementary crossover
    (low + high = the tone) across the transition band.
    """
    t = np.arange(n) / sample_rate
    low, high = np.zeros(n), np.zeros(n)
    for _ in range(count):
        f = math.exp(rng.uniform(math.log(band[0]), math.log(band[1])))  # log-uniform: octaves equal
        tone = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        w = 1.0
        if split is not None:
            u = min(1.0, max(0.0, math.log(f / split[0]) / math.log(split[1] / split[0])))
            w = 0.5 * (1.0 + math.cos(math.pi * u))
        low += w * tone
        high += (1.0 - w) * tone
    return low, high


class CrossoverDataset(_Generated):
    """Audio crossover: tones in a low and a high band plus noise -> (low, high).

    Parameters
    ----------
    sample_rate : int
        In Hz.
    seconds : float
        Example length.
    low_band, high_band : (float, float)
        Frequency ranges in Hz the low and high tones are drawn from
        (log-uniformly); the gap between them is the transition band the
        filter may use.  ``high_band`` defaults to 1400 Hz .. 0.45 x the
        sample rate, so nothing above the high band is left unconstrained.
    transition : bool
        Also draw 0-1 tones between the bands, shared between the outputs
        by a raised-cosine (in log frequency) so that low + high = input
        there too; without them the filter is free between the bands and
        tends to grow a resonant bump.
    tones : (int, int)
        How many tones per band, inclusive range.
    noise_std : (float, float)
        Range of the white-noise std added to the input (not to the targets).
    """

    def __init__(self, count: int, split: str = "train", seed: int = 0,
                 sample_rate: int = _CROSSOVER["sample_rate"], seconds: float = _CROSSOVER["seconds"],
                 low_band: tuple[float, float] = _CROSSOVER["low_band"], high_band: tuple[float, float] | None = None,
                 tones: tuple[int, int] = (1, 3),
                 noise_std: tuple[float, float] = (0.0, 0.05), transition: bool = True) -> None:
        super().__init__(count, split, seed)
        self.transition = bool(transition)
        nyq = sample_rate / 2
        high_band = tuple(high_band) if high_band is not None else _high_band(sample_rate)
        if not (0 < low_band[0] < low_band[1] <= high_band[0] < high_band[1] < nyq):
            raise ConfigError(
                f"bands must satisfy 0 < low_min < low_max <= high_min < high_max < {nyq:g} Hz "
                f"(Nyquist), got low={tuple(low_band)!r} high={tuple(high_band)!r}."
            )
        self.sample_rate, self.n = int(sample_rate), max(1, int(round(seconds * sample_rate)))
        self.low_band, self.high_band, self.tones, self.noise_std = low_band, high_band, tones, noise_std

    def _pair(self, rng):
        def count():
            return int(rng.integers(self.tones[0], self.tones[1] + 1))

        lo, _ = _tones(rng, self.n, self.sample_rate, self.low_band, count())
        hi, _ = _tones(rng, self.n, self.sample_rate, self.high_band, count())
        if self.transition and self.low_band[1] < self.high_band[0]:
            gap = (self.low_band[1], self.high_band[0])
            g_lo, g_hi = _tones(rng, self.n, self.sample_rate, gap, int(rng.integers(0, 2)), gap)
            lo, hi = lo + g_lo, hi + g_hi
        x = lo + hi + rng.uniform(*self.noise_std) * rng.standard_normal(self.n)
        return x[None], np.stack([lo, hi])


_DENOISE = TASK_OPTIONS["denoise"]


class DenoiseDataset(_Generated):
    """Speech in noise -> speech, mixed on the fly.

    Each example: a random ``seconds``-long crop of a random clean utterance
    (crops that are mostly silence are redrawn), noise from ``noise``
    scaled to a random SNR in ``snr_db``, then one random gain in
    ``gain_db`` applied to both input and target (the filter must not learn
    one loudness).  The input is clipped to [-1, 1] like a real recording.

    Parameters
    ----------
    speech : sequence of ndarray
        Clean float32 utterances at ``sample_rate``.
    noise : rtconv.train.noise.NoiseSource
        Draws unit-RMS noise.
    count : int
        Examples in the dataset.
    split : {"train", "val", "test"}
    seed : int
    sample_rate : int
        In Hz.
    seconds : float
        Clip length.
    snr_db, gain_db : (float, float)
        Uniform ranges.

    Attributes
    ----------
    labels : list of str
        Noise family of each example, filled as examples are generated
        (see :meth:`info`).
    """

    def __init__(self, speech: Sequence[np.ndarray], noise: _noise.NoiseSource, count: int,
                 split: str = "train", seed: int = 0, sample_rate: int = _DENOISE["sample_rate"],
                 seconds: float = _DENOISE["seconds"], snr_db: tuple[float, float] = _DENOISE["snr_db"],
                 gain_db: tuple[float, float] = _DENOISE["gain_db"]) -> None:
        super().__init__(count, split, seed)
        if not speech:
            raise ConfigError("a denoise dataset needs at least one clean speech signal.")
        if snr_db[0] > snr_db[1] or gain_db[0] > gain_db[1]:
            raise ConfigError(f"SNR and gain ranges must be (low, high), got {snr_db!r} and {gain_db!r}.")
        self.speech = [np.asarray(s, dtype=np.float32) for s in speech]
        self.noise, self.sample_rate = noise, int(sample_rate)
        self.n = max(1, int(round(seconds * sample_rate)))
        self.snr_db, self.gain_db = snr_db, gain_db

    def info(self, index: int) -> dict:
        """The draw behind example ``index``: noise family, SNR (dB), gain (dB)."""
        return self._draw(self._rng_at(index))[2]

    def _draw(self, rng):
        clean = None
        for _ in range(8):
            s = self.speech[int(rng.integers(len(self.speech)))]
            c = _noise.crop(s, self.n, rng)
            if np.sqrt(np.mean(c**2)) > 0.25 * _speech.TARGET_RMS:
                clean = c
                break
            clean = c if clean is None else clean
        noise, family = self.noise(self.n, rng)
        snr = float(rng.uniform(*self.snr_db))
        rms = float(np.sqrt(np.mean(clean.astype(np.float64) ** 2))) or _speech.TARGET_RMS
        noisy = clean + noise * (rms / 10 ** (snr / 20))
        gain_db = float(rng.uniform(*self.gain_db))
        g = 10 ** (gain_db / 20)
        return np.clip(noisy * g, -1.0, 1.0), clean * g, {"noise": family, "snr_db": snr, "gain_db": gain_db}

    def _pair(self, rng):
        x, y, _ = self._draw(rng)
        return x[None], y[None]


class CorpusDenoiseDataset(_Generated):
    """Realistic speech in noise -> speech, mixed on the fly from the built corpus.

    Each example is one :meth:`rtconv.data.mix.Mixer.example` drawn from
    ``rng([seed, split, index])``: a speaker of the split, real or generated
    noise, a room, microphone colour, channel band limit, level, codec,
    clipping (see :mod:`rtconv.data.mix`).  Build the corpus first with
    ``rtconv data build``.
    """

    def __init__(self, mixer, count: int, split: str = "train", seed: int = 0) -> None:
        super().__init__(count, split, seed)
        self.mixer = mixer
        self.sample_rate = mixer.sample_rate

    def info(self, index: int) -> dict:
        """The draws behind example ``index`` (speaker, noise, SNR, band, level...)."""
        return self.mixer.example(self._rng_at(index))[2]

    def _pair(self, rng):
        x, y, _ = self.mixer.example(rng)
        return x[None], y[None]


class WaveformDataset(_Generated):
    """A periodic wave in white noise -> one-hot probability tracks of its class.

    Each example: a class of :data:`WAVEFORMS` drawn uniformly, a frequency
    drawn log-uniformly from ``cycles`` (per 256 samples), a random phase, a
    peak amplitude from ``amplitude``, and white noise at an SNR (wave power
    over noise power) drawn from ``snr_db``.  The waves are the naive ones
    (:func:`scipy.signal.sawtooth` and :func:`~scipy.signal.square`), so
    their harmonics, and how they fall off (odd 1/n^2 for the triangle, odd
    1/n for the square, all 1/n for the sawtooth), are what tells them
    apart; no linear function of the waveform can, since the phase is random.
    """

    def __init__(self, count: int, split: str = "train", seed: int = 0, length: int = 1024,
                 cycles: tuple[float, float] = (4.0, 32.0), snr_db: tuple[float, float] = (0.0, 30.0),
                 amplitude: tuple[float, float] = (0.1, 1.0)) -> None:
        super().__init__(count, split, seed)
        if not 0 < cycles[0] <= cycles[1] <= 128:
            raise ConfigError(f"cycles must be (low, high) per 256 samples within (0, 128] (Nyquist), got {cycles!r}.")
        if snr_db[0] > snr_db[1] or not 0 < amplitude[0] <= amplitude[1]:
            raise ConfigError(f"SNR and amplitude ranges must be (low, high) (amplitudes positive), got "
                              f"{snr_db!r} and {amplitude!r}.")
        self.length, self.cycles, self.snr_db, self.amplitude = int(length), cycles, snr_db, amplitude

    def _draw(self, rng) -> tuple[np.ndarray, int, dict]:
        from scipy import signal

        c = int(rng.integers(len(WAVEFORMS)))
        f = math.exp(rng.uniform(math.log(self.cycles[0]), math.log(self.cycles[1]))) / 256.0
        theta = 2 * np.pi * f * np.arange(self.length) + rng.uniform(0, 2 * np.pi)
        wave = (np.sin(theta), signal.sawtooth(theta, 0.5), signal.square(theta), signal.sawtooth(theta))[c]
        amp = float(rng.uniform(*self.amplitude))
        snr = float(rng.uniform(*self.snr_db))
        power = amp**2 * float(np.mean(wave**2))
        x = amp * wave + math.sqrt(power / 10 ** (snr / 10)) * rng.standard_normal(self.length)
        return x, c, {"class": WAVEFORMS[c], "snr_db": snr, "cycles_per_256": f * 256, "amplitude": amp}

    def info(self, index: int) -> dict:
        """The draw behind example ``index``: class, SNR (dB), frequency, amplitude."""
        return self._draw(self._rng_at(index))[2]

    def _pair(self, rng):
        x, c, _ = self._draw(rng)
        y = np.zeros((len(WAVEFORMS), self.length))
        y[c] = 1.0
        return x[None], y


class VADDataset(_Generated):
    """A realistic mixture -> the probability of speech per sample (0 or 1, per frame).

    Each example is one :meth:`rtconv.data.mix.Mixer.example`; its labels come
    from the clean target (:func:`rtconv.vad.speech_frames`): 1 on every
    ``frame``-sample frame whose clean energy is within ``label_db`` of the
    clip's active level, held over the frame's samples.  With ``rate`` above
    the mixer's rate the example is resampled to ``rate`` (soxr, HQ): mixing
    at a lower rate holds a third of the corpus in memory and leaves what a
    VAD listens to (up to 8 kHz) intact.  :attr:`infos` keeps each generated
    example's draws (kind, SNR, noise, level) for per-bucket metrics.
    """

    def __init__(self, mixer, count: int, split: str = "train", seed: int = 0, rate: int | None = None,
                 frame: int | None = None, label_db: float = LABEL_DB) -> None:
        super().__init__(count, split, seed)
        self.mixer = mixer
        self.sample_rate = int(rate or mixer.sample_rate)
        self.frame = int(frame or self.sample_rate // FRAMES_PER_SECOND)
        self.label_db = float(label_db)
        self.infos: dict[int, dict] = {}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from ..vad import speech_frames

        if not 0 <= index < self.count:
            raise IndexError(index)
        x, y, info = self.mixer.example(self._rng_at(index))
        if self.sample_rate != self.mixer.sample_rate:
            import soxr

            x = soxr.resample(x, self.mixer.sample_rate, self.sample_rate, quality="HQ")
            y = soxr.resample(y, self.mixer.sample_rate, self.sample_rate, quality="HQ")
        lab = speech_frames(y, self.sample_rate, self.frame, self.label_db)
        self.infos[index] = {k: info.get(k) for k in ("kind", "snr_db", "noise", "level_db", "speech_kind", "band")}
        self.infos[index]["speech_fraction"] = float(lab.mean()) if lab.size else 0.0
        track = np.repeat(lab.astype(np.float32), self.frame)[: len(x)]
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None],
                torch.from_numpy(np.ascontiguousarray(track))[None])


def shifted(ds: Dataset, offset: int) -> Dataset:
    """``ds`` with its examples taken ``offset`` further along its stream: example ``i`` of the result
    is example ``offset + i`` of an unbounded ``ds`` (the same draws, speakers and noises of its split).

    The trainer's ``fresh_examples`` mixes epoch ``e`` as ``shifted(train, e * len(train))``.
    """
    if not isinstance(ds, _Generated):
        raise ConfigError(f"only generated datasets can be shifted to new examples; {type(ds).__name__} is a "
                          "fixed set (train without --fresh-examples).")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"an example offset must be a non-negative integer, got {offset!r}.")
    out = copy.copy(ds)
    out.offset = offset
    if hasattr(out, "infos"):  # the VAD's per-example draws belong to the examples it made
        out.infos = {}
    return out


def materialize(ds: Dataset, workers: int = 0) -> torch.utils.data.TensorDataset:
    """Generate every example once and keep them in memory (fast epochs for fixed datasets).

    Examples are written into preallocated tensors one by one, so the peak
    memory is the dataset's size, not twice it.  With ``workers`` > 1 the
    examples are generated by that many forked processes (each example comes
    from its own index-seeded generator, so the tensors are the same for any
    number of workers); where fork is not available they are made here.
    """
    x0, y0 = ds[0]
    _check_fits(len(ds), (x0.numel() * x0.element_size() + y0.numel() * y0.element_size()))
    xs = torch.empty((len(ds), *x0.shape), dtype=x0.dtype)
    ys = torch.empty((len(ds), *y0.shape), dtype=y0.dtype)
    xs[0], ys[0] = x0, y0
    rest = range(1, len(ds))
    if workers > 1 and len(rest) > 1 and "fork" in mp.get_all_start_methods():
        global _SHARED
        _SHARED = ds
        chunk = max(1, min(64, len(rest) // (4 * workers)))
        starts = list(range(1, len(ds), chunk))
        try:
            with mp.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
                for start, (bx, by) in zip(starts, pool.imap(_make_chunk, [(i, min(len(ds), i + chunk))
                                                                         for i in starts]), strict=True):
                    xs[start:start + len(bx)] = torch.from_numpy(bx)
                    ys[start:start + len(by)] = torch.from_numpy(by)
        finally:
            _SHARED = None
        return torch.utils.data.TensorDataset(xs, ys)
    for i in rest:
        xs[i], ys[i] = ds[i]
    return torch.utils.data.TensorDataset(xs, ys)


def _check_fits(count: int, per_example: int) -> None:
    """Refuse examples that cannot all be held in this machine's memory (they were allocated, then the
    kernel killed the run while filling them)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: nothing to check against
        return
    need = count * per_example
    if need > 0.8 * total:
        raise ConfigError(f"the {count} examples need {need / 2**30:.1f} GiB in memory and this machine has "
                          f"{total / 2**30:.1f} GiB; use fewer examples (--train-examples) or shorter ones (--seconds).")


_SHARED: Dataset | None = None  # the dataset a forked materialize worker reads (inherited, never pickled)


def _worker_init() -> None:
    torch.set_num_threads(1)


def _make_chunk(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [_SHARED[i] for i in range(*span)]
    return (np.stack([p[0].numpy() for p in pairs]), np.stack([p[1].numpy() for p in pairs]))


@dataclass
class TaskData:
    """Everything the trainer needs to know about a task.

    Attributes
    ----------
    name : str
        ``"sines"``, ``"freqsep"`` or ``"denoise"``.
    train, val, test : Dataset
    in_channels, out_channels : int
    sample_rate : int or None
        ``None`` for the abstract 256-sample exercises.
    outputs : list of str
        Names of the target channels (e.g. ``["low", "high"]``).
    options : dict
        The JSON-able options that built the data (stored in checkpoints).
    default_arch : (str, dict)
        Architecture used when none is given.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    in_channels: int
    out_channels: int
    sample_rate: int | None
    outputs: list[str]
    options: dict = field(default_factory=dict)
    default_arch: tuple[str, dict] = field(default_factory=lambda: default_arch("sines"))
    description: str = ""
    #: Test metrics for tasks the generic SNR metrics do not fit (classifiers):
    #: ``evaluate(model, test_data, loss_fn, device) -> dict`` with a ``summary``
    #: line for the log and a ``headline`` dict of a few numbers for the checkpoint.
    evaluate: Callable | None = None


def _sines_text() -> str:
    cycles, std = TASK_OPTIONS["sines"]["cycles"], TASK_OPTIONS["sines"]["noise_std"]
    return f"noisy sine ({cycles[0]:g}-{cycles[1]:g} cycles/256 samples, noise std {std[0]}-{std[1]}) -> clean sine"


def _counts(options: dict, train: int, val: int, test: int) -> tuple[int, int, int]:
    return (int(options.get("train_examples") or train), int(options.get("val_examples") or val),
            int(options.get("test_examples") or test))


def make_task(name: str, **options) -> TaskData:
    """Build the datasets of task ``name``.

    Common options: ``seed`` (int), ``train_examples``, ``val_examples``,
    ``test_examples``.  ``freqsep``: ``variant`` ("classic" or "audio"),
    ``sample_rate``, ``seconds``, ``low_band``, ``high_band``.  ``denoise``:
    ``sample_rate``, ``seconds``, ``snr_db``, ``gain_db``, ``utterances``
    (synthesized per split), ``speech_dir``/``noise_dir`` (user folders:
    their files are split 80/10/10 by sorted order into train/val/test),
    ``noise_families``, ``cache_dir``; with ``corpus="realistic"`` also
    ``level_db``, ``kinds`` (``{"mix": w, "speech": w, "noise": w}``, the
    share of mixtures, clean speech and noise alone), ``bands`` (weights over
    :data:`rtconv.data.augment.BAND_LIMITS`: the channel's band limits), ``speech_subsonic``
    (keep the speech recordings' content below 20 Hz, as runs before
    2026-12-02 did) and ``val_split`` (``"val"``, or ``"dev"``: validation
    examples from voices and noise no model trains on).  ``classify``: ``variant``
    ("waveforms"), ``length``, ``cycles``, ``snr_db``.  ``vad``:
    ``sample_rate``, ``mix_rate``, ``noise_seconds`` (of each noise
    recording held in memory), ``seconds``, ``snr_db``, ``level_db``,
    ``label_db``, ``cache_dir``.
    """
    seed = int(options.get("seed", 0))
    if name == "sines":
        tr, va, te = _counts(options, 4000, 500, 1000)
        return TaskData(
            "sines", SinesDataset(tr, "train", seed), SinesDataset(va, "val", seed),
            SinesDataset(te, "test", seed), 1, 1, None, ["clean"],
            {"seed": seed, "train_examples": tr, "val_examples": va, "test_examples": te},
            default_arch("sines"), _sines_text(),
        )
    if name == "freqsep":
        variant = options.get("variant") or "classic"
        if variant == "classic":
            tr, va, te = _counts(options, 4000, 500, 1000)
            return TaskData(
                "freqsep", FreqSepDataset(tr, "train", seed), FreqSepDataset(va, "val", seed),
                FreqSepDataset(te, "test", seed), 1, 1, None, ["high"],
                {"variant": "classic", "seed": seed, "train_examples": tr, "val_examples": va,
                 "test_examples": te},
                default_arch("freqsep"),
                "low tone (2-6 cycles/256, amp 1) + high tone (12-20, amp 0.5) + noise (std 0.5) -> high tone",
            )
        if variant == "audio":
            sr = int(options.get("sample_rate") or _CROSSOVER["sample_rate"])
            seconds = float(options.get("seconds") or _CROSSOVER["seconds"])
            low = tuple(options.get("low_band") or _CROSSOVER["low_band"])
            high = tuple(options.get("high_band") or _high_band(sr))
            tr, va, te = _counts(options, 2000, 200, 500)
            kw = dict(sample_rate=sr, seconds=seconds, low_band=low, high_band=high)
            return TaskData(
                "freqsep", CrossoverDataset(tr, "train", seed, **kw),
                CrossoverDataset(va, "val", seed, **kw), CrossoverDataset(te, "test", seed, **kw),
                1, 2, sr, ["low", "high"],
                {"variant": "audio", "seed": seed, "train_examples": tr, "val_examples": va,
                 "test_examples": te, "sample_rate": sr, "seconds": seconds,
                 "low_band": list(low), "high_band": list(high)},
                default_arch("freqsep", "audio"),
                f"crossover at {sr} Hz: tones in {low[0]:g}-{low[1]:g} Hz and {high[0]:g}-{high[1]:g} Hz "
                "+ noise -> (low, high)",
            )
        raise ConfigError(f"freqsep variant must be 'classic' or 'audio', got {variant!r}.")
    if name == "denoise":
        return _denoise_task(seed, options)
    if name == "classify":
        return _classify_task(seed, options)
    if name == "vad":
        return _vad_task(seed, options)
    raise ConfigError(f"unknown task {name!r}; known: {', '.join(TASKS)}.")


def _split_files(items: list, split: str) -> list:
    """Deterministic 80/10/10 split of a user's files (by sorted order, every 10th ...)."""
    if len(items) < 3:
        return items  # too few files to split: every split sees them (reported in options)
    idx = {"train": [i for i in range(len(items)) if i % 10 not in (8, 9)],
           "val": [i for i in range(len(items)) if i % 10 == 8],
           "test": [i for i in range(len(items)) if i % 10 == 9]}[split]
    return [items[i] for i in idx] or items[-1:]


def _corpus_task(seed: int, options: dict) -> TaskData:
    """``denoise`` with ``corpus="realistic"``: the built corpus of :mod:`rtconv.data`."""
    from ..data.corpus import Pool, corpus_dir, read_manifest
    from ..data.mix import Mixer, MixSettings

    sr = int(options.get("sample_rate") or 48000)
    seconds = float(options.get("seconds") or 4.0)
    snr = tuple(options.get("snr_db") or MixSettings.snr_db)
    level = tuple(options.get("level_db") or MixSettings.level_db)
    tr, va, te = _counts(options, 2000, 64, 64)
    root = corpus_dir(options.get("cache_dir"))
    items = read_manifest(root)
    kinds = dict(options.get("kinds") or MixSettings().kind_weights)
    bands = dict(options.get("bands") or MixSettings().band_weights)
    noise_sources = dict(options.get("noise_sources") or MixSettings().noise_weights)
    speech_kinds = dict(options.get("speech_kinds") or MixSettings().speech_kind_weights)
    subsonic = bool(options.get("speech_subsonic"))
    val_split = options.get("val_split") or "val"
    if val_split not in ("val", "dev"):
        raise ConfigError(f"val_split must be 'val' or 'dev', got {val_split!r}.")
    settings = MixSettings(seconds=seconds, snr_db=snr, level_db=level, kind_weights=kinds, band_weights=bands,
                           noise_weights=noise_sources, speech_kind_weights=speech_kinds,
                           speech_subsonic=subsonic)
    datasets = {}
    # the trainer's own "test" split draws from the corpus's validation items (or the dev split): the
    # real test sources stay untouched until `rtconv bench denoise`
    pools = {"train": Pool.load("train", sr, root, items), "val": Pool.load(val_split, sr, root, items)}
    for split, pool_split, count in (("train", "train", tr), ("val", "val", va), ("test", "val", te)):
        datasets[split] = CorpusDenoiseDataset(Mixer(pools[pool_split], settings, split="train"), count, split,
                                               seed)
    opts = {"seed": seed, "sample_rate": sr, "seconds": seconds, "snr_db": list(snr), "level_db": list(level),
            **({"kinds": kinds} if options.get("kinds") else {}),  # the default recipe records nothing new
            **({"bands": bands} if options.get("bands") else {}),
            **({"noise_sources": noise_sources} if options.get("noise_sources") else {}),
            **({"speech_kinds": speech_kinds} if options.get("speech_kinds") else {}),
            **({"speech_subsonic": True} if subsonic else {}),
            **({"val_split": val_split} if val_split != "val" else {}),
            "train_examples": tr, "val_examples": va, "test_examples": te, "corpus": "realistic",
            "corpus_items": len(items),
            "corpus_sources": sorted({it["source"] for it in items if it["split"] in ("train", "val")})}
    return TaskData(
        "denoise", datasets["train"], datasets["val"], datasets["test"], 1, 1, sr, ["speech"], opts,
        default_arch("denoise", corpus="realistic"),
        f"realistic corpus: real, festival, neural and formant speech in recorded, musical, babble and "
        f"generated noise, rooms, EQ, band limits, codecs, SNR {snr[0]:g}..{snr[1]:g} dB, level "
        f"{level[0]:g}..{level[1]:g} dB, {seconds:g} s clips at {sr} Hz",
    )


def _denoise_task(seed: int, options: dict) -> TaskData:
    corpus = options.get("corpus") or "espeak"
    if corpus == "realistic":
        return _corpus_task(seed, options)
    if corpus != "espeak":
        raise ConfigError(f"corpus must be 'espeak' or 'realistic', got {corpus!r}.")
    sr = int(options.get("sample_rate") or _DENOISE["sample_rate"])
    seconds = float(options.get("seconds") or _DENOISE["seconds"])
    snr = tuple(options.get("snr_db") or _DENOISE["snr_db"])
    gain = tuple(options.get("gain_db") or _DENOISE["gain_db"])
    n_utt = int(options.get("utterances") or _DENOISE["utterances"])
    cache = options.get("cache_dir")
    tr, va, te = _counts(options, 512, 64, 128)
    speech_dir, noise_dir = options.get("speech_dir"), options.get("noise_dir")
    families = options.get("noise_families")
    user_speech = _speech.load_folder(speech_dir, sr) if speech_dir else None
    user_noise = _speech.load_folder(noise_dir, sr) if noise_dir else None

    def speech_for(split: str) -> list[np.ndarray]:
        if user_speech is not None:
            return _split_files(user_speech, split)
        # val shares the training voices but not its sentences; test uses held-out voices
        if split == "train":
            return _speech.speech_corpus("train", n_utt, sr, seed, cache)
        if split == "val":
            return _speech.speech_corpus("train", max(8, n_utt // 8), sr, seed + 1000, cache)
        return _speech.speech_corpus("test", max(8, n_utt // 4), sr, seed, cache)

    datasets = {}
    for split, count in (("train", tr), ("val", va), ("test", te)):
        clean = speech_for(split)
        nsplit = "test" if split == "test" else "train"
        babble = clean if len(clean) >= 3 else None
        fam = None if families is None else [f for f in families if f != "babble" or babble]
        src = _noise.NoiseSource(sr, nsplit, fam, babble,
                                 _split_files(user_noise, split) if user_noise else None)
        datasets[split] = DenoiseDataset(clean, src, count, split, seed, sr, seconds, snr, gain)
    opts = {"seed": seed, "sample_rate": sr, "seconds": seconds, "snr_db": list(snr),
            "gain_db": list(gain), "train_examples": tr, "val_examples": va, "test_examples": te,
            "utterances": n_utt, "speech": str(speech_dir) if speech_dir else "espeak-ng",
            "noise_dir": str(noise_dir) if noise_dir else None,
            "train_noise": list(datasets["train"].noise.families),
            "test_noise": list(datasets["test"].noise.families)}
    if user_speech is None:
        opts.update(train_voices=list(_speech.TRAIN_VOICES), test_voices=list(_speech.TEST_VOICES),
                    train_variants=list(_speech.TRAIN_VARIANTS), test_variants=list(_speech.TEST_VARIANTS))
    return TaskData(
        "denoise", datasets["train"], datasets["val"], datasets["test"], 1, 1, sr, ["speech"], opts,
        default_arch("denoise"),
        f"speech in noise (SNR {snr[0]:g}..{snr[1]:g} dB) -> speech at {sr} Hz, {seconds:g} s clips",
    )


def _classify_task(seed: int, options: dict) -> TaskData:
    from .report import evaluate_classifier

    variant = options.get("variant") or "waveforms"
    if variant != "waveforms":
        raise ConfigError(f"classify variant must be 'waveforms', got {variant!r}.")
    length = int(options.get("length") or 1024)
    cycles = tuple(options.get("cycles") or (4.0, 32.0))
    snr = tuple(options.get("snr_db") or (0.0, 30.0))
    tr, va, te = _counts(options, 4000, 500, 1000)
    kw = dict(length=length, cycles=cycles, snr_db=snr)
    test = WaveformDataset(te, "test", seed, **kw)

    def evaluate(model, data, loss_fn, device):
        return evaluate_classifier(model, data, loss_fn, device, list(WAVEFORMS),
                                   [test.info(i) for i in range(len(test))])

    return TaskData(
        "classify", WaveformDataset(tr, "train", seed, **kw), WaveformDataset(va, "val", seed, **kw), test,
        1, len(WAVEFORMS), None, list(WAVEFORMS),
        {"variant": "waveforms", "seed": seed, "train_examples": tr, "val_examples": va, "test_examples": te,
         "length": length, "cycles": list(cycles), "snr_db": list(snr), "classes": list(WAVEFORMS)},
        default_arch("classify"),
        f"sine, triangle, square or sawtooth ({cycles[0]:g}-{cycles[1]:g} cycles/256 samples, random phase and "
        f"amplitude) in white noise at {snr[0]:g}..{snr[1]:g} dB SNR -> class probabilities per sample",
        evaluate,
    )


def _vad_task(seed: int, options: dict) -> TaskData:
    """``vad``: speech / no speech on the realistic corpus (:mod:`rtconv.data`)."""
    from ..data.corpus import Pool, corpus_dir, read_manifest
    from ..data.mix import Mixer, MixSettings
    from ..vad import evaluate_vad

    sr = int(options.get("sample_rate") or 48000)
    mix_rate = int(options.get("mix_rate") or sr)
    seconds = float(options.get("seconds") or 3.0)
    snr = tuple(options.get("snr_db") or MixSettings.snr_db)
    level = tuple(options.get("level_db") or MixSettings.level_db)
    label_db = float(options.get("label_db") or LABEL_DB)
    tr, va, te = _counts(options, 1000, 64, 128)
    root = corpus_dir(options.get("cache_dir"))
    items = read_manifest(root)
    subsonic = bool(options.get("speech_subsonic"))
    settings = MixSettings(seconds=seconds, snr_db=snr, level_db=level, speech_subsonic=subsonic)
    # as for denoise: the trainer's test split draws from the corpus's validation items; the held-out
    # sources are only ever scored by `rtconv bench vad`
    noise_seconds = float(options.get("noise_seconds") or TASK_OPTIONS["vad"]["noise_seconds"])
    pools = {name: Pool.load(name, mix_rate, root, items, max_noise_seconds=noise_seconds) for name in ("train", "val")}
    datasets = {split: VADDataset(Mixer(pools[pool], settings, split="train"), count, split, seed, sr,
                                  label_db=label_db)
                for split, pool, count in (("train", "train", tr), ("val", "val", va), ("test", "val", te))}
    test = datasets["test"]

    def evaluate(model, data, loss_fn, device):
        return evaluate_vad(model, data, loss_fn, device, [test.infos.get(i, {}) for i in range(len(test))],
                            frame=test.frame)

    opts = {"seed": seed, "sample_rate": sr, "mix_rate": mix_rate, "noise_seconds": noise_seconds,
            "seconds": seconds, "snr_db": list(snr),
            "level_db": list(level), "label_db": label_db, "frame": test.frame, "train_examples": tr,
            "val_examples": va, "test_examples": te, "corpus": "realistic", "corpus_items": len(items),
            "corpus_sources": sorted({it["source"] for it in items if it["split"] in ("train", "val")}),
            **({"speech_subsonic": True} if subsonic else {})}
    return TaskData(
        "vad", datasets["train"], datasets["val"], test, 1, 1, sr, ["speech"], opts, default_arch("vad"),
        f"realistic corpus mixtures (SNR {snr[0]:g}..{snr[1]:g} dB, level {level[0]:g}..{level[1]:g} dB, "
        f"speech-only and noise-only clips, {seconds:g} s at {sr} Hz, mixed at {mix_rate} Hz) -> speech "
        f"probability; label 1 on {1000 // FRAMES_PER_SECOND} ms frames whose clean speech is within {label_db:g} dB "
        "of the clip's "
        "active level",
        evaluate,
    )
