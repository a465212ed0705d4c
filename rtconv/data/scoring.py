"""Scoring denoisers on the realistic test set, side by side, and the tables users read.

A *system* is ``f(noisy, rate) -> estimate`` returning aligned audio of the
same length (see :func:`systems`).  Per test item (:mod:`.testset`):

mixtures (``grid``, ``band``, ``level``)
    ``si_sdr_i`` (dB, at the file's rate), ``pesq`` (wide band) and ``stoi``
    (at 16 kHz, :func:`rtconv.bench.heldout.score`), and ``pause_db``: the
    output's energy where the clean speech pauses, relative to the input's
    there (what a listener hears between words; lower is cleaner).
clean speech (``clean``)
    ``level_db`` (active level out minus in), ``si_sdr`` of the output
    against the input, and ``band_db``: energy change per octave band
    (:data:`OCTAVES`, up to 20 kHz), ``nan`` for an octave wholly above the
    item's speech band (``info["band_hz"]``): there the input holds no
    speech, only the 16-bit quantisation noise a denoiser should remove, so
    it cannot show whether speech passes (averages skip it).
noise only (``noise``)
    ``atten_db``: input energy over output energy.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from .mix import active_level_db
from .testset import LOUD_GROUP, TestExample

__all__ = ["OCTAVES", "model_system", "systems", "score_example", "evaluate", "tables", "summary_rows", "goals", "format_goals",
           "paired", "format_paired"]

#: Octave bands (low, high) in Hz for the clean-passthrough table, centres 125 Hz .. 16 kHz.
OCTAVES: tuple[tuple[float, float], ...] = tuple(
    (c / math.sqrt(2), min(20000.0, c * math.sqrt(2))) for c in (125, 250, 500, 1000, 2000, 4000, 8000, 16000))
_MODEL_RATE = 48000


def _at_48k(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
    """A 48 kHz-only denoiser run at any file rate through soxr (as a user's resampling would)."""
    import soxr

    def run(x: np.ndarray, rate: int) -> np.ndarray:
        if rate == _MODEL_RATE:
            return f(x)
        up = soxr.resample(x, rate, _MODEL_RATE, quality="HQ").astype(np.float32)
        y = soxr.resample(f(up), _MODEL_RATE, rate, quality="HQ")
        return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)

    return run


def model_system(model, prime: bool | None = None, dc_block: bool | None = None, both_directions: bool = False,
                 level_guard: bool | None = None):
    """An rtconv model as a system of a comparison: ``(x, rate) -> y`` through
    :func:`rtconv.files.process_array`, exactly as ``rtconv process`` runs it
    (``prime=False``: as ``rtconv process --no-prime``, started from silence;
    ``dc_block=False``: as ``--keep-dc``, given the input's DC offset;
    ``both_directions=True``: as ``--both-directions``;
    ``level_guard=False``: as ``--keep-level``, a loud file at its own level)."""
    from .. import files

    return lambda x, rate: files.process_array(x, rate, model, offline=True, prime=prime, dc_block=dc_block,
                                               both_directions=both_directions, level_guard=level_guard)[:, 0]


def systems(model=None, rnnoise: bool = True, noisereduce: bool = True) -> dict:
    """The systems of a comparison: ``noisy`` (no processing), ``rtconv`` (``model``,
    through :func:`rtconv.files.process_array` exactly as ``rtconv process`` runs it),
    ``rnnoise`` (pyrnnoise, lag removed) and ``noisereduce`` (non-stationary, whole file)."""
    from ..bench import heldout as ev

    out: dict = {"noisy": lambda x, rate: np.asarray(x, np.float32)}
    if model is not None:
        out["rtconv"] = model_system(model)
    if rnnoise:
        out["rnnoise"] = _at_48k(ev.rnnoise(_MODEL_RATE))
    if noisereduce:
        out["noisereduce"] = lambda x, rate: ev.noisereduce(rate)(x)
    return out


