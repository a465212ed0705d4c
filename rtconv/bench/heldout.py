"""Held-out evaluation of speech denoisers, side by side with RNNoise and noisereduce.

Benchmark tooling, not part of the runtime: used by ``rtconv bench denoise``,
:mod:`rtconv.data.scoring` and the tests.

The test set is built like the training data (espeak-ng speech plus
generated noise, :mod:`rtconv.train`) but from the **test** split only:
voices, variants and sentences that training never sees, noise parameters
from the disjoint test ranges (including the ``fan`` family that training
never hears), and random streams seeded apart from every training stream.
Every (SNR, noise family) cell gets the same number of examples, at input
SNRs of -5, 0, 5, 10 and 15 dB.

Scores (per example, then averaged per SNR bucket, per noise family and
overall):

``si_sdr_i``
    SI-SDR improvement in dB at the model rate (:mod:`rtconv.metrics`).
``pesq``
    Wide-band PESQ (ITU-T P.862.2) at 16 kHz (``pesq`` package).
``stoi``
    Short-time objective intelligibility at 16 kHz (``pystoi`` package).

Every system's output is aligned with the clean reference before scoring:
rtconv's offline forward is aligned by construction, RNNoise's output lag is
measured by cross-correlation and removed (:func:`measure_lag`).

The comparison packages (``pyrnnoise``, ``noisereduce``, ``pesq``,
``pystoi``) are the optional ``bench`` extra: ``pip install rtconv[bench]``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = [
    "SNRS",
    "Example",
    "make_test_set",
    "measure_lag",
    "rnnoise",
    "noisereduce",
    "model_denoiser",
    "score",
    "evaluate",
    "summarize",
    "format_table",
    "RNNOISE_LATENCY_MS",
    "write_demo",
]

SNRS: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 15.0)
#: RNNoise's algorithmic latency: a 10 ms frame plus its 20 ms output lag.
RNNOISE_LATENCY_MS = 30.0
_EVAL_STREAM = 5  # keeps this module's random streams apart from the trainer's


def _need(package: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"the comparison package {package!r} is not installed; install the benchmark extra "
            "with `pip install rtconv[bench]` (pyrnnoise, noisereduce, pesq, pystoi)."
        ) from None


@dataclass
class Example:
    """One test mixture: ``noisy = clean + noise`` at ``snr_db``."""

    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float
    noise: str
    voice: str
    text: str


def make_test_set(
    per_cell: int = 3,
    snrs: Sequence[float] = SNRS,
    families: Sequence[str] | None = None,
    sample_rate: int = 48000,
    seed: int = 0,
    cache_dir=None,
) -> list[Example]:
    """Held-out mixtures: ``per_cell`` per (SNR, noise family), whole utterances.

    Parameters
    ----------
    per_cell : int
        Examples per (SNR, family) pair.
    snrs : sequence of float
        Input SNRs in dB (speech power over noise power over the utterance).
    families : sequence of str, optional
        Noise families; default every family incl. the held-out ``fan``.
    sample_rate : int
        In Hz.
    seed : int
        Picks test sentences, voices and noise draws.
    """
    from ..train import noise as _noise
    from ..train import speech as _speech

    if isinstance(per_cell, bool) or not isinstance(per_cell, int) or per_cell < 1:
        raise ConfigError(f"per_cell must be a positive integer, got {per_cell!r}.")
    families = list(families or _noise.TEST_FAMILIES)
    cells = [(s, f) for s in snrs for f in families]
    count = len(cells) * per_cell
    babble_count = 12
    utts = _speech.utterances("test", count + babble_count, seed=1000 + seed)
    speech = [_speech.synthesize(u, sample_rate, cache_dir) for u in utts]
    babble = speech[count:]  # other held-out speakers, never a target utterance
    out = []
    for i in range(count):
        snr, family = cells[i % len(cells)]
        rng = np.random.default_rng([seed, _EVAL_STREAM, i])
        clean = speech[i].astype(np.float64)
        noise = _noise.generate(family, len(clean), sample_rate, rng, "test", babble)
        rms = float(np.sqrt(np.mean(clean**2)))
        noisy = clean + noise * (rms / 10 ** (snr / 20))
        peak = np.abs(noisy).max()
        if peak > 0.99:  # keep the recording unclipped: scale both, the SNR stays
            clean, noisy = clean * (0.99 / peak), noisy * (0.99 / peak)
        out.append(Example(noisy.astype(np.float32), clean.astype(np.float32), float(snr), family,
                           utts[i].voice, utts[i].text))
    return out


def measure_lag(reference: np.ndarray, processed: np.ndarray, max_lag: int = 4800) -> int:
    """Samples by which ``processed`` lags ``reference`` (cross-correlation peak in [0, max_lag])."""
    from scipy import signal

    n = min(len(reference), len(processed))
    c = signal.correlate(processed[:n], reference[:n], mode="full", method="fft")
    mid = n - 1
    return int(np.argmax(c[mid : mid + max_lag + 1]))


def _shift(y: np.ndarray, lag: int, n: int) -> np.ndarray:
    """``y`` advanced by ``lag`` samples, cut or zero-padded to ``n``."""
    y = y[lag:]
    return np.pad(y, (0, max(0, n - len(y))))[:n]


class _RNNoise:
    """RNNoise via pyrnnoise's ctypes binding: 48 kHz, 480-sample frames, int16 scale."""

    def __init__(self) -> None:
        mod = _need("pyrnnoise.rnnoise")
        self.lib, self.frame = mod.lib, int(mod.FRAME_SIZE)

    def state(self) -> "_RNNoiseState":
        """A fresh denoiser state, fed one frame at a time (a context manager that frees it)."""
        return _RNNoiseState(self.lib, self.frame)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Raw RNNoise output (still lagging) for float audio in [-1, 1]."""
        F = self.frame
        n = len(x)
        pad = (-n) % F + 2 * F  # flush the lag out of the filter
        buf = np.pad(np.asarray(x, dtype=np.float32) * 32768.0, (0, pad)).astype(np.float32)
        out = np.empty_like(buf)
        with self.state() as st:
            for i in range(0, len(buf), F):
                out[i : i + F] = st.step(buf[i : i + F])
        return out / 32768.0


class _RNNoiseState:
    """One RNNoise state: :meth:`step` denoises one frame (int16 scale); freed on ``close``/exit."""

    _PTR = ctypes.POINTER(ctypes.c_float)

    def __init__(self, lib, frame: int) -> None:
        self.lib = lib
        self._in, self._out = np.zeros(frame, np.float32), np.zeros(frame, np.float32)
        self._handle = lib.rnnoise_create(None)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """The output for one frame; the returned array is reused by the next call (copy it to keep it)."""
        self._in[:] = frame
        self.lib.rnnoise_process_frame(self._handle, self._out.ctypes.data_as(self._PTR),
                                       self._in.ctypes.data_as(self._PTR))
        return self._out

    def close(self) -> None:
        if self._handle is not None:
            self.lib.rnnoise_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "_RNNoiseState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_RNNOISE_LAG: int | None = None


def rnnoise_lag() -> int:
    """RNNoise's output lag in samples at 48 kHz, measured once by cross-correlation.

    One second of white noise is run through it; the correlation peak gives
    the lag (960 samples = 20 ms for the pyrnnoise build, the same from -66 to
    -10 dBFS, however much of the noise RNNoise removes), with no speech
    synthesizer needed (`rtconv compare` runs where espeak-ng is not
    installed).  Live, a 480-sample frame must also fill first:
    :data:`RNNOISE_LATENCY_MS` = 10 + 20 = 30 ms, the figure quoted everywhere.
    """
    global _RNNOISE_LAG
    if _RNNOISE_LAG is None:
        x = (0.05 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
        _RNNOISE_LAG = measure_lag(x, _RNNoise().process(x))
    return _RNNOISE_LAG


def rnnoise(sample_rate: int = 48000) -> Callable[[np.ndarray], np.ndarray]:
    """An aligned RNNoise denoiser (lag removed); RNNoise runs at 48 kHz only."""
    if sample_rate != 48000:
        raise ConfigError(f"RNNoise runs at 48000 Hz only, got sample_rate={sample_rate!r}.")
    engine = _RNNoise()
    lag = rnnoise_lag()
    return lambda x: _shift(engine.process(x), lag, len(x)).astype(np.float32)


def noisereduce(sample_rate: int = 48000) -> Callable[[np.ndarray], np.ndarray]:
    """noisereduce's non-stationary spectral gating (offline, whole-file)."""
    nr = _need("noisereduce")
    return lambda x: np.asarray(nr.reduce_noise(y=x, sr=sample_rate, stationary=False), np.float32)


