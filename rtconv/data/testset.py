"""The realistic held-out test set: test sources only, deterministic from a seed.

Built from the corpus's ``test`` split (speakers, voices, packages and noise
recordings that training never uses) with the same :class:`~.mix.Mixer` as
training but with every draw that a table is grouped by pinned.  Five parts:

``grid``
    Mixtures at input SNRs :data:`SNRS` x every noise of the test pool (each
    recorded family, music, babble, and the generated families with their
    test parameter ranges), speech kinds in turn (real speech every other
    item), a third of them reverberant (every speech kind); nominal level, 48 kHz, the
    channel as wide as the speech recording (a dev set's: :data:`DEV_GRID_BANDS`).
``band``
    Base mixtures at 5 dB SNR, each also presented band-limited or through a
    codec, or written at 16 or 44.1 kHz (:data:`BAND_VARIANTS`): paired, so
    the table shows what the band limit itself costs.
``level``
    Base mixtures scaled so that the input peaks at each of :data:`PEAKS_DBFS`.
``dc``
    Base mixtures at a quiet microphone's level (peak :data:`DC_PEAK_DBFS`)
    with a constant offset added, as cheap microphones and sound cards add
    one (:data:`DC_OFFSETS_DBFS`; ``None``: no offset); paired.  SI-SDR
    removes each signal's mean, so the offset itself costs nothing there:
    the rows show what it does to the model.
``clean``
    Clean speech, nothing to remove (the model should pass it unchanged), at
    the nominal level and again (the same draws) normalised to peak
    :data:`LOUD_PEAK_DBFS`, as a mastered recording is (group
    :data:`LOUD_GROUP`).
``noise``
    Noise only (the model should attenuate it).

:func:`fingerprint` hashes every sample and label, so two machines can tell
whether they scored the same set; :func:`source_fingerprints` hashes what each
speech source and each noise contributes, so where two sets differ the
source (or the library that synthesizes, resamples or mixes it) can be found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from . import augment
from .corpus import Pool
from .mix import GENERATED_FAMILIES, Mixer, MixSettings

__all__ = ["SCORED_SPLITS", "SNRS", "DEV_GRID_BANDS", "PEAKS_DBFS", "DC_PEAK_DBFS", "LOUD_PEAK_DBFS", "LOUD_GROUP", "DC_OFFSETS_DBFS", "BAND_VARIANTS", "TestExample", "make_test_set", "fingerprint",
           "source_fingerprints"]

SNRS: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
PEAKS_DBFS: tuple[float, ...] = (0.0, -10.0, -20.0, -30.0, -40.0)
#: The ``dc`` part: mixtures peaking at DC_PEAK_DBFS, with these offsets (dBFS; None: none).
DC_PEAK_DBFS = -30.0
#: The peak of the loud clean-speech items (a normalised recording), dBFS, and their group.
LOUD_PEAK_DBFS = -1.0
LOUD_GROUP = f"peak {LOUD_PEAK_DBFS:g} dBFS"
DC_OFFSETS_DBFS: tuple[float | None, ...] = (None, -60.0, -50.0, -40.0)
#: Band variants: (label, channel band key or None, codec or None, file rate).
BAND_VARIANTS: tuple[tuple[str, str | None, str | None, int], ...] = (
    ("full band 48k", None, None, 48000),
    ("16 kHz content", "32k", None, 48000),
    ("11 kHz content", "22k", None, 48000),
    ("8 kHz content", "16k", None, 48000),
    ("telephone", "telephone", None, 48000),
    ("vorbis", None, "vorbis", 48000),
    ("mp3", None, "mp3", 48000),
    ("file at 44.1 kHz", None, None, 44100),
    ("file at 16 kHz", None, None, 16000),
)
#: The channel of a dev set's grid items, in turn (:data:`augment.BAND_LIMITS` keys; the narrower of it and the
#: recording's own band is applied, to speech and noise alike, as every mixture's).  The test set's grid is
#: 80 % content up to 11 kHz (11 % up to 4 kHz, 8 kHz recordings; 17 % up to 8 kHz; 54 % up to 11 kHz: its real
#: speech is prompts and game audio, its synthetic voices 16-22 kHz), the dev voices mostly 44.1 kHz; a
#: wide-band grid ranked a candidate that kept more high band and removed less noise above v9, where held out
#: it was behind (models/denoiser-history.md, fortieth session).  The same mix of bands, pinned in turn:
DEV_GRID_BANDS: tuple[str, ...] = ("22k", "8k", "22k", "16k", "full", "22k", "16k", "22k", "32k", "22k")
#: The splits a set of this design is built from, and what each is for (the benches print it).
SCORED_SPLITS: dict[str, str] = {
    "test": "realistic held-out test set (test sources, never trained on)",
    "val": "VALIDATION set of the test set's design (training speakers, other files; for choosing a model, "
           "not for reporting)",
    "dev": "DEV set of the test set's design (voices and noise of packages no model trains on; for choosing a "
           "model on voices and noise it never heard, not for reporting)",
}
_RATE = 48000
_STREAM = 17  # keeps the test set's random streams apart from training's


@dataclass
class TestExample:
    """One test item: ``noisy`` and ``clean`` at ``rate`` Hz, and how it was made.

    ``part`` is ``grid``, ``band``, ``level``, ``dc``, ``clean`` or ``noise``;
    ``group`` the row it belongs to in that part's table; ``info`` every draw
    (speaker, speech kind, noise, SNR, room, band, level...).
    """

    __test__ = False  # a data class, not a pytest test class

    noisy: np.ndarray
    clean: np.ndarray
    rate: int
    part: str
    group: str
    info: dict = field(default_factory=dict)


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    if rate == _RATE:
        return np.asarray(x, np.float32)
    return soxr.resample(np.asarray(x, np.float32), _RATE, rate, quality="HQ").astype(np.float32)


def _at_peak(x: np.ndarray, y: np.ndarray, peak_dbfs: float,
             offset: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Input and target scaled so that the input peaks at ``peak_dbfs``; the input, plus a constant
    ``offset`` (full scale 1) when one is given, quantised to 16 bits as a recording would be."""
    g = 10 ** (peak_dbfs / 20) / max(1e-9, float(np.abs(x).max()))
    xg = x * g if offset is None else x * g + offset
    return augment.quantize(xg, 16).astype(np.float32), (y * g).astype(np.float32)


