"""Degradations that match how speech reaches users: rooms, microphones, channels, codecs.

Every function takes float audio at ``sample_rate`` Hz and returns float64
audio of the same length, and every random choice comes from the
``numpy.random.Generator`` it is given, so an example is reproduced from its
seed.  What is applied where (see :mod:`rtconv.data.mix`):

- **speech only, target too**: :func:`random_eq` (the microphone's colour);
  :func:`room` (reverberation: the input gets the whole impulse response,
  the target the direct path and early reflections, :data:`EARLY_MS`);
- **noise only**: :func:`random_eq`;
- **the channel, input and target alike**: :func:`band_limit` (telephone,
  8/11/16 kHz content, a 16 or 22.05 kHz source, a 150 or 300 Hz low cut), because a model must not
  learn that energy above a band edge is noise;
- **input only**: :func:`codec` (lossy round trip through soundfile),
  :func:`clip`, :func:`quantize`.

Filters are designed with :mod:`scipy.signal` (Butterworth) or the RBJ
audio-EQ cookbook biquads (peaking and shelving sections, which scipy does
not offer), resampling uses soxr, codecs libsndfile's Vorbis, Opus and MP3.
"""

from __future__ import annotations

import functools
import io
import math
import sys
from typing import Sequence

import numpy as np
from scipy import signal

from ..errors import ConfigError

__all__ = [
    "BAND_LIMITS",
    "CODECS",
    "EARLY_MS",
    "peaking",
    "shelf",
    "random_eq",
    "band_limit",
    "codec",
    "clip",
    "quantize",
    "room",
    "rooms_available",
    "effective_bandwidth",
]

#: Band limits of the channel in Hz (``None``: full band), drawn by the mixer.  A high edge of
#: ``math.inf`` is a low cut alone: the whole band above it passes.
BAND_LIMITS: dict[str, tuple[float, float] | None] = {
    "full": None,
    "telephone": (300.0, 3400.0),
    # low cuts without a top: a telephone's 300 Hz high-pass (the edge of the telephone band that costs the
    # denoiser most; models/denoiser-history.md, twenty-ninth session) and a headset's or call app's 150 Hz
    "hp300": (300.0, math.inf),
    "hp150": (150.0, math.inf),
    "8k": (0.0, 4000.0 * 0.95),    # content of an 8 kHz file
    "11k": (0.0, 5512.5 * 0.95),   # 11.025 kHz
    "16k": (0.0, 8000.0 * 0.95),   # content of a 16 kHz file, wide-band speech
    "22k": (0.0, 11025.0 * 0.95),  # 22.05 kHz, a lot of TTS and game audio
    "32k": (0.0, 16000.0 * 0.95),  # 32 kHz, or an MP3 encoder's 16 kHz low-pass
}
#: Lossy round trips: (libsndfile format, subtype) and the low-pass the encoder applies.
CODECS: dict[str, tuple[str, str]] = {
    "vorbis": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Reflections up to this long after the direct path stay in the target.
EARLY_MS = 50.0


def _biquad(b: Sequence[float], a: Sequence[float]) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64) / a[0]
    a = np.asarray(a, dtype=np.float64) / a[0]
    return np.concatenate([b, a])[None]