def model_denoiser(model) -> Callable[[np.ndarray], np.ndarray]:
    """An rtconv model's offline forward (equal to its stream delayed by ``model.latency``)."""
    import torch

    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.asarray(x, np.float32))[None, None])[0, 0].numpy()

    return run


def score(clean: np.ndarray, estimate: np.ndarray, noisy: np.ndarray, sample_rate: int) -> dict:
    """SI-SDR improvement (dB), wide-band PESQ and STOI of one aligned estimate."""
    import soxr

    from ..metrics import si_sdr_improvement_db

    pesq = _need("pesq")
    pystoi = _need("pystoi")
    out = {"si_sdr_i": float(si_sdr_improvement_db(clean, noisy, estimate))}
    c16 = soxr.resample(clean, sample_rate, 16000) if sample_rate != 16000 else clean
    e16 = soxr.resample(estimate, sample_rate, 16000) if sample_rate != 16000 else estimate
    try:
        out["pesq"] = float(pesq.pesq(16000, c16, e16, "wb"))
    except Exception:  # pesq raises on inputs with no detectable utterance
        out["pesq"] = float("nan")
    out["stoi"] = float(pystoi.stoi(c16, e16, 16000, extended=False))
    return out


def evaluate(
    systems: dict[str, Callable[[np.ndarray], np.ndarray]],
    examples: Sequence[Example],
    sample_rate: int = 48000,
    progress: bool = False,
) -> list[dict]:
    """Score every system on every example; one row per (example, system).

    ``systems`` maps a name to ``f(noisy) -> aligned estimate``; include
    ``"noisy": lambda x: x`` for the unprocessed baseline.
    """
    rows = []
    it = examples
    if progress:
        from tqdm import tqdm

        it = tqdm(examples, desc="scoring", unit="ex")
    for i, ex in enumerate(it):
        for name, f in systems.items():
            est = np.asarray(f(ex.noisy), np.float32)
            if est.shape != ex.clean.shape:
                raise ConfigError(
                    f"system {name!r} returned {est.shape[0]} samples for a {ex.clean.shape[0]}-sample "
                    "input; it must return aligned audio of the same length."
                )
            rows.append({"example": i, "system": name, "snr_db": ex.snr_db, "noise": ex.noise,
                         **score(ex.clean, est, ex.noisy, sample_rate)})
    return rows


