"""A compact copy of the training corpus, for a machine that cannot build it (a rented GPU).

``rtconv data build`` needs Debian's registry and about a gigabyte of FLAC.  A
GPU machine reached through a narrow pipe often has neither.  :func:`pack` writes
a smaller corpus directory with the same layout (``manifest.jsonl`` beside one
file per item), so ``rtconv train --corpus realistic`` reads it unchanged
through ``$RTCONV_CACHE``:

- only the ``train`` and ``val`` splits: the held-out test sources never leave
  the machine that benchmarks;
- every speaker and every noise recording is kept; a speaker keeps a fraction
  of its utterances (chosen by a hash of the item id, so the choice is the same
  on every run and does not depend on the order of the manifest);
- noise recordings are cut to their first ``noise_seconds`` (the mixer draws
  a random excerpt of each anyway; the trainer reads at most 120 s);
- audio is stored as Ogg Opus at 48 kHz (libsndfile's encoder, the one
  soundfile ships) at a chosen quality, or as FLAC at the item's own rate.

Opus at about 35 kbit/s keeps speech's full band but is not transparent: the
clean targets a packed corpus trains on are the codec's output, and the input
is that same output plus noise, so a model learns to keep what the codec left
and to remove the noise.  The pack is a training convenience; validation and
benchmarks that a model ships on still run on the full corpus.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .corpus import _progress, _read_item, corpus_dir, read_manifest, write_manifest

__all__ = ["pack", "CODECS"]

#: Storage formats of a pack.
CODECS: tuple[str, ...] = ("opus", "flac")


def _rank(item_id: str) -> float:
    """A number in [0, 1) from the item id alone (sha1): a speaker keeps its lowest-ranked items."""
    return int(hashlib.sha1(f"pack:{item_id}".encode()).hexdigest()[:8], 16) / 2 ** 32


def select(items: Sequence[dict], splits: Sequence[str], speech_fraction: float,
           dev_fraction: float = 1.0) -> list[dict]:
    """The items a pack keeps: every noise item and, per speaker, about ``speech_fraction`` of its speech
    (``dev_fraction`` for a dev speaker: the dev voices only validate).

    A speaker always keeps at least one utterance, so no speaker of the corpus is lost.
    """
    chosen, by_speaker = [], defaultdict(list)
    for it in items:
        if it["split"] not in splits:
            continue
        if it["kind"] == "speech":
            by_speaker[(it["split"], it["source"], it["speaker"])].append(it)
        else:
            chosen.append(it)
    for group in by_speaker.values():
        ranked = sorted(group, key=lambda it: _rank(it["id"]))
        n = max(1, round((dev_fraction if group[0]["split"] == "dev" else speech_fraction) * len(group)))
        chosen.extend(ranked[:n])
    return sorted(chosen, key=lambda it: it["id"])


def pack(out: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
         splits: Sequence[str] = ("train", "val", "dev"), speech_fraction: float = 0.6, noise_seconds: float = 20.0,
         codec: str = "opus", speech_quality: float = 0.9, noise_quality: float = 0.95,
         progress: bool = False, dev_fraction: float = 0.05) -> dict:
    """Write a compact corpus under ``out/corpus`` (train with ``RTCONV_CACHE=out``).

    Parameters
    ----------
    out : path
        Cache root to write; its ``corpus`` folder must not hold a corpus yet.
    cache_dir : path, optional
        Cache root of the full corpus (default ``$RTCONV_CACHE``).
    splits : sequence of str
        Among ``"train"``, ``"val"`` and ``"dev"`` (the voices that validate with
        ``--val-split dev``; none when the corpus has no dev source); ``"test"`` is refused.
    speech_fraction : float
        Share of each training speaker's utterances kept, in (0, 1].
    dev_fraction : float
        Share of each dev speaker's utterances kept, in (0, 1]: they only
        validate, and 5 % of Tux Paint's readers is about 8 minutes.
    noise_seconds : float
        Noise recordings are cut to this many seconds from their start.
    codec : str
        ``"opus"`` (48 kHz Ogg Opus) or ``"flac"`` (lossless, native rate).
    speech_quality, noise_quality : float
        libsndfile's Opus compression level in [0, 1] (higher: smaller;
        0.9 is about 35 kbit/s, 0.95 about 22 kbit/s for mono speech).

    Returns
    -------
    dict
        Items, seconds and bytes written, per kind.
    """
    import soundfile as sf

    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}.")
    bad = [s for s in splits if s not in ("train", "val", "dev")]
    if bad:
        raise ConfigError(f"a pack holds the train, val and dev splits only, got {bad[0]!r}: the test sources "
                          "stay on the machine that benchmarks.")
    for name, f in (("speech", speech_fraction), ("dev", dev_fraction)):
        if not 0 < f <= 1:
            raise ConfigError(f"{name} fraction must be in (0, 1], got {f!r}.")
    if not noise_seconds > 0:
        raise ConfigError(f"noise seconds must be positive, got {noise_seconds!r}.")
    for name, q in (("speech", speech_quality), ("noise", noise_quality)):
        if not 0 <= q <= 1:
            raise ConfigError(f"{name} quality must be in [0, 1] (libsndfile's Opus compression level), got {q!r}.")
    src = corpus_dir(cache_dir)
    dst = corpus_dir(out)
    if src.resolve() == dst.resolve():
        raise ConfigError(f"the pack would overwrite the corpus it reads ({str(src)!r}); choose another folder.")
    if (dst / "manifest.jsonl").exists():
        raise ConfigError(f"{str(dst)!r} already holds a corpus; remove it or choose another folder.")
    items = select(read_manifest(src), splits, speech_fraction, dev_fraction)
    # written beside the destination and renamed into place at the end: an interrupted pack leaves no
    # corpus that looks whole
    work = dst.with_name(f".{dst.name}.packing")
    if work.exists():
        shutil.rmtree(work)
    done, totals = [], defaultdict(lambda: {"items": 0, "seconds": 0.0, "bytes": 0})
    for it in _progress(items, progress, "pack"):
        sr = 48000 if codec == "opus" else int(it["sample_rate"])
        x = _read_item(src, it, sr, noise_seconds)
        if x.size == 0:
            continue
        stem = Path(it["file"]).with_suffix(".ogg" if codec == "opus" else ".flac")
        path = work / stem
        path.parent.mkdir(parents=True, exist_ok=True)
        peak = float(np.max(np.abs(x)))
        if peak > 1.0:  # a codec clips at full scale; the mixer sets levels itself
            x = x / peak
        if codec == "opus":
            q = speech_quality if it["kind"] == "speech" else noise_quality
            sf.write(str(path), x, sr, format="OGG", subtype="OPUS", compression_level=q)
        else:
            sf.write(str(path), x, sr, format="FLAC", subtype="PCM_16")
        row = {**it, "file": stem.as_posix(), "seconds": round(len(x) / sr, 3), "sample_rate": sr}
        done.append(row)
        t = totals[it["kind"]]
        t["items"] += 1
        t["seconds"] += len(x) / sr
        t["bytes"] += path.stat().st_size
    if not done:
        shutil.rmtree(work, ignore_errors=True)
        raise ConfigError(f"the corpus at {str(src)!r} has no {' or '.join(splits)} items to pack; "
                          "build it with `rtconv data build`.")
    write_manifest(done, work)
    if dst.exists():  # an earlier pack's leftovers without a manifest (refused above when it has one)
        shutil.rmtree(dst)
    work.replace(dst)
    return {k: {**v, "seconds": round(v["seconds"], 1)} for k, v in totals.items()}