def peaking(freq_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """A peaking-EQ biquad (RBJ cookbook) as one ``sos`` row."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq_hz / sample_rate
    alpha = math.sin(w0) / (2 * q)
    c = math.cos(w0)
    return _biquad([1 + alpha * A, -2 * c, 1 - alpha * A], [1 + alpha / A, -2 * c, 1 - alpha / A])


def shelf(freq_hz: float, gain_db: float, sample_rate: int, high: bool) -> np.ndarray:
    """A low or high shelf biquad (RBJ cookbook, slope 1) as one ``sos`` row."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq_hz / sample_rate
    alpha = math.sin(w0) / 2 * math.sqrt(2)
    c = math.cos(w0)
    s = 1 if high else -1
    sq = 2 * math.sqrt(A) * alpha
    b = [A * ((A + 1) + s * (A - 1) * c + sq), -2 * s * A * ((A - 1) + s * (A + 1) * c),
         A * ((A + 1) + s * (A - 1) * c - sq)]
    a = [(A + 1) - s * (A - 1) * c + sq, 2 * s * ((A - 1) - s * (A + 1) * c), (A + 1) - s * (A - 1) * c - sq]
    return _biquad(b, a)


def random_eq(x: np.ndarray, sample_rate: int, rng: np.random.Generator,
              max_gain_db: float = 6.0) -> tuple[np.ndarray, dict]:
    """A random second-order colour: one peak/dip and a low or high shelf, each ±``max_gain_db``.

    Returns the filtered signal and the parameters (for the example's record).
    """
    nyq = sample_rate / 2
    f_peak = math.exp(rng.uniform(math.log(150.0), math.log(min(8000.0, 0.8 * nyq))))
    g_peak = float(rng.uniform(-max_gain_db, max_gain_db))
    q = float(rng.uniform(0.5, 2.0))
    high = bool(rng.random() < 0.5)
    f_shelf = float(rng.uniform(2000.0, min(8000.0, 0.8 * nyq))) if high else float(rng.uniform(80.0, 400.0))
    g_shelf = float(rng.uniform(-max_gain_db, max_gain_db))
    sos = np.concatenate([peaking(f_peak, g_peak, q, sample_rate), shelf(f_shelf, g_shelf, sample_rate, high)])
    params = {"peak_hz": round(f_peak, 1), "peak_db": round(g_peak, 2), "q": round(q, 2),
              "shelf": "high" if high else "low", "shelf_hz": round(f_shelf, 1), "shelf_db": round(g_shelf, 2)}
    return signal.sosfilt(sos, np.asarray(x, dtype=np.float64)), params


def band_limit(x: np.ndarray, sample_rate: int, band: tuple[float, float] | None) -> np.ndarray:
    """``x`` with nothing outside ``band = (low_hz, high_hz)``: what a band-limited channel passes.

    The high edge is a steep zero-phase elliptic low-pass (order 8, run
    forwards and backwards: 160 dB stop band a few percent above the edge),
    as a resampler's anti-alias filter is; a low edge above 0 adds an order-4
    high-pass (a telephone's 300 Hz).  ``None`` returns ``x`` unchanged; a
    high edge at or above Nyquist (``math.inf``: a low cut alone) leaves the
    top of the band alone.
    """
    x = np.asarray(x, dtype=np.float64)
    if band is None:
        return x.copy()
    lo, hi = float(band[0]), float(band[1])
    nyq = sample_rate / 2
    if not 0 <= lo < hi:
        raise ConfigError(f"a band must be (low_hz, high_hz) with 0 <= low < high, got {band!r}.")
    y = x
    if hi < 0.98 * nyq:
        y = signal.sosfiltfilt(_band_sos("lowpass", hi, sample_rate), y)
    if lo > 0:
        y = signal.sosfiltfilt(_band_sos("highpass", lo, sample_rate), y)
    return np.ascontiguousarray(y)


@functools.lru_cache(maxsize=256)
def _band_sos(kind: str, edge_hz: float, sample_rate: int) -> np.ndarray:
    """:func:`band_limit`'s filters, designed once per edge: a mixture limits its speech, target and noise
    to the same few edges (the named bands, the sources' own bandwidths), and the design took a tenth of
    the mixing time. Shared by every call: not to be written to (scipy's filters need it writable)."""
    return (signal.ellip(8, 0.05, 80, edge_hz, "lowpass", fs=sample_rate, output="sos") if kind == "lowpass"
            else signal.butter(2, edge_hz, "highpass", fs=sample_rate, output="sos"))


def codec(x: np.ndarray, sample_rate: int, name: str, quality: float = 0.3) -> np.ndarray:
    """A lossy encode/decode round trip through libsndfile (soundfile), same length as ``x``.

    Parameters
    ----------
    name : str
        A key of :data:`CODECS` (``"vorbis"``, ``"opus"``, ``"mp3"``).
    quality : float
        0 (best) .. 1 (worst), libsndfile's ``compression_level``.

    Opus runs at 48, 24, 16, 12 or 8 kHz only; other rates go through 48 kHz
    with soxr.  The decoder's delay (Opus pre-skip, MP3 padding) is found by
    cross-correlation and removed, so the output stays aligned.
    """
    import soundfile as sf
    import soxr

    if name not in CODECS:
        raise ConfigError(f"unknown codec {name!r}; known: {', '.join(CODECS)}.")
    fmt, subtype = CODECS[name]
    x = np.asarray(x, dtype=np.float64)
    rate = sample_rate
    y = x
    if name == "opus" and rate not in (8000, 12000, 16000, 24000, 48000):
        y, rate = soxr.resample(x, sample_rate, 48000, quality="HQ"), 48000
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, format=fmt, subtype=subtype, compression_level=float(quality)) as f:
        f.write(np.clip(y, -1.0, 1.0).astype(np.float32))
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float64")
    if rate != sample_rate:
        z = soxr.resample(z, rate, sample_rate, quality="HQ")
    lag = _lag(x, z, max_lag=int(0.08 * sample_rate))
    z = z[lag:]
    return np.pad(z, (0, max(0, len(x) - len(z))))[: len(x)]


def _lag(reference: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    n = min(len(reference), len(y))
    if n == 0:
        return 0
    c = signal.correlate(y[:n], reference[:n], mode="full", method="fft")
    mid = n - 1
    return int(np.argmax(c[mid: mid + max_lag + 1]))


def clip(x: np.ndarray, threshold: float) -> np.ndarray:
    """Hard clipping at ``±threshold`` (a too hot input stage)."""
    return np.clip(np.asarray(x, dtype=np.float64), -threshold, threshold)


def quantize(x: np.ndarray, bits: int = 16) -> np.ndarray:
    """Rounding to ``bits``-bit PCM and back, as a 16-bit file or device does."""
    q = float(2 ** (bits - 1))
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * q), -q, q - 1) / q


