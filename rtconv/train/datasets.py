"""The examples of the training tasks, as ``torch.utils.data.Dataset`` objects generated on the fly (an index always
yields the same example), and :func:`materialize`, which computes a split once, in worker processes."""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..vad import FRAMES_PER_SECOND, LABEL_DB
from . import noise as _noise
from . import speech as _speech
from .choices import TASK_OPTIONS, WAVEFORMS


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
