"""Voice activity: labels, frame scores, AUC, speech segments, label files.

The pieces ``rtconv vad``, the ``vad`` training task and ``rtconv bench
vad`` share, so that each is computed one way:

:func:`speech_frames`
    Ground truth from clean speech: a 10 ms frame is speech when its energy
    is within ``range_db`` of the clip's active level
    (:func:`rtconv.data.mix.active_level_db`).
:func:`frame_means`, :func:`energy_db`
    A per-sample probability track or a signal reduced to one number per
    frame: the model's score, and the energy detector's (frame energy in dB).
:func:`roc_auc`, :func:`best_accuracy`
    Rank-based area under the ROC curve (ties count one half, as
    ``sklearn.metrics.roc_auc_score``) and the best accuracy any threshold
    reaches (the energy detector's threshold, chosen with hindsight).
:func:`segments`, :func:`write_labels`, :func:`detect`
    From a file to speech segments in seconds and an Audacity label file.
:func:`evaluate_vad`
    The trainer's test metrics for the ``vad`` task.

Times are in seconds, frames are ``frame`` samples long and frame ``j``
covers samples ``j*frame .. (j+1)*frame - 1``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import AudioFileError, ConfigError

__all__ = ["speech_frames", "frame_means", "energy_db", "roc_auc", "best_accuracy", "segments",
           "write_labels", "detect", "check_threshold", "evaluate_vad", "vad_rows", "EnergyDetector", "LABEL_DB",
           "FRAMES_PER_SECOND", "FRAME_SECONDS", "DETECT_BLOCK_SIZE", "THRESHOLD", "SPEECH_LABEL"]

#: Frames within this many dB of the clip's active level are labelled speech.
LABEL_DB = 35.0
#: Frames per second of the labels (:func:`speech_frames`) and of :func:`detect`'s scores: 10 ms frames.
FRAMES_PER_SECOND = 100
FRAME_SECONDS = 1 / FRAMES_PER_SECOND
#: Frames of the file :func:`detect` reads and streams at a time.
DETECT_BLOCK_SIZE = 4096
#: :func:`segments`' speech probability threshold unless told otherwise.
THRESHOLD = 0.5
#: The text :func:`write_labels` gives each segment unless told otherwise.
SPEECH_LABEL = "speech"


def _frames(n: int, frame: int) -> int:
    return -(-n // frame)


def frame_means(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean of ``x`` (last axis) over each ``frame``-sample frame; a partial last frame counts what it has."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    m = _frames(n, frame)
    pad = m * frame - n
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,))], axis=-1)
    sums = x.reshape(x.shape[:-1] + (m, frame)).sum(-1)
    counts = np.full(m, float(frame))
    if m:
        counts[-1] = frame - pad
    return sums / counts


def energy_db(x: np.ndarray, frame: int) -> np.ndarray:
    """Energy of each frame in dB (mean square, floor -200 dB): the energy detector's score."""
    p = frame_means(np.square(np.asarray(x, dtype=np.float64)), frame)
    return 10.0 * np.log10(np.maximum(p, 1e-20))


def speech_frames(clean: np.ndarray, sample_rate: int, frame: int | None = None,
                  range_db: float = LABEL_DB) -> np.ndarray:
    """Which frames of ``clean`` hold speech: energy within ``range_db`` of the active level.

    The active level is :func:`rtconv.data.mix.active_level_db` (RMS over
    the 10 ms frames within 35 dB of the loudest).  A silent clip has no
    speech frames.  Returns a boolean array, one entry per ``frame``
    (default 10 ms) samples.
    """
    from .data.mix import active_level_db

    frame = int(frame or sample_rate // FRAMES_PER_SECOND)
    clean = np.asarray(clean, dtype=np.float64).reshape(-1)
    level = active_level_db(clean, sample_rate)
    e = energy_db(clean, frame)
    if not math.isfinite(level):
        return np.zeros(e.shape, dtype=bool)
    return e >= level - float(range_db)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels``; NaN if one class is absent.

    The Mann-Whitney statistic: the chance that a random positive scores
    above a random negative, ties counting one half.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    edges = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(s)]])
    avg = (starts + ends + 1) / 2.0  # 1-based mean rank of each run of ties
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, accuracy)`` of the best rule ``score >= threshold`` (chosen with hindsight)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if s.size == 0:
        return math.nan, math.nan
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    # threshold just at each distinct score: everything at or above it is called speech
    tp = np.cumsum(yy)
    fp = np.cumsum(~yy)
    last = np.concatenate([np.flatnonzero(np.diff(ss)), [len(ss) - 1]])
    neg = int((~y).sum())
    acc = (tp[last] + neg - fp[last]) / len(s)
    all_silence = neg / len(s)
    i = int(np.argmax(acc))
    if all_silence >= acc[i]:
        return math.inf, all_silence
    return float(ss[last[i]]), float(acc[i])