def _band_energy(x: np.ndarray, rate: int) -> np.ndarray:
    spec = np.abs(np.fft.rfft(np.asarray(x, np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return np.array([spec[(f >= lo) & (f < hi)].sum() if hi <= rate / 2 else np.nan for lo, hi in OCTAVES])


def _pause_db(clean: np.ndarray, noisy: np.ndarray, est: np.ndarray, rate: int) -> float:
    frame = rate // 50  # 20 ms
    n = len(clean) // frame
    if n == 0:
        return float("nan")
    e = np.mean(clean[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    quiet = e < e.max() * 1e-5  # 50 dB under the loudest frame: a pause
    if quiet.sum() < 3:
        return float("nan")
    sel = np.repeat(quiet, frame)
    ein = float(np.sum(noisy[: n * frame][sel].astype(np.float64) ** 2))
    eout = float(np.sum(est[: n * frame][sel].astype(np.float64) ** 2))
    if ein <= 0:
        return float("nan")
    return 10 * math.log10(max(eout, 1e-20) / ein)


def score_example(ex: TestExample, estimate: np.ndarray) -> dict:
    """The measures of one aligned estimate of ``ex`` (see the module docstring)."""
    from ..bench import heldout as ev
    from ..metrics import si_sdr_db

    y = np.asarray(estimate, np.float32)
    if y.shape != ex.noisy.shape:
        raise ConfigError(f"an estimate must have the input's shape {ex.noisy.shape}, got {y.shape}.")
    if ex.part == "clean":
        b_in, b_out = _band_energy(ex.noisy, ex.rate), _band_energy(y, ex.rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            bands = 10 * np.log10(np.maximum(b_out, 1e-20) / np.maximum(b_in, 1e-20))
        top = (ex.info.get("band_hz") or [0.0, None])[1]
        if top:
            bands = np.where([lo < top for lo, _ in OCTAVES], bands, np.nan)
        return {"level_db": active_level_db(y, ex.rate) - active_level_db(ex.noisy, ex.rate),
                "si_sdr": float(si_sdr_db(ex.noisy, y)), "band_db": [float(v) for v in bands]}
    if ex.part == "noise":
        ein = float(np.sum(ex.noisy.astype(np.float64) ** 2))
        eout = float(np.sum(y.astype(np.float64) ** 2))
        return {"atten_db": 10 * math.log10(ein / max(eout, 1e-20)) if ein > 0 else float("nan")}
    out = ev.score(ex.clean, y, ex.noisy, ex.rate)
    out["pause_db"] = _pause_db(ex.clean, ex.noisy, y, ex.rate)
    return out


def evaluate(systems: dict, examples: Sequence[TestExample], progress: bool = False) -> list[dict]:
    """One row per (example, system): the example's labels and its measures."""
    rows = []
    it = list(enumerate(examples))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="scoring", unit="ex")
    for i, ex in it:
        for name, f in systems.items():
            est = np.asarray(f(ex.noisy, ex.rate), np.float32)
            if est.shape != ex.noisy.shape:
                raise ConfigError(f"system {name!r} returned {est.shape} for an input of {ex.noisy.shape}; "
                                  "it must return aligned audio of the same length.")
            info = ex.info
            rows.append({"example": i, "system": name, "part": ex.part, "group": ex.group,
                         "speech_kind": info.get("speech_kind"), "noise": info.get("noise"),
                         "snr_db": info.get("snr_db"), "reverb": "room" in info, **score_example(ex, est)})
    return rows


def _mean(rows: list[dict], key: str) -> float:
    v = [r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
    return float(np.mean(v)) if v else float("nan")


def summary_rows(rows: Sequence[dict]) -> dict:
    """Means per table row: ``{table: {row label: {system: {measure: value, "n": count}}}}``."""
    tables: dict = {}

    def add(table: str, label: str, sel: list[dict]) -> None:
        if not sel:
            return
        per = tables.setdefault(table, {}).setdefault(label, {})
        for name in dict.fromkeys(r["system"] for r in sel):
            rs = [r for r in sel if r["system"] == name]
            per[name] = {"n": len(rs)}
            for m in ("si_sdr_i", "pesq", "stoi", "pause_db", "level_db", "si_sdr", "atten_db"):
                if any(m in r for r in rs):
                    per[name][m] = _mean(rs, m)
            if any("band_db" in r for r in rs):
                cols = [[r["band_db"][k] for r in rs if np.isfinite(r["band_db"][k])] for k in range(len(OCTAVES))]
                per[name]["band_db"] = [float(np.mean(c)) if c else float("nan") for c in cols]

    grid = [r for r in rows if r["part"] == "grid"]
    if grid:
        add("overall", "all", grid)
        for g in dict.fromkeys(r["group"] for r in grid):
            add("snr", g, [r for r in grid if r["group"] == g])
        for nz in sorted(dict.fromkeys(r["noise"] for r in grid)):
            add("family", nz, [r for r in grid if r["noise"] == nz])
        for k in dict.fromkeys(r["speech_kind"] for r in grid):
            add("speech_kind", k, [r for r in grid if r["speech_kind"] == k])
        add("reverb", "reverberant", [r for r in grid if r["reverb"]])
        add("reverb", "dry", [r for r in grid if not r["reverb"]])
    for part in ("band", "level", "dc", "clean", "noise"):
        sel = [r for r in rows if r["part"] == part]
        for g in dict.fromkeys(r["group"] for r in sel):
            add(part, g, [r for r in sel if r["group"] == g])
        if sel and part in ("clean", "noise"):
            add(part, "all", sel)
        if part == "clean" and any(r["group"] == LOUD_GROUP for r in sel):
            add(part, "nominal level", [r for r in sel if r["group"] != LOUD_GROUP])
    return tables


def tables(summary: dict, names: Sequence[str], ours: str | None = "rtconv",
           rivals: Sequence[str] | None = None) -> str:
    """The Markdown tables of a :func:`summary_rows` result, one section per table.

    The last column says whether ``ours`` beats every one of ``rivals`` (default: every other
    system but ``noisy``) on SI-SDRi, PESQ and STOI."""
    out: list[str] = []
    titles = {"overall": "Overall (grid: every SNR and noise)", "snr": "Per input SNR", "family": "Per noise",
              "speech_kind": "Per speech kind", "reverb": "Reverberation",
              "band": "Band limits, codecs and file rates (paired: the same mixtures, 5 dB SNR)",
              "level": "Input level (paired: the same mixtures scaled to each peak level)",
              "dc": "DC offset (paired: the same mixtures at peak -30 dBFS, a constant offset added)",
              "clean": "Clean speech passthrough (nothing to remove)", "noise_only": "Noise only"}
    for table in ("overall", "snr", "family", "speech_kind", "reverb", "band", "level", "dc"):
        if table not in summary:
            continue
        out += [f"### {titles[table]}", "", "SI-SDRi dB / PESQ-WB / STOI / pause residual dB", ""]
        head = ["row", "n"] + list(names)
        if ours and ours in names:
            head.append(f"{ours} best SI-SDRi, PESQ, STOI")
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, per in summary[table].items():
            cells = [label, str(per[names[0]]["n"])]
            for s in names:
                v = per.get(s, {})
                cells.append(f"{v.get('si_sdr_i', float('nan')):+.2f} / {v.get('pesq', float('nan')):.2f} / "
                             f"{v.get('stoi', float('nan')):.3f} / {v.get('pause_db', float('nan')):+.1f}")
            if ours and ours in names:
                against = rivals if rivals is not None else [s for s in names if s not in (ours, "noisy")]
                win = all(per[ours][m] > per[r][m] for r in against for m in ("si_sdr_i", "pesq", "stoi"))
                cells.append("yes" if win else "no")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if "clean" in summary:
        out += [f"### {titles['clean']}", "",
                "level change dB / SI-SDR against the input dB; then energy change per octave band (dB), averaged over the items whose speech reaches into it", ""]
        heads = [f"{int(round(math.sqrt(lo * hi)))} Hz" if hi < 20000 else "16 kHz" for lo, hi in OCTAVES]
        out += ["| system | items | n | level | SI-SDR | " + " | ".join(heads) + " |",
                "|" + "---|" * (5 + len(heads))]
        groups = ["all"] + [g for g in ("nominal level", LOUD_GROUP) if g in summary["clean"]]
        for s in names:
            for g in groups:
                v = summary["clean"][g][s]
                bands = " | ".join(f"{b:+.1f}" if np.isfinite(b) else "–" for b in v["band_db"])
                out.append(f"| {s} | {g} | {v['n']} | {v['level_db']:+.2f} | {v['si_sdr']:.1f} | {bands} |")
        out.append("")
    if "noise" in summary:
        out += [f"### {titles['noise_only']}", "", "attenuation of noise-only input, dB (higher removes more)", ""]
        out += ["| noise | n | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
        for label, per in summary["noise"].items():
            out.append(f"| {label} | {per[names[0]]['n']} | "
                       + " | ".join(f"{per[s]['atten_db']:.1f}" for s in names) + " |")
        out.append("")
    return "\n".join(out)


def goals(summary: dict, ours: str = "rtconv", rival: str = "rnnoise", nominal: str = "peak -10 dBFS",
          full_band: str = "full band 48k") -> list[tuple[str, str, bool]]:
    """The denoiser's quality goals, each as ``(goal, what was measured, met)``.

    Against ``rival`` on the grid (overall and per SNR bucket, per noise),
    against itself on the paired band-limit and level parts (``full_band`` and
    ``nominal`` are the reference rows), and on clean and noise-only input.
    """
    out: list[tuple[str, str, bool]] = []
    mets = ("si_sdr_i", "pesq", "stoi")
    if "overall" in summary and rival in summary["overall"]["all"]:
        a, b = summary["overall"]["all"][ours], summary["overall"]["all"][rival]
        out.append((f"beats {rival} on SI-SDRi, PESQ and STOI overall",
                    " / ".join(f"{a[m]:.2f} vs {b[m]:.2f}" for m in mets), all(a[m] > b[m] for m in mets)))
        lost = [f"{g} {m}" for g, per in summary["snr"].items() for m in mets if not per[ours][m] > per[rival][m]]
        out.append((f"beats {rival} on all three in every SNR bucket",
                    "everywhere" if not lost else "not in " + ", ".join(lost), not lost))
        fam = summary["family"]
        wins = sum(per[ours]["si_sdr_i"] > per[rival]["si_sdr_i"] for per in fam.values())
        out.append((f"better SI-SDRi than {rival} on most noises", f"{wins} of {len(fam)}", wins > len(fam) / 2))
        worst = min(fam.items(), key=lambda kv: kv[1][ours]["si_sdr_i"])
        out.append(("no noise below -1 dB SI-SDRi", f"worst {worst[0]} {worst[1][ours]['si_sdr_i']:+.2f} dB",
                    worst[1][ours]["si_sdr_i"] >= -1.0))
        low = min(summary["snr"].items(), key=lambda kv: kv[1][ours]["si_sdr_i"])
        out.append(("no SNR bucket below 0 dB SI-SDRi", f"lowest {low[0]} {low[1][ours]['si_sdr_i']:+.2f} dB",
                    low[1][ours]["si_sdr_i"] >= 0.0))
    if "clean" in summary:
        c = summary["clean"]["all"][ours]
        bands = c["band_db"]
        worst_band = max((abs(b) for b in bands if np.isfinite(b)), default=float("nan"))
        out.append(("clean speech: level within 0.5 dB", f"{c['level_db']:+.2f} dB", abs(c["level_db"]) <= 0.5))
        out.append(("clean speech: SI-SDR >= 20 dB against the input", f"{c['si_sdr']:.1f} dB", c["si_sdr"] >= 20))
        out.append(("clean speech: every octave band up to 16 kHz within 2 dB",
                    "bands " + ", ".join(f"{b:+.1f}" if np.isfinite(b) else "–" for b in bands), worst_band <= 2.0))
    if "band" in summary and full_band in summary["band"]:
        ref = summary["band"][full_band][ours]["si_sdr_i"]
        gaps = {g: per[ours]["si_sdr_i"] - ref for g, per in summary["band"].items() if g != full_band}
        worst = min(gaps.items(), key=lambda kv: kv[1])
        out.append(("band-limited, lossy and 16/44.1 kHz input within 1 dB SI-SDRi of full band",
                    f"worst {worst[0]} {worst[1]:+.2f} dB", worst[1] >= -1.0))
    if "level" in summary and nominal in summary["level"]:
        ref = summary["level"][nominal][ours]["si_sdr_i"]
        gaps = {g: per[ours]["si_sdr_i"] - ref for g, per in summary["level"].items()}
        worst = max(gaps.items(), key=lambda kv: abs(kv[1]))
        out.append((f"input peak -40..0 dBFS within 1 dB SI-SDRi of {nominal}",
                    f"worst {worst[0]} {worst[1]:+.2f} dB", abs(worst[1]) <= 1.0))
    if "dc" in summary and "no offset" in summary["dc"]:
        ref = summary["dc"]["no offset"][ours]["si_sdr_i"]
        gaps = {g: per[ours]["si_sdr_i"] - ref for g, per in summary["dc"].items() if g != "no offset"}
        if gaps:
            worst = min(gaps.items(), key=lambda kv: kv[1])
            out.append(("a DC offset up to -40 dBFS (under speech peaking at -30 dBFS) within 1 dB SI-SDRi of none",
                        f"worst {worst[0]} {worst[1]:+.2f} dB", worst[1] >= -1.0))
    if "noise" in summary:
        att = summary["noise"]["all"][ours]["atten_db"]
        out.append(("noise-only input attenuated by >= 20 dB", f"{att:.1f} dB", att >= 20.0))
    return out


def format_goals(rows: list[tuple[str, str, bool]]) -> str:
    """The goals as a Markdown table."""
    lines = ["| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in rows]
    return "\n".join(lines)


#: The measures :func:`paired` compares, with the decimals :func:`format_paired` shows.
PAIRED_MEASURES: tuple[tuple[str, str, int], ...] = (("si_sdr_i", "SI-SDRi dB", 2), ("pesq", "PESQ-WB", 3),
                                                      ("stoi", "STOI", 4))


def paired(rows: Sequence[dict], ours: str = "rtconv", others: Sequence[str] | None = None, part: str = "grid",
           confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> dict:
    """``ours`` minus each of ``others`` on the same items of ``part``: the mean paired difference per
    measure and its bootstrap interval (percentile, ``resamples`` draws of the items, a fixed ``seed``
    so a rerun prints the same numbers).

    Means side by side cannot say whether a 0.01 PESQ lead is the models or the items drawn; the same
    items scored by both, differenced item by item, take the items' own spread out. Returns
    ``{other: {measure: {"mean", "low", "high", "n"}}}``; an item a measure is missing or not finite
    for (in either system) is left out of that measure."""
    from scipy.stats import bootstrap

    by_system: dict[str, dict] = {}
    for r in rows:
        if r["part"] == part:
            by_system.setdefault(r["system"], {})[r["example"]] = r
    if ours not in by_system:
        return {}
    mine = by_system[ours]
    names = [n for n in (others if others is not None else by_system) if n != ours and n in by_system]
    out: dict = {}
    for name in names:
        theirs = by_system[name]
        per: dict = {}
        for m, _, _ in PAIRED_MEASURES:
            d = np.array([mine[k][m] - theirs[k][m] for k in sorted(set(mine) & set(theirs))
                          if mine[k].get(m) is not None and theirs[k].get(m) is not None
                          and np.isfinite(mine[k][m]) and np.isfinite(theirs[k][m])], dtype=float)
            if len(d) == 0:
                continue
            if len(d) == 1 or np.ptp(d) == 0:  # nothing to resample: the interval is the value itself
                low = high = float(d.mean())
            else:
                ci = bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=resamples,
                               method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
                low, high = float(ci.low), float(ci.high)
            per[m] = {"mean": float(d.mean()), "low": low, "high": high, "n": int(len(d))}
        if per:
            out[name] = per
    return out


def format_paired(result: dict, ours: str = "rtconv", confidence: float = 0.95) -> str:
    """A :func:`paired` result as a Markdown section (empty without one)."""
    if not result:
        return ""
    n = max(v["n"] for per in result.values() for v in per.values())
    lines = [f"### Paired: {ours} minus each system on the same {n} grid items",
             "",
             f"mean difference [{confidence:.0%} bootstrap interval]; **bold**: the interval leaves out 0, so the "
             f"difference is more than the items drawn (positive: {ours} scores higher)",
             "",
             "| system | n | " + " | ".join(label for _, label, _ in PAIRED_MEASURES) + " |",
             "|" + "---|" * (2 + len(PAIRED_MEASURES))]
    for name, per in result.items():
        cells = [name, str(max(v["n"] for v in per.values()))]
        for m, _, dec in PAIRED_MEASURES:
            v = per.get(m)
            if v is None:
                cells.append("–")
                continue
            text = f"{v['mean']:+.{dec}f} [{v['low']:+.{dec}f}, {v['high']:+.{dec}f}]"
            cells.append(f"**{text}**" if v["low"] > 0 or v["high"] < 0 else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
