"""The built corpus on disk: its manifest, its summary, and loading a split into memory.

Layout under :func:`corpus_dir` (``$RTCONV_CACHE/corpus`` or
``~/.cache/rtconv/corpus``)::

    manifest.jsonl          one JSON object per item (fields: MANIFEST_FIELDS)
    <source>/<name>.flac    the item, mono, at its native sample rate
    _pool/<split>-<rate>-<key>.npy, .json
                            a split resampled to one rate, every item end to end
                            (float32), and where each starts: :meth:`Pool.load`
                            memory-maps it, so training processes on one machine
                            share one copy and start without resampling again

An item is one utterance (speech) or one recording (noise, music).  Its
``split`` comes from its source (:mod:`rtconv.data.sources`): test sources,
speakers and noise recordings never appear in training; ``val`` is every
tenth item of the training sources by a hash of its id (same speakers as
training, other files) for the trainer's early stopping; ``dev`` is the
speech and noise of dev sources, voices and recordings no model trains on
and that are not the test set's, to choose between models on what they
never heard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = [
    "SPLITS",
    "MANIFEST_FIELDS",
    "SPEECH_KINDS",
    "corpus_dir",
    "read_manifest",
    "split_items",
    "write_manifest",
    "split_of",
    "summarize",
    "format_summary",
    "Pool",
]

#: What the manifest records for every item.
MANIFEST_FIELDS: tuple[str, ...] = (
    "id", "source", "kind", "split", "package", "version", "license", "file", "seconds",
    "sample_rate", "bandwidth_hz", "speaker", "language", "speech_kind", "family",
)
#: The splits of the manifest (see the module docstring).
SPLITS: tuple[str, ...] = ("train", "val", "dev", "test")
#: Speech kinds, from most to least real.
SPEECH_KINDS: tuple[str, ...] = ("real", "festival", "neural", "formant")


def corpus_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the corpus lives: ``cache_dir/corpus``, ``$RTCONV_CACHE/corpus`` or ``~/.cache/rtconv/corpus``."""
    if cache_dir is not None:
        return Path(cache_dir) / "corpus"
    root = os.environ.get("RTCONV_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "rtconv") / "corpus"


def read_manifest(root: str | os.PathLike | None = None) -> list[dict]:
    """Every item of the corpus at ``root`` (default :func:`corpus_dir`).

    Raises a one-sentence :class:`~rtconv.errors.ConfigError` when no corpus
    has been built there yet.
    """
    root = Path(root) if root is not None else corpus_dir()
    path = root / "manifest.jsonl"
    if not path.is_file():
        raise ConfigError(
            f"no corpus at {str(root)!r} (missing manifest.jsonl); build it first with "
            "`rtconv data build` (see `rtconv data build --help`)."
        )
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ConfigError(f"line {n} of {str(path)!r} is not JSON; rebuild the corpus "
                                      "with `rtconv data build --rebuild`.") from None
    return items


def write_manifest(items: Iterable[dict], root: str | os.PathLike) -> Path:
    """Write ``manifest.jsonl`` atomically (items sorted by id)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.jsonl"
    tmp = root / f".manifest.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for it in sorted(items, key=lambda d: d["id"]):
            missing = [k for k in MANIFEST_FIELDS if k not in it]
            if missing:
                raise ConfigError(f"manifest item {it.get('id')!r} lacks {', '.join(missing)}.")
            f.write(json.dumps({k: it[k] for k in MANIFEST_FIELDS}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def split_of(item_id: str, source_split: str) -> str:
    """``"test"`` or ``"dev"`` for items of test or dev sources; otherwise ``"val"`` for one id in ten,
    else ``"train"``."""
    if source_split in ("test", "dev"):
        return source_split
    h = int(hashlib.sha1(item_id.encode()).hexdigest()[:8], 16)
    return "val" if h % 10 == 0 else "train"


def summarize(items: Sequence[dict]) -> dict:
    """Hours, speakers, languages, bandwidths and licenses, per split and kind.

    Returns a JSON-able dict: ``{"speech": {split: {speech_kind: {...}}},
    "noise": {split: {family: {...}}}, "licenses": {license: hours},
    "packages": {package: version}}``.
    """
    out: dict = {"speech": {}, "noise": {}, "licenses": defaultdict(float), "packages": {}}
    for it in items:
        hours = it["seconds"] / 3600
        out["licenses"][it["license"]] += hours
        out["packages"][it["package"]] = it["version"]
        if it["kind"] == "speech":
            row = out["speech"].setdefault(it["split"], {}).setdefault(
                it["speech_kind"], {"hours": 0.0, "items": 0, "speakers": set(), "languages": set(),
                                    "bandwidths": defaultdict(float)})
            row["speakers"].add(f"{it['source']}:{it['speaker']}")
            row["languages"].add(it["language"])
            row["bandwidths"][_bw_label(it["bandwidth_hz"])] += hours
        else:
            row = out["noise"].setdefault(it["split"], {}).setdefault(
                it["family"], {"hours": 0.0, "items": 0, "sources": set(), "bandwidths": defaultdict(float)})
            row["sources"].add(it["source"])
            row["bandwidths"][_bw_label(it["bandwidth_hz"])] += hours
        row["hours"] += hours
        row["items"] += 1
    for part in ("speech", "noise"):
        for split in out[part].values():
            for row in split.values():
                for k, v in list(row.items()):
                    if isinstance(v, set):
                        row[k] = sorted(v)
                    elif isinstance(v, defaultdict):  # bandwidths narrowest first (not "<=11k" before "<=4k")
                        row[k] = dict(sorted(v.items(), key=lambda kv: _BW_ORDER.index(kv[0])))
    out["licenses"] = dict(sorted(out["licenses"].items(), key=lambda kv: -kv[1]))
    out["packages"] = dict(sorted(out["packages"].items()))
    return out


_BW_EDGES = ((4100, "<=4k"), (5600, "<=5.5k"), (8200, "<=8k"), (11100, "<=11k"), (16500, "<=16k"))
_BW_ORDER = [label for _, label in _BW_EDGES] + [">16k"]


def _bw_label(hz: float) -> str:
    for edge, label in _BW_EDGES:
        if hz <= edge:
            return label
    return ">16k"


def format_summary(summary: dict) -> str:
    """The manifest summary as Markdown tables (what the README quotes)."""
    lines = ["| split | speech kind | hours | items | speakers | languages | bandwidth (hours) |",
             "|---|---|---:|---:|---:|---|---|"]
    for split in SPLITS:
        for kind, row in sorted(summary["speech"].get(split, {}).items(),
                                key=lambda kv: SPEECH_KINDS.index(kv[0]) if kv[0] in SPEECH_KINDS else 9):
            bw = ", ".join(f"{k} {v:.2f}" for k, v in row["bandwidths"].items())
            lines.append(f"| {split} | {kind} | {row['hours']:.2f} | {row['items']} | {len(row['speakers'])} | "
                         f"{', '.join(row['languages'])} | {bw} |")
    lines += ["", "| split | noise family | hours | items | sources | bandwidth (hours) |",
              "|---|---|---:|---:|---|---|"]
    for split in SPLITS:
        for fam, row in sorted(summary["noise"].get(split, {}).items()):
            bw = ", ".join(f"{k} {v:.2f}" for k, v in row["bandwidths"].items())
            lines.append(f"| {split} | {fam} | {row['hours']:.2f} | {row['items']} | "
                         f"{', '.join(row['sources'])} | {bw} |")
    lines += ["", "| license | hours |", "|---|---:|"]
    lines += [f"| {lic} | {h:.2f} |" for lic, h in summary["licenses"].items()]
    return "\n".join(lines)


def split_items(split: str, root: str | os.PathLike | None = None, items: list[dict] | None = None) -> list[dict]:
    """The manifest items :meth:`Pool.load` reads for ``split`` (``dev``: the voices and noise of
    the dev sources), or a one-sentence :class:`~rtconv.errors.ConfigError` saying what to build;
    cheap, so a command can check its corpus before it spends time on anything else."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}.")
    root = Path(root) if root is not None else corpus_dir()
    every = items if items is not None else read_manifest(root)
    if split == "dev":  # voices and noise of packages no model trains on and the test set does not use
        chosen = [it for it in every if it["split"] == "dev"]
        missing = [k for k in ("speech", "noise") if not any(it["kind"] == k for it in chosen)]
        if missing:
            raise ConfigError(f"the corpus at {str(root)!r} has no 'dev' {' or '.join(missing)}; build it with "
                              "`rtconv data build --split dev`.")
    else:
        chosen = [it for it in every if it["split"] == split]
    if not chosen:
        raise ConfigError(f"the corpus at {str(root)!r} has no {split!r} items; rebuild it with "
                          "`rtconv data build`.")
    return chosen


