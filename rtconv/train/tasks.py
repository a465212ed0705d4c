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

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..vad import FRAMES_PER_SECOND, LABEL_DB
from . import noise as _noise
from . import speech as _speech
from .choices import TASK_OPTIONS, TASKS, WAVEFORMS, default_arch
from .datasets import (_CROSSOVER, _DENOISE, SPLIT_IDS, CorpusDenoiseDataset, CrossoverDataset, DenoiseDataset,
                       FreqSepDataset, SinesDataset, VADDataset, WaveformDataset, _high_band, materialize, shifted)

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
    kinds = dict(options.get("kinds") or MixSettings().kind_weights)
    noise_sources = dict(options.get("noise_sources") or MixSettings().noise_weights)
    settings = MixSettings(seconds=seconds, snr_db=snr, level_db=level, speech_subsonic=subsonic, kind_weights=kinds,
                           noise_weights=noise_sources)
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
            **({"speech_subsonic": True} if subsonic else {}),
            **({"kinds": kinds} if options.get("kinds") else {}),  # the default recipe records nothing new
            **({"noise_sources": noise_sources} if options.get("noise_sources") else {})}
    return TaskData(
        "vad", datasets["train"], datasets["val"], test, 1, 1, sr, ["speech"], opts, default_arch("vad"),
        f"realistic corpus mixtures (SNR {snr[0]:g}..{snr[1]:g} dB, level {level[0]:g}..{level[1]:g} dB, "
        f"speech-only and noise-only clips"
        + (" (" + ", ".join(f"{k} {v:g}" for k, v in kinds.items()) + ")" if options.get("kinds") else "")
        + (", noise " + ", ".join(f"{k} {v:g}" for k, v in noise_sources.items()) if options.get("noise_sources")
           else "")
        + f", {seconds:g} s at {sr} Hz, mixed at {mix_rate} Hz) -> speech "
        f"probability; label 1 on {1000 // FRAMES_PER_SECOND} ms frames whose clean speech is within {label_db:g} dB "
        "of the clip's "
        "active level",
        evaluate,
    )