def _pyroomacoustics():
    """Import pyroomacoustics without starting PortAudio (raises ImportError when it is not installed).

    pyroomacoustics' ``datasets`` and ``recognition`` modules import
    sounddevice when it is installed (to play samples), and importing
    sounddevice initializes PortAudio: every process that mixes a room would
    probe the sound devices, open a JACK client when a JACK server runs, and
    abort at exit (``pa_jack.c: Terminate: Assertion `err == 0'``) if that
    server stopped meanwhile: a training worker killed by SIGABRT.  Rooms need
    none of it, so sounddevice is hidden while pyroomacoustics imports (those
    imports are guarded; it then plays nothing).  A process that already
    imported sounddevice (a live stream) keeps its own.
    """
    if "pyroomacoustics" in sys.modules:
        return sys.modules["pyroomacoustics"]
    hide = "sounddevice" not in sys.modules
    if hide:
        sys.modules["sounddevice"] = None  # ``import sounddevice`` raises ImportError
    try:
        import pyroomacoustics
    finally:
        if hide and "sounddevice" in sys.modules and sys.modules["sounddevice"] is None:
            del sys.modules["sounddevice"]
    return pyroomacoustics


def rooms_available() -> bool:
    """True if pyroomacoustics (the ``train`` extra) can be imported."""
    try:
        _pyroomacoustics()
    except ImportError:
        return False
    return True


def room(sample_rate: int, rng: np.random.Generator, rt60: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """A simulated room impulse response (pyroomacoustics image sources, shoebox).

    Returns ``(full, early, params)``: the whole response, the same response
    cut ``EARLY_MS`` after the direct path (with a 5 ms fade), both scaled so
    the direct path has unit peak, and the draw (room size, RT60, distance).
    The target of a reverberant example is speech through ``early``: a
    denoiser removes noise, not the room's early reflections.
    """
    try:
        pra = _pyroomacoustics()
    except ImportError:
        raise ConfigError(
            "reverberant examples need pyroomacoustics; install the training extra "
            "(pip install 'rtconv[train]') or turn rooms off (reverb probability 0)."
        ) from None
    rt60 = float(rng.uniform(0.1, 1.0)) if rt60 is None else float(rt60)
    dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 4.0)])
    for _ in range(20):
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
            break
        except ValueError:  # a short RT60 cannot be had in a large room: draw a smaller one
            dims = np.maximum(dims * 0.8, [1.5, 1.5, 2.0])
    else:
        raise ConfigError(f"no shoebox room gives an RT60 of {rt60!r} s; use 0.1 to 1.0 s.")
    # image sources up to order 30 (about 0.1 s per response at 48 kHz); above an RT60 of about
    # 0.6 s the simulated tail is then somewhat shorter than the Sabine target it is labelled with
    order = int(min(order, 30))
    r = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=order)
    src = rng.uniform([0.5, 0.5, 1.2], dims - [0.5, 0.5, 0.6])
    mic = rng.uniform([0.5, 0.5, 0.8], dims - [0.5, 0.5, 0.6])
    r.add_source(src)
    r.add_microphone(mic)
    r.compute_rir()
    h = np.asarray(r.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(h)))
    h = h[max(0, direct - 40):]  # drop the propagation delay, keep the fractional-delay pre-ringing
    direct = int(np.argmax(np.abs(h)))
    h /= np.abs(h[direct])
    early = h.copy()
    cut = direct + int(EARLY_MS * 1e-3 * sample_rate)
    fade = int(0.005 * sample_rate)
    if cut < len(early):
        ramp = np.cos(np.linspace(0, np.pi / 2, min(fade, len(early) - cut))) ** 2
        early[cut: cut + len(ramp)] *= ramp
        early[cut + len(ramp):] = 0.0
        early = early[: cut + len(ramp)]
    params = {"rt60_s": round(rt60, 3), "room_m": [round(float(d), 2) for d in dims],
              "distance_m": round(float(np.linalg.norm(src - mic)), 2)}
    return h, early, params


def effective_bandwidth(x: np.ndarray, sample_rate: int, floor_db: float = 50.0) -> float:
    """The highest frequency in Hz where ``x`` still has content.

    Welch power spectrum (≈ 23 ms frames); the answer is the highest
    frequency whose smoothed power is within ``floor_db`` of the median
    power between 200 and 4000 Hz (the body of speech).  A resampled 8 kHz
    file reads ~3.9 kHz, espeak-ng's 22.05 kHz output ~11 kHz, a full-band
    recording close to Nyquist.  Silent input gives 0.
    """
    x = np.asarray(x, dtype=np.float64)
    nper = 1 << max(6, int(round(math.log2(max(64, 0.023 * sample_rate)))))
    if len(x) < nper or not np.any(x):
        return 0.0
    f, p = signal.welch(x, sample_rate, nperseg=nper)
    p = np.convolve(p, np.ones(3) / 3, mode="same")
    body = p[(f >= 200) & (f <= min(4000.0, sample_rate / 2))]
    if body.size == 0 or np.median(body) <= 0:
        return 0.0
    thresh = np.median(body) * 10 ** (-floor_db / 10)
    above = np.flatnonzero(p > thresh)
    return float(f[above[-1]]) if above.size else 0.0
