"""Voice activity: the framed VAD streams exactly, labels, AUC, segments, `rtconv vad`, the task and the bench."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtconv
from rtconv import ConfigError
from rtconv.checkpoint import models_dir
from rtconv.classifier import FramedVAD, band_filterbank
from rtconv.cli import main
from rtconv.errors import AudioFileError
from rtconv.layers import MimoConv1d
from rtconv.vad import (EnergyDetector, detect, best_accuracy, energy_db, frame_means, roc_auc, segments, speech_frames,
                        vad_rows, write_labels)

from _streams import stream_in_sizes

RATE = 48000


def _small_vad(gru=0, seed=0):
    torch.manual_seed(seed)
    return FramedVAD(window=48, hop=24, bands=8, band_step=2, channels=4, layers=2, gru=gru)


def _stream(model, x, sizes, dtype=np.float32):
    out, s = stream_in_sizes(model, x, sizes, dtype)
    return out[s.latency:]


def _offline(model, x):
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    with torch.no_grad():
        y = model.to(tdt)(torch.from_numpy(np.ascontiguousarray(x.T))[:, None].to(tdt))
    return y[:, 0].numpy().T


# ------------------------------------------------------------------------------ the model

@pytest.mark.parametrize("sizes", [[1], [3], [7], [128], [4096], [5, 1, 13, 0, 2, 96]])
@pytest.mark.parametrize("gru", [0, 3])
def test_the_framed_vad_streams_exactly_at_awkward_block_sizes(sizes, gru):
    model = _small_vad(gru)
    x = np.random.default_rng(1).normal(size=(601, 1)).astype(np.float32)
    got, ref = _stream(model, x, sizes), _offline(model, x)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 500), st.lists(st.integers(1, 150), min_size=1, max_size=4), st.integers(1, 2),
       st.integers(0, 2**16))
def test_random_signals_and_blocks_stream_exactly_per_channel_in_float64(length, sizes, channels, seed):
    model = _small_vad(seed=seed).double()
    x = np.random.default_rng(seed).normal(size=(length, channels))
    got, ref = _stream(model, x, sizes, np.float64), _offline(model, x)
    assert got.shape == ref.shape and np.abs(got - ref).max(initial=0.0) <= 1e-12


def test_the_default_vad_decides_every_10_ms_with_under_10_ms_of_latency():
    m = FramedVAD()
    assert m.hop == 480 and m.latency == 479 and m.latency / RATE * 1e3 == pytest.approx(9.979, abs=1e-3)
    assert m.receptive_field == 480 + 2 * 7 * 480  # 15 frames of convolutions (and a GRU's memory)
    assert m.recurrent
    x = torch.randn(1, 1, 4800)
    p = m(x)[0, 0]
    assert p.shape == (4800,) and torch.all((p > 0) & (p < 1))
    held = p.view(10, 480)
    assert torch.all(held == held[:, :1]), "one probability per 10 ms frame"


def test_a_frame_decision_sees_only_its_own_frame_and_the_past():
    m = _small_vad()
    x = torch.randn(1, 1, 240)
    y = torch.cat([x, torch.randn(1, 1, 48)], -1)  # new samples after frame 9
    assert torch.equal(m(x)[..., :240], m(y)[..., :240])


def test_the_filterbank_puts_a_sine_in_its_band_at_unit_power():
    k = band_filterbank(480, 40, 2)  # bands at (1 + 2b) * 100 Hz
    t = np.arange(480)
    x = np.sin(2 * np.pi * 700 * t / RATE + 0.3)[::-1]  # impulse-response order: newest first
    z = k[:, 0] @ x
    power = z[:40] ** 2 + z[40:] ** 2
    assert np.argmax(power) == 3 and power[3] == pytest.approx(1.0, rel=0.02)
    assert np.all(np.delete(power, [2, 3, 4]) < 1e-3)


def test_too_many_bands_for_the_window_are_refused():
    with pytest.raises(ConfigError, match=r"bands=40 with band_step=2 reach DFT bin 79, above the 24 bins"):
        band_filterbank(48, 40, 2)
    with pytest.raises(ConfigError, match=r"hop 600 exceeds window 480"):
        FramedVAD(hop=600)


def test_vad_checkpoints_load_as_vad_models(tmp_path):
    m = _small_vad()
    rtconv.save(m, tmp_path / "v.safetensors", sample_rate=RATE, task="vad")
    back = rtconv.load(tmp_path / "v.safetensors")
    assert isinstance(back, FramedVAD) and back.config == m.config and back.latency == 23
    assert not back.body[0].encoder.weight.requires_grad  # the filterbank stays fixed


# ------------------------------------------------------------------------------ labels and scores

def _speechlike(n, rng, level=0.1):
    t = np.arange(n) / RATE
    return level * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * rng.standard_normal(n))


def test_speech_frames_follow_the_clean_speech_within_35_db():
    rng = np.random.default_rng(0)
    clean = np.zeros(RATE)
    clean[4800:14400] = _speechlike(9600, rng)  # 100..300 ms: speech
    clean[24000:28800] = _speechlike(4800, rng, 0.1 * 10 ** (-30 / 20))  # 30 dB quieter: still speech
    clean[38400:43200] = _speechlike(4800, rng, 0.1 * 10 ** (-45 / 20))  # 45 dB quieter: not speech
    lab = speech_frames(clean, RATE)
    assert lab.shape == (100,)
    assert np.flatnonzero(lab).tolist() == list(range(10, 30)) + list(range(50, 60))
    assert not speech_frames(np.zeros(4800), RATE).any()
    assert speech_frames(clean, RATE, range_db=50).sum() == 40


def test_frame_means_and_energy_count_a_partial_last_frame():
    x = np.arange(10.0)
    assert frame_means(x, 4).tolist() == [1.5, 5.5, 8.5]
    e = energy_db(np.full(960, 0.1), 480)
    assert e == pytest.approx([-20.0, -20.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auc_is_the_chance_a_positive_outranks_a_negative_ties_half(pairs):
    s = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs])
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        assert math.isnan(roc_auc(s, y))
        return
    brute = np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)])
    assert roc_auc(s, y) == pytest.approx(brute)


def test_auc_known_values():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=30))
def test_best_accuracy_is_the_best_any_threshold_reaches(pairs):
    s = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs])
    thr, acc = best_accuracy(s, y)
    brute = max(np.mean((s >= t) == y) for t in list(s) + [np.inf])
    assert acc == pytest.approx(brute) and np.mean((s >= thr) == y) == pytest.approx(acc)


def test_vad_rows_compare_the_model_with_the_energy_detector():
    y = np.array([0, 0, 1, 1, 1, 0], bool)
    rows = vad_rows({"a": (np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.6]), np.array([-60, -50, -40, -55, -30, -70.0]), y)})
    r = rows[0]
    assert r["auc"] == 1.0 and r["accuracy"] == pytest.approx(5 / 6) and r["false_alarm"] == pytest.approx(1 / 3)
    assert r["energy_auc"] == pytest.approx(8 / 9) and r["energy_accuracy"] == pytest.approx(5 / 6)


def test_the_streaming_energy_detector_decides_when_a_frame_completes():
    x = np.concatenate([np.zeros(480), np.full(480, 0.1), np.zeros(480)])
    det = EnergyDetector(480, threshold_db=-30.0)
    out = np.concatenate([det.process(x[i: i + 100]) for i in range(0, len(x), 100)])
    assert out[:960].max() == 0.0 and np.all(out[960:] == 1.0)  # frame 1 (loud) known once it ends


# ------------------------------------------------------------------------------ segments and labels

def test_segments_close_short_gaps_then_drop_short_segments():
    p = np.array([0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0], float)
    assert segments(p, 0.01) == [(0.01, 0.03), (0.04, 0.07), (0.11, 0.12)]
    assert segments(p, 0.01, min_silence=0.02) == [(0.01, 0.07), (0.11, 0.12)]
    assert segments(p, 0.01, min_silence=0.02, min_speech=0.02) == [(0.01, 0.07)]
    assert segments(np.zeros(5), 0.01) == []


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, float("nan"), "x"])
def test_a_threshold_outside_0_1_is_refused_in_one_sentence(bad):
    with pytest.raises(ConfigError, match=r"threshold must be a probability between 0 and 1 \(exclusive\), got"):
        segments(np.ones(3), 0.01, bad)


def test_label_files_are_audacitys_format(tmp_path):
    p = write_labels(tmp_path / "l.txt", [(0.5, 1.25), (2.0, 3.0)])
    assert p.read_text() == "0.500000\t1.250000\tspeech\n2.000000\t3.000000\tspeech\n"
    with pytest.raises(AudioFileError, match=r"cannot write the label file .*nope.*: "):
        write_labels(tmp_path / "nope" / "l.txt", [(0, 1)])


# ------------------------------------------------------------------------------ rtconv vad

def _energy_vad(threshold_db=-70.0):
    """A FramedVAD whose weights make it an energy detector on the mean band power: a model with known answers."""
    m = FramedVAD(layers=1)
    net = m.body[0].body
    convs = [mod for mod in net.modules() if isinstance(mod, MimoConv1d)]
    with torch.no_grad():
        for c in convs:
            c.weight.zero_()
            c.bias.zero_()
        # mean of 0.1 ln(band power) over the bands, shifted so that the threshold sits at 0
        convs[0].weight[0, :, 0] = 1.0 / convs[0].in_features
        convs[0].bias[0] = -0.1 * math.log(10 ** (threshold_db / 10))
        convs[-1].weight[0, 0, 0] = 40.0
    m.sample_rate = RATE
    return m


@pytest.fixture(scope="module")
def bursts(tmp_path_factory):
    """A file with noise bursts at 0.5-1.2 s and 2.0-2.3 s in 3 s of near-silence, and a VAD that finds them."""
    d = tmp_path_factory.mktemp("vad")
    rng = np.random.default_rng(0)
    x = 1e-4 * rng.standard_normal(3 * RATE)
    for a, b in ((0.5, 1.2), (2.0, 2.3)):
        x[int(a * RATE): int(b * RATE)] += 0.1 * rng.standard_normal(int((b - a) * RATE))
    wav = d / "talk.wav"
    sf.write(wav, x.astype(np.float32), RATE, subtype="PCM_16")
    model = d / "vad.safetensors"
    rtconv.save(_energy_vad(), model, sample_rate=RATE, task="vad")
    return d, wav, model, x


def _segs(text):
    return [tuple(float(v) for v in line.split("\t")) for line in text.strip().splitlines()]


def test_rtconv_vad_prints_the_speech_segments_in_seconds(bursts, capsys):
    d, wav, model, _ = bursts
    assert main(["vad", str(wav), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    assert _segs(out) == [(0.5, 1.2), (2.0, 2.3)]
    assert "2 segment(s), 1.00 s of speech in 3.00 s" in err


def test_rtconv_vad_writes_an_audacity_label_file(bursts, capsys):
    d, wav, model, _ = bursts
    labels = d / "talk.txt"
    assert main(["vad", str(wav), "--model", str(model), "--labels", str(labels), "--label", "voice"]) == 0
    assert labels.read_text() == "0.500000\t1.200000\tvoice\n2.000000\t2.300000\tvoice\n"


def test_an_existing_file_is_not_replaced_by_labels_unless_overwrite(bursts, capsys):
    d, wav, model, _ = bursts
    other = d / "take.flac"
    other.write_bytes(wav.read_bytes())
    assert main(["vad", str(wav), "--model", str(model), "--labels", str(other)]) == 1
    err = capsys.readouterr()[1].strip()
    assert err == f"rtconv vad: error: --labels {str(other)!r} exists; pass --overwrite to replace it or choose another path."
    assert other.read_bytes() == wav.read_bytes()
    assert main(["vad", str(wav), "--model", str(model), "--labels", str(other), "--overwrite"]) == 0
    assert other.read_text().startswith("0.500000\t1.200000\t")


def test_a_dc_offset_is_removed_before_the_detector_unless_keep_dc(bursts, tmp_path, capsys):
    _, _, model, x = bursts
    path = tmp_path / "offset.wav"
    sf.write(path, (x + 0.02).astype(np.float32), RATE, subtype="FLOAT")
    assert main(["vad", str(path), "--model", str(model)]) == 0
    assert np.allclose(_segs(capsys.readouterr()[0]), [(0.5, 1.2), (2.0, 2.3)], atol=0.011)
    assert main(["vad", str(path), "--model", str(model), "--keep-dc"]) == 0
    capsys.readouterr()
    # the detector's track: as without the offset, unless it is kept (then the offset leaks into its bands)
    m = rtconv.load(model)
    plain = tmp_path / "plain.wav"
    sf.write(plain, x.astype(np.float32), RATE, subtype="FLOAT")
    ref = detect(plain, m)[0]
    np.testing.assert_allclose(detect(path, m)[0][1:], ref[1:], rtol=1e-2, atol=1e-12)  # after the 10 ms fade
    kept = detect(path, m, dc_block=False)[0]
    assert np.abs(np.log(kept / ref)).max() > 0.5  # between bursts the odds of speech more than 1.6x


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (RATE, 2)])
def test_other_rates_and_channels_give_the_same_segments(bursts, tmp_path, capsys, rate, channels):
    import soxr

    _, _, model, x = bursts
    y = soxr.resample(x, RATE, rate) if rate != RATE else x
    path = tmp_path / "other.flac"
    sf.write(path, np.repeat(y[:, None], channels, 1).astype(np.float32), rate)
    assert main(["vad", str(path), "--model", str(model), "-b", "1000"]) == 0
    got = _segs(capsys.readouterr()[0])
    assert len(got) == 2 and np.allclose(got, [(0.5, 1.2), (2.0, 2.3)], atol=0.011)


def test_the_threshold_and_gap_options_change_the_segments(bursts, capsys):
    _, wav, model, _ = bursts
    assert main(["vad", str(wav), "--model", str(model), "--min-silence", "1.0"]) == 0
    assert _segs(capsys.readouterr()[0]) == [(0.5, 2.3)]
    assert main(["vad", str(wav), "--model", str(model), "--min-speech", "0.5"]) == 0
    assert _segs(capsys.readouterr()[0]) == [(0.5, 1.2)]


@pytest.mark.parametrize("args,code,message", [
    (["missing.wav"], 1, r"input file 'missing.wav' does not exist; check the path\."),
    (["{wav}", "--threshold", "1.5"], 2, r"argument --threshold/-t: expected a probability between 0 and 1 "
                                          r"\(exclusive\), got '1.5'"),
    (["{wav}", "--min-silence", "-1"], 2, r"expected a duration of 0 seconds or more, got '-1'"),
    (["{wav}", "--labels", "{d}/no/such/folder/l.txt"], 1, r"cannot write the label file .*: its folder .* does not "
                                                          r"exist; create it or choose another path\."),
    (["{wav}", "--model", "{d}/denoise.safetensors"], 1, r"is a 'denoise' model with 1 output\(s\), not a voice "
                                                        r"activity model; pass one trained with `rtconv train vad`"),
    (["{d}/text.wav"], 1, r"is a text file, not audio"),
])
def test_bad_input_is_one_sentence_with_the_usual_exit_status(bursts, capsys, args, code, message):
    d, wav, model, _ = bursts
    rtconv.save(rtconv.FIR([1.0]), d / "denoise.safetensors", sample_rate=RATE, task="denoise")
    (d / "text.wav").write_text("not audio at all\n" * 20)
    argv = ["vad"] + [a.format(wav=wav, d=d) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(model)]
    with pytest.raises(SystemExit) if code == 2 else _nothing():
        assert main(argv) == code
    err = capsys.readouterr()[1]
    if code == 1:
        assert len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(message, err), err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------ the task and the bench

def _write_corpus(root, rng):
    """A tiny corpus on disk (manifest + FLAC): tone speech with pauses, hiss, in train, val and test."""
    from rtconv.data.corpus import write_manifest

    items = []
    for split, speakers in (("train", ("a", "b")), ("val", ("c",)), ("test", ("d",))):
        for spk in speakers:
            for i in range(3):
                x = np.zeros(RATE)
                x[RATE // 4: 3 * RATE // 4] = _speechlike(RATE // 2, rng)
                f = f"{split}/{spk}{i}.flac"
                (root / split).mkdir(parents=True, exist_ok=True)
                sf.write(root / f, x.astype(np.float32), RATE)
                items.append(dict(id=f"s-{split}-{spk}{i}", source=f"src-{split}", kind="speech", split=split,
                                  package="p", version="1", license="CC0", file=f, seconds=1.0, sample_rate=RATE,
                                  bandwidth_hz=24000.0, speaker=spk, language="xx", speech_kind="real", family=None))
        f = f"{split}/hiss.flac"
        sf.write(root / f, (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
        items.append(dict(id=f"n-{split}", source=f"noise-{split}", kind="noise", split=split, package="p",
                          version="1", license="CC0", file=f, seconds=2.0, sample_rate=RATE, bandwidth_hz=24000.0,
                          speaker=None, language=None, speech_kind=None, family="hiss"))
    write_manifest(items, root)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    _write_corpus(cache / "corpus", np.random.default_rng(5))
    return cache


def test_the_vad_task_labels_examples_from_their_clean_speech(tiny_cache):
    from rtconv.train import tasks

    td = tasks.make_task("vad", cache_dir=str(tiny_cache), seconds=1.0, train_examples=6, val_examples=2,
                         test_examples=4, mix_rate=16000)
    assert (td.name, td.in_channels, td.out_channels, td.sample_rate) == ("vad", 1, 1, RATE)
    x, y = td.train[0]
    assert x.shape == y.shape == (1, RATE)
    frames = y[0].view(100, 480)
    assert torch.all(frames == frames[:, :1]) and set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert {td.train.infos[i]["kind"] for i in range(1)} <= {"mix", "speech", "noise"}
    for i in range(6):
        _, y = td.train[i]
        if td.train.infos[i]["kind"] == "noise":
            assert y.sum() == 0  # noise alone: nothing is speech


def test_training_a_vad_writes_auc_against_the_energy_detector(tiny_cache, tmp_path):
    out = tmp_path / "v.safetensors"
    rc = main(["train", "vad", "--cache-dir", str(tiny_cache), "--seconds", "1", "--train-examples", "8",
               "--val-examples", "2", "--test-examples", "6", "--epochs", "1", "--threads", "1", "--quiet",
               "--arch-arg", "channels=4", "--arch-arg", "layers=1", "--out", str(out)])
    assert rc == 0
    meta = rtconv.load(out).metadata
    assert meta["task"] == "vad" and meta["metrics"]["loss"] == "ce"
    rows = {r["group"]: r for r in meta["metrics"]["test"]["rows"]}
    assert "all" in rows and 0.0 <= rows["all"]["accuracy"] <= 1.0
    assert {"test_auc", "energy_detector_auc"} <= set(meta["metrics"])


def test_the_bench_scores_the_model_and_the_energy_detector_per_snr(tiny_cache):
    from rtconv.bench import vad as bench
    from rtconv.data.corpus import Pool, corpus_dir
    from rtconv.data.testset import make_test_set

    pool = Pool.load("test", RATE, corpus_dir(str(tiny_cache)))
    examples = make_test_set(pool, per_cell=1, band_items=1, level_items=1, clean_items=1, noise_items=1,
                             seconds=1.0, snrs=(0.0, 20.0))
    res = bench.score(_energy_vad(), examples)
    snr = {r["group"]: r for r in res["tables"]["per input SNR"]}
    assert list(snr) == ["SNR 0", "SNR 20", "all"]
    assert snr["SNR 20"]["auc"] > 0.9  # loud bursts over quiet noise: both detectors see them
    assert math.isnan(res["tables"]["clean speech and noise only"][1]["auc"])  # noise only: no speech frames
    text = bench.format_tables(res)
    assert "#### per input SNR" in text and "| SNR 20 |" in text
    # the DC-offset rows: both detectors hear the input DC-blocked, as rtconv vad gives it, so an offset
    # leaves the energy detector's frames as they were without one
    dc = {r["group"]: r for r in res["tables"]["DC offset (5 dB SNR, speech peak -30 dBFS)"]}
    assert list(dc) == ["no offset", "offset -60 dBFS", "offset -50 dBFS", "offset -40 dBFS"]
    assert abs(dc["offset -40 dBFS"]["energy_auc"] - dc["no offset"]["energy_auc"]) < 0.02
    goals = bench.goals(res)
    assert [g[0].split(":")[0] for g in goals] == ["SNR 0", "SNR 20"]


def test_the_bench_times_the_vad_beside_the_energy_detector():
    from rtconv.bench import vad as bench

    tm = bench.timing(_small_vad(), 128, 0.2)
    assert set(tm) == {"vad", "energy detector"} and all(v["rtf"] > 0 for v in tm.values())


def test_process_refuses_a_dry_wet_mix_into_probabilities(tmp_path, capsys):
    """``rtconv process --model vad --wet 0.5`` would mix audio into a probability track."""
    import soundfile as sf

    from rtconv.cli import main

    sf.write(str(tmp_path / "a.wav"), np.zeros((4800, 1), np.float32), 48000)
    code = main(["process", str(tmp_path / "a.wav"), "--model", "vad", "--wet", "0.5"])
    err = capsys.readouterr().err
    assert code != 0 and "probabilities, not audio" in err and "Traceback" not in err
    assert not (tmp_path / "a-vad.wav").exists()


@pytest.mark.parametrize("dbfs", [-60, -40, -20])
def test_the_shipped_detector_does_not_take_steady_noise_for_speech(dbfs):
    """What v2 was trained for (three times v1's noise-alone clips): white noise alone, quiet or loud, stays well
    below the gate's thresholds after its first second (v1's mean probability at -20 dBFS was 0.31)."""
    m = rtconv.load(models_dir() / "vad.safetensors")
    x = (10 ** (dbfs / 20) * np.random.default_rng(2).standard_normal(3 * RATE)).astype(np.float32)
    with torch.no_grad():
        p = m(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert p[RATE:].mean() < 0.2 and np.mean(p[RATE:] >= 0.5) < 0.1, (p[RATE:].mean(), np.mean(p[RATE:] >= 0.5))


def test_the_shipped_detector_hears_no_speech_in_digital_silence_at_the_start_of_a_file(tmp_path, capsys):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(2 * RATE, np.float32), RATE)
    m = rtconv.load(models_dir() / "vad.safetensors")
    assert detect(path, m)[0].max() < 0.2
    # from silence its recurrent state starts where no input leads it: the first 100 ms read as speech
    assert detect(path, m, prime=False)[0][:10].max() > 0.45
    assert main(["vad", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "0 segment(s)" in err


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_rtconv_vad_warns_of_a_file_cut_short_in_process_s_words_and_prints_what_it_holds(bursts, tmp_path,
                                                                                          capsys, ext):
    """`rtconv vad` read a recording cut short without a word where `rtconv process` warns (and refused a FLAC
    cut short whole): it says the same sentence on stderr, and its segments are those of the audio there is."""
    from rtconv.audio import Reader

    _, _, model, x = bursts
    src = tmp_path / f"take.{ext}"
    sf.write(src, x.astype(np.float32), RATE, subtype="PCM_16")
    with open(src, "r+b") as f:
        f.truncate(int(src.stat().st_size * 0.95))
    with Reader(src) as r:
        held = r.frames
    assert 2.4 * RATE < held < 2.9 * RATE
    there = tmp_path / "there.wav"  # the audio the cut file holds, as a whole file
    sf.write(there, x[:held].astype(np.float32), RATE, subtype="PCM_16")
    assert main(["vad", str(there), "--model", str(model)]) == 0
    expected = capsys.readouterr()
    assert main(["vad", str(src), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    assert out == expected.out and _segs(out) == [(0.5, 1.2), (2.0, 2.3)]
    assert err.splitlines() == [
        f"rtconv vad: warning: take.{ext}: the file is cut short: its header announces 3.00 s (144000 frames) and "
        f"it holds {held / RATE:.2f} s ({held}); what it holds was processed (a recording stopped by a crash, or a "
        "copy not finished?)", expected.err.strip()]


def test_rtconv_vad_reads_mp3s_joined_end_to_end_whole_and_says_so(bursts, tmp_path, capsys):
    """`cat a.mp3 b.mp3` keeps a's length header: libsndfile read a alone, and the speech in b was never looked at."""
    import io

    _, _, model, x = bursts
    parts = []
    for piece in (np.zeros(RATE), x):  # a second of silence, then the bursts
        buf = io.BytesIO()
        sf.write(buf, piece.astype(np.float32), RATE, format="MP3")
        parts.append(buf.getvalue())
    src = tmp_path / "joined.mp3"
    src.write_bytes(parts[0] + parts[1])
    assert main(["vad", str(src), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    segs = _segs(out)
    assert len(segs) == 2 and 1.4 < segs[0][0] < 1.7 and 3.0 < segs[1][0] < 3.3, segs  # the bursts, a second later
    assert err.splitlines()[0].startswith("rtconv vad: warning: joined.mp3: the file holds MP3s joined end to end: its "
                                          "length header (Xing/Info) announces 1.00 s and its frames hold "), err