@dataclass
class Pool:
    """The audio of one split, in memory at one sample rate, grouped for the mixer.

    Attributes
    ----------
    speakers : dict
        ``"source:speaker"`` -> list of (float32 mono array, item) pairs.
    noise : dict
        family -> list of (array, item) pairs.
    """

    sample_rate: int
    split: str
    speakers: dict = field(default_factory=dict)
    noise: dict = field(default_factory=dict)

    @classmethod
    def load(cls, split: str, sample_rate: int, root: str | os.PathLike | None = None,
             items: Sequence[dict] | None = None, max_noise_seconds: float = 120.0,
             progress: bool = False, cache: bool = True) -> "Pool":
        """Read every item of ``split`` from the corpus at ``root``, resampled to ``sample_rate`` (soxr).

        With ``cache`` (default) the resampled split is kept under ``root/_pool`` (see the module
        docstring) and later loads memory-map it read-only: processes that train at once share
        its pages instead of holding a copy each.  The key covers the items, their files' sizes
        and times, the rate and ``max_noise_seconds``; a root that cannot be written loads
        without a cache.
        """
        root = Path(root) if root is not None else corpus_dir()
        items = split_items(split, root, items)
        paths = _pool_paths(root, split, int(sample_rate), items, max_noise_seconds) if cache else None
        arrays = _read_pool(*paths, len(items)) if paths else None
        if arrays is None:
            arrays = [_read_item(root, it, int(sample_rate), max_noise_seconds)
                      for it in _progress(items, progress, f"loading {split}")]
            if paths:
                arrays = _write_pool(*paths, arrays) or arrays
        pool = cls(int(sample_rate), split)
        for x, it in zip(arrays, items, strict=True):
            if it["kind"] == "speech":
                pool.speakers.setdefault(f"{it['source']}:{it['speaker']}", []).append((x, it))
            else:
                pool.noise.setdefault(it["family"], []).append((x, it))
        return pool

    def speaker_ids(self, speech_kind: str | None = None) -> list[str]:
        """Speakers of the pool, optionally only those of one speech kind (sorted)."""
        return sorted(k for k, v in self.speakers.items()
                      if speech_kind is None or v[0][1]["speech_kind"] == speech_kind)

    def hours(self) -> tuple[float, float]:
        """(speech hours, noise hours) in memory."""
        sp = sum(len(x) for v in self.speakers.values() for x, _ in v) / self.sample_rate / 3600
        no = sum(len(x) for v in self.noise.values() for x, _ in v) / self.sample_rate / 3600
        return sp, no