def check_threshold(threshold: float) -> float:
    """A probability threshold strictly between 0 and 1, or a one-sentence :class:`ConfigError`."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = math.nan
    if not 0.0 < t < 1.0:
        raise ConfigError(f"threshold must be a probability between 0 and 1 (exclusive), got {threshold!r}; "
                          "e.g. 0.5, higher for fewer false alarms.")
    return t


def segments(probabilities: np.ndarray, frame_seconds: float, threshold: float = THRESHOLD, min_speech: float = 0.0,
             min_silence: float = 0.0) -> list[tuple[float, float]]:
    """Speech segments ``(start, end)`` in seconds from per-frame speech probabilities.

    Frames at or above ``threshold`` are speech; gaps shorter than
    ``min_silence`` seconds between two segments are closed, then segments
    shorter than ``min_speech`` seconds are dropped.
    """
    threshold = check_threshold(threshold)
    on = np.asarray(probabilities, dtype=np.float64).reshape(-1) >= threshold
    if not on.any():
        return []
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))
    merged: list[list[int]] = []
    gap = min_silence / frame_seconds
    for a, b in runs:
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    keep = [(a, b) for a, b in merged if (b - a) * frame_seconds >= min_speech]
    return [(round(a * frame_seconds, 6), round(b * frame_seconds, 6)) for a, b in keep]


def write_labels(path, segs: Iterable[tuple[float, float]], label: str = SPEECH_LABEL) -> Path:
    """Write an Audacity label file: ``start<TAB>end<TAB>label`` per line, seconds with 6 decimals."""
    path = Path(path)
    text = "".join(f"{a:.6f}\t{b:.6f}\t{label}\n" for a, b in segs)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise AudioFileError(f"cannot write the label file {str(path)!r}: {e.strerror or e}; "
                             "check that its folder exists and is writable.") from None
    return path


def detect(path, model, frame_seconds: float = FRAME_SECONDS,
           block_size: int = DETECT_BLOCK_SIZE, dc_block: bool | None = None,
           prime: bool | None = None) -> tuple[np.ndarray, dict]:
    """Per-frame speech probabilities of an audio file, streamed in blocks (memory stays flat).

    Channels are averaged to mono, its DC offset removed as ``rtconv process``
    removes it (``dc_block``: :func:`rtconv.dcblock.wants_dc_block`), and
    another rate than the model's is resampled to it (soxr, streaming).  The streamed track is aligned (the
    model's latency removed) and averaged over frames of ``frame_seconds``.  A recurrent model starts
    primed (``prime``, default: when it is recurrent) as ``rtconv process`` starts one: from the file's
    first quarter second played backwards, not from silence, from which the shipped VAD called the first
    100 ms of digital silence speech (p up to 0.5).
    Returns the probabilities and ``{"rate", "frames", "duration", "channels", "warnings"}`` (``warnings``:
    :attr:`rtconv.audio.Reader.warnings`, what ``rtconv process`` says of the file: cut short, MP3s joined).
    """
    import soxr

    from .audio import Reader
    from .dcblock import DCBlocker, wants_dc_block
    from .files.chain import _Primed, _Stream, prime_frames

    if getattr(model, "out_channels", None) != 1:
        raise ConfigError(f"a voice activity model has one output (the speech probability), but this one has "
                          f"{model.out_channels}; pass a model trained with `rtconv train vad`.")
    rate = int(model.sample_rate or 48000)
    frame = max(1, int(round(frame_seconds * rate)))
    run = _Stream(model, 1, block_size, threads=1)
    skip = run.s.latency
    if prime if prime is not None else model.recurrent:
        run = _Primed(run, prime_frames(model, rate), 1)
    sums: list[np.ndarray] = []
    carry = np.zeros(0)
    total = 0

    def take(y: np.ndarray) -> None:
        nonlocal carry, skip, total
        y = y[:, 0].astype(np.float64)
        if skip:
            cut = min(skip, len(y))
            y, skip = y[cut:], skip - cut
        total += len(y)
        y = np.concatenate([carry, y])
        whole = len(y) // frame * frame
        if whole:
            sums.append(y[:whole].reshape(-1, frame).mean(1))
        carry = y[whole:]

    with Reader(path, chunk=block_size) as reader:
        resampler = None if reader.sample_rate == rate else soxr.ResampleStream(
            reader.sample_rate, rate, 1, dtype="float32", quality="HQ")
        dc = DCBlocker(reader.sample_rate, 1) if wants_dc_block(model, dc_block) else None
        for x in reader.chunks():
            mono = np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))
            if dc is not None:
                mono = dc.process(mono[:, None])[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            if len(mono):
                take(run(mono[:, None]))
        if resampler is not None:
            rest = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(rest):
                take(run(rest[:, None]))
        take(run.flush())
        info = {"rate": rate, "file_rate": reader.sample_rate, "channels": reader.channels,
                "duration": reader.frames_read / reader.sample_rate, "warnings": reader.warnings}
    if len(carry):
        sums.append(np.array([carry.mean()]))
    probs = np.concatenate(sums) if sums else np.zeros(0)
    info["frames"] = int(len(probs))
    return probs, info


class EnergyDetector:
    """The baseline as a stream: each frame's energy in dB against a threshold, held over the frame.

    ``process(block)`` takes mono float samples and returns, per sample, 1.0
    where the last completed frame was at or above ``threshold_db`` (the
    same frames as :func:`energy_db`; the decision changes when a frame
    completes, so it lags by up to one frame).
    """

    def __init__(self, frame: int = 480, threshold_db: float = -50.0) -> None:
        self.frame, self.threshold_db = int(frame), float(threshold_db)
        self.reset()

    def reset(self) -> None:
        self._sum, self._fill, self._state = 0.0, 0, 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        out = np.empty(len(x), dtype=np.float32)
        pos, f = 0, self.frame
        while pos < len(x):
            m = min(len(x) - pos, f - self._fill)
            seg = x[pos: pos + m]
            self._sum += float(seg @ seg)
            out[pos: pos + m] = self._state
            self._fill += m
            pos += m
            if self._fill == f:
                p = self._sum / f
                self._state = 1.0 if 10.0 * math.log10(max(p, 1e-20)) >= self.threshold_db else 0.0
                self._sum, self._fill = 0.0, 0
        return out


# ----------------------------------------------------------------------------- evaluation

def vad_rows(groups: dict, order: Sequence[str] | None = None, energy_threshold: float | None = None) -> list[dict]:
    """Per-group scores of a VAD and the energy detector.

    ``groups`` maps a group name to ``(model_scores, energy_scores, labels)``
    (concatenated frames).  Each row: ``group``, ``frames``, ``speech`` (the
    fraction labelled speech), ``auc`` and ``accuracy`` (threshold 0.5) of
    the model, ``energy_auc`` and ``energy_accuracy`` (the energy detector
    at ``energy_threshold`` dB, by default its best threshold over all the
    groups, chosen with hindsight: a generous baseline), ``false_alarm``
    (model frames >= 0.5 among the non-speech ones) and
    ``energy_false_alarm``.
    """
    names = list(order) if order is not None else list(groups)
    thr = energy_threshold
    if thr is None:
        all_e = np.concatenate([groups[g][1] for g in names]) if names else np.zeros(0)
        all_y = np.concatenate([groups[g][2] for g in names]) if names else np.zeros(0, bool)
        thr, _ = best_accuracy(all_e, all_y)
    rows = []
    for g in names:
        p, e, y = (np.asarray(a) for a in groups[g])
        y = y.astype(bool)
        neg = ~y
        rows.append({
            "group": g, "frames": int(y.size), "speech": float(y.mean()) if y.size else math.nan,
            "auc": roc_auc(p, y), "accuracy": float(np.mean((p >= 0.5) == y)) if y.size else math.nan,
            "energy_auc": roc_auc(e, y),
            "energy_accuracy": float(np.mean((e >= thr) == y)) if y.size else math.nan,
            "false_alarm": float(np.mean(p[neg] >= 0.5)) if neg.any() else math.nan,
            "energy_false_alarm": float(np.mean(e[neg] >= thr)) if neg.any() else math.nan,
        })
    for r in rows:
        r["energy_threshold_db"] = thr
    return rows


def _bucket(info: dict) -> str:
    kind = info.get("kind")
    if kind == "speech":
        return "clean speech"
    if kind == "noise":
        return "noise only"
    snr = info.get("snr_db")
    if snr is None:
        return "unknown"
    from .metrics import DEFAULT_SNR_EDGES

    edges = (-math.inf, *DEFAULT_SNR_EDGES, math.inf)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if lo <= snr < hi:  # the labels of rtconv.metrics.bucket_improvements
            return f"< {hi:g} dB" if lo == -math.inf else f">= {lo:g} dB" if hi == math.inf else f"{lo:g}..{hi:g} dB"
    return "unknown"


def evaluate_vad(model, data, loss_fn, device, infos: Sequence[dict], frame: int) -> dict:
    """The ``vad`` task's test metrics: frame AUC and accuracy per input-SNR bucket, against the energy detector.

    Frames inside the model's warm-up (its receptive field from the start of
    each example, where the stream would still have history) are skipped,
    as in the loss.
    """
    import torch
    from torch.utils.data import DataLoader

    from .train import losses as _losses

    model.eval()
    warm = _frames(max(0, model.receptive_field - 1), frame)
    groups: dict[str, list] = {}
    total_loss, count = 0.0, 0
    i = 0
    with torch.no_grad():
        for x, y in DataLoader(data, batch_size=16):
            out = model(x.to(device)).cpu()
            total_loss += float(_losses.apply(loss_fn, out, y, x)) * x.shape[0]
            count += x.shape[0]
            for b in range(x.shape[0]):
                p = frame_means(out[b, 0].numpy(), frame)[warm:]
                e = energy_db(x[b, 0].numpy(), frame)[warm:]
                lab = frame_means(y[b, 0].numpy(), frame)[warm:] >= 0.5
                info = infos[i] if i < len(infos) else {}
                for g in ("all", _bucket(info)):
                    groups.setdefault(g, [[], [], []])
                    for k, a in enumerate((p, e, lab)):
                        groups[g][k].append(a)
                i += 1
    joined = {g: tuple(np.concatenate(v[k]) for k in range(3)) for g, v in groups.items()}

    def key(g: str) -> tuple:
        special = {"all": 99, "clean speech": 90, "noise only": 91, "unknown": 98}
        if g in special:
            return (special[g], 0.0)
        first = g.split()
        if first[0] == "<":
            return (0, -math.inf)
        if first[0] == ">=":
            return (0, float(first[1]))
        return (0, float(first[0].split("..")[0]))

    rows = vad_rows(joined, sorted(joined, key=key))
    overall = next(r for r in rows if r["group"] == "all")
    # undefined numbers (AUC of noise alone) as null: checkpoint metadata is plain JSON
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    summary = (f"test: loss {total_loss / max(1, count):.5g}; speech frames AUC {overall['auc']:.3f} "
               f"(energy detector {overall['energy_auc']:.3f}), accuracy {overall['accuracy']:.3f} at 0.5 "
               f"(energy {overall['energy_accuracy']:.3f} at its best threshold)")
    return {"kind": "vad", "examples": len(data), "loss": total_loss / max(1, count), "frame_samples": frame,
            "warmup_frames_skipped": warm, "rows": rows, "summary": summary,
            "headline": {k: (None if math.isnan(v) else v) for k, v in (
                ("test_auc", overall["auc"]), ("test_accuracy", overall["accuracy"]),
                ("energy_detector_auc", overall["energy_auc"]))}}
