"""Mixing realistic examples: speech, noise, room, microphone, channel, level.

:class:`Mixer` turns a :class:`~rtconv.data.corpus.Pool` into ``(noisy,
target, info)`` examples, drawing every choice from one
``numpy.random.Generator``; any draw can be pinned with a keyword (the test
set pins SNR, level, band and kind).  Order of operations, and where each
degradation goes (input, target, or both):

1. **speech**: a segment of ``seconds`` from one speaker, utterances joined
   with pauses of 0.1-1.2 s (the pauses are where a denoiser shows what it
   leaves behind), each utterance without what lies below hearing
   (``speech_subsonic=False``: a zero-phase 20 Hz high-pass, so no colour in
   the voice's range): some recorded prompts carry their microphone's DC
   offset (up to -36 dBFS), a drift or a rumble as loud as -10 dB under the
   speech, which a target would otherwise have to reproduce and a test
   reference would score; optional microphone colour (:func:`~augment.random_eq`)
   and room (:func:`~augment.room`: input gets the full response, target the
   direct path + early reflections);
2. **noise**: a real recording, music, babble of 3-8 voices of the same
   split, or a generated family, optionally a second one under it, with its
   own colour;
3. **channel band limit**, speech, target and noise alike: the narrower of
   the drawn channel band and the speech source's own bandwidth, so
   band-limited speech is never a full-band target next to full-band noise;
4. **SNR** of what passed the channel: active speech level (frames within
   35 dB of the loudest) over the noise's RMS;
5. **kind**: ``mix``, ``speech`` (clean speech only, nothing to remove:
   target = input, less the late reverberation in a room) or ``noise``
   (noise only: target silent);
6. **level**: one gain for input and target, speech active level
   ``NOMINAL_DBFS + level_db``;
7. **input only**: lossy codec, clipping (also any peak over full scale),
   16-bit quantisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError
from ..train import noise as _noise
from . import augment
from .corpus import SPEECH_KINDS, Pool

__all__ = ["NOMINAL_DBFS", "MixSettings", "Mixer", "active_level_db", "GENERATED_FAMILIES", "TRAIN_ONLY_FAMILIES",
           "NOISE_SOURCES"]

#: Speech active level (dBFS) at ``level_db = 0``: a well-set microphone.
NOMINAL_DBFS = -26.0
#: Speech below this (Hz) is not kept in examples: DC, drift and rumble of the recordings.
SUBSONIC_HZ = 20.0
#: Generated noise families the mixer draws from (babble comes from the pool's own speakers).
GENERATED_FAMILIES: tuple[str, ...] = ("white", "pink", "brown", "hum", "bursts", "clicks", "fan", "keyboard")
#: Generated families drawn only when asked for by name (``noise_weights``, ``rtconv train --noise-sources``):
#: never part of the default recipe or of a test or validation set.
TRAIN_ONLY_FAMILIES: tuple[str, ...] = ("tones",)
#: The noise sources ``noise_weights`` draws between.
NOISE_SOURCES: tuple[str, ...] = ("recorded", "music", "babble", "generated", *TRAIN_ONLY_FAMILIES)


def active_level_db(x: np.ndarray, sample_rate: int, range_db: float = 35.0) -> float:
    """Active level in dBFS: RMS over the 10 ms frames within ``range_db`` of the loudest.

    A simplified ITU-T P.56: pauses do not pull the level down, so an SNR set
    on it means the same for speech with and without gaps.  Silence: -inf.
    """
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, sample_rate // 100)
    n = len(x) // frame
    if n == 0:
        p = float(np.mean(x**2)) if len(x) else 0.0
        return 10 * math.log10(p) if p > 0 else -math.inf
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    top = e.max()
    if top <= 0:
        return -math.inf
    active = e[e >= top * 10 ** (-range_db / 10)]
    return 10 * math.log10(float(active.mean()))


#: What an example holds (``MixSettings.kind_weights``): speech in noise, clean speech, noise alone.
KINDS = ("mix", "speech", "noise")


@dataclass(frozen=True)
class MixSettings:
    """Ranges and probabilities of the mixer; the defaults are the training recipe.

    Levels in dB, probabilities in [0, 1], ``band_weights`` over
    :data:`augment.BAND_LIMITS`, ``noise_weights`` over the noise sources
    ``recorded`` (real recordings), ``music``, ``babble``, ``generated`` and
    ``tones`` (pitched sounds that are not a voice; weight 0 unless set).
    """

    seconds: float = 4.0
    snr_db: tuple[float, float] = (-5.0, 30.0)
    level_db: tuple[float, float] = (-45.0, 10.0)
    kind_weights: dict = field(default_factory=lambda: {"mix": 0.84, "speech": 0.08, "noise": 0.08})
    speech_kind_weights: dict = field(default_factory=lambda: {
        "real": 0.5, "festival": 0.2, "neural": 0.15, "formant": 0.15})
    noise_weights: dict = field(default_factory=lambda: {
        "recorded": 0.45, "music": 0.1, "babble": 0.12, "generated": 0.33})
    second_noise_prob: float = 0.25
    speech_eq_prob: float = 0.5
    noise_eq_prob: float = 0.5
    room_prob: float = 0.3
    band_weights: dict = field(default_factory=lambda: {
        "full": 0.55, "telephone": 0.07, "8k": 0.08, "11k": 0.07, "16k": 0.11, "22k": 0.07, "32k": 0.05})
    codec_prob: float = 0.08
    clip_prob: float = 0.04
    quantize_prob: float = 0.5
    #: keep what each utterance has below 20 Hz (DC, drift, rumble) in the speech and so in the target;
    #: False removes it (zero-phase high-pass)
    speech_subsonic: bool = False

    def __post_init__(self) -> None:
        for name in ("snr_db", "level_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name} must be (low, high), got {getattr(self, name)!r}.")
        for name in ("second_noise_prob", "speech_eq_prob", "noise_eq_prob", "room_prob", "codec_prob",
                     "clip_prob", "quantize_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {v!r}.")
        _check_weights("kind", self.kind_weights, KINDS)
        _check_weights("speech kind", self.speech_kind_weights, SPEECH_KINDS)
        _check_weights("noise", self.noise_weights, NOISE_SOURCES)
        unknown = set(self.band_weights) - set(augment.BAND_LIMITS)
        if unknown:
            raise ConfigError(f"unknown band limit(s) {sorted(unknown)}; known: {', '.join(augment.BAND_LIMITS)}.")
        if self.seconds <= 0:
            raise ConfigError(f"seconds must be positive, got {self.seconds!r}.")

    def replace(self, **changes) -> "MixSettings":
        """A copy with some fields changed."""
        return replace(self, **changes)


def _check_weights(what: str, weights, names: tuple[str, ...]) -> None:
    """Refuse, in one sentence, weights that are not a dict over ``names`` of non-negative numbers, some positive."""
    if (not isinstance(weights, dict) or set(weights) - set(names)
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < math.inf
                   for w in weights.values()) or not any(w > 0 for w in weights.values())):
        raise ConfigError(f"{what} weights must give {', '.join(names)} non-negative weights, some positive; "
                          f"got {weights!r}.")


def _choose(rng: np.random.Generator, weights: dict, available=None) -> str:
    keys = [k for k, w in weights.items() if w > 0 and (available is None or k in available)]
    if not keys:
        raise ConfigError(f"nothing to draw from: weights {weights!r}, available {sorted(available or [])}.")
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _unit(x: np.ndarray) -> np.ndarray:
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / r if r > 0 else x


class Mixer:
    """Draws realistic ``(noisy, target, info)`` examples from a :class:`Pool`.

    Parameters
    ----------
    pool : Pool
        The split's speech and noise at the mixing rate.
    settings : MixSettings
    split : {"train", "test"}, optional
        Parameter ranges of the generated noise families (default: the
        pool's split, ``val`` drawing from the training ranges).
    """

    def __init__(self, pool: Pool, settings: MixSettings | None = None, split: str | None = None) -> None:
        if not pool.speakers:
            raise ConfigError(f"the {pool.split!r} pool holds no speech; rebuild the corpus.")
        self.pool, self.settings = pool, settings or MixSettings()
        self.sample_rate = pool.sample_rate
        self.noise_split = split or ("test" if pool.split == "test" else "train")
        self._by_kind = {k: ids for k in SPEECH_KINDS if (ids := pool.speaker_ids(k))}
        if not any(w > 0 and k in self._by_kind for k, w in self.settings.speech_kind_weights.items()):
            asked = ", ".join(k for k, w in self.settings.speech_kind_weights.items() if w > 0)
            raise ConfigError(f"the {pool.split!r} pool has no {asked} speech (it has "
                              f"{', '.join(self._by_kind)}); build those sources with `rtconv data build` or "
                              f"give a kind it has a share.")
        self._recorded = sorted(f for f in pool.noise if f != "music")
        self._rooms = augment.rooms_available()
        self._audible_cache: dict = {}
        self._sos = None

    def _audible(self, x: np.ndarray, it: dict) -> np.ndarray:
        """An utterance without its content below :data:`SUBSONIC_HZ` (zero-phase), the last few kept."""
        key = it["id"]
        if key in self._audible_cache:
            return self._audible_cache[key]
        from scipy import signal

        if self._sos is None:
            self._sos = signal.butter(2, SUBSONIC_HZ, "highpass", fs=self.sample_rate, output="sos")
        x = np.asarray(x, np.float64)
        y = x - x.mean()
        if len(y) > 1:
            y = signal.sosfiltfilt(self._sos, y, padlen=min(len(y) - 1, self.sample_rate // 10))
        if len(self._audible_cache) >= 64:  # a segment reuses a speaker's few utterances; bound the memory
            self._audible_cache.pop(next(iter(self._audible_cache)))
        self._audible_cache[key] = y
        return y

    @property
    def speech_kinds(self) -> list[str]:
        """The speech kinds this pool has, in :data:`~.corpus.SPEECH_KINDS` order (most real first)."""
        return list(self._by_kind)

    # -- speech -------------------------------------------------------------------------
    def speech_segment(self, rng: np.random.Generator, n: int, speech_kind: str | None = None,
                       speaker: str | None = None) -> tuple[np.ndarray, dict]:
        """``n`` samples of one speaker: utterances joined by pauses, starting anywhere in the first."""
        if speaker is None:
            kind = speech_kind or _choose(rng, self.settings.speech_kind_weights, self._by_kind)
            if kind not in self._by_kind:
                raise ConfigError(f"the {self.pool.split!r} pool has no {kind!r} speech.")
            speaker = self._by_kind[kind][int(rng.integers(len(self._by_kind[kind])))]
        utts = self.pool.speakers[speaker]
        out = np.zeros(n)
        pos = -int(rng.integers(0, max(1, n // 4)))  # often start mid-utterance, as a live stream does
        used, bw = [], []
        while pos < n:
            x, it = utts[int(rng.integers(len(utts)))]
            a, b = max(0, -pos), min(len(x), n - pos)
            if b > a:
                out[pos + a: pos + b] += x[a:b] if self.settings.speech_subsonic else self._audible(x, it)[a:b]
                used.append(it["id"])
                bw.append(it["bandwidth_hz"])
            pos += len(x) + int(rng.uniform(0.1, 1.2) * self.sample_rate)
        first = utts[0][1]
        return out, {"speaker": speaker, "speech_kind": first["speech_kind"], "language": first["language"],
                     "speech_source": first["source"], "utterances": used,
                     "speech_bandwidth_hz": float(min(bw)) if bw else 0.0}

    # -- noise --------------------------------------------------------------------------
    def noise_segment(self, rng: np.random.Generator, n: int, family: str | None = None) -> tuple[np.ndarray, str]:
        """``n`` samples of unit-RMS noise and its label (``recorded:<family>``, ``music``, ``babble``, a generated family)."""
        s = self.settings
        if family is None:
            avail = {"generated", "babble"}
            if self._recorded:
                avail.add("recorded")
            if "music" in self.pool.noise:
                avail.add("music")
            avail.update(TRAIN_ONLY_FAMILIES)  # each its own source, drawn only when weighted
            source = _choose(rng, s.noise_weights, avail)
            if source == "recorded":
                family = self._recorded[int(rng.integers(len(self._recorded)))]
            elif source == "generated":
                family = GENERATED_FAMILIES[int(rng.integers(len(GENERATED_FAMILIES)))]
            else:
                family = source
        if family == "babble":
            talkers = int(rng.integers(3, 9))
            ids = list(self.pool.speakers)
            x = np.zeros(n)
            for _ in range(talkers):
                seg, _info = self.speech_segment(rng, n, speaker=ids[int(rng.integers(len(ids)))])
                x += rng.uniform(0.5, 1.0) * _unit(seg)
            return _unit(x), "babble"
        if family in self.pool.noise:
            recs = self.pool.noise[family]
            x, it = recs[int(rng.integers(len(recs)))]
            return _unit(_noise.crop(x, n, rng).astype(np.float64)), family
        if family in GENERATED_FAMILIES or family in TRAIN_ONLY_FAMILIES:
            return _noise.generate(family, n, self.sample_rate, rng, self.noise_split).astype(np.float64), family
        raise ConfigError(f"unknown noise {family!r}; this pool has {sorted(self.pool.noise)} and the "
                          f"generated families {', '.join(GENERATED_FAMILIES)}.")

    # -- the example --------------------------------------------------------------------
    def example(self, rng: np.random.Generator, *, kind: str | None = None, snr_db: float | None = None,
                level_db: float | None = None, band: str | None = None, speech_kind: str | None = None,
                noise: str | None = None, room: bool | None = None, codec: str | None | bool = None,
                seconds: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
        """One example: float32 ``noisy`` and ``target`` of equal length, and what was drawn.

        Any keyword pins that draw; ``codec=False`` forbids a codec, a codec
        name forces it.
        """
        s, sr = self.settings, self.sample_rate
        n = int(round((seconds or s.seconds) * sr))
        kind = kind or _choose(rng, s.kind_weights)
        if kind not in ("mix", "speech", "noise"):
            raise ConfigError(f"kind must be 'mix', 'speech' or 'noise', got {kind!r}.")
        info: dict = {"kind": kind}
        speech, sp = self.speech_segment(rng, n, speech_kind)
        info.update(sp)
        target = speech
        if rng.random() < s.speech_eq_prob:
            speech, info["speech_eq"] = augment.random_eq(speech, sr, rng)
            target = speech
        use_room = (rng.random() < s.room_prob) if room is None else bool(room)
        if use_room and self._rooms:
            h, early, info["room"] = augment.room(sr, rng)
            from scipy import signal

            target = signal.fftconvolve(speech, early)[:n]
            speech = signal.fftconvolve(speech, h)[:n]
        nz, info["noise"] = self.noise_segment(rng, n, noise)
        if noise is None and rng.random() < s.second_noise_prob:
            extra, label = self.noise_segment(rng, n)
            if label != info["noise"]:
                nz = _unit(nz + rng.uniform(0.2, 0.6) * extra)
                info["noise"] += f"+{label}"
        if rng.random() < s.noise_eq_prob:
            nz, info["noise_eq"] = augment.random_eq(nz, sr, rng)
            nz = _unit(nz)
        # the channel: the narrower of the drawn band and the speech source's own bandwidth.  It is
        # linear, so it is applied to speech, target and noise apart, before the SNR is set: the SNR
        # is the one the model hears.
        band = band or _choose(rng, s.band_weights)
        edges = augment.BAND_LIMITS[band]
        src_bw = info["speech_bandwidth_hz"]
        if src_bw and src_bw < 0.9 * sr / 2 and (edges is None or src_bw < edges[1]):
            edges = (0.0 if edges is None else edges[0], src_bw)
        info["band"], info["band_hz"] = band, (None if edges is None else
                                               [edges[0], edges[1] if math.isfinite(edges[1]) else None])
        speech = augment.band_limit(speech, sr, edges)
        target = augment.band_limit(target, sr, edges)
        nz = augment.band_limit(nz, sr, edges)
        snr = float(rng.uniform(*s.snr_db)) if snr_db is None else float(snr_db)
        lvl = active_level_db(speech, sr)
        if not math.isfinite(lvl):
            lvl = NOMINAL_DBFS
        noise_power = float(np.mean(nz**2))
        noise_rms = 10 ** ((lvl - snr) / 20) / math.sqrt(noise_power) if noise_power > 0 else 0.0
        if kind == "mix":
            noisy, info["snr_db"] = speech + noise_rms * nz, snr
        elif kind == "speech":  # nothing to remove but, in a room, the late reverberation
            noisy, info["snr_db"] = speech.copy(), math.inf
        else:  # noise only: the level below is the noise's, set as if speech were there
            noisy, target, info["snr_db"] = noise_rms * nz, np.zeros(n), -math.inf
        # one gain for both: speech active level at NOMINAL_DBFS + level_db
        level = float(rng.uniform(*s.level_db)) if level_db is None else float(level_db)
        g = 10 ** ((NOMINAL_DBFS + level - lvl) / 20)
        noisy, target = noisy * g, target * g
        info["level_db"] = level
        # input only: codec, clipping, quantisation
        if codec is None:
            names = list(augment.CODECS)
            codec = names[int(rng.integers(len(names)))] if rng.random() < s.codec_prob else False
        if codec:
            noisy = augment.codec(noisy, sr, str(codec), quality=float(rng.uniform(0.2, 0.7)))
            info["codec"] = str(codec)
        if rng.random() < s.clip_prob:
            thr = float(rng.uniform(0.3, 0.9)) * max(1e-6, float(np.abs(noisy).max()))
            noisy = augment.clip(noisy, thr)
            info["clipped_at"] = thr
        noisy = augment.clip(noisy, 1.0)
        if rng.random() < s.quantize_prob:
            noisy = augment.quantize(noisy, 16)
            info["quantized"] = 16
        return noisy.astype(np.float32), target.astype(np.float32), info