def make_test_set(pool: Pool, seed: int = 0, per_cell: int = 1, band_items: int = 6, level_items: int = 6,
                  clean_items: int = 8, noise_items: int = 8, seconds: float = 6.0,
                  snrs: Sequence[float] = SNRS, dc_items: int = 6) -> list[TestExample]:
    """Build the test set from the test ``pool`` (must be at 48 kHz); see the module docstring.

    A ``val`` or ``dev`` pool gives a set of the same design to choose a model
    on (:data:`SCORED_SPLITS`).
    """
    if pool.split not in SCORED_SPLITS:
        raise ConfigError(f"the test set is built from the 'test' split only (or 'val' or 'dev', to choose "
                          f"between models without looking at the test sources), got a {pool.split!r} pool.")
    if pool.sample_rate != _RATE:
        raise ConfigError(f"build the test pool at {_RATE} Hz, got {pool.sample_rate!r}.")
    for name, v in (("per_cell", per_cell), ("band_items", band_items), ("level_items", level_items),
                    ("clean_items", clean_items), ("noise_items", noise_items), ("dc_items", dc_items)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {v!r}.")
    # the test set has no random degradations of its own: every one is pinned per part
    settings = MixSettings(seconds=seconds, speech_eq_prob=0.5, noise_eq_prob=0.0, second_noise_prob=0.0,
                           codec_prob=0.0, clip_prob=0.0, quantize_prob=1.0, room_prob=0.0)
    mixer = Mixer(pool, settings, split=pool.split if pool.split == "test" else "train")
    kinds = mixer.speech_kinds
    noises = sorted(pool.noise) + ["babble"] + [f for f in GENERATED_FAMILIES]
    out: list[TestExample] = []

    def rng(part: int, i: int) -> np.random.Generator:
        return np.random.default_rng([seed, _STREAM, part, i])

    def kind_for(i: int) -> str:
        # real speech every other item when there is any, the other kinds in turn
        if "real" in kinds and (i % 2 == 0 or len(kinds) == 1):
            return "real"
        others = [k for k in kinds if k != "real"] or kinds
        return others[(i // 2) % len(others)]

    i = 0
    for snr in snrs:
        for nz in noises:
            for _ in range(per_cell):
                r = rng(0, i)
                band = DEV_GRID_BANDS[i % len(DEV_GRID_BANDS)] if pool.split == "dev" else "full"
                x, y, info = mixer.example(r, kind="mix", snr_db=snr, level_db=0.0, band=band,
                                           speech_kind=kind_for(i), noise=nz, room=(i % 3 == 2), codec=False)
                out.append(TestExample(x, y, _RATE, "grid", f"SNR {snr:g}", info))
                i += 1
    full_band = [k for k in kinds if k == "real"] or kinds
    for j in range(band_items):
        for v, (label, band, codec, rate) in enumerate(BAND_VARIANTS):
            r = rng(1, j)  # the same draw for every variant: paired
            x, y, info = mixer.example(r, kind="mix", snr_db=5.0, level_db=0.0, band=band or "full",
                                       speech_kind=full_band[j % len(full_band)],
                                       noise=noises[(3 * j) % len(noises)], room=False, codec=codec or False)
            info = dict(info, variant=label, file_rate=rate)
            out.append(TestExample(_resample(x, rate), _resample(y, rate), rate, "band", label, info))
    for j in range(level_items):
        for peak in PEAKS_DBFS:
            r = rng(2, j)
            x, y, info = mixer.example(r, kind="mix", snr_db=5.0, level_db=0.0, band="full",
                                       speech_kind=kind_for(j), noise=noises[(5 * j + 1) % len(noises)],
                                       room=False, codec=False)
            xs, ys = _at_peak(x, y, peak)
            out.append(TestExample(xs, ys, _RATE, "level", f"peak {peak:g} dBFS", dict(info, peak_dbfs=peak)))
    for j in range(dc_items):
        for dc in DC_OFFSETS_DBFS:
            r = rng(5, j)
            x, y, info = mixer.example(r, kind="mix", snr_db=5.0, level_db=0.0, band="full",
                                       speech_kind=kind_for(j), noise=noises[(7 * j + 2) % len(noises)],
                                       room=False, codec=False)
            xs, ys = _at_peak(x, y, DC_PEAK_DBFS, 0.0 if dc is None else 10 ** (dc / 20))
            label = "no offset" if dc is None else f"offset {dc:g} dBFS"
            out.append(TestExample(xs, ys, _RATE, "dc", label, dict(info, peak_dbfs=DC_PEAK_DBFS, dc_dbfs=dc)))
    for j in range(clean_items):
        r = rng(3, j)
        x, y, info = mixer.example(r, kind="speech", level_db=0.0, band="full", speech_kind=kind_for(j),
                                   room=False, codec=False)
        out.append(TestExample(x, y, _RATE, "clean", info["speech_kind"], info))
    for ex in out[len(out) - clean_items:]:  # the same draws, normalised as a mastered recording is
        xs, ys = _at_peak(ex.noisy, ex.clean, LOUD_PEAK_DBFS)
        out.append(TestExample(xs, ys, _RATE, "clean", LOUD_GROUP, dict(ex.info, peak_dbfs=LOUD_PEAK_DBFS)))
    for j in range(noise_items):
        r = rng(4, j)
        x, y, info = mixer.example(r, kind="noise", level_db=0.0, band="full", noise=noises[j % len(noises)],
                                   room=False, codec=False)
        out.append(TestExample(x, y, _RATE, "noise", info["noise"], info))
    return out


def fingerprint(examples: Sequence[TestExample]) -> str:
    """A short SHA-256 of every example's audio, rate, part and labels."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(np.ascontiguousarray(ex.noisy, np.float32).tobytes())
        h.update(np.ascontiguousarray(ex.clean, np.float32).tobytes())
        h.update(json.dumps([ex.rate, ex.part, ex.group, ex.info], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def source_fingerprints(examples: Sequence[TestExample]) -> dict[str, str]:
    """Short SHA-256s of what each source contributes to the set, by key:

    ``speech:<source>``
        the clean references of every item whose speech comes from that source
        (with its room, EQ and level);
    ``noise:<family>``
        the noise-only items of that noise (``babble`` is made of test speech).

    Two machines whose :func:`fingerprint` differs compare these to find the
    sources whose audio differs: a synthesizer's new version changes its own
    voices' keys.  Equal keys with a different fingerprint point at the mixing
    (the noises in mixtures are scaled to the speech, so they are not keyed).
    """
    hashes: dict = {}
    for ex in examples:
        if ex.part == "noise":
            key, audio = f"noise:{ex.info.get('noise')}", ex.noisy
        elif ex.info.get("speech_source"):
            key, audio = f"speech:{ex.info['speech_source']}", ex.clean
        else:
            continue
        hashes.setdefault(key, hashlib.sha256()).update(np.ascontiguousarray(audio, np.float32).tobytes())
    return {k: h.hexdigest()[:16] for k, h in sorted(hashes.items())}