_POOL_FORMAT = 1


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")


def _read_item(root: Path, it: dict, sample_rate: int, max_noise_seconds: float) -> np.ndarray:
    import soundfile as sf
    import soxr

    path = root / it["file"]
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types
        raise ConfigError(f"cannot read corpus file {str(path)!r} ({e}); rebuild the corpus "
                          "with `rtconv data build`.") from None
    x = x.mean(axis=1)
    if it["kind"] != "speech":
        x = x[: int(max_noise_seconds * sr)]
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)


def _pool_paths(root: Path, split: str, sample_rate: int, items: Sequence[dict],
                max_noise_seconds: float) -> tuple[Path, Path]:
    h = hashlib.sha256(json.dumps([_POOL_FORMAT, sample_rate, float(max_noise_seconds)]).encode())
    for it in items:
        try:
            st = os.stat(root / it["file"])
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None  # reading it will say what is wrong
        h.update(json.dumps([it["id"], it["file"], it["kind"], stamp]).encode())
    stem = root / "_pool" / f"{split}-{sample_rate}-{h.hexdigest()[:16]}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def _read_pool(npy: Path, index: Path, count: int) -> list[np.ndarray] | None:
    try:
        starts = json.loads(index.read_text())["starts"]
        data = np.load(npy, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(starts) != count + 1 or data.ndim != 1 or data.dtype != np.float32 or starts[-1] != len(data):
        return None
    return [data[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _write_pool(npy: Path, index: Path, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
    """Write the pool (atomically: temporary names, then renames) and return its memory-mapped views;
    ``None`` when the cache cannot be written (the arrays in memory serve)."""
    starts = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(int).tolist()
    tmp = f".{os.getpid()}.tmp"
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(str(npy) + tmp, mode="w+", dtype=np.float32, shape=(starts[-1],))
        for a, b, x in zip(starts[:-1], starts[1:], arrays, strict=True):
            out[a:b] = x
        out.flush()
        del out
        Path(str(index) + tmp).write_text(json.dumps({"format": _POOL_FORMAT, "starts": starts}))
        os.replace(str(npy) + tmp, npy)
        os.replace(str(index) + tmp, index)
    except OSError:
        for p in (Path(str(npy) + tmp), Path(str(index) + tmp)):
            try:
                p.unlink()
            except OSError:
                pass
        return None
    return _read_pool(npy, index, len(arrays))