def summarize(rows: Sequence[dict]) -> dict:
    """Means per group: ``{"all": ..., "snr=-5": ..., "noise=fan": ...}`` -> system -> metric."""
    groups: dict[str, list[dict]] = {"all": list(rows)}
    for r in rows:
        groups.setdefault(f"snr={r['snr_db']:g}", []).append(r)
    for r in rows:
        groups.setdefault(f"noise={r['noise']}", []).append(r)
    out: dict = {}
    for g, rs in groups.items():
        out[g] = {}
        for sysname in dict.fromkeys(r["system"] for r in rs):
            sel = [r for r in rs if r["system"] == sysname]
            out[g][sysname] = {m: float(np.nanmean([r[m] for r in sel])) for m in ("si_sdr_i", "pesq", "stoi")}
            out[g][sysname]["n"] = len(sel)
    return out


def format_table(summary: dict, systems: Sequence[str], ours: str | None = None) -> str:
    """A Markdown table: one row per group, SI-SDRi / PESQ / STOI per system.

    With ``ours``, a last column says whether it beats every other denoiser
    (not the unprocessed input) on all three metrics in that row.
    """
    head = ["group", "n"] + [f"{s} {m}" for s in systems for m in ("SI-SDRi", "PESQ", "STOI")]
    if ours:
        head.append(f"{ours} best on all")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g, per in summary.items():
        n = per[systems[0]]["n"]
        cells = [g.replace("snr=", "SNR ").replace("noise=", ""), str(n)]
        for s in systems:
            v = per[s]
            cells += [f"{v['si_sdr_i']:+.2f}", f"{v['pesq']:.2f}", f"{v['stoi']:.3f}"]
        if ours:
            rivals = [s for s in systems if s not in (ours, "noisy")]
            wins = all(per[ours][m] > per[r][m] for r in rivals for m in ("si_sdr_i", "pesq", "stoi"))
            cells.append("yes" if wins else "no")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_demo(path="recordings/demo_noisy.wav", seconds: float = 8.0, snr_db: float = 5.0,
               family: str = "brown", sample_rate: int = 48000, seed: int = 7) -> Path:
    """Write a demo recording made like the test set: held-out voices in ``family`` noise.

    Test-split utterances (voices and sentences never used in training) are
    joined with 0.4 s pauses up to ``seconds``; test-range noise of
    ``family`` runs under all of it at ``snr_db`` (speech power over noise
    power); 16-bit PCM WAV.
    """
    from pathlib import Path

    import soundfile as sf

    from ..train import noise as _noise
    from ..train import speech as _speech

    utts = _speech.utterances("test", 12, seed=2000 + seed)
    gap = np.zeros(int(0.4 * sample_rate), np.float32)
    parts, total = [gap], len(gap)
    for u in utts:
        if total >= seconds * sample_rate:
            break
        s = _speech.synthesize(u, sample_rate)
        parts += [s, gap]
        total += len(s) + len(gap)
    clean = np.concatenate(parts)[: int(seconds * sample_rate)].astype(np.float64)
    rng = np.random.default_rng([seed, _EVAL_STREAM, 10**6])
    babble = [_speech.synthesize(u, sample_rate) for u in utts[-4:]]
    noise = _noise.generate(family, len(clean), sample_rate, rng, "test", babble)
    active = clean[np.abs(clean) > 1e-4]
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 0.07
    noisy = clean + noise * (rms / 10 ** (snr_db / 20))
    noisy *= min(1.0, 0.9 / np.abs(noisy).max())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), noisy.astype(np.float32), sample_rate, subtype="PCM_16")
    return path
